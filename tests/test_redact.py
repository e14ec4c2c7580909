"""Credentials in URLs (user:password@, presigned query strings) never reach the log or an
error message: checked on `redact` itself and on the stderr of real CLI runs."""

from __future__ import annotations

import pytest

from devtools import tufcheck
from pubsys.redact import redact
from tests.conftest import free_port
from tests.lifecycle_helpers import lifecycle, ws_fixture  # noqa: F401
from tests.test_fetch_variant import build_repo, disk_images, fetch, variant_manifest

SECRETS = ("hunter2", "SIGSECRET", "AKIDSECRET", "TOKENSECRET")


@pytest.mark.parametrize("text, shown", [
    ("https://deploy:hunter2@repo.example.com/m/", "https://***@repo.example.com/m/"),
    ("https://ghp_TOKENSECRET@repo.example.com/m/", "https://***@repo.example.com/m/"),
    ("https://b.s3.amazonaws.com/root.json?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Credential=AKIDSECRET%2F20240101&X-Amz-Signature=SIGSECRET&X-Amz-Expires=60",
     "https://b.s3.amazonaws.com/root.json?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"),
    ("cannot load repo https://cdn.example.com/r.json?Signature=SIGSECRET&Key-Pair-Id=K1: "
     "HTTP 403", "cannot load repo https://cdn.example.com/r.json?Signature=***&Key-Pair-Id=***: "
     "HTTP 403"),
    ("?AWSAccessKeyId=AKIDSECRET&x-amz-security-token=TOKENSECRET",
     "?AWSAccessKeyId=***&x-amz-security-token=***"),
    ("file:///tmp/repo/ and s3://bucket/key stay", "file:///tmp/repo/ and s3://bucket/key stay"),
])
def test_redact_masks_credentials_and_keeps_the_rest(text, shown):
    assert redact(text) == shown
    assert redact(redact(text)) == shown


def _no_secret(stderr: str) -> None:
    for secret in SECRETS:
        assert secret not in stderr, stderr


def test_validate_repo_error_hides_the_password_and_signature(ws):
    port = free_port()  # nothing listens: the connection is refused
    url = f"http://deploy:hunter2@127.0.0.1:{port}/m/"
    infra = ws.tmp / "Infra-creds.toml"
    infra.write_text(f'[repo.default]\nmetadata_base_url = "{url}"\n'
                     f'targets_url = "http://127.0.0.1:{port}/t/?X-Amz-Signature=SIGSECRET"\n')
    r = lifecycle(ws, "validate-repo", infra)
    assert r.returncode == 1, r
    _no_secret(r.stderr)
    assert f"http://***@127.0.0.1:{port}/m/" in r.stderr


def test_repo_logs_the_url_it_loaded_without_credentials(ws):
    assert ws.repo("1.0.0", ws.tmp / "out1").returncode == 0
    with tufcheck.serve_outdirs(ws.tmp / "out1") as url:
        creds = url.replace("http://", "http://deploy:hunter2@")
        (ws.tmp / "Infra.toml").write_text(
            f'[repo.default]\nmetadata_base_url = "{creds}/metadata/"\n'
            f'targets_url = "{creds}/targets/"\n')
        r = ws.repo("1.1.0", ws.tmp / "out2")
    assert r.returncode == 0, r
    _no_secret(r.stderr)
    assert "loaded repo http://***@127.0.0.1" in r.stderr


def test_presigned_metadata_url_is_redacted_in_errors(ws):
    port = free_port()
    infra = ws.tmp / "Infra-presigned.toml"
    infra.write_text(
        f'[repo.default]\nmetadata_base_url = "http://127.0.0.1:{port}/m/?X-Amz-Credential='
        f'AKIDSECRET&X-Amz-Security-Token=TOKENSECRET&X-Amz-Signature=SIGSECRET"\n'
        f'targets_url = "http://127.0.0.1:{port}/t/"\n')
    r = lifecycle(ws, "check-repo-expirations", infra, "--expiration-limit", "in 7 days")
    assert r.returncode == 1, r
    _no_secret(r.stderr)
    assert "X-Amz-Signature=***" in r.stderr


def test_fetch_variant_hides_credentials(ws):
    disks = disk_images(ws)
    out = build_repo(ws, disks)
    with tufcheck.serve_outdirs(out) as url:
        creds = url.replace("http://", "http://deploy:hunter2@")
        r = fetch(ws, url, ws.tmp / "fetched", variant_manifest(ws),
                  metadata_url=f"{creds}/metadata", targets_url=f"{creds}/nothing-here")
    assert r.returncode == 1, r  # the targets URL serves nothing
    _no_secret(r.stderr)
    assert "http://***@127.0.0.1" in r.stderr


def test_every_cli_error_hides_credentials_even_from_modules_that_do_not_redact(
        run_pubsys, tmp_path):
    """The CLI's log handler is the backstop: `setup` names the pinned root's URL when the
    local root.json differs from the pin (setup.py does not redact it itself), and the
    password and signature in that URL never reach stderr."""
    url = "https://releaser:hunter2-secret@127.0.0.1:1/root.json?X-Amz-Signature=abc123"
    (tmp_path / "Infra.toml").write_text(
        f'[repo.default]\nroot_role_url = "{url}"\nroot_role_sha512 = "{"0" * 128}"\n')
    (tmp_path / "root.json").write_text('{"signed": {"version": 2}}')
    result = run_pubsys("setup", "--root-role-path", tmp_path / "root.json",
                        "--default-key-path", tmp_path / "key.pem")
    assert result.returncode == 1, result
    assert "127.0.0.1:1/root.json" in result.stderr, result
    assert "hunter2-secret" not in result.stderr and "abc123" not in result.stderr, result
