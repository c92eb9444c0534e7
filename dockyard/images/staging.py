"""Staging: blobs and images on their way in, not yet part of the store.

An import (load, OCI layout, rootfs tarball) first writes every blob to the
content store's ingest directory, verified but not yet committed, and
describes the images it found as `StagedImage`s.  Only once every layer has
been unpacked does `Staging.commit()` make the blobs durable and visible; a
failure anywhere discards them (`discard()`), so a bad archive leaves nothing
behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import BinaryIO

from ..content import BlobWriter, Descriptor, LocalContentStore, check_digest, digest_of
from ..errors import InvalidArgument, NotFound
from .formats import ImageConfig
from .reference import Reference


@dataclass(frozen=True)
class StagedImage:
    """An image found in an import: its config, manifest, layers, and the names it came with."""

    config: ImageConfig
    config_digest: str
    manifest: bytes
    manifest_type: str
    layers: tuple[Descriptor, ...]
    names: tuple[Reference, ...] = ()
    digest_names: tuple[Reference, ...] = field(default=())

    @property
    def id(self) -> str:
        return self.config_digest

    @property
    def manifest_digest(self) -> str:
        return digest_of(self.manifest)


class Staging:
    """Blobs written for one import; committed together or not at all."""

    def __init__(self, content: LocalContentStore):
        self.content = content
        self._pending: dict[str, BlobWriter] = {}
        self._small: dict[str, bytes] = {}
        self._external: dict[str, str] = {}

    def add_stream(self, stream: BinaryIO, size: int | None = None, expected: str | None = None) -> str:
        """Write a blob from `stream` (exactly `size` bytes when given); returns its digest."""
        if expected and (expected in self._pending or self.content.exists(expected)):
            _drain(stream, size)
            return expected
        writer = self.content.writer(expected, size)
        try:
            writer.copy_from(stream, size)
            digest = writer.verify()
        except BaseException:
            writer.abort()
            raise
        if digest in self._pending or self.content.exists(digest):
            writer.abort()
        else:
            self._pending[digest] = writer
        return digest

    def add_bytes(self, data: bytes, expected: str | None = None) -> str:
        digest = digest_of(data)
        if expected and digest != expected:
            raise InvalidArgument(f"digest mismatch: expected {expected}, got {digest}")
        if digest not in self._pending and not self.content.exists(digest):
            self._small[digest] = data
        return digest

    def add_file(self, path: str, digest: str) -> None:
        """A blob that sits in a file outside the store (an OCI layout), copied in on commit."""
        check_digest(digest)
        if digest not in self._pending and not self.content.exists(digest):
            self._external[digest] = path

    def has(self, digest: str) -> bool:
        return (digest in self._pending or digest in self._small or digest in self._external
                or self.content.exists(digest))

    def path(self, digest: str) -> str:
        """A file holding the blob now (in the ingest directory, the layout, or the store)."""
        if digest in self._pending:
            return self._pending[digest].tmp
        if digest in self._external:
            return self._external[digest]
        if digest in self._small:
            self._spill(digest)
            return self._pending[digest].tmp
        if self.content.exists(digest):
            return self.content.path(digest)
        raise NotFound(f"blob {digest} is missing from the archive")

    def read(self, digest: str, limit: int = 64 << 20) -> bytes:
        if digest in self._small:
            return self._small[digest]
        path = self.path(digest)
        if os.path.getsize(path) > limit:
            raise InvalidArgument(f"blob {digest} is too large for a manifest or config")
        with open(path, "rb") as f:
            return f.read()

    def size(self, digest: str) -> int:
        if digest in self._small:
            return len(self._small[digest])
        return os.path.getsize(self.path(digest))

    def _spill(self, digest: str) -> None:
        data = self._small.pop(digest)
        writer = self.content.writer(digest, len(data))
        writer.write(data)
        writer.verify()
        self._pending[digest] = writer

    def commit(self, keep: set[str] | None = None) -> None:
        """Make the staged blobs durable and visible (only those in `keep`, when given)."""
        for digest, data in list(self._small.items()):
            if keep is None or digest in keep:
                self.content.put(data, digest)
        for digest, path in list(self._external.items()):
            if keep is None or digest in keep:
                with open(path, "rb") as f:
                    self.content.ingest(f, digest)
        for digest, writer in list(self._pending.items()):
            if keep is None or digest in keep:
                writer.commit()
            else:
                writer.abort()
        self._small.clear()
        self._external.clear()
        self._pending.clear()

    def discard(self) -> None:
        for writer in self._pending.values():
            writer.abort()
        self._pending.clear()
        self._small.clear()
        self._external.clear()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def _drain(stream: BinaryIO, size: int | None) -> None:
    while size is None or size > 0:
        chunk = stream.read(1 << 20 if size is None else min(1 << 20, size))
        if not chunk:
            if size:
                raise InvalidArgument(f"unexpected end of data: {size} bytes missing")
            return
        if size is not None:
            size -= len(chunk)
