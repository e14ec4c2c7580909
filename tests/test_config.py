"""Infra.toml / Infra.lock loading."""

from pathlib import Path

import pytest

from pubsys.config import KeySource, load_infra_config
from pubsys.errors import ConfigError

FULL = """
[repo.default]
root_role_url = "https://example.com/root.json"
root_role_sha512 = "%s"
signing_keys = [{ kms = { key_id = "alias/a", region = "us-east-1" } },
                { ssm = { parameter = "/k" } }]
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
    cfg = load_infra_config(write(tmp_path,
                                  '[repo.x]\nsigning_keys = { file = { path = "/k.pem" } }\n'))
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
    ("[repo.default]\npub_key_threshold = '2'\n",
     "'repo.default.pub_key_threshold' must be an integer"),
    ("[repo.default]\npub_key_threshold = 0\n", "at least 1"),
    ("[repo.default]\nsigning_keys = { gpg = { path = 'x' } }\n", "exactly one of"),
    ("[repo.default]\nsigning_keys = { kms = { keyid = 'x' } }\n", "signing_keys.kms.keyid"),
    ("[repo.default]\nsigning_keys = { kms = { region = 'us-west-2' } }\n",
     "'repo.default.signing_keys.kms.key_id' is required"),
    ("[repo.default]\nsigning_keys = { kms = { key_id = 'k', available_keys = { k = 1 } } }\n",
     "'repo.default.signing_keys.kms.available_keys.k' must be a string"),
    ("[repo.default]\nsigning_keys = { kms = { key_id = 'k', regions = 'us-west-2' } }\n",
     "'repo.default.signing_keys.kms.regions' must be an array"),
    ("[repo.default]\nsigning_keys = { kms = { key_id = 'k', region = 'eu-west-1', "
     "available_keys = { k = 'us-west-2' } } }\n", "puts key k in us-west-2"),
    ("[vendor.ecr]\nregistry = 'x'\nregistr = 'y'\n", "unknown key 'vendor.ecr.registr'"),
    ("[vendor.ecr]\n", "'vendor.ecr.registry' is required"),
    ("[aws.s3.x]\nbucket_name = 'b'\nvpc_endpoint = 'v'\n", "unknown key 'aws.s3.x.vpc_endpoint'"),
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


# --- Bottlerocket's keys (issue 10, item 3) ---------------------------------------------------

BOTTLEROCKET = """
[vendor.bottlerocket]
registry = "public.ecr.aws/bottlerocket"

[repo.default]
file_hosting_config_name = "default"
root_role_sha512 = "placeholder"
root_keys = { kms = { key_alias = "root", regions = ["eu-west-1"] } }

[repo.default.signing_keys.kms]
key_id = "1234abcd-0000-0000-0000-000000000001"
key_alias = "publication"
regions = ["us-west-2", "us-east-1"]

[repo.default.signing_keys.kms.available_keys]
"1234abcd-0000-0000-0000-000000000001" = "us-east-1"
"1234abcd-0000-0000-0000-000000000002" = "us-west-2"

[repo.default.signing_keys.kms.key_stack_arns]
us-east-1 = "arn:aws:cloudformation:us-east-1:111111111111:stack/keys/1"

[aws.s3.default]
region = "us-west-2"
s3_prefix = "/updates"
vpc_endpoint_id = "vpce-0123"
stack_arn = "arn:aws:cloudformation:us-west-2:111111111111:stack/repo/1"
"""


def test_bottlerocket_keys_are_accepted_and_typed(tmp_path):
    from pubsys.config import KmsKeyConfig, S3Config, VendorConfig

    cfg = load_infra_config(write(tmp_path, BOTTLEROCKET))
    assert cfg.vendors == {"bottlerocket": VendorConfig("bottlerocket",
                                                         "public.ecr.aws/bottlerocket")}
    [signing] = cfg.repo("default").signing_keys
    # available_keys decides the region the key is used in (not the first of `regions`)
    assert (signing.kind, signing.ref, signing.region) == (
        "kms", "1234abcd-0000-0000-0000-000000000001", "us-east-1")
    assert signing.kms == KmsKeyConfig(
        available_keys=(("1234abcd-0000-0000-0000-000000000001", "us-east-1"),
                        ("1234abcd-0000-0000-0000-000000000002", "us-west-2")),
        key_alias="publication", regions=("us-west-2", "us-east-1"),
        key_stack_arns=(
            ("us-east-1", "arn:aws:cloudformation:us-east-1:111111111111:stack/keys/1"),))
    # a key known only by its alias is used by alias in the first of its regions
    [root] = cfg.repo("default").root_keys
    assert (root.ref, root.region) == ("alias/root", "eu-west-1")
    s3 = cfg.aws.s3["default"]
    assert s3 == S3Config(name="default", bucket_name=None, region="us-west-2",
                          s3_prefix="updates", vpc_endpoint_id="vpce-0123",
                          stack_arn="arn:aws:cloudformation:us-west-2:111111111111:stack/repo/1")


def test_kms_region_from_key_arn_when_nothing_else_says(tmp_path):
    arn = "arn:aws:kms:ap-south-1:111111111111:key/abc"
    text = f'[repo.x]\nsigning_keys = {{ kms = {{ key_id = "{arn}" }} }}\n'
    cfg = load_infra_config(write(tmp_path, text))
    assert cfg.repo("x").signing_keys[0].region == "ap-south-1"


def test_missing_bucket_name_is_an_error_only_where_the_bucket_is_needed(tmp_path):
    cfg = load_infra_config(write(tmp_path, BOTTLEROCKET))
    with pytest.raises(ConfigError) as e:
        cfg.aws.s3["default"].require_bucket_name()
    assert str(tmp_path / "Infra.toml") in str(e.value)
    assert "'aws.s3.default.bucket_name' is not set" in str(e.value)
    named = load_infra_config(write(tmp_path, "[aws.s3.x]\nbucket_name = 'b'\n"))
    assert named.aws.s3["x"].require_bucket_name() == "b"


@pytest.mark.parametrize("value,message", [
    (None, "is not set"),
    ("placeholder", "must be 128 hex digits"),
    ("ab" * 63, "must be 128 hex digits"),
])
def test_root_role_sha512_is_checked_by_the_commands_that_use_it(tmp_path, value, message):
    from pubsys.config import require_root_role_sha512

    line = f'root_role_sha512 = "{value}"\n' if value else ""
    path = write(tmp_path, "[repo.default]\n" + line)
    repo = load_infra_config(path).repo("default")  # loading never fails on it
    with pytest.raises(ConfigError) as e:
        require_root_role_sha512(repo)
    assert str(path) in str(e.value) and "'repo.default.root_role_sha512'" in str(e.value)
    assert message in str(e.value)


def test_root_role_sha512_is_returned_lower_case(tmp_path):
    from pubsys.config import require_root_role_sha512

    path = write(tmp_path, f'[repo.default]\nroot_role_sha512 = "{"AB" * 64}"\n')
    assert require_root_role_sha512(load_infra_config(path).repo("default")) == "ab" * 64


# --- Infra.lock is YAML (issue 10, item 2) ----------------------------------------------------

# What Bottlerocket's Rust tooling writes (serde_yaml 0.9): every unset option as null and the
# key kind as a tag.
RUST_LOCK = """\
repo:
  default:
    root_role_url: null
    root_role_sha512: null
    signing_keys: !kms
      key_id: 0b1c-key
      available_keys:
        0b1c-key: us-east-1
      key_alias: publication
      regions:
      - us-east-1
      key_stack_arns: {}
    root_keys: null
    metadata_base_url: https://updates.example.com/
    targets_url: https://updates.example.com/targets/
    file_hosting_config_name: default
    root_key_threshold: null
    pub_key_threshold: 1
aws:
  regions:
  - us-west-2
  role: null
  profile: null
  region: {}
  ssm_prefix: /br
  s3:
    default:
      region: us-west-2
      s3_prefix: ''
      vpc_endpoint_id: vpce-1
      stack_arn: arn:aws:cloudformation:us-west-2:111111111111:stack/s/1
      bucket_name: br-updates
vmware: null
vendor:
  ecr:
    registry: 111111111111.dkr.ecr.us-west-2.amazonaws.com
"""


def test_rust_written_yaml_lock_is_read(tmp_path):
    write(tmp_path, "[repo.default]\n")
    write(tmp_path, RUST_LOCK, "Infra.lock")
    cfg = load_infra_config(tmp_path / "Infra.toml")
    assert cfg.source == tmp_path / "Infra.lock"
    repo = cfg.repo("default")
    assert repo.signing_keys[0].ref == "0b1c-key"
    assert repo.signing_keys[0].region == "us-east-1"
    assert repo.root_keys == repo.signing_keys and repo.root_key_threshold == 1
    assert repo.metadata_base_url == "https://updates.example.com/"
    assert cfg.aws.regions == ("us-west-2",) and cfg.aws.role is None
    assert cfg.aws.s3["default"].require_bucket_name() == "br-updates"
    assert cfg.vendors["ecr"].registry.endswith(".amazonaws.com")


def test_yaml_lock_may_use_plain_mappings_and_key_arrays(tmp_path):
    write(tmp_path, """\
repo:
  default:
    signing_keys:
    - kms: {key_id: a, available_keys: {a: eu-west-1}}
    - !kms {key_id: b}
""", "Infra.lock")
    keys = load_infra_config(tmp_path / "Infra.toml").repo("default").signing_keys
    assert [(k.ref, k.region) for k in keys] == [("a", "eu-west-1"), ("b", None)]


@pytest.mark.parametrize("text,message", [
    ("repo:\n  default:\n    signing_key: null\n", "unknown key 'repo.default.signing_key'"),
    ("aws:\n  regions: [a\n", "invalid YAML"),
    ("aws:\n  regions: []\naws:\n  regions: []\n", "duplicate key 'aws' (line 3)"),
    ("repo:\n  default:\n    signing_keys: !gpg {path: x}\n", "invalid YAML"),
    ("repo:\n  default:\n    signing_keys: !kms key\n", "!kms must tag a mapping"),
    ("- a\n- b\n", "expected a mapping at the top"),
    ("aws:\n  regions: us-west-2\n", "'aws.regions' must be an array"),
])
def test_bad_yaml_lock_names_file_and_problem(tmp_path, text, message):
    lock = write(tmp_path, text, "Infra.lock")
    with pytest.raises(ConfigError) as e:
        load_infra_config(tmp_path / "Infra.toml")
    assert str(lock) in str(e.value) and message in str(e.value)


def test_empty_yaml_lock_means_no_settings(tmp_path):
    write(tmp_path, "# nothing yet\n", "Infra.lock")
    cfg = load_infra_config(tmp_path / "Infra.toml")
    assert cfg.source == tmp_path / "Infra.lock" and cfg.repos == {}


def test_load_infra_file_ignores_the_lock(tmp_path):
    from pubsys.config import load_infra_file

    toml = write(tmp_path, '[aws]\nregions = ["us-west-2"]\n')
    write(tmp_path, "aws:\n  regions: [eu-west-1]\n", "Infra.lock")
    assert load_infra_file(toml).aws.regions == ("us-west-2",)
