"""The one home for reading AWS errors: which codes mean "slow down", which mean "try again",
and the one line an operator sees for any AWS failure.

Every module that catches botocore errors asks these functions instead of looking into
`ClientError.response` itself, so the sets below are the only lists of codes in pubsys.
The code sets follow botocore's own standard retry mode (throttling codes and transient
codes), so what pubsys retries by itself agrees with what botocore retries under it.
"""

from __future__ import annotations

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

# AWS's ways of saying "too many requests": a caller that paces itself slows down on these.
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException",
})

# Worth another try: throttling plus the service's own transient failures. Anything else
# (a bad checksum, access denied, a resource in the wrong state) fails at once.
RETRYABLE_CODES = THROTTLING_CODES | frozenset({
    "InternalError", "InternalFailure", "InternalServerError", "InternalServerException",
    "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout",
    "RequestTimeoutException",
})


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a service error ("ThrottlingException"), else None."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") or None
    return None


def _status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_throttling(exc: BaseException) -> bool:
    """AWS refused the call because of its rate (HTTP 429 counts too)."""
    return error_code(exc) in THROTTLING_CODES or _status(exc) == 429


def is_retryable(exc: BaseException) -> bool:
    """The same call may well succeed later: throttling, a 5xx answer, or a connection that
    failed or dropped (botocore's connection and HTTP client errors). Bad parameters, missing
    credentials and every other 4xx are not."""
    if isinstance(exc, ClientError):
        return error_code(exc) in RETRYABLE_CODES or _status(exc) >= 500 or is_throttling(exc)
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def describe_error(exc: BaseException) -> str:
    """One line for the operator: "Code: Message" for a service error, else the error's type
    and text ("EndpointConnectionError: Could not connect to ..."). AWS messages carry no
    secrets, so this is safe to log."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code") or "Error"
        message = err.get("Message") or ""
        return f"{code}: {message}" if message else code
    return f"{type(exc).__name__}: {exc}"
