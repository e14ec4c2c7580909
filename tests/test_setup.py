"""`pubsys setup`: creates trust once, fetches a pinned root, never prints key material."""

import hashlib
import json
import stat

from tuf.api.metadata import Metadata, Root

from tests.repo_helpers import RepoBuild


def test_creates_key_and_root_once(tmp_path, run_pubsys):
    ws = RepoBuild(tmp_path, run_pubsys)
    r = ws.setup()
    assert r.returncode == 0, r
    assert stat.S_IMODE(ws.key.stat().st_mode) == 0o600
    pem = ws.key.read_text()
    assert "PRIVATE KEY" in pem
    assert pem.strip().splitlines()[1] not in r.stderr + r.stdout
    root = Metadata[Root].from_bytes(ws.root_json.read_bytes())
    assert root.signed.consistent_snapshot and root.signed.version == 1
    keyids = {tuple(root.signed.roles[r].keyids) for r in ("root", "targets", "snapshot",
                                                          "timestamp")}
    assert len(keyids) == 1 and all(root.signed.roles[r].threshold == 1
                                    for r in ("root", "targets", "snapshot", "timestamp"))
    root.verify_delegate("root", root)
    before = (ws.key.read_bytes(), ws.root_json.read_bytes())
    r2 = ws.setup()
    assert r2.returncode == 0 and "nothing to do" in r2.stderr
    assert (ws.key.read_bytes(), ws.root_json.read_bytes()) == before


def test_fetches_pinned_root_and_checks_sha512(tmp_path, run_pubsys):
    ws = RepoBuild(tmp_path / "a", run_pubsys)
    (tmp_path / "a").mkdir()
    assert ws.setup().returncode == 0
    good = ws.root_json.read_bytes()
    other = tmp_path / "b"
    other.mkdir()
    infra = other / "Infra.toml"
    url = ws.root_json.as_uri()
    infra.write_text(f'[repo.default]\nroot_role_url = "{url}"\n'
                     f'root_role_sha512 = "{hashlib.sha512(good).hexdigest()}"\n')
    r = run_pubsys("--infra-config-path", infra, "setup", "--root-role-path", "root.json",
                   "--default-key-path", "k.pem", cwd=other)
    assert r.returncode == 0, r
    assert (other / "root.json").read_bytes() == good
    assert not (other / "k.pem").exists()

    infra.write_text(f'[repo.default]\nroot_role_url = "{url}"\n'
                     f'root_role_sha512 = "{"0" * 128}"\n')
    r = run_pubsys("--infra-config-path", infra, "setup", "--root-role-path", "new.json",
                   "--default-key-path", "k.pem", cwd=other)
    assert r.returncode == 1 and "SHA-512" in r.stderr and "nothing written" in r.stderr
    assert not (other / "new.json").exists()


def test_root_created_from_configured_file_keys_with_thresholds(tmp_path, run_pubsys):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    for i in range(3):
        key = ec.generate_private_key(ec.SECP256R1())
        (tmp_path / f"k{i}.pem").write_bytes(
            key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    (tmp_path / "Infra.toml").write_text(
        "[repo.default]\nsigning_keys = [" + ", ".join(
            f'{{ file = {{ path = "k{i}.pem" }} }}' for i in range(3)) + "]\n"
        'root_keys = { file = { path = "k0.pem" } }\npub_key_threshold = 2\n')
    r = run_pubsys("setup", "--root-role-path", "root.json", "--default-key-path", "unused.pem",
                   cwd=tmp_path)
    assert r.returncode == 0, r
    root = json.loads((tmp_path / "root.json").read_bytes())["signed"]
    assert root["roles"]["targets"]["threshold"] == 2
    assert len(root["roles"]["targets"]["keyids"]) == 3
    assert len(root["roles"]["root"]["keyids"]) == 1
    assert not (tmp_path / "unused.pem").exists()
