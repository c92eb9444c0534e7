"""What the v1 and v2 managers do the same way, on top of their own primitives."""

from __future__ import annotations

import _signal  # not `signal`: its enums cost start-up time
import os

from ..errors import EngineError
from . import FROZEN


class GroupManager:
    """Shared verbs; subclasses provide create/add/apply/freeze/thaw/state/pids/stats/destroy."""

    path: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, root={self.root!r})"

    def update(self, resources) -> None:
        """Live changes (runtime `update --resources`): the same rules as `apply`."""
        self.apply(resources)

    def kill_all(self, signum: int) -> list[int]:
        """Send `signum` to every process in the group and below; returns the pids signalled.

        The group is frozen while its pids are listed and signalled, so a
        process forked in between cannot escape.  It is thawed afterwards,
        unless it was paused before and the signal is not SIGKILL (a frozen
        process only dies of SIGKILL once thawed; other signals wait for
        `resume`, as with runc).
        """
        was_frozen = self.state() == FROZEN
        froze = False
        if not was_frozen and self.can_freeze():
            try:
                self.freeze()
                froze = True
            except EngineError:
                pass  # a group that cannot settle frozen still gets its signals
        try:
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
        finally:
            if froze or (was_frozen and signum == _signal.SIGKILL):
                self.thaw()
        return pids

    def can_freeze(self) -> bool:
        return True
