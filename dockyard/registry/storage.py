"""`RegistryStorage`: the registry's state under its root directory.

On disk (this module is the one that builds these paths):

    <root>/
      content/               a LocalContentStore shared by every repository:
        blobs/sha256/<hex>   layers, configs and manifests, by digest
        ingest/              the store's own temporary files
      uploads/
        <id>                 the bytes of one upload session received so far
      registry.db            SQLite (WAL): which repository holds which blob and
                             manifest, tags, upload sessions
      registry.lock          held (flock) by the server that serves this root

Visibility is per repository: a blob in the store is readable through
`/v2/<name>/blobs/<digest>` only once <name> holds it (it was pushed or
mounted there), so knowing a digest is not enough to read another
repository's layers.

Crash safety.  A blob reaches the store only whole and verified (fsync, then
rename), and a repository gets it in a transaction afterwards; a crash in
between leaves an unreferenced blob, never a reference to a missing one.  A
manifest is stored the same way before its record and tags.  An upload
session's committed size is a row in the database: a chunk counts once its
bytes are written and the row updated, so a chunk cut off (by the client or a
crash) is cut from the file again before the next one is appended.  Sessions
untouched for a day are removed.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import BinaryIO

from dockyard import jsonio
from dockyard.content import LocalContentStore, digest_of
from dockyard.sqlitedb import Database

from .errors import RegistryError
from .manifests import PushedManifest, parse_pushed

SCHEMA = """
CREATE TABLE IF NOT EXISTS repositories (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    repo TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS manifests (
    repo TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    subject TEXT,
    artifact_type TEXT NOT NULL DEFAULT '',
    annotations TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repo, subject);
CREATE TABLE IF NOT EXISTS tags (
    repo TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, tag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    size INTEGER NOT NULL,
    touched REAL NOT NULL
) WITHOUT ROWID;
"""

UPLOAD_TTL = 24 * 3600
CHUNK = 1 << 20


class RootInUse(Exception):
    """Another server holds the root's lock."""


@dataclass(frozen=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int


class _Session:
    """What the server remembers of an upload between requests: the hash of its bytes so far."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.size = -1                     # the committed size `hasher` covers; -1: unknown
        self.hasher = hashlib.sha256()


class ChunkWriter:
    """One request's bytes appended to an upload session; `commit` makes them count, `abort` drops them.

    Use as a context manager; leaving without `commit` cuts the file back.
    """

    def __init__(self, storage: RegistryStorage, upload_id: str, session: _Session, start: int):
        self._storage = storage
        self.upload_id = upload_id
        self._session = session
        self.start = start
        self.written = 0
        if start == 0:
            self._hasher = hashlib.sha256()
        elif session.size == start:
            self._hasher = session.hasher.copy()
        else:
            self._hasher = None  # known again at completion, by hashing the file
        self._fd = os.open(storage.upload_path(upload_id), os.O_WRONLY | os.O_CLOEXEC)
        os.ftruncate(self._fd, start)  # anything past the committed size is a chunk cut off
        os.lseek(self._fd, start, os.SEEK_SET)
        self._done = False
        self._released = False

    def write(self, data) -> None:
        view = memoryview(data)
        if self._hasher is not None:
            self._hasher.update(view)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.written += len(data)

    def commit(self) -> int:
        """The session's new size, recorded."""
        size = self.start + self.written
        self._storage._set_upload_size(self.upload_id, size)
        if self._hasher is not None:
            self._session.hasher, self._session.size = self._hasher, size
        else:
            self._session.size = -1
        self._done = True
        self._close()
        return size

    def _close(self) -> None:
        if self._fd >= 0:
            if not self._done:
                os.ftruncate(self._fd, self.start)
            os.close(self._fd)
            self._fd = -1
        if not self._released:
            self._released = True
            self._session.lock.release()

    def abort(self) -> None:
        self._close()

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, *exc) -> None:
        self._close()


class RegistryStorage:
    """Repositories, blobs, manifests, tags and upload sessions (tree in the module docstring)."""

    def __init__(self, root: str, *, lock: bool = True):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self._lock_fd = -1
        if lock:
            self._take_lock()
        self.content = LocalContentStore(self.root)
        self.uploads_dir = os.path.join(self.root, "uploads")
        os.makedirs(self.uploads_dir, mode=0o700, exist_ok=True)
        self.db = Database(os.path.join(self.root, "registry.db"), SCHEMA)
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()
        self.purge_uploads()

    def _take_lock(self) -> None:
        fd = os.open(os.path.join(self.root, "registry.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RootInUse(f"another registry server is using {self.root}") from None
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # --- repositories and blobs ------------------------------------------------------------

    def repository_exists(self, repo: str) -> bool:
        return self.db.conn.execute("SELECT 1 FROM repositories WHERE name = ?", (repo,)).fetchone() is not None

    def _holds(self, conn, repo: str, digest: str) -> bool:
        """Whether `repo` holds `digest` as a blob or as a manifest (a manifest is readable as a blob too)."""
        return conn.execute(
            "SELECT 1 FROM blobs WHERE repo = ? AND digest = ? UNION ALL "
            "SELECT 1 FROM manifests WHERE repo = ? AND digest = ? LIMIT 1",
            (repo, digest, repo, digest)).fetchone() is not None

    def blob_size(self, repo: str, digest: str) -> int:
        """The size of a blob `repo` holds; BLOB_UNKNOWN otherwise."""
        if not self._holds(self.db.conn, repo, digest):
            raise RegistryError("BLOB_UNKNOWN", digest)
        try:
            return os.stat(self.content.path(digest)).st_size
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", digest) from None

    def open_blob(self, repo: str, digest: str) -> tuple[BinaryIO, int]:
        """An open file of a blob `repo` holds, and its size."""
        if not self._holds(self.db.conn, repo, digest):
            raise RegistryError("BLOB_UNKNOWN", digest)
        try:
            f = open(self.content.path(digest), "rb")
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", digest) from None
        return f, os.fstat(f.fileno()).st_size

    def _link(self, conn, repo: str, digest: str) -> None:
        conn.execute("INSERT OR IGNORE INTO repositories (name, created) VALUES (?, ?)", (repo, time.time()))
        conn.execute("INSERT OR IGNORE INTO blobs (repo, digest) VALUES (?, ?)", (repo, digest))

    def mount(self, repo: str, digest: str, source: str) -> bool:
        """Give `repo` a blob `source` holds; False when it holds none such (nor does `repo`)."""
        with self.db.transaction() as conn:
            if self._holds(conn, repo, digest):
                return True
            if not self._holds(conn, source, digest) or not self.content.exists(digest):
                return False
            self._link(conn, repo, digest)
            return True

    def delete_blob(self, repo: str, digest: str) -> None:
        """Take a blob from `repo` (its bytes stay in the shared store)."""
        with self.db.transaction() as conn:
            cur = conn.execute("DELETE FROM blobs WHERE repo = ? AND digest = ?", (repo, digest))
            if cur.rowcount == 0:
                raise RegistryError("BLOB_UNKNOWN", digest)

    # --- uploads -----------------------------------------------------------------------------

    def upload_path(self, upload_id: str) -> str:
        return os.path.join(self.uploads_dir, upload_id)

    def start_upload(self, repo: str) -> str:
        upload_id = uuid.uuid4().hex
        fd = os.open(self.upload_path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO uploads (id, repo, size, touched) VALUES (?, ?, 0, ?)",
                         (upload_id, repo, time.time()))
        return upload_id

    def upload_size(self, repo: str, upload_id: str) -> int:
        """The bytes an upload session of `repo` has received; BLOB_UPLOAD_UNKNOWN if there is none."""
        row = self.db.conn.execute("SELECT size FROM uploads WHERE id = ? AND repo = ?",
                                   (upload_id, repo)).fetchone()
        if row is None:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"upload": upload_id})
        return row[0]

    def _set_upload_size(self, upload_id: str, size: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE uploads SET size = ?, touched = ? WHERE id = ?", (size, time.time(), upload_id))

    def _session(self, upload_id: str) -> _Session:
        with self._sessions_lock:
            session = self._sessions.get(upload_id)
            if session is None:
                session = self._sessions[upload_id] = _Session()
            return session

    def append(self, repo: str, upload_id: str, start: int | None = None) -> ChunkWriter:
        """A writer for the next chunk of an upload.

        `start` (from Content-Range) must be where the session stands (416
        otherwise); None appends.  One request at a time may write a session.
        """
        size = self.upload_size(repo, upload_id)
        if start is not None and start != size:
            raise RegistryError("BLOB_UPLOAD_INVALID",
                                f"chunk starts at byte {start} but the upload has {size} bytes",
                                status=416, headers=[("Range", f"0-{max(size - 1, 0)}")])
        session = self._session(upload_id)
        if not session.lock.acquire(blocking=False):
            raise RegistryError("BLOB_UPLOAD_INVALID", "another request is writing to this upload")
        try:
            return ChunkWriter(self, upload_id, session, size)
        except FileNotFoundError:
            session.lock.release()
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"upload": upload_id}) from None
        except BaseException:
            session.lock.release()
            raise

    def complete_upload(self, repo: str, upload_id: str, digest: str) -> int:
        """Verify the session's bytes against `digest`, move them into the store, give `repo` the blob.

        DIGEST_INVALID on a mismatch, and then the session is gone with its
        bytes: nothing of it is stored.  Returns the blob's size.
        """
        size = self.upload_size(repo, upload_id)
        session = self._session(upload_id)
        if not session.lock.acquire(blocking=False):
            raise RegistryError("BLOB_UPLOAD_INVALID", "another request is writing to this upload")
        path = self.upload_path(upload_id)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            session.lock.release()
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"upload": upload_id}) from None
        try:
            os.ftruncate(fd, size)
            if session.size == size:
                actual = "sha256:" + session.hasher.hexdigest()
            else:
                actual = _hash_fd(fd, size)
            if actual != digest:
                self._drop_upload(upload_id)
                raise RegistryError("DIGEST_INVALID", {"expected": digest, "received": actual, "size": size})
            final = self.content.path(digest)
            if not os.path.exists(final):
                os.fsync(fd)
                os.fchmod(fd, 0o444)
                try:
                    os.rename(path, final)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    with os.fdopen(os.dup(fd), "rb") as f:  # a content dir on another filesystem
                        f.seek(0)
                        self.content.ingest(f, digest, size)
                self.content.sync_dir()
            with self.db.transaction() as conn:
                self._link(conn, repo, digest)
                conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
            _unlink(path)
            with self._sessions_lock:
                self._sessions.pop(upload_id, None)
            return size
        finally:
            os.close(fd)
            session.lock.release()

    def cancel_upload(self, repo: str, upload_id: str) -> None:
        self.upload_size(repo, upload_id)
        self._drop_upload(upload_id)

    def _drop_upload(self, upload_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
        _unlink(self.upload_path(upload_id))
        with self._sessions_lock:
            self._sessions.pop(upload_id, None)

    def purge_uploads(self, ttl: float = UPLOAD_TTL) -> int:
        """Remove sessions idle for `ttl` seconds, and files of sessions that have no row."""
        cutoff = time.time() - ttl
        with self.db.transaction() as conn:
            stale = [r[0] for r in conn.execute("SELECT id FROM uploads WHERE touched < ?", (cutoff,))]
            conn.executemany("DELETE FROM uploads WHERE id = ?", [(i,) for i in stale])
            live = {r[0] for r in conn.execute("SELECT id FROM uploads")}
        removed = 0
        for entry in os.scandir(self.uploads_dir):
            if entry.name not in live:
                try:
                    # A file with no row: a session purged, or one whose row a crash never wrote.
                    if entry.name in stale or entry.stat().st_mtime < time.time() - 60:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass
        with self._sessions_lock:
            for upload_id in stale:
                self._sessions.pop(upload_id, None)
        return removed

    # --- manifests and tags ----------------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, is_digest: bool, body: bytes,
                     content_type: str | None, tags: tuple[str, ...] = ()) -> tuple[str, PushedManifest]:
        """Store a manifest and tag it (`reference` when a tag, and `tags`).

        MANIFEST_INVALID, MANIFEST_BLOB_UNKNOWN or DIGEST_INVALID if it may not be.
        """
        digest = digest_of(body)
        if is_digest and digest != reference:
            raise RegistryError("DIGEST_INVALID", {"expected": reference, "received": digest})
        pushed = parse_pushed(body, content_type)
        conn = self.db.conn
        missing = [d for d in pushed.blobs if not self._holds(conn, repo, d)]
        missing += [d for d in pushed.manifests
                    if conn.execute("SELECT 1 FROM manifests WHERE repo = ? AND digest = ?",
                                    (repo, d)).fetchone() is None]
        if missing:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", {"digest": missing[0], "missing": missing[:20]})
        self.content.put(body, digest)
        with self.db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO repositories (name, created) VALUES (?, ?)", (repo, time.time()))
            conn.execute(
                "INSERT OR REPLACE INTO manifests (repo, digest, media_type, size, subject, artifact_type, "
                "annotations) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (repo, digest, pushed.media_type, len(body), pushed.subject, pushed.artifact_type,
                 jsonio.dumps(pushed.annotations)))
            for tag in tags + (() if is_digest else (reference,)):
                conn.execute("INSERT OR REPLACE INTO tags (repo, tag, digest) VALUES (?, ?, ?)",
                             (repo, tag, digest))
        return digest, pushed

    def manifest(self, repo: str, reference: str, is_digest: bool) -> ManifestRecord:
        conn = self.db.conn
        if is_digest:
            digest = reference
        else:
            row = conn.execute("SELECT digest FROM tags WHERE repo = ? AND tag = ?", (repo, reference)).fetchone()
            if row is None:
                raise RegistryError("MANIFEST_UNKNOWN", {"tag": reference})
            digest = row[0]
        row = conn.execute("SELECT media_type, size FROM manifests WHERE repo = ? AND digest = ?",
                           (repo, digest)).fetchone()
        if row is None or not self.content.exists(digest):
            raise RegistryError("MANIFEST_UNKNOWN", {"digest": digest} if is_digest else {"tag": reference})
        return ManifestRecord(digest, row[0], row[1])

    def read_manifest(self, record: ManifestRecord) -> bytes:
        try:
            return self.content.read(record.digest)
        except Exception:
            raise RegistryError("MANIFEST_UNKNOWN", {"digest": record.digest}) from None

    def delete_manifest(self, repo: str, reference: str, is_digest: bool) -> None:
        """By digest: the manifest and every tag on it.  By tag: the tag only."""
        with self.db.transaction() as conn:
            if is_digest:
                cur = conn.execute("DELETE FROM manifests WHERE repo = ? AND digest = ?", (repo, reference))
                if cur.rowcount == 0:
                    raise RegistryError("MANIFEST_UNKNOWN", {"digest": reference})
                conn.execute("DELETE FROM tags WHERE repo = ? AND digest = ?", (repo, reference))
            else:
                cur = conn.execute("DELETE FROM tags WHERE repo = ? AND tag = ?", (repo, reference))
                if cur.rowcount == 0:
                    raise RegistryError("MANIFEST_UNKNOWN", {"tag": reference})

    def tags(self, repo: str, limit: int | None, last: str) -> list[str]:
        if not self.repository_exists(repo):
            raise RegistryError("NAME_UNKNOWN", {"name": repo})
        sql = "SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag"
        args: tuple = (repo, last)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        return [r[0] for r in self.db.conn.execute(sql, args)]

    def catalog(self, limit: int | None, last: str) -> list[str]:
        sql = "SELECT name FROM repositories WHERE name > ? ORDER BY name"
        args: tuple = (last,)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        return [r[0] for r in self.db.conn.execute(sql, args)]

    def referrers(self, repo: str, subject: str, artifact_type: str | None) -> list[dict]:
        """Descriptors of the manifests of `repo` whose subject is `subject` (OCI 1.1)."""
        sql = ("SELECT digest, media_type, size, artifact_type, annotations FROM manifests "
               "WHERE repo = ? AND subject = ?")
        args: tuple = (repo, subject)
        if artifact_type:
            sql += " AND artifact_type = ?"
            args += (artifact_type,)
        out = []
        for digest, media_type, size, atype, ann_json in self.db.conn.execute(sql + " ORDER BY digest", args):
            desc = {"mediaType": media_type, "digest": digest, "size": size}
            if atype:
                desc["artifactType"] = atype
            ann = jsonio.loads(ann_json)
            if ann:
                desc["annotations"] = ann
            out.append(desc)
        return out


def _hash_fd(fd: int, size: int) -> str:
    h = hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(CHUNK, size - offset), offset)
        if not chunk:
            break
        h.update(chunk)
        offset += len(chunk)
    return "sha256:" + h.hexdigest()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
