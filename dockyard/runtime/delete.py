"""`delete`: remove a stopped container (or, with --force, stop it first)."""

from __future__ import annotations

import _signal  # not `signal`: its enums cost start-up time

from ..errors import Conflict, NotFound
from . import hooks
from .state import PAUSED, STOPPED, Container


def delete(root: str, cid: str, force: bool, log) -> None:
    try:
        c = Container.load(root, cid)
    except NotFound:
        if force:
            # containerd always sends a second `delete --force` after `delete`.
            return
        raise
    c.lock()
    status = c.status()
    if status != STOPPED:
        if not force:
            raise Conflict(f"cannot delete container {cid} that is not stopped: {status}")
        cgroup = c.cgroup()
        if status == PAUSED:
            cgroup.thaw()
        cgroup.kill_all(_signal.SIGKILL)
        c.wait_gone()
    destroy(c, log)


def destroy(c: Container, log) -> None:
    """Tear down a stopped container's cgroup and state, then run its poststop hooks."""
    try:
        config = c.config()
    except (OSError, ValueError):
        config = {}
    try:
        c.cgroup().destroy()
    except OSError as err:
        log.warning(f"removing cgroup {c.record.get('cgroup')}: {err}")
    state = hooks.state_for(c, STOPPED, None)
    c.remove()
    hooks.run("poststop", hooks.chosen(config, "poststop"), state, warn=log.warning)
