"""The image store: which images exist, their names, and what they keep alive.

On disk (this module builds the path):

    <data-root>/images/
      images.db        SQLite (WAL) with these tables:
        images         id (sha256 of the config = Docker's image ID), manifest
                       digest and media type, created (config's RFC 3339
                       time), size, labels, parent, last tag time
        image_layers   per image and position: diff id, chain id (the
                       snapshot), blob digest and media type, sizes
        image_blobs    every blob an image keeps alive (manifest, config, layers)
        refs           normalised name -> image id; a tag
                       (`docker.io/library/bb:latest`) or a digest reference
                       (`127.0.0.1:5000/apx/img@sha256:…`)
        leases         holder (a container) -> image id, and the snapshot key
                       the holder owns; an image with leases is in use

Every change is one transaction.  Blobs and snapshots live elsewhere (the
content store, the snapshotter); the image service frees them once nothing
here refers to them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field

from ..sqlitedb import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
  id TEXT PRIMARY KEY, manifest TEXT NOT NULL, manifest_type TEXT NOT NULL, created TEXT NOT NULL,
  size INTEGER NOT NULL, labels TEXT NOT NULL, parent TEXT NOT NULL DEFAULT '',
  last_tag_time TEXT NOT NULL DEFAULT '', stored REAL NOT NULL);
CREATE TABLE IF NOT EXISTS image_layers (
  image TEXT NOT NULL, position INTEGER NOT NULL, diff_id TEXT NOT NULL, chain_id TEXT NOT NULL,
  blob TEXT NOT NULL, media_type TEXT NOT NULL, blob_size INTEGER NOT NULL, size INTEGER NOT NULL,
  tar_size INTEGER NOT NULL, PRIMARY KEY (image, position));
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS image_blobs (image TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (image, digest));
CREATE INDEX IF NOT EXISTS image_blobs_digest ON image_blobs(digest);
CREATE TABLE IF NOT EXISTS refs (name TEXT PRIMARY KEY, image TEXT NOT NULL, kind TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS refs_image ON refs(image);
CREATE TABLE IF NOT EXISTS leases (holder TEXT PRIMARY KEY, image TEXT NOT NULL, snapshot TEXT NOT NULL DEFAULT '',
  created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS leases_image ON leases(image);
"""


@dataclass(frozen=True)
class LayerRecord:
    diff_id: str
    chain_id: str
    blob: str           # digest of the stored (maybe compressed) blob
    media_type: str
    blob_size: int
    size: int           # bytes of files in the layer (Docker's layer size)
    tar_size: int       # bytes of the uncompressed tar


@dataclass(frozen=True)
class ImageRecord:
    id: str
    manifest: str
    manifest_type: str
    created: str
    size: int
    labels: dict = field(compare=False, hash=False)
    layers: tuple[LayerRecord, ...] = ()
    parent: str = ""
    last_tag_time: str = ""

    @property
    def top_chain(self) -> str | None:
        return self.layers[-1].chain_id if self.layers else None


class ImageStore:
    def __init__(self, data_root: str):
        self.dir = os.path.join(data_root, "images")
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, "images.db")
        self.db = Database(self.path, _SCHEMA)
        self.transaction = self.db.transaction

    def _conn(self) -> sqlite3.Connection:
        return self.db.conn

    # -- images -------------------------------------------------------------------

    def add(self, record: ImageRecord, blobs: set[str]) -> bool:
        """Store an image (and the blobs it keeps alive); False if it was there already."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM images WHERE id=?", (record.id,)).fetchone():
                return False
            db.execute("INSERT INTO images (id, manifest, manifest_type, created, size, labels, parent, "
                       "last_tag_time, stored) VALUES (?,?,?,?,?,?,?,?,?)",
                       (record.id, record.manifest, record.manifest_type, record.created, record.size,
                        json.dumps(record.labels), record.parent, record.last_tag_time, time.time()))
            db.executemany("INSERT INTO image_layers VALUES (?,?,?,?,?,?,?,?,?)",
                           [(record.id, i, lr.diff_id, lr.chain_id, lr.blob, lr.media_type, lr.blob_size,
                             lr.size, lr.tar_size) for i, lr in enumerate(record.layers)])
            db.executemany("INSERT OR IGNORE INTO image_blobs VALUES (?,?)", [(record.id, d) for d in blobs])
        return True

    def get(self, image_id: str) -> ImageRecord | None:
        row = self._conn().execute(
            "SELECT id, manifest, manifest_type, created, size, labels, parent, last_tag_time FROM images "
            "WHERE id=?", (image_id,)).fetchone()
        return self._record(row) if row else None

    def _record(self, row) -> ImageRecord:
        layers = tuple(LayerRecord(*r) for r in self._conn().execute(
            "SELECT diff_id, chain_id, blob, media_type, blob_size, size, tar_size FROM image_layers "
            "WHERE image=? ORDER BY position", (row[0],)))
        return ImageRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), layers, row[6], row[7])

    def all(self) -> list[ImageRecord]:
        rows = self._conn().execute(
            "SELECT id, manifest, manifest_type, created, size, labels, parent, last_tag_time FROM images "
            "ORDER BY created DESC, id").fetchall()
        return [self._record(r) for r in rows]

    def count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def layer_sizes(self, chain_id: str) -> tuple[int, int] | None:
        """(size, tar size) some image recorded for the layer with this chain id."""
        row = self._conn().execute(
            "SELECT size, tar_size FROM image_layers WHERE chain_id=? LIMIT 1", (chain_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def has_layer_blob(self, digest: str) -> bool:
        return self._conn().execute("SELECT 1 FROM image_layers WHERE blob=? LIMIT 1", (digest,)).fetchone() is not None

    def ids_with_prefix(self, hex_prefix: str) -> list[str]:
        lo = "sha256:" + hex_prefix
        return [r[0] for r in self._conn().execute(
            "SELECT id FROM images WHERE id >= ? AND id < ?", (lo, lo + "\uffff"))]

    def delete_image(self, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM images WHERE id=?", (image_id,))
            db.execute("DELETE FROM image_layers WHERE image=?", (image_id,))
            db.execute("DELETE FROM image_blobs WHERE image=?", (image_id,))
            db.execute("DELETE FROM refs WHERE image=?", (image_id,))

    def set_last_tag_time(self, image_id: str, when: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE images SET last_tag_time=? WHERE id=?", (when, image_id))

    def children(self, image_id: str) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT id FROM images WHERE parent=?", (image_id,))]

    # -- names ----------------------------------------------------------------------

    def set_ref(self, name: str, image_id: str, kind: str = "tag") -> str | None:
        """Point `name` at `image_id`; returns the image it pointed at before (if another)."""
        with self.transaction() as db:
            row = db.execute("SELECT image FROM refs WHERE name=?", (name,)).fetchone()
            db.execute("INSERT OR REPLACE INTO refs (name, image, kind, created) VALUES (?,?,?,?)",
                       (name, image_id, kind, time.time()))
        previous = row[0] if row else None
        return previous if previous != image_id else None

    def delete_ref(self, name: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM refs WHERE name=?", (name,)).rowcount > 0

    def ref(self, name: str) -> str | None:
        row = self._conn().execute("SELECT image FROM refs WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def refs_of(self, image_id: str) -> list[tuple[str, str]]:
        """(name, kind) of every reference to the image, oldest first."""
        return [(r[0], r[1]) for r in self._conn().execute(
            "SELECT name, kind FROM refs WHERE image=? ORDER BY created, name", (image_id,))]

    def all_refs(self) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for name, image, kind in self._conn().execute("SELECT name, image, kind FROM refs ORDER BY created, name"):
            out.setdefault(image, []).append((name, kind))
        return out

    def refs_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._conn().execute(
            "SELECT name, image FROM refs WHERE name >= ? AND name < ?", (prefix, prefix + "\uffff"))]

    # -- what is alive ------------------------------------------------------------------

    def referenced_blobs(self) -> set[str]:
        return {r[0] for r in self._conn().execute("SELECT DISTINCT digest FROM image_blobs")}

    def referenced_chains(self) -> set[str]:
        return {r[0] for r in self._conn().execute("SELECT DISTINCT chain_id FROM image_layers")}

    def chain_users(self) -> dict[str, int]:
        """chain id -> number of images using it."""
        return {r[0]: r[1] for r in self._conn().execute(
            "SELECT chain_id, COUNT(DISTINCT image) FROM image_layers GROUP BY chain_id")}

    # -- leases ----------------------------------------------------------------------

    def add_lease(self, holder: str, image_id: str, snapshot: str = "") -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO leases (holder, image, snapshot, created) VALUES (?,?,?,?)",
                       (holder, image_id, snapshot, time.time()))

    def remove_lease(self, holder: str) -> tuple[str, str] | None:
        """Drop a lease; returns its (image id, snapshot key), or None if there was none."""
        with self.transaction() as db:
            row = db.execute("SELECT image, snapshot FROM leases WHERE holder=?", (holder,)).fetchone()
            db.execute("DELETE FROM leases WHERE holder=?", (holder,))
        return (row[0], row[1]) if row else None

    def lease(self, holder: str) -> tuple[str, str] | None:
        row = self._conn().execute("SELECT image, snapshot FROM leases WHERE holder=?", (holder,)).fetchone()
        return (row[0], row[1]) if row else None

    def leases_of(self, image_id: str) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT holder FROM leases WHERE image=?", (image_id,))]

    def lease_counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._conn().execute("SELECT image, COUNT(*) FROM leases GROUP BY image")}

    def leased_snapshots(self) -> set[str]:
        return {r[0] for r in self._conn().execute("SELECT snapshot FROM leases WHERE snapshot != ''")}
