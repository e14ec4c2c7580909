"""KMS and SSM signing keys, in-process against moto (KMS DIGEST signing corrected)."""

from __future__ import annotations

import hashlib
import logging

import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto import mock_aws
from securesystemslib.signer._utils import compute_default_keyid

from pubsys.config import KeySource
from pubsys.errors import SigningKeyError
from pubsys.keys import aws as cloudkeys
from pubsys.keys import load_signers
from tests.kms_fix import (
    REGION,
    create_kms_key,
    ec_pem,
    mocked_aws,
    pem_body_lines,
    put_pem,
)

PAYLOAD = b'{"signed": "canonical bytes of some metadata"}'


def _sign_digest(kms, key_id: str, algorithm: str) -> bytes:
    digest = hashlib.sha256(PAYLOAD).digest()
    return kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST",
                    SigningAlgorithm=algorithm)["Signature"]


def _verifies(kms, key_id: str, signature: bytes) -> bool:
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    try:
        public.verify(signature, PAYLOAD,
                      padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
                      hashes.SHA256())
        return True
    except Exception:
        return False


def test_fixture_corrects_moto_digest_signing():
    """Plain moto signs SHA-256(digest); with the fixture a DIGEST signature verifies."""
    from pubsys.aws.clients import AwsClients
    from pubsys.config import AwsConfig

    with mock_aws():
        kms = AwsClients(AwsConfig(regions=(REGION,))).client("kms")
        key = create_kms_key(AwsClients(AwsConfig(regions=(REGION,))), "RSA_2048")
        assert not _verifies(kms, key, _sign_digest(kms, key, "RSASSA_PSS_SHA_256"))
    with mocked_aws() as clients:
        kms = clients.client("kms")
        key = create_kms_key(clients, "RSA_2048")
        signature = _sign_digest(kms, key, "RSASSA_PSS_SHA_256")
        assert _verifies(kms, key, signature)
        assert kms.verify(KeyId=key, Message=hashlib.sha256(PAYLOAD).digest(),
                          MessageType="DIGEST", Signature=signature,
                          SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"]


@pytest.mark.parametrize("spec, scheme, keytype, sig_len", [
    ("RSA_3072", "rsassa-pss-sha256", "rsa", 384),
    ("RSA_4096", "rsassa-pss-sha256", "rsa", 512),
    ("ECC_NIST_P256", "ecdsa-sha2-nistp256", "ecdsa", None),
])
def test_kms_signer_produces_signatures_the_tuf_key_verifies(spec, scheme, keytype, sig_len):
    with mocked_aws() as clients:
        alias = create_kms_key(clients, spec, alias=f"alias/pubsys-{spec.lower()}")
        named = cloudkeys.load_cloud_signer(KeySource("kms", alias), clients)
        key = named.signer.public_key
        assert (key.keytype, key.scheme) == (keytype, scheme)
        assert key.keyid == compute_default_keyid(key.keytype, key.scheme, key.keyval)
        assert named.label == f"kms:{alias}"
        signature = named.signer.sign(PAYLOAD)
        key.verify_signature(signature, PAYLOAD)  # raises if it does not verify
        if sig_len:
            assert len(bytes.fromhex(signature.signature)) == sig_len


def test_kms_signer_sends_the_local_digest_as_real_kms_expects():
    with mocked_aws() as clients:
        key_id = create_kms_key(clients, "ECC_NIST_P256")
        named = cloudkeys.load_cloud_signer(KeySource("kms", key_id), clients)
        sent = []
        clients.client("kms").meta.events.register(
            "provide-client-params.kms.Sign", lambda params, **_: sent.append(dict(params)))
        named.signer.sign(PAYLOAD)
    (params,) = sent
    assert params["MessageType"] == "DIGEST"
    assert params["Message"] == hashlib.sha256(PAYLOAD).digest()
    assert params["SigningAlgorithm"] == "ECDSA_SHA_256"
    assert params["KeyId"] == key_id


def test_kms_key_in_its_own_region_and_by_arn():
    with mocked_aws() as clients:
        kms_east = clients.client("kms", "us-east-1")
        meta = kms_east.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")
        key_id, arn = meta["KeyMetadata"]["KeyId"], meta["KeyMetadata"]["Arn"]
        east = cloudkeys.load_cloud_signer(KeySource("kms", key_id, "us-east-1"), clients)
        by_arn = cloudkeys.load_cloud_signer(KeySource("kms", arn, "us-east-1"), clients)
        assert east.keyid == by_arn.keyid
        with pytest.raises(SigningKeyError, match=f"{key_id} in {REGION}: NotFoundException"):
            cloudkeys.load_cloud_signer(KeySource("kms", key_id), clients)


@pytest.mark.parametrize("spec, usage, message", [
    ("ECC_NIST_P384", "SIGN_VERIFY", "is ECC_NIST_P384; use an RSA key"),
    ("RSA_2048", "ENCRYPT_DECRYPT", "has KeyUsage ENCRYPT_DECRYPT"),
])
def test_kms_keys_that_cannot_sign_for_tuf_are_refused_by_name(spec, usage, message):
    with mocked_aws() as clients:
        key_id = create_kms_key(clients, spec, usage=usage)
        with pytest.raises(SigningKeyError, match=message) as e:
            cloudkeys.load_cloud_signer(KeySource("kms", key_id), clients)
        assert key_id in str(e.value)


def _rsa_signature_with_leading_zero(key: rsa.RSAPrivateKey) -> bytes:
    """PSS is randomised: sign until the big-endian signature starts with a zero byte."""
    digest = hashlib.sha256(PAYLOAD).digest()
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    for _ in range(20000):
        sig = key.sign(digest, pss, Prehashed(hashes.SHA256()))
        if sig[0] == 0:
            return sig
    raise AssertionError("no signature with a leading zero byte")


def test_short_rsa_signature_from_kms_is_left_padded_to_the_modulus():
    from pubsys.aws.clients import AwsClients
    from pubsys.config import AwsConfig

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    full = _rsa_signature_with_leading_zero(key)
    short = full.lstrip(b"\0")  # what KMS sometimes returns
    kms = AwsClients(AwsConfig(regions=(REGION,))).client("kms")
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    with Stubber(kms) as stub:
        stub.add_response("get_public_key", {
            "KeyId": "k", "PublicKey": der, "KeyUsage": "SIGN_VERIFY", "KeySpec": "RSA_2048",
            "SigningAlgorithms": ["RSASSA_PSS_SHA_256"]}, {"KeyId": "k"})
        stub.add_response("sign", {"KeyId": "k", "Signature": short,
                                   "SigningAlgorithm": "RSASSA_PSS_SHA_256"})
        public, length = cloudkeys.kms_public_key(kms.get_public_key(KeyId="k"), "kms:k")
        signer = cloudkeys.KmsSigner(kms, "k", public, "kms:k", length)
        signature = signer.sign(PAYLOAD)
    assert bytes.fromhex(signature.signature) == full and len(full) == 256
    public.verify_signature(signature, PAYLOAD)


def test_pad_rsa_signature_refuses_longer_than_modulus():
    assert cloudkeys.pad_rsa_signature(b"\x01\x02", 4, "kms:k") == b"\0\0\x01\x02"
    with pytest.raises(SigningKeyError, match="5-byte signature for a 4-byte modulus"):
        cloudkeys.pad_rsa_signature(b"\x01" * 5, 4, "kms:k")


# --- SSM ---------------------------------------------------------------------------------


def test_ssm_secure_string_pem_signs():
    pem = ec_pem()
    with mocked_aws() as clients:
        put_pem(clients, "/pubsys/keys/signing", pem)
        (named,) = load_signers([KeySource("ssm", "/pubsys/keys/signing")], clients)
    assert named.label == "ssm:/pubsys/keys/signing"
    assert named.signer.public_key.scheme == "ecdsa-sha2-nistp256"
    named.signer.public_key.verify_signature(named.signer.sign(PAYLOAD), PAYLOAD)


def test_ssm_plain_string_is_refused_without_echoing_it():
    pem = ec_pem()
    with mocked_aws() as clients:
        put_pem(clients, "/pubsys/keys/plain", pem, kind="String")
        with pytest.raises(SigningKeyError, match="is a String, not a SecureString") as e:
            cloudkeys.load_cloud_signer(KeySource("ssm", "/pubsys/keys/plain"), clients)
    assert not any(line in str(e.value) for line in pem_body_lines(pem))


def test_ssm_missing_parameter_is_named_with_its_region():
    with mocked_aws() as clients, pytest.raises(SigningKeyError,
                       match=f"SSM parameter /nope not found in {REGION}"):
        cloudkeys.load_cloud_signer(KeySource("ssm", "/nope"), clients)


def test_ssm_value_that_is_not_a_key_is_refused_without_echoing_it():
    with mocked_aws() as clients:
        put_pem(clients, "/pubsys/keys/junk", b"hunter2-not-a-key")
        with pytest.raises(SigningKeyError, match="not a PEM private key") as e:
            cloudkeys.load_cloud_signer(KeySource("ssm", "/pubsys/keys/junk"), clients)
    assert "hunter2" not in str(e.value)


def test_ssm_secret_never_reaches_debug_logs(caplog):
    """botocore logs response bodies at DEBUG; the SecureString's must not be among them."""
    pem = ec_pem()
    with mocked_aws() as clients:
        put_pem(clients, "/pubsys/keys/logged", pem)
        with caplog.at_level(logging.DEBUG):
            logging.getLogger("botocore").setLevel(logging.DEBUG)
            try:
                cloudkeys.load_cloud_signer(KeySource("ssm", "/pubsys/keys/logged"), clients)
                # the same client keeps logging bodies of other calls
                clients.client("ssm").describe_parameters()
            finally:
                logging.getLogger("botocore").setLevel(logging.NOTSET)
    text = caplog.text
    assert "Response body" in text  # botocore did log bodies, just not the secret one
    assert not any(line in text for line in pem_body_lines(pem))
