"""Image formats: OCI manifests and indexes, Docker manifest v2 schema 2 and
manifest lists, image configs; parsing (strict, with clear errors), platform
selection, and building manifests for images made locally.

Pure: no I/O beyond `os.uname()` for the host platform.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..content import Descriptor, check_digest, digest_of
from ..errors import InvalidArgument, NotFound

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYOUT_VERSION = "1.0.0"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
LAYER_TYPES = (
    OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_FOREIGN_LAYER_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)

# Annotations on index entries that name an image.
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"

_TO_OCI = {
    DOCKER_MANIFEST: OCI_MANIFEST, DOCKER_MANIFEST_LIST: OCI_INDEX, DOCKER_CONFIG: OCI_CONFIG,
    DOCKER_LAYER: OCI_LAYER, DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_FOREIGN_LAYER_GZIP: OCI_LAYER_GZIP,
}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


_ARCH = {"x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
         "i686": ("386", ""), "i386": ("386", ""), "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""),
         "riscv64": ("riscv64", "")}


def host_platform() -> Platform:
    machine = os.uname().machine
    arch, variant = _ARCH.get(machine, (machine, ""))
    return Platform("linux", arch, variant)


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict


def _load_json(data: bytes, what: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"invalid {what}: not valid JSON ({err})") from None


def parse_manifest_or_index(data: bytes, media_type: str = "") -> Manifest | Index:
    """Parse manifest or index bytes; `media_type` (from a descriptor) is a hint."""
    obj = _load_json(data, "image manifest")
    if not isinstance(obj, dict):
        raise InvalidArgument("invalid image manifest: expected a JSON object")
    declared = obj.get("mediaType") or media_type
    if declared and media_type and declared != media_type and media_type in MANIFEST_TYPES + INDEX_TYPES:
        raise InvalidArgument(f"invalid image manifest: media type {declared!r} where {media_type!r} was expected")
    if obj.get("schemaVersion") != 2:
        raise InvalidArgument(f"unsupported manifest schema version {obj.get('schemaVersion')!r} "
                              "(only schema 2 manifests are supported)")
    if declared in INDEX_TYPES or (not declared and "manifests" in obj):
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise InvalidArgument("invalid image index: 'manifests' must be a list")
        return Index(declared or OCI_INDEX,
                     tuple(Descriptor.from_json(m, "index entry") for m in entries), obj.get("annotations") or {})
    if declared in MANIFEST_TYPES or (not declared and "config" in obj):
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise InvalidArgument("invalid image manifest: 'layers' must be a list")
        config = Descriptor.from_json(obj.get("config"), "config descriptor")
        parsed = tuple(Descriptor.from_json(layer, "layer descriptor") for layer in layers)
        for layer in parsed:
            if layer.media_type not in LAYER_TYPES:
                raise InvalidArgument(f"unsupported layer media type {layer.media_type!r}")
        return Manifest(declared or OCI_MANIFEST, config, parsed, obj.get("annotations") or {})
    raise InvalidArgument(f"unsupported manifest media type {declared!r}")


def platform_matches(entry: Descriptor, want: Platform) -> bool:
    p = entry.platform or {}
    if p.get("os", "") != want.os or p.get("architecture", "") != want.architecture:
        return False
    variant = p.get("variant", "")
    if want.variant and variant and variant != want.variant:
        return False
    return True


def select_manifest(index: Index, want: Platform | None = None) -> Descriptor:
    """The index entry for `want` (the host by default): Docker's choice for `pull`/`load`."""
    want = want or host_platform()
    candidates = [m for m in index.manifests if m.media_type in MANIFEST_TYPES or not m.media_type]
    # An exact variant match first, then one that leaves the variant out.
    for entry in candidates:
        if entry.platform and platform_matches(entry, want) and entry.platform.get("variant", "") == want.variant:
            return entry
    for entry in candidates:
        if entry.platform and platform_matches(entry, want):
            return entry
    platformless = [m for m in candidates if not m.platform]
    if len(platformless) == 1 and len(candidates) == 1:
        return platformless[0]
    raise NotFound(f"no matching manifest for {want} in the manifest list entries")


@dataclass(frozen=True)
class ImageConfig:
    """An image config (OCI / Docker `application/...image.v1+json`), parsed and checked."""

    raw: bytes
    data: dict

    @property
    def digest(self) -> str:
        return digest_of(self.raw)

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(self.data["rootfs"]["diff_ids"])

    @property
    def created(self) -> str:
        return self.data.get("created") or ""

    @property
    def config(self) -> dict:
        return self.data.get("config") or {}

    @property
    def labels(self) -> dict:
        return self.config.get("Labels") or {}

    @property
    def history(self) -> list:
        return self.data.get("history") or []


def parse_config(raw: bytes) -> ImageConfig:
    obj = _load_json(raw, "image config")
    if not isinstance(obj, dict):
        raise InvalidArgument("invalid image config: expected a JSON object")
    rootfs = obj.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidArgument("invalid image config: rootfs.type must be \"layers\"")
    diff_ids = rootfs.get("diff_ids")
    if diff_ids is None:
        diff_ids = rootfs["diff_ids"] = []
    if not isinstance(diff_ids, list):
        raise InvalidArgument("invalid image config: rootfs.diff_ids must be a list")
    for d in diff_ids:
        check_digest(d, "diff id")
    config = obj.get("config")
    if config is not None and not isinstance(config, dict):
        raise InvalidArgument("invalid image config: 'config' must be an object")
    history = obj.get("history")
    if history is not None and not isinstance(history, list):
        raise InvalidArgument("invalid image config: 'history' must be a list")
    return ImageConfig(raw, obj)


def canonical_json(obj) -> bytes:
    """Compact, key-sorted JSON: what Docker and containerd write for configs and manifests."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def layer_media_type(compression: str, oci: bool = True) -> str:
    if oci:
        return {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}[compression]
    if compression == "zstd":
        raise InvalidArgument("zstd layers cannot be described by a Docker schema 2 manifest")
    return {"none": DOCKER_LAYER, "gzip": DOCKER_LAYER_GZIP}[compression]


def build_manifest(config: Descriptor, layers: list[Descriptor], annotations: dict | None = None) -> bytes:
    """An OCI image manifest for `config` and `layers`."""
    obj = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.to_json(),
           "layers": [layer.to_json() for layer in layers]}
    if annotations:
        obj["annotations"] = annotations
    return canonical_json(obj)


def to_oci_manifest(manifest: Manifest) -> bytes:
    """The same image as an OCI manifest (Docker media types mapped to OCI ones)."""
    config = Descriptor(OCI_CONFIG, manifest.config.digest, manifest.config.size)
    layers = [Descriptor(_TO_OCI.get(layer.media_type, layer.media_type), layer.digest, layer.size,
                         layer.annotations) for layer in manifest.layers]
    return build_manifest(config, layers, manifest.annotations or None)


def build_index(entries: list[Descriptor]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [e.to_json() for e in entries]}, separators=(",", ":")).encode()
