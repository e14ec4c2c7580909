"""Loaders for the declarative policy files, pure apart from reading the file.

- wave policy: `[[waves]]` with `start_after` and `fleet_percentage` -> seed -> time schedule;
- expiration policy: how long snapshot, targets and timestamp metadata stay valid;
- Release.toml: the release version and its `(from, to)` migrations;
- arch names: what operators type vs. what TUF repos, EC2 and SSM call them.

Each loader rejects what update clients would choke on, naming the file and the entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .config import read_toml
from .errors import PolicyError
from .timespec import parse_offset, parse_rfc3339
from .version import Version

# Update clients pick a random seed in [0, MAX_SEED) and join the wave their seed falls in.
MAX_SEED = 2048

# --- arch names --------------------------------------------------------------------------

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def repo_arch(arch: str) -> str:
    """The arch name repos and manifests use (x86_64, aarch64)."""
    try:
        return _ARCH[arch.strip().lower()]
    except KeyError:
        raise PolicyError(
            f"unknown arch {arch!r}; expected one of x86_64, amd64, aarch64, arm64"
        ) from None


def ec2_arch(arch: str) -> str:
    """The arch name EC2 and SSM parameters use (x86_64, arm64)."""
    return {"x86_64": "x86_64", "aarch64": "arm64"}[repo_arch(arch)]


# --- waves -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wave:
    start_after: timedelta | datetime  # offset from the release start, or an absolute time
    fleet_percentage: int

    def start_time(self, release_start: datetime) -> datetime:
        if isinstance(self.start_after, datetime):
            return self.start_after
        return release_start + self.start_after


@dataclass(frozen=True)
class WavePolicy:
    waves: tuple[Wave, ...]
    source: str = "<waves>"

    def schedule(self, release_start: datetime) -> dict[int, datetime]:
        """Seed -> wave start time; the first wave starts at seed 0, each later wave at
        the seed where the previous wave's percentage ends. Times must rise with seeds."""
        out: dict[int, datetime] = {}
        prev_pct = 0
        prev_time: datetime | None = None
        for i, wave in enumerate(self.waves):
            seed = prev_pct * MAX_SEED // 100
            when = wave.start_time(release_start)
            if prev_time is not None and when <= prev_time:
                raise PolicyError(
                    f"{self.source}: wave {i + 1} ({wave.fleet_percentage}%) starts at "
                    f"{when:%Y-%m-%dT%H:%M:%SZ}, not after the previous wave "
                    f"({prev_time:%Y-%m-%dT%H:%M:%SZ}); wave times must rise"
                )
            out[seed] = when
            prev_pct, prev_time = wave.fleet_percentage, when
        return out


def parse_wave_policy(data: dict[str, Any], source: str) -> WavePolicy:
    only_keys(data, {"waves"}, source, "")
    raw = data.get("waves")
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{source}: expected at least one [[waves]] entry")
    waves = []
    prev = 0
    for i, entry in enumerate(raw):
        where = f"waves[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{source}: '{where}' must be a table")
        only_keys(entry, {"start_after", "fleet_percentage"}, source, where)
        pct = entry.get("fleet_percentage")
        if isinstance(pct, bool) or not isinstance(pct, int) or not 1 <= pct <= 100:
            raise PolicyError(
                f"{source}: '{where}.fleet_percentage' must be an integer from 1 to 100, "
                f"got {pct!r}"
            )
        if pct <= prev:
            raise PolicyError(
                f"{source}: '{where}.fleet_percentage' is {pct}, not above the previous "
                f"wave's {prev}; percentages must rise"
            )
        start = entry.get("start_after")
        if not isinstance(start, (str, datetime)):
            raise PolicyError(
                f"{source}: '{where}.start_after' must be an offset like '4 hours' or RFC3339"
            )
        waves.append(Wave(_offset_or_time(start, source, f"{where}.start_after"), pct))
        prev = pct
    return WavePolicy(tuple(waves), source)


def load_wave_policy(path: str | Path) -> WavePolicy:
    return parse_wave_policy(read_toml(Path(path)), str(path))


def _offset_or_time(value: str | datetime, source: str, where: str) -> timedelta | datetime:
    if isinstance(value, datetime):  # a bare TOML datetime
        if value.tzinfo is None:
            raise PolicyError(f"{source}: '{where}' has no timezone; add Z")
        return parse_rfc3339(value.isoformat())
    try:
        if re.match(r"^\d{4}-\d{2}-\d{2}T", value.strip()):
            return parse_rfc3339(value)
        return parse_offset(value)
    except ValueError as e:
        raise PolicyError(f"{source}: '{where}': {e}") from None


# --- expiration --------------------------------------------------------------------------

EXPIRING_ROLES = ("snapshot", "targets", "timestamp")


@dataclass(frozen=True)
class ExpirationPolicy:
    snapshot: timedelta
    targets: timedelta
    timestamp: timedelta

    def expiry(self, role: str, start: datetime) -> datetime:
        return start + getattr(self, role)


def parse_expiration_policy(data: dict[str, Any], source: str) -> ExpirationPolicy:
    keys = {f"{r}_expiration" for r in EXPIRING_ROLES}
    only_keys(data, keys, source, "")
    values = {}
    for role in EXPIRING_ROLES:
        key = f"{role}_expiration"
        if key not in data:
            raise PolicyError(f"{source}: missing '{key}' (an offset like '2 weeks')")
        if not isinstance(data[key], str):
            raise PolicyError(f"{source}: '{key}' must be a string like '2 weeks'")
        try:
            values[role] = parse_offset(data[key])
        except ValueError as e:
            raise PolicyError(f"{source}: '{key}': {e}") from None
        if values[role] <= timedelta(0):
            raise PolicyError(f"{source}: '{key}' must be longer than zero")
    return ExpirationPolicy(**values)


def load_expiration_policy(path: str | Path) -> ExpirationPolicy:
    return parse_expiration_policy(read_toml(Path(path)), str(path))


# --- Release.toml ------------------------------------------------------------------------

_MIGRATION_KEY = re.compile(r"^\(\s*([^,\s]+)\s*,\s*([^,\s)]+)\s*\)$")


@dataclass(frozen=True)
class ReleaseConfig:
    version: Version
    migrations: dict[str, list[str]]  # "(from, to)" -> migration file names


def migration_key(from_v: Version, to_v: Version) -> str:
    return f"({from_v}, {to_v})"


def parse_release_config(data: dict[str, Any], source: str) -> ReleaseConfig:
    if "version" not in data or not isinstance(data["version"], str):
        raise PolicyError(f"{source}: 'version' is required, a string like \"1.2.3\"")
    try:
        version = Version.parse(data["version"])
    except ValueError as e:
        raise PolicyError(f"{source}: 'version': {e}") from None
    raw = data.get("migrations", {})
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: 'migrations' must be a table")
    migrations: dict[str, list[str]] = {}
    for key, names in raw.items():
        m = _MIGRATION_KEY.match(key)
        try:
            if not m:
                raise ValueError("expected \"(FROM, TO)\"")
            from_v, to_v = Version.parse(m[1]), Version.parse(m[2])
        except ValueError as e:
            raise PolicyError(f"{source}: migrations key {key!r}: {e}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise PolicyError(
                f"{source}: migrations {key!r} must be an array of migration file names"
            )
        if any("/" in n for n in names):
            raise PolicyError(f"{source}: migrations {key!r}: file names must not contain '/'")
        migrations[migration_key(from_v, to_v)] = list(names)
    return ReleaseConfig(version, migrations)


def load_release_config(path: str | Path) -> ReleaseConfig:
    return parse_release_config(read_toml(Path(path)), str(path))


def only_keys(data: dict[str, Any], allowed: set[str], source: str, where: str) -> None:
    """Refuse keys a policy table does not know (a typo must not silently mean a default)."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise PolicyError(
            f"{source}: unknown key '{name}'; expected {', '.join(sorted(allowed))}"
        )
