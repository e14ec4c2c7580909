"""No published release is lost: a build is published only onto the exact base it extended.

End to end against the moto server: `repo` and `refresh-repo` record the timestamp.json they
built on (OUTDIR/VARIANT/ARCH.pubsys-base.json), and `publish-repo` refuses once the bucket
holds anything else. A metadata_base_url that answers 403, times out or is unset never counts
as "no repo yet" where the bucket holds one.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import tracemalloc
from contextlib import contextmanager

import pytest

from pubsys import cli
from pubsys.repo import fetch
from tests.bucket_helpers import (  # noqa: F401
    BUCKET,
    PREFIX,
    bucket_state,
    build_from_bucket,
    client_view,
    public_bucket_fixture,
    publish,
)
from tests.lifecycle_helpers import ARCH, VARIANT, build, lifecycle, ws_fixture  # noqa: F401
from tests.repo_helpers import POLICIES

META = f"{PREFIX}/{VARIANT}/{ARCH}/"


def versions(view) -> list[str]:
    return sorted(u["version"] for u in view.manifest["updates"])


def infra_without_metadata_url(ws, infra):
    """The same Infra.toml with metadata_base_url and targets_url removed."""
    text = "\n".join(line for line in infra.read_text().splitlines()
                     if not line.startswith(("metadata_base_url", "targets_url")))
    path = ws.tmp / "Infra-no-url.toml"
    path.write_text(text)
    return path


def infra_reading_from(ws, infra, url: str):
    """The same Infra.toml, but the repo is read from `url` (still published to the bucket)."""
    text = "\n".join(f'metadata_base_url = "{url}/"' if line.startswith("metadata_base_url")
                     else line for line in infra.read_text().splitlines())
    path = ws.tmp / "Infra-elsewhere.toml"
    path.write_text(text)
    return path


def test_release_then_refresh_from_the_same_base_second_publish_is_refused(ws, public_bucket):
    s3, infra, base = public_bucket
    root = ws.root_json.read_bytes()
    assert publish(ws, infra, build_from_bucket(ws, infra, "1.0.0", ws.tmp / "out1")
                   ).returncode == 0
    release = build_from_bucket(ws, infra, "1.1.0", ws.tmp / "release")
    time.sleep(1.1)  # the refresh is built later: a higher timestamp version than the release
    r = lifecycle(ws, "refresh-repo", infra, "--default-key-path", ws.key,
                  "--repo-expiration-policy-path", POLICIES / "repo-expiration.toml",
                  "--outdir", ws.tmp / "refresh")
    assert r.returncode == 0, r

    assert publish(ws, infra, release).returncode == 0
    published = bucket_state(s3)
    r = publish(ws, infra, ws.tmp / "refresh")
    assert r.returncode == 1, r
    assert "the repo changed since the build" in r.stderr
    base_record = json.loads((ws.tmp / "refresh" / VARIANT / f"{ARCH}.pubsys-base.json")
                             .read_text())
    assert base_record == json.loads((ws.tmp / "release" / VARIANT / f"{ARCH}.pubsys-base.json")
                                     .read_text())  # the same base
    built_on = base_record["timestamp"]["version"]
    assert f"built on timestamp.json version {built_on}" in r.stderr
    release_ts = json.loads((ws.tmp / "release" / VARIANT / ARCH / "timestamp.json")
                            .read_bytes())["signed"]["version"]
    assert f"is now timestamp.json version {release_ts}" in r.stderr
    assert bucket_state(s3) == published  # nothing uploaded
    for view in (client_view(base, root), client_view(base, root, ws.tmp / "client")):
        assert versions(view) == ["1.0.0", "1.1.0"]
    assert lifecycle(ws, "validate-repo", infra, "--validate-targets").returncode == 0


@contextmanager
def answering(status: int):
    """An HTTP server that answers `status` to every request."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def never_answering():
    """A server that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_403_at_metadata_base_url_fails_and_writes_nothing(ws, public_bucket):
    s3, infra, base = public_bucket
    assert publish(ws, infra, build_from_bucket(ws, infra, "1.0.0", ws.tmp / "out1")
                   ).returncode == 0
    published = bucket_state(s3)
    with answering(403) as url:
        r = ws.repo("1.1.0", ws.tmp / "out2",
                    global_flags=("--infra-config-path", infra_reading_from(ws, infra, url)))
    assert r.returncode == 1, r
    assert "403" in r.stderr and "only a missing file" in r.stderr
    assert not (ws.tmp / "out2").exists()
    assert bucket_state(s3) == published


def test_timeout_at_metadata_base_url_fails_and_writes_nothing(ws, public_bucket, monkeypatch,
                                                               capsys):
    s3, infra, base = public_bucket
    assert publish(ws, infra, build_from_bucket(ws, infra, "1.0.0", ws.tmp / "out1")
                   ).returncode == 0
    published = bucket_state(s3)
    monkeypatch.setattr(fetch, "SOCKET_TIMEOUT", 1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", ws.env["AWS_ENDPOINT_URL"])
    with never_answering() as url:
        argv = ws.repo_argv("1.1.0", ws.tmp / "out2", global_flags=(
            "--infra-config-path", infra_reading_from(ws, infra, url)))
        assert cli.main(argv) == 1
    assert "timed out" in capsys.readouterr().err
    assert not (ws.tmp / "out2").exists()
    assert bucket_state(s3) == published


def test_unset_metadata_base_url_while_the_bucket_holds_a_repo_is_refused(ws, public_bucket):
    s3, infra, base = public_bucket
    root = ws.root_json.read_bytes()
    assert publish(ws, infra, build_from_bucket(ws, infra, "1.0.0", ws.tmp / "out1")
                   ).returncode == 0
    published = bucket_state(s3)
    no_url = infra_without_metadata_url(ws, infra)
    fresh = build(ws, "1.1.0", ws.tmp / "fresh", global_flags=("--infra-config-path", no_url))
    r = publish(ws, no_url, fresh)
    assert r.returncode == 1, r
    assert "built as a new repo" in r.stderr and "timestamp.json version" in r.stderr
    assert bucket_state(s3) == published
    assert versions(client_view(base, root)) == ["1.0.0"]

    # Replacing the repo is possible, but only when asked for.
    r = publish(ws, no_url, fresh, "--allow-new-repo")
    assert r.returncode == 0, r
    assert versions(client_view(base, root)) == ["1.1.0"]


def test_new_repo_flag_starts_fresh_and_publishes_only_where_no_repo_is(ws, public_bucket):
    s3, infra, base = public_bucket
    root = ws.root_json.read_bytes()
    with answering(403) as url:  # e.g. a bucket that hides missing keys behind 403
        out = build(ws, "1.0.0", ws.tmp / "out1", "--new-repo",
                    global_flags=("--infra-config-path", infra_reading_from(ws, infra, url)))
    assert publish(ws, infra, out).returncode == 0
    assert versions(client_view(base, root)) == ["1.0.0"]
    again = build(ws, "1.1.0", ws.tmp / "out2", "--new-repo",
                  global_flags=("--infra-config-path", infra))
    r = publish(ws, infra, again)
    assert r.returncode == 1 and "built as a new repo" in r.stderr, r


def test_unparseable_timestamp_in_the_bucket_is_refused_unless_allowed(ws, public_bucket):
    s3, infra, base = public_bucket
    root = ws.root_json.read_bytes()
    s3.put_object(Bucket=BUCKET, Key=META + "timestamp.json", Body=b"{not json")
    no_url = infra_without_metadata_url(ws, infra)
    fresh = build(ws, "1.0.0", ws.tmp / "fresh", global_flags=("--infra-config-path", no_url))
    r = publish(ws, no_url, fresh)
    assert r.returncode == 1 and "built as a new repo" in r.stderr, r
    r = publish(ws, no_url, fresh, "--allow-new-repo")
    assert r.returncode == 1 and "cannot be parsed" in r.stderr, r
    assert s3.get_object(Bucket=BUCKET, Key=META + "timestamp.json")["Body"].read() == \
        b"{not json"
    r = publish(ws, no_url, fresh, "--allow-new-repo", "--allow-unparseable-timestamp")
    assert r.returncode == 0, r
    assert versions(client_view(base, root)) == ["1.0.0"]


def _peak_memory(argv) -> int:
    tracemalloc.start()
    try:
        assert cli.main(argv) == 1
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bucket_reads_are_capped(ws, public_bucket, monkeypatch, capsys):
    """A huge timestamp.json in the bucket is refused after reading a bounded prefix of it:
    the run's peak memory is that of a run facing a tiny one."""
    s3, infra, base = public_bucket
    no_url = infra_without_metadata_url(ws, infra)
    fresh = build(ws, "1.0.0", ws.tmp / "fresh", global_flags=("--infra-config-path", no_url))
    monkeypatch.setenv("AWS_ENDPOINT_URL", ws.env["AWS_ENDPOINT_URL"])
    argv = ["--infra-config-path", str(no_url), "publish-repo", "--variant", VARIANT,
            "--arch", ARCH, "--outdir", str(fresh), "--allow-new-repo"]
    s3.put_object(Bucket=BUCKET, Key=META + "timestamp.json", Body=b"{")
    assert cli.main(argv) == 1  # imports everything first
    assert "cannot be parsed" in capsys.readouterr().err
    tiny = _peak_memory(argv)
    huge = 48 << 20
    s3.put_object(Bucket=BUCKET, Key=META + "timestamp.json", Body=b" " * huge)
    peak = _peak_memory(argv)
    assert "cannot be parsed" in capsys.readouterr().err
    assert peak - tiny < huge // 8, f"peak {peak} bytes vs {tiny}: the whole object was read"


@pytest.mark.parametrize("flag", ["--allow-new-repo", "--allow-unparseable-timestamp"])
def test_override_flags_are_documented(flag, capsys):
    with pytest.raises(SystemExit):
        cli.main(["publish-repo", "--help"])
    assert flag in capsys.readouterr().out
