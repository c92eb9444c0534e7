"""The image service: everything the Engine API's /images routes (and `system df`,
and later containers) ask of images.

Methods take and return plain values (the frozen dataclasses below) and raise
`dockyard.errors` kinds with Docker's wording where clients depend on it
(`No such image: …` for NotFound).  The `*_json` functions at the end build
the exact Docker Engine API shapes from those values, for the API routes.

Events: every change calls `emit(type, action, actor_id, attributes)`, e.g.
`emit("image", "tag", "sha256:…", {"name": "bb:latest"})`; actions are pull,
push, tag, untag, delete, load, import, save (pull and push name the reference,
not the ID, as dockerd does).  A callable taking three positional parameters is
called as `emit(action, actor_id, attributes)` instead.

What it keeps under the data root (each tree drawn in full by the module that
builds it):

    <data-root>/
      content/    blobs by digest, plus the ingest directory   (content.local)
      images/     images.db: images, names, layers, leases     (images.store)
      snapshots/  overlay/ or native/: unpacked layers and     (snapshots.base,
                  containers' writable layers                    .overlay, .native)

Concurrency: methods may be called from several threads.  Imports stage and
unpack without holding the service lock; committing an image, removing one
and collecting garbage take it, and an import claims the snapshots it is
creating so a collection running meanwhile leaves them alone.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, BinaryIO

from ..content import LocalContentStore, short_id
from ..errors import Conflict, InvalidArgument, NotFound, Unavailable
from ..images import gc
from ..images.archive import SaveImage, manifest_of, read_archive, write_archive
from ..images.formats import ImageConfig, parse_config
from ..images.ocilayout import oci_entry, read_layout, write_layout
from ..images.reference import Reference, is_full_id, is_id_prefix, parse, parse_repository_tag
from ..images.rootfs import now_rfc3339, stage_rootfs
from ..images.staging import StagedImage, Staging
from ..images.store import ImageRecord, ImageStore
from ..images.unpack import EXTRACT_PREFIX, LayerSource, Prefetch, unpack_layers
from ..images.views import (  # noqa: F401  (re-exported for the daemon and tests)
    Deletion,
    DiskUsage,
    HistoryEntry,
    ImageDetails,
    ImageSummary,
    PruneReport,
    StorageInfo,
    deletions_json,
    df_json,
    history_json,
    inspect_json,
    prune_json,
    summary_json,
)
from ..snapshots import Kind, Mount, Snapshotter, chain_ids, open_snapshotter

if TYPE_CHECKING:
    from ..remotes import AuthConfig

Emit = Callable[[str, str, str, dict], None]

# -- filters ------------------------------------------------------------------------------


def normalize_filters(filters) -> dict[str, list[str]]:
    """Both filter shapes clients send (§1.5): {"k": ["v"]} and {"k": {"v": true}}."""
    out: dict[str, list[str]] = {}
    for key, values in (filters or {}).items():
        if isinstance(values, str):
            values = [values]
        elif isinstance(values, Mapping):
            values = [v for v, on in values.items() if on]
        out[key] = [str(v) for v in values]
    return out


def _bool_filter(values: list[str], key: str) -> bool:
    results = set()
    for v in values:
        low = v.lower()
        if low in ("true", "1"):
            results.add(True)
        elif low in ("false", "0"):
            results.add(False)
        else:
            raise InvalidArgument(f"Invalid filter '{key}={v}'")
    if len(results) > 1:
        raise InvalidArgument(f"Invalid filter '{key}': conflicting values")
    return results.pop()


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATIONS = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_timestamp(value: str, now: float | None = None) -> float:
    """Docker's `until`/`since` values: a Go duration ("24h", "1h30m"), Unix seconds, or RFC 3339."""
    now = datetime.datetime.now(datetime.UTC).timestamp() if now is None else now
    text = value.strip()
    if _DURATIONS.fullmatch(text):
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
        return now - seconds
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        parsed = datetime.datetime.fromisoformat(_trim_nanos(text).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid timestamp {value!r}: use a duration (24h), Unix seconds or "
                              f"RFC 3339") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _trim_nanos(text: str) -> str:
    # Python parses at most microseconds; Docker writes nanoseconds.
    return re.sub(r"(\.\d{6})\d+", r"\1", text)


def created_seconds(created: str) -> int:
    if not created:
        return 0
    try:
        return int(parse_timestamp(created))
    except InvalidArgument:
        return 0


# -- the service ----------------------------------------------------------------------------


class ImageService:
    """Images on one data root.  `ImageService(data_root, emit=None, snapshotter=None)`.

    `snapshotter` names one ("overlay", "native"); by default the best the
    host supports is chosen, when first needed (listing never needs one).
    Set `container_running` to a callable telling whether the container
    holding a lease is running (rmi's conflict messages depend on it).
    """

    def __init__(self, data_root: str, emit: Emit | None = None, snapshotter: str | None = None):
        self.data_root = data_root
        os.makedirs(data_root, exist_ok=True)
        self.content = LocalContentStore(data_root)
        self.store = ImageStore(data_root)
        self._emit = emit
        self._emit_with_type = emit is not None and _positional_params(emit) >= 4
        self._snapshotter_name = snapshotter
        self._snapshotter: Snapshotter | None = None
        self._lock = threading.RLock()
        self._claimed: Counter[str] = Counter()
        self.container_running: Callable[[str], bool] = lambda holder: False

    # -- plumbing ----------------------------------------------------------------------

    @property
    def snapshotter(self) -> Snapshotter:
        if self._snapshotter is None:
            with self._lock:
                if self._snapshotter is None:
                    snap = open_snapshotter(self.data_root, self._snapshotter_name)
                    _remove_stale_extracts(snap)
                    self._snapshotter = snap
        return self._snapshotter

    @property
    def driver_name(self) -> str:
        """"overlay2"-style storage driver name for `info` / inspect."""
        return "overlay2" if self.snapshotter.name == "overlayfs" else "vfs"

    def emit(self, action: str, image_id: str, **attributes) -> None:
        if self._emit is None:
            return
        if self._emit_with_type:
            self._emit("image", action, image_id, attributes)
        else:
            self._emit(action, image_id, attributes)

    def close(self) -> None:
        pass

    # -- names -------------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        """The image ID `name` refers to (name[:tag], name@digest, sha256:id, id, id prefix)."""
        if not isinstance(name, str) or not name:
            raise NotFound("No such image: ")
        if name.startswith("sha256:"):
            hexpart = name[7:]
            if is_id_prefix(hexpart):
                ids = self.store.ids_with_prefix(hexpart)
                if len(ids) == 1:
                    return ids[0]
            raise NotFound(f"No such image: {name}")
        if is_full_id(name) and self.store.get("sha256:" + name):
            return "sha256:" + name
        ref = None
        try:
            ref = parse(name)
        except InvalidArgument:
            if not is_id_prefix(name):
                raise
        if ref is not None:
            found = self._lookup_ref(ref)
            if found:
                return found
        if is_id_prefix(name):
            ids = self.store.ids_with_prefix(name)
            if len(ids) == 1:
                return ids[0]
        shown = ref.with_default_tag().familiar() if ref is not None else name
        raise NotFound(f"No such image: {shown}")

    def _lookup_ref(self, ref: Reference) -> str | None:
        if ref.digest is None:
            return self.store.ref(str(ref.with_default_tag()))
        by_name = self.store.ref(str(Reference(ref.domain, ref.path, None, ref.digest)))
        if by_name:
            return by_name
        # name@<manifest digest> of an image that carries that repository name.
        for image_id, refs in self.store.all_refs().items():
            record = self.store.get(image_id)
            if record and record.manifest == ref.digest and any(
                    n.split("@", 1)[0].rsplit(":", 1)[0] == ref.name for n, _ in refs):
                return image_id
        return None

    def _names(self, image_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        tags, digests = [], []
        for name, kind in self.store.refs_of(image_id):
            familiar = parse(name).familiar()
            (tags if kind == "tag" else digests).append(familiar)
        return tuple(tags), tuple(digests)

    def _record(self, name: str) -> ImageRecord:
        record = self.store.get(self.resolve(name))
        if record is None:
            raise NotFound(f"No such image: {name}")
        return record

    def _config(self, record: ImageRecord) -> ImageConfig:
        try:
            return parse_config(self.content.read(record.id))
        except NotFound:
            raise Unavailable(f"the config blob of image {record.id} is missing from the content store") from None

    # -- queries ---------------------------------------------------------------------------

    def list(self, filters=None, all: bool = False) -> list[ImageSummary]:
        """`GET /images/json`: filters dangling, label, before, since, reference (and until)."""
        filters = normalize_filters(filters)
        for key in filters:
            if key not in ("dangling", "label", "before", "since", "reference", "until"):
                raise InvalidArgument(f"Invalid filter '{key}'")
        dangling = _bool_filter(filters["dangling"], "dangling") if filters.get("dangling") else None
        before = [self._created_of(v) for v in filters.get("before", [])]
        since = [self._created_of(v) for v in filters.get("since", [])]
        until = [parse_timestamp(v) for v in filters.get("until", [])]
        refs = self.store.all_refs()
        out = []
        for record in self.store.all():
            tags, digests = self._split_refs(refs.get(record.id, []))
            if dangling is not None and dangling != (not tags):
                continue
            if not all and not tags and not digests and self.store.children(record.id):
                continue  # an intermediate image
            if not _labels_match(record.labels, filters.get("label", [])):
                continue
            created = created_seconds(record.created)
            if any(created >= b for b in before) or any(created <= s for s in since):
                continue
            if any(created >= u for u in until):
                continue
            patterns = filters.get("reference", [])
            if patterns and not _reference_match(tags, digests, patterns):
                continue
            out.append(self._summary(record, tags, digests))
        out.sort(key=lambda s: (-s.created, s.id))
        return out

    def _created_of(self, name: str) -> int:
        return created_seconds(self._record(name).created)

    @staticmethod
    def _split_refs(refs: list[tuple[str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        tags = tuple(parse(n).familiar() for n, kind in refs if kind == "tag")
        digests = tuple(parse(n).familiar() for n, kind in refs if kind != "tag")
        return tags, digests

    def _summary(self, record: ImageRecord, tags, digests, shared: int = -1, containers: int = -1) -> ImageSummary:
        return ImageSummary(record.id, record.parent, tags, digests, created_seconds(record.created),
                            record.size, record.labels, shared, containers)

    def inspect(self, name: str) -> ImageDetails:
        record = self._record(name)
        cfg = self._config(record)
        data = cfg.data
        tags, digests = self._names(record.id)
        driver, driver_data = self._graph_driver(record)
        return ImageDetails(
            id=record.id, repo_tags=tags, repo_digests=digests, parent=record.parent,
            comment=data.get("comment") or "", created=data.get("created") or "",
            container=data.get("container") or "", container_config=data.get("container_config") or {},
            docker_version=data.get("docker_version") or "", author=data.get("author") or "",
            config=cfg.config, architecture=data.get("architecture") or "", variant=data.get("variant") or "",
            os=data.get("os") or "", os_version=data.get("os.version") or "", size=record.size,
            layers=cfg.diff_ids, last_tag_time=record.last_tag_time, graph_driver=driver,
            graph_driver_data=driver_data, manifest_digest=record.manifest)

    def _graph_driver(self, record: ImageRecord) -> tuple[str, dict]:
        if self._snapshotter is None and not record.layers:
            return "", {}
        try:
            snap = self.snapshotter
        except Exception:  # no usable snapshotter on this host: still answer inspect
            return "", {}
        if not record.layers:
            return self.driver_name, {}
        paths = []
        for layer in record.layers:
            try:
                paths.append(snap.content_dir(layer.chain_id))
            except NotFound:
                return self.driver_name, {}
        data = {"UpperDir": paths[-1], "MergedDir": "", "WorkDir": ""}
        if len(paths) > 1:
            data["LowerDir"] = ":".join(reversed(paths[:-1]))
        return self.driver_name, data

    def history(self, name: str) -> list[HistoryEntry]:
        record = self._record(name)
        cfg = self._config(record)
        tags, _ = self._names(record.id)
        sizes = [layer.size for layer in record.layers]
        entries = []
        history = cfg.history or [{"created": cfg.created, "created_by": ""} for _ in record.layers] or \
            [{"created": cfg.created}]
        layer_index = 0
        for item in history:
            empty = bool(item.get("empty_layer"))
            size = 0
            if not empty and layer_index < len(sizes):
                size = sizes[layer_index]
                layer_index += 1
            entries.append(HistoryEntry("<missing>", created_seconds(item.get("created") or ""),
                                        item.get("created_by") or "", (), size, item.get("comment") or ""))
        entries.reverse()
        top = entries[0]
        entries[0] = HistoryEntry(record.id, top.created, top.created_by, tags, top.size, top.comment)
        return entries

    # -- tags ------------------------------------------------------------------------------

    def tag(self, source: str, repo: str, tag: str | None = None) -> str:
        """Give image `source` the name `repo[:tag]`; returns the familiar name (`apxlast:1`)."""
        image_id = self.resolve(source)
        ref = parse_repository_tag(repo, tag)
        with self._lock:
            self.store.set_ref(str(ref), image_id)
            self.store.set_last_tag_time(image_id, now_rfc3339())
        self.emit("tag", image_id, name=ref.familiar())
        return ref.familiar()

    # -- removal ---------------------------------------------------------------------------

    def remove(self, name: str, force: bool = False, noprune: bool = False) -> list[Deletion]:
        """`docker rmi`: untag and/or delete, with Docker's conflict rules and messages."""
        with self._lock:
            image_id = self.resolve(name)
            records: list[Deletion] = []
            refs = self.store.refs_of(image_id)
            by_id = name.startswith("sha256:") or (is_id_prefix(name) and image_id[7:].startswith(name)
                                                   and not any(parse(n).familiar_name == name for n, _ in refs))
            holders = self.store.leases_of(image_id)
            if not by_id:
                ref = parse(name)
                ref = ref if ref.digest else ref.with_default_tag()
                full = str(ref)
                if full not in {n for n, _ in refs}:
                    raise NotFound(f"No such image: {ref.familiar()}")
                if len(refs) == 1 and holders and not force:
                    raise Conflict(
                        f"conflict: unable to remove repository reference \"{name}\" (must force) - container "
                        f"{short_id(holders[0])} is using its referenced image {short_id(image_id)}")
                remaining = [(n, k) for n, k in refs if n != full]
                if ref.digest is None and not any(k == "tag" and _repo_of(n) == ref.name for n, k in remaining):
                    # The repository's last tag goes: its digest references go with it.
                    dropped = [(n, k) for n, k in remaining if k != "tag" and _repo_of(n) == ref.name]
                else:
                    dropped = []
                if len(remaining) == len(dropped):
                    # The image itself will go: refuse now, before anything is untagged.
                    self._check_delete(image_id, force, holders)
                self._untag(image_id, [full] + [n for n, _ in dropped], records)
                if len(remaining) > len(dropped):
                    return records
            else:
                if len(refs) > 1 and not force and not _single_reference(refs):
                    raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be forced) - image is "
                                   f"referenced in multiple repositories")
                self._check_delete(image_id, force, holders)
                self._untag(image_id, [n for n, _ in refs], records)
            records.extend(self._delete_image(image_id, noprune))
            return records

    def _untag(self, image_id: str, names: list[str], records: list[Deletion]) -> None:
        for name in names:
            self.store.delete_ref(name)
            familiar = parse(name).familiar()
            records.append(Deletion("Untagged", familiar))
            self.emit("untag", image_id, name=familiar)

    def _check_delete(self, image_id: str, force: bool, holders: list[str]) -> None:
        if self.store.children(image_id):
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (cannot be forced) - image has "
                           f"dependent child images")
        for holder in holders:
            if self.container_running(holder):
                raise Conflict(f"conflict: unable to delete {short_id(image_id)} (cannot be forced) - image is "
                               f"being used by running container {short_id(holder)}")
        if holders and not force:
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be forced) - image is being "
                           f"used by stopped container {short_id(holders[0])}")

    def _delete_image(self, image_id: str, noprune: bool) -> list[Deletion]:
        record = self.store.get(image_id)
        self.store.delete_image(image_id)
        self.emit("delete", image_id)
        records = [Deletion("Deleted", image_id)]
        records.extend(Deletion("Deleted", key) for key in self._collect()[0])
        if not noprune and record and record.parent:
            parent = self.store.get(record.parent)
            if parent and not self.store.refs_of(parent.id) and not self.store.children(parent.id) \
                    and not self.store.leases_of(parent.id):
                records.extend(self._delete_image(parent.id, noprune))
        return records

    def _collect(self) -> tuple[list[str], int]:
        """Remove blobs and snapshots nothing uses; returns (removed snapshot keys, bytes freed)."""
        with self._lock:
            referenced = self.store.referenced_blobs()
            freed = 0
            for digest in gc.dead_blobs((d for d, _ in self.content.walk()), referenced):
                freed += self.content.delete(digest)
            removed: list[str] = []
            snap = self._snapshotter
            if snap is None:
                try:
                    snap = self.snapshotter
                except Exception:
                    return removed, freed
            nodes = [gc.SnapshotNode(i.key, i.parent, i.kind is Kind.COMMITTED) for i in snap.walk()]
            referenced = self.store.referenced_chains()
            # An image's init layer lives as long as the image does.
            chains = referenced | {init_layer_name(c) for c in referenced} | {init_layer_name(None)} \
                | self.store.leased_snapshots()
            for key in gc.dead_snapshots(nodes, chains, set(self._claimed)):
                try:
                    freed += snap.usage(key).size
                    snap.remove(key)
                    removed.append(key)
                except (Conflict, NotFound):
                    continue
            return removed, freed

    def prune(self, filters=None) -> PruneReport:
        """`docker image prune`: filters dangling (default true), until, label, label!=."""
        filters = normalize_filters(filters)
        for key in filters:
            if key not in ("dangling", "until", "label", "label!="):
                raise InvalidArgument(f"Invalid filter '{key}'")
        dangling_only = _bool_filter(filters["dangling"], "dangling") if filters.get("dangling") else True
        until = [parse_timestamp(v) for v in filters.get("until", [])]
        deleted: list[Deletion] = []
        freed = 0
        with self._lock:
            leases = self.store.lease_counts()
            refs = self.store.all_refs()
            for record in self.store.all():
                if leases.get(record.id) or self.store.children(record.id):
                    continue
                tags, _ = self._split_refs(refs.get(record.id, []))
                if dangling_only and tags:
                    continue
                created = created_seconds(record.created)
                if any(created >= u for u in until):
                    continue
                if not _labels_match(record.labels, filters.get("label", [])):
                    continue
                if filters.get("label!=") and _labels_match(record.labels, filters["label!="], any_of=True):
                    continue
                self._untag(record.id, [name for name, _ in refs.get(record.id, [])], deleted)
                sizes = {layer.chain_id: layer.size for layer in record.layers}
                self.store.delete_image(record.id)
                self.emit("delete", record.id)
                deleted.append(Deletion("Deleted", record.id))
                removed, _ = self._collect()
                for key in removed:
                    deleted.append(Deletion("Deleted", key))
                    freed += sizes.get(key, 0)
        return PruneReport(tuple(deleted), freed)

    # -- imports ------------------------------------------------------------------------------

    def load(self, stream: BinaryIO, quiet: bool = False) -> Iterator[dict]:
        """`docker load`: a generator of JSON stream messages (§3.4); errors raise from it.

        Nothing is stored unless the whole archive is valid and every layer unpacked.
        """
        with Staging(self.content) as staging, Prefetch(self.snapshotter, self._layer_known) as prefetch:
            images = read_archive(stream, staging, prefetch.offer)
            messages = []
            self.store_staged(staging, images, messages_out=messages, quiet=quiet, prefetch=prefetch)
        for image, moved in messages:
            for old_id, name in moved:
                yield {"stream": f"The image {name} already exists, renaming the old one with ID {old_id} to "
                                 f"empty string\n"}
            if not quiet:
                for layer in image.layers:
                    size = layer.size
                    yield {"status": "Loading layer", "progressDetail": {"current": size, "total": size},
                           "progress": _progress_bar(size, size), "id": short_id(layer.digest)}
            if image.names:
                for ref in image.names:
                    yield {"stream": f"Loaded image: {ref.familiar()}\n"}
            else:
                yield {"stream": f"Loaded image ID: {image.id}\n"}

    def import_rootfs(self, stream: BinaryIO, repo: str | None = None, tag: str | None = None,
                      changes: Sequence[str] = (), message: str = "") -> str:
        """`docker import`: a rootfs tarball (plain, gzip, zstd) -> a new image; returns its ID."""
        names = (parse_repository_tag(repo, tag),) if repo else ()
        with Staging(self.content) as staging:
            image = stage_rootfs(stream, staging, changes, message, names)
            self.store_staged(staging, [image], action="import")
        return image.id

    def import_oci_layout(self, directory: str, name: str | None = None, ref: str | None = None) -> list[str]:
        """Import the images of an OCI layout (only the one tagged `ref`, when given).

        `name` (repo[:tag]) names the imported image; without it, the names the
        layout's annotations give are used.
        """
        target = parse(name).with_default_tag() if name else None
        with Staging(self.content) as staging, Prefetch(self.snapshotter, self._layer_known) as prefetch:
            images = read_layout(directory, staging, ref)
            if target is not None:
                if len(images) != 1:
                    raise InvalidArgument(f"the layout holds {len(images)} images; choose one with a ref")
                images = [StagedImage(images[0].config, images[0].config_digest, images[0].manifest,
                                      images[0].manifest_type, images[0].layers, (target,))]
            self.store_staged(staging, images, action="load", prefetch=prefetch)
        return [image.id for image in images]

    # -- registries (the bulk lives in daemon/pull.py and daemon/push.py) ----------------------

    def pull(self, ref: str | Reference, auth: AuthConfig | None = None, platform: str | None = None,
             progress: Callable[[dict], None] | None = None, all_tags: bool = False) -> list[str]:
        """Pull `ref` from its registry (`progress` gets dockerd's JSON messages); the image IDs pulled."""
        from ..remotes.platforms import parse_platform
        from .pull import pull

        ref = parse(ref) if isinstance(ref, str) else ref
        if not all_tags:
            ref = ref.with_default_tag()
        return pull(self, ref, auth, parse_platform(platform) if platform else None, progress, all_tags)

    def push(self, ref: str, tag: str | None = None, auth: AuthConfig | None = None,
             progress: Callable[[dict], None] | None = None) -> list[tuple[str, str, int]]:
        """Push `ref` (every tag of the repository when it names none and `tag` is empty)."""
        from .push import push

        return push(self, ref, tag, auth, progress)

    def login(self, auth: AuthConfig) -> None:
        """`POST /auth`: check the credentials against the registry they are for."""
        from ..remotes import login

        login(auth)

    def _layer_known(self, digest: str) -> bool:
        """Whether the layer stored as blob `digest` is unpacked already (by some image)."""
        return self.store.has_layer_blob(digest)

    def store_staged(self, staging: Staging, images: list[StagedImage], action: str = "load",
                     messages_out: list | None = None, quiet: bool = False, prefetch: Prefetch | None = None,
                     on_layer: Callable | None = None,
                     event: Callable[[StagedImage], tuple[str, dict] | None] | None = None,
                     parents: dict[str, str] | None = None) -> None:
        """Unpack, then store the staged images and their names, atomically as seen from outside.

        The one way images enter the store (load, import, OCI layouts, commit,
        pull, later build): blobs staged in `staging` are committed only
        after every layer unpacked, and `emit(action, …)` follows each image
        (its actor and attributes from `event(image)` when given, as a pull
        names the reference).  `on_layer(source, fresh)` follows each layer's
        unpacking; an image's `digest_names` become digest references;
        `parents` maps image IDs to their parent image (a build's steps).
        """
        claims = []
        for image in images:
            claims.extend(chain_ids(image.config.diff_ids))
            if prefetch is not None:
                for layer in image.layers:  # those the archive reader did not offer yet (OCI layouts)
                    prefetch.offer(layer.digest, staging.path(layer.digest))
        with self._lock:
            self._claimed.update(claims)
        created: list[str] = []
        try:
            records = []
            for image in images:
                layer_sources = [LayerSource(desc, diff_id, staging.path(desc.digest), True)
                                 for desc, diff_id in zip(image.layers, image.config.diff_ids, strict=True)]
                layers = unpack_layers(self.snapshotter, layer_sources, created, self.store.layer_sizes,
                                       on_layer=on_layer, prefetch=prefetch)
                records.append(ImageRecord(
                    image.id, image.manifest_digest, image.manifest_type, image.config.created,
                    sum(layer.size for layer in layers), image.config.labels, tuple(layers),
                    parent=(parents or {}).get(image.id, "")))
            with self._lock:
                needed = set()
                for image in images:
                    needed |= {image.id, image.manifest_digest} | {d.digest for d in image.layers}
                staging.commit(keep=needed)
                missing = [d for d in needed if not self.content.exists(d)]
                if missing:
                    raise Unavailable(f"blob {missing[0]} was removed while this image was being imported; "
                                      f"try again")
                for image, record in zip(images, records, strict=True):
                    self.store.add(record, {image.id, image.manifest_digest} | {d.digest for d in image.layers})
                    moved = []
                    tag_time = now_rfc3339()
                    for ref in image.names:
                        old = self.store.set_ref(str(ref), image.id)
                        if old:
                            moved.append((old, ref.familiar()))
                    for ref in image.digest_names:
                        self.store.set_ref(str(ref), image.id, kind="digest")
                    if image.names:
                        self.store.set_last_tag_time(image.id, tag_time)
                    if messages_out is not None:
                        messages_out.append((image, moved))
                    if event is not None:
                        announced = event(image)  # None: no event (a build's steps)
                        if announced is not None:
                            self.emit(action, announced[0], **announced[1])
                    else:
                        self.emit(action, image.id, name=image.names[0].familiar() if image.names else image.id)
        except BaseException:
            with self._lock:
                for key in reversed(created):
                    if key not in self.store.referenced_chains():
                        try:
                            self.snapshotter.remove(key)
                        except (Conflict, NotFound):
                            pass
            raise
        finally:
            with self._lock:
                self._claimed.subtract(claims)
                self._claimed = +self._claimed

    _commit = store_staged  # the name daemon/commit.py first used

    # -- exports ---------------------------------------------------------------------------------

    def _save_images(self, names: Sequence[str]) -> list[SaveImage]:
        chosen: dict[str, list[str]] = {}
        for name in names:
            image_ids: list[tuple[str, str | None]] = []
            try:
                ref = parse(name)
            except InvalidArgument:
                ref = None
            if ref is not None and ref.tag is None and ref.digest is None and \
                    self.store.refs_with_prefix(ref.name + ":"):
                # A bare repository name: every tag of it, as `docker save repo` does.
                for full, image_id in self.store.refs_with_prefix(ref.name + ":"):
                    if "@" not in full:
                        image_ids.append((image_id, parse(full).familiar()))
            else:
                image_id = self.resolve(name)
                tagged = None
                if ref is not None and ref.digest is None and not is_id_prefix(name):
                    tagged = ref.with_default_tag().familiar()
                image_ids.append((image_id, tagged))
            for image_id, tagged in image_ids:
                tags = chosen.setdefault(image_id, [])
                if tagged and tagged not in tags:
                    tags.append(tagged)
        out = []
        for image_id, tags in chosen.items():
            record = self.store.get(image_id)
            cfg = self._config(record)
            manifest = self.content.read(record.manifest)
            parsed = manifest_of(manifest, record.manifest_type)
            out.append(SaveImage(
                image_id, manifest, record.manifest_type, parsed.layers, cfg.diff_ids,
                tuple(layer.tar_size for layer in record.layers), tuple(tags),
                tuple(str(parse(t)) for t in tags), created_seconds(record.created)))
        return out

    def save(self, names: Sequence[str], out: BinaryIO, layout: str = "oci") -> None:
        """`docker save`: write an archive of `names` to `out`, streaming.

        Every name is resolved before the first byte is written, so a NotFound
        can still become an HTTP 404.  `layout`: "oci" (Docker 25+, loads into
        old and new Docker) or "legacy" (Docker <= 24).
        """
        if not names:
            raise InvalidArgument("no image names given to save")
        images = self._save_images(names)
        if layout == "legacy":
            for image in images:
                if not all(image.tar_sizes):
                    raise Unavailable(f"image {image.config_digest} lacks layer sizes for the legacy layout")
        write_archive(out, images, self.content, layout)
        for image in images:
            self.emit("save", image.config_digest, name=image.repo_tags[0] if image.repo_tags else image.config_digest)

    def export_oci_layout(self, name: str, directory: str, ref: str | None = None) -> str:
        """Write image `name` into the OCI layout `directory` (created or added to); returns its ref name.

        The ref name (the layout's tag) is `ref`, else the tag of `name`, else "latest".
        """
        image_id = self.resolve(name)
        record = self.store.get(image_id)
        manifest = self.content.read(record.manifest)
        parsed = manifest_of(manifest, record.manifest_type)
        full = None
        try:
            parsed_name = parse(name)
            if parsed_name.digest is None and not is_full_id(name):
                tagged = parsed_name.with_default_tag()
                full = str(tagged)
                ref = ref or tagged.tag
        except InvalidArgument:
            pass
        ref = ref or "latest"
        write_layout(directory, [oci_entry(manifest, record.manifest_type, parsed, ref, full)], self.content)
        self.emit("save", image_id, name=name)
        return ref

    # -- disk usage ------------------------------------------------------------------------------

    def disk_usage(self) -> DiskUsage:
        """For `system df`: total layer size, and each image with shared size and container count."""
        users = self.store.chain_users()
        leases = self.store.lease_counts()
        refs = self.store.all_refs()
        sizes: dict[str, int] = {}
        summaries = []
        for record in self.store.all():
            shared = 0
            for layer in record.layers:
                sizes[layer.chain_id] = layer.size
                if users.get(layer.chain_id, 0) > 1:
                    shared += layer.size
            tags, digests = self._split_refs(refs.get(record.id, []))
            summaries.append(self._summary(record, tags, digests, shared, leases.get(record.id, 0)))
        summaries.sort(key=lambda s: (-s.created, s.id))
        return DiskUsage(sum(sizes.values()), tuple(summaries), dict(leases))

    def storage_info(self) -> StorageInfo:
        """For `GET /info`: how many images, and the storage driver in Docker's terms."""
        count = self.store.count()
        try:
            snap = self.snapshotter
        except Exception as err:  # still answer /info on a host where no snapshotter works
            return StorageInfo(count, "none", (("Error", str(err)),))
        backing = _filesystem_name(self.data_root)
        if snap.name == "overlayfs":
            status = (("Backing Filesystem", backing), ("Supports d_type", "true"),
                      ("Native Overlay Diff", "true"), ("userxattr", "false"))
            return StorageInfo(count, "overlay2", status)
        return StorageInfo(count, "vfs", (("Backing Filesystem", backing),))

    # -- containers ------------------------------------------------------------------------------

    def mounts_for_container(self, image: str, container_key: str, init_layer: bool = False) -> list[Mount]:
        """Prepare a writable snapshot `container_key` on top of `image` (and of its init layer, for a
        container); returns the mounts to make.

        Also records a lease: the image counts as used by the container until
        `release_container(container_key)`.
        """
        with self._lock:
            record = self._record(image)
            self.store.add_lease(container_key, record.id, container_key)
            try:
                parent = self._init_layer(record.top_chain) if init_layer else record.top_chain
                return self.snapshotter.prepare(container_key, parent, {"dockyard.image": record.id})
            except BaseException:
                self.store.remove_lease(container_key)
                raise

    def _init_layer(self, top_chain: str | None) -> str:
        """The committed snapshot between an image and its containers' writable layers: dockerd's init
        layer (`write_init_layer`), one per image, kept while the image is (called with the lock)."""
        name = init_layer_name(top_chain)
        snap = self.snapshotter
        if snap.exists(name):
            return name
        key = name + "-prepare"
        if snap.exists(key):
            snap.remove(key)  # left by a crash
        snap.prepare(key, top_chain, {"dockyard.init": "true"})
        try:
            write_init_layer(snap.upper_dir(key))
            snap.commit(name, key)
        except BaseException:
            if snap.exists(key):
                snap.remove(key)
            raise
        return name

    def container_mounts(self, container_key: str) -> list[Mount]:
        """The mounts of an existing container snapshot (after a daemon restart, say)."""
        return self.snapshotter.mounts(container_key)

    def container_usage(self, container_key: str) -> int:
        """Bytes the container wrote (its SizeRw)."""
        return self.snapshotter.usage(container_key).size

    def container_graph_data(self, container_key: str) -> dict:
        """inspect's GraphDriver.Data of a container snapshot: overlay's LowerDir, UpperDir, WorkDir."""
        names = {"lowerdir": "LowerDir", "upperdir": "UpperDir", "workdir": "WorkDir"}
        data = {}
        for m in self.snapshotter.mounts(container_key):
            if m.type == "overlay":
                for option in m.options:
                    key, _, value = option.partition("=")
                    if key in names:
                        data[names[key]] = value
        return data

    def image_size(self, image: str) -> int:
        """The image's Size (a container's SizeRootFs is it plus what the container wrote)."""
        return self._record(image).size

    def container_upper_dir(self, container_key: str) -> str:
        return self.snapshotter.upper_dir(container_key)

    def release_container(self, container_key: str) -> None:
        """Remove the container's snapshot (the caller unmounted it) and its lease; free what is unused."""
        with self._lock:
            if self.snapshotter.exists(container_key):
                self.snapshotter.remove(container_key)
            self.store.remove_lease(container_key)
            self._collect()

    def add_lease(self, holder: str, image: str) -> str:
        """Mark `image` as used by `holder` without a snapshot; returns the image ID."""
        image_id = self.resolve(image)
        self.store.add_lease(holder, image_id)
        return image_id

    def remove_lease(self, holder: str) -> None:
        with self._lock:
            self.store.remove_lease(holder)
            self._collect()


# -- helpers -------------------------------------------------------------------------------------


def _remove_stale_extracts(snap: Snapshotter) -> None:
    for info in list(snap.walk()):
        if info.kind is Kind.ACTIVE and info.key.startswith(EXTRACT_PREFIX):
            pid = info.key[len(EXTRACT_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                try:
                    snap.remove(info.key)
                except (Conflict, NotFound):
                    pass


def _positional_params(fn) -> int:
    import inspect
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 4
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 4
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _filesystem_name(path: str) -> str:
    """The type of the filesystem holding `path`, in Docker's words ("extfs", "xfs", …)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                point = fields[1]
                if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        pass
    return {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}.get(kind, kind)


def _repo_of(full: str) -> str:
    name = full.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _single_reference(refs: list[tuple[str, str]]) -> bool:
    """Docker's isSingleReference: one tag, plus only digest references of that same repository."""
    tags = [n for n, k in refs if k == "tag"]
    digests = {_repo_of(n) for n, k in refs if k != "tag"}
    if len(tags) > 1:
        return False
    single = tags[0] if tags else refs[0][0]
    return len(digests) == 1 and _repo_of(single) in digests


def _labels_match(labels: dict, conditions: list[str], any_of: bool = False) -> bool:
    if not conditions:
        return True
    labels = labels or {}
    results = []
    for cond in conditions:
        key, sep, value = cond.partition("=")
        results.append(key in labels and (not sep or labels[key] == value))
    return any(results) if any_of else all(results)


def _reference_match(tags: Iterable[str], digests: Iterable[str], patterns: list[str]) -> bool:
    for pattern in patterns:
        for name in list(tags) + list(digests):
            repo = name.split("@", 1)[0]
            repo = repo[:repo.rfind(":")] if repo.rfind(":") > repo.rfind("/") else repo
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(repo, pattern):
                return True
            # Docker also matches the fully qualified name (`docker.io/library/bb`).
            try:
                full = parse(name)
            except InvalidArgument:
                continue
            if fnmatch.fnmatchcase(str(full), pattern) or fnmatch.fnmatchcase(full.name, pattern):
                return True
    return False


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}"


def _progress_bar(current: int, total: int, width: int = 50) -> str:
    filled = width if total <= 0 else min(width, current * width // total)
    bar = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (width - filled)
    return f"[{bar}]  {_human(current)}/{_human(total)}"


# --- the init layer ----------------------------------------------------------------------------------

# What dockerd's init layer holds (daemon/initlayer): mount points the engine and the runtime bind
# or mount over, and /.dockerenv. Being a layer of its own, it shows in `export` but never in a
# container's `diff` or `commit`. Files are empty and 0755 as dockerd makes them.
INIT_LAYER = (("dev/pts", "dir"), ("dev/shm", "dir"), ("proc", "dir"), ("sys", "dir"), (".dockerenv", "file"),
              ("etc/resolv.conf", "file"), ("etc/hosts", "file"), ("etc/hostname", "file"),
              ("dev/console", "file"), ("etc/mtab", "/proc/mounts"))


def init_layer_name(top_chain: str | None) -> str:
    return f"{top_chain or 'scratch'}-init"


def write_init_layer(root: str) -> None:
    """Write the init layer's entries under `root` (a writable snapshot's own directory)."""
    def make_dir(path: str) -> None:
        if os.path.isdir(path):
            return
        if os.path.lexists(path):
            os.unlink(path)
        os.mkdir(path)
        os.chmod(path, 0o755)  # whatever the daemon's umask

    for path, kind in INIT_LAYER:
        target = os.path.join(root, path)
        parts = path.split("/")
        for depth in range(1, len(parts)):
            make_dir(os.path.join(root, *parts[:depth]))
        if kind == "dir":
            make_dir(target)
            continue
        if os.path.lexists(target) and not os.path.isdir(target):
            os.unlink(target)  # a copying snapshotter brought the image's file along: the layer's wins
        if kind == "file":
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))
            os.chmod(target, 0o755)
        else:
            os.symlink(kind, target)
