"""pubsys.aws.clients: one retry policy per client, chosen in the factory."""

from __future__ import annotations

import datetime
import types

import pytest

from pubsys.aws.clients import EBS_UPLOAD, PACED, STANDARD, AwsClients, RetryPolicy
from pubsys.config import AwsConfig


def _retries(client) -> dict:
    return client.meta.config.retries


def test_policies_reach_the_clients_and_each_policy_has_its_own_client():
    clients = AwsClients(AwsConfig(regions=("us-west-2",)))
    default = clients.client("ssm", "us-west-2")
    paced = clients.client("ssm", "us-west-2", retry=PACED)
    ebs = clients.client("ebs", "us-west-2", pool=64, retry=EBS_UPLOAD)
    assert _retries(default) == {"mode": "adaptive", "total_max_attempts": 10}
    assert _retries(paced) == {"mode": "standard", "total_max_attempts": 3}
    assert _retries(ebs) == {"mode": "adaptive", "total_max_attempts": 2}
    assert ebs.meta.config.max_pool_connections == 64
    assert default is clients.client("ssm", "us-west-2", retry=STANDARD)
    assert paced is clients.client("ssm", "us-west-2", retry=PACED)
    assert paced is not default


def test_named_policies():
    assert (STANDARD.mode, STANDARD.max_attempts) == ("adaptive", 10)
    assert PACED.mode == "standard" and PACED.max_attempts <= 3
    with pytest.raises(ValueError, match="retry mode"):
        RetryPolicy("legacy", 3)
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy("standard", 0)


# --- role chains -----------------------------------------------------------------------------

ROLE_1 = "arn:aws:iam::111111111111:role/publisher"
ROLE_2 = "arn:aws:iam::222222222222:role/eu-publisher"


class _Clock:
    """Moves the clock botocore's credentials and moto's STS read, together (the way
    freezegun would): `advance` makes an hour pass without waiting for it."""

    def __init__(self, monkeypatch):
        import botocore.credentials
        import moto.sts.models

        self.offset = datetime.timedelta(0)
        clock = self

        class _Meta(type):
            def __instancecheck__(cls, obj):  # real datetimes still count as datetimes
                return isinstance(obj, datetime.datetime)

        class ShiftedDatetime(metaclass=_Meta):
            @staticmethod
            def now(tz=None):
                return datetime.datetime.now(tz) + clock.offset

        real_utcnow = moto.sts.models.utcnow
        monkeypatch.setattr(botocore.credentials, "datetime", types.SimpleNamespace(
            datetime=ShiftedDatetime, timedelta=datetime.timedelta))
        monkeypatch.setattr(moto.sts.models, "utcnow", lambda: real_utcnow() + clock.offset)

    def advance(self, minutes: int) -> None:
        self.offset += datetime.timedelta(minutes=minutes)


def _assumed(role: str) -> list:
    from moto.sts.models import sts_backends

    account = role.split(":")[4]
    return [r for r in sts_backends[account]["aws"].assumed_roles if r.role_arn == role]


def test_role_chain_refreshes_both_roles_when_credentials_expire_mid_run(monkeypatch):
    from moto import mock_aws

    clock = _Clock(monkeypatch)
    with mock_aws():
        clients = AwsClients(AwsConfig(regions=("eu-west-1",), role=ROLE_1,
                                       region_roles={"eu-west-1": ROLE_2}))
        sts = clients.client("sts", "eu-west-1")
        signed_with: list[str] = []
        sts.meta.events.register("before-send.sts.GetCallerIdentity", lambda request, **_:
                                 signed_with.append(_access_key(request)))
        assert (len(_assumed(ROLE_1)), len(_assumed(ROLE_2))) == (0, 0)  # nothing up front

        who = sts.get_caller_identity()
        assert who["Arn"] == "arn:aws:sts::222222222222:assumed-role/eu-publisher/pubsys"
        assert (len(_assumed(ROLE_1)), len(_assumed(ROLE_2))) == (1, 1)
        first_key = _assumed(ROLE_2)[-1].access_key_id
        assert signed_with == [first_key]

        clock.advance(30)  # credentials (one hour) still fresh: nothing is assumed again
        sts.get_caller_identity()
        assert (len(_assumed(ROLE_1)), len(_assumed(ROLE_2))) == (1, 1)

        clock.advance(20)  # 10 minutes left: botocore refreshes the chain, role 1 first
        who = sts.get_caller_identity()
        assert (len(_assumed(ROLE_1)), len(_assumed(ROLE_2))) == (2, 2)
        assert who["Arn"] == "arn:aws:sts::222222222222:assumed-role/eu-publisher/pubsys"
        new_key = _assumed(ROLE_2)[-1].access_key_id
        assert new_key != first_key and signed_with[-1] == new_key

        clock.advance(30)  # the refreshed credentials are good for another half hour
        sts.get_caller_identity()
        assert (len(_assumed(ROLE_1)), len(_assumed(ROLE_2))) == (2, 2)
        assert signed_with[-1] == new_key


def test_regions_sharing_the_first_role_assume_it_once(monkeypatch):
    from moto import mock_aws

    with mock_aws():
        clients = AwsClients(AwsConfig(regions=("us-west-2", "eu-west-1"), role=ROLE_1,
                                       region_roles={"eu-west-1": ROLE_2}))
        west = clients.client("sts", "us-west-2").get_caller_identity()
        eu = clients.client("sts", "eu-west-1").get_caller_identity()
        assert west["Arn"].endswith(":assumed-role/publisher/pubsys")
        assert eu["Arn"].endswith(":assumed-role/eu-publisher/pubsys")
        assert (len(_assumed(ROLE_1)), len(_assumed(ROLE_2))) == (1, 1)


def _access_key(request) -> str:
    """The access key id a request was signed with (from its SigV4 Authorization header)."""
    auth = request.headers["Authorization"]
    auth = auth.decode() if isinstance(auth, bytes) else auth
    return auth.split("Credential=", 1)[1].split("/", 1)[0]


def _scope_region(request) -> str:
    """The region a request was signed for (its SigV4 credential scope)."""
    auth = request.headers["Authorization"]
    auth = auth.decode() if isinstance(auth, bytes) else auth
    return auth.split("Credential=", 1)[1].split("/")[2]


def test_roles_are_assumed_through_sts_in_the_base_region():
    from moto import mock_aws

    with mock_aws():
        # The base region is us-west-2, but the first client the run needs is eu-west-1's.
        clients = AwsClients(AwsConfig(regions=("ap-south-1", "eu-west-1"), role=ROLE_1,
                                       region_roles={"eu-west-1": ROLE_2}),
                             sts_region="us-west-2")
        assumed_in: list[tuple[str, str]] = []
        clients._base_session().events.register(
            "before-send.sts.AssumeRole",
            lambda request, **_: assumed_in.append((_scope_region(request), request.url)))
        eu = clients.client("ec2", "eu-west-1")
        eu.describe_images(Owners=["self"])
        clients.client("ec2", "ap-south-1").describe_images(Owners=["self"])
        assert [region for region, _ in assumed_in] == ["us-west-2", "us-west-2"]
        assert all("us-west-2" in url for _, url in assumed_in)
        assert eu.meta.region_name == "eu-west-1"  # the service client stays in its region


def test_sts_region_defaults_to_the_first_configured_region():
    assert AwsClients(AwsConfig(regions=("eu-west-1", "us-east-1"))).sts_region == "eu-west-1"
    assert AwsClients(AwsConfig()).sts_region is None
