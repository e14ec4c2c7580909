"""`pubsys ssm`: publish the SSM parameters that let users find one build's images by name.

Users look images up as `/PREFIX/aws-k8s-1.31/x86_64/latest/image_id` in every region, not by
AMI id. Names and values come from a template file (templates.py; DESIGN.md section 3).
In this order:
1. load the templates that apply to the variant and arch, and the AMI JSON; render every
   template for every region in it (or the chosen subset);
2. read the current values (GetParameters, 10 names a call, paced per region) and print the
   difference: new, unchanged, changing (old -> new);
3. refuse, before writing anything: to change an existing parameter unless clobbering is
   allowed; to point a parameter under `/aws/` at an image that is not public unless
   private images are allowed (checked live with DescribeImages);
4. on a dry run stop here (writing the output file if asked); with nothing to change print
   "no changes" and make no write;
5. set only what changes, all regions in parallel, PutParameter paced per region and slowed
   down further whenever AWS throttles; values that are AMI ids get data type
   `aws:ec2:image`; a parameter that was absent is created with Overwrite off, so one that
   appears meanwhile is never clobbered;
6. read back until every written value is live, within a bounded time (store.py);
7. write the rendered set, region -> name -> value, to the output file.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.ami_json import AmiRecord, load_ami_json
from ..aws.clients import AwsClients
from ..aws.errors import describe_error
from ..config import InfraConfig
from ..errors import AwsError, UsageError
from .diff import (
    Change,
    SsmKey,
    SsmRefused,
    diff_parameters,
    format_changes,
    listing,
    refuse_clobber,
    to_ssm_json,
    to_write,
)
from .ssm_json import write_ssm_json
from .store import Pacing, ParameterStore
from .templates import (
    RenderedParameter,
    SsmImage,
    SsmTemplates,
    render_ssm_parameters,
    templates_for_build,
)

log = logging.getLogger(__name__)

PUBLIC_NAMESPACE = "/aws/"


@dataclass(frozen=True)
class SsmOptions:
    """One build's parameters to publish. `arch` is the EC2 name (x86_64, arm64)."""

    ami_input: Path
    variant: str
    arch: str
    image_version: str
    template_path: Path
    regions: tuple[str, ...] = ()  # a subset of the AMI JSON's regions; empty = all of them
    allow_clobber: bool = False
    allow_private_images: bool = False
    output: Path | None = None
    dry_run: bool = False


class RegionsNotInInput(UsageError):
    """Regions asked for that the AMI JSON does not have (`option` names the options field)."""

    option = "regions"


def run_ssm(options: SsmOptions, infra: InfraConfig) -> int:
    templates = templates_for_build(options.template_path, options.variant, options.arch)
    amis = load_ami_json(options.ami_input)
    regions = list(options.regions) or list(amis)
    unknown = [r for r in regions if r not in amis]
    if unknown:
        raise RegionsNotInInput(f"{', '.join(unknown)} not in {options.ami_input} "
                                f"(it has {', '.join(amis)})")
    store = ParameterStore(AwsClients(infra.aws), Pacing.from_env())
    changes = publish_parameters(
        templates, {r: amis[r] for r in regions}, store, prefix=infra.aws.ssm_prefix,
        variant=options.variant, arch=options.arch, image_version=options.image_version,
        allow_clobber=options.allow_clobber, allow_private_images=options.allow_private_images,
        dry_run=options.dry_run, show=_print)
    output: dict[str, dict[str, str]] = {r: {} for r in regions}
    output |= to_ssm_json({c.key: c.new for c in changes})
    if options.output:
        write_ssm_json(options.output, output)
        log.info("wrote %s", options.output)
    return 0


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def publish_parameters(templates: SsmTemplates, amis: Mapping[str, AmiRecord],
                       store: ParameterStore, *, prefix: str, variant: str, arch: str,
                       image_version: str, allow_clobber: bool = False,
                       allow_private_images: bool = False, dry_run: bool = False,
                       show: Callable[[str], None] = log.info) -> list[Change]:
    """Steps 1-6 for the images of `amis` (region -> image): render, read, show the
    difference, refuse, write what changes. Every wanted parameter comes back as a Change.
    `run_ssm` and the release's ssm stage share it."""
    rendered = render_ssm_parameters(
        templates, prefix=prefix, variant=variant, arch=arch, image_version=image_version,
        images={r: SsmImage(a.id, a.name) for r, a in amis.items()})
    wanted = {SsmKey(p.region, p.name): p.value for p in rendered}
    log.info("reading %d parameter(s) in %d region(s)", len(wanted), len(amis))
    changes = diff_parameters(wanted, store.get(wanted))
    show(format_changes(changes))
    if not allow_clobber:
        refuse_clobber(changes)
    if not allow_private_images:
        refuse_private_images(rendered, amis, store.clients)
    if dry_run:
        log.info("dry run: nothing written to SSM")
    elif to_write(changes):
        store.write(to_write(changes))
    return changes


def refuse_private_images(params: list[RenderedParameter], amis: Mapping[str, AmiRecord],
                          clients: AwsClients) -> None:
    """Parameters under /aws/ are public; they must not name an image others cannot launch."""
    regions = sorted({p.region for p in params if p.name.startswith(PUBLIC_NAMESPACE)})
    if not regions:
        return

    def public(region: str) -> tuple[str, bool | None]:
        ami = amis[region].id
        try:
            images = clients.client("ec2", region).describe_images(ImageIds=[ami])["Images"]
        except (ClientError, BotoCoreError) as e:
            raise AwsError(f"cannot check whether {ami} in {region} is public: "
                           f"{describe_error(e)}") from e
        return region, images[0].get("Public") if images else None

    with ThreadPoolExecutor(max_workers=len(regions)) as pool:
        status = dict(pool.map(public, regions))
    bad = [f"{p.name} in {p.region} -> {amis[p.region].id} "
           f"({'not found' if status[p.region] is None else 'private'})"
           for p in params if p.name.startswith(PUBLIC_NAMESPACE) and not status[p.region]]
    if bad:
        raise SsmRefused(
            f"refusing to point {len(bad)} parameter(s) under {PUBLIC_NAMESPACE} at images "
            "that are not public {how}; nothing was written: " + listing(bad),
            permission="allow_private_images",
            how="(make them public, or allow private images)",
        )
