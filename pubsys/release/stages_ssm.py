"""The SSM stages of one variant/arch, by `pubsys ssm`, `promote-ssm` and `validate-ssm` code.

- ssm: `ssm`'s `publish_parameters` for the version's parameters in the release's SSM
  regions, naming each region's AMI as it exists now (it refuses to clobber and to point
  `/aws/` names at private images unless the release allows it; writes only what differs,
  paced per region, and reads back);
- promote: `promote-ssm`'s `promote_parameters`, from the version to `ssm.promote_to`;
- validate-ssm / validate-promote: `validate-ssm`'s comparison of what is live with what the
  release renders (every row must be Correct).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..aws.ami_json import AmiRecord
from ..errors import ValidationFailed
from ..ssm.diff import compare_parameters
from ..ssm.promote import PromoteSsmOptions, promote_parameters
from ..ssm.publish import publish_parameters
from ..ssm.templates import SsmImage, render_ssm_parameters
from .context import ReleaseContext
from .spec import BuildSpec
from .stages_ami import AmiStages


class SsmStages:
    def __init__(self, ctx: ReleaseContext, build: BuildSpec, amis: AmiStages):
        assert ctx.spec.ssm is not None and ctx.templates is not None
        self.ctx, self.build, self.amis = ctx, build, amis
        self.ssm = ctx.spec.ssm
        self.templates = ctx.templates.for_build(build.key.variant, build.key.ec2_arch)
        self.prefix = ctx.infra.aws.ssm_prefix

    @staticmethod
    def _regions(regions: Sequence[str | None]) -> list[str]:
        return [r for r in regions if r is not None]

    def publish(self, regions: Sequence[str | None]) -> str:
        amis = {}
        for region in self._regions(regions):
            found = self.amis.image(region)
            amis[region] = AmiRecord(found["ImageId"], self.amis.name)
        key = self.build.key
        rendered = render_ssm_parameters(
            self.templates, prefix=self.prefix, variant=key.variant, arch=key.ec2_arch,
            image_version=str(self.ctx.spec.version),
            images={r: SsmImage(a.id, a.name) for r, a in amis.items()})
        changes = publish_parameters(
            rendered, amis, self.ctx.store, allow_clobber=self.ssm.allow_clobber,
            allow_private_images=self.ssm.allow_private_images, show=_quiet)
        written = sum(1 for c in changes if c.kind != "unchanged")
        return f"{written} of {len(changes)} parameter(s) written"

    def promote(self, regions: Sequence[str | None]) -> str:
        assert self.ssm.promote_to is not None
        key = self.build.key
        chosen = self._regions(regions)
        options = PromoteSsmOptions(
            variant=key.variant, arch=key.ec2_arch, source=str(self.ctx.spec.version),
            target=self.ssm.promote_to, template_path=self.ssm.templates,
            regions=tuple(chosen), require_all_regions=True,
            allow_private_images=self.ssm.allow_private_images)
        wanted = promote_parameters(options, chosen, self.prefix, self.ctx.store,
                                    show=_quiet)
        return f"{len(wanted)} {self.ssm.promote_to} parameter(s) point at " \
               f"{self.ctx.spec.version}"

    def validate(self, regions: Sequence[str | None]) -> str:
        return self._check(self._regions(regions), promoted=False)

    def validate_promote(self, regions: Sequence[str | None]) -> str:
        return self._check(self._regions(regions), promoted=True)

    def expected(self, region: str, promoted: bool) -> dict[str, str]:
        """What the release renders in `region` for its image as it exists now."""
        assert self.ctx.render is not None
        wanted = self.ctx.render(self.build.key, region, self.amis.observed(region))
        values = wanted.promoted if promoted else wanted.versioned
        return {name: value for name, value in values.items() if value is not None}

    def _check(self, regions: list[str], promoted: bool) -> str:
        expected = {r: self.expected(r, promoted) for r in regions}
        actual: Mapping[str, Mapping[str, str] | None] = {
            r: self.ctx.store.get_region(r, list(expected[r])) for r in regions}
        rows = compare_parameters(expected, actual, check_unexpected=False)
        bad = [f"{r['name']} in {r['region']} is {r['status']}"
               + (f" ({r['actual_value']!r}, expected {r['expected_value']!r})"
                  if r["status"] == "Incorrect" else "")
               for r in rows if r["status"] != "Correct"]
        if bad:
            raise ValidationFailed(f"{len(bad)} of {len(rows)} parameter(s) are not "
                                   "Correct: " + "; ".join(bad))
        return f"{len(rows)} parameter(s) Correct"


def _quiet(text: str) -> None:
    """The commands' difference table: apply reports its own progress instead."""
