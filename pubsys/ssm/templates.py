"""SSM parameter templates: load, filter per build, render per region, join to the prefix.

A template file holds `[[parameter]]` entries: `name` and `value` with `{variable}`
placeholders, and optional `variant = [...]` / `arch = [...]` filters (DESIGN.md section 3).
`ssm` renders every entry that applies to the build once per region of the AMI JSON;
`promote-ssm` renders only the names, for a source and a target version. Everything here is
pure apart from reading the template file: values in, values out. Rendering refuses what
Parameter Store would refuse (names, lengths) before any AWS call, naming the entry.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import read_toml
from ..errors import PolicyError
from ..policy import ec2_arch, only_keys

log = logging.getLogger(__name__)

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
    only_keys(data, {"parameter"}, source, "")
    raw = data.get("parameter")
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{source}: expected at least one [[parameter]] entry "
                          "with 'name' and 'value'")
    templates = []
    for i, entry in enumerate(raw):
        where = f"parameter[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{source}: '{where}' must be a table")
        only_keys(entry, {"name", "value", "variant", "arch"}, source, where)
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


def templates_for_build(path: str | Path, variant: str, arch: str) -> SsmTemplates:
    """The entries of `path` that apply to this build; none is allowed, but said."""
    templates = load_ssm_templates(path).for_build(variant, arch)
    if not templates.templates:
        log.warning("%s: no parameter templates apply to variant %s, arch %s", path, variant,
                    arch)
    return templates


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
