"""manifest.json rules: exact round trip, max_version, same-version rebuilds, waves order."""

import json
from datetime import datetime, timezone

import pytest

from pubsys.errors import RepoError
from pubsys.repo.manifest import Manifest
from pubsys.version import Version

EXISTING = {
    "updates": [
        {"variant": "aws-k8s-1.31", "arch": "x86_64", "version": "1.0.0",
         "max_version": "1.0.0", "waves": {"0": "2026-01-01T01:00:00Z",
                                           "1024": "2026-01-02T00:00:00Z"},
         "images": {"boot": "b1", "root": "r1", "hash": "h1"}, "future_field": [1, 2]},
        {"variant": "aws-dev", "arch": "x86_64", "version": "0.5.0", "max_version": "0.5.0",
         "waves": {}, "images": {"boot": "b", "root": "r", "hash": "h"}},
    ],
    "migrations": {"(0.9.0, 1.0.0)": ["m1"]},
    "datastore_versions": {"1.0.0": "1.0"},
}
IMAGES = {"boot": "b2", "root": "r2", "hash": "h2"}
T = datetime(2026, 2, 1, tzinfo=timezone.utc)


def test_round_trip_keeps_unknown_fields_and_is_stable():
    m = Manifest.from_dict(json.loads(json.dumps(EXISTING)))
    out = json.loads(m.to_json())
    assert out == EXISTING
    assert Manifest.from_json(m.to_json()).to_json() == m.to_json()


def test_add_update_raises_max_version_of_same_variant_and_arch_only():
    m = Manifest.from_dict(EXISTING)
    m.add_update("aws-k8s-1.31", "x86_64", Version.parse("1.1.0"), IMAGES)
    by = {(u.variant, str(u.version)): u for u in m.updates}
    assert str(by[("aws-k8s-1.31", "1.0.0")].max_version) == "1.1.0"
    assert str(by[("aws-k8s-1.31", "1.1.0")].max_version) == "1.1.0"
    assert str(by[("aws-dev", "0.5.0")].max_version) == "0.5.0"
    assert [str(u.version) for u in m.updates][-1] == "1.1.0"  # appended


def test_older_hotfix_does_not_lower_max_version():
    m = Manifest.from_dict(EXISTING)
    m.add_update("aws-k8s-1.31", "x86_64", Version.parse("1.1.0"), IMAGES)
    m.add_update("aws-k8s-1.31", "x86_64", Version.parse("1.0.1"),
                 {"boot": "b3", "root": "r3", "hash": "h3"})
    assert {str(u.max_version) for u in m.updates if u.variant == "aws-k8s-1.31"} == {"1.1.0"}


def test_same_version_same_images_keeps_entry_and_resets_waves():
    m = Manifest.from_dict(EXISTING)
    m.add_update("aws-k8s-1.31", "x86_64", Version.parse("1.0.0"),
                 {"boot": "b1", "root": "r1", "hash": "h1"})
    m.set_waves("aws-k8s-1.31", "x86_64", Version.parse("1.0.0"), {0: T})
    assert len(m.updates) == 2
    assert m.to_dict()["updates"][0]["waves"] == {"0": "2026-02-01T00:00:00Z"}
    assert m.to_dict()["updates"][0]["future_field"] == [1, 2]


def test_same_version_other_images_is_refused():
    m = Manifest.from_dict(EXISTING)
    with pytest.raises(RepoError, match="refusing to replace"):
        m.add_update("aws-k8s-1.31", "x86_64", Version.parse("1.0.0"), IMAGES)


def test_waves_are_written_in_seed_order():
    m = Manifest()
    m.add_update("v", "x86_64", Version.parse("1.0.0"), IMAGES)
    m.set_waves("v", "x86_64", Version.parse("1.0.0"), {1843: T, 20: T, 0: T, 307: T})
    text = m.to_json().decode()
    assert [int(k) for k in json.loads(text)["updates"][0]["waves"]] == [0, 20, 307, 1843]
    assert text.index('"20"') < text.index('"307"') < text.index('"1843"')


def test_migrations_are_replaced_and_sorted_by_version():
    m = Manifest.from_dict(EXISTING)
    m.set_migrations({"(1.10.0, 1.11.0)": ["b"], "(1.9.0, 1.10.0)": ["a"]})
    assert list(m.to_dict()["migrations"]) == ["(1.9.0, 1.10.0)", "(1.10.0, 1.11.0)"]


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["updates"][0].pop("images"), "lacks 'images'"),
    (lambda d: d["updates"][0].update(version="one"), "not a semantic version"),
    (lambda d: d["updates"][0].update(waves={"5000": "2026-01-01T00:00:00Z"}), "outside"),
    (lambda d: d.update(updates={}), "'updates' must be a list"),
])
def test_malformed_manifest_is_an_error(mutate, message):
    d = json.loads(json.dumps(EXISTING))
    mutate(d)
    with pytest.raises(RepoError, match=message):
        Manifest.from_dict(d)
