"""`pubsys promote-ssm`: copy one version's parameters to another name, usually `latest`.

It renders the template names for the source and the target version in every region and
reads both. As in Bottlerocket's pubsys, it refuses only when no source parameter exists
at all; a source missing in some regions skips its target there, with a warning naming
each (strictly, with `require_all_regions`, any missing source refuses). A target under
`/aws/` must not name a private image (guard.py), as `ssm` checks for what it publishes.
Then it shows the difference, writes, reads back and merges the target set into the output
file like `ssm` does. Moving the target is the point, so changing existing target
parameters needs no permission. Source and target the same: nothing to do.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..aws.clients import AwsClients
from ..config import InfraConfig
from ..errors import UsageError
from .diff import SsmKey, SsmRefused, diff_parameters, format_changes, listing, to_write
from .guard import pointers_in_values, refuse_private_images
from .ssm_json import load_ssm_json, write_ssm_json
from .store import Pacing, ParameterStore
from .templates import render_ssm_names, templates_for_build

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromoteSsmOptions:
    """Promote `source`'s parameters to `target`. `arch` is the EC2 name (x86_64, arm64)."""

    variant: str
    arch: str
    source: str
    target: str
    template_path: Path
    regions: tuple[str, ...] = ()  # empty: aws.regions of Infra.toml
    output: Path | None = None  # merged into, if it exists
    dry_run: bool = False
    require_all_regions: bool = False  # refuse if any source parameter is missing anywhere
    allow_private_images: bool = False  # let a target under /aws/ name a private image
    image_data_type: bool = True  # AMI ids as aws:ec2:image; False: every value is text


def run_promote_ssm(options: PromoteSsmOptions, infra: InfraConfig) -> int:
    regions = list(options.regions or infra.aws.regions)
    if not regions:
        raise UsageError("no regions to promote in: aws.regions of Infra.toml is empty")
    # Read the output file first: a broken one must fail before anything is written.
    merged = load_ssm_json(options.output, missing_ok=True) if options.output else {}
    store = ParameterStore(AwsClients(infra.aws), Pacing.from_env(),
                           image_data_type=options.image_data_type)
    wanted = promote_parameters(options, regions, infra.aws.ssm_prefix, store, show=_print)
    if options.dry_run:
        return 0
    if options.output and wanted:
        for key, value in wanted.items():
            merged.setdefault(key.region, {})[key.name] = value
        write_ssm_json(options.output, merged)
        log.info("merged %d promoted parameter(s) into %s", len(wanted), options.output)
    return 0


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def promote_parameters(options: PromoteSsmOptions, regions: list[str], prefix: str,
                       store: ParameterStore, show: Callable[[str], None] = log.info
                       ) -> dict[SsmKey, str]:
    """Render both versions' names in `regions`, refuse as described above, show the
    difference and write what changes (unless a dry run); returns the target parameters
    with their values. `run_promote_ssm` and the release's promote stage share it."""
    source, target = options.source, options.target
    templates = templates_for_build(options.template_path, options.variant, options.arch)
    names = {v: render_ssm_names(templates, prefix=prefix, variant=options.variant,
                                 arch=options.arch, image_version=v, regions=regions)
             for v in (source, target)}
    if source == target:
        log.info("source and target are both %s: nothing to promote", source)
        return {}
    pairs = [(SsmKey(r, names[source][r][i]), SsmKey(r, names[target][r][i]))
             for r in regions for i in names[source][r]]
    log.info("reading %d source and target parameter(s) in %d region(s)", 2 * len(pairs),
             len(regions))
    live = store.get([k for pair in pairs for k in pair])
    check_sources(options, [src for src, _ in pairs if src not in live], len(pairs))
    wanted = {dst: live[src] for src, dst in pairs if src in live and src != dst}
    changes = diff_parameters(wanted, {k: live[k] for k in wanted if k in live})
    show(format_changes(changes))
    if not options.allow_private_images:
        refuse_private_images(pointers_in_values((c.key, c.new) for c in to_write(changes)),
                              store.clients)
    if options.dry_run:
        log.info("dry run: nothing written to SSM")
    elif to_write(changes):
        store.write(to_write(changes))
    return wanted


def check_sources(options: PromoteSsmOptions, missing: list[SsmKey], total: int) -> None:
    """Refuse when no source exists (or, strictly, when any is missing); else warn about
    each missing one, whose target is skipped."""
    if not missing:
        return
    named = listing([f"{k.name} in {k.region}" for k in missing])
    hint = "nothing was written (publish them with 'pubsys ssm' first)"
    if len(missing) == total:
        raise SsmRefused(f"refusing to promote {options.source} to {options.target}: found "
                         f"no parameter of version {options.source} in any region; {hint}: "
                         + named)
    if options.require_all_regions:
        raise SsmRefused(
            f"refusing to promote {options.source} to {options.target}: {len(missing)} source "
            f"parameter(s) are missing and every region must have them; {hint}: " + named)
    log.warning("%d source parameter(s) of version %s are missing; their targets are "
                "skipped: %s", len(missing), options.source, named)
