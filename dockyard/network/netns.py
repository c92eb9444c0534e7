"""Network namespaces kept alive by a bind mount, made and entered from a threaded process.

A network namespace lives as long as something refers to it: a process in it,
an open descriptor, or a bind mount of its `/proc/.../ns/net` file.  We use
the bind mount (what `ip netns add` does): the file at `path` *is* the
namespace, for us, for `nsenter --net=PATH`, and for the OCI runtime (the
container's spec names it as its network namespace path).

The engine is a threaded process and must not fork, so every step that needs
to be *inside* a namespace runs in a short-lived thread of its own: setns(2)
and unshare(CLONE_NEWNET) change only the calling thread, and the thread
ends (or goes back to where it was) before anyone else could run in it.

    path (a regular file, 0444)  <-- bind mount of /proc/thread-self/ns/net
                                     of the thread that made the namespace
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import Conflict
from ..linux import mount as _mount
from ..linux import ns as _ns
from ..linux.flags import CloneFlag, UmountFlag
from ..linux.syscall import SyscallError

T = TypeVar("T")

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_SELF = "/proc/thread-self/ns/net"


def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in a new thread and wait: its result, or its exception re-raised here."""
    box: list = [None, None]

    def body() -> None:
        try:
            box[0] = fn(*args)
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            box[1] = err

    thread = threading.Thread(target=body, name="dockyard-netns", daemon=True)
    thread.start()
    thread.join()
    if box[1] is not None:
        err = box[1]
        box[1] = None  # no cycle through the traceback
        raise err
    return box[0]


def set_up(ifname: str = "lo") -> None:
    """Set an interface of the calling thread's namespace up (ioctl: no netlink needed for one flag)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        req = struct.pack("16sH14x", ifname.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, req))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", ifname.encode(), flags | _IFF_UP))


def create(path: str) -> None:
    """A new network namespace at `path` with `lo` up; on failure nothing is left at `path`."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except FileExistsError:
        if exists(path):
            raise Conflict(f"network namespace {path} already exists") from None
        # A plain file left by an engine that died between making it and mounting on it.
    try:
        in_thread(_make, path)
    except BaseException:
        _unlink(path)
        raise


def _make(path: str) -> None:
    home = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _ns.unshare(CloneFlag.NEWNET)
        try:
            _mount.bind(_SELF, path)
            try:
                set_up("lo")
            except BaseException:
                _mount.umount(path, UmountFlag.DETACH)
                raise
        finally:
            # The thread ends right after this; going home is tidiness, not safety.
            _ns.setns(home, CloneFlag.NEWNET, _SELF)
    finally:
        os.close(home)


def remove(path: str) -> None:
    """Unmount and delete the namespace file at `path` (the namespace goes with its last user)."""
    try:
        _mount.umount(path, UmountFlag.DETACH)
    except SyscallError as err:
        # EINVAL: not a mount point (already unmounted, or the file was never mounted).
        if err.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def exists(path: str) -> bool:
    """Whether `path` holds a network namespace (a bind-mounted nsfs file), not just a leftover file."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path) or ".").st_dev
    except FileNotFoundError:
        return False


def run_in(path: str, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a thread that joined the network namespace at `path`; its result or exception."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return in_thread(_joined, fd, path, fn, args)
    finally:
        os.close(fd)


def _joined(fd: int, path: str, fn: Callable[..., T], args: tuple) -> T:
    # The thread is new and ends after `fn`: no need to go back.
    _ns.setns(fd, CloneFlag.NEWNET, path)
    return fn(*args)


def open_socket(path: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket that belongs to the namespace at `path` (it stays there whichever thread uses it)."""
    return run_in(path, socket.socket, family, kind | socket.SOCK_CLOEXEC, proto)
