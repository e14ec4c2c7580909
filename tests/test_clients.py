"""pubsys.aws.clients: one retry policy per client, chosen in the factory."""

from __future__ import annotations

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
