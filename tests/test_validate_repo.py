"""`pubsys validate-repo`: metadata verified, every target streamed and checked, bad ones named.

Also home of the small helpers the lifecycle tests share (check-repo-expirations,
refresh-repo, publish-repo import them): an Infra.toml pointing at a repo, and a genuinely
expired repo (signed in the past by the real editor, not hand-edited).
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, TargetFile

from devtools import tufcheck
from pubsys.repo.validate import (
    CORRECT,
    INCORRECT,
    TargetCheck,
    check_target_stream,
    check_targets,
)
from tests.lifecycle_helpers import (  # noqa: F401  (ws_fixture provides `ws`)
    ARCH,
    VARIANT,
    build,
    file_url,
    lifecycle,
    make_expired_copy,
    write_infra,
    ws_fixture,
)


def validate(ws, infra, *extra):
    return lifecycle(ws, "validate-repo", infra, *extra)


# --- pure: one target's stream ----------------------------------------------------------


def _info(data: bytes, name: str = "t.img") -> TargetFile:
    return TargetFile.from_data(name, data, ["sha256"])


def test_matching_stream_is_correct():
    data = b"x" * 5000
    assert check_target_stream("t.img", _info(data), [data[:1000], data[1000:]]) == \
        TargetCheck("t.img", CORRECT)


def test_one_flipped_byte_is_incorrect_with_both_hashes():
    data = bytearray(b"x" * 5000)
    info = _info(bytes(data))
    data[2500] ^= 1
    r = check_target_stream("t.img", info, [bytes(data)])
    assert r.status == INCORRECT
    assert "sha256" in r.detail and info.hashes["sha256"] in r.detail


def test_short_stream_is_incorrect():
    data = b"x" * 5000
    r = check_target_stream("t.img", _info(data), [data[:4999]])
    assert r.status == INCORRECT and "4999 bytes" in r.detail


def test_long_stream_stops_reading_after_the_listed_length():
    info = _info(b"y" * 10)
    consumed = []

    def endless():
        while True:
            consumed.append(1)
            yield b"y" * 4

    r = check_target_stream("t.img", info, endless())
    assert r.status == INCORRECT and "longer than" in r.detail
    assert len(consumed) == 3  # 12 bytes > 10: stop, never read on


def test_every_listed_hash_is_checked():
    data = b"z" * 100
    info = TargetFile.from_data("t.img", data, ["sha256", "sha512"])
    info.hashes["sha512"] = "0" * 128
    r = check_target_stream("t.img", info, [data])
    assert r.status == INCORRECT and r.detail.startswith("sha512")


def test_unknown_hash_algorithm_is_a_finding_not_a_crash():
    info = TargetFile(3, {"nonesuch-1": "ab"}, "t.img")
    assert check_target_stream("t.img", info, [b"abc"]).status == INCORRECT


def test_streaming_keeps_memory_small_for_a_large_target():
    chunk, count = 1 << 20, 64  # a 64 MiB "image", produced and dropped chunk by chunk
    import hashlib

    h = hashlib.sha256()
    for i in range(count):
        h.update(bytes([i]) * chunk)
    info = TargetFile(chunk * count, {"sha256": h.hexdigest()}, "big.img")
    tracemalloc.start()
    try:
        r = check_target_stream("big.img", info, (bytes([i]) * chunk for i in range(count)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status == CORRECT
    assert peak < 4 * chunk  # a couple of chunks in flight, never the whole 64 MiB


def test_targets_are_checked_several_at_a_time_but_bounded():
    lock, active, peak = threading.Lock(), [0], [0]

    def slow(name, info):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.03)
        with lock:
            active[0] -= 1
        return TargetCheck(name, CORRECT)

    targets = {f"t{i:02}": _info(b"a") for i in range(24)}
    results = check_targets(targets, slow, workers=4)
    assert [r.name for r in results] == sorted(targets)
    assert 2 <= peak[0] <= 4


# --- end to end: the CLI against a repo served over HTTP -------------------------------


@pytest.fixture
def served(ws):
    """A built repo served over loopback HTTP, and an Infra.toml that points at it."""
    out = build(ws, "1.0.0", ws.tmp / "out")
    with tufcheck.serve_outdirs(out) as url:
        yield out, write_infra(ws, f"{url}/metadata/", f"{url}/targets/")


def _target_path(out: Path, name: str) -> Path:
    (path,) = (out / "targets").glob(f"*.{name}")
    return path


def test_valid_repo_passes_metadata_and_targets(ws, served):
    out, infra = served
    r = validate(ws, infra)
    assert r.returncode == 0, r
    r = validate(ws, infra, "--validate-targets")
    assert r.returncode == 0, r
    assert "4 of 4 targets" in r.stderr  # boot, root, hash, manifest.json


def test_one_flipped_byte_in_one_target_is_caught_and_named(ws, served):
    out, infra = served
    name = f"{VARIANT}-1.0.0-root.img"
    path = _target_path(out, name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    assert validate(ws, infra).returncode == 0  # metadata alone is still fine
    r = validate(ws, infra, "--validate-targets")
    assert r.returncode == 3, r
    bad = [line for line in r.stderr.splitlines() if "[ERROR] target " in line]
    assert len(bad) == 1 and name in bad[0] and "sha256" in bad[0], r
    assert "3 of 4 targets" in r.stderr
    for other in ("boot", "hash"):
        assert f"target {VARIANT}-1.0.0-{other}.img" not in r.stderr


def test_missing_and_truncated_targets_are_named(ws, served):
    out, infra = served
    _target_path(out, f"{VARIANT}-1.0.0-boot.img").unlink()
    hash_img = _target_path(out, f"{VARIANT}-1.0.0-hash.img")
    hash_img.write_bytes(hash_img.read_bytes()[:-1])
    r = validate(ws, infra, "--validate-targets")
    assert r.returncode == 3, r
    assert f"target {VARIANT}-1.0.0-boot.img: missing" in r.stderr
    assert f"target {VARIANT}-1.0.0-hash.img: incorrect" in r.stderr


def test_tampered_metadata_fails_verification(ws, served):
    out, infra = served
    ts = out / VARIANT / ARCH / "timestamp.json"
    md = Metadata.from_bytes(ts.read_bytes())
    md.signed.version += 1  # signature no longer matches
    ts.write_bytes(md.to_bytes())
    r = validate(ws, infra)
    assert r.returncode == 1, r
    assert "failed verification" in r.stderr


def test_expired_repo_is_reported_role_by_role(ws):
    out = build(ws, "1.0.0", ws.tmp / "out")
    expired = make_expired_copy(ws, out, ws.tmp / "expired")
    with tufcheck.serve_outdirs(out, expired) as url:
        infra = write_infra(ws, f"{url}/metadata/", f"{url}/targets/")
        r = validate(ws, infra, "--validate-targets")
    assert r.returncode == 3, r
    for role in ("timestamp", "snapshot", "targets"):
        assert f"{role} metadata (version" in r.stderr and "expired at" in r.stderr
    assert "root metadata" not in r.stderr
    assert "4 of 4 targets" in r.stderr  # targets are still checked and fine


def test_file_urls_work_too(ws):
    out = build(ws, "1.0.0", ws.tmp / "out")
    infra = write_infra(ws, file_url(out), file_url(out / "targets"))
    r = validate(ws, infra, "--validate-targets")
    assert r.returncode == 0, r


def test_unconfigured_urls_are_bad_input_naming_the_key(ws):
    infra = write_infra(ws, None, None)
    r = validate(ws, infra)
    assert r.returncode == 2, r
    assert "metadata_base_url and targets_url" in r.stderr


def test_absent_repo_is_an_error(ws):
    empty = ws.tmp / "empty"
    empty.mkdir()
    infra = write_infra(ws, file_url(empty), file_url(empty / "targets"))
    r = validate(ws, infra)
    assert r.returncode == 1, r
    assert "no repository at" in r.stderr
