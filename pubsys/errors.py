"""Errors an operator can act on.

Every failure pubsys reports is a `PubsysError` (or subclass) whose message names the file,
key, flag, region or resource involved and says what is expected. The CLI prints the message
on one line and exits with the error's `exit_code`; anything else is a bug and shows a
traceback only with `--log-level DEBUG`.
"""

from __future__ import annotations


class PubsysError(Exception):
    """A failure with a message meant for the operator."""

    exit_code = 1


class UsageError(PubsysError):
    """Bad flags or flag combinations (exit code 2, like argparse)."""

    exit_code = 2


class ConfigError(PubsysError):
    """Infra.toml / Infra.lock is missing a key, has a wrong type or an unknown key."""


class PolicyError(PubsysError):
    """A wave, expiration, SSM-template or Release.toml file is invalid."""


class RepoError(PubsysError):
    """Building, loading, signing or writing a TUF repository failed."""


class SigningKeyError(PubsysError):
    """A signing key cannot be loaded or is not trusted for a role."""


class AwsError(PubsysError):
    """An AWS call failed in a way retries could not fix."""


class ValidationFailed(PubsysError):
    """A validate-* or check-* command found problems (its report was already printed)."""
