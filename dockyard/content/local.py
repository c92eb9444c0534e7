"""`LocalContentStore`: blobs as files under the data root.

On disk (this module is the one that builds these paths):

    <data-root>/content/
      blobs/
        sha256/
          <64 hex>          a committed blob: whole, verified, read-only (0444)
      ingest/
        <random>.tmp        a write in progress; same filesystem as blobs/, so
                            committing is a rename

Concurrent writers of one blob each write their own ingest file; the first
rename wins and later ones find the blob present and drop their copy (the
bytes are equal by construction, since both were verified against the digest).
A crash leaves at most stale ingest files, which `LocalContentStore()` clears
when they are older than a day (a live writer may be using a younger one).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from ..errors import InvalidArgument, NotFound
from .digest import Digest, check_digest

CHUNK = 1 << 20
_STALE_INGEST = 24 * 3600


class ContentStore(Protocol):
    """The role: store, find, read and delete blobs by digest."""

    def exists(self, digest: Digest) -> bool: ...
    def size(self, digest: Digest) -> int: ...
    def path(self, digest: Digest) -> str: ...
    def open(self, digest: Digest) -> BinaryIO: ...
    def read(self, digest: Digest) -> bytes: ...
    def writer(self, expected: Digest | None = None, size: int | None = None) -> BlobWriter: ...
    def put(self, data: bytes, expected: Digest | None = None) -> Digest: ...
    def ingest(self, stream: BinaryIO, expected: Digest | None = None, size: int | None = None) -> tuple[Digest, int]: ...
    def delete(self, digest: Digest) -> int: ...
    def walk(self) -> Iterator[tuple[Digest, int]]: ...


class BlobWriter:
    """One blob being written: hash while writing, verify and rename on `commit`.

    Use as a context manager; leaving the block without `commit` (an error,
    a short stream) removes the partial file.
    """

    def __init__(self, store: LocalContentStore, expected: Digest | None, size: int | None):
        self._store = store
        self.expected = check_digest(expected) if expected else None
        self.expected_size = size
        self._hash = hashlib.sha256()
        self.written = 0
        self.tmp = os.path.join(store.ingest_dir, f"{os.getpid()}-{os.urandom(8).hex()}.tmp")
        self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.digest: Digest | None = None      # set once committed
        self.verified: Digest | None = None

    def write(self, data) -> int:
        if self.expected_size is not None and self.written + len(data) > self.expected_size:
            raise InvalidArgument(f"blob is larger than its declared size of {self.expected_size} bytes"
                                  + (f" ({self.expected})" if self.expected else ""))
        self._hash.update(data)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.written += len(data)
        return len(data)

    def copy_from(self, stream: BinaryIO, limit: int | None = None) -> int:
        """Copy `stream` (to EOF, or exactly `limit` bytes) into the blob."""
        done = 0
        readinto = getattr(stream, "readinto", None)
        buf = bytearray(CHUNK) if readinto else None
        while limit is None or done < limit:
            want = CHUNK if limit is None else min(CHUNK, limit - done)
            if readinto:
                n = readinto(memoryview(buf)[:want])
                chunk = memoryview(buf)[:n] if n else b""
            else:
                chunk = stream.read(want)
            if not chunk:
                break
            self.write(chunk)
            done += len(chunk)
        if limit is not None and done < limit:
            raise InvalidArgument(f"unexpected end of data: got {done} of {limit} bytes")
        return done

    def verify(self) -> Digest:
        """Check size and digest of what was written; the blob stays in the ingest directory."""
        digest = "sha256:" + self._hash.hexdigest()
        if self.expected_size is not None and self.written != self.expected_size:
            raise InvalidArgument(
                f"size mismatch for blob {self.expected or digest}: expected {self.expected_size} bytes, "
                f"got {self.written}")
        if self.expected and digest != self.expected:
            raise InvalidArgument(f"digest mismatch: expected {self.expected}, got {digest}")
        self.verified = digest
        return digest

    def commit(self, sync: bool = True) -> Digest:
        """Verify, make the bytes durable, rename into place; return the digest."""
        digest = self.verified or self.verify()
        if sync:
            os.fsync(self._fd)
        os.fchmod(self._fd, 0o444)
        os.close(self._fd)
        self._fd = -1
        final = self._store.path(digest)
        if os.path.exists(final):
            os.unlink(self.tmp)
        else:
            os.rename(self.tmp, final)
            if sync:
                self._store.sync_dir()
        self.digest = digest
        return digest

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.digest is None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()


class LocalContentStore:
    """Blobs as read-only files named by their digest (tree in the module docstring)."""

    def __init__(self, data_root: str):
        self.root = os.path.join(data_root, "content")
        self.blobs_dir = os.path.join(self.root, "blobs", "sha256")
        self.ingest_dir = os.path.join(self.root, "ingest")
        os.makedirs(self.blobs_dir, exist_ok=True)
        os.makedirs(self.ingest_dir, exist_ok=True)
        self._clear_stale_ingests()

    def _clear_stale_ingests(self) -> None:
        cutoff = time.time() - _STALE_INGEST
        for entry in os.scandir(self.ingest_dir):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass

    def path(self, digest: Digest) -> str:
        return os.path.join(self.blobs_dir, check_digest(digest)[7:])

    def exists(self, digest: Digest) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: Digest) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def read(self, digest: Digest) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def writer(self, expected: Digest | None = None, size: int | None = None) -> BlobWriter:
        return BlobWriter(self, expected, size)

    def put(self, data: bytes, expected: Digest | None = None, sync: bool = True) -> Digest:
        """Store small bytes (a manifest, a config); returns their digest."""
        with self.writer(expected, len(data)) as w:
            w.write(data)
            return w.commit(sync)

    def ingest(self, stream: BinaryIO, expected: Digest | None = None, size: int | None = None,
               sync: bool = True) -> tuple[Digest, int]:
        """Copy `stream` into a blob (reading exactly `size` bytes when given); verify; commit."""
        if expected and self.exists(expected):
            # Still consume the bytes: the caller's stream position must move on.
            if size is not None:
                _skip(stream, size)
            return expected, self.size(expected)
        with self.writer(expected, size) as w:
            w.copy_from(stream, size)
            return w.commit(sync), w.written

    def delete(self, digest: Digest) -> int:
        """Remove a blob; returns the bytes freed (0 when it was not there)."""
        path = self.path(digest)
        try:
            size = os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return size

    def walk(self) -> Iterator[tuple[Digest, int]]:
        for entry in os.scandir(self.blobs_dir):
            try:
                yield "sha256:" + entry.name, entry.stat().st_size
            except FileNotFoundError:
                continue

    def sync_dir(self) -> None:
        fd = os.open(self.blobs_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _skip(stream: BinaryIO, size: int) -> None:
    left = size
    while left:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise InvalidArgument(f"unexpected end of data: {left} of {size} bytes missing")
        left -= len(chunk)
