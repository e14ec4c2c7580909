"""Which keys pubsys signs with, and the TUF scheme each key type signs with (decided here only).

The scheme is securesystemslib's default for the key type (`SSlibKey.from_crypto`), limited to
the three that every common TUF client, Bottlerocket's `tough` included, verifies: RSA with
RSASSA-PSS/SHA-256, ECDSA P-256 and Ed25519. File, KMS and SSM keys all pass through
`tuf_key()`, so a key's keyid is the same whichever way it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from securesystemslib.signer import Signer, SSlibKey

RSA_SCHEME = "rsassa-pss-sha256"
ECDSA_SCHEME = "ecdsa-sha2-nistp256"
ED25519_SCHEME = "ed25519"
SCHEMES = (RSA_SCHEME, ECDSA_SCHEME, ED25519_SCHEME)
SUPPORTED = "use RSA, ECDSA P-256 or Ed25519"


@dataclass(frozen=True)
class NamedSigner:
    """A signer plus a label for messages (`file:/path`, `kms:alias/x`), never key material."""

    signer: Signer
    label: str

    @property
    def keyid(self) -> str:
        return self.signer.public_key.keyid


def tuf_key(public_key: PublicKeyTypes) -> SSlibKey | None:
    """The TUF key for a `cryptography` public key, or None if pubsys does not sign with its
    type (DSA, other curves, ...)."""
    try:
        key = SSlibKey.from_crypto(public_key)
    except ValueError:
        return None
    return key if key.scheme in SCHEMES else None


def describe_key_type(public_key: PublicKeyTypes) -> str:
    """'RSA', 'ECDSA secp384r1', 'DSA'...: for errors about a key we cannot use."""
    name = type(public_key).__name__.removeprefix("_").replace("PublicKey", "")
    curve = getattr(public_key, "curve", None)
    if curve is not None:
        return f"ECDSA {curve.name}"
    return name or "unknown"
