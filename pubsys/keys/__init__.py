"""Signing keys: one loader for keys in PEM files, AWS KMS and SSM SecureStrings.

A key is named in Infra.toml as a `KeySource` (`file`, `kms` or `ssm`), or given to
`pubsys root` as a reference (`parse_key_ref`). Whatever the source, the rest of pubsys sees a
`NamedSigner`: a securesystemslib `Signer` whose `public_key` is the exact key object root.json
lists, plus a label for messages. Key material is never logged, put in an error message or
written anywhere but the one key file `setup` creates (mode 0600).

Modules, each importing only those above it (no cycle):
  schemes  which key types pubsys signs with and their TUF scheme (decided once)
  pem      the one reader of key files; signers and public keys from PEM; new key files
  aws      KMS and SSM keys, through clients from `pubsys.aws.clients`
  (here)   `KeyLoader`, the one way commands load keys; `aws` (and with it botocore and the
           client factory) is imported only when a `kms` or `ssm` key is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from securesystemslib.signer import Key

from ..config import AwsConfig, KeySource
from ..errors import SigningKeyError, UsageError
from .pem import file_public_key, generate_key_file, load_file_signer
from .schemes import NamedSigner

if TYPE_CHECKING:
    from ..aws.clients import AwsClients

__all__ = ["KeyLoader", "NamedSigner", "generate_key_file", "load_file_signer",
           "load_signers", "parse_key_ref"]


class KeyLoader:
    """Loads the keys of one command; the AWS client factory is built on first use only.

    KMS and SSM keys are used with the default credential chain (environment, AWS_PROFILE,
    instance or task role), not `aws.profile`/`aws.role`: Bottlerocket's pubsys and tuftool
    sign that way, so the account that holds the keys may differ from the one publishing.
    `aws.endpoint_url` still applies. `if_missing` is the remedy named when a key file does
    not exist.
    """

    def __init__(self, aws: AwsConfig | None = None, *, clients: AwsClients | None = None,
                 if_missing: str = ""):
        self._aws = aws or AwsConfig()
        self._clients = clients
        self.if_missing = if_missing

    def clients(self) -> AwsClients:
        if self._clients is None:
            from ..aws.clients import AwsClients

            self._clients = AwsClients(AwsConfig(endpoint_url=self._aws.endpoint_url))
        return self._clients

    def signer(self, source: KeySource) -> NamedSigner:
        if source.kind == "file":
            return load_file_signer(source.ref, self.if_missing)
        if source.kind in ("kms", "ssm"):
            from . import aws

            fallback = self._aws.regions[0] if self._aws.regions else None
            return aws.load_cloud_signer(source, self.clients(), fallback)
        raise SigningKeyError(f"unknown key source {source.kind!r}")

    def signers(self, sources: Sequence[KeySource]) -> list[NamedSigner]:
        """Every source's signer; two sources holding the same key are refused."""
        signers = [self.signer(s) for s in sources]
        seen: dict[str, str] = {}
        for s in signers:
            if s.keyid in seen:
                raise SigningKeyError(f"signing keys {seen[s.keyid]} and {s.label} are the "
                                      "same key")
            seen[s.keyid] = s.label
        return signers

    def public_key(self, source: KeySource) -> Key:
        """The TUF key of a source; a file may hold just the public key."""
        if source.kind == "file":
            return file_public_key(source.ref)
        return self.signer(source).signer.public_key


def load_signers(sources: Sequence[KeySource],
                 clients: AwsClients | None = None) -> list[NamedSigner]:
    return KeyLoader(clients=clients).signers(sources)


def parse_key_ref(text: str) -> KeySource:
    """`kms:ID`, `ssm:NAME`, tuftool's `aws-kms://[]/ID` / `aws-ssm://[]/NAME`, or a file.

    A KMS key ARN names its region; other references use the default chain's region.
    """
    for prefix, kind in (("aws-kms://", "kms"), ("aws-ssm://", "ssm")):
        if text.startswith(prefix):
            profile, _, ref = text[len(prefix):].partition("/")
            if profile:
                raise UsageError(f"key {text}: a profile in the URL is not supported; run "
                                 f"with AWS_PROFILE={profile} instead (AWS keys are used with "
                                 "the default credential chain, not aws.profile)")
            if kind == "ssm" and not ref.startswith("/"):
                ref = "/" + ref
            return _cloud_ref(kind, ref, text)
    for kind in ("kms", "ssm", "file"):
        if text.startswith(kind + ":"):
            ref = text[len(kind) + 1:]
            return KeySource("file", ref) if kind == "file" else _cloud_ref(kind, ref, text)
    return KeySource("file", text)


def _cloud_ref(kind: str, ref: str, text: str) -> KeySource:
    if not ref:
        raise UsageError(f"key {text!r}: nothing after '{kind}:'")
    region = None
    if ref.startswith("arn:"):
        parts = ref.split(":")
        region = parts[3] if len(parts) > 5 and parts[3] else None
    return KeySource(kind, ref, region)
