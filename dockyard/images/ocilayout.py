"""OCI image layouts (a directory, or the same tree inside a `docker save` tar).

    <layout>/
      oci-layout          {"imageLayoutVersion": "1.0.0"}
      index.json          an OCI index; each entry a manifest (or an index)
                          annotated with org.opencontainers.image.ref.name
                          (the tag, as skopeo and umoci write it) and, from
                          Docker and containerd, io.containerd.image.name
                          (the full reference)
      blobs/sha256/<hex>  manifests, configs and layers

Reading is shared by directories and archives through a `read_blob` callback;
writing a directory merges into an existing layout (an entry with the same
ref name is replaced) and replaces index.json atomically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..content import Descriptor, LocalContentStore, check_digest, digest_of
from ..errors import InvalidArgument, NotFound
from .formats import (
    CONTAINERD_NAME,
    INDEX_TYPES,
    OCI_LAYOUT_VERSION,
    OCI_MANIFEST,
    REF_NAME,
    Index,
    Manifest,
    Platform,
    build_index,
    parse_config,
    parse_manifest_or_index,
    select_manifest,
    to_oci_manifest,
)
from .reference import Reference, parse
from .staging import StagedImage, Staging

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
_BLOB_PATH = re.compile(r"blobs/sha256/([0-9a-f]{64})\Z")


def blob_digest_from_path(rel: str) -> str | None:
    m = _BLOB_PATH.match(rel)
    return "sha256:" + m.group(1) if m else None


@dataclass(frozen=True)
class Found:
    """One image named by an index: its manifest, config and the names the index gives it."""

    manifest: bytes
    manifest_type: str
    parsed: Manifest
    names: tuple[Reference, ...]
    ref_name: str | None


def names_from_annotations(annotations: dict) -> tuple[tuple[Reference, ...], str | None]:
    """(full names, bare ref name) from an index entry's annotations."""
    names = []
    ref_name = annotations.get(REF_NAME)
    full = annotations.get(CONTAINERD_NAME)
    if full:
        names.append(parse(full).with_default_tag())
    elif ref_name and ("/" in ref_name or ":" in ref_name):
        names.append(parse(ref_name).with_default_tag())
    if ref_name and names:
        ref_name = names[0].tag or ref_name
    return tuple(names), ref_name


def images_from_index(index_data: bytes, read_blob: Callable[[str], bytes], ref: str | None = None,
                      platform: Platform | None = None) -> list[Found]:
    """The images an index names (only those whose ref name or tag is `ref`, when given)."""
    top = parse_manifest_or_index(index_data, "")
    if not isinstance(top, Index):
        raise InvalidArgument("invalid index.json: it is not an image index")
    found = []
    for entry in top.manifests:
        names, ref_name = names_from_annotations(entry.annotations)
        if ref is not None and ref_name != ref and ref not in {n.tag for n in names} \
                and ref not in {n.familiar() for n in names}:
            continue
        desc = entry
        if entry.media_type in INDEX_TYPES:
            child = parse_manifest_or_index(read_blob(entry.digest), entry.media_type)
            if not isinstance(child, Index):
                raise InvalidArgument(f"blob {entry.digest} is not an image index")
            desc = select_manifest(child, platform)
        data = read_blob(desc.digest)
        manifest = parse_manifest_or_index(data, desc.media_type)
        if not isinstance(manifest, Manifest):
            raise InvalidArgument(f"blob {desc.digest} is not an image manifest")
        found.append(Found(data, manifest.media_type, manifest, names, ref_name))
    if ref is not None and not found:
        raise NotFound(f"no image named {ref!r} in the layout's index.json")
    return found


def stage_found(found: Found, staging: Staging, read_blob: Callable[[str], bytes],
                add_layer: Callable[[Descriptor], None]) -> StagedImage:
    """Check a found image's config and layers into `staging`."""
    config_raw = read_blob(found.parsed.config.digest)
    config = parse_config(config_raw)
    staging.add_bytes(config_raw, found.parsed.config.digest)
    if len(config.diff_ids) != len(found.parsed.layers):
        raise InvalidArgument(f"image manifest lists {len(found.parsed.layers)} layers but its config has "
                              f"{len(config.diff_ids)} diff ids")
    for layer in found.parsed.layers:
        add_layer(layer)
    staging.add_bytes(found.manifest)
    return StagedImage(config, found.parsed.config.digest, found.manifest, found.manifest_type,
                       found.parsed.layers, found.names)


def read_layout(directory: str, staging: Staging, ref: str | None = None,
                platform: Platform | None = None) -> list[StagedImage]:
    """Stage the images of the OCI layout in `directory` (those tagged `ref`, when given)."""
    layout_path = os.path.join(directory, LAYOUT_FILE)
    try:
        with open(layout_path, "rb") as f:
            layout = json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"{directory} is not an OCI image layout: {LAYOUT_FILE} is missing") from None
    except ValueError:
        raise InvalidArgument(f"invalid {LAYOUT_FILE} in {directory}") from None
    if not isinstance(layout, dict) or not isinstance(layout.get("imageLayoutVersion"), str):
        raise InvalidArgument(f"invalid {LAYOUT_FILE} in {directory}: no imageLayoutVersion")
    try:
        with open(os.path.join(directory, INDEX_FILE), "rb") as f:
            index_data = f.read()
    except FileNotFoundError:
        raise NotFound(f"{directory} is not an OCI image layout: {INDEX_FILE} is missing") from None

    def blob_path(digest: str) -> str:
        path = os.path.join(directory, "blobs", "sha256", check_digest(digest)[7:])
        if not os.path.isfile(path):
            raise NotFound(f"blob {digest} is missing from the layout {directory}")
        return path

    def read_blob(digest: str) -> bytes:
        with open(blob_path(digest), "rb") as f:
            data = f.read(64 << 20)
        if digest_of(data) != digest:
            raise InvalidArgument(f"digest mismatch in layout {directory}: blob {digest} has other content")
        return data

    def add_layer(layer: Descriptor) -> None:
        path = blob_path(layer.digest)
        with open(path, "rb") as f:
            staging.add_stream(f, layer.size, layer.digest)

    return [stage_found(found, staging, read_blob, add_layer)
            for found in images_from_index(index_data, read_blob, ref, platform)]


@dataclass(frozen=True)
class LayoutEntry:
    """An image to write into a layout: manifest bytes, its blobs, the names to annotate."""

    manifest: bytes
    manifest_type: str
    blobs: tuple[str, ...]          # config and layers
    ref_name: str | None = None
    full_name: str | None = None


def oci_entry(manifest: bytes, manifest_type: str, parsed: Manifest, ref_name: str | None,
              full_name: str | None) -> LayoutEntry:
    """A layout entry whose manifest uses OCI media types (umoci and skopeo's oci: need them)."""
    if manifest_type != OCI_MANIFEST:
        manifest, manifest_type = to_oci_manifest(parsed), OCI_MANIFEST
    blobs = (parsed.config.digest,) + tuple(layer.digest for layer in parsed.layers)
    return LayoutEntry(manifest, manifest_type, blobs, ref_name, full_name)


def entry_descriptor(entry: LayoutEntry) -> Descriptor:
    annotations = {}
    if entry.full_name:
        annotations[CONTAINERD_NAME] = entry.full_name
    if entry.ref_name:
        annotations[REF_NAME] = entry.ref_name
    return Descriptor(entry.manifest_type, digest_of(entry.manifest), len(entry.manifest), annotations)


def write_layout(directory: str, entries: Sequence[LayoutEntry], content: LocalContentStore) -> None:
    """Write (or add to) the OCI layout in `directory`."""
    blobs_dir = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs_dir, exist_ok=True)
    layout_path = os.path.join(directory, LAYOUT_FILE)
    if not os.path.exists(layout_path):
        _write_atomic(layout_path, json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}).encode())
    for entry in entries:
        for digest in entry.blobs:
            target = os.path.join(blobs_dir, digest[7:])
            if os.path.exists(target) and os.path.getsize(target) == content.size(digest):
                continue
            tmp = target + ".tmp"
            shutil.copyfile(content.path(digest), tmp)
            os.replace(tmp, target)
        manifest_path = os.path.join(blobs_dir, digest_of(entry.manifest)[7:])
        if not os.path.exists(manifest_path):
            _write_atomic(manifest_path, entry.manifest)
    index_path = os.path.join(directory, INDEX_FILE)
    existing: list[Descriptor] = []
    if os.path.exists(index_path):
        with open(index_path, "rb") as f:
            current = parse_manifest_or_index(f.read(), "")
        if not isinstance(current, Index):
            raise InvalidArgument(f"{index_path} is not an image index")
        existing = list(current.manifests)
    new = [entry_descriptor(e) for e in entries]
    taken = {d.annotations.get(REF_NAME) for d in new if d.annotations.get(REF_NAME)}
    kept = [d for d in existing if not d.annotations.get(REF_NAME) or d.annotations.get(REF_NAME) not in taken]
    _write_atomic(index_path, build_index(kept + new))


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
