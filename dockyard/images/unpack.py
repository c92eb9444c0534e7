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
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..content import Descriptor
from ..diff import UnpackResult, Whiteouts, unpack_blob
from ..errors import Conflict, InvalidArgument
from ..snapshots import Snapshotter, chain_id
from .store import LayerRecord

EXTRACT_PREFIX = "extract-"
WORKERS = 4


@dataclass(frozen=True)
class LayerSource:
    descriptor: Descriptor      # the blob as the manifest describes it
    diff_id: str                # from the image config
    path: str                   # a file holding the blob's bytes
    verified: bool              # the file's digest was checked against descriptor.digest


class Prefetch:
    """Unpack layers in worker threads, in parallel, while the rest of an archive is still being read.

    Only for snapshotters whose layer directories do not depend on the layers
    below (`stage_layer`: overlay).  `offer` is called for every blob as soon as
    it is staged; one that looks like a layer (a tar, gzip or zstd stream) and
    is not already unpacked is unpacked into a staged directory.  `take` hands
    the result to `unpack_layers`; `close` discards whatever was not taken
    (blobs that were configs after all, or layers of an archive that failed).
    """

    def __init__(self, snapshotter: Snapshotter, known: Callable[[str], bool]):
        self.snapshotter = snapshotter
        self.enabled = hasattr(snapshotter, "stage_layer")
        self._known = known
        self._jobs: dict[str, tuple[str, Future]] = {}
        self._lock = threading.Lock()
        # Several at once: creating files is mostly waiting on the filesystem, and the layers
        # of an overlay stack are independent of each other.
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dockyard-unpack") \
            if self.enabled else None

    def offer(self, digest: str, path: str) -> None:
        if not self.enabled or digest in self._jobs or self._known(digest) or not _looks_like_layer(path):
            return
        staged = self.snapshotter.stage_layer()
        future = self._pool.submit(unpack_blob, path, staged, Whiteouts.OVERLAY, blob_digest=digest)
        with self._lock:
            self._jobs[digest] = (staged, future)

    def take(self, digest: str) -> tuple[str, UnpackResult] | None:
        with self._lock:
            job = self._jobs.pop(digest, None)
        if job is None:
            return None
        staged, future = job
        try:
            return staged, future.result()
        except BaseException:
            self.snapshotter.discard_staged(staged)
            raise

    def close(self) -> None:
        if self._pool is None:
            return
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            jobs, self._jobs = self._jobs, {}
        for staged, _ in jobs.values():
            self.snapshotter.discard_staged(staged)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _looks_like_layer(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    return len(head) == 512 and (head[257:262] == b"ustar" or head[:2] == b"\x1f\x8b"
                                 or head[:4] == b"\x28\xb5\x2f\xfd")


def unpack_layers(snapshotter: Snapshotter, sources: Sequence[LayerSource], created: list[str],
                  known_layer: Callable[[str], tuple[int, int] | None] = lambda chain: None,
                  on_layer: Callable[[LayerSource, bool], None] | None = None,
                  prefetch: Prefetch | None = None) -> list[LayerRecord]:
    """Make sure every layer's chain has a committed snapshot; `created` collects the new ones.

    `known_layer(chain_id)` gives (size, tar size) recorded for a chain by earlier imports.
    """
    records = []
    parent = None
    for src in sources:
        cid = chain_id(parent, src.diff_id)
        fresh = False
        staged = prefetch.take(src.descriptor.digest) if prefetch is not None else None
        if snapshotter.exists(cid):
            # Sizes as recorded when it was unpacked (a native snapshot's usage is its whole tree).
            size, tar_size = known_layer(cid) or (snapshotter.usage(cid).size, 0)
            if staged:
                snapshotter.discard_staged(staged[0])
        elif staged:
            directory, result = staged
            if result.diff_id != src.diff_id:
                snapshotter.discard_staged(directory)
                raise InvalidArgument(f"layer DiffID mismatch: the image config says {src.diff_id}, "
                                      f"the layer is {result.diff_id}")
            try:
                snapshotter.commit_staged(cid, parent, directory)
                created.append(cid)
                fresh = True
            except Conflict:
                snapshotter.discard_staged(directory)
            size, tar_size = result.size, result.tar_size
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
