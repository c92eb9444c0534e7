"""The container's root filesystem, built inside its new mount namespace.

Runs in the init (after unshare(CLONE_NEWNS)), in three steps the init
interleaves with hooks:
  prepare()  – propagation, the rootfs bind, the spec's mounts in order,
               /dev's nodes and symlinks: everything before pivot_root
  enter()    – pivot_root (or MS_MOVE + chroot with --no-pivot)
  finalize() – sysctls, readonly and masked paths, a readonly root: what must
               be done from inside, after the old root is gone

Mount destinations are resolved inside the rootfs with symlinks followed but
clamped to it (`secure_join`), so an image cannot point a mount at the host.
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import InvalidArgument
from ..linux import mount as lm
from ..linux.flags import PROPAGATION, MountFlag, UmountFlag
from ..linux.syscall import SyscallError

M = MountFlag

# option -> (set, clear)
_FLAG_OPTIONS = {
    "async": (0, M.SYNCHRONOUS), "atime": (0, M.NOATIME), "bind": (M.BIND, 0), "defaults": (0, 0),
    "dev": (0, M.NODEV), "diratime": (0, M.NODIRATIME), "dirsync": (M.DIRSYNC, 0), "exec": (0, M.NOEXEC),
    "iversion": (M.I_VERSION, 0), "lazytime": (M.LAZYTIME, 0), "loud": (0, M.SILENT), "mand": (M.MANDLOCK, 0),
    "noatime": (M.NOATIME, 0), "nodev": (M.NODEV, 0), "nodiratime": (M.NODIRATIME, 0), "noexec": (M.NOEXEC, 0),
    "noiversion": (0, M.I_VERSION), "nolazytime": (0, M.LAZYTIME), "nomand": (0, M.MANDLOCK),
    "norelatime": (0, M.RELATIME), "nostrictatime": (0, M.STRICTATIME), "nosuid": (M.NOSUID, 0),
    "nosymfollow": (M.NOSYMFOLLOW, 0), "rbind": (M.BIND | M.REC, 0), "relatime": (M.RELATIME, 0),
    "remount": (M.REMOUNT, 0), "ro": (M.RDONLY, 0), "rw": (0, M.RDONLY), "silent": (M.SILENT, 0),
    "strictatime": (M.STRICTATIME, 0), "suid": (0, M.NOSUID), "sync": (M.SYNCHRONOUS, 0),
    "symfollow": (0, M.NOSYMFOLLOW),
}
_PROPAGATION_OPTIONS = {
    "private": M.PRIVATE, "rprivate": M.PRIVATE | M.REC, "shared": M.SHARED, "rshared": M.SHARED | M.REC,
    "slave": M.SLAVE, "rslave": M.SLAVE | M.REC, "unbindable": M.UNBINDABLE,
    "runbindable": M.UNBINDABLE | M.REC,
}
_A = lm.MOUNT_ATTR
# recursive per-mount attributes (mount_setattr): option -> (set, clear)
_RECURSIVE_OPTIONS = {
    "rro": (_A.RDONLY, 0), "rrw": (0, _A.RDONLY), "rnosuid": (_A.NOSUID, 0), "rsuid": (0, _A.NOSUID),
    "rnodev": (_A.NODEV, 0), "rdev": (0, _A.NODEV), "rnoexec": (_A.NOEXEC, 0), "rexec": (0, _A.NOEXEC),
    "rnodiratime": (_A.NODIRATIME, 0), "rdiratime": (0, _A.NODIRATIME),
    "rrelatime": (0, _A.ATIME_MASK), "rnorelatime": (0, 0), "rnoatime": (_A.NOATIME, _A.ATIME_MASK),
    "ratime": (0, _A.ATIME_MASK), "rstrictatime": (_A.STRICTATIME, _A.ATIME_MASK), "rnostrictatime": (0, 0),
    "rnosymfollow": (_A.NOSYMFOLLOW, 0), "rsymfollow": (0, _A.NOSYMFOLLOW),
}

DEFAULT_DEVICES = (
    # path, type, major, minor, mode
    ("/dev/null", "c", 1, 3, 0o666), ("/dev/zero", "c", 1, 5, 0o666), ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666), ("/dev/urandom", "c", 1, 9, 0o666), ("/dev/tty", "c", 5, 0, 0o666),
)
DEV_SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))


class MountOptions:
    __slots__ = ("flags", "clear", "propagation", "data", "recursive_set", "recursive_clear", "tmpcopyup")

    def __init__(self, options: list[str]):
        self.flags = 0
        self.clear = 0
        self.propagation: list[int] = []
        data = []
        self.recursive_set = self.recursive_clear = 0
        self.tmpcopyup = False
        for opt in options:
            if opt in _FLAG_OPTIONS:
                s, c = _FLAG_OPTIONS[opt]
                self.flags = (self.flags & ~c) | s
                self.clear |= c
            elif opt in _PROPAGATION_OPTIONS:
                self.propagation.append(_PROPAGATION_OPTIONS[opt])
            elif opt in _RECURSIVE_OPTIONS:
                s, c = _RECURSIVE_OPTIONS[opt]
                self.recursive_set |= s
                self.recursive_clear |= c
            elif opt == "tmpcopyup":
                self.tmpcopyup = True
            else:
                data.append(opt)
        self.data = ",".join(data)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & M.BIND)


def secure_join(root: str, unsafe: str) -> str:
    """`root` + `unsafe`, with symlinks and `..` resolved as if `root` were `/`."""
    root = root.rstrip("/") or "/"
    parts = [p for p in unsafe.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root + "/" + "/".join(resolved + [part])
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise InvalidArgument(f"too many symlinks resolving {unsafe} in the rootfs")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return root + "/" + "/".join(resolved) if resolved else root


def _mkdir_all(path: str, mode: int = 0o755) -> None:
    try:
        os.makedirs(path, mode, exist_ok=True)
    except FileExistsError:
        pass


def _make_mountpoint(dest: str, source_is_dir: bool) -> None:
    if source_is_dir:
        _mkdir_all(dest)
        return
    _mkdir_all(os.path.dirname(dest))
    if not os.path.lexists(dest):
        os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


# -- prepare -------------------------------------------------------------------

def prepare(spec: dict, rootfs: str, *, cgroupns: bool, userns: bool, cgroup_dirs) -> None:
    """Everything before pivot_root (see the module docstring).

    `cgroup_dirs()` gives the container's cgroup directories; it may wait for
    the runtime to finish making them, so it is only called when a cgroup
    mount needs them.
    """
    linux = spec.get("linux") or {}
    propagation = _PROPAGATION_OPTIONS.get(linux.get("rootfsPropagation", ""), M.SLAVE | M.REC)
    if propagation & M.UNBINDABLE:
        # Unbindable now would forbid binding the rootfs below; finalize() applies it on the new root.
        propagation = M.PRIVATE | M.REC
    lm.mount(None, "/", None, propagation)
    _make_parent_private(rootfs)
    lm.bind(rootfs, rootfs, recursive=True)

    mounts = spec.get("mounts") or []
    dev_bound = any(m["destination"] == "/dev" and MountOptions(m.get("options") or []).is_bind for m in mounts)
    for m in mounts:
        try:
            mount_entry(m, rootfs, cgroupns=cgroupns, cgroup_dirs=cgroup_dirs)
        except OSError as err:
            raise MountError(m, err) from None
    if not dev_bound:
        create_devices(rootfs, linux.get("devices") or [], userns=userns)
        dev = secure_join(rootfs, "/dev")
        for target, link in DEV_SYMLINKS + ((("/proc/kcore", "/dev/core"),) if os.path.exists("/proc/kcore") else ()):
            _symlink(target, secure_join(rootfs, link))
        _symlink("pts/ptmx", os.path.join(dev, "ptmx"))


def _symlink(target: str, path: str) -> None:
    try:
        os.symlink(target, path)
    except FileExistsError:
        pass


def _make_parent_private(rootfs: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared: make that mount private."""
    best, shared = "", False
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.decode().split(" ")
            point = lm.unescape(fields[4])
            if (rootfs == point or rootfs.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best = point
                shared = any(o.startswith("shared:") for o in fields[6:fields.index("-")])
    if best and shared:
        lm.mount(None, best, None, M.PRIVATE)


class MountError(Exception):
    """A spec mount failed, in runc's words: `error mounting "<source>" to rootfs at "<destination>": …`."""

    def __init__(self, m: dict, err: OSError):
        source = m.get("source") or m.get("type") or "none"
        reason = os.strerror(err.errno).lower() if err.errno else str(err)
        if isinstance(err, SyscallError) and err.call == "mount":
            detail = f"mount {source}:{m['destination']}"
            flags = 0
            for flag in (err.flag_names or "0").split("|"):
                flags |= int(flag, 16) if flag.startswith("0x") else getattr(M, flag.removeprefix("MS_"), 0)
            if flags:
                detail += f", flags: {flags:#x}"
            data = err.call_args[3] if len(err.call_args) > 3 else None
            if data:
                detail += f", data: {data}"
            detail += f": {reason}"
        elif err.filename:
            detail = f"{'stat' if isinstance(err, FileNotFoundError) else 'mount'} {err.filename}: {reason}"
        else:
            detail = reason
        super().__init__(f'error mounting "{source}" to rootfs at "{m["destination"]}": {detail}')


def mount_entry(m: dict, rootfs: str, *, cgroupns: bool, cgroup_dirs) -> None:
    opts = MountOptions(m.get("options") or [])
    kind = m.get("type") or ""
    source = m.get("source") or kind or "none"
    dest = secure_join(rootfs, m["destination"])
    if kind == "bind":
        opts.flags |= M.BIND
    if kind == "cgroup" or kind == "cgroup2":
        _mount_cgroup(dest, opts, cgroupns, cgroup_dirs())
    elif opts.is_bind:
        st = os.stat(source)  # a missing source: runc's "stat <source>: no such file or directory"
        _make_mountpoint(dest, stat.S_ISDIR(st.st_mode))
        lm.mount(source, dest, None, opts.flags & (M.BIND | M.REC))
        # A bind ignores every flag but BIND/REC: set them with a remount.
        extra = opts.flags & ~(M.BIND | M.REC | M.REMOUNT)
        if extra:
            lm.remount(dest, extra)
    else:
        if kind == "proc" and m["destination"] != "/proc":
            pass  # allowed by the spec; runc only checks that it is not a symlink trick
        _make_mountpoint(dest, True)
        if opts.tmpcopyup and kind == "tmpfs":
            _mount_tmpcopyup(source, dest, opts)
        else:
            _mount_fs(source, dest, kind, opts)
    for prop in opts.propagation:
        lm.mount(None, dest, None, prop)
    if opts.recursive_set or opts.recursive_clear:
        lm.setattr_recursive(dest, opts.recursive_set, opts.recursive_clear)


def _mount_fs(source: str, dest: str, kind: str, opts: MountOptions) -> None:
    flags = opts.flags & ~PROPAGATION
    try:
        if kind == "tmpfs" and flags & M.RDONLY:
            # As runc: a read-only tmpfs is made writable and bound read-only (its superblock stays rw).
            lm.mount(source, dest, kind, flags & ~M.RDONLY, opts.data or None)
            lm.remount(dest, flags & ~M.REMOUNT)
            return
        lm.mount(source, dest, kind, flags, opts.data or None)
    except SyscallError as err:
        # sysfs in a network namespace we do not own, mqueue without an ipc namespace…:
        # runc falls back to binding the host's instance, read-only.
        if err.errno in (errno.EPERM, errno.EBUSY) and kind in ("sysfs", "mqueue"):
            host = {"sysfs": "/sys", "mqueue": "/dev/mqueue"}[kind]
            lm.mount(host, dest, None, M.BIND | M.REC)
            lm.remount(dest, (flags & ~M.REMOUNT) | M.RDONLY)
        else:
            raise


def _mount_tmpcopyup(source: str, dest: str, opts: MountOptions) -> None:
    import shutil
    import tempfile

    staging = tempfile.mkdtemp(prefix=".tmpcopyup-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        lm.mount(source, staging, "tmpfs", opts.flags & ~PROPAGATION, opts.data or None)
        for name in os.listdir(dest):
            src = os.path.join(dest, name)
            if os.path.isdir(src) and not os.path.islink(src):
                shutil.copytree(src, os.path.join(staging, name), symlinks=True)
            else:
                shutil.copy2(src, os.path.join(staging, name), follow_symlinks=False)
        lm.mount(staging, dest, None, M.MOVE)
    finally:
        try:
            os.rmdir(staging)
        except OSError:
            pass


def _mount_cgroup(dest: str, opts: MountOptions, cgroupns: bool, cgroup_dirs: dict) -> None:
    """/sys/fs/cgroup inside the container: its own groups only, never the host's tree.

    `cgroup_dirs` maps each hierarchy's name under /sys/fs/cgroup ("" for a
    pure v2 host) to the container's directory in it: the runtime knows them,
    so the init need not be in its cgroup yet (the runtime moves it there
    while these mounts are made).
    """
    flags = (opts.flags | M.NOSUID | M.NODEV | M.NOEXEC) & ~(PROPAGATION | M.BIND | M.REC | M.REMOUNT)
    _make_mountpoint(dest, True)
    if "" in cgroup_dirs:  # a pure v2 host
        if cgroupns:
            lm.mount("cgroup2", dest, "cgroup2", flags)
        else:
            lm.bind(cgroup_dirs[""], dest)
            lm.remount(dest, flags)
        return
    lm.mount("tmpfs", dest, "tmpfs", (flags & ~M.RDONLY), "mode=755")
    for name, source in sorted(cgroup_dirs.items()):
        if not os.path.isdir(source):
            continue
        target = os.path.join(dest, name)
        os.makedirs(target, exist_ok=True)
        lm.bind(source, target)
        lm.remount(target, flags)
    if flags & M.RDONLY:
        lm.remount(dest, flags, bind_mount=False)


def create_devices(rootfs: str, devices: list[dict], *, userns: bool) -> None:
    wanted = {path: (kind, major, minor, mode, 0, 0) for path, kind, major, minor, mode in DEFAULT_DEVICES}
    for d in devices:
        wanted[d["path"]] = (d["type"], d.get("major", 0), d.get("minor", 0), d.get("fileMode", 0o666),
                             d.get("uid", 0), d.get("gid", 0))
    old = os.umask(0)
    try:
        for path, (kind, major, minor, mode, uid, gid) in wanted.items():
            dest = secure_join(rootfs, path)
            _mkdir_all(os.path.dirname(dest))
            if userns:
                _bind_device(path, dest)
                continue
            kind_bits = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]
            try:
                os.unlink(dest)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                raise InvalidArgument(f"device {path}: a directory is in the way") from None
            try:
                os.mknod(dest, (mode & 0o7777) | kind_bits, os.makedev(major, minor))
            except PermissionError:
                _bind_device(path, dest)
                continue
            os.chown(dest, uid, gid)
    finally:
        os.umask(old)


def _bind_device(host_path: str, dest: str) -> None:
    """In a user namespace mknod is not allowed: bind the host's node instead."""
    if not os.path.exists(dest):
        os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    lm.bind(host_path, dest)


# -- enter ---------------------------------------------------------------------

def enter(rootfs: str, no_pivot: bool) -> None:
    if no_pivot:
        os.chdir(rootfs)
        lm.mount(rootfs, "/", None, M.MOVE)
        os.chroot(".")
        os.chdir("/")
        return
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        # pivot_root(".", ".") stacks the old root on top of the new one; unmounting
        # "." afterwards takes the old root away without needing a directory for it.
        lm.pivot_root(".", ".")
        os.fchdir(old_root)
        lm.mount(None, ".", None, M.SLAVE | M.REC)
        lm.umount(".", UmountFlag.DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


# -- finalize ------------------------------------------------------------------

def finalize(spec: dict) -> None:
    linux = spec.get("linux") or {}
    if linux.get("rootfsPropagation"):
        lm.mount(None, "/", None, _PROPAGATION_OPTIONS[linux["rootfsPropagation"]])
    set_sysctls(linux.get("sysctl") or {})
    for path in linux.get("readonlyPaths") or []:
        readonly_path(path)
    for path in linux.get("maskedPaths") or []:
        mask_path(path)
    if (spec.get("root") or {}).get("readonly"):
        lm.remount("/", M.RDONLY)


def set_sysctls(sysctls: dict) -> None:
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except FileNotFoundError:
            raise InvalidArgument(f"sysctl {key!r} does not exist") from None


def readonly_path(path: str) -> None:
    try:
        lm.bind(path, path, recursive=True)
    except SyscallError as err:
        if err.errno == errno.ENOENT:
            return
        raise
    lm.remount(path, M.RDONLY | M.NOSUID | M.NODEV | M.NOEXEC)


def mask_path(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            lm.mount("tmpfs", path, "tmpfs", M.RDONLY)
        else:
            lm.bind("/dev/null", path)
    except SyscallError as err:
        if err.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise


NAMESPACED_SYSCTLS = {
    "kernel.msgmax": "ipc", "kernel.msgmnb": "ipc", "kernel.msgmni": "ipc", "kernel.sem": "ipc",
    "kernel.shmall": "ipc", "kernel.shmmax": "ipc", "kernel.shmmni": "ipc", "kernel.shm_rmid_forced": "ipc",
    "kernel.hostname": "uts", "kernel.domainname": "uts",
}


def validate_sysctls(sysctls: dict, namespaces: dict) -> None:
    """runc's rule: only sysctls of a namespace the container has a private copy of."""
    for key in sysctls:
        if key in NAMESPACED_SYSCTLS or key.startswith("fs.mqueue."):
            kind = NAMESPACED_SYSCTLS.get(key, "ipc")
        elif key.startswith("net."):
            kind = "network"
        else:
            raise InvalidArgument(f"sysctl {key!r} is not in a separate kernel namespace")
        if kind not in namespaces:  # joined by path (podman's netns) counts: it is the container's own
            raise InvalidArgument(f"sysctl {key!r} is not allowed as it conflicts with the host's {kind} namespace")
