"""Runtime error reporting, the way managers read it from runc.

With `--log FILE`, every record is appended to FILE (JSON lines with
`--log-format json`, logrus text otherwise) and the bare message also goes to
stderr.  Without `--log`, stderr gets the logrus text line.  containerd reads the
last `"level":"error"` record of the file; podman reads stderr; both look for
fixed phrases (`does not exist`, `container not running`), so messages keep them.
"""

from __future__ import annotations

import os
import sys
import time

from .. import jsonio


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _text_record(level: str, msg: str) -> str:
    return f"time={jsonio.dumps(_now())} level={level} msg={jsonio.dumps(msg)}\n"


class Log:
    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False):
        self.path = path
        self.fmt = fmt
        self.debug_on = debug

    def _append(self, level: str, msg: str) -> None:
        if not self.path:
            return
        if self.fmt == "json":
            line = jsonio.dumps({"level": level, "msg": msg, "time": _now()}) + "\n"
        else:
            line = _text_record(level, msg)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def error(self, msg: str, level: str = "error") -> None:
        self._append(level, msg)
        if self.path:
            sys.stderr.write(msg + "\n")
        else:
            sys.stderr.write(_text_record(level, msg))
        sys.stderr.flush()

    def warning(self, msg: str) -> None:
        self._append("warning", msg)
        if not self.path:
            sys.stderr.write(_text_record("warning", msg))
            sys.stderr.flush()

    def debug(self, msg: str) -> None:
        if self.debug_on:
            self._append("debug", msg)
