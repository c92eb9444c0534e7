"""What a pushed manifest is and points at, pure.

A registry must not understand images to store them, only check that a
manifest is one of the kinds it serves and that everything it references is
already in the repository.  So this parser is lenient where the image
parser (dockyard.images.formats) is strict: any layer or config media type
is accepted (OCI 1.1 artifacts use their own), and nothing about platforms or
configs is looked at.

Kinds served: OCI image manifest and index, Docker manifest v2 schema 2 and
manifest list.  The media type is the request's Content-Type when it names one
of them, else the body's `mediaType`, else inferred from the body's shape
(`manifests` → an index, `config` → a manifest), as the OCI spec allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard import jsonio
from dockyard.content import Descriptor
from dockyard.errors import InvalidArgument
from dockyard.images.formats import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

from .errors import RegistryError
from .protocol import bare_media_type

IMAGE_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
SERVED = IMAGE_MANIFESTS + INDEXES
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
# Content-Types that say nothing about the manifest's kind.
_GENERIC = ("", "application/json", "application/octet-stream", "text/plain")

# Layers that live elsewhere (their `urls`) need not be in the registry.
_NONDISTRIBUTABLE = ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                     "application/vnd.oci.image.layer.nondistributable.v1.tar",
                     "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                     "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")

MAX_MANIFEST = 4 << 20  # the spec asks registries to accept at least 4 MiB


@dataclass(frozen=True)
class PushedManifest:
    media_type: str
    blobs: tuple[str, ...]          # digests that must be blobs of the repository (config, layers)
    manifests: tuple[str, ...]      # digests that must be manifests of the repository (an index's entries)
    subject: str | None             # the manifest this one refers to (OCI 1.1 referrers)
    artifact_type: str              # for the referrers list: artifactType, else the config's media type
    annotations: dict = field(default_factory=dict)


def _invalid(detail: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", detail)


def _descriptor(obj, what: str) -> Descriptor:
    try:
        return Descriptor.from_json(obj, what)
    except InvalidArgument as exc:
        raise _invalid(exc.message) from None


def parse_pushed(body: bytes, content_type: str | None) -> PushedManifest:
    header_type = bare_media_type(content_type).lower()
    if header_type in SCHEMA1:
        raise _invalid("Docker manifest schema 1 is not supported; push schema 2 or OCI manifests")
    if header_type not in _GENERIC and header_type not in SERVED:
        raise _invalid(f"unsupported manifest media type {header_type!r}")
    try:
        obj = jsonio.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _invalid("a manifest must be a JSON object")
    declared = obj.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    if obj.get("schemaVersion") != 2:
        if obj.get("schemaVersion") == 1 or declared in SCHEMA1:
            raise _invalid("Docker manifest schema 1 is not supported; push schema 2 or OCI manifests")
        raise _invalid(f"schemaVersion must be 2, not {obj.get('schemaVersion')!r}")
    if header_type not in _GENERIC:
        if declared and declared != header_type:
            raise _invalid(f"the manifest's mediaType {declared!r} differs from its Content-Type {header_type!r}")
        media_type = header_type
    elif declared:
        media_type = declared
    elif "manifests" in obj:
        media_type = OCI_INDEX
    elif "config" in obj:
        media_type = OCI_MANIFEST
    else:
        raise _invalid("neither an image manifest (no config) nor an index (no manifests)")
    if media_type not in SERVED:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    if media_type in (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST) and declared != media_type:
        raise _invalid(f"a Docker schema 2 manifest must declare its mediaType {media_type!r}")

    annotations = obj.get("annotations")
    annotations = {} if annotations is None else annotations
    if not isinstance(annotations, dict):
        raise _invalid("annotations must be an object")
    artifact_type = obj.get("artifactType")
    artifact_type = "" if artifact_type is None else artifact_type
    if not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    subject = None
    if obj.get("subject") is not None:
        subject = _descriptor(obj["subject"], "subject descriptor").digest

    if media_type in INDEXES:
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise _invalid("an index's manifests must be a list")
        children = tuple(_descriptor(e, "index entry").digest for e in entries)
        return PushedManifest(media_type, (), _unique(children), subject, artifact_type, annotations)

    config = _descriptor(obj.get("config"), "config descriptor")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise _invalid("a manifest's layers must be a list")
    needed = [config.digest]
    for entry in layers:
        layer = _descriptor(entry, "layer descriptor")
        if layer.media_type in _NONDISTRIBUTABLE and isinstance(entry, dict) and entry.get("urls"):
            continue
        needed.append(layer.digest)
    return PushedManifest(media_type, _unique(needed), (), subject, artifact_type or config.media_type,
                          annotations)


def _unique(digests) -> tuple[str, ...]:
    return tuple(dict.fromkeys(digests))
