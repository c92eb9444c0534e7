"""The daemon's pid file, held under an exclusive lock for the daemon's life.

The lock, not the pid written inside, says whether a daemon is alive: the
kernel drops it when the process dies, however it dies. So a pid file left by
a crash (its pid gone, or reused by some other program) is simply taken over,
and a second daemon started while the first runs fails at once with the
first one's pid in the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from dockyard.errors import Conflict


class PidFile:
    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Conflict(
                f"pid file {self.path} is locked by a running dockyardd (pid {holder})",
                hint="stop that daemon first, or give this one its own --pidfile, --host and --exec-root",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink only the file we hold: after a takeover the path could name another's.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> PidFile:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
