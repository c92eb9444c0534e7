"""`NativeSnapshotter`: every snapshot is a full, plain copy of its parent.

Works on any filesystem and needs no mount support beyond bind mounts, at
the cost of disk space and copy time (reflinks make the copy cheap where the
filesystem has them).  Inside the tree described in `base`:

    <root>/snapshots/<id>/     the snapshot's complete tree (parent's files
                               plus this snapshot's changes); whiteouts are
                               applied as real deletions

Mounts returned: one bind mount of that directory, read-only for views.
"""

from __future__ import annotations

import os
import subprocess

from ..diff import Whiteouts
from ..errors import Unavailable
from .base import DirSnapshotter, Kind, Mount


class NativeSnapshotter(DirSnapshotter):
    name = "native"

    def whiteout_mode(self) -> Whiteouts:
        return Whiteouts.NATIVE

    def _populate(self, staging: str, kind: Kind, parent_dir: str | None) -> None:
        if parent_dir is None:
            os.chmod(staging, 0o755)
            return
        # GNU cp keeps hard links, devices, owners, modes, xattrs and times, and
        # shares blocks (reflink) where the filesystem can.
        proc = subprocess.run(["cp", "-a", "--reflink=auto", parent_dir + "/.", staging + "/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode:
            raise Unavailable(f"copying snapshot {parent_dir} failed: "
                              f"{proc.stderr.decode(errors='replace').strip()}")

    def _mounts(self, snapshot_id: int, kind: Kind, parent_ids: list[int]) -> list[Mount]:
        return [Mount("bind", self.dir_of(snapshot_id), ("rbind", "ro" if kind is Kind.VIEW else "rw"))]
