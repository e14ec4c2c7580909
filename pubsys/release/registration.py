"""How a build's AMI is registered: `ami`'s own rules applied to the release's files.

The variant manifest (the variant's Cargo.toml) gives the volume sizes and whether the AMI
boots with UEFI Secure Boot (then with the release's UEFI variable store); the release's
`amis` section gives the volume type, TPM and IMDS settings. `plan_registration` is the one
home of those rules (`pubsys ami --variant-manifest` uses it too); this module only feeds it
from the release file, so the release file's loader can check it and apply can use it.
"""

from __future__ import annotations

from ..aws.ami_rules import Registration, plan_registration
from ..errors import PubsysError
from ..variant import load_variant_manifest
from .spec import AmiSpec, BuildSpec


class RegistrationError(PubsysError):
    """The variant manifest, the UEFI data and the release disagree (message says how)."""


def read_uefi_data(build: BuildSpec) -> str | None:
    """The base64 UEFI variable store, whitespace removed; None when none is given or the
    file is empty (the release file's loader checked it is base64)."""
    if build.uefi_data is None:
        return None
    text = "".join(build.uefi_data.read_text(encoding="ascii").split())
    return text or None


def registration_for(build: BuildSpec, amis: AmiSpec) -> Registration:
    """The registration `ami` would plan for this build's images and variant manifest."""
    if build.variant_manifest is None:
        raise RegistrationError(f"{build.key} names no variant_manifest; the AMI's volume "
                                "sizes and boot mode come from it")
    manifest = load_variant_manifest(build.variant_manifest)
    uefi = read_uefi_data(build)
    try:
        return plan_registration(manifest, data_image=build.data_image, uefi_data=uefi,
                                 volume_type=amis.volume_type, tpm_support=amis.tpm_support,
                                 imds_support=amis.imds_support)
    except ValueError as e:
        raise RegistrationError(str(e)) from None
