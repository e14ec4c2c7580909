"""What a release wants in Parameter Store, rendered by the SSM templates' own code.

The planner asks, per variant/arch and region, which parameters should exist with which
values (`SsmWanted`). This module answers with the same renderer `pubsys ssm` and
`promote-ssm` use, so plan and commands can never disagree on a name or a value. Before the
region's AMI exists its id is unknown: values that name it are None ("known once the AMI
exists"); names never need it (promote-ssm requires that anyway).
"""

from __future__ import annotations

from ..errors import PolicyError
from ..ssm.templates import (
    SsmImage,
    SsmTemplates,
    load_ssm_templates,
    render_ssm_names,
    render_ssm_parameters,
)
from .plan import SsmRenderer, SsmWanted
from .spec import BuildKey, ReleaseSpec
from .state import ObservedImage
from .yamlnodes import ReleaseFileError

# Stands in for an image id not known yet; a value containing it is reported as unknown.
_UNKNOWN_ID = "ami-0pubsysunknown0"


def release_renderer(spec: ReleaseSpec, prefix: str) -> SsmRenderer:
    """The renderer of a release's `ssm.templates`, checked for every build and region now,
    so a template that cannot render (or promote) fails the plan, naming the field and line.
    """
    assert spec.ssm is not None
    try:
        templates = load_ssm_templates(spec.ssm.templates)
        render = ssm_renderer(spec, templates, prefix)
        for build in spec.builds:
            for region in spec.ssm.regions:
                render(build.key, region, None)
    except PolicyError as e:
        raise ReleaseFileError(f"{spec.at('ssm.templates')}: {e}") from None
    return render


def ssm_renderer(spec: ReleaseSpec, templates: SsmTemplates, prefix: str) -> SsmRenderer:
    """An `SsmRenderer` for `spec` from its loaded SSM templates and Infra.toml's ssm_prefix."""
    if spec.amis is None or spec.ssm is None:
        raise ValueError("the release has no amis/ssm section")
    amis, ssm, version = spec.amis, spec.ssm, str(spec.version)

    def render(key: BuildKey, region: str, image: ObservedImage | None) -> SsmWanted:
        mine = templates.for_build(key.variant, key.arch)
        name = amis.image_name(key, spec.version)
        image_id = image.image_id if image else _UNKNOWN_ID
        rendered = render_ssm_parameters(
            mine, prefix=prefix, variant=key.variant, arch=key.arch, image_version=version,
            images={region: SsmImage(image_id, name)})
        values = {p.template.index: (None if _UNKNOWN_ID in p.value else p.value)
                  for p in rendered}
        versioned = {p.name: values[p.template.index] for p in rendered}
        promoted: dict[str, str | None] = {}
        if ssm.promote_to:
            names = render_ssm_names(mine, prefix=prefix, variant=key.variant, arch=key.arch,
                                     image_version=ssm.promote_to, regions=[region])[region]
            promoted = {n: values[i] for i, n in names.items()}
        return SsmWanted(versioned, promoted)

    return render
