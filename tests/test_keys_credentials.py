"""KMS and SSM signing keys use the default credential chain and its region, as Bottlerocket's
pubsys does (issue 10 item 11): `aws.profile` and `aws.role` are for publishing, and must not
stop (or redirect) signing. A KMS key's region comes from its table (`available_keys`)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devtools import tufcheck
from pubsys.config import AwsConfig, KeySource, parse_infra_config
from pubsys.errors import SigningKeyError
from pubsys.keys import KeyLoader
from tests.kms_fix import create_kms_key, ec_pem, mocked_aws, put_pem, server_clients
from tests.repo_helpers import RepoBuild

OTHER_ACCOUNT_ROLE = "arn:aws:iam::222222222222:role/publisher"
PAYLOAD = b"canonical bytes"


def verifies(clients, key_id: str, region: str, loader: KeyLoader, source: KeySource) -> None:
    signature = bytes.fromhex(loader.signer(source).signer.sign(PAYLOAD).signature)
    der = clients.client("kms", region).get_public_key(KeyId=key_id)["PublicKey"]
    public = serialization.load_der_public_key(der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, PAYLOAD, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("aws", [
    AwsConfig(regions=("us-west-2",), profile="no-such-profile"),
    AwsConfig(regions=("us-west-2",), role=OTHER_ACCOUNT_ROLE),  # moto: another account
    AwsConfig(regions=("us-west-2",), region_roles={"us-west-2": OTHER_ACCOUNT_ROLE}),
])
def test_kms_key_ignores_profile_and_roles(aws):
    with mocked_aws() as clients:
        key_id = create_kms_key(clients, "ECC_NIST_P256")
        verifies(clients, key_id, "us-west-2", KeyLoader(aws), KeySource("kms", key_id))


def test_ssm_key_ignores_profile_and_roles():
    with mocked_aws() as clients:
        put_pem(clients, "/keys/signing", ec_pem())
        aws = AwsConfig(regions=("us-west-2",), profile="no-such-profile",
                        role=OTHER_ACCOUNT_ROLE)
        named = KeyLoader(aws).signer(KeySource("ssm", "/keys/signing"))
        assert named.label == "ssm:/keys/signing"


def test_kms_region_from_available_keys(tmp_path):
    with mocked_aws() as clients:
        key_id = create_kms_key(clients, "ECC_NIST_P256", region="eu-west-1")
        infra = parse_infra_config({
            "repo": {"default": {"signing_keys": {"kms": {
                "key_id": key_id, "available_keys": {key_id: "eu-west-1"}}}}},
            "aws": {"regions": ["us-west-2"], "profile": "no-such-profile"}},
            tmp_path / "Infra.toml")
        (source,) = infra.repos["default"].signing_keys
        assert source.region == "eu-west-1"
        verifies(clients, key_id, "eu-west-1", KeyLoader(infra.aws), source)


def test_key_without_region_uses_the_chains_region_then_aws_regions(monkeypatch):
    """Like the Rust tool: the default chain's region (AWS_REGION, AWS_DEFAULT_REGION, the
    profile's); where it has none, the first of aws.regions (where the Rust tool fails)."""
    aws = AwsConfig(regions=("us-west-2",))
    with mocked_aws() as clients:
        east = create_kms_key(clients, "ECC_NIST_P256", region="us-east-1")
        west = create_kms_key(clients, "ECC_NIST_P256", region="us-west-2")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        verifies(clients, east, "us-east-1", KeyLoader(aws), KeySource("kms", east))
        with pytest.raises(SigningKeyError, match="us-east-1"):
            KeyLoader(aws).signer(KeySource("kms", west))
        monkeypatch.delenv("AWS_DEFAULT_REGION")
        monkeypatch.delenv("AWS_REGION", raising=False)
        verifies(clients, west, "us-west-2", KeyLoader(aws), KeySource("kms", west))


def test_load_errors_say_which_credentials_are_used():
    with mocked_aws(), pytest.raises(SigningKeyError,
                                      match="default credentials.*not aws.profile"):
        KeyLoader(AwsConfig(regions=("us-west-2",))).signer(KeySource("kms", "alias/none"))


def test_cli_signs_with_kms_despite_a_missing_profile_and_a_foreign_role(tmp_path, run_pubsys,
                                                                        moto_server):
    """setup and repo through the moto server: Infra.toml names a profile that does not exist
    and a role in another account, and the KMS key (in the caller's account, in the region
    available_keys gives) still signs; python-tuf's client accepts the repo."""
    clients = server_clients(moto_server.url)
    key_id = create_kms_key(clients, "ECC_NIST_P256", region="us-east-2")
    env = moto_server.env()
    env.pop("AWS_ENDPOINT_URL")  # only Infra.toml's endpoint_url leads to moto
    ws = RepoBuild(tmp_path, run_pubsys, env=env)
    (tmp_path / "Infra.toml").write_text(f"""
[repo.default.signing_keys.kms]
key_id = "{key_id}"
available_keys = {{ "{key_id}" = "us-east-2" }}

[aws]
regions = ["us-west-2"]
profile = "no-such-profile"
role = "{OTHER_ACCOUNT_ROLE}"
endpoint_url = "{moto_server.url}"
""")
    r = ws.setup()
    assert r.returncode == 0, r
    images = ws.images("1.0.0")
    r = ws.repo("1.0.0", tmp_path / "out", images=images)
    assert r.returncode == 0, r
    with tufcheck.serve_outdirs(tmp_path / "out") as url:
        got = tufcheck.fetch_all(url, ws.variant, ws.arch, ws.root_json.read_bytes())
    assert got.targets[images["boot"].name] == images["boot"].read_bytes()
    root = json.loads(ws.root_json.read_bytes())["signed"]
    public = clients.client("kms", "us-east-2").get_public_key(KeyId=key_id)["PublicKey"]
    pem = serialization.load_der_public_key(public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert [k["keyval"]["public"].strip() for k in root["keys"].values()] == [
        pem.decode().strip()]
