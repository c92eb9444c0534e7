"""The error tree shared by every layer.

`EngineError(message, hint)` is the root; its five kinds map one to one onto
HTTP statuses at the API edge (see api/errors.py) and onto exit codes in the
CLIs.  Kernel failures are `dockyard.linux.syscall.SyscallError` (an OSError)
and are wrapped into one of these where a user must read them.
"""

from __future__ import annotations


class EngineError(Exception):
    """Something the user asked for cannot be done; `message` says what, `hint` how to fix it."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidArgument(EngineError):
    """The request itself is wrong: a malformed file, a bad flag value, an unsafe path."""


class NotFound(EngineError):
    """The named thing does not exist."""


class Conflict(EngineError):
    """The request clashes with the current state: a name in use, a container not stopped."""


class Forbidden(EngineError):
    """Valid, but never allowed in this state: removing a built-in network, or one still in use."""


class Unavailable(EngineError):
    """A resource the request needs is missing or not working (a daemon, a kernel feature)."""


class NotSupported(EngineError):
    """Valid, but not something this build or this host can do."""
