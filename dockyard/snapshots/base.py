"""The Snapshotter role, its values, and the metadata both implementations share.

On disk, under a snapshotter's root (this module builds these paths; the
implementations add what lives inside each snapshot directory):

    <root>/
      metadata.db           SQLite (WAL): one row per snapshot
                            (id, key, parent key, kind, created, labels, size)
      snapshots/
        <id>/               one directory per snapshot, named by its numeric id
                            (short names keep deep overlay stacks mountable)
        new-<random>/       a snapshot being created, renamed to <id> once
                            its row exists
      trash/<random>/       a removed snapshot, deleted after its row is gone

A crash can leave a row without a directory or a directory without a row;
`cleanup()` (run when the snapshotter opens) removes both kinds of leftovers.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import Conflict, InvalidArgument, NotFound
from ..sqlitedb import Database


class Kind(enum.Enum):
    ACTIVE = "active"
    VIEW = "view"
    COMMITTED = "committed"


@dataclass(frozen=True)
class Mount:
    """One mount to perform: `mount -t type -o options source <root>/<target>`.

    `target` is relative to the root the caller mounts at ("" is the root itself).
    """

    type: str
    source: str
    options: tuple[str, ...] = ()
    target: str = ""

    def to_json(self) -> dict:
        out = {"type": self.type, "source": self.source, "options": list(self.options)}
        if self.target:
            out["target"] = self.target
        return out

    @classmethod
    def from_json(cls, obj: dict) -> Mount:
        return cls(obj["type"], obj["source"], tuple(obj.get("options", ())), obj.get("target", ""))


@dataclass(frozen=True)
class Info:
    key: str
    kind: Kind
    parent: str | None
    created: float
    id: int
    labels: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Usage:
    size: int      # bytes of file content owned by this snapshot (not its parents)
    inodes: int


class Snapshotter(Protocol):
    """The role.  Keys are caller-chosen strings; committed names are usually chain ids."""

    name: str

    def prepare(self, key: str, parent: str | None = None, labels: dict | None = None) -> list[Mount]: ...
    def view(self, key: str, parent: str | None = None, labels: dict | None = None) -> list[Mount]: ...
    def mounts(self, key: str) -> list[Mount]: ...
    def commit(self, name: str, key: str, labels: dict | None = None) -> None: ...
    def remove(self, key: str) -> None: ...
    def stat(self, key: str) -> Info: ...
    def exists(self, key: str) -> bool: ...
    def usage(self, key: str) -> Usage: ...
    def walk(self) -> Iterator[Info]: ...
    def children(self, key: str) -> list[str]: ...
    def upper_dir(self, key: str) -> str: ...
    def content_dir(self, key: str) -> str: ...
    def whiteout_mode(self): ...
    def cleanup(self) -> None: ...


def chain_id(parent: str | None, diff_id: str) -> str:
    """The chain id of a layer with DiffID `diff_id` on top of chain `parent` (OCI image spec)."""
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(chain_id(out[-1] if out else None, diff_id))
    return out


_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def spread_subdirectories(path: str) -> None:
    """Mark `path` as a top of a directory hierarchy (`chattr +T`), where the filesystem has that.

    ext4 then places each new subdirectory (each snapshot) in a block group of
    its own (the Orlov allocator) instead of next to its parent.  Without it,
    a layer unpacked soon after another was deleted gets its inodes from the
    same groups, where ext4 steps over every recently deleted inode for each
    file it creates: unpacking became ten times slower after an `rmi`.
    """
    import fcntl
    import struct

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, b"\0" * 4))[0]
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags | _FS_TOPDIR_FL))
    except OSError:
        pass  # not ext2/3/4 (or not allowed): the default placement is fine there
    finally:
        os.close(fd)


def tree_usage(path: str) -> Usage:
    """Bytes and inodes under `path`, as Docker counts a layer's size: the apparent
    size of everything but directories, each hard-linked inode once."""
    size = inodes = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = os.scandir(current)
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                inodes += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                size += st.st_size
    return Usage(size, inodes)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE NOT NULL,
  parent TEXT, kind TEXT NOT NULL, created REAL NOT NULL, labels TEXT NOT NULL DEFAULT '{}', size INTEGER,
  inodes INTEGER);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
"""


class DirSnapshotter:
    """Metadata and directory bookkeeping shared by the overlay and native snapshotters.

    Subclasses say how a snapshot's directory is filled (`_populate`) and
    mounted (`_mounts`).
    """

    name = "base"

    def __init__(self, root: str):
        self.root = root
        self.snapshots_dir = os.path.join(root, "snapshots")
        self.trash_dir = os.path.join(root, "trash")
        os.makedirs(self.snapshots_dir, exist_ok=True)
        os.makedirs(self.trash_dir, exist_ok=True)
        spread_subdirectories(self.snapshots_dir)
        self.db = Database(os.path.join(root, "metadata.db"), _SCHEMA)
        self.cleanup()

    def _row(self, key: str):
        row = self.db.conn.execute(
            "SELECT id, key, parent, kind, created, labels, size, inodes FROM snapshots WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            raise NotFound(f"snapshot {key} does not exist")
        return row

    def dir_of(self, snapshot_id: int) -> str:
        return os.path.join(self.snapshots_dir, str(snapshot_id))

    # -- queries ----------------------------------------------------------------

    def stat(self, key: str) -> Info:
        return _info(self._row(key))

    def exists(self, key: str) -> bool:
        return self.db.conn.execute("SELECT 1 FROM snapshots WHERE key=?", (key,)).fetchone() is not None

    def walk(self) -> Iterator[Info]:
        rows = self.db.conn.execute(
            "SELECT id, key, parent, kind, created, labels, size, inodes FROM snapshots ORDER BY id").fetchall()
        for row in rows:
            yield _info(row)

    def children(self, key: str) -> list[str]:
        return [r[0] for r in self.db.conn.execute("SELECT key FROM snapshots WHERE parent=?", (key,))]

    def parents(self, key: str) -> list[tuple[int, str]]:
        """(id, key) of the snapshot's committed ancestors, nearest first."""
        chain = []
        parent = self._row(key)[2]
        while parent is not None:
            row = self._row(parent)
            chain.append((row[0], row[1]))
            parent = row[2]
        return chain

    def usage(self, key: str) -> Usage:
        row = self._row(key)
        if row[3] == Kind.COMMITTED.value and row[6] is not None:
            return Usage(row[6], row[7] or 0)
        return tree_usage(self._content_dir(row[0]))

    def mounts(self, key: str) -> list[Mount]:
        row = self._row(key)
        if row[3] == Kind.COMMITTED.value:
            raise InvalidArgument(f"snapshot {key} is committed; prepare or view a child to mount it")
        return self._mounts(row[0], Kind(row[3]), [pid for pid, _ in self.parents(key)])

    def content_dir(self, key: str) -> str:
        """The directory holding snapshot `key`'s own files (read-only unless it is active)."""
        return self._content_dir(self._row(key)[0])

    def upper_dir(self, key: str) -> str:
        """Where a layer for active snapshot `key` is unpacked (the directory it owns)."""
        row = self._row(key)
        if row[3] != Kind.ACTIVE.value:
            raise InvalidArgument(f"snapshot {key} is not active")
        return self._content_dir(row[0])

    # -- changes ----------------------------------------------------------------

    def prepare(self, key: str, parent: str | None = None, labels: dict | None = None) -> list[Mount]:
        return self._create(key, parent, Kind.ACTIVE, labels)

    def view(self, key: str, parent: str | None = None, labels: dict | None = None) -> list[Mount]:
        return self._create(key, parent, Kind.VIEW, labels)

    def _create(self, key: str, parent: str | None, kind: Kind, labels: dict | None) -> list[Mount]:
        if not key:
            raise InvalidArgument("a snapshot key must not be empty")
        if parent is not None:
            prow = self._row(parent)
            if prow[3] != Kind.COMMITTED.value:
                raise InvalidArgument(f"parent snapshot {parent} is not committed")
        if self.exists(key):
            raise Conflict(f"snapshot {key} already exists")
        staging = self._new_staging()
        try:
            self._populate(staging, kind, parent and self._content_dir(self._row(parent)[0]))
            self._adopt(staging, key, parent, kind, labels)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.mounts(key)

    def _new_staging(self) -> str:
        staging = os.path.join(self.snapshots_dir, "new-" + os.urandom(8).hex())
        os.mkdir(staging, 0o700)
        return staging

    def _adopt(self, staging: str, key: str, parent: str | None, kind: Kind, labels: dict | None,
               usage: Usage | None = None) -> None:
        """Give the directory `staging` a row and its final name, in one transaction."""
        with self.db.transaction() as db:
            try:
                cur = db.execute("INSERT INTO snapshots (key, parent, kind, created, labels, size, inodes) "
                                 "VALUES (?,?,?,?,?,?,?)",
                                 (key, parent, kind.value, time.time(), json.dumps(labels or {}),
                                  usage and usage.size, usage and usage.inodes))
            except sqlite3.IntegrityError:
                raise Conflict(f"snapshot {key} already exists") from None
            os.rename(staging, self.dir_of(cur.lastrowid))

    def commit(self, name: str, key: str, labels: dict | None = None) -> None:
        """Freeze active snapshot `key` as committed snapshot `name` (Conflict if `name` exists)."""
        row = self._row(key)
        if row[3] != Kind.ACTIVE.value:
            raise InvalidArgument(f"snapshot {key} is not active; only active snapshots can be committed")
        self._before_commit(row[0])
        usage = tree_usage(self._content_dir(row[0]))
        merged = json.loads(row[5])
        merged.update(labels or {})
        with self.db.transaction() as db:
            try:
                db.execute("UPDATE snapshots SET key=?, kind=?, labels=?, size=?, inodes=? WHERE id=?",
                           (name, Kind.COMMITTED.value, json.dumps(merged), usage.size, usage.inodes, row[0]))
            except sqlite3.IntegrityError:
                raise Conflict(f"snapshot {name} already exists") from None

    def remove(self, key: str) -> None:
        """Delete a snapshot that has no children and nothing mounted inside it."""
        row = self._row(key)
        kids = self.children(key)
        if kids:
            raise Conflict(f"cannot remove snapshot {key}: it is the parent of {len(kids)} snapshot(s)")
        path = self.dir_of(row[0])
        if _is_mountpoint_inside(path):
            raise Conflict(f"cannot remove snapshot {key}: something is still mounted in {path}")
        trash = os.path.join(self.trash_dir, os.urandom(8).hex())
        with self.db.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE id=?", (row[0],))
            try:
                os.rename(path, trash)
            except FileNotFoundError:
                trash = None
        if trash:
            _rmtree(trash)

    def cleanup(self) -> None:
        """Remove leftovers of interrupted operations (see the module docstring)."""
        for entry in os.scandir(self.trash_dir):
            _rmtree(entry.path)
        conn = self.db.conn
        known = {r[0] for r in conn.execute("SELECT id FROM snapshots")}
        for entry in os.scandir(self.snapshots_dir):
            if entry.name.startswith("new-") or (entry.name.isdigit() and int(entry.name) not in known):
                if not _is_mountpoint_inside(entry.path):
                    _rmtree(entry.path)
        for snapshot_id in known:
            if not os.path.isdir(self.dir_of(snapshot_id)):
                with self.db.transaction() as db:
                    db.execute("DELETE FROM snapshots WHERE id=?", (snapshot_id,))

    # -- for subclasses -----------------------------------------------------------

    def _content_dir(self, snapshot_id: int) -> str:
        return self.dir_of(snapshot_id)

    def _populate(self, staging: str, kind: Kind, parent_dir: str | None) -> None:
        raise NotImplementedError

    def _mounts(self, snapshot_id: int, kind: Kind, parent_ids: list[int]) -> list[Mount]:
        raise NotImplementedError

    def _before_commit(self, snapshot_id: int) -> None:
        pass


def _info(row) -> Info:
    return Info(row[1], Kind(row[3]), row[2], row[4], row[0], json.loads(row[5]))


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _is_mountpoint_inside(path: str) -> bool:
    from ..linux.mount import mounts_under
    return bool(mounts_under(path))
