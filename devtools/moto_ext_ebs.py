"""moto 5.2 EBS direct API extensions: make snapshot uploads check what AWS checks.

moto stores whatever PutSnapshotBlock sends and marks a snapshot completed on request, so an
uploader with wrong checksums, a wrong block count or a forgotten block would pass. Filled in
here (the moto server calls `install()`; it also installs `moto_ext_ec2`, which owns the
snapshot state):

- StartSnapshot honours ClientToken (the same token in one account and region returns the same
  snapshot instead of a second one), checks VolumeSize (1..65536 GiB), answers BlockSize
  524288 (moto says 512), and leaves the EC2 snapshot `pending` until it is completed; the
  throwaway volume moto creates behind it is not left in DescribeVolumes.
- PutSnapshotBlock refuses unknown or non-pending snapshots, block indexes beyond the volume,
  blocks that are not exactly 512 KiB, and a Checksum that is not the base64 SHA-256 of the
  data.
- CompleteSnapshot refuses a ChangedBlocksCount that differs from the blocks written and a
  LINEAR aggregate checksum that differs from SHA-256 over the per-block digests in index
  order; the EC2 snapshot then becomes `completed` through moto's state manager (model
  `ebs::snapshot`, immediate unless a test sets another transition).
- EC2 DeleteSnapshot also drops the snapshot's blocks (moto would keep them in memory).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from devtools import moto_ext_ec2
from devtools.moto_ext_ec2 import SNAPSHOT_MODEL, _lock, _managed, _patch

BLOCK_SIZE = 512 * 1024
GIB = 1024**3


def install() -> None:
    """Install the EBS extensions and the EC2 ones they build on (idempotent)."""
    from moto.ebs.responses import EBSResponse

    moto_ext_ec2.install()
    with _lock:
        if EBSResponse.__dict__.get("put_snapshot_block") is _put_snapshot_block:
            return
        _install()


def _err(code: str, message: str) -> Exception:
    from moto.core.exceptions import ServiceException

    class EbsError(ServiceException):
        """Defined outside moto so its serializer looks the code up in the EBS model only."""

    return EbsError(code, message)


def _snapshot(response: Any, snapshot_id: str) -> Any:
    snap = response.ebs_backend.snapshots.get(snapshot_id)
    if snap is None:
        raise _err("ResourceNotFoundException", f"The snapshot '{snapshot_id}' does not exist")
    return snap


def _start_snapshot(self: Any) -> Any:
    from moto.core.responses import ActionResult

    backend = self.ebs_backend
    token = self._get_param("ClientToken")
    tokens = backend.__dict__.setdefault("_ext_tokens", {})
    with _lock:
        snap = backend.snapshots.get(tokens.get(token)) if token else None
        if snap is None:
            size = self._get_param("VolumeSize")
            if not isinstance(size, int) or not 1 <= size <= 65536:
                raise _err("ValidationException", f"VolumeSize must be 1..65536 GiB, got {size}")
            snap = backend.start_snapshot(volume_size=size, tags=self._get_param("Tags"),
                                          description=self._get_param("Description"))
            snap.block_size = BLOCK_SIZE
            ec2 = backend.ec2_backend
            ec2_snap = ec2.snapshots[snap.snapshot_id]
            ec2_snap.status = "pending"
            ec2.volumes.pop(ec2_snap.volume.id, None)
            if token:
                tokens[token] = snap.snapshot_id
    return ActionResult({
        "SnapshotId": snap.snapshot_id, "OwnerId": snap.account_id, "Status": snap.status,
        "StartTime": snap.start_time, "VolumeSize": snap.volume_size,
        "BlockSize": snap.block_size, "Tags": snap.tags, "Description": snap.description,
    })


def _put_snapshot_block(self: Any) -> Any:
    from moto.core.responses import ActionResult

    snap = _snapshot(self, self._get_param("SnapshotId"))
    if snap.status != "pending":
        raise _err("ValidationException",
                   f"Snapshot {snap.snapshot_id} is {snap.status}; blocks can only be "
                   "written to a pending snapshot")
    index = int(self._get_param("BlockIndex"))
    blocks = snap.volume_size * GIB // BLOCK_SIZE
    if not 0 <= index < blocks:
        raise _err("ValidationException",
                   f"BlockIndex {index} is outside the volume (0..{blocks - 1})")
    data = self._get_param("BlockData") or b""
    length = int(self._get_param("DataLength") or -1)
    if len(data) != length or length != BLOCK_SIZE:
        raise _err("ValidationException",
                   f"block {index}: DataLength {length}, {len(data)} bytes received; "
                   f"blocks are exactly {BLOCK_SIZE} bytes")
    checksum, algorithm = self._get_param("Checksum"), self._get_param("ChecksumAlgorithm")
    if algorithm != "SHA256":
        raise _err("ValidationException", f"ChecksumAlgorithm must be SHA256, got {algorithm}")
    if checksum != base64.b64encode(hashlib.sha256(data).digest()).decode():
        raise _err("ValidationException", f"block {index}: Checksum does not match the data")
    snap.put_block(index, data, checksum, algorithm, length)
    return ActionResult({"Checksum": checksum, "ChecksumAlgorithm": algorithm})


def linear_checksum(blocks: dict[int, Any]) -> str:
    digests = b"".join(base64.b64decode(blocks[i].checksum) for i in sorted(blocks))
    return base64.b64encode(hashlib.sha256(digests).digest()).decode()


def _complete_snapshot(self: Any) -> Any:
    from moto.core.responses import ActionResult

    snap = _snapshot(self, self._get_param("SnapshotId"))
    if snap.status == "completed":
        return ActionResult({"Status": "completed"})
    count = self._get_param("ChangedBlocksCount")
    if count is None or int(count) != len(snap.blocks):
        raise _err("ValidationException",
                   f"ChangedBlocksCount {count} does not match the {len(snap.blocks)} "
                   "blocks written")
    checksum = self._get_param("Checksum")
    if checksum is not None:
        if (self._get_param("ChecksumAlgorithm") != "SHA256"
                or self._get_param("ChecksumAggregationMethod") != "LINEAR"):
            raise _err("ValidationException",
                       "a Checksum needs ChecksumAlgorithm SHA256 and "
                       "ChecksumAggregationMethod LINEAR")
        try:
            base64.b64decode(checksum, validate=True)
        except (binascii.Error, ValueError):
            raise _err("ValidationException", "Checksum is not base64") from None
        if checksum != linear_checksum(snap.blocks):
            raise _err("ValidationException",
                       "Checksum does not match the linear aggregate of the blocks written")
    snap.status = "completed"
    ec2_snap = self.ebs_backend.ec2_backend.snapshots.get(snap.snapshot_id)
    if ec2_snap is not None:
        ec2_snap._ext_managed = _managed(SNAPSHOT_MODEL, [("pending", "completed")])
    return ActionResult({"Status": "completed"})


def _install() -> None:
    from moto.ebs.models import ebs_backends
    from moto.ebs.responses import EBSResponse
    from moto.ec2.models.elastic_block_store import EBSBackend as EC2SnapshotStore

    _patch(EBSResponse, "start_snapshot", _start_snapshot)
    _patch(EBSResponse, "put_snapshot_block", _put_snapshot_block)
    _patch(EBSResponse, "complete_snapshot", _complete_snapshot)

    original_delete = EC2SnapshotStore.delete_snapshot

    def delete_snapshot(self: Any, snapshot_id: str) -> Any:
        deleted = original_delete(self, snapshot_id)
        ebs_backends[self.account_id][self.region_name].snapshots.pop(snapshot_id, None)
        return deleted

    _patch(EC2SnapshotStore, "delete_snapshot", delete_snapshot)
