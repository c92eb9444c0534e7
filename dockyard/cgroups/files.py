"""Cgroup filesystem access shared by the v1 and v2 managers.

Reading and writing control files with errors that name the file and the
value, checking group paths, removing a group tree, and waiting for the
kernel to settle a state.  Writes go through `write()` (and removals through
`rmdir()`) so unit tests over a fake tree of plain files can watch them.
"""

from __future__ import annotations

import errno
import os
import time

from ..errors import Conflict, EngineError, InvalidArgument, NotFound, NotSupported, Unavailable


def group_path(path: str | None) -> str:
    """`path` (OCI `linux.cgroupsPath`) as `/a/b`; relative paths count from the hierarchy root."""
    if not path or not isinstance(path, str):
        raise InvalidArgument("a cgroup path is required",
                              hint="pass the container's linux.cgroupsPath, e.g. /dockyard/<id>")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"cgroup path {path!r} must not contain '..'")
    if not parts:
        raise InvalidArgument(f"cgroup path {path!r} names the hierarchy root, not a group of its own")
    if any("\0" in p for p in parts):
        raise InvalidArgument(f"cgroup path {path!r} contains a NUL byte")
    return "/" + "/".join(parts)


# errno -> error kind for a control-file write the kernel refused.
_WRITE_ERRORS = {
    errno.EINVAL: InvalidArgument,
    errno.ERANGE: InvalidArgument,
    errno.EOVERFLOW: InvalidArgument,
    errno.EBUSY: Conflict,
    errno.ENOENT: NotFound,
    errno.ESRCH: NotFound,
    errno.EPERM: Conflict,
    errno.EACCES: Unavailable,
    errno.EOPNOTSUPP: NotSupported,
}


def refused(path: str, value: str, err: OSError, detail: str = "") -> EngineError:
    """The error for `value` refused by the kernel at `path`; carries `.file`, `.value`, `.errno`."""
    kind = _WRITE_ERRORS.get(err.errno, Unavailable)
    message = f"cannot write {value!r} to {path}: {os.strerror(err.errno or 0)}"
    if detail:
        message = f"{message} ({detail})"
    error = kind(message)
    error.file = path
    error.value = value
    error.errno = err.errno
    return error


def write(directory: str, name: str, value: str) -> None:
    """Write one control file.  Never creates it: a missing file is an error, as in cgroupfs."""
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise refused(path, value, err) from err


def read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read()


def read_or(directory: str, name: str, default=None):
    """The stripped content of a control file, or `default` when it (or its group) is missing."""
    try:
        return read(directory, name).strip()
    except (FileNotFoundError, NotADirectoryError):
        return default


def read_int(directory: str, name: str, default=None):
    """An integer control file; "max" reads as None (no limit)."""
    text = read_or(directory, name)
    if text is None or text == "":
        return default
    if text == "max":
        return None
    try:
        return int(text.split()[0])
    except ValueError:
        return default


def has(directory: str, name: str) -> bool:
    return os.path.exists(os.path.join(directory, name))


def hugepage_sizes(directory: str, suffix: str) -> list[str]:
    """The page sizes a hugetlb group offers, from its hugetlb.<size>.<suffix> files."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n.split(".")[1] for n in names
                  if n.startswith("hugetlb.") and n.endswith("." + suffix) and n.count(".") == 2)


def read_pids(directory: str) -> list[int]:
    """Every pid in `directory`'s cgroup.procs and those of the groups below it."""
    pids = set()
    for dirpath, _dirnames, _files in os.walk(directory):
        text = read_or(dirpath, "cgroup.procs", "")
        pids.update(int(line) for line in text.split())
    return sorted(pids)


def rmdir(path: str) -> None:
    os.rmdir(path)


def remove_tree(directory: str, timeout: float = 5.0) -> None:
    """Remove a group and the groups below it, children first.  Gone already is fine.

    rmdir says EBUSY while a killed process is still exiting (it leaves its
    cgroup only at the very end), so retry for a while before giving up.
    """
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path, timeout)
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY or time.monotonic() > deadline:
                pids = read_pids(directory) if err.errno == errno.EBUSY else []
                detail = f"processes still in it: {pids}" if pids else os.strerror(err.errno or 0)
                raise Conflict(f"cannot remove cgroup {directory}: {detail}",
                               hint="stop or kill the processes first") from err
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def wait_for(check, what: str, timeout: float = 10.0) -> None:
    """Poll `check()` until it is true; Unavailable naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not check():
        if time.monotonic() > deadline:
            raise Unavailable(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
