"""`OverlaySnapshotter`: each layer unpacked once, stacked read-only with overlayfs.

Inside each snapshot directory (the tree above it is in `base`):

    <root>/snapshots/<id>/
      fs/       the snapshot's own files: a layer's content (committed), or
                the writable upper directory (active); whiteouts in
                overlayfs' form (0/0 char devices, trusted.overlay.opaque=y)
                (a view's `fs` stays empty)
      work/     overlayfs' work directory (active snapshots only)

Mounts returned:
  * active, no parent:       bind `fs` read-write;
  * active with parents:     overlay lowerdir=<parents' fs, nearest first>,
                             upperdir=fs, workdir=work;
  * view of one layer:       bind the parent's `fs` read-only;
  * view of several:         overlay with only lowerdirs (read-only).
Paths are absolute; `mount_all` shortens them when a deep stack would exceed
the one-page limit of mount options.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..diff import Whiteouts
from ..errors import InvalidArgument
from .base import DirSnapshotter, Kind, Mount, tree_usage

_supported: dict[str, bool] = {}


def _index_option() -> tuple[str, ...]:
    # With the inodes index on, a lower directory used by two overlays at once can
    # make the second mount fail; Docker and containerd switch it off too.
    return ("index=off",) if os.path.exists("/sys/module/overlay/parameters/index") else ()


class OverlaySnapshotter(DirSnapshotter):
    name = "overlayfs"

    def whiteout_mode(self) -> Whiteouts:
        return Whiteouts.OVERLAY

    def _content_dir(self, snapshot_id: int) -> str:
        return os.path.join(self.dir_of(snapshot_id), "fs")

    def _populate(self, staging: str, kind: Kind, parent_dir: str | None) -> None:
        os.mkdir(os.path.join(staging, "fs"), 0o755)
        os.chmod(os.path.join(staging, "fs"), 0o755)
        if kind is Kind.ACTIVE:
            os.mkdir(os.path.join(staging, "work"), 0o700)

    # -- layers unpacked before their parent is known ------------------------------------------
    # An overlay layer's directory holds only that layer's changes (whiteouts included), so it
    # can be unpacked before the layers below it are, e.g. while an archive is still arriving,
    # and adopted as a committed snapshot once its chain id is known.

    def stage_layer(self) -> str:
        """A fresh directory to unpack one layer into; hand it to `commit_staged` or `discard_staged`."""
        staging = self._new_staging()
        fs = os.path.join(staging, "fs")
        os.mkdir(fs, 0o755)
        os.chmod(fs, 0o755)
        return fs

    def commit_staged(self, name: str, parent: str | None, staged: str, labels: dict | None = None) -> None:
        """Adopt a staged layer directory as committed snapshot `name` on `parent` (Conflict if taken)."""
        if parent is not None and self._row(parent)[3] != Kind.COMMITTED.value:
            raise InvalidArgument(f"parent snapshot {parent} is not committed")
        staging = os.path.dirname(staged)
        if os.path.dirname(staging) != self.snapshots_dir or not os.path.basename(staging).startswith("new-"):
            raise InvalidArgument(f"{staged} is not a staged layer of this snapshotter")
        self._adopt(staging, name, parent, Kind.COMMITTED, labels, tree_usage(staged))

    def discard_staged(self, staged: str) -> None:
        shutil.rmtree(os.path.dirname(staged), ignore_errors=True)

    def _before_commit(self, snapshot_id: int) -> None:
        shutil.rmtree(os.path.join(self.dir_of(snapshot_id), "work"), ignore_errors=True)

    def _mounts(self, snapshot_id: int, kind: Kind, parent_ids: list[int]) -> list[Mount]:
        lowers = [self._content_dir(pid) for pid in parent_ids]
        if kind is Kind.ACTIVE:
            upper = self._content_dir(snapshot_id)
            if not lowers:
                return [Mount("bind", upper, ("rbind", "rw"))]
            work = os.path.join(self.dir_of(snapshot_id), "work")
            return [Mount("overlay", "overlay", _index_option() + (
                "lowerdir=" + ":".join(lowers), f"upperdir={upper}", f"workdir={work}"))]
        if not lowers:
            return [Mount("bind", self._content_dir(snapshot_id), ("rbind", "ro"))]
        if len(lowers) == 1:
            return [Mount("bind", lowers[0], ("rbind", "ro"))]
        return [Mount("overlay", "overlay", _index_option() + ("lowerdir=" + ":".join(lowers),))]


def overlay_supported(base: str) -> bool:
    """Whether overlayfs mounts work with directories under `base` (tried once, then cached).

    Needs root, the overlay module, and a filesystem overlayfs accepts as upper
    (with d_type and xattrs; not overlayfs itself).
    """
    if base in _supported:
        return _supported[base]
    ok = False
    if os.geteuid() == 0:
        from ..linux.mount import mount, umount
        os.makedirs(base, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".overlay-probe-", dir=base)
        try:
            dirs = [os.path.join(probe, d) for d in ("l1", "l2", "u", "w", "m")]
            for d in dirs:
                os.mkdir(d)
            options = ",".join(_index_option() + (f"lowerdir={dirs[0]}:{dirs[1]}", f"upperdir={dirs[2]}",
                                                  f"workdir={dirs[3]}"))
            try:
                mount("overlay", dirs[4], "overlay", 0, options)
            except OSError:
                ok = False
            else:
                ok = True
                umount(dirs[4])
        finally:
            shutil.rmtree(probe, ignore_errors=True)
    _supported[base] = ok
    return ok
