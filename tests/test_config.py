"""Infra.toml / Infra.lock loading."""

from pathlib import Path

import pytest

from pubsys.config import KeySource, load_infra_config
from pubsys.errors import ConfigError

FULL = """
[repo.default]
root_role_url = "https://example.com/root.json"
root_role_sha512 = "%s"
signing_keys = [{ kms = { key_id = "alias/a", region = "us-east-1" } }, { ssm = { parameter = "/k" } }]
root_keys = { file = { path = "keys/root.pem" } }
root_key_threshold = 1
pub_key_threshold = 2
metadata_base_url = "https://updates.example.com/"
targets_url = "https://updates.example.com/targets/"
file_hosting_config_name = "main"

[aws]
regions = ["us-west-2", "us-east-1"]
profile = "release"
role = "arn:aws:iam::111111111111:role/publish"
ssm_prefix = "/a/b"
endpoint_url = "http://127.0.0.1:5000"

[aws.region.us-east-1]
role = "arn:aws:iam::222222222222:role/publish"

[aws.s3.main]
bucket_name = "my-bucket"
region = "us-west-2"
s3_prefix = "/repo/"
""" % ("ab" * 64)


def write(tmp_path: Path, text: str, name: str = "Infra.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_full_config_is_typed(tmp_path):
    cfg = load_infra_config(write(tmp_path, FULL))
    repo = cfg.repo("default")
    assert repo.signing_keys == (KeySource("kms", "alias/a", "us-east-1"),
                                 KeySource("ssm", "/k"))
    assert repo.root_keys == (KeySource("file", str(tmp_path / "keys/root.pem")),)
    assert repo.pub_key_threshold == 2
    assert cfg.aws.regions == ("us-west-2", "us-east-1")
    assert cfg.aws.region_roles == {"us-east-1": "arn:aws:iam::222222222222:role/publish"}
    assert cfg.aws.s3["main"].s3_prefix == "repo"


def test_root_keys_default_to_signing_keys(tmp_path):
    cfg = load_infra_config(write(tmp_path, '[repo.x]\nsigning_keys = { file = { path = "/k.pem" } }\n'))
    assert cfg.repo("x").root_keys == cfg.repo("x").signing_keys


def test_missing_file_means_defaults(tmp_path):
    cfg = load_infra_config(tmp_path / "Infra.toml")
    assert cfg.source is None and cfg.repo("default").signing_keys == ()


def test_lock_file_wins(tmp_path):
    write(tmp_path, '[aws]\nregions = ["us-west-2"]\n')
    write(tmp_path, '[aws]\nregions = ["eu-west-1"]\n', "Infra.lock")
    cfg = load_infra_config(tmp_path / "Infra.toml")
    assert cfg.aws.regions == ("eu-west-1",) and cfg.source.name == "Infra.lock"


@pytest.mark.parametrize("text,message", [
    ("[repo.default]\nsigning_key = {}\n", "unknown key 'repo.default.signing_key'"),
    ("[aws]\nregion = 'us-west-2'\n", "'aws.region' must be a table"),
    ("[aws]\nregions = 'us-west-2'\n", "'aws.regions' must be an array"),
    ("[aws]\nendpoint = 'x'\n", "unknown key 'aws.endpoint'"),
    ("[repo.default]\npub_key_threshold = '2'\n", "'repo.default.pub_key_threshold' must be an integer"),
    ("[repo.default]\npub_key_threshold = 0\n", "at least 1"),
    ("[repo.default]\nsigning_keys = { gpg = { path = 'x' } }\n", "exactly one of"),
    ("[repo.default]\nsigning_keys = { kms = { keyid = 'x' } }\n", "signing_keys.kms.keyid"),
    ("[repo.default]\nroot_role_sha512 = 'abc'\n", "128 hex digits"),
    ("[aws.s3.x]\nregion = 'us-west-2'\n", "'aws.s3.x.bucket_name' is required"),
    ("rgions = []\n", "unknown key 'rgions'"),
    ("[aws]\nregions = [\n", "invalid TOML"),
])
def test_bad_config_names_file_and_key(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_infra_config(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_unknown_repo_name_lists_configured_ones(tmp_path):
    cfg = load_infra_config(write(tmp_path, "[repo.main]\n[repo.beta]\n"))
    with pytest.raises(ConfigError, match="configured repos: beta, main"):
        cfg.repo("default")


def test_shipped_infra_toml_loads():
    from tests.conftest import ROOT

    cfg = load_infra_config(ROOT / "Infra.toml")
    assert cfg.aws.endpoint_url.startswith("http://127.0.0.1:")
