"""`docker import`: a root filesystem tarball becomes a one-layer image.

The tarball may be plain, gzip or zstd compressed; it is stored as an
uncompressed layer (its digest is then its DiffID, and saving it needs no
recompression).  The config is Docker's: host platform, `created` now, the
`--change` instructions applied to an empty container config, and the
message as comment and history.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import BinaryIO

from ..content import Descriptor
from ..diff import Compression, decompressing_reader, detect
from ..errors import InvalidArgument
from .changes import apply_changes
from .formats import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    build_manifest,
    canonical_json,
    host_platform,
    parse_config,
)
from .reference import Reference
from .staging import StagedImage, Staging

DOCKER_VERSION = "20.10.24-dockyard"


def now_rfc3339() -> str:
    """UTC now, RFC 3339 with nanoseconds, as Docker writes `created`."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


class _Prefixed:
    """A stream with some bytes already read from its head put back in front."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head = head
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            if len(data) < n:
                data += self._stream.read(n - len(data)) or b""
            return data
        return self._stream.read(n)


def _read_head(stream: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n:
        chunk = stream.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


def stage_rootfs(stream: BinaryIO, staging: Staging, changes: Sequence[str] = (), message: str = "",
                 names: Sequence[Reference] = ()) -> StagedImage:
    """Stage the image `docker import` makes of the tarball in `stream`."""
    container_config = apply_changes({}, changes)
    head = _read_head(stream, 6)
    if not head:
        raise InvalidArgument("import: the tarball is empty")
    compression = detect(head)
    source = _Prefixed(head, stream)
    plain = decompressing_reader(source, compression) if compression is not Compression.NONE else source
    layer_digest = staging.add_stream(plain)
    size = staging.size(layer_digest)
    if size < 1024:
        raise InvalidArgument("import: not a tar archive (too short)")
    created = now_rfc3339()
    comment = message or "Imported from -"
    platform = host_platform()
    config = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "comment": comment,
        "docker_version": DOCKER_VERSION,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": created, "comment": comment}],
    }
    if platform.variant:
        config["variant"] = platform.variant
    raw = canonical_json(config)
    parsed = parse_config(raw)
    config_digest = staging.add_bytes(raw)
    layer = Descriptor(OCI_LAYER, layer_digest, size)
    manifest = build_manifest(Descriptor(OCI_CONFIG, config_digest, len(raw)), [layer])
    staging.add_bytes(manifest)
    return StagedImage(parsed, config_digest, manifest, OCI_MANIFEST, (layer,), tuple(names))
