"""What a release made, in the files the single commands read: AMI JSON and SSM JSON.

`release validate --outdir DIR` writes, from what exists now:
- `DIR/amis-VARIANT-ARCH.json`: each build's AMI JSON (region -> id, name, public, launch
  permissions), as `pubsys ami` and `publish-ami` write it, for `validate-ami`, `ssm` and
  `publish-ami`;
- `DIR/ssm-parameters.json`: every parameter the release renders (versioned and promoted)
  with the value it should have, region -> name -> value, for `validate-ssm`.
So the release can be checked, or taken further, with the commands on their own.
"""

from __future__ import annotations

from pathlib import Path

from ..aws.ami_json import AmiRecord, write_ami_json
from ..aws.images import find_image, observe_image
from ..ssm.ssm_json import write_ssm_json
from .context import ReleaseContext
from .state import ObservedImage


def write_outputs(ctx: ReleaseContext, outdir: Path) -> list[Path]:
    """Write the files above for the images that exist; returns the paths written."""
    spec = ctx.spec
    written: list[Path] = []
    if spec.amis is None:
        return written
    outdir.mkdir(parents=True, exist_ok=True)
    ssm: dict[str, dict[str, str]] = {}
    for build in spec.builds:
        name = spec.amis.image_name(build.key, spec.version)
        records: dict[str, AmiRecord] = {}
        for region in spec.amis.regions:
            ec2 = ctx.clients.client("ec2", region)
            found = find_image(ec2, name, build.key.ec2_arch, region)
            seen = observe_image(ec2, region, found["ImageId"]) if found else None
            if seen is None:
                continue
            records[region] = seen.record()
            if ctx.render and spec.ssm and region in spec.ssm.regions:
                wanted = ctx.render(build.key, region, ObservedImage(seen.image_id, seen.state))
                values = {**wanted.versioned, **wanted.promoted}
                ssm.setdefault(region, {}).update(
                    {n: v for n, v in values.items() if v is not None})
        if records:
            path = outdir / f"amis-{build.key.variant}-{build.key.arch}.json"
            write_ami_json(path, records)
            written.append(path)
    if ssm:
        path = outdir / "ssm-parameters.json"
        write_ssm_json(path, ssm)
        written.append(path)
    return written
