"""Signing keys that live in AWS: KMS keys that sign remotely, and PEM keys kept in SSM.

`load_cloud_signer()` turns a `kms` or `ssm` key source from Infra.toml (or a `kms:`/`ssm:`
reference given to `pubsys root`) into a signer; the loader in `pubsys.keys` imports this
module (and botocore with it) only when such a key is used. Both use clients from the one factory
(`aws/clients.py`) that the loader builds with the default credential chain (as Bottlerocket's
pubsys does for signing keys; `aws.profile` and the roles are for publishing), in the key's
own `region` (for KMS: from `available_keys`, the ARN or the table), else the chain's default
region, else the first of `aws.regions`.

kms
  1. GetPublicKey: the key must be a SIGN_VERIFY key whose type `schemes.tuf_key` accepts and
     KMS can sign for: RSA of any size KMS offers (RSASSA_PSS_SHA_256) or ECC_NIST_P256
     (ECDSA_SHA_256), the algorithm taken from securesystemslib's `AWSSigner` table. Other key
     types are refused by name.
  2. Each signature: the SHA-256 digest is computed locally and sent with MessageType=DIGEST
     (what securesystemslib's `AWSSigner` does; we reuse its algorithm table but not its
     constructor, which builds its own boto3 client from ambient settings). RSA signatures
     are left-padded to the modulus length, as KMS sometimes returns them shorter.
ssm
  GetParameter with decryption; the parameter must be a SecureString holding an unencrypted
  PEM private key (RSA, ECDSA P-256 or Ed25519). A plain String is refused: a private key
  stored unencrypted is a mistake to fix, not to use.

Key material never reaches logs, errors or files: botocore's debug log of the SSM response
body is suppressed while the parameter is fetched, and errors name the key, never its value.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from securesystemslib.signer import AWSSigner, Key, SecretsHandler, Signature, Signer, SSlibKey

from ..aws.errors import describe_error
from ..config import KeySource
from ..errors import ConfigError, SigningKeyError
from .pem import signer_from_pem
from .schemes import NamedSigner, tuf_key

if TYPE_CHECKING:
    from ..aws.clients import AwsClients

log = logging.getLogger(__name__)


# Added to errors loading a key: the usual cause is credentials for another account.
CREDENTIALS = ("AWS signing keys are used with the default credentials (AWS_* variables, "
               "AWS_PROFILE, instance or task role), not aws.profile or aws.role")


def load_cloud_signer(source: KeySource, clients: AwsClients,
                      fallback_region: str | None = None) -> NamedSigner:
    """A signer for a `kms` or `ssm` key source, using clients from the factory; the key is
    looked for in its own region, else the factory's default, else `fallback_region`."""
    region = _region(source, clients, fallback_region)
    if source.kind == "kms":
        return load_kms_signer(source, clients, region)
    if source.kind == "ssm":
        return load_ssm_signer(source, clients, region)
    raise SigningKeyError(f"{source.describe()}: not an AWS key source")


def _region(source: KeySource, clients: AwsClients, fallback: str | None) -> str:
    if source.region:
        return source.region
    try:
        return clients.default_region()
    except ConfigError:
        if fallback:
            return fallback
        raise
    except BotoCoreError as e:  # AWS_PROFILE names a profile that does not exist, say
        raise SigningKeyError(f"cannot use {source.describe()}: {e}") from None


# --- KMS ---------------------------------------------------------------------------------


class KmsSigner(Signer):
    """Signs with an AWS KMS key over a KMS client from our factory.

    Like securesystemslib's `AWSSigner` (whose scheme -> algorithm table it uses), but its
    constructor takes our client: `AWSSigner` builds its own from ambient settings, bypassing
    the factory's profile, roles and endpoint.
    """

    def __init__(self, client: Any, key_id: str, public_key: SSlibKey, label: str,
                 rsa_signature_length: int | None = None):
        # Our own Signer (not AWSSigner, whose __init__ builds its own boto3 client and
        # bypasses the factory's endpoint, retries and pool); it borrows only its table.
        self.client = client
        self.aws_key_id = key_id
        self.key = public_key
        self.aws_algo = AWSSigner.aws_algos[public_key.scheme]
        self.label = label
        self.rsa_signature_length = rsa_signature_length

    @property
    def public_key(self) -> SSlibKey:
        return self.key

    @classmethod
    def from_priv_key_uri(cls, priv_key_uri: str, public_key: Key,
                          secrets_handler: SecretsHandler | None = None) -> KmsSigner:
        raise NotImplementedError("pubsys loads KMS keys through pubsys.keys.KeyLoader")

    def sign(self, payload: bytes) -> Signature:
        digest = hashlib.new(self.public_key.get_hash_algorithm_name(), payload).digest()
        try:
            response = self.client.sign(KeyId=self.aws_key_id, Message=digest,
                                        MessageType="DIGEST", SigningAlgorithm=self.aws_algo)
        except (BotoCoreError, ClientError) as e:
            raise SigningKeyError(f"KMS key {self.label} could not sign: "
                                  f"{describe_error(e)}") from None
        signature = response["Signature"]
        if self.rsa_signature_length:
            signature = pad_rsa_signature(signature, self.rsa_signature_length, self.label)
        return Signature(self.public_key.keyid, signature.hex())


def pad_rsa_signature(signature: bytes, length: int, label: str) -> bytes:
    """Left-pad an RSA signature with zero bytes to the modulus length.

    KMS may drop leading zero bytes; TUF clients such as `tough` want exactly modulus-length
    signatures. Longer than the modulus cannot be a valid signature at all.
    """
    if len(signature) > length:
        raise SigningKeyError(f"KMS key {label} returned a {len(signature)}-byte signature "
                              f"for a {length}-byte modulus")
    return signature.rjust(length, b"\0")


def kms_public_key(response: dict[str, Any], label: str) -> tuple[SSlibKey, int | None]:
    """The TUF key for a GetPublicKey response, and the RSA signature length (None for EC).

    Pure: refuses keys that cannot sign with a scheme every common TUF client accepts.
    """
    usage = response.get("KeyUsage")
    if usage and usage != "SIGN_VERIFY":
        raise SigningKeyError(f"KMS key {label} has KeyUsage {usage}; a signing key must be "
                              "created with KeyUsage SIGN_VERIFY")
    try:
        public = load_der_public_key(response["PublicKey"])
    except (KeyError, ValueError):
        raise SigningKeyError(f"KMS key {label}: GetPublicKey returned no usable public "
                              "key") from None
    algorithms = response.get("SigningAlgorithms") or []
    spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec") or "unknown"
    key = tuf_key(public)
    algorithm = AWSSigner.aws_algos.get(key.scheme) if key else None
    if key is None or algorithm is None:
        raise SigningKeyError(f"KMS key {label} is {spec}; use an RSA key (RSA_3072 or "
                              "RSA_4096) or ECC_NIST_P256")
    if algorithm not in algorithms:
        raise SigningKeyError(f"KMS key {label} ({spec}) does not offer {algorithm}; it "
                              f"offers {', '.join(algorithms) or 'no signing algorithm'}")
    length = (public.key_size + 7) // 8 if isinstance(public, rsa.RSAPublicKey) else None
    return key, length


def load_kms_signer(source: KeySource, clients: AwsClients, region: str) -> NamedSigner:
    label = f"kms:{source.ref}"
    try:
        client = clients.client("kms", region)
        response = client.get_public_key(KeyId=source.ref)
    except (BotoCoreError, ClientError) as e:
        raise SigningKeyError(f"cannot load KMS key {source.ref} in {region}: "
                              f"{describe_error(e)} ({CREDENTIALS})") from None
    public_key, length = kms_public_key(response, label)
    log.debug("KMS key %s in %s: %s keyid %s", source.ref, region, public_key.scheme,
              public_key.keyid)
    return NamedSigner(KmsSigner(client, source.ref, public_key, label, length), label)


# --- SSM ---------------------------------------------------------------------------------

_FETCHING_SECRET = contextvars.ContextVar("pubsys_fetching_secret", default=False)


class _DropWhileFetchingSecret(logging.Filter):
    """Drops botocore's debug records (which include response bodies) during a secret fetch."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _FETCHING_SECRET.get()


_SECRET_FILTER = _DropWhileFetchingSecret()
# The loggers that print HTTP requests and responses, bodies included.
_BODY_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.hooks",
                 "botocore.retryhandler", "urllib3.connectionpool")


@contextlib.contextmanager
def _secret_response() -> Iterator[None]:
    for name in _BODY_LOGGERS:
        logger = logging.getLogger(name)
        if _SECRET_FILTER not in logger.filters:
            logger.addFilter(_SECRET_FILTER)
    token = _FETCHING_SECRET.set(True)
    try:
        yield
    finally:
        _FETCHING_SECRET.reset(token)


def load_ssm_signer(source: KeySource, clients: AwsClients, region: str) -> NamedSigner:
    label = f"ssm:{source.ref}"
    try:
        client = clients.client("ssm", region)
        with _secret_response():
            parameter = client.get_parameter(Name=source.ref, WithDecryption=True)["Parameter"]
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise SigningKeyError(f"SSM parameter {source.ref} not found in {region}; store "
                                  "the PEM private key there as a SecureString") from None
        raise SigningKeyError(f"cannot read SSM parameter {source.ref} in {region}: "
                              f"{describe_error(e)} ({CREDENTIALS})") from None
    except BotoCoreError as e:
        raise SigningKeyError(f"cannot read SSM parameter {source.ref} in {region}: "
                              f"{describe_error(e)} ({CREDENTIALS})") from None
    kind = parameter.get("Type")
    if kind != "SecureString":
        raise SigningKeyError(f"SSM parameter {source.ref} in {region} is a {kind}, not a "
                              "SecureString; a private key must be stored encrypted "
                              "(put-parameter --type SecureString), then rotate this key")
    pem = parameter.pop("Value").encode()
    return NamedSigner(signer_from_pem(pem, label), label)
