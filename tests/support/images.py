"""Test images built by hand: layers, configs, `docker save` archives and OCI layouts.

Everything is generated here from bytes, so the tests need no registry and
can also build the broken archives (truncated, mislabelled, malicious) that
no real tool would write.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes | str | None], mtime: int = 1_600_000_000) -> bytes:
    """A layer: path -> bytes (file), str (symlink target), None (directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755 if name.startswith("bin/") else 0o644
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def config_for(layers: list[bytes], cmd=None, labels=None, created="2026-01-02T03:04:05.000000006Z",
               history=True) -> bytes:
    cfg = {
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Cmd": cmd, "Labels": labels, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
    }
    if history:
        cfg["history"] = [{"created": created, "created_by": f"layer {i}"} for i in range(len(layers))]
    return json.dumps(cfg).encode()


@dataclass
class Img:
    layers: list[bytes]
    tags: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    labels: dict | None = None
    compress: bool = False
    created: str = "2026-01-02T03:04:05.000000006Z"

    @property
    def config(self) -> bytes:
        return config_for(self.layers, self.cmd, self.labels, self.created)

    @property
    def id(self) -> str:
        return sha(self.config)

    def blobs(self) -> list[bytes]:
        return [gzip.compress(layer, mtime=0) if self.compress else layer for layer in self.layers]


class ArchiveWriter:
    """A tar built member by member, with full control over names, links and bytes."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def file(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def dir(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        self.tar.addfile(info)

    def symlink(self, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        self.tar.addfile(info)

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def legacy_archive(images: list[Img], share_links: bool = True) -> bytes:
    """A `docker save` archive as Docker <= 24 writes it (layer dirs, <id>.json, manifest.json)."""
    w = ArchiveWriter()
    manifest, seen = [], {}
    for img in images:
        paths = []
        parent = ""
        for blob in img.blobs():
            v1 = hashlib.sha256((parent + sha(blob)).encode()).hexdigest()
            parent = v1
            path = f"{v1}/layer.tar"
            if sha(blob) in seen and share_links:
                if seen[sha(blob)] != path:
                    w.dir(v1)
                    w.symlink(path, "../" + seen[sha(blob)])
            elif path not in seen.values():
                w.dir(v1)
                w.file(f"{v1}/VERSION", b"1.0")
                w.file(f"{v1}/json", json.dumps({"id": v1}).encode())
                w.file(path, blob)
                seen[sha(blob)] = path
            paths.append(path)
        config_name = img.id[7:] + ".json"
        w.file(config_name, img.config)
        manifest.append({"Config": config_name, "RepoTags": img.tags or None, "Layers": paths})
    w.file("manifest.json", json.dumps(manifest).encode())
    return w.bytes()


def oci_manifest(img: Img) -> bytes:
    layer_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if img.compress else "")
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.id,
                   "size": len(img.config)},
        "layers": [{"mediaType": layer_type, "digest": sha(b), "size": len(b)} for b in img.blobs()],
    }).encode()


def oci_layout_files(images: list[Img], index_entries: list[dict] | None = None) -> dict[str, bytes]:
    """path -> bytes of an OCI layout holding `images` (ref.name annotation = tag)."""
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode()}
    entries = []
    for img in images:
        manifest = oci_manifest(img)
        for blob in [img.config, manifest] + img.blobs():
            files["blobs/sha256/" + sha(blob)[7:]] = blob
        for tag in img.tags or [None]:
            ann = {}
            if tag:
                ann = {"io.containerd.image.name": _full(tag), "org.opencontainers.image.ref.name": tag.split(":")[-1]}
            entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
                            "size": len(manifest), "annotations": ann})
    files["index.json"] = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                      "manifests": index_entries if index_entries is not None else entries}).encode()
    return files


def _full(tag: str) -> str:
    name = tag if ":" in tag.rsplit("/", 1)[-1] else tag + ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        return "docker.io/library/" + name
    if "." not in first and ":" not in first and first != "localhost":
        return "docker.io/" + name
    return name


def oci_archive(images: list[Img], with_docker_manifest: bool = True) -> bytes:
    """A `docker save` archive as Docker >= 25 writes it (OCI layout plus manifest.json)."""
    w = ArchiveWriter()
    files = oci_layout_files(images)
    for path, data in files.items():
        w.file(path, data)
    if with_docker_manifest:
        manifest = [{"Config": "blobs/sha256/" + img.id[7:], "RepoTags": img.tags or None,
                     "Layers": ["blobs/sha256/" + sha(b)[7:] for b in img.blobs()]} for img in images]
        w.file("manifest.json", json.dumps(manifest).encode())
    return w.bytes()


def write_layout(directory: str, images: list[Img]) -> None:
    for path, data in oci_layout_files(images).items():
        full = os.path.join(directory, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)


def store_state(service) -> tuple:
    """Everything an import could leave behind: images, names, blobs, snapshots, ingest files."""
    snaps = sorted(i.key for i in service.snapshotter.walk())
    return (sorted(r.id for r in service.store.all()),
            sorted((k, tuple(v)) for k, v in service.store.all_refs().items()),
            sorted(d for d, _ in service.content.walk()), snaps,
            sorted(os.listdir(service.content.ingest_dir)))


def fs_tree(root: str, skip: tuple[str, ...] = ()) -> dict:
    """path -> (type, mode, uid, gid, content hash / link target / device) for everything under root."""
    import stat

    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in skip or any(rel.startswith(s + "/") for s in skip):
                continue
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    detail = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                detail = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                detail = None
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, detail)
    return out
