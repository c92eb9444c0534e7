"""`docker commit`: a container's changes become a new image on top of its image.

The container's snapshot upper directory (overlay) is archived as one more
layer (`diff.write_tree` turns overlay whiteouts into OCI ones), stored
uncompressed (its digest is its DiffID), and the new config is the parent's
with that layer appended, the container's Config (after `--change`) as its
`config`, and a history entry. The image service's own import path then
stores it (`ImageService.store_staged`: the parent's layers are found unpacked
already; the new one is unpacked once more as its own snapshot, so the image
does not depend on the container).
"""

from __future__ import annotations

import json
import os
import tempfile

from ..content import Descriptor
from ..diff import Whiteouts, write_tree
from ..errors import NotSupported
from ..images.changes import apply_changes
from ..images.formats import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, build_manifest, canonical_json, parse_config
from ..images.reference import parse_repository_tag
from ..images.rootfs import DOCKER_VERSION, now_rfc3339
from ..images.staging import StagedImage, Staging

# Config keys docker carries from the container into a committed image.
IMAGE_CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                     "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes",
                     "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal")


def commit_image(images, container_id: str, image_id: str, snapshot_key: str, container_config: dict,
                 command: list[str], repo: str = "", tag: str = "", author: str = "", comment: str = "",
                 changes: list[str] | None = None, config_override: dict | None = None) -> str:
    """Build and store the image; returns its ID (runs in a worker thread)."""
    upper = images.container_upper_dir(snapshot_key)
    if not os.path.isdir(upper):
        raise NotSupported("docker commit needs the container's snapshot directory")
    parent = images.store.get(image_id)
    parent_raw = images.content.read(image_id)
    parent_cfg = json.loads(parent_raw)
    config = {k: container_config[k] for k in IMAGE_CONFIG_KEYS if k in container_config}
    if config_override:
        config.update({k: v for k, v in config_override.items() if v is not None})
    config = apply_changes(config, changes or [])
    if images.snapshotter.name != "overlayfs":
        raise NotSupported("docker commit needs the overlay snapshotter")
    names = (parse_repository_tag(repo, tag or None),) if repo else ()
    with tempfile.TemporaryFile(dir=images.data_root) as layer, Staging(images.content) as staging:
        result = write_tree(upper, layer, Whiteouts.OVERLAY)
        layer.seek(0)
        layer_digest = staging.add_stream(layer, result.size, result.diff_id)
        created = now_rfc3339()
        new_cfg = dict(parent_cfg)
        new_cfg.update({
            "created": created, "container": container_id, "docker_version": DOCKER_VERSION,
            "author": author, "comment": comment, "config": config, "container_config": container_config,
            "architecture": parent_cfg.get("architecture") or "amd64", "os": parent_cfg.get("os") or "linux",
        })
        new_cfg["rootfs"] = {"type": "layers", "diff_ids": list(parent_cfg["rootfs"]["diff_ids"]) + [result.diff_id]}
        entry = {"created": created, "created_by": " ".join(command)}
        if author:
            entry["author"] = author
        if comment:
            entry["comment"] = comment
        new_cfg["history"] = list(parent_cfg.get("history") or []) + [entry]
        raw = canonical_json(new_cfg)
        config_digest = staging.add_bytes(raw)
        layers = [Descriptor(rec.media_type, rec.blob, rec.blob_size) for rec in parent.layers]
        layers.append(Descriptor(OCI_LAYER, layer_digest, result.size))
        manifest = build_manifest(Descriptor(OCI_CONFIG, config_digest, len(raw)), layers)
        staging.add_bytes(manifest)
        image = StagedImage(parse_config(raw), config_digest, manifest, OCI_MANIFEST, tuple(layers), names)
        images.store_staged(staging, [image], action="commit")
    return image.id
