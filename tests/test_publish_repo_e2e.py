"""publish-repo end to end: the CLI uploads to a moto S3 server, python-tuf fetches over HTTP.

The bucket is made publicly readable by a bucket policy here, in the test, because that is
the infrastructure's job: pubsys sets no ACLs. Clients read the moto server path-style:
http://127.0.0.1:PORT/BUCKET/PREFIX/<variant>/<arch>/ and .../PREFIX/targets/.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError

from pubsys import cli
from pubsys.aws import clients as clients_mod
from tests.bucket_helpers import (  # noqa: F401
    PREFIX,
    build_from_bucket,
    client_view,
    public_bucket_fixture,
    publish,
)
from tests.bucket_helpers import bucket_keys as _keys
from tests.lifecycle_helpers import ARCH, VARIANT, lifecycle, ws_fixture  # noqa: F401
from tests.repo_helpers import POLICIES


def test_published_repo_is_fetched_by_a_tuf_client_from_the_bucket(ws, public_bucket):
    s3, infra, base = public_bucket
    root = ws.root_json.read_bytes()
    images1 = ws.images("1.0.0")
    out1 = build_from_bucket(ws, infra, "1.0.0", ws.tmp / "out1")  # bucket empty: new repo

    r = publish(ws, infra, out1, "--dry-run")
    assert r.returncode == 0, r
    assert len(r.stdout.splitlines()) == 8 and _keys(s3) == []

    r = publish(ws, infra, out1)
    assert r.returncode == 0, r
    client = ws.tmp / "client"
    v1 = client_view(base, root, client)
    assert [u["version"] for u in v1.manifest["updates"]] == ["1.0.0"]
    for path in images1.values():
        assert v1.targets[path.name] == path.read_bytes()

    # The next release is built from what the bucket serves and adds only its own targets.
    images2 = ws.images("1.1.0")
    out2 = build_from_bucket(ws, infra, "1.1.0", ws.tmp / "out2")
    r = publish(ws, infra, out2)
    assert r.returncode == 0, r
    assert "4 target(s) to upload, 3 already there" in r.stderr  # 1.0.0's boot/root/hash
    v2 = client_view(base, root, client)  # the client that saw 1.0.0 moves on
    assert [u["version"] for u in v2.manifest["updates"]] == ["1.0.0", "1.1.0"]
    for path in [*images1.values(), *images2.values()]:
        assert v2.targets[path.name] == path.read_bytes()
    for role in ("targets", "snapshot", "timestamp"):
        assert v2.versions[role] > v1.versions[role]
    assert client_view(base, root).versions == v2.versions  # and so does a fresh one

    r = lifecycle(ws, "validate-repo", infra, "--validate-targets")
    assert r.returncode == 0, r
    r = publish(ws, infra, out2)
    assert r.returncode == 0 and "nothing to upload" in r.stderr, r


class _Fault:
    """Makes one kind of S3 PutObject fail inside pubsys' own client, as a network or an
    operator's Ctrl-C would, while everything else runs for real against the moto server."""

    def __init__(self, matches, error):
        self.matches, self.error, self.armed, self.fired = matches, error, True, False

    def __call__(self, params, **_):
        if self.armed and self.matches(params["Key"]):
            self.fired = True
            raise self.error


@pytest.fixture
def inject(monkeypatch):
    faults = []
    real = clients_mod.AwsClients.client

    def client(self, service, region=None, **kw):
        c = real(self, service, region, **kw)
        if service == "s3" and not getattr(c, "_faulty", False):
            for f in faults:
                c.meta.events.register("provide-client-params.s3.PutObject", f)
            c._faulty = True
        return c

    monkeypatch.setattr(clients_mod.AwsClients, "client", client)

    def add(matches, error) -> _Fault:
        fault = _Fault(matches, error)
        faults.append(fault)
        return fault

    return add


META = f"{PREFIX}/{VARIANT}/{ARCH}/"
STOPS = {
    # a target upload fails: no metadata may follow
    "during-targets": (lambda k: k.endswith("-1.1.0-root.img"),
                       EndpointConnectionError(endpoint_url="http://s3"), 1),
    # every target is up, the first metadata PUT fails
    "after-targets": (lambda k: k.startswith(META),
                      EndpointConnectionError(endpoint_url="http://s3"), 1),
    # targets, N.targets.json and N.snapshot.json are up; Ctrl-C before timestamp.json
    "before-timestamp": (lambda k: k == META + "timestamp.json", KeyboardInterrupt(), 130),
}


@pytest.mark.parametrize("stop", sorted(STOPS))
def test_interrupted_publish_leaves_the_previous_repo_valid(ws, public_bucket, inject, stop,
                                                            capsys):
    s3, infra, base = public_bucket
    root = ws.root_json.read_bytes()
    out1 = build_from_bucket(ws, infra, "1.0.0", ws.tmp / "out1")
    assert publish(ws, infra, out1).returncode == 0
    client = ws.tmp / "client"
    v1 = client_view(base, root, client)
    out2 = build_from_bucket(ws, infra, "1.1.0", ws.tmp / "out2")
    before = set(_keys(s3))

    matches, error, code = STOPS[stop]
    fault = inject(matches, error)
    argv = ["--infra-config-path", str(infra), "publish-repo", "--variant", VARIANT,
            "--arch", ARCH, "--outdir", str(out2)]
    assert cli.main(argv) == code
    assert fault.fired
    new = set(_keys(s3)) - before
    new_targets = {k for k in new if k.startswith(f"{PREFIX}/targets/")}
    new_meta = {k[len(META):] for k in new if k.startswith(META)}
    if stop == "during-targets":
        assert new_meta == set()
    elif stop == "after-targets":
        assert len(new_targets) == 4 and new_meta == set()
    else:
        assert len(new_targets) == 4
        assert sorted(n.split(".", 1)[1] for n in new_meta) == ["snapshot.json",
                                                                "targets.json"]

    # Clients, fresh or having seen 1.0.0, still get exactly the previous repo.
    for view in (client_view(base, root), client_view(base, root, client)):
        assert view.versions == v1.versions
        assert [u["version"] for u in view.manifest["updates"]] == ["1.0.0"]
    r = lifecycle(ws, "validate-repo", infra, "--validate-targets")
    assert r.returncode == 0, r

    # Re-running finishes the job, skipping what already arrived.
    fault.armed = False
    capsys.readouterr()
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    if stop != "during-targets":
        assert "0 target(s) to upload" in err
    v2 = client_view(base, root, client)
    assert [u["version"] for u in v2.manifest["updates"]] == ["1.0.0", "1.1.0"]
    assert v2.versions["timestamp"] > v1.versions["timestamp"]


def test_refreshed_repo_publishes_as_metadata_only(ws, public_bucket):
    s3, infra, base = public_bucket
    root = ws.root_json.read_bytes()
    out1 = build_from_bucket(ws, infra, "1.0.0", ws.tmp / "out1")
    assert publish(ws, infra, out1).returncode == 0
    client = ws.tmp / "client"
    v1 = client_view(base, root, client)

    r = lifecycle(ws, "refresh-repo", infra, "--default-key-path", ws.key,
                  "--repo-expiration-policy-path", POLICIES / "repo-expiration.toml",
                  "--outdir", ws.tmp / "refreshed")
    assert r.returncode == 0, r
    r = publish(ws, infra, ws.tmp / "refreshed")
    assert r.returncode == 0, r
    assert "0 target(s) to upload, 4 already there; 3 metadata file(s) to upload, " \
        "1 already there" in r.stderr  # 1.root.json is the same bytes
    v2 = client_view(base, root, client)
    for role in ("targets", "snapshot", "timestamp"):
        assert v2.versions[role] > v1.versions[role]
    assert v2.versions["root"] == v1.versions["root"]
    assert v2.manifest == v1.manifest and v2.targets == v1.targets
