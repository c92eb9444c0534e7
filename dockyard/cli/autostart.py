"""Start a daemon in the background when none answers on the default socket.

So a new user's first `dockyard images` just works. Only for the default
host: an explicit `-H` or DOCKYARD_HOST names a daemon someone else runs, and
starting one there would hide their mistake. The daemon is a fresh process
in its own session (the CLI is single-threaded, so spawning is safe), with
its output going to a log file under the exec root.
"""

from __future__ import annotations

import os
import sys
import time

# The daemon's defaults (dockyard.daemon.config), repeated because the CLI
# must not import the daemon's packages.
DEFAULT_SOCKET = "/run/dockyard.sock"
DEFAULT_EXEC_ROOT = "/run/dockyard"
LOG_NAME = "dockyardd.log"
READY_TIMEOUT = 30.0


def _answers(path: str) -> bool:
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def start_daemon(err) -> bool:  # noqa: ANN001 - a text stream
    """Start dockyardd with its defaults; True once it answers. Explains failures on `err`."""
    if os.geteuid() != 0:
        err.write("dockyardd is not running, and only root can start it (try: sudo dockyardd)\n")
        return False
    import subprocess

    os.makedirs(DEFAULT_EXEC_ROOT, mode=0o700, exist_ok=True)
    log_path = os.path.join(DEFAULT_EXEC_ROOT, LOG_NAME)
    err.write(f"Starting dockyardd in the background (log: {log_path})\n")
    err.flush()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.api.dockyardd"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True, cwd="/",
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if _answers(DEFAULT_SOCKET):
            return True
        if proc.poll() is not None:
            # Another CLI may have won the race to start it; that daemon is as good.
            if _answers(DEFAULT_SOCKET):
                return True
            err.write(f"dockyardd exited with status {proc.returncode}; see {log_path}\n")
            return False
        time.sleep(0.02)
    err.write(f"dockyardd did not answer within {READY_TIMEOUT:.0f}s; see {log_path}\n")
    return False
