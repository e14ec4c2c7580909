"""The pure parts of pubsys.ssm: differences, refusals, validation rows, pacing, files."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from pubsys.aws.ami_json import load_ami_json
from pubsys.aws.pacing import Cancelled, Pacer, parallel_map
from pubsys.cli import build_parser
from pubsys.cli.ssm import name_flags
from pubsys.errors import UsageError
from pubsys.ssm.diff import (
    Change,
    SsmKey,
    SsmRefused,
    compare_parameters,
    data_type_for,
    diff_parameters,
    format_changes,
    refuse_clobber,
    to_ssm_json,
    to_write,
    under_path,
)
from pubsys.ssm.ssm_json import load_ssm_json
from pubsys.ssm.store import Pacing

W, E = "us-west-2", "eu-west-1"


def test_difference_classifies_new_unchanged_and_changing():
    wanted = {SsmKey(W, "/p/id"): "ami-2", SsmKey(W, "/p/v"): "1", SsmKey(E, "/p/id"): "ami-3"}
    current = {SsmKey(W, "/p/id"): "ami-1", SsmKey(W, "/p/v"): "1",
               SsmKey(W, "/p/old"): "not wanted any more"}
    changes = diff_parameters(wanted, current)
    assert {(c.key, c.kind, c.old, c.new) for c in changes} == {
        (SsmKey(W, "/p/id"), "changing", "ami-1", "ami-2"),
        (SsmKey(W, "/p/v"), "unchanged", "1", "1"),
        (SsmKey(E, "/p/id"), "new", None, "ami-3"),
    }
    assert {c.key for c in to_write(changes)} == {SsmKey(W, "/p/id"), SsmKey(E, "/p/id")}


def test_difference_output_shows_old_and_new_values_and_counts():
    text = format_changes(diff_parameters(
        {SsmKey(W, "/p/id"): "ami-2", SsmKey(E, "/p/id"): "ami-3", SsmKey(W, "/p/v"): "1"},
        {SsmKey(W, "/p/id"): "ami-1", SsmKey(W, "/p/v"): "1"}))
    lines = [line.split() for line in text.splitlines()]
    assert lines[:3] == [["new", "eu-west-1", "/p/id", "ami-3"],
                         ["changing", "us-west-2", "/p/id", "ami-1", "->", "ami-2"],
                         ["unchanged", "us-west-2", "/p/v", "1"]]
    assert text.splitlines()[-1] == "1 new, 1 changing, 1 unchanged"


def test_nothing_to_do_says_no_changes():
    same = {SsmKey(W, "/p/id"): "ami-1"}
    assert format_changes(diff_parameters(same, same)).splitlines()[-1] == \
        "no changes (1 parameters unchanged)"


def test_clobber_refusal_names_every_changing_parameter():
    changes = [Change(SsmKey(W, "/p/id"), "ami-2", "ami-1"), Change(SsmKey(E, "/p/x"), "a", None)]
    with pytest.raises(SsmRefused) as e:
        refuse_clobber(changes)
    assert "/p/id in us-west-2 (ami-1 -> ami-2)" in str(e.value)
    # The flag is the CLI's word for the permission the refusal names.
    assert e.value.permission == "allow_clobber" and "--allow-clobber" not in str(e.value)
    assert "--allow-clobber" in str(name_flags(e.value)) and "/p/x" not in str(e.value)
    refuse_clobber([Change(SsmKey(W, "/p/id"), "ami-1", "ami-1")])  # unchanged is fine


@pytest.mark.parametrize("value,kind", [
    ("ami-0123456789abcdef0", "aws:ec2:image"), ("ami-12345678", "aws:ec2:image"),
    ("1.0.0", "text"), ("ami-xyz", "text"), ("see ami-12345678", "text"),
])
def test_only_ami_ids_get_the_image_data_type(value, kind):
    assert data_type_for(value) == kind


def test_validation_rows_cover_every_status():
    expected = {W: {"/p/a": "1", "/p/b": "2", "/p/c": "3"}, E: {"/p/a": "1"}}
    actual = {W: {"/p/a": "1", "/p/b": "two", "/p/extra": "x"}, E: None}
    rows = compare_parameters(expected, actual, check_unexpected=True)
    assert [(r["region"], r["name"], r["status"]) for r in rows] == [
        (E, "/p/a", "Unreachable"),
        (W, "/p/a", "Correct"), (W, "/p/b", "Incorrect"), (W, "/p/c", "Missing"),
        (W, "/p/extra", "Unexpected"),
    ]
    assert rows[2]["expected_value"] == "2" and rows[2]["actual_value"] == "two"
    without = compare_parameters(expected, actual, check_unexpected=False)
    assert "Unexpected" not in {r["status"] for r in without}


@pytest.mark.parametrize("name,path,inside", [
    ("/p/a", "/p", True), ("/p/a/b", "/p", True), ("/pp/a", "/p", False), ("/x", "/", True),
])
def test_under_path(name, path, inside):
    assert under_path(name, path) is inside


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_spaces_calls_at_its_rate():
    clock = FakeClock()
    pacer = Pacer(4.0, floor=0.5, throttle_start=10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait()
    assert clock.now == pytest.approx(1.0)  # 5 calls at 4/s: the 5th goes at t=1 s


def test_pacer_halves_on_throttle_once_per_cooldown_and_recovers():
    clock = FakeClock()
    pacer = Pacer(4.0, floor=0.5, throttle_start=10, recover_after=3, cooldown=1.0,
                  clock=clock, sleep=clock.sleep)
    pacer.throttled()
    pacer.throttled()  # same burst: counted, not halved again
    assert (pacer.rate, pacer.throttles) == (2.0, 2)
    clock.now += 2
    for _ in range(4):
        pacer.throttled()
        clock.now += 2
    assert pacer.rate == 0.5  # the floor
    for _ in range(3):
        pacer.succeeded()
    assert pacer.rate == 0.75
    for _ in range(30):
        pacer.succeeded()
    assert pacer.rate == 4.0  # never above the configured rate


def test_unpaced_pacer_starts_pacing_when_throttled():
    clock = FakeClock()
    pacer = Pacer(None, floor=0.5, throttle_start=10, recover_after=1, clock=clock,
                  sleep=clock.sleep)
    pacer.wait()
    pacer.wait()
    assert clock.slept == []
    pacer.throttled()
    assert pacer.rate == 10
    pacer.succeeded()
    assert pacer.rate is None


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "PutParameter")


def test_pacer_sends_a_throttled_call_again_and_gives_up_after_its_rounds():
    clock = FakeClock()
    pacer = Pacer(None, floor=0.5, throttle_start=10, clock=clock, sleep=clock.sleep)
    answers = [_client_error("ThrottlingException")] * 2 + ["ok"]

    def send() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert pacer.call(send) == "ok" and answers == []
    answers[:] = [_client_error("ThrottlingException")] * 3
    with pytest.raises(ClientError):
        pacer.call(send, rounds=2)
    assert answers == []  # sent 1 + 2 times, then the last throttle is raised
    answers[:] = [_client_error("AccessDeniedException"), "never sent"]
    with pytest.raises(ClientError, match="AccessDenied"):
        pacer.call(send)
    assert answers == ["never sent"]


def test_cancel_wakes_a_waiting_pacer_and_nothing_is_sent_after_it():
    cancel = threading.Event()
    pacer = Pacer(0.1, floor=0.05, throttle_start=1, cancel=cancel)  # 10 s between calls
    sent: list[int] = []
    pacer.call(lambda: sent.append(1))
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        pacer.call(lambda: sent.append(2))  # would wait 10 s for its slot
    assert time.monotonic() - started < 5 and sent == [1]
    unpaced = Pacer(None, floor=1, throttle_start=1, cancel=cancel)
    with pytest.raises(Cancelled):
        unpaced.call(lambda: sent.append(3))
    assert sent == [1]


def test_parallel_map_sets_cancel_on_interrupt_and_not_on_an_error():
    cancel = threading.Event()
    assert parallel_map(lambda x: x * 2, [1, 2, 3], workers=2, cancel=cancel) == [2, 4, 6]

    def fail(x: int) -> int:
        raise ValueError(x)

    with pytest.raises(ValueError):
        parallel_map(fail, [1, 2], workers=1, cancel=cancel)
    assert not cancel.is_set()  # one failure does not cancel the other users of `cancel`

    def interrupt(x: int) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        parallel_map(interrupt, [1], workers=1, cancel=cancel)
    assert cancel.is_set()


def test_pacing_defaults_are_safe_and_env_overrides_them():
    assert Pacing.from_env({}) == Pacing(put_rate=3.0, get_rate=20.0, readback_seconds=60.0)
    p = Pacing.from_env({"PUBSYS_SSM_PUT_RATE": "0", "PUBSYS_SSM_GET_RATE": "50",
                         "PUBSYS_SSM_READBACK_SECONDS": "2"})
    assert (p.put_rate, p.get_rate, p.readback_seconds) == (None, 50.0, 2.0)
    with pytest.raises(UsageError, match="PUBSYS_SSM_PUT_RATE='fast' must be a number"):
        Pacing.from_env({"PUBSYS_SSM_PUT_RATE": "fast"})


def test_ami_json_loads_and_bad_entries_name_file_and_region(tmp_path):
    good = tmp_path / "amis.json"
    good.write_text(json.dumps({W: {"id": "ami-0123456789abcdef0", "name": "n", "public": True,
                                    "launch_permissions": [{"group": "all"}]}}))
    assert load_ami_json(good)[W].id == "ami-0123456789abcdef0"
    bad = tmp_path / "bad.json"
    for content, message in [
        ({}, "at least one region"),
        ({W: "ami-0123456789abcdef0"}, f"region '{W}' must map to an object"),
        ({W: {"id": "i-123", "name": "n"}}, f"region '{W}': 'id' must be an AMI id"),
        ({W: {"id": "ami-0123456789abcdef0"}}, "'name' must be a non-empty string"),
    ]:
        bad.write_text(json.dumps(content))
        with pytest.raises(UsageError, match=message) as e:
            load_ami_json(bad)
        assert str(bad) in str(e.value)
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_ami_json(bad)
    with pytest.raises(UsageError, match="not found"):
        load_ami_json(tmp_path / "absent.json")


def test_ssm_json_round_trips_and_rejects_non_string_values(tmp_path):
    params = {SsmKey(W, "/p/a"): "1", SsmKey(E, "/p/a"): "2"}
    path = tmp_path / "ssm.json"
    path.write_text(json.dumps(to_ssm_json(params)))
    assert load_ssm_json(path) == {W: {"/p/a": "1"}, E: {"/p/a": "2"}}
    assert load_ssm_json(tmp_path / "absent.json", missing_ok=True) == {}
    path.write_text(json.dumps({W: {"/p/a": 1}}))
    with pytest.raises(UsageError, match="parameter '/p/a': the value must be a string"):
        load_ssm_json(path)


def test_ssm_domain_code_never_sees_flags():
    """Only pubsys/cli/ knows flags: the SSM modules take options and name no flag."""
    root = Path(__file__).resolve().parent.parent / "pubsys"
    for path in [*sorted((root / "ssm").glob("*.py")), root / "aws" / "pacing.py"]:
        text = path.read_text()
        assert "argparse" not in text, path
        assert not re.search(r"--[a-z]", text), f"{path} names a flag"


def test_flag_syntax_is_checked_when_parsing(capsys):
    parser = build_parser()
    base = ["ssm", "--ami-input", "a.json", "--variant", "v", "--arch", "x86_64",
            "--template-path", "t.toml"]
    args = parser.parse_args([*base, "--version", " 1.0.0 ", "--regions",
                              "eu-west-1, us-west-2,eu-west-1"])
    assert (args.image_version, args.regions) == ("1.0.0", ("eu-west-1", "us-west-2"))
    for bad, message in [(["--version", " "], "argument --version: must not be empty"),
                         (["--version", "1", "--regions", "us-west-2,nowhere"],
                          "argument --regions: 'nowhere' is not a region name")]:
        with pytest.raises(SystemExit) as e:
            parser.parse_args([*base, *bad])
        assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [
    ("--variant", "../etc"), ("--variant", "a/b"), ("--version", "1.0/../../x"),
    ("--version", ".."), ("--source", "."), ("--source", "1.0.0/x"), ("--target", "../latest"),
    ("--target", "la test"), ("--arch", "x86_64/.."),
])
def test_names_that_end_up_in_ssm_names_must_be_safe(flag, value, capsys):
    parser = build_parser()
    ssm = ["ssm", "--ami-input", "a.json", "--variant", "v", "--arch", "x86_64",
           "--version", "1.0.0", "--template-path", "t.toml"]
    promote = ["promote-ssm", "--variant", "v", "--arch", "x86_64", "--source", "1.0.0",
               "--target", "latest", "--template-path", "t.toml"]
    argv = promote if flag in ("--source", "--target") else ssm
    assert parser.parse_args(argv).command in ("ssm", "promote-ssm")
    with pytest.raises(SystemExit) as e:
        parser.parse_args([*argv, flag, value])
    assert e.value.code == 2 and f"argument {flag}:" in capsys.readouterr().err


def test_result_filters_accumulate_and_keep_comma_lists(capsys):
    parser = build_parser()
    base = ["validate-ssm", "--expected-parameters-path", "e.json"]
    args = parser.parse_args([*base, "--write-results-filter", "missing,Incorrect",
                              "--write-results-filter", "UNREACHABLE"])
    assert args.write_results_filter == ("Incorrect", "Missing", "Unreachable")
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--write-results-filter", "Missing,Wrong"])
    assert "argument --write-results-filter: unknown status 'Wrong'" in capsys.readouterr().err


def test_region_counts_list_every_status_and_region():
    from pubsys.report import region_counts

    rows = [{"region": W, "status": "Correct"}, {"region": W, "status": "Missing"},
            {"region": W, "status": "Correct"}]
    zero = {"correct": 0, "incorrect": 0, "missing": 0, "unexpected": 0, "unreachable": 0}
    assert region_counts(rows, ("Correct", "Incorrect", "Missing", "Unexpected", "Unreachable"),
                         [W, E]) == {W: {**zero, "correct": 2, "missing": 1}, E: zero}
