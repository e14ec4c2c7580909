"""`pubsys ssm`: publish the SSM parameters that let users find one build's images by name.

Users look images up as `/PREFIX/aws-k8s-1.31/x86_64/latest/image_id` in every region, not by
AMI id. Names and values come from a template file (templates.py; DESIGN.md section 3).
In this order:
1. load the templates that apply to the variant and arch, and the AMI JSON; render every
   template for every chosen region: those asked for, else aws.regions of Infra.toml (as
   Bottlerocket's pubsys; all must be in the AMI JSON), else every region of the AMI JSON;
2. read the current values (GetParameters, 10 names a call, paced per region) and print the
   difference: new, unchanged, changing (old -> new);
3. refuse, before writing anything: to change an existing parameter unless clobbering is
   allowed; to point a parameter under `/aws/` at an image that is not public unless
   private images are allowed (checked live with DescribeImages; guard.py);
4. on a dry run stop here (writing the output file if asked); with nothing to change print
   "no changes" and make no write;
5. set only what changes, all regions in parallel, PutParameter paced per region and slowed
   down further whenever AWS throttles; values that are AMI ids get data type
   `aws:ec2:image` (unless every value is to be text); a parameter that was absent is
   created with Overwrite off, so one that appears meanwhile is never clobbered (unless
   clobbering is allowed);
6. read back until every written value is live, within a bounded time (store.py);
7. write the rendered set, region -> name -> value, to the output file: a file that exists
   says its values are live (or, when asked, right after step 1, as Bottlerocket's pubsys).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..aws.ami_json import AmiRecord, load_ami_json
from ..aws.clients import AwsClients
from ..config import InfraConfig
from ..errors import UsageError
from .diff import (
    Change,
    SsmKey,
    diff_parameters,
    format_changes,
    refuse_clobber,
    to_ssm_json,
    to_write,
)
from .guard import Pointer, is_public_name, refuse_private_images
from .ssm_json import write_ssm_json
from .store import Pacing, ParameterStore
from .templates import RenderedParameter, SsmImage, render_ssm_parameters, templates_for_build

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SsmOptions:
    """One build's parameters to publish. `arch` is the EC2 name (x86_64, arm64)."""

    ami_input: Path
    variant: str
    arch: str
    image_version: str
    template_path: Path
    # A subset of the AMI JSON's regions; empty: aws.regions of Infra.toml, or if that is
    # empty too, every region of the AMI JSON.
    regions: tuple[str, ...] = ()
    allow_clobber: bool = False  # also replaces a parameter that appears before it is set
    allow_private_images: bool = False
    output: Path | None = None
    dry_run: bool = False
    image_data_type: bool = True  # AMI ids as aws:ec2:image; False: every value is text
    # Write the output as soon as it is rendered, before any AWS call (Bottlerocket's order),
    # rather than once every value is live.
    output_first: bool = False


class RegionsNotInInput(UsageError):
    """Regions to publish in that the AMI JSON does not have; `configured` when they come
    from aws.regions of Infra.toml rather than from the options (`option` names the field)."""

    option = "regions"

    def __init__(self, message: str, *, configured: bool = False):
        super().__init__(message)
        self.configured = configured


def publish_regions(options: SsmOptions, infra: InfraConfig,
                    input_regions: Sequence[str]) -> list[str]:
    """The regions to publish in: those asked for, else aws.regions, else the input's."""
    if not options.regions and not infra.aws.regions:
        return list(input_regions)
    regions = list(options.regions or infra.aws.regions)
    unknown = [r for r in regions if r not in input_regions]
    if not unknown:
        return regions
    where = "" if options.regions else f"aws.regions of {infra.source or 'Infra.toml'} lists "
    raise RegionsNotInInput(f"{where}{', '.join(unknown)} not in {options.ami_input} "
                            f"(it has {', '.join(input_regions)})",
                            configured=not options.regions)


def run_ssm(options: SsmOptions, infra: InfraConfig) -> int:
    templates = templates_for_build(options.template_path, options.variant, options.arch)
    amis = load_ami_json(options.ami_input)
    regions = publish_regions(options, infra, list(amis))
    pacing = Pacing.from_env()
    rendered = render_ssm_parameters(
        templates, prefix=infra.aws.ssm_prefix, variant=options.variant, arch=options.arch,
        image_version=options.image_version,
        images={r: SsmImage(amis[r].id, amis[r].name) for r in regions})
    wanted = {SsmKey(p.region, p.name): p.value for p in rendered}
    output: dict[str, dict[str, str]] = {r: {} for r in regions}
    output |= to_ssm_json(wanted)
    if options.output and options.output_first:
        _write_output(options.output, output)

    store = ParameterStore(AwsClients(infra.aws), pacing,
                           image_data_type=options.image_data_type)
    publish_parameters(rendered, amis, store, allow_clobber=options.allow_clobber,
                       allow_private_images=options.allow_private_images,
                       dry_run=options.dry_run, show=_print)
    if options.output and not options.output_first:
        _write_output(options.output, output)
    return 0


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def publish_parameters(rendered: Sequence[RenderedParameter], amis: Mapping[str, AmiRecord],
                       store: ParameterStore, *, allow_clobber: bool = False,
                       allow_private_images: bool = False, dry_run: bool = False,
                       show: Callable[[str], None] = log.info) -> list[Change]:
    """Steps 2-6 for rendered parameters: read, show the difference, refuse, write what
    changes, read back. Every wanted parameter comes back as a Change. `run_ssm` and the
    release's ssm stage share it."""
    wanted = {SsmKey(p.region, p.name): p.value for p in rendered}
    log.info("reading %d parameter(s) in %d region(s)", len(wanted),
             len({p.region for p in rendered}))
    changes = diff_parameters(wanted, store.get(wanted))
    show(format_changes(changes))
    if not allow_clobber:
        refuse_clobber(changes)
    if not allow_private_images:
        refuse_private_images(image_pointers(rendered, amis), store.clients)
    if dry_run:
        log.info("dry run: nothing written to SSM")
    elif to_write(changes):
        store.write(to_write(changes), replace_appeared=allow_clobber)
    return changes


def _write_output(path: Path, output: dict[str, dict[str, str]]) -> None:
    write_ssm_json(path, output)
    log.info("wrote %s", path)


def image_pointers(params: Sequence[RenderedParameter],
                   amis: Mapping[str, AmiRecord]) -> list[Pointer]:
    """Each parameter under /aws/ points at its region's image, whatever its value."""
    return [Pointer(p.region, p.name, amis[p.region].id) for p in params
            if is_public_name(p.name)]
