"""The local volume driver: each volume a directory under the data root.

    <data-root>/volumes/                0701
      <name>/                           0701; the directory *is* the record: a volume exists iff it does
        meta.json                       {"CreatedAt", "Labels", "Options", "Anonymous"}
        _data/                          the mountpoint (0755), bound into containers
      .new-<random>/                    a volume being created, renamed to <name> once complete
      .old-<random>/                    a volume being removed, renamed away before it is deleted

Creation and removal are one rename each, so a crash leaves either the whole
volume or none of it (the start-up sweep deletes `.new-`/`.old-` leftovers).
Two creates of one name race safely: the second rename fails and that
caller gets the volume the first one made.

A volume with options is a filesystem mounted on `_data` while containers
use it: `mount(name, user)` mounts at the first user, `unmount` unmounts
after the last; nothing is ever deleted while something is still mounted
below the volume's directory (a bind of a host directory would take the
host's files with it).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

from .. import jsonio
from ..errors import Conflict, InvalidArgument, Unavailable
from ..linux.flags import MountFlag
from ..linux.mount import mount, mounts_under, remount, umount
from ..linux.syscall import SyscallError

DATA = "_data"
META = "meta.json"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")
# moby's local driver: these keys only; each of the first three needs the others it names.
_OPTIONS = ("type", "device", "o", "size")
_NEEDS = (("device", ("type",)), ("type", ("device",)), ("o", ("device", "type")))
_FLAGS = {
    "ro": (MountFlag.RDONLY, True), "rw": (MountFlag.RDONLY, False),
    "nosuid": (MountFlag.NOSUID, True), "suid": (MountFlag.NOSUID, False),
    "nodev": (MountFlag.NODEV, True), "dev": (MountFlag.NODEV, False),
    "noexec": (MountFlag.NOEXEC, True), "exec": (MountFlag.NOEXEC, False),
    "sync": (MountFlag.SYNCHRONOUS, True), "async": (MountFlag.SYNCHRONOUS, False),
    "dirsync": (MountFlag.DIRSYNC, True), "noatime": (MountFlag.NOATIME, True),
    "atime": (MountFlag.NOATIME, False), "nodiratime": (MountFlag.NODIRATIME, True),
    "diratime": (MountFlag.NODIRATIME, False), "relatime": (MountFlag.RELATIME, True),
    "strictatime": (MountFlag.STRICTATIME, True), "bind": (MountFlag.BIND, True),
    "rbind": (MountFlag.BIND | MountFlag.REC, True),
}


def check_name(name: str, verb: str = "create") -> None:
    """moby's local driver rules, in its words."""
    if len(name) == 1:
        raise InvalidArgument(f"{verb} {name}: volume name is too short, names should be at least two "
                              "alphanumeric characters")
    if not _NAME.match(name):
        raise InvalidArgument(f'{verb} {name}: "{name}" includes invalid characters for a local volume name, '
                              'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                              "directory, use absolute path")


def check_options(name: str, options: dict[str, str]) -> None:
    for key in options:
        if key not in _OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
    for key, needed in _NEEDS:
        if key in options:
            for other in needed:
                if other not in options:
                    raise InvalidArgument(f'create {name}: missing required option: "{other}"')
    if "size" in options:
        raise InvalidArgument(f"create {name}: quota size requested but no quota support")


def parse_mount_options(text: str) -> tuple[int, str]:
    """`o=` of a local volume -> (mount flags, filesystem data), as moby's mount package splits them."""
    flags = 0
    data = []
    for option in (o for o in text.split(",") if o):
        known = _FLAGS.get(option)
        if known is None:
            data.append(option)
        elif known[1]:
            flags |= known[0]
        else:
            flags &= ~known[0]
    return flags, ",".join(data)


def rfc3339_now() -> str:
    """Go's time.Now().Format(time.RFC3339) in the host's zone, to the second."""
    now = time.time()
    local = time.localtime(now)
    offset = local.tm_gmtoff or 0
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


@dataclass(frozen=True)
class Volume:
    name: str
    mountpoint: str
    created_at: str
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    anonymous: bool = False
    driver: str = field(default="local")


class LocalVolumes:
    def __init__(self, data_root: str):
        self.root = os.path.join(data_root, "volumes")
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self._lock = threading.Lock()
        self._users: dict[str, set[str]] = {}
        for entry in os.listdir(self.root):
            if entry.startswith((".new-", ".old-")):
                self._delete_tree(os.path.join(self.root, entry))

    def directory(self, name: str) -> str:
        return os.path.join(self.root, name)

    def mountpoint(self, name: str) -> str:
        return os.path.join(self.root, name, DATA)

    # --- records ---------------------------------------------------------------------------------
    def get(self, name: str) -> Volume | None:
        if not _NAME.match(name):
            return None
        try:
            with open(os.path.join(self.directory(name), META), "rb") as f:
                meta = jsonio.loads(f.read())
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Volume(name, self.mountpoint(name), meta.get("CreatedAt", ""), meta.get("Labels") or None,
                      meta.get("Options") or None, bool(meta.get("Anonymous")))

    def list(self) -> list[Volume]:
        out = []
        for entry in sorted(os.listdir(self.root)):
            if entry.startswith("."):
                continue
            volume = self.get(entry)
            if volume is not None:
                out.append(volume)
        return out

    def create(self, name: str, options: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               anonymous: bool = False) -> tuple[Volume, bool]:
        """The volume `name`, made now if it does not exist; (volume, whether it was made)."""
        check_name(name)
        existing = self.get(name)
        if existing is not None:
            return existing, False
        options = {str(k): str(v) for k, v in (options or {}).items()}
        check_options(name, options)
        staging = os.path.join(self.root, ".new-" + secrets.token_hex(8))
        os.mkdir(staging, 0o701)
        try:
            os.mkdir(os.path.join(staging, DATA), 0o755)
            meta = {"CreatedAt": rfc3339_now(), "Labels": dict(labels) if labels else None,
                    "Options": options or None, "Anonymous": anonymous}
            with open(os.path.join(staging, META), "wb") as f:
                f.write(jsonio.dumps(meta).encode())
                f.flush()
                os.fsync(f.fileno())
            try:
                os.rename(staging, self.directory(name))
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                shutil.rmtree(staging, ignore_errors=True)
                volume = self.get(name)
                if volume is None:
                    raise
                return volume, False
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        volume = self.get(name)
        assert volume is not None
        return volume, True

    def remove(self, name: str) -> None:
        """Delete the volume and its data (the caller has checked it has no users)."""
        with self._lock:
            if self._users.get(name):
                raise Conflict(f"remove {name}: volume is in use")
            self._users.pop(name, None)
            self._release_mount(name)
            trash = os.path.join(self.root, ".old-" + secrets.token_hex(8))
            os.rename(self.directory(name), trash)
        self._delete_tree(trash)

    def _delete_tree(self, path: str) -> None:
        data = os.path.join(path, DATA)
        for mounted in mounts_under(os.path.realpath(data)) if os.path.isdir(data) else []:
            try:
                umount(mounted)
            except SyscallError:
                umount(mounted, 2)  # MNT_DETACH
        if os.path.isdir(data) and mounts_under(os.path.realpath(data)):
            raise Unavailable(f"volume data at {data} is still mounted; not deleting it")
        shutil.rmtree(path, ignore_errors=True)

    # --- use by containers -------------------------------------------------------------------------
    def mount(self, volume: Volume, user: str) -> str:
        """The mountpoint to bind for `user`; a volume with options is mounted at its first user."""
        with self._lock:
            users = self._users.setdefault(volume.name, set())
            if volume.options and not users and not os.path.ismount(volume.mountpoint):
                self._mount_options(volume)
            users.add(user)
        return volume.mountpoint

    def unmount(self, volume_name: str, user: str) -> bool:
        """`user` is done with the volume; False if it was not using it."""
        with self._lock:
            users = self._users.get(volume_name)
            if users is None or user not in users:
                return False
            users.discard(user)
            if not users:
                del self._users[volume_name]
                self._release_mount(volume_name)
            return True

    def _mount_options(self, volume: Volume) -> None:
        options = volume.options or {}
        flags, data = parse_mount_options(options.get("o", ""))
        device, kind = options.get("device", ""), options.get("type", "")
        target = volume.mountpoint
        try:
            if flags & MountFlag.BIND:
                mount(device, target, None, flags & (MountFlag.BIND | MountFlag.REC))
                rest = flags & ~(MountFlag.BIND | MountFlag.REC)
                if rest:
                    remount(target, rest)
            else:
                mount(device, target, kind, flags, data or None)
        except SyscallError as err:
            raise Unavailable(f"error while mounting volume '{target}': failed to mount local volume: mount "
                              f"{device}:{target}, flags: {flags:#x}, data: {data}: {err.strerror}") from None

    def _release_mount(self, name: str) -> None:
        volume = self.get(name)
        if volume is None or not volume.options:
            return
        target = volume.mountpoint
        for mounted in mounts_under(os.path.realpath(target)):
            try:
                umount(mounted)
            except SyscallError:
                umount(mounted, 2)  # MNT_DETACH: a process outside the container still holds it

    def users(self, name: str) -> set[str]:
        with self._lock:
            return set(self._users.get(name, ()))

    # --- data ----------------------------------------------------------------------------------------
    def is_empty(self, volume: Volume) -> bool:
        try:
            with os.scandir(volume.mountpoint) as entries:
                return next(entries, None) is None
        except FileNotFoundError:
            return True

    def fill(self, volume: Volume, source: str) -> None:
        """Copy an image directory into an empty volume, with owners, modes, xattrs, links and times,
        and give the volume's root the directory's owner and mode (dockerd's copy-up)."""
        proc = subprocess.run(["cp", "-a", "--reflink=auto", source.rstrip("/") + "/.", volume.mountpoint + "/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode:
            raise Unavailable(f"copying {source} into volume {volume.name} failed: "
                              f"{proc.stderr.decode(errors='replace').strip()}")

    def size(self, volume: Volume) -> int:
        from ..snapshots.base import tree_usage

        return tree_usage(volume.mountpoint).size
