"""The SSM parameter JSON: region -> parameter name -> value.

`ssm` and `promote-ssm` write it as their output; `validate-ssm` reads it as the
expected set. Writes are atomic, so a crash never leaves half a file for the next step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fsutil import write_json_atomic

SsmJson = dict[str, dict[str, str]]


def _read_json(path: str | Path, what: str) -> Any:
    """`path` parsed as JSON; a missing, unreadable or broken file names itself and `what`."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected {what}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path}: {what} is not valid JSON: {e}") from None


def load_ssm_json(path: str | Path, *, missing_ok: bool = False) -> SsmJson:
    """region -> parameter name -> value; with `missing_ok` an absent file is empty."""
    if missing_ok and not Path(path).exists():
        return {}
    data = _read_json(path, "SSM parameter JSON")
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object mapping region to "
                         "{parameter name: value}")
    for region, params in data.items():
        if not isinstance(params, dict):
            raise UsageError(f"{path}: region {region!r} must map to an object of "
                             "parameter name -> value")
        for name, value in params.items():
            if not isinstance(value, str):
                raise UsageError(f"{path}: region {region!r}, parameter {name!r}: the value "
                                 f"must be a string, got {type(value).__name__}")
    return data


def write_ssm_json(path: str | Path, data: Mapping[str, Mapping[str, str]]) -> None:
    write_json_atomic(path, data)
