"""Container state on disk, and the status derived from the live system.

    <root>/                    --root, default /run/dockyard-runtime (mode 0700)
      <id>/                    one directory per container; creating it claims the id
        state.json             the record below, replaced atomically
        config.json            the bundle's spec as `create` read it (exec, update, delete read it)
        exec.fifo              exists from `create` until `start`: the init blocks opening it

state.json holds what does not change while the container lives (pid, the pid's
start time, bundle, cgroup path, namespaces), so every read derives the status
afresh: stopped when the init is gone (or its pid was reused, or is a zombie
waiting for its reaper), created while the fifo exists, paused while the
cgroup is frozen, running otherwise.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from .. import jsonio
from ..errors import Conflict, InvalidArgument, NotFound

DEFAULT_ROOT = "/run/dockyard-runtime"

CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"

# Which verb may act on a container in which status; the error text is runc's.
TRANSITIONS = {
    "start": {CREATED: None, RUNNING: "cannot start an already running container",
              PAUSED: "cannot start an already paused container",
              STOPPED: "cannot start a container that has stopped"},
    "kill": {CREATED: None, RUNNING: None, PAUSED: None, STOPPED: "container not running"},
    "pause": {CREATED: "container not running", RUNNING: None, PAUSED: None, STOPPED: "container not running"},
    "resume": {CREATED: "container not running", RUNNING: "container not paused", PAUSED: None,
               STOPPED: "container not running"},
    "exec": {CREATED: None, RUNNING: None, PAUSED: "cannot exec in a paused container",
             STOPPED: "cannot exec in a stopped container"},
    "update": {CREATED: None, RUNNING: None, PAUSED: None, STOPPED: "container not running"},
}

_ID_PUNCTUATION = set("_+-.")


def check_id(cid: str) -> None:
    """runc's rule: letters, digits and `_+-.`; never a path."""
    if not cid or cid in (".", "..") or not all(ch.isalnum() or ch in _ID_PUNCTUATION for ch in cid):
        raise InvalidArgument(f"invalid container id format: {cid}")


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if there is no live process.

    A zombie counts as gone: its exit status is its reaper's business, not ours.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class Container:
    """One container's state directory and record."""

    __slots__ = ("root", "id", "dir", "record", "_lock_fd")

    def __init__(self, root: str, cid: str, record: dict | None = None):
        self.root = root
        self.id = cid
        self.dir = os.path.join(root, cid)
        self.record = record or {}
        self._lock_fd = -1

    # -- life of the directory --------------------------------------------------
    @classmethod
    def claim(cls, root: str, cid: str) -> Container:
        """Create the state directory for a new container; fails if the id is taken."""
        check_id(cid)
        os.makedirs(root, mode=0o700, exist_ok=True)
        c = cls(root, cid)
        try:
            os.mkdir(c.dir, 0o711)
        except FileExistsError:
            raise Conflict("container with given ID already exists") from None
        return c

    @classmethod
    def load(cls, root: str, cid: str) -> Container:
        check_id(cid)
        c = cls(root, cid)
        try:
            with open(os.path.join(c.dir, "state.json"), "rb") as f:
                c.record = jsonio.loads(f.read())
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("container does not exist") from None
        except ValueError:
            raise NotFound(f"container does not exist (state of {cid} is unreadable)") from None
        return c

    def save(self) -> None:
        write_atomic(os.path.join(self.dir, "state.json"), jsonio.dumps(self.record).encode())

    def lock(self) -> None:
        """Serialise verbs on this container (flock on its directory), released on exit."""
        self._lock_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def remove(self) -> None:
        """Delete the state directory (it holds only plain files); gone already is fine."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass

    # -- facts ------------------------------------------------------------------
    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, "exec.fifo")

    @property
    def pid(self) -> int:
        return self.record.get("pid", 0)

    def config(self) -> dict:
        with open(os.path.join(self.dir, "config.json"), "rb") as f:
            return jsonio.loads(f.read())

    def alive(self) -> bool:
        pid = self.pid
        return pid > 0 and proc_start_time(pid) == self.record.get("pid_start")

    def cgroup(self):
        from ..cgroups import open_manager

        return open_manager(self.record["cgroup"], root=self.record.get("cgroup_root") or "/sys/fs/cgroup")

    def status(self) -> str:
        if not self.alive():
            return STOPPED
        if os.path.exists(self.fifo):
            return CREATED
        try:
            if self.cgroup().state() == "frozen":
                return PAUSED
        except OSError:
            pass
        return RUNNING

    def check(self, verb: str) -> str:
        """The current status, or Conflict with runc's message when `verb` is not allowed in it."""
        status = self.status()
        msg = TRANSITIONS[verb].get(status)
        if msg:
            raise Conflict(msg)
        return status

    def oci_state(self, status: str | None = None, owner: str = "") -> dict:
        status = status or self.status()
        r = self.record
        out = {
            "ociVersion": r.get("ociVersion", "1.0.2-dev"),
            "id": self.id,
            "pid": r.get("pid", 0) if status != STOPPED else 0,
            "status": status,
            "bundle": r.get("bundle", ""),
            "rootfs": r.get("rootfs", ""),
            "created": r.get("created", ""),
        }
        if r.get("annotations"):
            out["annotations"] = r["annotations"]
        out["owner"] = owner
        return out

    def wait_gone(self, timeout: float = 10.0) -> bool:
        """Wait until the init has exited (it is not our child: poll a pidfd, else /proc)."""
        pid = self.pid
        if pid <= 0 or not self.alive():
            return True
        try:
            fd = os.pidfd_open(pid)
        except OSError as err:
            if err.errno == errno.ESRCH:
                return True
            fd = -1
        deadline = time.monotonic() + timeout
        try:
            if fd >= 0:
                import select

                poller = select.poll()
                poller.register(fd, select.POLLIN)
                while time.monotonic() < deadline:
                    if poller.poll(50) or not self.alive():
                        return True
                return not self.alive()
            while time.monotonic() < deadline:
                if not self.alive():
                    return True
                time.sleep(0.01)
            return False
        finally:
            if fd >= 0:
                os.close(fd)


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "state.json")))
    except FileNotFoundError:
        return []
