"""pubsys.aws.errors: the one reading of AWS errors (codes, retryability, the operator's line)."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from pubsys.aws.errors import (
    RETRYABLE_CODES,
    THROTTLING_CODES,
    describe_error,
    error_code,
    is_retryable,
    is_throttling,
)


def _client_error(code: str, status: int = 400, message: str | None = "says no") -> ClientError:
    error = {"Code": code} if message is None else {"Code": code, "Message": message}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def test_every_throttling_code_is_retryable():
    assert THROTTLING_CODES < RETRYABLE_CODES
    assert "ThrottlingException" in THROTTLING_CODES and "RequestLimitExceeded" in THROTTLING_CODES
    assert "InternalError" in RETRYABLE_CODES and "InternalError" not in THROTTLING_CODES


@pytest.mark.parametrize("exc,code,throttling,retryable", [
    (_client_error("ThrottlingException"), "ThrottlingException", True, True),
    (_client_error("RequestLimitExceeded", 503), "RequestLimitExceeded", True, True),
    (_client_error("Whatever", 429), "Whatever", True, True),
    (_client_error("Whatever", 503), "Whatever", False, True),
    (_client_error("InternalServerException", 500), "InternalServerException", False, True),
    (_client_error("ValidationException"), "ValidationException", False, False),
    (_client_error("AccessDeniedException", 403), "AccessDeniedException", False, False),
    (EndpointConnectionError(endpoint_url="http://x"), None, False, True),
    (ReadTimeoutError(endpoint_url="http://x"), None, False, True),
    (NoCredentialsError(), None, False, False),
    (ParamValidationError(report="bad"), None, False, False),
    (ValueError("not AWS"), None, False, False),
])
def test_codes_throttling_and_retryable(exc, code, throttling, retryable):
    assert error_code(exc) == code
    assert is_throttling(exc) is throttling
    assert is_retryable(exc) is retryable


def test_describe_error_is_one_line_with_code_and_message():
    assert describe_error(_client_error("AccessDenied", 403)) == "AccessDenied: says no"
    assert describe_error(_client_error("AccessDenied", 403, message=None)) == "AccessDenied"
    assert describe_error(_client_error("AccessDenied", 403, message="")) == "AccessDenied"
    assert describe_error(EndpointConnectionError(endpoint_url="http://x")) == (
        'EndpointConnectionError: Could not connect to the endpoint URL: "http://x"')
    assert describe_error(KeyError("k")) == "KeyError: 'k'"
