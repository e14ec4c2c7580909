"""Key sources -> securesystemslib Signers.

A signing key is named in Infra.toml as a PEM file (`file`), an AWS KMS key (`kms`) or a PEM
private key stored as an SSM SecureString (`ssm`). Whatever the source, the rest of pubsys sees
a `securesystemslib.signer.Signer` whose `public_key` is the exact key object root.json lists
(its keyid is the sha256 of that object's canonical form). Key material is never logged, put in
an error message or written anywhere but the one key file `setup` creates (mode 0600).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Signer, SSlibKey

from ..config import KeySource
from ..errors import SigningKeyError
from ..fsutil import write_bytes_atomic

if TYPE_CHECKING:
    from ..aws.clients import AwsClients

log = logging.getLogger(__name__)

RSA_SCHEME = "rsassa-pss-sha256"
DEFAULT_RSA_BITS = 3072


@dataclass(frozen=True)
class NamedSigner:
    """A signer plus a label for messages (`file:/path`, `kms:alias/x`), never key material."""

    signer: Signer
    label: str

    @property
    def keyid(self) -> str:
        return self.signer.public_key.keyid


def signer_from_pem(pem: bytes, label: str) -> CryptoSigner:
    """A CryptoSigner for an unencrypted PEM private key: RSA (PSS), ECDSA P-256, Ed25519."""
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        # The library's message never contains key bytes, but keep ours generic anyway.
        reason = "it is encrypted" if "encrypted" in str(e).lower() else "it is not a PEM private key"
        raise SigningKeyError(f"cannot load signing key {label}: {reason}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        scheme = RSA_SCHEME
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SigningKeyError(f"signing key {label}: only ECDSA P-256 is supported, "
                                  f"not {key.curve.name}")
        scheme = "ecdsa-sha2-nistp256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        scheme = "ed25519"
    else:
        raise SigningKeyError(f"signing key {label}: unsupported key type "
                              f"{type(key).__name__}; use RSA, ECDSA P-256 or Ed25519")
    return CryptoSigner(key, SSlibKey.from_crypto(key.public_key(), scheme=scheme))


def load_file_signer(path: str | Path) -> NamedSigner:
    label = f"file:{path}"
    try:
        pem = Path(path).read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"signing key {path} not found; run 'pubsys setup' or fix "
                              "signing_keys in Infra.toml") from None
    except OSError as e:
        raise SigningKeyError(f"cannot read signing key {path}: {e.strerror}") from None
    return NamedSigner(signer_from_pem(pem, label), label)


def load_signer(source: KeySource, clients: AwsClients | None = None) -> NamedSigner:
    if source.kind == "file":
        return load_file_signer(source.ref)
    if source.kind in ("kms", "ssm"):
        from . import cloudkeys  # AWS-backed signers need boto3 clients from the factory

        return cloudkeys.load_cloud_signer(source, clients)
    raise SigningKeyError(f"unknown key source {source.kind!r}")


def load_signers(sources: Sequence[KeySource],
                 clients: AwsClients | None = None) -> list[NamedSigner]:
    signers = [load_signer(s, clients) for s in sources]
    seen: dict[str, str] = {}
    for s in signers:
        if s.keyid in seen:
            raise SigningKeyError(f"signing keys {seen[s.keyid]} and {s.label} are the same key")
        seen[s.keyid] = s.label
    return signers


def generate_key_file(path: str | Path) -> NamedSigner:
    """Create an RSA-3072 key (what Bottlerocket's tuftool makes) at `path`, mode 0600."""
    path = Path(path)
    signer = CryptoSigner.generate_rsa(scheme=RSA_SCHEME, size=DEFAULT_RSA_BITS)
    write_bytes_atomic(path, signer.private_bytes, mode=0o600)
    os.chmod(path, 0o600)
    log.info("created signing key %s (mode 0600)", path)
    return NamedSigner(signer, f"file:{path}")
