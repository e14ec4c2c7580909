"""`pubsys lock-infra`: the infra stack's outputs merged into Infra.toml become a YAML Infra.lock
that pubsys (and Bottlerocket's pubsys: serde's `!kms` tags) reads. Pure pubsys: the outputs are
written here in the shape infra/pubsys_infra/program.py exports (test_infra_e2e.py feeds the
program's own outputs through the same command).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pubsys.config import load_infra_config
from tests.conftest import ROOT

KEY = "0b1c2d3e-aaaa-bbbb-cccc-000000000001"


def _key(n: int, role: str) -> dict[str, str]:
    key_id = KEY[:-1] + str(n)
    return {"key_id": key_id, "arn": f"arn:aws:kms:us-west-2:123456789012:key/{key_id}",
            "alias": f"alias/pubsys-prod-default-{role}-{n}", "region": "us-west-2"}


OUTPUTS: dict[str, Any] = {
    "pubsys_outputs_version": 1,
    "region": "us-west-2",
    "release_role_arn": "arn:aws:iam::123456789012:role/pubsys-prod-release",
    "root_signer_role_arn": "arn:aws:iam::123456789012:role/pubsys-prod-root-signer",
    "github_oidc_provider_arn": None,
    "buckets": {"updates": {"bucket_name": "pubsys-prod-updates-1a2b3c4", "region": "us-west-2",
                            "s3_prefix": "updates",
                            "base_url": "https://d111.cloudfront.net/updates/"}},
    "repos": {"default": {
        "file_hosting_config_name": "updates", "root_key_threshold": 2, "pub_key_threshold": 1,
        "root_keys": [_key(1, "root"), _key(2, "root")],
        "publication_keys": [_key(3, "publication")],
        "metadata_base_url": "https://d111.cloudfront.net/updates/",
        "targets_url": "https://d111.cloudfront.net/updates/targets/",
    }},
}

TOML = """\
[repo.default]
file_hosting_config_name = "updates"
root_key_threshold = 2
pub_key_threshold = 1
root_role_sha512 = "placeholder until the ceremony"

[aws]
regions = ["us-west-2", "us-east-1"]
ssm_prefix = "/pubsys-prod"

[aws.s3.updates]
s3_prefix = "/updates/"

[vendor.ecr]
registry = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
"""


@pytest.fixture
def world(tmp_path: Path) -> Path:
    (tmp_path / "Infra.toml").write_text(TOML)
    return tmp_path


def lock_infra(cwd: Path, *args: str, outputs: Any = OUTPUTS, stdin: str | None = None
               ) -> subprocess.CompletedProcess[str]:
    """`pubsys lock-infra` as a subprocess; outputs go to a file unless `stdin` is given."""
    if stdin is None:
        (cwd / "stack.json").write_text(json.dumps(outputs, indent=2))
        args = ("--stack-output", "stack.json", *args)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pubsys.cli", "--infra-config-path",
                           "Infra.toml", "lock-infra", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_stack_outputs_become_a_yaml_lock_pubsys_reads(world):
    r = lock_infra(world)
    assert r.returncode == 0, r.stderr
    text = (world / "Infra.lock").read_text()
    assert text.startswith("# Written by `pubsys lock-infra`")
    assert "signing_keys: !kms\n" in text  # one key: a tagged mapping, as serde writes it
    assert "root_keys:\n    - !kms\n" in text  # several: a list of them
    cfg = load_infra_config(world / "Infra.toml")
    assert cfg.source == world / "Infra.lock"
    repo = cfg.repo("default")
    assert [(k.kind, k.ref, k.region) for k in repo.root_keys] == [
        ("kms", KEY[:-1] + "1", "us-west-2"), ("kms", KEY[:-1] + "2", "us-west-2")]
    [pub] = repo.signing_keys
    assert pub.kms is not None and dict(pub.kms.available_keys) == {pub.ref: "us-west-2"}
    assert pub.kms.key_alias == "pubsys-prod-default-publication-3"
    assert repo.metadata_base_url == "https://d111.cloudfront.net/updates/"
    assert repo.targets_url == "https://d111.cloudfront.net/updates/targets/"
    assert (repo.root_key_threshold, repo.pub_key_threshold) == (2, 1)
    assert repo.root_role_sha512 == "placeholder until the ceremony"  # copied, unchecked
    s3 = cfg.aws.s3["updates"]
    assert (s3.require_bucket_name(), s3.region, s3.s3_prefix) == (
        "pubsys-prod-updates-1a2b3c4", "us-west-2", "updates")
    assert cfg.aws.ssm_prefix == "/pubsys-prod" and cfg.vendors["ecr"].registry


def test_outputs_piped_in_and_dry_run_prints_without_writing(world):
    r = lock_infra(world, "--dry-run", stdin=json.dumps(OUTPUTS))
    assert r.returncode == 0, r.stderr
    assert not (world / "Infra.lock").exists()
    doc = yaml.load(r.stdout, Loader=_serde_loader())
    assert doc["repo"]["default"]["signing_keys"] == {"kms": {
        "key_id": KEY[:-1] + "3", "available_keys": {KEY[:-1] + "3": "us-west-2"},
        "key_alias": "pubsys-prod-default-publication-3", "regions": ["us-west-2"]}}


def _serde_loader() -> type:
    from pubsys.config_files import _lock_loader

    return _lock_loader()


def test_urls_set_in_infra_toml_win(world):
    text = TOML.replace("pub_key_threshold = 1\n", 'pub_key_threshold = 1\n'
                        'metadata_base_url = "https://updates.example.com/"\n')
    (world / "Infra.toml").write_text(text)
    assert lock_infra(world).returncode == 0
    repo = load_infra_config(world / "Infra.toml").repo("default")
    assert repo.metadata_base_url == "https://updates.example.com/"
    assert repo.targets_url == "https://d111.cloudfront.net/updates/targets/"


def test_a_rerun_replaces_the_lock(world):
    assert lock_infra(world).returncode == 0
    changed = copy.deepcopy(OUTPUTS)
    changed["repos"]["default"]["publication_keys"] = [_key(4, "publication"),
                                                       _key(5, "publication")]
    assert lock_infra(world, outputs=changed).returncode == 0
    keys = load_infra_config(world / "Infra.toml").repo("default").signing_keys
    assert [k.ref[-1] for k in keys] == ["4", "5"]


def _broken(path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(OUTPUTS)
    *parents, last = path.split(".")
    target = out
    for p in parents:
        target = target[p]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return out


@pytest.mark.parametrize("outputs,message", [
    ({"foo": "bar"}, "not the outputs of pubsys's infra program"),
    ([1], "stack output '' must be an object"),
    (_broken("repos.default.publication_keys", []),
     "stack output 'repos.default.publication_keys' must be a non-empty list"),
    (_broken("repos.default.root_keys", [{"key_id": "k"}]),
     "'repos.default.root_keys[0].arn' must be a non-empty string"),
    (_broken("release_role_arn", "[secret]"), "'release_role_arn' is a secret; run 'pulumi "
                                              "stack output --json --show-secrets'"),
    (_broken("repos.other", OUTPUTS["repos"]["default"]), "there is no [repo.other]"),
    (_broken("buckets.other", OUTPUTS["buckets"]["updates"]), "there is no [aws.s3.other]"),
    (_broken("repos.default.root_keys", [_key(1, "root")]),
     "the stack has 1 root_keys for repo 'default', fewer than its threshold 2"),
    (_broken("repos.default.file_hosting_config_name", "elsewhere"),
     "the stack publishes it to 'elsewhere'"),
])
def test_outputs_that_do_not_fit_are_refused_and_nothing_is_written(world, outputs, message):
    r = lock_infra(world, outputs=outputs)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert not (world / "Infra.lock").exists()


@pytest.mark.parametrize("toml_change,message", [
    (('s3_prefix = "/updates/"', 's3_prefix = "/updates/"\nbucket_name = "other"'),
     "'aws.s3.updates.bucket_name' is other but the stack's bucket is "
     "pubsys-prod-updates-1a2b3c4"),
    (("pub_key_threshold = 1", 'pub_key_threshold = 1\n'
      'signing_keys = { kms = { key_id = "existing" } }'),
     "'repo.default.signing_keys' names kms:existing"),
])
def test_infra_toml_that_disagrees_with_the_stack_is_refused(world, toml_change, message):
    (world / "Infra.toml").write_text(TOML.replace(*toml_change))
    r = lock_infra(world)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (world / "Infra.lock").exists()


def test_key_placeholders_in_infra_toml_are_filled(world):
    (world / "Infra.toml").write_text(TOML.replace(
        "pub_key_threshold = 1", "pub_key_threshold = 1\nsigning_keys = { kms = { key_alias = "
        "'publication', regions = ['us-west-2'] } }"))
    assert lock_infra(world).returncode == 0, lock_infra(world).stderr
    [key] = load_infra_config(world / "Infra.toml").repo("default").signing_keys
    assert key.ref == KEY[:-1] + "3"


@pytest.mark.parametrize("stack_json,message", [
    ("{", "invalid JSON (line 1)"),
    ("", "invalid JSON"),
])
def test_unreadable_stack_output_is_bad_input(world, stack_json, message):
    r = lock_infra(world, stdin=stack_json)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_missing_infra_toml_is_bad_input(tmp_path):
    r = lock_infra(tmp_path)
    assert r.returncode == 2 and "Infra.toml: not found" in r.stderr, r.stderr


def test_other_keys_of_infra_toml_are_written_as_serde_enums(world):
    (world / "Infra.toml").write_text(TOML + '\n[repo.dev]\nsigning_keys = { file = { path = '
                                      '"keys/dev.pem" } }\n')
    r = lock_infra(world)
    assert r.returncode == 0, r.stderr
    assert "signing_keys: !file\n      path: keys/dev.pem" in (world / "Infra.lock").read_text()
    assert "[repo.dev] is not in the stack" in r.stderr
    dev = load_infra_config(world / "Infra.toml").repo("dev")
    assert dev.signing_keys[0].ref == str(world / "keys" / "dev.pem")
