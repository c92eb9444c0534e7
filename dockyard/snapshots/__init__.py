"""Snapshots: the filesystems containers run on, built from image layers.

Vocabulary (containerd's):
  snapshot   a directory tree known by a *key*.  It is one of
             ACTIVE     writable; made by `prepare(key, parent)`; a container's
                        root filesystem, or a layer being unpacked;
             VIEW       read-only; made by `view(key, parent)`;
             COMMITTED  read-only and immutable; made by `commit(name, key)`
                        from an active snapshot; can be a parent.
  parent     the committed snapshot a new one starts from.  Image layers are
             committed under their *chain id* (chain_id(L1..Ln) =
             sha256(chain_id(L1..Ln-1) + " " + diff_id(Ln)), chain_id(L1) =
             diff_id(L1)), so a layer shared by many images is unpacked once.
  mounts     what the caller must mount to see a snapshot, as data
             (`Mount(type, source, options, target)`); `mount_all` performs
             them, through `dockyard.linux.mount`.

Implementations: `OverlaySnapshotter` (layers stacked with overlayfs; the
default where the kernel allows it) and `NativeSnapshotter` (every snapshot a
full copy; works on any filesystem).  `open_snapshotter` picks one.
"""

from __future__ import annotations

from .base import Info, Kind, Mount, Snapshotter, Usage, chain_id, chain_ids
from .mount import mount_all, unmount_all
from .native import NativeSnapshotter
from .overlay import OverlaySnapshotter, overlay_supported

__all__ = [
    "Info", "Kind", "Mount", "NativeSnapshotter", "OverlaySnapshotter", "Snapshotter", "Usage", "chain_id",
    "chain_ids", "mount_all", "open_snapshotter", "overlay_supported", "unmount_all",
]


def open_snapshotter(data_root: str, name: str | None = None) -> Snapshotter:
    """The snapshotter called `name` ("overlay", "native"), or the best this host supports."""
    import os

    from ..errors import InvalidArgument, NotSupported
    base = os.path.join(data_root, "snapshots")
    if name is None:
        name = "overlay" if overlay_supported(base) else "native"
    if name in ("overlay", "overlayfs", "overlay2"):
        if not overlay_supported(base):
            raise NotSupported("the overlay snapshotter is not supported on this host "
                               f"(overlayfs cannot use {base})", hint="use the native snapshotter")
        return OverlaySnapshotter(os.path.join(base, "overlay"))
    if name in ("native", "vfs"):
        return NativeSnapshotter(os.path.join(base, "native"))
    raise InvalidArgument(f"unknown snapshotter {name!r} (choose overlay or native)")
