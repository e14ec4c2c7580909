"""The release lease: S3 conditional writes against moto (with S3's atomicity restored)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from devtools import moto_ext_s3
from pubsys.release.lease import (
    Lease,
    LeaseHeld,
    LeaseKeeper,
    LeaseLost,
    LeaseRecord,
    LeaseStore,
    describe_holder,
)

BUCKET = "repo-bucket"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
TTL = timedelta(minutes=30)


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def s3():
    moto_ext_s3.install()
    with mock_aws():
        client = boto3.client("s3", region_name="us-west-2")
        client.create_bucket(Bucket=BUCKET,
                             CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield client


def store(s3, clock=None, prefix="updates") -> LeaseStore:
    return LeaseStore(s3, BUCKET, prefix, clock or Clock())


def test_take_writes_the_lease_under_the_repo_prefix(s3):
    lease = store(s3).take("ci run 1", "1.2.3", TTL)
    body = s3.get_object(Bucket=BUCKET, Key="updates/.pubsys/release-lease.json")
    record = LeaseRecord.from_json(body["Body"].read(), "lease")
    assert record == lease.record
    assert (record.holder, record.release, record.expires) == ("ci run 1", "1.2.3", T0 + TTL)


def test_a_held_lease_is_refused_naming_holder_release_and_expiry(s3):
    store(s3).take("ci run 1", "1.2.3", TTL)
    with pytest.raises(LeaseHeld) as err:
        store(s3, Clock(T0 + timedelta(minutes=20))).take("laptop", "1.2.4", TTL)
    message = str(err.value)
    assert "s3://repo-bucket/updates/.pubsys/release-lease.json is held by ci run 1" in message
    assert "release 1.2.3" in message and "expires 2026-11-30T12:30:00Z" in message


def test_the_boto3_we_run_sends_the_conditional_headers(s3):
    sent: list[dict[str, str]] = []

    def capture(request, **_):
        sent.append({k: v.decode() if isinstance(v, bytes) else v
                     for k, v in request.headers.items() if k.startswith("If-")})

    s3.meta.events.register("before-send.s3.PutObject", capture)
    s3.meta.events.register("before-send.s3.DeleteObject", capture)
    st = store(s3)
    taken = st.take("me", "1.0.0", TTL)
    renewed = st.renew(taken, TTL)
    st.release(renewed)
    assert sent == [{"If-None-Match": "*"}, {"If-Match": taken.etag},
                    {"If-Match": renewed.etag}]


def race(takers) -> list[object]:
    """Run the takers at the same moment; each returns a Lease or the exception it raised."""
    barrier = threading.Barrier(len(takers))
    results: list[object] = [None] * len(takers)

    def run(i):
        barrier.wait()
        try:
            results[i] = takers[i]()
        except LeaseHeld as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(takers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("round_", range(10))
def test_of_two_concurrent_takers_exactly_one_wins(s3, round_):
    prefix = f"race-{round_}"
    results = race([lambda i=i: store(s3, prefix=prefix).take(f"run {i}", "1.0.0", TTL)
                    for i in range(2)])
    winners = [r for r in results if isinstance(r, Lease)]
    assert len(winners) == 1, results
    loser = next(r for r in results if isinstance(r, LeaseHeld))
    assert f"held by {winners[0].record.holder}" in str(loser)
    assert store(s3, prefix=prefix).read()[0] == winners[0].record


def test_an_expired_lease_is_taken_over_and_its_old_holder_stops(s3):
    killed = store(s3).take("killed run", "1.0.0", TTL)
    later = Clock(T0 + TTL + timedelta(minutes=5))
    with pytest.raises(LeaseHeld):  # within the clock-skew allowance it still holds
        store(s3, Clock(T0 + TTL + timedelta(seconds=30))).take("too early", "1.0.0", TTL)
    new = store(s3, later).take("next run", "1.0.1", TTL)
    assert new.record.holder == "next run" and new.record.expires == later.now + TTL
    with pytest.raises(LeaseLost, match="now held by next run"):
        store(s3, later).renew(killed, TTL)
    assert store(s3, later).release(killed) is False  # never deletes its successor's lease
    assert store(s3).read()[0] == new.record


def test_of_two_runs_taking_over_an_expired_lease_exactly_one_wins(s3):
    store(s3, prefix="expired").take("killed run", "1.0.0", TTL)
    later = T0 + 2 * TTL
    results = race([lambda i=i: store(s3, Clock(later), "expired").take(f"run {i}", "1.0.1", TTL)
                    for i in range(2)])
    assert sum(isinstance(r, Lease) for r in results) == 1, results


def test_renew_extends_and_release_frees_the_lease(s3):
    clock = Clock()
    st = store(s3, clock)
    lease = st.take("me", "1.0.0", TTL)
    clock.now = T0 + timedelta(minutes=10)
    renewed = st.renew(lease, TTL)
    assert renewed.record.expires == clock.now + TTL and renewed.etag != lease.etag
    with pytest.raises(LeaseLost):  # the old ETag is no longer the lease's
        st.renew(lease, TTL)
    assert st.release(renewed) is True and st.read() is None
    assert store(s3).take("next", "1.0.1", TTL).record.holder == "next"


def test_keeper_renews_in_the_background_and_notices_a_takeover(s3):
    st = store(s3, prefix="kept")
    lease = st.take("me", "1.0.0", TTL)
    with LeaseKeeper(st, lease, TTL, interval=0.01) as keeper:
        deadline = time.monotonic() + 10
        while keeper.lease.etag == lease.etag and time.monotonic() < deadline:
            time.sleep(0.01)
        assert keeper.lease.etag != lease.etag  # renewed
        keeper.ensure_held()
        thief = LeaseRecord("thief", "9.9.9", "t", T0, T0 + TTL)
        s3.put_object(Bucket=BUCKET, Key=st.key, Body=thief.to_json())
        while time.monotonic() < deadline:
            try:
                keeper.ensure_held()
            except LeaseLost as e:
                assert "now held by thief" in str(e)
                break
            time.sleep(0.01)
        else:
            pytest.fail("the keeper never noticed the takeover")
    assert st.read()[0].holder == "thief"  # a lost lease is not released


def test_keeper_releases_at_the_end(s3):
    st = store(s3, prefix="released")
    with LeaseKeeper(st, st.take("me", "1.0.0", TTL), TTL, interval=60):
        assert st.read() is not None
    assert st.read() is None


def test_a_damaged_lease_is_reported_not_overwritten(s3):
    s3.put_object(Bucket=BUCKET, Key="updates/.pubsys/release-lease.json", Body=b"junk")
    with pytest.raises(Exception, match="is not a lease pubsys wrote"):
        store(s3).take("me", "1.0.0", TTL)


def test_holder_names_a_ci_run_or_a_person():
    ci = describe_holder({"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2",
                          "GITHUB_REPOSITORY": "org/os", "GITHUB_WORKFLOW": "release"},
                         host="runner-1", pid=7)
    assert ci == "GitHub Actions run 42 attempt 2 of org/os (release) on runner-1"
    assert describe_holder({"USER": "ana"}, host="laptop", pid=99) == "ana@laptop pid 99"


def test_break_takes_a_live_lease_and_its_holder_stops(s3):
    clock = Clock()
    first = store(s3, clock).take("dead run", "1.2.3", TTL)
    clock.now = T0 + timedelta(minutes=1)  # long before it expires
    with pytest.raises(LeaseHeld):
        store(s3, clock).take("operator", "1.2.3", TTL)
    second = store(s3, clock).take("operator", "1.2.3", TTL, force=True)
    assert second.record.holder == "operator"
    with pytest.raises(LeaseLost):
        store(s3, clock).renew(first, TTL)


def test_the_clock_allowance_is_the_stores(s3):
    clock = Clock()
    short = timedelta(seconds=4)
    store(s3, clock, prefix="p").take("killed run", "1.2.3", short)
    clock.now = T0 + short + timedelta(seconds=3)  # expired, within a 4 s allowance
    with pytest.raises(LeaseHeld):
        LeaseStore(s3, BUCKET, "p", clock, skew=short).take("next run", "1.2.3", short)
    clock.now = T0 + short + timedelta(seconds=5)
    taken = LeaseStore(s3, BUCKET, "p", clock, skew=short).take("next run", "1.2.3", short)
    assert taken.record.holder == "next run"
