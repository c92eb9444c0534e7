"""The `Manager` protocol: what a runtime and an engine may ask of a cgroup, v1 or v2."""

from __future__ import annotations

from typing import Any, Protocol


class Manager(Protocol):
    path: str
    """The group's cgroup path, normalised to `/a/b` (relative paths count from the hierarchy root)."""

    def create(self) -> None:
        """Make the group (every v1 hierarchy; v2 enables controllers on the way down).  Idempotent."""

    def add(self, pid: int) -> None:
        """Move process `pid` into the group."""

    def apply(self, resources: dict[str, Any] | None) -> None:
        """Set an OCI LinuxResources object.  Bad input raises InvalidArgument before any write;
        a value the kernel refuses raises an EngineError naming the file and the value;
        controllers this host lacks are skipped."""

    def update(self, resources: dict[str, Any] | None) -> None:
        """Live changes; same rules as `apply`."""

    def can_freeze(self) -> bool:
        """Whether this host can pause the group (a v1 freezer hierarchy, or v2's cgroup.freeze)."""

    def freeze(self) -> None:
        """Freeze every process of the group, returning once the kernel says frozen."""

    def thaw(self) -> None:
        """Undo `freeze`, returning once the kernel says thawed."""

    def state(self) -> str:
        """"frozen" or "thawed" (a `FreezerState`)."""

    def pids(self) -> list[int]:
        """Every process in the group and its sub-groups, as host pids, sorted."""

    def kill_all(self, signum: int) -> list[int]:
        """Signal every process in the group; returns the pids signalled."""

    def stats(self) -> dict[str, Any]:
        """memory_stats, cpu_stats, pids_stats, blkio_stats in the Docker Engine API's shape."""

    def exists(self) -> bool:
        """Whether the group's directory exists (in any v1 hierarchy)."""

    def destroy(self) -> None:
        """Remove the group and its sub-groups; gone already is fine.  Conflict if processes stay."""

    def controller_path(self, controller: str) -> str | None:
        """The group's directory holding `controller`'s files (None on v1 when it is not mounted)."""

    def procs_paths(self) -> list[str]:
        """Every cgroup.procs file of the group: a pid written to each of them is in the group."""
