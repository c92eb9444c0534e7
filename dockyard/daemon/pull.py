"""Pull: an image from its registry into the store, through staging, with dockerd's progress messages.

    ping the registry (GET /v2/: scheme, auth challenge)   errors so far are HTTP errors
    resolve the tag or digest (HEAD manifests/<ref>)
    fetch the manifest; an index -> the platform's manifest
    "Pulling from apx/img"                                  the stream starts here
    the config; each layer: present -> "Already exists", else "Pulling fs layer",
    then (three at a time) "Downloading" … "Verifying Checksum" "Download complete"
    store_staged: unpack ("Extracting", "Pull complete"), commit, name, event
    "Digest: sha256:…"  "Status: Downloaded newer image for …" | "Status: Image is up to date for …"

Every blob goes through `Staging`: verified against its size and digest while
it is written to the ingest directory, and committed only once the whole image
unpacked, so a failure (digest mismatch, short blob, refused credentials)
leaves nothing behind.  An image whose config is already stored is not
downloaded again (dockerd's shortcut): it keeps the manifest and blobs it was
stored with, and only its names are updated.

The image gets the tag pulled (none for a pull by digest) and its repository
digest `name@<digest resolved>`, the index's digest for a multi-platform image,
as dockerd records it.  Events: `pull` with the reference as the actor, as dockerd.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from ..content import Descriptor, short_id
from ..errors import EngineError, InvalidArgument
from ..images.archive import manifest_of
from ..images.formats import Index, Manifest, Platform, parse_config, parse_manifest_or_index
from ..images.reference import Reference
from ..images.staging import StagedImage, Staging
from ..images.unpack import Prefetch
from ..remotes import AuthConfig, Registry
from ..remotes.platforms import choose_manifest

Progress = Callable[[dict], None]

DOWNLOADS = 3       # layers downloaded at once, as dockerd's max-concurrent-downloads
PROGRESS_EVERY = 0.1  # seconds between two "Downloading"/"Pushing" messages of one layer


def pull(service, ref: Reference, auth: AuthConfig | None = None, platform: Platform | None = None,
         progress: Progress | None = None, all_tags: bool = False) -> list[str]:
    """Pull `ref` (every tag of its repository with `all_tags`); returns the image IDs pulled."""
    progress = progress or (lambda message: None)
    with Registry(ref.domain, auth) as registry:
        registry.discover()
        if not all_tags:
            image_id, updated = _pull_one(service, registry, ref, platform, progress)
            _status(progress, ref.familiar(), updated)
            return [image_id]
        tags = registry.tags(ref.path)
        if not tags:
            raise InvalidArgument(f"no tags found for {ref.familiar_name}")
        ids, any_updated = [], False
        for tag in tags:
            image_id, updated = _pull_one(service, registry, Reference(ref.domain, ref.path, tag), platform,
                                          progress)
            ids.append(image_id)
            any_updated = any_updated or updated
        _status(progress, ref.familiar_name, any_updated)
        return ids


def _status(progress: Progress, shown: str, updated: bool) -> None:
    if updated:
        progress({"status": f"Status: Downloaded newer image for {shown}"})
    else:
        progress({"status": f"Status: Image is up to date for {shown}"})


def _pull_one(service, registry: Registry, ref: Reference, platform: Platform | None,
              progress: Progress) -> tuple[str, bool]:
    repo = ref.path
    resolved = registry.resolve(repo, ref.digest or ref.tag or "latest")
    data = registry.fetch_manifest(repo, resolved)
    parsed = parse_manifest_or_index(data, resolved.media_type)
    if isinstance(parsed, Index):
        entry = choose_manifest(parsed, platform)
        data = registry.fetch_manifest(repo, entry)
        parsed = parse_manifest_or_index(data, entry.media_type)
        if not isinstance(parsed, Manifest):
            raise InvalidArgument(f"the manifest list of {ref.familiar()} points at another manifest list")
    manifest: Manifest = parsed

    progress({"status": f"Pulling from {repo}", "id": ref.tag if ref.digest is None else ref.familiar()})

    config_digest = manifest.config.digest
    stored = service.store.get(config_digest)
    if stored is not None:
        # The image is here (maybe with other blobs: loaded uncompressed, pulled gzip): keep what is
        # stored, add the names.
        data = service.content.read(stored.manifest)
        manifest = manifest_of(data, stored.manifest_type)
        config_raw = service.content.read(config_digest)
    else:
        config_raw = registry.fetch_blob(repo, manifest.config)
    config = parse_config(config_raw)
    if len(config.diff_ids) != len(manifest.layers):
        raise InvalidArgument(f"invalid image {ref.familiar()}: the manifest has {len(manifest.layers)} layers, "
                              f"the config {len(config.diff_ids)} diff ids")

    digest_ref = Reference(ref.domain, ref.path, None, resolved.digest)
    names = (ref,) if ref.digest is None else ()
    before = service.store.ref(str(names[0] if names else digest_ref))
    updated = before != config_digest

    with Staging(service.content) as staging, Prefetch(service.snapshotter, service._layer_known) as prefetch:
        staging.add_bytes(data)
        staging.add_bytes(config_raw, config_digest)
        fetched: set[str] = set()
        if stored is None:
            fetched = _fetch_layers(service, registry, repo, manifest.layers, staging, prefetch, progress)
        announced: set[str] = set()

        def on_layer(source, _fresh: bool) -> None:
            digest = source.descriptor.digest
            if digest in fetched and digest not in announced:
                announced.add(digest)
                size = source.descriptor.size
                progress({"status": "Extracting", "progressDetail": {"current": size, "total": size},
                          "progress": progress_bar(size, size), "id": short_id(digest)})
                progress({"status": "Pull complete", "progressDetail": {}, "id": short_id(digest)})

        shown = ref.familiar()
        attributes = dict(config.labels)
        attributes["name"] = ref.familiar_name
        image = StagedImage(config, config_digest, data, manifest.media_type, manifest.layers, names, (digest_ref,))
        service.store_staged(staging, [image], action="pull", prefetch=prefetch, on_layer=on_layer,
                             event=lambda staged: (shown, attributes))
    progress({"status": f"Digest: {resolved.digest}"})
    return config_digest, updated


def _fetch_layers(service, registry: Registry, repo: str, layers: Sequence[Descriptor], staging: Staging,
                  prefetch: Prefetch, progress: Progress) -> set[str]:
    """Stage every layer blob the content store lacks; returns the digests downloaded."""
    todo: list[Descriptor] = []
    seen: set[str] = set()
    for layer in layers:
        if layer.digest in seen:
            continue
        seen.add(layer.digest)
        if service.content.exists(layer.digest):
            progress({"status": "Already exists", "progressDetail": {}, "id": short_id(layer.digest)})
        else:
            progress({"status": "Pulling fs layer", "progressDetail": {}, "id": short_id(layer.digest)})
            todo.append(layer)

    def download(layer: Descriptor, stop: threading.Event) -> None:
        shown = short_id(layer.digest)
        report = throttled(progress, "Downloading", shown, layer.size, stop)
        with registry.open_blob(repo, layer, report) as stream:
            try:
                staging.add_stream(stream, layer.size, layer.digest)
            except InvalidArgument as err:
                if err.message.startswith("digest mismatch"):
                    raise InvalidArgument(f"filesystem layer verification failed for digest {layer.digest}") \
                        from None
                raise
        progress({"status": "Verifying Checksum", "progressDetail": {}, "id": shown})
        progress({"status": "Download complete", "progressDetail": {}, "id": shown})
        prefetch.offer(layer.digest, staging.path(layer.digest))

    run_all([lambda stop, layer=layer: download(layer, stop) for layer in todo], DOWNLOADS)
    return {layer.digest for layer in todo}


# -- shared with push ------------------------------------------------------------------------


class Stopped(EngineError):
    """Another transfer of the same operation failed: this one gives up."""


def run_all(jobs: Sequence[Callable[[threading.Event], None]], workers: int) -> None:
    """Run `job(stop)` for every job, `workers` at once; on the first failure set `stop`, let the
    others notice it, and raise that failure."""
    if not jobs:
        return
    if len(jobs) == 1:
        jobs[0](threading.Event())
        return
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="dockyard-transfer") as pool:
        futures = [pool.submit(job, stop) for job in jobs]
        wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.done() and not f.cancelled() and f.exception() is not None for f in futures):
            stop.set()
            for future in futures:
                future.cancel()
        wait(futures)
    errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    if errors:
        raise next((e for e in errors if not isinstance(e, Stopped)), errors[0])


def throttled(progress: Progress, status: str, shown: str, total: int,
              stop: threading.Event | None = None) -> Callable[[int], None]:
    """A byte-count callback that sends `status` messages with a bar, at most every PROGRESS_EVERY s."""
    last = [0.0]

    def report(done: int) -> None:
        if stop is not None and stop.is_set():
            raise Stopped("stopped: another transfer failed")
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY or done >= total:
            last[0] = now
            progress({"status": status, "progressDetail": {"current": done, "total": total},
                      "progress": progress_bar(done, total), "id": shown})

    return report


def human_size(n: float) -> str:
    """go-units' HumanSize: four significant digits, decimal units (`3.678kB`, `1.986MB`)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


def progress_bar(current: int, total: int) -> str:
    """The `progress` text of a JSON message, as dockerd renders it (JSONProgress at width 200)."""
    if total <= 0:
        return f"{human_size(current):>8}" if current > 0 else ""
    percent = min(int(current / total * 100) // 2, 50)
    box = f"[{'=' * percent}>{' ' * (50 - percent)}] "
    if current > total:
        return box + f"{human_size(current):>8}"
    return box + f"{human_size(current):>8}/{human_size(total)}"
