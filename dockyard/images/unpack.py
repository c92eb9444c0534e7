"""Unpack an image's layers into committed snapshots named by chain id.

A layer whose chain already has a snapshot is not unpacked again: that is
how images built on the same base share it on disk.  Each new layer is
unpacked into a fresh active snapshot (a temporary key) and committed under
its chain id only when the whole layer applied cleanly and its DiffID
matched; otherwise the snapshot is removed, so no half-unpacked layer is
ever visible.  Two imports racing for one chain both unpack; the second
commit finds the name taken and drops its copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..content import Descriptor
from ..diff import unpack_blob
from ..errors import Conflict
from ..snapshots import Snapshotter, chain_id
from .store import LayerRecord

EXTRACT_PREFIX = "extract-"


@dataclass(frozen=True)
class LayerSource:
    descriptor: Descriptor      # the blob as the manifest describes it
    diff_id: str                # from the image config
    path: str                   # a file holding the blob's bytes
    verified: bool              # the file's digest was checked against descriptor.digest


def unpack_layers(snapshotter: Snapshotter, sources: Sequence[LayerSource], created: list[str],
                  known_layer: Callable[[str], tuple[int, int] | None] = lambda chain: None,
                  on_layer: Callable[[LayerSource, bool], None] | None = None) -> list[LayerRecord]:
    """Make sure every layer's chain has a committed snapshot; `created` collects the new ones.

    `known_layer(chain_id)` gives (size, tar size) recorded for a chain by earlier imports.
    """
    records = []
    parent = None
    for src in sources:
        cid = chain_id(parent, src.diff_id)
        fresh = False
        if snapshotter.exists(cid):
            # Sizes as recorded when it was unpacked (a native snapshot's usage is its whole tree).
            size, tar_size = known_layer(cid) or (snapshotter.usage(cid).size, 0)
        else:
            key = f"{EXTRACT_PREFIX}{os.getpid()}-{os.urandom(6).hex()}-{cid[7:19]}"
            snapshotter.prepare(key, parent)
            try:
                result = unpack_blob(src.path, snapshotter.upper_dir(key), snapshotter.whiteout_mode(),
                                     blob_digest=src.descriptor.digest if src.verified else None,
                                     expected_diff_id=src.diff_id)
            except BaseException:
                snapshotter.remove(key)
                raise
            try:
                snapshotter.commit(cid, key)
                created.append(cid)
                fresh = True
            except Conflict:
                snapshotter.remove(key)  # another import committed this chain meanwhile
            size, tar_size = result.size, result.tar_size
        if not tar_size and src.descriptor.media_type.endswith(".tar"):
            tar_size = src.descriptor.size
        records.append(LayerRecord(src.diff_id, cid, src.descriptor.digest, src.descriptor.media_type,
                                   src.descriptor.size, size, tar_size))
        if on_layer:
            on_layer(src, fresh)
        parent = cid
    return records
