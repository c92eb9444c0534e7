"""Push: an image's stored blobs and manifest to its registry, with dockerd's progress messages.

    "The push refers to repository [127.0.0.1:5001/apx/img]"
    per layer (ids: the first 12 hex of its DiffID): "Preparing", then, three at a time,
      the registry has it            -> "Layer already exists"
      another repository of the same
      registry has it (our names say) -> "Mounted from apx/other"
      else                            -> "Pushing" … "Pushed"
    the config blob (no message), then the manifest under the tag
    "v1: digest: sha256:… size: 527" and an aux {"Tag", "Digest", "Size"}

The manifest, config and layers go out exactly as stored, so the digest the
registry records is the one the image was pulled (or loaded) with.  After a
push the image carries the repository digest `name@<manifest digest>`, and a
`push` event names the reference, as dockerd's do.  Without a tag every tag
of the repository is pushed (`docker push -a`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from ..content import Descriptor, short_id
from ..errors import NotFound
from ..images.archive import manifest_of
from ..images.reference import Reference, parse
from ..remotes import AuthConfig, Registry, Unauthorized
from .pull import Progress, run_all, throttled

UPLOADS = 3         # layers pushed at once
CHUNK = 1 << 20
MOUNT_SOURCES = 3   # repositories tried for a cross-repository mount


def push(service, name: str, tag: str | None = None, auth: AuthConfig | None = None,
         progress: Progress | None = None) -> list[tuple[str, str, int]]:
    """Push `name` (`repo`, `repo:tag`; `tag` wins); returns (tag, manifest digest, size) per tag pushed."""
    progress = progress or (lambda message: None)
    ref = parse(name)
    if tag:
        ref = ref.with_tag(tag)
    repository = ref.repository()
    targets = _targets(service, repository, ref.tag)
    progress({"status": f"The push refers to repository [{repository.name}]"})
    results = []
    with Registry(repository.domain, auth) as registry:
        registry.discover()
        sources = _mount_sources(service, repository)
        for tag_name, image_id in targets:
            try:
                results.append(_push_one(service, registry, repository, tag_name, image_id, sources, progress))
            except Unauthorized as err:
                raise Unauthorized(err.reason, err.hint) from None
    return results


def _targets(service, repository: Reference, tag: str | None) -> list[tuple[str, str]]:
    """(tag, image ID) to push, in dockerd's words when there is none."""
    prefix = repository.name + ":"
    tagged = sorted((full[len(prefix):], image_id) for full, image_id in service.store.refs_with_prefix(prefix)
                    if "@" not in full and "/" not in full[len(prefix):])
    if not tagged:
        raise NotFound(f"An image does not exist locally with the tag: {repository.familiar_name}")
    if tag is None:
        return tagged
    for name, image_id in tagged:
        if name == tag:
            return [(name, image_id)]
    raise NotFound(f"tag does not exist: {Reference(repository.domain, repository.path, tag).familiar()}")


def _mount_sources(service, repository: Reference) -> dict[str, list[str]]:
    """blob digest -> other repositories of the same registry that images with this blob are named in."""
    repos_of_image: dict[str, set[str]] = {}
    for image_id, refs in service.store.all_refs().items():
        for full, _kind in refs:
            try:
                other = parse(full)
            except Exception:  # a stored name that no longer parses: skip it
                continue
            if other.domain == repository.domain and other.path != repository.path:
                repos_of_image.setdefault(image_id, set()).add(other.path)
    out: dict[str, list[str]] = {}
    for image_id, repos in repos_of_image.items():
        record = service.store.get(image_id)
        if record is None:
            continue
        for blob in [layer.blob for layer in record.layers] + [record.id]:
            known = out.setdefault(blob, [])
            known.extend(r for r in sorted(repos) if r not in known)
    return out


def _push_one(service, registry: Registry, repository: Reference, tag: str, image_id: str,
              sources: dict[str, list[str]], progress: Progress) -> tuple[str, str, int]:
    record = service.store.get(image_id)
    if record is None:
        raise NotFound(f"An image does not exist locally with the tag: {repository.familiar_name}")
    manifest_raw = service.content.read(record.manifest)
    manifest = manifest_of(manifest_raw, record.manifest_type)
    diff_ids = service._config(record).diff_ids
    repo = repository.path

    layers: list[tuple[Descriptor, str]] = []
    seen: set[str] = set()
    for layer, diff_id in zip(manifest.layers, diff_ids, strict=False):
        if layer.digest not in seen:
            seen.add(layer.digest)
            layers.append((layer, short_id(diff_id)))
            progress({"status": "Preparing", "progressDetail": {}, "id": short_id(diff_id)})

    def push_layer(layer: Descriptor, shown: str, stop: threading.Event) -> None:
        if registry.blob_size(repo, layer.digest) is not None:
            progress({"status": "Layer already exists", "progressDetail": {}, "id": shown})
            return
        location = None
        for source in sources.get(layer.digest, [])[:MOUNT_SOURCES]:
            mounted, opened = registry.mount_blob(repo, layer.digest, source)
            if mounted:
                progress({"status": f"Mounted from {source}", "progressDetail": {}, "id": shown})
                return
            location = opened or location
        report = throttled(progress, "Pushing", shown, layer.size, stop)
        _upload(service, registry, repo, layer, location, report)
        progress({"status": "Pushed", "progressDetail": {}, "id": shown})

    run_all([lambda stop, layer=layer, shown=shown: push_layer(layer, shown, stop) for layer, shown in layers],
            UPLOADS)

    config = manifest.config
    if registry.blob_size(repo, config.digest) is None:
        location = None
        for source in sources.get(config.digest, [])[:MOUNT_SOURCES]:
            mounted, location = registry.mount_blob(repo, config.digest, source)
            if mounted:
                break
        else:
            _upload(service, registry, repo, config, location, None)

    digest = registry.put_manifest(repo, tag, manifest_raw, record.manifest_type)
    size = len(manifest_raw)
    progress({"status": f"{tag}: digest: {digest} size: {size}"})
    progress({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}})

    with service._lock:
        if service.store.get(image_id) is not None:
            service.store.set_ref(str(Reference(repository.domain, repo, None, digest)), image_id, kind="digest")
    attributes = dict(service._config(record).labels)
    attributes["name"] = repository.familiar_name
    service.emit("push", Reference(repository.domain, repo, tag).familiar(), **attributes)
    return tag, digest, size


def _upload(service, registry: Registry, repo: str, blob: Descriptor, location: str | None,
            report: Callable[[int], None] | None) -> None:
    size = service.content.size(blob.digest)
    if size != blob.size:
        raise NotFound(f"blob {blob.digest} in the content store has {size} bytes, its descriptor says {blob.size}")
    registry.upload_blob(repo, blob.digest, size, _chunks(service, blob.digest, report), location)


def _chunks(service, digest: str, report: Callable[[int], None] | None) -> Iterator[bytes]:
    done = 0
    with service.content.open(digest) as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return
            done += len(chunk)
            if report is not None:
                report(done)
            yield chunk
