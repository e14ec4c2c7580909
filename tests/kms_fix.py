"""AWS key fixtures for signing tests: moto with KMS `Sign` corrected, keys and SSM PEMs.

moto 5.2 treats `MessageType=DIGEST` as a raw message (it hashes the digest again), so
signatures over digests never verify. `devtools/moto_ext_kms.py` corrects that (and uses the
digest-length PSS salt real KMS uses): the moto server process installs it at start-up
(devtools/moto_server.py), and in-process tests use `mocked_aws()` below, which installs it
only for the length of the test. pubsys itself sends exactly what real KMS expects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devtools import moto_ext_kms
from pubsys.aws.clients import AwsClients
from pubsys.config import AwsConfig

REGION = "us-west-2"


@contextlib.contextmanager
def mocked_aws() -> Iterator[AwsClients]:
    """In-process moto with the KMS DIGEST fix; yields a client factory for us-west-2."""
    from moto import mock_aws

    with mock_aws(), moto_ext_kms.corrected():
        yield AwsClients(AwsConfig(regions=(REGION,)))


def server_clients(url: str) -> AwsClients:
    """A client factory for a moto server (as Infra.toml's aws.endpoint_url would give)."""
    return AwsClients(AwsConfig(regions=(REGION,), endpoint_url=url))


def create_kms_key(clients: AwsClients, spec: str, alias: str | None = None,
                   region: str | None = None, usage: str = "SIGN_VERIFY") -> str:
    """A KMS key of `spec` (RSA_3072, ECC_NIST_P256, ...); returns its id (or alias)."""
    kms = clients.client("kms", region)
    key_id = kms.create_key(KeyUsage=usage, KeySpec=spec)["KeyMetadata"]["KeyId"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        return alias
    return key_id


def ec_pem() -> bytes:
    """A fresh unencrypted ECDSA P-256 private key (fast to make, unlike RSA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def put_pem(clients: AwsClients, name: str, pem: bytes, kind: str = "SecureString",
            region: str | None = None) -> str:
    clients.client("ssm", region).put_parameter(Name=name, Value=pem.decode(), Type=kind)
    return name


def pem_body_lines(pem: bytes) -> list[str]:
    """The base64 lines of a PEM: what must never show up in logs or errors."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]
