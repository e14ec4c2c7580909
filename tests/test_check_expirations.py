"""`pubsys check-repo-expirations`: which roles expire before a limit, even in expired repos."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tuf.api.metadata import Metadata

from devtools import tufcheck
from pubsys.repo.trust import RoleExpiry, expired_by
from pubsys.timespec import format_rfc3339, utcnow
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

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_expired_by_includes_the_limit_itself():
    roles = [RoleExpiry("root", 1, T0 + timedelta(days=365)),
             RoleExpiry("timestamp", 7, T0 + timedelta(days=1)),
             RoleExpiry("snapshot", 7, T0 + timedelta(days=7))]
    assert [e.role for e in expired_by(roles, T0 + timedelta(days=7))] == ["timestamp",
                                                                           "snapshot"]
    assert [e.role for e in expired_by(roles, T0 + timedelta(days=6))] == ["timestamp"]
    assert expired_by(roles, T0) == []


def _one_day_timestamp_repo(ws):
    policy = ws.tmp / "short.toml"
    policy.write_text("snapshot_expiration = '2 weeks'\ntargets_expiration = '2 weeks'\n"
                      "timestamp_expiration = '1 day'\n")
    out = build(ws, "1.0.0", ws.tmp / "out", expiration=policy)
    return out, write_infra(ws, file_url(out), file_url(out / "targets"))


def check(ws, infra, limit, *extra):
    return lifecycle(ws, "check-repo-expirations", infra, "--expiration-limit", limit, *extra)


def test_one_day_timestamp_is_flagged_against_in_7_days(ws):
    out, infra = _one_day_timestamp_repo(ws)
    ts = Metadata.from_file(str(out / VARIANT / ARCH / "timestamp.json")).signed

    r = check(ws, infra, "in 7 days")
    assert r.returncode == 3, r
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ROLE", "VERSION", "EXPIRES"]
    assert lines[1].split() == ["timestamp", str(ts.version), format_rfc3339(ts.expires)]
    assert len(lines) == 2
    assert "timestamp" in r.stderr and "expire at or before" in r.stderr

    r = check(ws, infra, "in 7 days", "--json")
    assert r.returncode == 3, r
    assert json.loads(r.stdout) == [{"role": "timestamp", "version": ts.version,
                                     "expires": format_rfc3339(ts.expires)}]


def test_nothing_expiring_exits_zero_with_an_empty_list(ws):
    _, infra = _one_day_timestamp_repo(ws)
    r = check(ws, infra, "in 1 hour", "--json")
    assert r.returncode == 0, r
    assert json.loads(r.stdout) == []


def test_rfc3339_limit_lists_every_role_expiring_before_it(ws):
    _, infra = _one_day_timestamp_repo(ws)
    limit = format_rfc3339(utcnow() + timedelta(days=400))  # past root's one year too
    r = check(ws, infra, limit, "--json")
    assert r.returncode == 3, r
    assert sorted(e["role"] for e in json.loads(r.stdout)) == ["root", "snapshot",
                                                               "targets", "timestamp"]


def test_already_expired_repo_is_still_read_and_listed(ws):
    out = build(ws, "1.0.0", ws.tmp / "out")
    expired = make_expired_copy(ws, out, ws.tmp / "expired")
    with tufcheck.serve_outdirs(out, expired) as url:
        infra = write_infra(ws, f"{url}/metadata/", f"{url}/targets/")
        r = check(ws, infra, "in 1 hour", "--json")
    assert r.returncode == 3, r
    got = {e["role"]: e for e in json.loads(r.stdout)}
    assert set(got) == {"targets", "snapshot", "timestamp"}
    for role in got:
        md = Metadata.from_file(str(next((expired / VARIANT / ARCH).glob(f"*.{role}.json"))
                                    if role != "timestamp"
                                    else expired / VARIANT / ARCH / "timestamp.json"))
        assert got[role]["version"] == md.signed.version
        assert got[role]["expires"] == format_rfc3339(md.signed.expires)
        assert md.signed.expires < utcnow()


def test_expired_repo_with_a_bad_signature_is_refused_not_listed(ws):
    out = build(ws, "1.0.0", ws.tmp / "out")
    expired = make_expired_copy(ws, out, ws.tmp / "expired")
    ts_path = expired / VARIANT / ARCH / "timestamp.json"
    md = Metadata.from_bytes(ts_path.read_bytes())
    sig = next(iter(md.signatures.values()))
    sig.signature = ("1" if sig.signature[0] != "1" else "2") + sig.signature[1:]
    ts_path.write_bytes(md.to_bytes())  # same content, one signature digit changed
    infra = write_infra(ws, file_url(expired), file_url(out / "targets"))
    r = check(ws, infra, "in 1 hour", "--json")
    assert r.returncode == 1, r
    assert "failed verification" in r.stderr
    assert r.stdout == ""


def test_bad_limit_is_bad_input_naming_the_flag(ws):
    _, infra = _one_day_timestamp_repo(ws)
    r = check(ws, infra, "next tuesday")
    assert r.returncode == 2, r
    assert "--expiration-limit" in r.stderr
