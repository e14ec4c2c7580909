"""moto 5.2 KMS: sign and verify pre-computed digests the way AWS KMS does.

What moto 5.2.5 does (moto/kms/responses.py and utils.py): `KmsResponse.sign`/`verify` read
`MessageType` but never pass it on, and the private key classes always hash `Message`
themselves. With `MessageType=DIGEST` (what securesystemslib's KMS signer and pubsys send:
the SHA-256 of the payload, computed locally) moto signs SHA-256(digest), a signature no
client can verify. moto also signs RSASSA-PSS with the maximum salt length, where KMS uses a
salt as long as the digest (ring, and so Bottlerocket's `tough`, accepts only that).

The fix, in the test fixture rather than in pubsys: the two response handlers record the
request's `MessageType` for the duration of the call, and the RSA/ECDSA key classes sign and
verify the message as a pre-hashed digest when it is DIGEST (refusing a digest of the wrong
length, as KMS does), with a digest-length PSS salt for both message types.

`install()` applies it for good (the moto server process, via devtools/moto_server.py);
`corrected()` applies it for the length of a `with` block (in-process `mock_aws` tests).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any

_MESSAGE_TYPE: contextvars.ContextVar[str] = contextvars.ContextVar("kms_message_type",
                                                                    default="RAW")
_originals: dict[tuple[type, str], Callable] = {}


def _hash_for(algorithm: str):
    from cryptography.hazmat.primitives import hashes

    bits = algorithm.rsplit("_", 1)[-1]
    return {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[bits]()


def _hash_argument(message: bytes, algorithm: str):
    """The hash argument for cryptography: the algorithm, or Prehashed for a DIGEST call."""
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from moto.kms.exceptions import ValidationException

    h = _hash_for(algorithm)
    if _MESSAGE_TYPE.get() != "DIGEST":
        return h
    if len(message) != h.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    return Prehashed(h)


def _rsa_padding(algorithm: str):
    from cryptography.hazmat.primitives.asymmetric import padding

    if algorithm.startswith("RSASSA_PSS_"):
        return padding.PSS(mgf=padding.MGF1(_hash_for(algorithm)),
                           salt_length=padding.PSS.DIGEST_LENGTH)
    return padding.PKCS1v15()


def _rsa_sign(self, message: bytes, signing_algorithm: str) -> bytes:
    from moto.kms.utils import SigningAlgorithm, validate_signing_algorithm

    validate_signing_algorithm(signing_algorithm, SigningAlgorithm.rsa_signing_algorithms())
    return self.private_key.sign(message, _rsa_padding(signing_algorithm),
                                 _hash_argument(message, signing_algorithm))


def _rsa_verify(self, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from moto.kms.utils import SigningAlgorithm, validate_signing_algorithm

    validate_signing_algorithm(signing_algorithm, SigningAlgorithm.rsa_signing_algorithms())
    try:
        self.private_key.public_key().verify(signature, message,
                                             _rsa_padding(signing_algorithm),
                                             _hash_argument(message, signing_algorithm))
        return True
    except InvalidSignature:
        return False


def _ec_sign(self, message: bytes, signing_algorithm: str) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec
    from moto.kms.utils import validate_signing_algorithm

    validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
    return self.private_key.sign(message, ec.ECDSA(_hash_argument(message, signing_algorithm)))


def _ec_verify(self, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec
    from moto.kms.utils import validate_signing_algorithm

    validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
    try:
        self.private_key.public_key().verify(
            signature, message, ec.ECDSA(_hash_argument(message, signing_algorithm)))
        return True
    except InvalidSignature:
        return False


def _with_message_type(handler: Callable[[Any], str]) -> Callable[[Any], str]:
    @functools.wraps(handler)
    def wrapper(self) -> str:
        token = _MESSAGE_TYPE.set(self._get_param("MessageType") or "RAW")
        try:
            return handler(self)
        finally:
            _MESSAGE_TYPE.reset(token)

    return wrapper


def _replacements() -> dict[tuple[type, str], Callable]:
    from moto.kms import utils
    from moto.kms.responses import KmsResponse

    return {
        (KmsResponse, "sign"): _with_message_type(_original(KmsResponse, "sign")),
        (KmsResponse, "verify"): _with_message_type(_original(KmsResponse, "verify")),
        (utils.RSAPrivateKey, "sign"): _rsa_sign,
        (utils.RSAPrivateKey, "verify"): _rsa_verify,
        (utils.ECDSAPrivateKey, "sign"): _ec_sign,
        (utils.ECDSAPrivateKey, "verify"): _ec_verify,
    }


def _original(cls: type, name: str) -> Callable:
    return _originals.get((cls, name), cls.__dict__[name])


def install() -> None:
    """Correct moto's KMS Sign/Verify in this process (idempotent)."""
    if _originals:
        return
    replacements = _replacements()
    for (cls, name), func in replacements.items():
        _originals[(cls, name)] = cls.__dict__[name]
        setattr(cls, name, func)


def uninstall() -> None:
    """Put moto's own Sign/Verify back."""
    for (cls, name), func in _originals.items():
        setattr(cls, name, func)
    _originals.clear()


@contextlib.contextmanager
def corrected() -> Iterator[None]:
    """moto's KMS with the DIGEST fix for the length of the block (left as found after)."""
    already = bool(_originals)
    install()
    try:
        yield
    finally:
        if not already:
            uninstall()
