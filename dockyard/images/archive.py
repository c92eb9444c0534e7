"""`docker save` archives, in both layouts Docker writes, read and written as streams.

Legacy layout (Docker up to 24):

    manifest.json          [{"Config": "<hex>.json", "RepoTags": ["bb:latest"],
                             "Layers": ["<v1 id>/layer.tar", …]}]
    repositories           {"bb": {"latest": "<v1 id of the top layer>"}}
    <hex>.json             the image config
    <v1 id>/VERSION, json  v1 metadata (ignored on load)
    <v1 id>/layer.tar      an uncompressed layer, or a symlink to another one

OCI layout inside the tar (Docker 25 and later), which is also what we write
by default, since old and new Docker both load it:

    oci-layout, index.json, blobs/sha256/<hex>   (see `ocilayout`)
    manifest.json          as above, with paths "blobs/sha256/<hex>"

Reading streams the tar once: layers go straight into staged blobs (hashed
while copied), small metadata files are kept in memory.  Links inside the
archive may not point outside it.  Writing reads blobs from the content store
and never holds a layer in memory.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from ..content import Descriptor, LocalContentStore, digest_of
from ..diff import Compression, TarReader, TarWriter, clean_path, decompressing_reader, detect, detect_file
from ..diff.tarstream import DIRECTORY, HARDLINK, REGULAR, SYMLINK
from ..errors import InvalidArgument, NotFound
from .formats import (
    OCI_CONFIG,
    OCI_LAYOUT_VERSION,
    Manifest,
    build_index,
    build_manifest,
    layer_media_type,
    parse_config,
    parse_manifest_or_index,
)
from .ocilayout import (
    INDEX_FILE,
    LAYOUT_FILE,
    LayoutEntry,
    blob_digest_from_path,
    entry_descriptor,
    images_from_index,
    stage_found,
)
from .reference import parse
from .staging import StagedImage, Staging

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
_METADATA_LIMIT = 16 << 20
_METADATA_TOTAL = 256 << 20


def _is_metadata(rel: str) -> bool:
    if rel in (MANIFEST_FILE, INDEX_FILE, LAYOUT_FILE, REPOSITORIES_FILE):
        return True
    if "/" not in rel:
        return rel.endswith(".json")
    return rel.endswith("/json") or rel.endswith("/VERSION")


class _Archive:
    """What one pass over the archive found."""

    def __init__(self, staging: Staging):
        self.staging = staging
        self.blobs: dict[str, str] = {}      # archive path -> digest of the staged blob
        self.meta: dict[str, bytes] = {}     # archive path -> bytes (metadata files)
        self.links: dict[str, str] = {}      # archive path -> archive path it points at
        self.meta_total = 0

    def resolve(self, rel: str, what: str) -> str:
        """The digest of the blob at archive path `rel` (following links inside the archive)."""
        path = clean_path(rel, f"{what} path")
        for _ in range(32):
            if path in self.links:
                path = self.links[path]
                continue
            break
        else:
            raise InvalidArgument(f"invalid archive: too many links resolving {rel!r}")
        if path in self.blobs:
            return self.blobs[path]
        if path in self.meta:
            digest = self.staging.add_bytes(self.meta[path])
            self.blobs[path] = digest
            return digest
        raise InvalidArgument(f"invalid archive: {what} {rel!r} is missing from the archive")


def _link_target(rel: str, linkname: str, kind: str) -> str:
    if kind == SYMLINK:
        if linkname.startswith("/"):
            raise InvalidArgument(f"refusing archive entry {rel!r}: its link target {linkname!r} is absolute")
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), linkname))
    else:
        joined = posixpath.normpath(linkname)
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        raise InvalidArgument(f"refusing archive entry {rel!r}: its link {linkname!r} points outside the archive")
    return clean_path(joined, "archive link")


def read_archive(stream: BinaryIO, staging: Staging, on_blob: Callable[[str, str], None] | None = None
                 ) -> list[StagedImage]:
    """Stage every image of a `docker save` archive (either layout) read from `stream`.

    `on_blob(digest, path)` is told of each staged blob as soon as it is complete.
    """
    found = _Archive(staging)
    reader = TarReader(stream, what="archive")
    any_entry = False
    for entry in reader:
        any_entry = True
        rel = clean_path(entry.path, "archive entry")
        if not rel or entry.type == DIRECTORY:
            continue
        if entry.type in (SYMLINK, HARDLINK):
            found.links[rel] = _link_target(rel, entry.linkname, entry.type)
            continue
        if entry.type != REGULAR:
            raise InvalidArgument(f"invalid archive: unexpected special file {entry.path!r}")
        if _is_metadata(rel) and entry.size <= _METADATA_LIMIT:
            found.meta_total += entry.size
            if found.meta_total > _METADATA_TOTAL:
                raise InvalidArgument("invalid archive: too much metadata")
            found.meta[rel] = reader.read()
            continue
        expected = blob_digest_from_path(rel)
        digest = found.blobs[rel] = staging.add_stream(reader.member_reader(), entry.size, expected)
        if on_blob:
            on_blob(digest, staging.path(digest))
    if not any_entry:
        raise InvalidArgument("invalid archive: it is empty (expected a docker save archive)")
    if MANIFEST_FILE in found.meta:
        return _from_docker_manifest(found)
    if INDEX_FILE in found.meta:
        return _from_index(found)
    raise InvalidArgument("invalid archive: neither manifest.json nor index.json found "
                          "(expected a `docker save` archive or an OCI layout)")


def _read_blob(found: _Archive):
    def read(digest: str) -> bytes:
        candidate = "blobs/sha256/" + digest[7:]
        if candidate in found.blobs:
            return found.staging.read(digest)
        if candidate in found.meta:
            data = found.meta[candidate]
            if digest_of(data) != digest:
                raise InvalidArgument(f"digest mismatch: archive blob {digest} has other content")
            return data
        raise InvalidArgument(f"invalid archive: blob {digest} is missing")
    return read


def _from_index(found: _Archive) -> list[StagedImage]:
    read_blob = _read_blob(found)

    def add_layer(layer: Descriptor) -> None:
        path = "blobs/sha256/" + layer.digest[7:]
        if path not in found.blobs:
            raise InvalidArgument(f"invalid archive: layer {layer.digest} is missing")
        if found.staging.size(layer.digest) != layer.size:
            raise InvalidArgument(f"size mismatch for layer {layer.digest}: the manifest says {layer.size} bytes")

    return [stage_found(f, found.staging, read_blob, add_layer)
            for f in images_from_index(found.meta[INDEX_FILE], read_blob)]


def _from_docker_manifest(found: _Archive) -> list[StagedImage]:
    try:
        entries = json.loads(found.meta[MANIFEST_FILE])
    except ValueError as err:
        raise InvalidArgument(f"invalid manifest.json in the archive: {err}") from None
    if not isinstance(entries, list):
        raise InvalidArgument("invalid manifest.json in the archive: expected a list")
    # Manifests the OCI part of a new-style archive has for these configs keep their digests.
    oci_manifests: dict[str, tuple[bytes, str, Manifest]] = {}
    if INDEX_FILE in found.meta:
        try:
            for f in images_from_index(found.meta[INDEX_FILE], _read_blob(found)):
                oci_manifests[f.parsed.config.digest] = (f.manifest, f.manifest_type, f.parsed)
        except (InvalidArgument, NotFound):
            oci_manifests = {}
    images = []
    for item in entries:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                or not isinstance(item.get("Layers"), list):
            raise InvalidArgument("invalid manifest.json in the archive: entries need Config and Layers")
        config_digest = found.resolve(item["Config"], "config")
        config_raw = found.staging.read(config_digest)
        config = parse_config(config_raw)
        layer_paths = item["Layers"]
        if len(layer_paths) != len(config.diff_ids):
            raise InvalidArgument(f"invalid archive: manifest.json lists {len(layer_paths)} layers for "
                                  f"{config_digest} but its config has {len(config.diff_ids)}")
        layers = []
        for path, diff_id in zip(layer_paths, config.diff_ids, strict=True):
            if not isinstance(path, str):
                raise InvalidArgument("invalid manifest.json in the archive: layer paths must be strings")
            digest = found.resolve(path, "layer")
            compression = detect_file(found.staging.path(digest))
            if compression is Compression.NONE and digest != diff_id:
                raise InvalidArgument(f"digest mismatch: layer {path} is {digest} but the image config "
                                      f"says {diff_id}")
            layers.append(Descriptor(layer_media_type(compression.value), digest, found.staging.size(digest)))
        names = []
        for tag in item.get("RepoTags") or []:
            if not isinstance(tag, str):
                raise InvalidArgument("invalid manifest.json in the archive: RepoTags must be strings")
            names.append(parse(tag).with_default_tag())
        known = oci_manifests.get(config_digest)
        if known and [layer.digest for layer in known[2].layers] == [layer.digest for layer in layers]:
            manifest, manifest_type = known[0], known[1]
        else:
            manifest = build_manifest(Descriptor(OCI_CONFIG, config_digest, len(config_raw)), layers)
            manifest_type = "application/vnd.oci.image.manifest.v1+json"
        found.staging.add_bytes(manifest)
        images.append(StagedImage(config, config_digest, manifest, manifest_type, tuple(layers), tuple(names)))
    return images


# -- writing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SaveImage:
    """One image to save: what the store knows about it, and the tags to write."""

    config_digest: str
    manifest: bytes
    manifest_type: str
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    tar_sizes: tuple[int, ...]      # uncompressed tar size per layer
    repo_tags: tuple[str, ...]      # familiar names, e.g. "bb:latest"
    full_names: tuple[str, ...]     # the same, fully qualified
    created: int = 0


def write_archive(out: BinaryIO, images: Sequence[SaveImage], content: LocalContentStore,
                  layout: str = "oci") -> None:
    """Write a `docker save` archive of `images` to `out` ("oci": the Docker 25+ layout; "legacy")."""
    if layout not in ("oci", "legacy"):
        raise InvalidArgument(f"unknown archive layout {layout!r} (choose oci or legacy)")
    tar = TarWriter(out)
    if layout == "oci":
        _write_oci(tar, images, content)
    else:
        _write_legacy(tar, images, content)
    tar.close()


def _write_oci(tar: TarWriter, images: Sequence[SaveImage], content: LocalContentStore) -> None:
    tar.add_bytes(LAYOUT_FILE, json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}).encode())
    tar.add_dir("blobs")
    tar.add_dir("blobs/sha256")
    written: set[str] = set()
    index_entries = []
    docker_manifest = []

    def blob(digest: str, data: bytes | None = None) -> str:
        path = "blobs/sha256/" + digest[7:]
        if digest not in written:
            written.add(digest)
            if data is not None:
                tar.add_bytes(path, data)
            else:
                size = content.size(digest)
                with content.open(digest) as f:
                    tar.add_stream(path, f, size)
        return path

    for image in images:
        layer_paths = [blob(layer.digest) for layer in image.layers]
        config_path = blob(image.config_digest)
        blob(digest_of(image.manifest), image.manifest)
        names = list(zip(image.repo_tags, image.full_names, strict=True)) or [(None, None)]
        for familiar, full in names:
            entry = LayoutEntry(image.manifest, image.manifest_type, (), familiar and familiar.rsplit(":", 1)[1],
                                full)
            index_entries.append(entry_descriptor(entry))
        docker_manifest.append({"Config": config_path, "RepoTags": list(image.repo_tags) or None,
                                "Layers": layer_paths})
    tar.add_bytes(INDEX_FILE, build_index(index_entries))
    tar.add_bytes(MANIFEST_FILE, json.dumps(docker_manifest, separators=(",", ":")).encode())


def _v1_ids(image: SaveImage) -> list[str]:
    """Stable v1-style layer ids: one per chain, so shared layers are written once."""
    ids, parent = [], ""
    for diff_id in image.diff_ids:
        parent = hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()
        ids.append(parent)
    return ids


def _write_legacy(tar: TarWriter, images: Sequence[SaveImage], content: LocalContentStore) -> None:
    written: set[str] = set()
    docker_manifest = []
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        v1_ids = _v1_ids(image)
        layer_paths = []
        for i, (layer, v1_id) in enumerate(zip(image.layers, v1_ids, strict=True)):
            path = f"{v1_id}/layer.tar"
            layer_paths.append(path)
            if v1_id in written:
                continue
            written.add(v1_id)
            tar.add_dir(v1_id, image.created)
            tar.add_bytes(f"{v1_id}/VERSION", b"1.0", image.created)
            v1 = {"id": v1_id, "created": "1970-01-01T00:00:00Z"}
            if i:
                v1["parent"] = v1_ids[i - 1]
            tar.add_bytes(f"{v1_id}/json", json.dumps(v1).encode(), image.created)
            with content.open(layer.digest) as raw:
                compression = detect(raw.read(6))
                raw.seek(0)
                stream = decompressing_reader(raw, compression)
                try:
                    tar.add_stream(path, stream, image.tar_sizes[i], image.created)
                finally:
                    if stream is not raw:
                        stream.close()
        config_name = image.config_digest[7:] + ".json"
        if config_name not in written:
            written.add(config_name)
            tar.add_bytes(config_name, content.read(image.config_digest), image.created)
        docker_manifest.append({"Config": config_name, "RepoTags": list(image.repo_tags) or None,
                                "Layers": layer_paths})
        for familiar in image.repo_tags:
            repo, tag = familiar.rsplit(":", 1)
            repositories.setdefault(repo, {})[tag] = v1_ids[-1] if v1_ids else ""
    tar.add_bytes(MANIFEST_FILE, json.dumps(docker_manifest, separators=(",", ":")).encode())
    if repositories:
        tar.add_bytes(REPOSITORIES_FILE, json.dumps(repositories).encode())


def manifest_of(data: bytes, media_type: str) -> Manifest:
    parsed = parse_manifest_or_index(data, media_type)
    if not isinstance(parsed, Manifest):
        raise InvalidArgument("stored manifest is not an image manifest")
    return parsed
