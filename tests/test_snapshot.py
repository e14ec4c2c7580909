"""Snapshot upload: the block rules, bounded memory, retries and clean-up (fake EBS clients),
then one real upload against in-process moto with the EBS extensions checking checksums."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError, WaiterError

from pubsys.aws import snapshot as snapmod
from pubsys.aws import waiting
from pubsys.aws.clients import EBS_UPLOAD, AwsClients
from pubsys.aws.errors import is_retryable
from pubsys.aws.snapshot import (
    BLOCK_ATTEMPTS,
    BLOCK_SIZE,
    GIB,
    MAX_SENDS_PER_BLOCK,
    SnapshotUploader,
    UploadSettings,
    backoff_delay,
    block_count,
    linear_checksum,
    volume_size_gib,
)
from pubsys.aws.waiting import WaitPolicy, wait_for
from pubsys.config import AwsConfig
from pubsys.errors import AwsError, UsageError
from pubsys.progress import ProgressBar, format_progress


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} says no"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutSnapshotBlock")


class FakeWaiter:
    def __init__(self, outcomes: list[str]):
        self.outcomes = list(outcomes)  # "ok", "wait", "fail"
        self.calls = 0

    def wait(self, **kwargs):
        assert kwargs["WaiterConfig"]["MaxAttempts"] == 1
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if outcome == "wait":
            raise WaiterError("W", "Max attempts exceeded", {"Snapshots": [{"State": "pending"}]})
        if outcome == "fail":
            raise WaiterError("W", "Waiter encountered a terminal failure state",
                              {"Snapshots": [{"State": "error", "StateMessage": "bad disk"}]})


class FakeEc2:
    def __init__(self, waiter: FakeWaiter | None = None):
        self.waiter = waiter or FakeWaiter(["ok"])
        self.deleted: list[str] = []

    def get_waiter(self, name):
        assert name == "snapshot_completed"
        return self.waiter

    def delete_snapshot(self, SnapshotId):
        self.deleted.append(SnapshotId)


class FakeEbs:
    """Records blocks; can fail chosen blocks, and tracks requests in flight."""

    def __init__(self, failures: dict[int, list[Exception]] | None = None, delay: float = 0.0):
        self.failures = failures or {}
        self.delay = delay
        self.blocks: dict[int, bytes] = {}
        self.attempts: dict[int, int] = {}
        self.completed: dict | None = None
        self.started: dict | None = None
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.on_put = None

    def start_snapshot(self, **kw):
        self.started = kw
        return {"SnapshotId": "snap-0123456789abcdef0", "BlockSize": BLOCK_SIZE}

    def put_snapshot_block(self, SnapshotId, BlockIndex, BlockData, DataLength, Checksum,
                           ChecksumAlgorithm):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.attempts[BlockIndex] = self.attempts.get(BlockIndex, 0) + 1
            pending = self.failures.get(BlockIndex)
            error = pending.pop(0) if pending else None
        try:
            if self.on_put:
                self.on_put()
            if self.delay:
                time.sleep(self.delay)
            if error:
                raise error
            assert DataLength == len(BlockData) == BLOCK_SIZE
            assert ChecksumAlgorithm == "SHA256"
            assert Checksum == base64.b64encode(hashlib.sha256(BlockData).digest()).decode()
            with self.lock:
                self.blocks[BlockIndex] = BlockData
        finally:
            with self.lock:
                self.in_flight -= 1

    def complete_snapshot(self, **kw):
        self.completed = kw
        return {"Status": "completed"}


def _settings(**kw) -> UploadSettings:
    return UploadSettings(**{"wait": WaitPolicy(delay=0.01, max_delay=0.01, deadline=5), **kw})


def _uploader(ebs, ec2=None, **kw) -> SnapshotUploader:
    return SnapshotUploader(ebs, ec2 or FakeEc2(), _settings(**kw), sleep=lambda s: None,
                            rng=lambda: 1.0)


def _image(path: Path, blocks: dict[int, bytes], size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
        for i, data in blocks.items():
            f.seek(i * BLOCK_SIZE)
            f.write(data)
    return path


# --- pure rules ---------------------------------------------------------------------------


def test_volume_size_rounds_up_to_whole_gib():
    assert volume_size_gib(1) == 1
    assert volume_size_gib(GIB) == 1
    assert volume_size_gib(GIB + 1) == 2
    assert volume_size_gib(16 * 1024 * 1024) == 1
    assert block_count(BLOCK_SIZE * 3 + 1) == 4


def test_linear_checksum_is_sha256_over_digests_in_order():
    digests = [hashlib.sha256(bytes([i]) * 10).digest() for i in range(3)]
    expected = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert linear_checksum(digests) == expected
    assert linear_checksum(reversed(digests)) != expected


def test_backoff_is_exponential_with_a_cap():
    assert [backoff_delay(a, 0.25, 2.0, lambda: 1.0) for a in range(1, 6)] == [
        0.5, 1.0, 2.0, 2.0, 2.0]
    assert backoff_delay(3, 0.25, 2.0, lambda: 0.5) == 1.0


def test_only_transient_errors_are_retryable():
    assert is_retryable(_client_error("ThrottlingException"))
    assert is_retryable(_client_error("Whatever", status=503))
    assert is_retryable(EndpointConnectionError(endpoint_url="http://x"))
    assert not is_retryable(_client_error("ValidationException"))
    assert not is_retryable(_client_error("AccessDeniedException", status=403))


def test_progress_line_shows_bytes_rate_and_eta():
    line = format_progress(64 * 1024**2, 128 * 1024**2, 4.0, width=10)
    assert line == "[#####.....]  50%  64.0/128.0 MiB  16.0 MiB/s  ETA 0:04"
    assert format_progress(5, 5, 1.0).endswith("done")


def test_progress_bar_draws_only_on_a_tty():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert not ProgressBar.wanted(False, io.StringIO())
    assert not ProgressBar.wanted(True, Tty())
    assert ProgressBar.wanted(False, Tty())
    out = Tty()
    bar = ProgressBar(100, "test", out)
    bar.advance(100)
    bar.close()
    assert "\rtest: [" in out.getvalue() and "100%" in out.getvalue()
    assert out.getvalue().endswith("\n")


# --- the uploader ---------------------------------------------------------------------------


def test_zero_blocks_are_skipped_and_the_last_block_is_padded(tmp_path):
    a, c, last = os.urandom(BLOCK_SIZE), os.urandom(BLOCK_SIZE), b"tail" * 100
    size = 3 * BLOCK_SIZE + len(last)
    path = _image(tmp_path / "img", {0: a, 2: c, 3: last}, size)  # block 1 stays zero
    ebs, ec2 = FakeEbs(), FakeEc2()
    result = _uploader(ebs, ec2).upload(path, description="d", tags={"Name": "n"}, token="t")

    assert sorted(ebs.blocks) == [0, 2, 3]
    assert ebs.blocks[3] == last + bytes(BLOCK_SIZE - len(last))
    assert ebs.started == {"VolumeSize": 1, "Description": "d", "ClientToken": "t",
                           "Tags": [{"Key": "Name", "Value": "n"}]}
    digests = [hashlib.sha256(ebs.blocks[i]).digest() for i in (0, 2, 3)]
    assert ebs.completed == {
        "SnapshotId": "snap-0123456789abcdef0", "ChangedBlocksCount": 3,
        "Checksum": linear_checksum(digests), "ChecksumAlgorithm": "SHA256",
        "ChecksumAggregationMethod": "LINEAR"}
    assert (result.blocks_written, result.blocks_total, result.volume_size_gib) == (3, 4, 1)
    assert ec2.deleted == []


def test_blocks_in_memory_never_exceed_the_concurrency(tmp_path, monkeypatch):
    blocks = {i: os.urandom(16) * (BLOCK_SIZE // 16) for i in range(48)}
    path = _image(tmp_path / "img", blocks, 48 * BLOCK_SIZE)
    reads = {"n": 0}
    real_pread = os.pread

    def counting_pread(fd, n, off):
        reads["n"] += 1
        return real_pread(fd, n, off)

    monkeypatch.setattr(snapmod.os, "pread", counting_pread)
    ebs = FakeEbs(delay=0.003)
    held = []
    # Blocks held = read so far - finished so far; sampled while each request is in flight.
    ebs.on_put = lambda: held.append(reads["n"] - len(ebs.blocks))
    _uploader(ebs, concurrency=6).upload(path, description="d", tags={}, token="t")
    assert len(ebs.blocks) == 48
    assert max(held) <= 6
    assert 2 <= ebs.max_in_flight <= 6  # parallel, and bounded


def test_throttled_block_is_retried_with_backoff(tmp_path):
    path = _image(tmp_path / "img", {0: b"x" * 10, 1: b"y" * 10}, 2 * BLOCK_SIZE)
    ebs = FakeEbs(failures={1: [_client_error("ThrottlingException"),
                                EndpointConnectionError(endpoint_url="http://x")]})
    slept: list[float] = []
    up = SnapshotUploader(ebs, FakeEc2(), _settings(backoff_base=0.1), sleep=slept.append,
                          rng=lambda: 1.0)
    up.upload(path, description="d", tags={}, token="t")
    assert ebs.attempts == {0: 1, 1: 3}
    assert sorted(ebs.blocks) == [0, 1]
    assert slept == [0.2, 0.4]


def test_failing_block_deletes_the_snapshot_and_names_the_block(tmp_path):
    path = _image(tmp_path / "img", {i: b"z" for i in range(8)}, 8 * BLOCK_SIZE)
    ebs, ec2 = FakeEbs(failures={5: [_client_error("ValidationException")]}), FakeEc2()
    with pytest.raises(AwsError) as e:
        _uploader(ebs, ec2, concurrency=2).upload(path, description="d", tags={}, token="t")
    assert "block 5" in str(e.value) and "ValidationException" in str(e.value)
    assert "deleted" in str(e.value)
    assert ebs.attempts[5] == 1  # not retryable
    assert ebs.completed is None
    assert ec2.deleted == ["snap-0123456789abcdef0"]


def test_retries_run_out(tmp_path):
    path = _image(tmp_path / "img", {0: b"z"}, BLOCK_SIZE)
    ebs = FakeEbs(failures={0: [_client_error("InternalServerException", 500)] * 10})
    ec2 = FakeEc2()
    with pytest.raises(AwsError, match="failed after 3 attempt"):
        _uploader(ebs, ec2, block_attempts=3).upload(path, description="d", tags={}, token="t")
    assert ec2.deleted == ["snap-0123456789abcdef0"]


def test_snapshot_that_ends_in_error_is_deleted(tmp_path):
    path = _image(tmp_path / "img", {0: b"z"}, BLOCK_SIZE)
    ec2 = FakeEc2(FakeWaiter(["wait", "fail"]))
    with pytest.raises(AwsError, match="bad disk"):
        _uploader(FakeEbs(), ec2).upload(path, description="d", tags={}, token="t")
    assert ec2.deleted == ["snap-0123456789abcdef0"]


def test_interrupt_deletes_the_snapshot(tmp_path):
    path = _image(tmp_path / "img", {i: b"z" for i in range(4)}, 4 * BLOCK_SIZE)
    ebs, ec2 = FakeEbs(), FakeEc2()

    def interrupt():
        raise KeyboardInterrupt

    ebs.complete_snapshot = lambda **kw: interrupt()
    with pytest.raises(KeyboardInterrupt):
        _uploader(ebs, ec2).upload(path, description="d", tags={}, token="t")
    assert ec2.deleted == ["snap-0123456789abcdef0"]


def test_stop_from_the_main_thread_ends_the_upload_and_deletes_the_snapshot(tmp_path):
    path = _image(tmp_path / "img", {i: b"z" for i in range(40)}, 40 * BLOCK_SIZE)
    ebs, ec2, stop = FakeEbs(), FakeEc2(), threading.Event()
    ebs.on_put = lambda: len(ebs.blocks) >= 5 and stop.set()
    up = SnapshotUploader(ebs, ec2, _settings(concurrency=2), stop=stop)
    with pytest.raises(AwsError, match="interrupted at block"):
        up.upload(path, description="d", tags={}, token="t")
    assert 5 <= len(ebs.blocks) < 40
    assert ebs.completed is None
    assert ec2.deleted == ["snap-0123456789abcdef0"]


@pytest.mark.parametrize("content", [None, b""])
def test_missing_or_empty_image_is_refused_before_any_call(tmp_path, content):
    path = tmp_path / "img"
    if content is not None:
        path.write_bytes(content)
    ebs = FakeEbs()
    with pytest.raises(UsageError, match="--os-image"):
        _uploader(ebs).upload(path, description="d", tags={}, token="t", label="--os-image")
    assert ebs.started is None


def test_wait_for_backs_off_then_gives_up_at_the_deadline(monkeypatch):
    clock = {"t": 0.0}
    monkeypatch.setattr(waiting.time, "monotonic", lambda: clock["t"])
    slept: list[float] = []

    def sleep(s):
        slept.append(s)
        clock["t"] += s

    waiter = FakeWaiter(["wait"])
    with pytest.raises(AwsError, match="not done after"):
        wait_for(waiter, "thing", WaitPolicy(delay=1, max_delay=3, deadline=10), sleep=sleep)
    assert slept == [1, 1.5, 2.25, 3]  # 7.75 s slept; another 3 would pass the deadline
    assert waiter.calls == 5

    ok = FakeWaiter(["wait", "wait", "ok"])
    wait_for(ok, "thing", WaitPolicy(delay=1, deadline=10), sleep=lambda s: None)
    assert ok.calls == 3


# --- against moto (in process), with the EBS checks of devtools/moto_ext_ebs.py -------------


@pytest.fixture
def moto_ebs(monkeypatch):
    from moto import mock_aws

    from devtools import moto_ext_ebs, moto_ext_ec2

    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    moto_ext_ebs.install()
    try:
        with mock_aws():
            clients = AwsClients(AwsConfig(regions=("us-west-2",)))
            yield (clients.client("ebs", "us-west-2", retry=EBS_UPLOAD),
                   clients.client("ec2", "us-west-2"))
    finally:
        moto_ext_ec2.uninstall()


def test_upload_to_moto_stores_exactly_the_nonzero_blocks(tmp_path, moto_ebs):
    ebs, ec2 = moto_ebs
    blocks = {0: os.urandom(BLOCK_SIZE), 7: os.urandom(1000), 30: os.urandom(4096)}
    path = _image(tmp_path / "img", blocks, 30 * BLOCK_SIZE + 4096)  # last block partial
    up = SnapshotUploader(ebs, ec2, _settings(concurrency=8))
    result = up.upload(path, description="os", tags={"Name": "t"}, token="tok-1")
    listed = ebs.list_snapshot_blocks(SnapshotId=result.snapshot_id)["Blocks"]
    assert sorted(b["BlockIndex"] for b in listed) == [0, 7, 30]
    snap = ec2.describe_snapshots(SnapshotIds=[result.snapshot_id])["Snapshots"][0]
    assert snap["State"] == "completed" and snap["VolumeSize"] == 1
    token = next(b["BlockToken"] for b in listed if b["BlockIndex"] == 30)
    data = ebs.get_snapshot_block(SnapshotId=result.snapshot_id, BlockIndex=30,
                                  BlockToken=token)["BlockData"].read()
    assert data == blocks[30] + bytes(BLOCK_SIZE - 4096)


def test_moto_rejects_a_wrong_aggregate_checksum(tmp_path, moto_ebs, monkeypatch):
    """The extension really checks: a broken aggregate fails, and the snapshot is deleted."""
    ebs, ec2 = moto_ebs
    path = _image(tmp_path / "img", {0: b"a", 1: b"b"}, 2 * BLOCK_SIZE)
    monkeypatch.setattr(snapmod, "linear_checksum", lambda d: linear_checksum(list(d)[::-1]))
    with pytest.raises(AwsError, match="linear aggregate") as e:
        SnapshotUploader(ebs, ec2, _settings()).upload(path, description="d", tags={},
                                                       token="t")
    snapshot_id = str(e.value).split(" to ")[1].split()[0]
    with pytest.raises(ClientError):
        ec2.describe_snapshots(SnapshotIds=[snapshot_id])


# --- the worst case for one block, counted on real botocore clients ------------------------


class _Body(io.BytesIO):
    def stream(self, **_):
        yield self.read()


def _unavailable(request) -> AWSResponse:
    body = json.dumps({"message": "injected by test"}).encode()
    return AWSResponse(request.url, 503, {"x-amzn-ErrorType": "ServiceUnavailableException",
                                          "Content-Type": "application/json"}, _Body(body))


@pytest.mark.parametrize("failure", ["http-503", "connection-dropped"])
def test_one_block_is_sent_at_most_ten_times_when_every_send_fails(tmp_path, moto_server,
                                                                    failure):
    """Both retry layers at work: botocore (the EBS_UPLOAD client) inside our per-block loop.
    A before-send hook answers every PutSnapshotBlock itself, so each call of it is one send
    botocore would have put on the wire."""
    clients = AwsClients(AwsConfig(regions=("us-west-2",), endpoint_url=moto_server.url))
    ebs = clients.client("ebs", "us-west-2", retry=EBS_UPLOAD)
    ec2 = clients.client("ec2", "us-west-2")
    sends: list[int] = []

    def fail(request, **_):
        sends.append(int(request.url.rsplit("/", 1)[1]))
        if failure == "http-503":
            return _unavailable(request)
        raise EndpointConnectionError(endpoint_url=request.url)

    ebs.meta.events.register_first("before-send.ebs.PutSnapshotBlock", fail)
    path = _image(tmp_path / "img", {3: b"x"}, 4 * BLOCK_SIZE)
    up = SnapshotUploader(ebs, ec2, _settings(), sleep=lambda s: None)
    with pytest.raises(AwsError, match=f"block 3 of snap-.* failed after {BLOCK_ATTEMPTS} "
                                       "attempt.*the incomplete snapshot was deleted"):
        up.upload(path, description="d", tags={}, token=f"t-{failure}")
    assert sends == [3] * MAX_SENDS_PER_BLOCK
    assert MAX_SENDS_PER_BLOCK == 10
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []


def test_a_client_that_would_send_a_block_more_than_ten_times_is_refused():
    clients = AwsClients(AwsConfig(regions=("us-west-2",)))
    standard = clients.client("ebs", "us-west-2")  # 10 attempts x 5 block attempts = 50
    with pytest.raises(ValueError, match="sent 50 times.*retry=EBS_UPLOAD"):
        SnapshotUploader(standard, FakeEc2())
    SnapshotUploader(clients.client("ebs", "us-west-2", retry=EBS_UPLOAD), FakeEc2())
