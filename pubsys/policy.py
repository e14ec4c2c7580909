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
    _only_keys(data, {"waves"}, source, "")
    raw = data.get("waves")
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{source}: expected at least one [[waves]] entry")
    waves = []
    prev = 0
    for i, entry in enumerate(raw):
        where = f"waves[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{source}: '{where}' must be a table")
        _only_keys(entry, {"start_after", "fleet_percentage"}, source, where)
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
    _only_keys(data, keys, source, "")
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


def _only_keys(data: dict[str, Any], allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise PolicyError(
            f"{source}: unknown key '{name}'; expected {', '.join(sorted(allowed))}"
        )


# --- SSM templates -----------------------------------------------------------------------
#
# A template file holds `[[parameter]]` entries: `name` and `value` with `{variable}`
# placeholders, and optional `variant = [...]` / `arch = [...]` filters. `ssm` renders every
# entry that applies to the build once per region of the AMI JSON; `promote-ssm` renders only
# the names, for a source and a target version. Everything here is pure: values in, values out.

SSM_TEMPLATE_VARIABLES = ("variant", "arch", "image_id", "image_name", "image_version",
                          "region")
# Variables a name may use when no image is at hand (promote-ssm renders names only).
SSM_NAME_ONLY_VARIABLES = ("variant", "arch", "image_version", "region")
# What Parameter Store accepts in a name (letters, digits, . - _ and / between levels).
_SSM_NAME_CHARS = re.compile(r"^[A-Za-z0-9_./-]+$")
SSM_NAME_MAX = 1011
SSM_VALUE_MAX = 4096


@dataclass(frozen=True)
class SsmTemplate:
    """One `[[parameter]]` entry; `arches` hold EC2 names (x86_64, arm64)."""

    name: str
    value: str
    variants: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    index: int = 0  # position in the file, so messages can point at the entry

    @property
    def where(self) -> str:
        return f"parameter[{self.index}]"

    def applies_to(self, variant: str, arch: str) -> bool:
        return ((not self.variants or variant in self.variants)
                and (not self.arches or ec2_arch(arch) in self.arches))

    def name_variables(self) -> set[str]:
        return _template_fields(self.name, "<checked>", "")

    def value_variables(self) -> set[str]:
        return _template_fields(self.value, "<checked>", "")


@dataclass(frozen=True)
class SsmTemplates:
    templates: tuple[SsmTemplate, ...]
    source: str = "<templates>"

    def for_build(self, variant: str, arch: str) -> SsmTemplates:
        """Only the entries whose `variant` and `arch` filters match this build."""
        return SsmTemplates(tuple(t for t in self.templates if t.applies_to(variant, arch)),
                            self.source)


@dataclass(frozen=True)
class SsmImage:
    """What templates may know about the AMI of one region."""

    id: str
    name: str


@dataclass(frozen=True)
class RenderedParameter:
    region: str
    name: str  # full name, prefix included
    value: str
    template: SsmTemplate


def _template_fields(text: str, source: str, where: str) -> set[str]:
    """The `{variable}` names in `text`; malformed braces or unknown variables are errors."""
    import string

    fields = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise PolicyError(f"{source}: '{where}': malformed template {text!r}: {e}; "
                          "write variables as {{name}}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in SSM_TEMPLATE_VARIABLES or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + \
                (f":{spec}" if spec else "") + "}"
            raise PolicyError(
                f"{source}: '{where}': unknown variable {shown} in {text!r}; expected "
                + ", ".join("{" + v + "}" for v in SSM_TEMPLATE_VARIABLES)
            )
        fields.add(field)
    return fields


def parse_ssm_templates(data: dict[str, Any], source: str) -> SsmTemplates:
    _only_keys(data, {"parameter"}, source, "")
    raw = data.get("parameter")
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{source}: expected at least one [[parameter]] entry "
                          "with 'name' and 'value'")
    templates = []
    for i, entry in enumerate(raw):
        where = f"parameter[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{source}: '{where}' must be a table")
        _only_keys(entry, {"name", "value", "variant", "arch"}, source, where)
        texts = {}
        for key in ("name", "value"):
            text = entry.get(key)
            if not isinstance(text, str) or not text.strip():
                raise PolicyError(f"{source}: '{where}.{key}' is required, a non-empty string")
            _template_fields(text, source, f"{where}.{key}")
            texts[key] = text
        filters = {}
        for key in ("variant", "arch"):
            items = entry.get(key, [])
            if not isinstance(items, list) or not all(isinstance(x, str) and x for x in items):
                example = '["aws-k8s-1.31"]' if key == "variant" else '["x86_64", "arm64"]'
                raise PolicyError(f"{source}: '{where}.{key}' must be an array of strings, "
                                  f"e.g. {key} = {example}")
            filters[key] = tuple(items)
        try:
            arches = tuple(ec2_arch(a) for a in filters["arch"])
        except PolicyError as e:
            raise PolicyError(f"{source}: '{where}.arch': {e}") from None
        templates.append(SsmTemplate(texts["name"], texts["value"], filters["variant"], arches,
                                     i))
    return SsmTemplates(tuple(templates), source)


def load_ssm_templates(path: str | Path) -> SsmTemplates:
    return parse_ssm_templates(read_toml(Path(path)), str(path))


def ssm_prefix_path(prefix: str) -> str:
    """The prefix as a Parameter Store path ('' means the root, '/')."""
    stripped = prefix.strip("/")
    if prefix and not prefix.startswith("/"):
        raise PolicyError(f"aws.ssm_prefix {prefix!r} must start with '/' "
                          "(Parameter Store names in a hierarchy are fully qualified)")
    return "/" + stripped if stripped else "/"


def join_ssm_name(prefix: str, name: str) -> str:
    """`prefix` + '/' + `name` with exactly one '/' between them."""
    base = ssm_prefix_path(prefix).rstrip("/")
    return f"{base}/{name.lstrip('/')}"


def _render(text: str, context: dict[str, str]) -> str:
    return text.format_map(context)


def _check_name(suffix: str, name: str, t: SsmTemplate, source: str, region: str) -> None:
    where = f"{source}: '{t.where}.name' ({t.name!r}) in {region}"
    if not suffix.strip("/"):
        raise PolicyError(f"{where} renders to an empty name")
    if "//" in name or name.endswith("/"):
        raise PolicyError(f"{where} renders to {name!r}, which has an empty level")
    if not _SSM_NAME_CHARS.match(name):
        raise PolicyError(f"{where} renders to {name!r}; SSM names may only hold letters, "
                          "digits, '.', '-', '_' and '/'")
    if len(name) > SSM_NAME_MAX:
        raise PolicyError(f"{where} renders to a name of {len(name)} characters; "
                          f"SSM allows {SSM_NAME_MAX}")
    first = name.lstrip("/").split("/", 1)[0].lower()
    if first.startswith("ssm"):
        raise PolicyError(f"{where} renders to {name!r}; SSM names may not start with 'ssm'")


def _unique(rendered: list[RenderedParameter], source: str) -> None:
    seen: dict[tuple[str, str], RenderedParameter] = {}
    for p in rendered:
        other = seen.get((p.region, p.name))
        if other is not None:
            raise PolicyError(
                f"{source}: '{other.template.where}' and '{p.template.where}' both render "
                f"{p.name!r} in {p.region}; each parameter needs its own name"
            )
        seen[(p.region, p.name)] = p


def render_ssm_parameters(templates: SsmTemplates, *, prefix: str, variant: str, arch: str,
                          image_version: str, images: dict[str, SsmImage]
                          ) -> list[RenderedParameter]:
    """Every template rendered for every region of `images` (region -> its AMI).

    Names are joined to `prefix` with one '/'. Empty or invalid names, empty values and two
    templates rendering the same name in a region are errors naming the template.
    """
    out: list[RenderedParameter] = []
    for region, image in images.items():
        context = {"variant": variant, "arch": ec2_arch(arch), "image_id": image.id,
                   "image_name": image.name, "image_version": image_version,
                   "region": region}
        for t in templates.templates:
            suffix = _render(t.name, context)
            name = join_ssm_name(prefix, suffix)
            _check_name(suffix, name, t, templates.source, region)
            value = _render(t.value, context)
            if not value:
                raise PolicyError(f"{templates.source}: '{t.where}.value' ({t.value!r}) renders "
                                  f"to an empty value in {region}; SSM values cannot be empty")
            if len(value) > SSM_VALUE_MAX:
                raise PolicyError(f"{templates.source}: '{t.where}.value' renders to "
                                  f"{len(value)} characters in {region}; SSM allows "
                                  f"{SSM_VALUE_MAX}")
            out.append(RenderedParameter(region, name, value, t))
    _unique(out, templates.source)
    return out


def render_ssm_names(templates: SsmTemplates, *, prefix: str, variant: str, arch: str,
                     image_version: str, regions: list[str] | tuple[str, ...]
                     ) -> dict[str, dict[int, str]]:
    """region -> template index -> full name, for when no image is at hand (promotion).

    A name that needs {image_id} or {image_name} cannot be rendered without an image and is
    an error naming the template.
    """
    rendered: list[RenderedParameter] = []
    for t in templates.templates:
        needs_image = t.name_variables() - set(SSM_NAME_ONLY_VARIABLES)
        if needs_image:
            raise PolicyError(
                f"{templates.source}: '{t.where}.name' ({t.name!r}) uses "
                + ", ".join("{" + v + "}" for v in sorted(needs_image))
                + "; names must be renderable from variant, arch, version and region alone "
                "to be promoted"
            )
    for region in regions:
        context = {"variant": variant, "arch": ec2_arch(arch), "image_version": image_version,
                   "region": region}
        for t in templates.templates:
            suffix = _render(t.name, context)
            name = join_ssm_name(prefix, suffix)
            _check_name(suffix, name, t, templates.source, region)
            rendered.append(RenderedParameter(region, name, "", t))
    _unique(rendered, templates.source)
    out: dict[str, dict[int, str]] = {r: {} for r in regions}
    for p in rendered:
        out[p.region][p.template.index] = p.name
    return out
