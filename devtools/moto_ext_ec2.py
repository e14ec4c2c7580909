"""moto 5.2 EC2 extensions: the AMI behaviour `pubsys ami/publish-ami/validate-ami` relies on.

moto's own EC2 AMIs are thin: RegisterImage keeps only name and description, CopyImage carries
nothing over and only works inside one account, images are `available` at once, and image
block public access and deprecation do not exist. pubsys must send exactly what AWS needs, so
the gaps are filled here, in the moto server process (`devtools/moto_server.py` calls
`install()`), never by sending less:

- RegisterImage with block device mappings (what pubsys sends; without any, moto's own
  behaviour is kept for other tests) keeps architecture, block device mappings (snapshot,
  size, gp3, delete on termination), root device, virtualization type, ENA, SR-IOV, boot
  mode, TPM, IMDS support, UEFI data and `image` tags; it checks what AWS checks (name
  format and uniqueness per owner, snapshots exist, are completed and readable, the root
  device is mapped, TPM and UEFI data need a UEFI boot mode) and points the image at the
  given snapshots (no phantom 15 GiB snapshot).
- CopyImage copies every attribute, creates snapshot copies in the target region (sharing the
  source's EBS blocks), applies TagSpecifications / CopyImageTags, honours ClientToken, and
  works across accounts only when the source image and its snapshots were shared with the
  copying account (launch permission and createVolumePermission), as AWS requires.
- Images start `pending` (described without snapshot ids, as AWS describes them until they
  are available) and become `available` through moto's state manager, model
  `ec2::image` (default: immediately; tests set e.g. {"progression": "manual", "times": 3}
  with POST /moto-api/state-manager/set-transition). Snapshots completed through the EBS
  direct APIs use model `ebs::snapshot` the same way.
- DescribeImageAttribute answers every attribute (moto's answers bootMode & co. under the
  wrong keys); ModifyImageAttribute refuses group `all` while block public access is on.
- GetImageBlockPublicAccessState / Enable- / DisableImageBlockPublicAccess (per account and
  region, default `unblocked`) and Enable- / DisableImageDeprecation (DeprecationTime, rounded
  to the minute as AWS does) exist.
- GetSnapshotBlockPublicAccessState / Enable- / DisableSnapshotBlockPublicAccess (per account
  and region, default `unblocked`; `block-new-sharing` or `block-all-sharing`), and
  ModifySnapshotAttribute refuses to add group `all` while either is on, as AWS does.
- Fault injection for tests: POST /moto-api/pubsys/faults with
  {"action": ACTION, "region": "us-east-2", "mode": MODE, "message": "...", "seconds": S,
   "skip": N}. Modes: for CopyImage, `failed` (the copy goes to state failed with a
  StateReason, as a failed AWS copy does); for CopyImage, ModifyImageAttribute and
  ModifySnapshotAttribute, `error` (the call is refused); for CopyImage and DescribeImages,
  `delay` (the answer comes after S seconds). `skip` lets the first N matching calls through.
  DELETE clears all faults; a moto reset clears them too.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

GIB = 1024**3
IMAGE_MODEL = "ec2::image"
SNAPSHOT_MODEL = "ebs::snapshot"
FAULTS_PATH = "{0}/moto-api/pubsys/faults$"

_lock = threading.RLock()
_faults: dict[tuple[str, str], dict[str, Any]] = {}
FAULT_MODES = ("failed", "error", "delay")
_undo: list[Callable[[], None]] = []


# --- patch bookkeeping -----------------------------------------------------------------


def _patch(obj: Any, name: str, value: Any) -> None:
    """Set obj.name (or obj[name] for a dict) and remember how to undo it."""
    if isinstance(obj, dict):
        had, old = name in obj, obj.get(name)
        obj[name] = value
        _undo.append(lambda: obj.__setitem__(name, old) if had else obj.pop(name, None))
        return
    had, old = name in obj.__dict__, obj.__dict__.get(name)
    setattr(obj, name, value)
    _undo.append(lambda: setattr(obj, name, old) if had else delattr(obj, name))


def install() -> None:
    """Install the EC2 extensions (idempotent)."""
    with _lock:
        if _undo:
            return
        _install()


def uninstall() -> None:
    """Restore moto as it was (for in-process tests; the server never uninstalls)."""
    with _lock:
        while _undo:
            _undo.pop()()
        _faults.clear()


@contextmanager
def installed() -> Iterator[None]:
    """Extensions active for the duration (in-process `mock_aws` tests)."""
    was = bool(_undo)
    install()
    try:
        yield
    finally:
        if not was:
            uninstall()


# --- faults ----------------------------------------------------------------------------


def set_fault(action: str, region: str, mode: str, message: str = "injected failure",
              seconds: float = 0.0, skip: int = 0) -> None:
    if mode not in FAULT_MODES:
        raise ValueError(f"fault mode must be one of {', '.join(FAULT_MODES)}, got {mode!r}")
    with _lock:
        _faults[(action, region)] = {"mode": mode, "message": message,
                                     "seconds": float(seconds), "skip": int(skip)}


def clear_faults() -> None:
    with _lock:
        _faults.clear()


def _fault(action: str, region: str) -> dict[str, Any] | None:
    """The fault for this call, if one is set and its skipped calls are used up."""
    with _lock:
        fault = _faults.get((action, region))
        if fault is None:
            return None
        if fault["skip"] > 0:
            fault["skip"] -= 1
            return None
        return fault


def _delay_or_refuse(action: str, region: str) -> None:
    """Apply a `delay` or `error` fault set for this action and region."""
    fault = _fault(action, region)
    if fault is None:
        return
    if fault["mode"] == "delay":
        time.sleep(fault["seconds"])
    elif fault["mode"] == "error":
        raise _err("InvalidRequest", f"{action} in {region}: {fault['message']}")


def _faults_endpoint(request: Any, full_url: str, headers: Any) -> tuple[int, dict, str]:
    if request.method == "POST":
        try:
            body = json.loads(request.get_data() or b"{}")
            set_fault(body["action"], body["region"], body.get("mode", "failed"),
                      body.get("message", "injected failure"), body.get("seconds", 0.0),
                      body.get("skip", 0))
        except (KeyError, ValueError, TypeError) as e:
            return 400, {}, json.dumps({"error": f"bad fault: {e}"})
        return 200, {}, json.dumps({"status": "ok"})
    if request.method == "DELETE":
        clear_faults()
        return 200, {}, json.dumps({"status": "ok"})
    with _lock:
        listed = [{"action": a, "region": r, **v} for (a, r), v in _faults.items()]
    return 200, {}, json.dumps(listed)


# --- helpers ---------------------------------------------------------------------------


def _err(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _ec2_backend(account: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


def _ebs_store(account: str, region: str) -> Any | None:
    try:
        from moto.ebs.models import ebs_backends
    except ImportError:  # pragma: no cover
        return None
    return ebs_backends[account][region]


def _managed(model: str, transitions: list[tuple[str, str]]) -> Any:
    from moto.moto_api._internal.managed_state_model import ManagedState

    return ManagedState(model, transitions)


def _advance(objs: Any) -> None:
    for obj in objs or ():
        m = getattr(obj, "__dict__", {}).get("_ext_managed")
        if m is not None:
            m.advance()


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


_NAME_RE = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$")


def _check_name(backend: Any, owner: str, name: str | None) -> None:
    if not name or not _NAME_RE.match(name):
        raise _err("InvalidAMIName.Malformed",
                   f"AMI names must be 3-128 characters of letters, numbers, ()[] ./-'@_ "
                   f"(got {name!r})")
    for ami in backend.amis.values():
        if ami.name == name and ami.owner_id == owner and ami.state != "deregistered":
            raise _err("InvalidAMIName.Duplicate",
                       f"AMI name {name} is already in use by AMI {ami.id}")


def _snapshot_readable(snapshot: Any, account: str) -> bool:
    return (snapshot.owner_id == account
            or account in snapshot.create_volume_permission_userids
            or "all" in snapshot.create_volume_permission_groups)


def _image_launchable(ami: Any, account: str) -> bool:
    return (ami.owner_id == account or ami.is_public
            or {"UserId": account} in ami.launch_permissions)


def _bpa_state(backend: Any) -> str:
    return backend.__dict__.get("_ext_bpa", "unblocked")


# --- RegisterImage ---------------------------------------------------------------------

_ARCHES = {"i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac"}
_BOOT_MODES = {"legacy-bios", "uefi", "uefi-preferred"}


def _register_image(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.ec2.responses.amis import AmisResponse

    self.error_on_dryrun()
    p = self._get_param
    if not p("BlockDeviceMappings"):
        # Not an EBS image registration (pubsys always maps its snapshots): moto's own
        # behaviour, so other tests that register bare images keep working.
        return AmisResponse.register_image(self)
    backend, account = self.ec2_backend, self.current_account
    name = p("Name")
    _check_name(backend, account, name)
    arch = p("Architecture") or "i386"
    if arch not in _ARCHES:
        raise _err("InvalidParameterValue", f"Invalid value '{arch}' for architecture")
    boot_mode = p("BootMode")
    if boot_mode is not None and boot_mode not in _BOOT_MODES:
        raise _err("InvalidParameterValue", f"Invalid value '{boot_mode}' for bootMode")
    tpm = p("TpmSupport")
    if tpm is not None:
        if tpm != "v2.0":
            raise _err("InvalidParameterValue", f"Invalid value '{tpm}' for tpmSupport")
        if boot_mode not in ("uefi", "uefi-preferred"):
            raise _err("InvalidParameterCombination",
                       "TpmSupport requires BootMode uefi or uefi-preferred")
    imds = p("ImdsSupport")
    if imds is not None and imds != "v2.0":
        raise _err("InvalidParameterValue", f"Invalid value '{imds}' for imdsSupport")
    uefi = p("UefiData")
    if uefi is not None:
        if boot_mode not in ("uefi", "uefi-preferred"):
            raise _err("InvalidParameterCombination",
                       "UefiData requires BootMode uefi or uefi-preferred")
        try:
            raw = base64.b64decode(uefi, validate=True)
        except (binascii.Error, ValueError):
            raise _err("InvalidParameterValue", "UefiData must be base64") from None
        if len(raw) > 64 * 1024:
            raise _err("InvalidParameterValue", "UefiData is larger than 64 KiB")
    sriov = p("SriovNetSupport")
    if sriov is not None and sriov != "simple":
        raise _err("InvalidParameterValue", f"Invalid value '{sriov}' for sriovNetSupport")
    virt = p("VirtualizationType") or "paravirtual"
    if virt not in ("hvm", "paravirtual"):
        raise _err("InvalidParameterValue", f"Invalid value '{virt}' for virtualizationType")
    root = p("RootDeviceName")
    mappings = p("BlockDeviceMappings", []) or []
    bdm, snapshots = [], []
    for m in mappings:
        ebs = m.get("Ebs") or {}
        sid = ebs.get("SnapshotId")
        if not sid:
            raise _err("InvalidParameterValue", f"{m.get('DeviceName')}: Ebs.SnapshotId missing")
        snap = backend.snapshots.get(sid)
        if snap is None or not _snapshot_readable(snap, account):
            raise _err("InvalidSnapshot.NotFound", f"The snapshot '{sid}' does not exist.")
        if snap.status != "completed":
            raise _err("IncorrectState", f"Snapshot {sid} is {snap.status}, not completed")
        size = int(ebs.get("VolumeSize") or snap.volume_size)
        if size < snap.volume_size:
            raise _err("InvalidBlockDeviceMapping",
                       f"Volume of {size} GiB is smaller than snapshot {sid} "
                       f"({snap.volume_size} GiB)")
        delete = _bool(ebs.get("DeleteOnTermination"))
        bdm.append({"DeviceName": m.get("DeviceName"), "Ebs": {
            "SnapshotId": sid, "VolumeSize": size,
            "DeleteOnTermination": True if delete is None else delete,
            "VolumeType": ebs.get("VolumeType") or "standard", "Encrypted": snap.encrypted,
        }})
        snapshots.append(snap)
    if root not in [m["DeviceName"] for m in bdm]:
        raise _err("InvalidBlockDeviceMapping",
                   f"The root device name {root!r} is not among the block device mappings")
    tags: dict[str, str] = {}
    for spec in p("TagSpecifications", []) or []:
        if spec.get("ResourceType") != "image":
            raise _err("InvalidParameterValue",
                       "RegisterImage tags apply to ResourceType 'image' only")
        tags.update({t["Key"]: t["Value"] for t in spec.get("Tags", [])})

    ami = backend.register_image(name, p("Description", ""))
    _replace_auto_snapshot(backend, ami, snapshots[[m["DeviceName"] for m in bdm].index(root)])
    for snap in snapshots:
        snap.from_ami = ami.id
    attrs = dict(architecture=arch, virtualization_type=virt, root_device_name=root,
                 root_device_type="ebs", sriov=sriov, sriov_net_support=sriov,
                 ena_support=_bool(p("EnaSupport")), boot_mode=boot_mode, tpm_support=tpm,
                 imds_support=imds, uefi_data=uefi, hypervisor="xen",
                 platform_details="Linux/UNIX", usage_operation="RunInstances",
                 image_location=f"{account}/{name}")
    for k, v in attrs.items():
        setattr(ami, k, v)
    ami._ext_bdm = bdm
    ami._ext_managed = _managed(IMAGE_MODEL, [("pending", "available")])
    if tags:
        ami.add_tags(tags)
    return ActionResult({"ImageId": ami.id})


def _replace_auto_snapshot(backend: Any, ami: Any, real: Any) -> None:
    """moto's Ami makes a 15 GiB snapshot of nothing; point the image at the real one."""
    backend.snapshots.pop(ami.ebs_snapshot.id, None)
    ami.ebs_snapshot = real


# --- CopyImage -------------------------------------------------------------------------


def _find_source(region: str, image_id: str) -> tuple[str, Any]:
    from moto.ec2.models import ec2_backends

    for account in list(ec2_backends.keys()):
        backend = ec2_backends[account][region]
        ami = backend.amis.get(image_id)
        if ami is not None:
            return account, ami
    raise _err("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")


def _copy_image(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.ec2.models.amis import Ami
    from moto.ec2.utils import random_ami_id

    self.error_on_dryrun()
    p = self._get_param
    backend, account, region = self.ec2_backend, self.current_account, self.region
    token = p("ClientToken")
    tokens = backend.__dict__.setdefault("_ext_copy_tokens", {})
    fault = _fault("CopyImage", region)
    if fault and fault["mode"] == "delay":
        time.sleep(fault["seconds"])
    with _lock:
        if token and tokens.get(token) in backend.amis:
            return ActionResult({"ImageId": tokens[token]})
        if fault and fault["mode"] == "error":
            raise _err("InvalidRequest", f"CopyImage into {region}: {fault['message']}")
        src_region, src_id = p("SourceRegion"), p("SourceImageId")
        src_account, source = _find_source(src_region, src_id)
        if source.state != "available":
            raise _err("IncorrectState", f"Image {src_id} is {source.state}, not available")
        if not _image_launchable(source, account):
            raise _err("InvalidAMIID.NotFound",
                       f"The image id '[{src_id}]' does not exist (not shared with {account})")
        src_backend = _ec2_backend(src_account, src_region)
        src_bdm = source.block_device_mappings
        for m in src_bdm:
            snap = src_backend.snapshots.get(m["Ebs"]["SnapshotId"])
            if snap is None or not _snapshot_readable(snap, account):
                raise _err("InvalidRequest",
                           f"You do not have permission to access the storage of this ami "
                           f"({m['Ebs']['SnapshotId']} is not shared with {account})")
        name = p("Name") or source.name
        _check_name(backend, account, name)

        ami = Ami(backend, random_ami_id(), source_ami=source, name=name,
                  description=p("Description") or source.description)
        new_bdm, root_snap = [], None
        tag_specs = p("TagSpecifications", []) or []
        snap_tags = {t["Key"]: t["Value"] for s in tag_specs
                     if s.get("ResourceType") == "snapshot" for t in s.get("Tags", [])}
        for m in src_bdm:
            snap = src_backend.snapshots[m["Ebs"]["SnapshotId"]]
            copy = _copy_snapshot(backend, snap, src_account, src_region, ami.id, src_id)
            if snap_tags:
                copy.add_tags(snap_tags)
            new_bdm.append({**m, "Ebs": {**m["Ebs"], "SnapshotId": copy.id}})
            if m["DeviceName"] == source.root_device_name:
                root_snap = copy
        _replace_auto_snapshot(backend, ami, root_snap or ami.ebs_snapshot)
        for k in ("root_device_name", "root_device_type", "sriov", "sriov_net_support",
                  "ena_support", "boot_mode", "tpm_support", "imds_support", "uefi_data",
                  "hypervisor", "platform_details", "usage_operation"):
            setattr(ami, k, getattr(source, k, None))
        ami.image_location = f"{account}/{name}"
        ami.source_image_id, ami.source_image_region = src_id, src_region
        ami._ext_bdm = new_bdm
        if fault and fault["mode"] == "failed":
            ami._ext_managed = _managed(IMAGE_MODEL, [("pending", "failed")])
            ami.state_reason = {"Code": "Server.InternalError",
                                "Message": f"Copy failed: {fault['message']}"}
        else:
            ami._ext_managed = _managed(IMAGE_MODEL, [("pending", "available")])
        tags: dict[str, str] = {}
        if _bool(p("CopyImageTags")):
            tags.update({t["key"]: t["value"] for t in source.get_tags()})
        for spec in tag_specs:
            if spec.get("ResourceType") == "image":
                tags.update({t["Key"]: t["Value"] for t in spec.get("Tags", [])})
        backend.amis[ami.id] = ami
        if tags:
            ami.add_tags(tags)
        if token:
            tokens[token] = ami.id
    return ActionResult({"ImageId": ami.id})


def _copy_snapshot(backend: Any, snap: Any, src_account: str, src_region: str, ami_id: str,
                   src_ami: str) -> Any:
    volume = backend.create_volume(size=snap.volume_size, zone_name=f"{backend.region_name}a")
    copy = backend.create_snapshot(
        volume.id, f"Copied for DestinationAmi {ami_id} from SourceAmi {src_ami} for "
        f"SourceSnapshot {snap.id}", from_ami=ami_id)
    backend.volumes.pop(volume.id, None)
    source_store = _ebs_store(src_account, src_region)
    target_store = _ebs_store(backend.account_id, backend.region_name)
    if source_store is not None and snap.id in source_store.snapshots:
        from moto.ebs.models import EBSSnapshot

        blocks = EBSSnapshot(backend.account_id, copy)
        blocks.blocks = source_store.snapshots[snap.id].blocks  # shared, never mutated
        blocks.block_size = source_store.snapshots[snap.id].block_size
        blocks.status = "completed"
        target_store.snapshots[copy.id] = blocks
    return copy


# --- attributes, permissions, block public access, deprecation ---------------------------


def _describe_image_attribute(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import AuthFailureRestricted, InvalidRequest

    image_id, attribute = self._get_param("ImageId"), self._get_param("Attribute")
    self.error_on_dryrun()
    ami = self.ec2_backend.describe_images(ami_ids=[image_id])[0]

    def value(v: Any) -> dict[str, Any] | None:
        return None if v is None else {"Value": v}

    answers: dict[str, tuple[str, Callable[[], Any]]] = {
        "description": ("Description", lambda: value(ami.description)),
        "kernel": ("KernelId", lambda: value(ami.kernel_id)),
        "ramdisk": ("RamdiskId", lambda: None),
        "launchPermission": ("LaunchPermissions", lambda: list(ami.launch_permissions)),
        "productCodes": ("ProductCodes", lambda: [
            {"ProductCodeId": c, "ProductCodeType": "marketplace"} for c in ami.product_codes]),
        "sriovNetSupport": ("SriovNetSupport", lambda: value(getattr(ami, "sriov_net_support",
                                                                       None))),
        "bootMode": ("BootMode", lambda: value(ami.boot_mode)),
        "tpmSupport": ("TpmSupport", lambda: value(getattr(ami, "tpm_support", None))),
        "uefiData": ("UefiData", lambda: value(getattr(ami, "uefi_data", None))),
        "imdsSupport": ("ImdsSupport", lambda: value(getattr(ami, "imds_support", None))),
        "lastLaunchedTime": ("LastLaunchedTime", lambda: None),
        "deregistrationProtection": ("DeregistrationProtection", lambda: value("disabled")),
    }
    if attribute == "blockDeviceMapping":
        raise AuthFailureRestricted  # as AWS: use DescribeImages
    if attribute not in answers:
        raise InvalidRequest
    key, get = answers[attribute]
    result: dict[str, Any] = {"ImageId": image_id}
    v = get()
    if v is not None:
        result[key] = v
    return ActionResult(result)


def _adds_public(self: Any) -> bool:
    added = (self._get_param("LaunchPermission", {}) or {}).get("Add", []) or []
    if any(lp.get("Group") == "all" for lp in added):
        return True
    return (self._get_param("OperationType") == "add"
            and "all" in (self._get_param("UserGroups", []) or []))


def _wrap_modify_image_attribute(original: Callable) -> Callable:
    def modify_image_attribute(self: Any) -> Any:
        _delay_or_refuse("ModifyImageAttribute", self.region)
        if _adds_public(self) and _bpa_state(self.ec2_backend) != "unblocked":
            raise _err("OperationNotPermitted",
                       "The image cannot be made public: image block public access is "
                       f"enabled for account {self.current_account} in {self.region}")
        return original(self)

    return modify_image_attribute


def _snapshot_bpa_state(backend: Any) -> str:
    return backend.__dict__.get("_ext_snapshot_bpa", "unblocked")


_SNAPSHOT_BPA_STATES = ("block-all-sharing", "block-new-sharing")


def _wrap_modify_snapshot_attribute(original: Callable) -> Callable:
    def modify_snapshot_attribute(self: Any) -> Any:
        _delay_or_refuse("ModifySnapshotAttribute", self.region)
        adds_all = (self._get_param("OperationType") == "add"
                    and "all" in (self._get_param("GroupNames", []) or []))
        if adds_all and _snapshot_bpa_state(self.ec2_backend) != "unblocked":
            raise _err("OperationNotPermitted",
                       "The snapshot cannot be shared publicly: snapshot block public access "
                       f"is enabled for account {self.current_account} in {self.region}")
        return original(self)

    return modify_snapshot_attribute


def _get_snapshot_block_public_access_state(self: Any) -> Any:
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    return ActionResult({"State": _snapshot_bpa_state(self.ec2_backend),
                         "ManagedBy": "account"})


def _enable_snapshot_block_public_access(self: Any) -> Any:
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    state = self._get_param("State")
    if state not in _SNAPSHOT_BPA_STATES:
        raise _err("InvalidParameterValue", f"Invalid value '{state}' for State")
    self.ec2_backend._ext_snapshot_bpa = state
    return ActionResult({"State": state})


def _disable_snapshot_block_public_access(self: Any) -> Any:
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    self.ec2_backend._ext_snapshot_bpa = "unblocked"
    return ActionResult({"State": "unblocked"})


def _get_image_block_public_access_state(self: Any) -> Any:
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    return ActionResult({"ImageBlockPublicAccessState": _bpa_state(self.ec2_backend)})


def _enable_image_block_public_access(self: Any) -> Any:
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    state = self._get_param("ImageBlockPublicAccessState")
    if state != "block-new-sharing":
        raise _err("InvalidParameterValue",
                   f"Invalid value '{state}' for ImageBlockPublicAccessState")
    self.ec2_backend._ext_bpa = state
    return ActionResult({"ImageBlockPublicAccessState": state})


def _disable_image_block_public_access(self: Any) -> Any:
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    self.ec2_backend._ext_bpa = "unblocked"
    return ActionResult({"ImageBlockPublicAccessState": "unblocked"})


def _enable_image_deprecation(self: Any) -> Any:
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    ami = self.ec2_backend.describe_images(ami_ids=[self._get_param("ImageId")])[0]
    when = self._get_param("DeprecateAt")
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    rounded = (when + timedelta(seconds=30)).replace(second=0, microsecond=0)
    now = datetime.now(timezone.utc)
    if rounded <= now or rounded > now + timedelta(days=3650):
        raise _err("InvalidParameterValue",
                   "DeprecateAt must be in the future and at most 10 years from now")
    ami.deprecation_time = _iso(rounded)
    return ActionResult({"Return": True})


def _disable_image_deprecation(self: Any) -> Any:
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    ami = self.ec2_backend.describe_images(ami_ids=[self._get_param("ImageId")])[0]
    ami.deprecation_time = None
    return ActionResult({"Return": True})


def _wrap_describe(original: Callable, attr: str, action: str) -> Callable:
    """Every Describe call moves managed states along (moto's 'manual' progression)."""

    def describe(self: Any) -> Any:
        _delay_or_refuse(action, self.region)
        result = original(self)
        _advance(getattr(result, "result", None) and result.result.get(attr))
        return result

    return describe


# --- install ---------------------------------------------------------------------------


def _install() -> None:
    from moto.ec2.models.amis import Ami
    from moto.ec2.models.elastic_block_store import Snapshot
    from moto.ec2.responses import EC2Response
    from moto.moto_api import state_manager
    from moto.moto_api._internal import urls as moto_api_urls
    from moto.moto_api._internal.models import MotoAPIBackend

    state_manager.register_default_transition(IMAGE_MODEL, {"progression": "immediate"})
    state_manager.register_default_transition(SNAPSHOT_MODEL, {"progression": "immediate"})

    # State of images and snapshots: a managed state when the extension set one.
    def managed_property(name: str) -> property:
        plain = f"_ext_{name}"

        def get(self: Any) -> Any:
            m = self.__dict__.get("_ext_managed")
            if m is not None:
                return m.status
            # objects made before install() keep the plain attribute moto set
            return self.__dict__.get(plain, self.__dict__.get(name))

        def set_(self: Any, value: Any) -> None:
            self.__dict__.pop("_ext_managed", None)
            self.__dict__[plain] = value

        return property(get, set_)

    _patch(Ami, "state", managed_property("state"))
    _patch(Snapshot, "status", managed_property("status"))
    original_bdm = Ami.__dict__["block_device_mappings"]

    def block_device_mappings(self: Any) -> Any:
        bdm = self.__dict__.get("_ext_bdm") or original_bdm.fget(self)
        if self.state == "pending":  # as AWS: no snapshot ids until the image is available
            return [{**m, "Ebs": {k: v for k, v in m.get("Ebs", {}).items()
                                  if k != "SnapshotId"}} for m in bdm]
        return bdm

    _patch(Ami, "block_device_mappings", property(block_device_mappings))
    for attr in ("deprecation_time", "state_reason", "tpm_support", "imds_support",
                 "ena_support", "uefi_data", "sriov_net_support", "source_image_id",
                 "source_image_region", "platform_details", "usage_operation"):
        if not hasattr(Ami, attr):
            _patch(Ami, attr, None)

    _patch(EC2Response, "register_image", _register_image)
    _patch(EC2Response, "copy_image", _copy_image)
    _patch(EC2Response, "describe_image_attribute", _describe_image_attribute)
    _patch(EC2Response, "modify_image_attribute",
           _wrap_modify_image_attribute(EC2Response.modify_image_attribute))
    _patch(EC2Response, "describe_images",
           _wrap_describe(EC2Response.describe_images, "Images", "DescribeImages"))
    _patch(EC2Response, "describe_snapshots",
           _wrap_describe(EC2Response.describe_snapshots, "Snapshots", "DescribeSnapshots"))
    _patch(EC2Response, "modify_snapshot_attribute",
           _wrap_modify_snapshot_attribute(EC2Response.modify_snapshot_attribute))
    _patch(EC2Response, "get_snapshot_block_public_access_state",
           _get_snapshot_block_public_access_state)
    _patch(EC2Response, "enable_snapshot_block_public_access",
           _enable_snapshot_block_public_access)
    _patch(EC2Response, "disable_snapshot_block_public_access",
           _disable_snapshot_block_public_access)
    _patch(EC2Response, "get_image_block_public_access_state",
           _get_image_block_public_access_state)
    _patch(EC2Response, "enable_image_block_public_access", _enable_image_block_public_access)
    _patch(EC2Response, "disable_image_block_public_access",
           _disable_image_block_public_access)
    _patch(EC2Response, "enable_image_deprecation", _enable_image_deprecation)
    _patch(EC2Response, "disable_image_deprecation", _disable_image_deprecation)

    # Test control: faults, cleared with the rest of moto's state on reset.
    _patch(moto_api_urls.url_paths, FAULTS_PATH, _faults_endpoint)
    original_reset = MotoAPIBackend.reset

    def reset(self: Any) -> None:
        clear_faults()
        original_reset(self)

    _patch(MotoAPIBackend, "reset", reset)
