"""PEM key files: the one place a key file is read, signers and public keys made from PEM,
and the key file `setup` creates.

A PEM private key (file or SSM SecureString) must be unencrypted: pubsys runs unattended.
Key bytes never reach a message: errors say which key and why, never what it holds.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)
from securesystemslib.signer import CryptoSigner, SSlibKey

from ..errors import SigningKeyError
from ..fsutil import write_bytes_atomic
from .schemes import RSA_SCHEME, SUPPORTED, NamedSigner, describe_key_type, tuf_key

log = logging.getLogger(__name__)

DEFAULT_RSA_BITS = 3072  # what Bottlerocket's tuftool creates


def read_pem(path: str | Path, if_missing: str = "") -> bytes:
    """The bytes of a key file; a missing file is named with `if_missing` as the remedy."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        hint = f"; {if_missing}" if if_missing else ""
        raise SigningKeyError(f"key {path} not found{hint}") from None
    except OSError as e:
        raise SigningKeyError(f"cannot read key {path}: {e.strerror}") from None


def is_public_only(pem: bytes) -> bool:
    return b"PRIVATE KEY" not in pem and b"PUBLIC KEY" in pem


def _checked_key(public: PublicKeyTypes, label: str) -> SSlibKey:
    key = tuf_key(public)
    if key is None:
        raise SigningKeyError(f"{label}: unsupported key type {describe_key_type(public)}; "
                              f"{SUPPORTED}")
    return key


def signer_from_pem(pem: bytes, label: str) -> CryptoSigner:
    """A signer for an unencrypted PEM private key (RSA, ECDSA P-256 or Ed25519)."""
    try:
        private = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        # The library's message never contains key bytes, but keep ours generic anyway.
        reason = ("it is encrypted" if "encrypted" in str(e).lower()
                  else "it is not a PEM private key")
        raise SigningKeyError(f"cannot load signing key {label}: {reason}") from None
    key = _checked_key(private.public_key(), f"signing key {label}")
    return CryptoSigner(private, key)


def public_key_from_pem(pem: bytes, label: str) -> SSlibKey:
    """The TUF key for a PEM public or private key (the same keyid either way)."""
    if b"PRIVATE KEY" in pem:
        return signer_from_pem(pem, label).public_key
    try:
        public = load_pem_public_key(pem)
    except ValueError:
        raise SigningKeyError(f"{label} is neither a PEM public key nor a PEM private "
                              "key") from None
    return _checked_key(public, label)


def load_file_signer(path: str | Path, if_missing: str = "") -> NamedSigner:
    """A signer for a PEM private key file; a public key file is refused by name."""
    pem = read_pem(path, if_missing)
    if is_public_only(pem):
        raise SigningKeyError(f"{path} is a public key; signing needs the private key")
    label = f"file:{path}"
    return NamedSigner(signer_from_pem(pem, label), label)


def file_public_key(path: str | Path) -> SSlibKey:
    return public_key_from_pem(read_pem(path), f"file:{path}")


def generate_key_file(path: str | Path) -> NamedSigner:
    """Create an RSA-3072 key at `path`, mode 0600 from the first byte written."""
    path = Path(path)
    signer = CryptoSigner.generate_rsa(scheme=RSA_SCHEME, size=DEFAULT_RSA_BITS)
    write_bytes_atomic(path, signer.private_bytes, mode=0o600)
    os.chmod(path, 0o600)
    log.info("created signing key %s (mode 0600)", path)
    return NamedSigner(signer, f"file:{path}")
