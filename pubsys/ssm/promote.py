"""`pubsys promote-ssm`: copy one version's parameters to another name, usually `latest`.

It renders the template names for the source and the target version in every region,
refuses if any source parameter is missing in any region, then shows the difference,
writes, reads back and merges the target set into the output file like `ssm` does. Moving
the target is the point, so changing existing target parameters needs no permission.
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
from .ssm_json import load_ssm_json, write_ssm_json
from .store import Pacing, ParameterStore
from .templates import SsmTemplates, render_ssm_names, templates_for_build

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


def run_promote_ssm(options: PromoteSsmOptions, infra: InfraConfig) -> int:
    source, target = options.source, options.target
    regions = list(options.regions or infra.aws.regions)
    if not regions:
        raise UsageError("no regions to promote in: aws.regions of Infra.toml is empty")
    # Read the output file first: a broken one must fail before anything is written.
    merged = load_ssm_json(options.output, missing_ok=True) if options.output else {}
    templates = templates_for_build(options.template_path, options.variant, options.arch)
    store = ParameterStore(AwsClients(infra.aws), Pacing.from_env())
    wanted = promote_parameters(templates, store, prefix=infra.aws.ssm_prefix,
                                variant=options.variant, arch=options.arch, source=source,
                                target=target, regions=regions, dry_run=options.dry_run,
                                show=_print)
    if options.dry_run:
        return 0
    if options.output:
        for key, value in wanted.items():
            merged.setdefault(key.region, {})[key.name] = value
        write_ssm_json(options.output, merged)
        log.info("merged %d promoted parameter(s) into %s", len(wanted), options.output)
    return 0


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def promote_parameters(templates: SsmTemplates, store: ParameterStore, *, prefix: str,
                       variant: str, arch: str, source: str, target: str,
                       regions: list[str], dry_run: bool = False,
                       show: Callable[[str], None] = log.info) -> dict[SsmKey, str]:
    """Render both versions' names, refuse if a source is missing, show the difference and
    write what changes; returns the target parameters with their values. `run_promote_ssm`
    and the release's promote stage share it."""
    names = {v: render_ssm_names(templates, prefix=prefix, variant=variant, arch=arch,
                                 image_version=v, regions=regions)
             for v in (source, target)}
    pairs = [(SsmKey(r, names[source][r][i]), SsmKey(r, names[target][r][i]))
             for r in regions for i in names[source][r]]
    log.info("reading %d source and target parameter(s) in %d region(s)", 2 * len(pairs),
             len(regions))
    live = store.get([k for pair in pairs for k in pair])
    missing = [src for src, _ in pairs if src not in live]
    if missing:
        raise SsmRefused(
            f"refusing to promote {source} to {target}: {len(missing)} source parameter(s) "
            "are missing; nothing was written (publish them with 'pubsys ssm' first): "
            + listing([f"{k.name} in {k.region}" for k in missing])
        )
    wanted = {dst: live[src] for src, dst in pairs if src != dst}
    changes = diff_parameters(wanted, {k: live[k] for k in wanted if k in live})
    show(format_changes(changes))
    if dry_run:
        log.info("dry run: nothing written to SSM")
    elif to_write(changes):
        store.write(to_write(changes))
    return wanted
