"""Secrets in URLs never reach a log line or an error message.

Operators configure URLs that carry credentials: `https://user:password@host/...` (or a token
as the user), and presigned URLs whose query string holds a signature, an access key id or a
session token (S3's `X-Amz-Signature`/`X-Amz-Credential`/`X-Amz-Security-Token`, S3's older
`AWSAccessKeyId`/`Signature`, CloudFront's `Signature`/`Policy`/`Key-Pair-Id`, GCS's
`X-Goog-*`, Azure's `sig`). pubsys needs the real URL to fetch from it, but whatever it prints
goes through `redact`, which works on any text (a URL, or an error message that embeds one,
such as urllib3's), so one helper covers both. Redaction keeps the scheme, host and path, so
the operator still sees where a request went.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# scheme://USERINFO@ -> scheme://***@ (the user part may itself be a token)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s'\"<>]+@")
# ?NAME=VALUE or &NAME=VALUE for names that carry a credential (case-insensitive)
_SECRET_PARAMS = (
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid",
    "signature", "policy", "key-pair-id", "x-goog-signature", "x-goog-credential", "sig",
    "token", "access_token", "password", "secret",
)
_QUERY = re.compile(
    r"(?P<name>[?&;](?:" + "|".join(re.escape(p) for p in _SECRET_PARAMS) + r")=)"
    r"[^&;#:\s'\"<>]*", re.IGNORECASE)


def redact(text: object) -> str:
    """`text` (a URL or a message) with credentials in URLs replaced by `***`."""
    s = str(text)
    s = _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", s)
    return _QUERY.sub(lambda m: m["name"] + MASK, s)


class RedactingFilter(logging.Filter):
    """Redacts a log record's message (for loggers of libraries that log URLs, such as
    urllib3's retry warnings, which name the URL with its query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = redact(message)
        if shown != message:
            record.msg, record.args = shown, None
        return True


_FILTER = RedactingFilter()


def redact_library_logs(*loggers: str) -> None:
    """Attach the redacting filter to these loggers (idempotent)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
