"""Faults AWS produces and moto does not: throttled PutParameter calls, an unreadable region.

The commands run in this process against the moto server, with a botocore `before-send`
hook on the clients pubsys builds that answers some calls with an AWS error instead of
sending them (the server never sees those calls, which is what we count).
"""

from __future__ import annotations

import io
import json
import threading
import urllib.request
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from conftest import ROOT

from pubsys.aws import clients as clients_module
from pubsys.cli import build_parser
from pubsys.cli.ssm import HANDLERS
from pubsys.config import load_infra_config
from pubsys.errors import ValidationFailed

REGIONS = ["us-west-2", "us-east-1", "eu-west-1"]
PREFIX = "/pubsys-faults"
DEFAULTS = ROOT / "policies" / "ssm" / "defaults.toml"


class _Raw(io.BytesIO):
    def stream(self, **_: Any):
        yield self.read()


def aws_error(code: str, message: str, status: int = 400) -> AWSResponse:
    body = json.dumps({"__type": code, "message": message}).encode()
    return AWSResponse("https://ssm.invalid/", status,
                       {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body))


@pytest.fixture
def env(moto_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("PUBSYS_SSM_PUT_RATE", "0")
    monkeypatch.setenv("PUBSYS_SSM_GET_RATE", "0")
    monkeypatch.setenv("PUBSYS_SSM_READBACK_SECONDS", "2")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Infra.toml").write_text(
        f"[aws]\nregions = {json.dumps(REGIONS)}\nssm_prefix = \"{PREFIX}\"\n")
    return moto_server


def hook_clients(monkeypatch, region_filter, event: str, handler) -> None:
    """Register `handler` on `event` for every client pubsys builds in a matching region."""
    original = clients_module.AwsClients.client

    def client(self, service, region=None, **kwargs):
        c = original(self, service, region, **kwargs)
        if service == "ssm" and region_filter(region):
            c.meta.events.register(event, handler, unique_id=f"test-{event}-{id(c)}")
        return c

    monkeypatch.setattr(clients_module.AwsClients, "client", client)


def run(argv: list[str]) -> int:
    """Parse like the CLI and call the command (cli.main would reconfigure logging)."""
    args = build_parser().parse_args(argv)
    return int(HANDLERS[args.command](args, load_infra_config(args.infra_config_path)) or 0)


def server_calls(url: str) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(f"{url}/pubsys-ext/ssm/calls") as resp:
        return json.load(resp)


def write_amis(url: str) -> dict[str, str]:
    amis = {}
    for region in REGIONS:
        ec2 = boto3.client("ec2", region_name=region, endpoint_url=url)
        amis[region] = ec2.register_image(Name="br-1.0.0", Description="t")["ImageId"]
    with open("amis.json", "w") as f:
        json.dump({r: {"id": i, "name": "br-1.0.0", "public": False,
                       "launch_permissions": []} for r, i in amis.items()}, f)
    return amis


def throttle_first(monkeypatch, operation: str, n: int) -> Counter[str]:
    """Answer the first `n` `operation` calls per region with ThrottlingException; returns
    the count of throttled calls per region."""
    seen: Counter[str] = Counter()
    throttled: Counter[str] = Counter()
    lock = threading.Lock()

    def throttle(request, **_):
        region = request.context.get("client_region")
        with lock:
            seen[region] += 1
            if seen[region] <= n:
                throttled[region] += 1
                return aws_error("ThrottlingException", "Rate exceeded")
        return None

    original = clients_module.AwsClients.client

    def client(self, service, region=None, **kwargs):
        c = original(self, service, region, **kwargs)
        if service == "ssm" and not hasattr(c, f"_test_throttle_{operation}"):
            c.meta.events.register(
                f"before-call.ssm.{operation}",
                lambda context, **_: context.__setitem__("client_region", c.meta.region_name))
            c.meta.events.register(f"before-send.ssm.{operation}", throttle)
            setattr(c, f"_test_throttle_{operation}", True)
        return c

    monkeypatch.setattr(clients_module.AwsClients, "client", client)
    return throttled


def test_throttled_writes_slow_down_and_still_set_every_value(env, monkeypatch, caplog):
    amis = write_amis(env.url)
    # Per region, the first 7 PutParameter calls are throttled: more than botocore's own
    # attempts for both parameters, so pubsys's pacer has to slow down and send them again.
    throttle_first_n = 7
    throttled = throttle_first(monkeypatch, "PutParameter", throttle_first_n)

    assert run(["ssm", "--ami-input", "amis.json", "--variant", "v", "--arch", "x86_64",
                "--version", "1.0.0", "--template-path", str(DEFAULTS)]) == 0

    assert throttled == {r: throttle_first_n for r in REGIONS}
    calls = server_calls(env.url)
    assert {r: calls[r]["PutParameter"] for r in REGIONS} == {r: 2 for r in REGIONS}
    for region in REGIONS:
        got = boto3.client("ssm", region_name=region, endpoint_url=env.url).get_parameters(
            Names=[f"{PREFIX}/v/x86_64/1.0.0/image_id", f"{PREFIX}/v/x86_64/1.0.0/image_version"]
        )["Parameters"]
        assert {p["Name"].rsplit("/", 1)[1]: p["Value"] for p in got} == \
            {"image_id": amis[region], "image_version": "1.0.0"}
    slowed = [r.getMessage() for r in caplog.records if "throttled by AWS" in r.getMessage()]
    assert {region for region in REGIONS if any(region in m for m in slowed)} == set(REGIONS)


def test_throttled_reads_slow_down_and_still_read_every_value(env, monkeypatch, caplog):
    write_amis(env.url)
    # More throttled GetParameters calls per region than botocore's attempts (PACED: 3), so
    # the read is sent again by the region's pacer, which slows down.
    throttled = throttle_first(monkeypatch, "GetParameters", 7)

    assert run(["ssm", "--ami-input", "amis.json", "--variant", "v", "--arch", "x86_64",
                "--version", "1.0.0", "--template-path", str(DEFAULTS)]) == 0

    assert throttled == {r: 7 for r in REGIONS}
    calls = server_calls(env.url)
    assert {r: calls[r]["PutParameter"] for r in REGIONS} == {r: 2 for r in REGIONS}
    slowed = [r.getMessage() for r in caplog.records
              if "GetParameters" in r.getMessage() and "throttled by AWS" in r.getMessage()]
    assert {region for region in REGIONS if any(region in m for m in slowed)} == set(REGIONS)


def test_a_region_that_cannot_be_read_is_unreachable_not_a_crash(env, monkeypatch, capsys):
    expected = {}
    for region in REGIONS:
        ssm = boto3.client("ssm", region_name=region, endpoint_url=env.url)
        ssm.put_parameter(Name=f"{PREFIX}/a", Value=region, Type="String")
        expected[region] = {f"{PREFIX}/a": region}
    with open("expected.json", "w") as f:
        json.dump(expected, f)
    hook_clients(monkeypatch, lambda region: region == "eu-west-1", "before-send.ssm",
                 lambda **_: aws_error("UnrecognizedClientException",
                                       "The security token included in the request is invalid"))

    with pytest.raises(ValidationFailed):
        run(["validate-ssm", "--expected-parameters-path", "expected.json", "--json",
             "--check-unexpected", "--write-results-path", "results.json"])
    with open("results.json") as f:
        rows = json.load(f)
    assert [(r["region"], r["status"]) for r in rows] == [
        ("eu-west-1", "Unreachable"), ("us-east-1", "Correct"), ("us-west-2", "Correct")]
    counts = json.loads(capsys.readouterr().out)
    assert {region: {k: n for k, n in c.items() if n} for region, c in counts.items()} == {
        "eu-west-1": {"unreachable": 1}, "us-east-1": {"correct": 1},
        "us-west-2": {"correct": 1}}


def test_a_parameter_that_appears_before_it_is_set_is_replaced_only_when_clobbering(env):
    """The race between reading and writing: Overwrite is off for a parameter read as absent,
    so one created meanwhile survives; when clobbering is allowed it is replaced, as
    Bottlerocket's pubsys always does."""
    from pubsys.aws.clients import AwsClients
    from pubsys.errors import AwsError
    from pubsys.ssm.diff import Change, SsmKey
    from pubsys.ssm.store import Pacing, ParameterStore

    name = f"{PREFIX}/raced"
    ssm = boto3.client("ssm", region_name="us-west-2", endpoint_url=env.url)
    ssm.put_parameter(Name=name, Value="theirs", Type="String")
    store = ParameterStore(AwsClients(load_infra_config("Infra.toml").aws),
                           Pacing.from_env())
    change = Change(SsmKey("us-west-2", name), "ours", None)  # read as absent
    with pytest.raises(AwsError, match="it appeared after it was read; nothing replaced it"):
        store.write([change])
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "theirs"
    store.write([change], replace_appeared=True)
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "ours"
