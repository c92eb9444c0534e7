"""The volume service: create, inspect, list, remove and prune volumes, and lend them to containers.

The local driver (volumes/local.py) keeps the volumes; this service adds
what the Engine API needs: dockerd's shapes and words, filters, events
(`create`, `destroy`, `mount`, `unmount`), and the *references* that keep a
volume from removal: every container whose record names it, running or
not, plus containers being created that have named it already. The
container service answers `references` (it owns the records).

Methods are blocking (disk, mounts, sizes): the API runs them in worker
threads, the container service in its own.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound
from ..volumes import LocalVolumes, Volume

DRIVER = "local"
_LIST_FILTERS = ("dangling", "driver", "label", "name")
_PRUNE_FILTERS = ("label", "label!", "all")
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def view(volume: Volume) -> dict[str, Any]:
    """The Engine API's volume object."""
    def ordered(mapping: dict | None) -> dict | None:  # Go marshals maps with their keys sorted
        return None if mapping is None else dict(sorted(mapping.items()))

    return {"CreatedAt": volume.created_at, "Driver": volume.driver, "Labels": ordered(volume.labels),
            "Mountpoint": volume.mountpoint, "Name": volume.name, "Options": ordered(volume.options),
            "Scope": "local"}


def _label_holds(labels: dict | None, condition: str) -> bool:
    key, eq, value = condition.partition("=")
    labels = labels or {}
    return key in labels and (not eq or labels[key] == value)


class VolumeService:
    def __init__(self, data_root: str, emit: Callable[..., Any]):
        self.store = LocalVolumes(data_root)
        self._emit = emit
        self._lock = threading.Lock()  # a removal's check of references and the removal are one step
        self.recorded: Callable[[str], list[str]] = lambda name: []
        self._claims: dict[str, set[str]] = {}

    def references(self, name: str) -> list[str]:
        """The containers using volume `name`: those whose records name it, and those being created."""
        with self._lock:
            return self._references(name)

    def _references(self, name: str) -> list[str]:
        users = self.recorded(name)  # (the lock is held)
        return users + [cid for cid, names in self._claims.items() if name in names and cid not in users]

    def _event(self, action: str, name: str, **attributes: str) -> None:
        self._emit("volume", action, name, {"driver": DRIVER, **attributes})

    # --- the API's verbs ------------------------------------------------------------------------------
    def create(self, name: str = "", driver: str = "", options: dict | None = None, labels: dict | None = None,
               anonymous: bool = False) -> tuple[Volume, bool]:
        """The volume `name` (a new random one if ""), made if missing; (volume, whether it was made).
        dockerd announces `create` even when the volume existed."""
        driver = driver or DRIVER
        name = name or secrets.token_hex(32)
        if driver != DRIVER:
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        for what, value in (("DriverOpts", options), ("Labels", labels)):
            if value is not None and not isinstance(value, dict):
                raise InvalidArgument(f"invalid {what}: expected an object")
        volume, made = self.store.create(name, options, labels, anonymous)
        self._event("create", name)
        return volume, made

    def get(self, name: str) -> Volume:
        volume = self.store.get(name) if isinstance(name, str) else None
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Volume]:
        filters = filters or {}
        for key in filters:
            if key not in _LIST_FILTERS:
                raise InvalidArgument(f"Invalid filter '{key}'")
        dangling = None
        for value in filters.get("dangling", []):
            if value.lower() not in _BOOLS:
                raise InvalidArgument(f"Invalid filter 'dangling=[{value}]'")
            dangling = _BOOLS[value.lower()]
        out = []
        for volume in self.store.list():
            if dangling is not None and bool(self.references(volume.name)) == dangling:
                continue
            if filters.get("driver") and volume.driver not in filters["driver"]:
                continue
            if filters.get("name") and not any(n in volume.name for n in filters["name"]):
                continue
            if not all(_label_holds(volume.labels, c) for c in filters.get("label", [])):
                continue
            out.append(volume)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        """dockerd's volume rm: in use by any container is a conflict, even with force; force makes a
        missing volume no error."""
        with self._lock:
            if self.store.get(name) is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self._references(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")
            self.store.remove(name)
        self._event("destroy", name)

    def prune(self, filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
        """Unused local volumes without options (dockerd 20.10 keeps those: their data may live elsewhere)."""
        filters = filters or {}
        for key in filters:
            if key not in _PRUNE_FILTERS:
                raise InvalidArgument(f"Invalid filter '{key}'")
        deleted, reclaimed = [], 0
        for volume in self.store.list():
            if volume.options:
                continue
            if not all(_label_holds(volume.labels, c) for c in filters.get("label", [])):
                continue
            if any(_label_holds(volume.labels, c) for c in filters.get("label!", [])):
                continue
            if self.references(volume.name):
                continue
            size = self.store.size(volume)
            try:
                self.remove(volume.name)
            except (Conflict, NotFound):
                continue
            deleted.append(volume.name)
            reclaimed += size
        self._emit("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    def usage(self) -> list[dict[str, Any]]:
        """`system df`'s volumes: each with how many containers use it and its size."""
        return [dict(view(v), UsageData={"RefCount": len(self.references(v.name)), "Size": self.store.size(v)})
                for v in self.store.list()]

    # --- lending to containers --------------------------------------------------------------------------
    def claim(self, cid: str, plan: Iterable[Any]) -> tuple[list[dict], list[str]]:
        """The volumes of a container being created (mounts.volume_plan), made where missing and held
        for it until `release_claim`; returns its volume entries and the names made now."""
        from .mounts import volume_entry

        entries: list[dict] = []
        made: list[str] = []
        try:
            for point in plan:
                with self._lock:
                    volume, new = self.create(point.name, options=point.options, labels=point.labels,
                                              anonymous=not point.name)
                    self._claims.setdefault(cid, set()).add(volume.name)
                if new:
                    made.append(volume.name)
                entries.append(volume_entry(point, volume.name, volume.mountpoint, anonymous=not point.name))
        except BaseException:
            self.release_claim(cid, made)
            raise
        return entries, made

    def release_claim(self, cid: str, remove: Iterable[str] = ()) -> None:
        """The container's record now names its volumes (or its create failed: `remove` what it made)."""
        with self._lock:
            self._claims.pop(cid, None)
        for name in remove:
            try:
                self.remove(name)
            except (Conflict, NotFound):
                pass
    def mount(self, cid: str, entries: Iterable[dict], announce: bool = True) -> None:
        """Before a container starts (or a stopped one's cp): mount what its volumes need (undone if one
        fails); `cid` is the user the mounts are counted for."""
        entries = [e for e in entries if e.get("Type") != "bind"]
        done: list[str] = []
        try:
            for entry in entries:
                self.store.mount(self.get(entry["Name"]), cid)
                done.append(entry["Name"])
        except BaseException:
            for name in done:
                self.store.unmount(name, cid)
            raise
        for entry in entries if announce else ():
            self._event("mount", entry["Name"], container=cid, destination=entry["Destination"],
                        propagation="", **{"read/write": "true" if entry["RW"] else "false"})

    def unmount(self, cid: str, entries: Iterable[dict], announce: bool = True) -> None:
        """After a container stopped."""
        for entry in (e for e in entries if e.get("Type") != "bind"):
            if self.store.unmount(entry["Name"], cid) and announce:
                self._event("unmount", entry["Name"], container=cid)

    def adopt(self, cid: str, entries: Iterable[dict]) -> None:
        """A container found running after a restart of the engine: count it as a user again."""
        for entry in (e for e in entries if e.get("Type") != "bind"):
            volume = self.store.get(entry["Name"])
            if volume is not None:
                self.store.mount(volume, cid)

    def fill_if_empty(self, entry: dict, source: str) -> None:
        """dockerd's copy-up: an empty volume mounted over an image directory gets its contents."""
        volume = self.get(entry["Name"])
        if self.store.is_empty(volume):
            self.store.fill(volume, source)
