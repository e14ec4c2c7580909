"""`pubsys publish-repo`: what it uploads, in which order, and what it refuses (mock_aws).

The end-to-end tests (moto server, python-tuf client over HTTP, interrupted uploads) are in
test_publish_repo_e2e.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from tuf.api.metadata import Root

from pubsys import cli
from pubsys.aws import clients as clients_mod
from pubsys.errors import RepoError
from pubsys.repo import publish, publish_s3
from pubsys.repo.base import RepoBase
from pubsys.repo.publish_plan import (
    Bucket,
    BuiltRepo,
    MetadataFile,
    RemoteState,
    TargetUpload,
    plan_publish,
    rotated_roles,
)
from tests.lifecycle_helpers import ARCH, VARIANT, build, ws_fixture  # noqa: F401
from tests.repo_helpers import write_image

BUCKET, REGION, PREFIX = "pubsys-test-repo", "us-west-2", "updates"


# --- pure: the plan ----------------------------------------------------------------------


def _ts(version: int, spec_version: str = "1.0.0") -> bytes:
    from tuf.api.metadata import Metadata, Timestamp

    return Metadata(Timestamp(version=version, spec_version=spec_version)).to_bytes()


def _built(**changes) -> BuiltRepo:
    roots = {1: Root(version=1)}
    base = BuiltRepo(
        metadata_dir=Path("/out/v/a"),
        metadata=(MetadataFile("1.root.json", b"root1"), MetadataFile("7.targets.json", b"t7"),
                  MetadataFile("7.snapshot.json", b"s7"),
                  MetadataFile("timestamp.json", _ts(7))),
        listed={"aa.boot.img": 10, "bb.root.img": 20, "cc.old.img": 30},
        local_targets={"aa.boot.img": TargetUpload("aa.boot.img", Path("/out/t/aa"), 10, "aa"),
                       "bb.root.img": TargetUpload("bb.root.img", Path("/out/t/bb"), 20, "bb")},
        roots=roots, timestamp_version=7)
    return dataclasses.replace(base, **changes)


B = Bucket(BUCKET, REGION, PREFIX)


def test_plan_skips_targets_of_the_same_size_and_uploads_the_rest_timestamp_last():
    remote = RemoteState(targets={"aa.boot.img": 10, "bb.root.img": 19, "cc.old.img": 30},
                         metadata={})
    plan = plan_publish(_built(), remote, B)
    assert [t.file_name for t in plan.targets] == ["bb.root.img"]  # size differs: re-upload
    assert plan.skipped_targets == ("aa.boot.img", "cc.old.img")
    assert [f.name for f in plan.metadata] == ["1.root.json", "7.targets.json",
                                               "7.snapshot.json", "timestamp.json"]


def test_plan_refuses_a_listed_target_that_is_nowhere():
    with pytest.raises(RepoError, match="cc.old.img"):
        plan_publish(_built(), RemoteState(targets={}, metadata={}), B)


def test_plan_skips_identical_metadata_and_refuses_changed_versions():
    remote = RemoteState(targets={"cc.old.img": 30}, metadata={"1.root.json": 5},
                         existing={"1.root.json": b"root1"})
    plan = plan_publish(_built(), remote, B)
    assert plan.skipped_metadata == ("1.root.json",)
    assert plan.metadata[-1].name == "timestamp.json"
    changed = dataclasses.replace(remote, existing={"1.root.json": b"other root"})
    with pytest.raises(RepoError, match="1.root.json already exists with different content"):
        plan_publish(_built(), changed, B)


@pytest.mark.parametrize("remote_version", [7, 8])
def test_plan_refuses_to_roll_the_timestamp_back(remote_version):
    remote = RemoteState(targets={"cc.old.img": 30}, metadata={"timestamp.json": 1},
                         existing={"timestamp.json": _ts(remote_version, "1.0.31")})
    with pytest.raises(RepoError, match="roll clients back"):
        plan_publish(_built(base=RepoBase.of_timestamp(_ts(remote_version, "1.0.31"))),
                     remote, B)


def test_plan_replaces_an_older_timestamp_and_nothing_when_identical():
    built = _built(base=RepoBase.of_timestamp(_ts(6)))
    older = RemoteState(targets={"cc.old.img": 30}, metadata={"timestamp.json": 1},
                        existing={"timestamp.json": _ts(6)})
    assert plan_publish(built, older, B).metadata[-1].name == "timestamp.json"
    everything = RemoteState(
        targets={k: v for k, v in built.listed.items()},
        metadata={f.name: len(f.data) for f in built.metadata},
        existing={f.name: f.data for f in built.metadata})
    assert plan_publish(built, everything, B).empty


def test_plan_refuses_when_the_bucket_has_a_newer_root():
    remote = RemoteState(targets={"cc.old.img": 30}, metadata={"2.root.json": 9})
    with pytest.raises(RepoError, match="root version 2"):
        plan_publish(_built(), remote, B)


def test_key_rotation_in_a_new_root_is_warned_about():
    from securesystemslib.signer import CryptoSigner

    old_key, new_key = (CryptoSigner.generate_ed25519().public_key for _ in range(2))
    r1, r2 = Root(version=1), Root(version=2)
    for r, k in ((r1, old_key), (r2, new_key)):
        r.add_key(k, "timestamp")
    assert rotated_roles(r1, r1) == []
    assert rotated_roles(r1, r2) == ["timestamp"]
    built = _built(roots={1: r1, 2: r2}, metadata=(MetadataFile("2.root.json", b"r2"),
                                                   *_built().metadata))
    remote = RemoteState(targets={"cc.old.img": 30}, metadata={"1.root.json": 5},
                         existing={"1.root.json": b"root1"})
    (warning,) = plan_publish(built, remote, B).warnings
    assert "timestamp keys" in warning


# --- the command against mock_aws ---------------------------------------------------------


def write_publish_infra(ws, *, hosting: str | None = "main", s3_table: str = "main",
                        prefix: str = PREFIX, extra_aws: str = "") -> Path:
    path = ws.tmp / "Infra-publish.toml"
    lines = ["[repo.default]"]
    if hosting:
        lines.append(f'file_hosting_config_name = "{hosting}"')
    lines += ["[aws]", extra_aws, f"[aws.s3.{s3_table}]", f'bucket_name = "{BUCKET}"',
              f'region = "{REGION}"', f's3_prefix = "/{prefix}/"']
    path.write_text("\n".join(lines) + "\n")
    return path


def publish_in_process(infra: Path, outdir: Path, *extra: str) -> int:
    return cli.main(["--infra-config-path", str(infra), "publish-repo", "--variant", VARIANT,
                     "--arch", ARCH, "--outdir", str(outdir), *extra])


@pytest.fixture
def s3_calls(monkeypatch):
    """Every S3 write pubsys makes, in order: (operation, key, params)."""
    calls = []
    real = clients_mod.AwsClients.client

    def client(self, service, region=None, **kw):
        c = real(self, service, region, **kw)
        if service == "s3" and not getattr(c, "_recorded", False):
            for op in ("PutObject", "CreateMultipartUpload", "UploadPart",
                       "CompleteMultipartUpload", "PutObjectAcl"):
                c.meta.events.register(
                    f"provide-client-params.s3.{op}",
                    lambda params, _op=op, **_: calls.append((_op, params["Key"], dict(params))))
            c._recorded = True
        return c

    monkeypatch.setattr(clients_mod.AwsClients, "client", client)
    return calls


@pytest.fixture
def bucket():
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield s3


def _keys(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_uploads_targets_then_roots_targets_snapshot_and_timestamp_last(ws, bucket, s3_calls):
    out = build(ws, "1.0.0", ws.tmp / "out")
    infra = write_publish_infra(ws)
    assert publish_in_process(infra, out) == 0
    puts = [key for op, key, _ in s3_calls if op == "PutObject"]
    meta = f"{PREFIX}/{VARIANT}/{ARCH}/"
    n_targets = len(list((out / "targets").iterdir()))
    assert all(k.startswith(f"{PREFIX}/targets/") for k in puts[:n_targets])
    assert [k[len(meta):].split(".", 1)[1] for k in puts[n_targets:]] == [
        "root.json", "targets.json", "snapshot.json", "json"]
    assert puts[-1] == meta + "timestamp.json"
    assert not any("ACL" in params for _, _, params in s3_calls)
    assert not any(op == "PutObjectAcl" for op, _, _ in s3_calls)
    local = sorted([f"{PREFIX}/targets/{p.name}" for p in (out / "targets").iterdir()]
                   + [meta + p.name for p in (out / VARIANT / ARCH).iterdir()])
    assert _keys(bucket) == local
    for p in (out / VARIANT / ARCH).iterdir():
        assert bucket.get_object(Bucket=BUCKET, Key=meta + p.name)["Body"].read() == \
            p.read_bytes()


def test_second_run_uploads_nothing_and_reads_no_target(ws, bucket, s3_calls, capsys,
                                                        monkeypatch):
    out = build(ws, "1.0.0", ws.tmp / "out")
    infra = write_publish_infra(ws)
    assert publish_in_process(infra, out) == 0
    s3_calls.clear()
    hashed = []
    monkeypatch.setattr(publish, "_sha256", lambda path: hashed.append(path))
    assert publish_in_process(infra, out) == 0
    assert s3_calls == [] and hashed == []
    assert "nothing to upload" in capsys.readouterr().err


def test_dry_run_lists_the_uploads_in_order_and_uploads_nothing(ws, bucket, s3_calls, capsys):
    out = build(ws, "1.0.0", ws.tmp / "out")
    infra = write_publish_infra(ws)
    capsys.readouterr()
    assert publish_in_process(infra, out, "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    assert s3_calls == [] and _keys(bucket) == []
    uris = [line.split("\t")[0] for line in lines]
    assert len(uris) == 4 + 4  # boot, root, hash, manifest.json; root, targets, snapshot, ts
    assert all(u.startswith(f"s3://{BUCKET}/{PREFIX}/targets/") for u in uris[:4])
    assert uris[-1] == f"s3://{BUCKET}/{PREFIX}/{VARIANT}/{ARCH}/timestamp.json"
    sizes = {line.split("\t")[0].rsplit("/", 1)[1]: int(line.split("\t")[1]) for line in lines}
    for p in (out / "targets").iterdir():
        assert sizes[p.name] == p.stat().st_size


def test_large_target_goes_up_in_parts_and_arrives_intact(ws, bucket, s3_calls, monkeypatch):
    monkeypatch.setattr(publish_s3, "PART_SIZE", 5 << 20)  # S3's smallest part
    images = ws.images("1.0.0", size=4096)
    images["root"] = write_image(images["root"], (5 << 20) + 12345, seed=7)
    out = build(ws, "1.0.0", ws.tmp / "out", images=images)
    assert publish_in_process(write_publish_infra(ws), out) == 0
    (local,) = (out / "targets").glob("*-root.img")
    key = f"{PREFIX}/targets/{local.name}"
    assert [op for op, k, _ in s3_calls if k == key].count("UploadPart") == 2
    assert bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read() == local.read_bytes()


def test_corrupt_local_target_is_refused_before_any_upload(ws, bucket, s3_calls, capsys):
    out = build(ws, "1.0.0", ws.tmp / "out")
    (path,) = (out / "targets").glob("*-boot.img")
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    assert publish_in_process(write_publish_infra(ws), out) == 1
    err = capsys.readouterr().err
    assert path.name in err and "sha256" in err
    assert s3_calls == [] and _keys(bucket) == []


def test_truncated_local_target_is_refused_before_any_upload(ws, bucket, s3_calls, capsys):
    out = build(ws, "1.0.0", ws.tmp / "out")
    (path,) = (out / "targets").glob("*-hash.img")
    path.write_bytes(path.read_bytes()[:-10])
    assert publish_in_process(write_publish_infra(ws), out) == 1
    err = capsys.readouterr().err
    assert path.name in err and "the metadata lists" in err
    assert s3_calls == [] and _keys(bucket) == []


def test_missing_hosting_config_is_bad_input_naming_the_key(ws, bucket, capsys):
    out = build(ws, "1.0.0", ws.tmp / "out")
    assert publish_in_process(write_publish_infra(ws, hosting=None), out) == 2
    assert "file_hosting_config_name" in capsys.readouterr().err
    assert publish_in_process(write_publish_infra(ws, hosting="nope"), out) == 2
    err = capsys.readouterr().err
    assert "[aws.s3.nope]" in err and "main" in err


def test_missing_bucket_is_an_error_naming_it(ws, capsys):
    out = build(ws, "1.0.0", ws.tmp / "out")
    with mock_aws():
        assert publish_in_process(write_publish_infra(ws), out) == 1
    err = capsys.readouterr().err
    assert f"s3://{BUCKET}/" in err and "does not exist" in err


def test_unbuilt_outdir_is_an_error(ws, bucket, capsys):
    assert publish_in_process(write_publish_infra(ws), ws.tmp / "nothing") == 1
    assert "timestamp.json not found" in capsys.readouterr().err


# --- pure: the base the build extended (no published release is lost) ---------------------


def test_plan_refuses_a_bucket_that_no_longer_holds_the_build_base():
    built = _built(base=RepoBase.of_timestamp(_ts(5)))
    moved_on = RemoteState(targets={"cc.old.img": 30}, metadata={"timestamp.json": 1},
                           existing={"timestamp.json": _ts(6)})
    with pytest.raises(RepoError, match="the repo changed since the build: .* built on "
                       "timestamp.json version 5 .* is now timestamp.json version 6"):
        plan_publish(built, moved_on, B)
    gone = RemoteState(targets={"cc.old.img": 30}, metadata={})
    with pytest.raises(RepoError, match="is now no timestamp.json"):
        plan_publish(built, gone, B)
    held = dataclasses.replace(moved_on, existing={"timestamp.json": _ts(5)})
    assert plan_publish(built, held, B).metadata[-1].name == "timestamp.json"


def test_plan_refuses_a_new_repo_over_an_existing_one_unless_allowed():
    remote = RemoteState(targets={"cc.old.img": 30}, metadata={"timestamp.json": 1},
                         existing={"timestamp.json": _ts(6)})
    with pytest.raises(RepoError, match="built as a new repo"):
        plan_publish(_built(), remote, B)
    assert plan_publish(_built(), remote, B, allow_new_repo=True).metadata
    # the rollback rule still holds for a replacement
    with pytest.raises(RepoError, match="roll clients back"):
        plan_publish(_built(), dataclasses.replace(
            remote, existing={"timestamp.json": _ts(9)}), B, allow_new_repo=True)


def test_plan_refuses_an_unparseable_timestamp_unless_allowed():
    remote = RemoteState(targets={"cc.old.img": 30}, metadata={"timestamp.json": 1},
                         existing={"timestamp.json": b"\x00garbage"})
    with pytest.raises(RepoError, match="cannot be parsed"):
        plan_publish(_built(), remote, B, allow_new_repo=True)
    plan = plan_publish(_built(), remote, B, allow_new_repo=True,
                        allow_unparseable_timestamp=True)
    assert plan.metadata[-1].name == "timestamp.json"


def test_plan_messages_name_the_repo_keys():
    built = _built(base=RepoBase.of_timestamp(_ts(5)), variant=VARIANT, arch=ARCH)
    remote = RemoteState(targets={"cc.old.img": 30}, metadata={"timestamp.json": 1},
                         existing={"timestamp.json": _ts(6)})
    with pytest.raises(RepoError, match=f"s3://{BUCKET}/{PREFIX}/{VARIANT}/{ARCH}/timestamp"):
        plan_publish(built, remote, B)


# --- conditional writes (mock_aws, with moto's conditional writes made atomic) ------------


@pytest.fixture
def conditional_bucket(bucket):
    from devtools import moto_ext_s3

    moto_ext_s3.install()
    return bucket


def _meta_client(bucket_client):
    """A client like publish-repo's: writes that state no condition get If-None-Match."""
    s3 = boto3.client("s3", region_name=REGION)
    publish_s3.require_new_objects(s3)
    return s3


def test_timestamp_replaces_only_the_object_read_at_plan_time(conditional_bucket):
    s3 = _meta_client(conditional_bucket)
    key = f"{PREFIX}/{VARIANT}/{ARCH}/timestamp.json"
    etag = conditional_bucket.put_object(Bucket=BUCKET, Key=key, Body=b"base")["ETag"]
    # another publisher, after our plan
    conditional_bucket.put_object(Bucket=BUCKET, Key=key, Body=b"another publisher's")
    ours = MetadataFile("timestamp.json", b"ours")
    with pytest.raises(RepoError, match="the repo changed since the build"):
        publish_s3.upload_metadata(s3, B, [ours], VARIANT, ARCH, etag)
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"another publisher's"
    # the same bytes already there (another run of this very build) are fine
    publish_s3.upload_metadata(s3, B, [MetadataFile("timestamp.json", b"another publisher's")],
                               VARIANT, ARCH, etag)


def test_versioned_metadata_is_created_never_replaced(conditional_bucket):
    s3 = _meta_client(conditional_bucket)
    key = f"{PREFIX}/{VARIANT}/{ARCH}/7.targets.json"
    conditional_bucket.put_object(Bucket=BUCKET, Key=key, Body=b"theirs")
    with pytest.raises(RepoError, match="7.targets.json was written by another publisher"):
        publish_s3.upload_metadata(s3, B, [MetadataFile("7.targets.json", b"ours")], VARIANT,
                                   ARCH, None)
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"theirs"
    publish_s3.upload_metadata(s3, B, [MetadataFile("7.targets.json", b"theirs")], VARIANT,
                               ARCH, None)


def test_a_target_written_meanwhile_must_hold_the_same_bytes(conditional_bucket, tmp_path):
    import hashlib

    s3 = _meta_client(conditional_bucket)
    data = b"image bytes" * 100
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "img"
    path.write_bytes(data)
    upload = TargetUpload(f"{digest}.img", path, len(data), digest)
    key = f"{PREFIX}/targets/{digest}.img"
    # the same name, other bytes
    conditional_bucket.put_object(Bucket=BUCKET, Key=key, Body=b"X" * len(data))
    with pytest.raises(RepoError, match="appeared during the upload with other content"):
        publish_s3.upload_targets(s3, B, [upload])
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"X" * len(data)
    conditional_bucket.put_object(Bucket=BUCKET, Key=key, Body=data)
    publish_s3.upload_targets(s3, B, [upload])  # identical: accepted
