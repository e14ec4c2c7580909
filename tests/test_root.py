"""`pubsys root` subcommands on one root.json, in-process (KMS through moto)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tuf.api.metadata import Metadata, Root

from pubsys import cli, keys
from pubsys.config import InfraConfig
from pubsys.errors import RepoError, SigningKeyError, UsageError
from pubsys.repo import trust
from tests.kms_fix import create_kms_key, ec_pem, mocked_aws

ROLES = ("root", "targets", "snapshot", "timestamp")


def pubsys_root(*argv, infra: InfraConfig | None = None) -> int:
    args = cli.build_parser().parse_args(["root", *map(str, argv)])
    return cli.resolve("root")(args, infra or InfraConfig())


def load(path: Path) -> Metadata[Root]:
    return Metadata[Root].from_file(str(path))


def keyfile(tmp_path: Path, name: str) -> Path:
    p = tmp_path / f"{name}.pem"
    p.write_bytes(ec_pem())
    return p


def public_pem(private: Path) -> Path:
    key = serialization.load_pem_private_key(private.read_bytes(), None)
    p = private.with_suffix(".pub")
    p.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return p


@pytest.fixture
def signed_v1(tmp_path, capsys):
    """root.json version 1: one key for every role, signed by it."""
    path, old = tmp_path / "root.json", keyfile(tmp_path, "old")
    pubsys_root("init", path)
    pubsys_root("add-key", path, old, *[a for r in ROLES for a in ("-r", r)])
    keyid = capsys.readouterr().out.strip()
    pubsys_root("sign", path, "-k", old)
    return path, old, keyid


def test_init_creates_an_unsigned_version_1_expiring_in_a_year(tmp_path):
    path = tmp_path / "root.json"
    pubsys_root("init", path)
    md = load(path)
    assert md.signed.version == 1 and md.signed.consistent_snapshot is True
    assert md.signed.keys == {} and not md.signatures
    assert {r: (v.keyids, v.threshold) for r, v in md.signed.roles.items()} == {
        r: ([], 1) for r in ROLES}
    lifetime = md.signed.expires - datetime.now(timezone.utc)
    assert timedelta(days=364) < lifetime <= timedelta(days=365)
    assert json.loads(path.read_bytes())["signed"]["spec_version"] == "1.0.0"


def test_init_refuses_to_overwrite(tmp_path):
    path = tmp_path / "root.json"
    path.write_text("precious")
    with pytest.raises(UsageError, match="already exists"):
        pubsys_root("init", path)
    assert path.read_text() == "precious"


def test_add_key_from_private_or_public_pem_gives_the_same_keyid(tmp_path, capsys):
    path, key = tmp_path / "root.json", keyfile(tmp_path, "k")
    pubsys_root("init", path)
    pubsys_root("add-key", path, key, "-r", "root")
    from_private = capsys.readouterr().out.strip()
    pubsys_root("add-key", path, public_pem(key), "-r", "targets", "-r", "root")
    from_public = capsys.readouterr().out.strip()
    assert from_private == from_public
    root = load(path).signed
    assert list(root.keys) == [from_private]
    assert root.roles["root"].keyids == [from_private]  # no duplicate
    assert root.roles["targets"].keyids == [from_private]
    assert root.roles["snapshot"].keyids == []


def test_edits_remove_signatures_that_no_longer_match(signed_v1):
    path, _, _ = signed_v1
    assert len(load(path).signatures) == 1
    pubsys_root("set-threshold", path, "targets", 1)
    assert load(path).signatures == {}


def test_remove_key_from_one_role_or_from_all(signed_v1):
    path, _, keyid = signed_v1
    pubsys_root("remove-key", path, keyid[:12], "-r", "timestamp")
    root = load(path).signed
    assert keyid in root.keys and root.roles["timestamp"].keyids == []
    pubsys_root("remove-key", path, keyid)
    root = load(path).signed
    assert root.keys == {} and all(not r.keyids for r in root.roles.values())
    with pytest.raises(UsageError, match="no key with keyid"):
        pubsys_root("remove-key", path, keyid)


def test_set_threshold_and_expire_refuse_bad_values(signed_v1):
    path, _, _ = signed_v1
    before = path.read_bytes()
    with pytest.raises(UsageError, match="at least 1"):
        pubsys_root("set-threshold", path, "root", 0)
    with pytest.raises(UsageError, match="not in the future"):
        pubsys_root("expire", path, "2020-01-01T00:00:00Z")
    with pytest.raises(UsageError, match="WHEN"):
        pubsys_root("expire", path, "next tuesday")
    with pytest.raises(SystemExit) as e:  # argparse: unknown role
        pubsys_root("set-threshold", path, "bogus", 2)
    assert e.value.code == 2
    assert path.read_bytes() == before
    pubsys_root("set-threshold", path, "snapshot", 2)
    pubsys_root("expire", path, "2040-05-06T07:08:09.5Z")
    root = load(path).signed
    assert root.roles["snapshot"].threshold == 2
    assert json.loads(path.read_bytes())["signed"]["expires"] == "2040-05-06T07:08:09Z"


def test_bump_version_keeps_the_signed_version_beside_it(signed_v1):
    path, _, _ = signed_v1
    v1 = path.read_bytes()
    pubsys_root("bump-version", path)
    assert (path.parent / "1.root.json").read_bytes() == v1
    md = load(path)
    assert md.signed.version == 2 and not md.signatures


def test_bump_version_refuses_when_nothing_signed_to_chain_from(tmp_path, capsys):
    path = tmp_path / "root.json"
    pubsys_root("init", path)
    pubsys_root("add-key", path, keyfile(tmp_path, "k"), "-r", "root")
    before = path.read_bytes()
    with pytest.raises(RepoError, match="not signed by its root threshold"):
        pubsys_root("bump-version", path)
    assert path.read_bytes() == before and not (tmp_path / "1.root.json").exists()


def test_edit_then_bump_chains_to_the_kept_signed_version(signed_v1):
    """Editing a signed root first is fine once its signed copy sits beside it."""
    path, old, _ = signed_v1
    pubsys_root("bump-version", path)  # keeps 1.root.json
    (path.parent / "1.root.json").rename(path.parent / "kept.json")
    kept = path.parent / "kept.json"
    with pytest.raises(UsageError, match="must be version 1"):
        pubsys_root("sign", path, "-k", old, "--previous", path)
    pubsys_root("sign", path, "-k", old, "--previous", kept)
    status = trust.root_signing_status(load(path), load(kept).signed)
    assert [(s.version, s.met) for s in status] == [(1, True), (2, True)]


def test_rotation_signed_by_old_and_new_keys_in_separate_runs(signed_v1, tmp_path, capsys):
    path, old, old_id = signed_v1
    new = keyfile(tmp_path, "new")
    pubsys_root("bump-version", path)
    pubsys_root("add-key", path, public_pem(new), *[a for r in ROLES for a in ("-r", r)])
    new_id = capsys.readouterr().out.strip()
    pubsys_root("remove-key", path, old_id)
    pubsys_root("sign", path, "-k", new)
    md = load(path)
    status = trust.root_signing_status(md, load(path.parent / "1.root.json").signed)
    assert [(s.version, s.signed, s.met) for s in status] == [(1, 0, False), (2, 1, True)]

    # Elsewhere, with only the two files and the old key.
    other = tmp_path / "elsewhere"
    other.mkdir()
    for name in ("root.json", "1.root.json"):
        (other / name).write_bytes((path.parent / name).read_bytes())
    pubsys_root("sign", other / "root.json", "-k", old)
    md = load(other / "root.json")
    assert set(md.signatures) == {old_id, new_id}
    v1 = load(other / "1.root.json")
    v1.verify_delegate("root", md)  # clients holding v1 accept v2
    md.verify_delegate("root", md)


def test_sign_refuses_keys_outside_both_root_roles_and_public_keys(signed_v1, tmp_path):
    path, old, _ = signed_v1
    before = path.read_bytes()
    stranger = keyfile(tmp_path, "stranger")
    with pytest.raises(SigningKeyError, match="is not a root key of version 1; nothing"):
        pubsys_root("sign", path, "-k", old, "-k", stranger)
    with pytest.raises(SigningKeyError, match="is a public key"):
        pubsys_root("sign", path, "-k", public_pem(old))
    assert path.read_bytes() == before

    pubsys_root("bump-version", path)
    (path.parent / "1.root.json").unlink()
    with pytest.raises(SigningKeyError, match="put that version at .*1.root.json"):
        pubsys_root("sign", path, "-k", stranger)


def test_key_references():
    assert keys.parse_key_ref("keys/a.pem").kind == "file"
    assert keys.parse_key_ref("file:kms:odd.pem").ref == "kms:odd.pem"
    ref = keys.parse_key_ref("kms:arn:aws:kms:eu-west-1:123456789012:key/abc")
    assert (ref.kind, ref.region) == ("kms", "eu-west-1")
    assert keys.parse_key_ref("kms:alias/root").region is None
    assert keys.parse_key_ref("aws-kms:///alias/root").ref == "alias/root"
    assert keys.parse_key_ref("aws-ssm:///keys/root").ref == "/keys/root"
    assert keys.parse_key_ref("ssm:/keys/root").kind == "ssm"
    with pytest.raises(UsageError, match="aws.profile"):
        keys.parse_key_ref("aws-kms://prod/alias/root")
    with pytest.raises(UsageError, match="nothing after"):
        keys.parse_key_ref("kms:")


def test_root_keys_held_in_kms_add_and_sign(tmp_path, capsys):
    path = tmp_path / "root.json"
    with mocked_aws() as clients:
        rsa_alias = create_kms_key(clients, "RSA_3072", alias="alias/root-rsa")
        ecc_id = create_kms_key(clients, "ECC_NIST_P256")
        pubsys_root("init", path)
        pubsys_root("add-key", path, f"kms:{rsa_alias}", "-r", "root")
        pubsys_root("add-key", path, f"kms:{ecc_id}", "-r", "root")
        pubsys_root("set-threshold", path, "root", 2)
        capsys.readouterr()
        pubsys_root("sign", path, "-k", f"kms:{rsa_alias}", "-k", f"aws-kms:///{ecc_id}")
    md = load(path)
    md.verify_delegate("root", md)  # both KMS signatures verify, threshold 2 met
    assert len(md.signatures) == 2
    rsa_sig = next(s for k, s in md.signatures.items() if md.signed.keys[k].keytype == "rsa")
    assert len(bytes.fromhex(rsa_sig.signature)) == 384


def test_help_lists_the_subcommands(run_pubsys):
    r = run_pubsys("root", "sign", "--help")
    assert r.returncode == 0, r
    assert "--previous" in r.stdout and "kms:KEY_ID" in r.stdout
    r = run_pubsys("root")
    assert r.returncode == 2 and "SUBCOMMAND" in r.stderr
