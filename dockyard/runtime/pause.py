"""`pause` and `resume`: the cgroup freezer."""

from __future__ import annotations

from .state import Container


def pause(root: str, cid: str) -> None:
    c = Container.load(root, cid)
    c.lock()
    c.check("pause")
    c.cgroup().freeze()


def resume(root: str, cid: str) -> None:
    c = Container.load(root, cid)
    c.lock()
    c.check("resume")
    c.cgroup().thaw()
