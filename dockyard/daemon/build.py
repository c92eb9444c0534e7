"""Builds: the engine's side of `POST /build` (the builder's `BuildWorker`).

The builder (dockyard/builder) runs in a thread of its own per build (it
waits on the event loop for every container operation, so it must not hold
one of the daemon's few worker threads) and asks this module
for what needs the engine: base images (pulled when missing, through the
image service's pull), RUN steps as real containers (the container
service's create/start/logs/wait/remove, Docker's defaults, the default
bridge unless `networkmode` says otherwise), layers from a container's
changes or from files written into a fresh snapshot (COPY/ADD), and new
images through `ImageService.store_staged`, each step's image recording its
parent (so `images` hides them as intermediate images).

    <data-root>/builder/cache/   the layer cache (builder/cache.py)
    <data-root>/builder/tmp/     while a build runs: build-<pid>-*/context (the unpacked context) and
                                 root-<pid>-* (a step's mounted snapshot); snapshots are keyed
                                 build-<pid>-* / build-view-<pid>-*; a later daemon removes what a
                                 dead one left

A client that goes away mid-build stops the step's container (dockerd cancels
the build); its containers are removed whatever `rm` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator

from ..builder.cache import BuildCache
from ..builder.context import BuildContext
from ..builder.dispatch import BuildFailed, BuildOptions, run_build
from ..content import Descriptor
from ..diff import Whiteouts, write_tree
from ..errors import EngineError, NotFound, NotSupported
from ..images.formats import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, build_manifest, canonical_json, parse_config
from ..images.reference import parse_repository_tag
from ..images.staging import StagedImage, Staging
from ..snapshots import mount_all, unmount_all


class BuildService:
    def __init__(self, data_root: str, images, containers):
        self.data_root = data_root
        self.images = images
        self.containers = containers
        self.dir = os.path.join(data_root, "builder")
        self.cache = BuildCache(os.path.join(self.dir, "cache"))
        self.tmp = os.path.join(self.dir, "tmp")
        self._swept = False

    def _sweep(self) -> None:
        """What a daemon that died mid-build left: its mounts and directories under tmp/, its snapshots
        (keys carry the daemon's pid, so a running build of this daemon is never touched)."""
        import shutil

        from ..snapshots import Kind

        mine = f"-{os.getpid()}-"
        for name in os.listdir(self.tmp):
            if mine not in name:
                path = os.path.join(self.tmp, name)
                unmount_all(path)
                shutil.rmtree(path, ignore_errors=True)
        snap = self.images.snapshotter
        for info in list(snap.walk()):
            if info.kind is Kind.ACTIVE and info.key.startswith(("build-", "build-view-")) and mine not in info.key:
                with contextlib.suppress(EngineError):
                    snap.remove(info.key)

    async def messages(self, body, options: BuildOptions, auth: dict | None = None) -> AsyncIterator[dict]:
        """Run a build in a thread of its own (it lasts long and waits on the loop often: it must not
        hold one of the daemon's few worker threads) and yield its messages; its error is raised here."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(8)
        gone = threading.Event()
        done = object()
        failure: list[BaseException] = []
        running: list[str] = []  # the step containers of this build, for a cancel

        def put(item) -> None:
            if gone.is_set():
                raise BrokenPipeError("the client stopped reading")
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        def run() -> None:
            try:
                self.build(body, options, put, loop, auth, running, gone)
            except BaseException as exc:  # handed to the loop, raised there
                failure.append(exc)
            finally:
                if not gone.is_set():
                    with contextlib.suppress(RuntimeError):
                        asyncio.run_coroutine_threadsafe(queue.put(done), loop).result()

        thread = threading.Thread(target=run, name="dockyardd-build", daemon=True)
        thread.start()
        try:
            while (item := await queue.get()) is not done:
                yield item
            if failure:
                raise failure[0]
        finally:
            gone.set()
            while not queue.empty():  # a put waiting for room finishes, the next one sees `gone`
                queue.get_nowait()
            if thread.is_alive():
                # the client went away: a RUN that prints nothing would run on, so stop it (dockerd
                # cancels the build); the build then fails and removes its container
                for cid in list(running):
                    with contextlib.suppress(EngineError):
                        await self.containers.kill(cid)

    def build(self, body, options: BuildOptions, emit: Callable[[dict], None], loop: asyncio.AbstractEventLoop,
              auth: dict | None = None, running: list[str] | None = None,
              cancelled: threading.Event | None = None) -> str:
        """Run a whole build in the calling (worker) thread; `body` is the context tar stream."""
        os.makedirs(self.tmp, exist_ok=True)
        if not self._swept:
            self._swept = True
            self._sweep()
        context = BuildContext.from_tar(body, self.tmp, prefix=f"build-{os.getpid()}-")
        try:
            worker = _Worker(self, loop, auth or {}, emit, options.quiet, running, cancelled)
            try:
                return run_build(worker, self.cache, context, options, emit)
            finally:
                worker.cleanup()
        finally:
            context.close()


class _Worker:
    def __init__(self, service: BuildService, loop: asyncio.AbstractEventLoop, auth: dict,
                 emit: Callable[[dict], None], quiet: bool, running: list[str] | None = None,
                 cancelled: threading.Event | None = None):
        self.service = service
        self.cancelled = cancelled or threading.Event()
        self.emit = emit
        self.quiet = quiet
        self.images = service.images
        self.containers = service.containers
        self.loop = loop
        self.auth = auth
        self._containers: list[str] = running if running is not None else []

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    # -- images -------------------------------------------------------------------------------
    def image(self, name: str, pull: bool) -> tuple[str, dict]:
        try:
            if pull:
                raise NotFound(name)
            image_id = self.images.resolve(name)
        except NotFound:
            image_id = self._pull(name)
        return image_id, json.loads(self.images.content.read(image_id))

    def _pull(self, name: str) -> str:
        """The engine's pull, with the credentials X-Registry-Config has for the image's registry; its
        progress messages go into the build's stream, as dockerd's do."""
        from ..images.reference import parse
        from ..remotes.auth import AuthConfig, server_domain

        ref = parse(name).with_default_tag()
        auth = None
        for server, creds in self.auth.items():
            if isinstance(server, str) and server_domain(server) == ref.domain:
                auth = AuthConfig.from_json(creds)
        ids = self.images.pull(ref, auth, progress=None if self.quiet else self.emit)
        return ids[0] if ids else self.images.resolve(name)

    def exists(self, image_id: str) -> bool:
        return self.images.store.get(image_id) is not None

    def _store(self, parent_id: str, doc: dict, staging: Staging, extra: Descriptor | None) -> str:
        raw = canonical_json(doc)
        config_digest = staging.add_bytes(raw)
        layers = []
        if parent_id:
            parent = self.images.store.get(parent_id)
            layers = [Descriptor(rec.media_type, rec.blob, rec.blob_size) for rec in parent.layers]
        if extra is not None:
            layers.append(extra)
        manifest = build_manifest(Descriptor(OCI_CONFIG, config_digest, len(raw)), layers)
        staging.add_bytes(manifest)
        image = StagedImage(parse_config(raw), config_digest, manifest, OCI_MANIFEST, tuple(layers), ())
        # dockerd announces no image event for a build's steps (only the final tags)
        self.images.store_staged(staging, [image], action="build", parents={image.id: parent_id},
                                 event=lambda img: None)
        return image.id

    def store_config(self, parent_id: str, doc: dict) -> str:
        with Staging(self.images.content) as staging:
            return self._store(parent_id, doc, staging, None)

    def _layer_image(self, upper: str, parent_id: str, doc: dict) -> str:
        with tempfile.TemporaryFile(dir=self.images.data_root) as layer, Staging(self.images.content) as staging:
            result = write_tree(upper, layer, Whiteouts.OVERLAY)
            layer.seek(0)
            digest = staging.add_stream(layer, result.size, result.diff_id)
            doc = dict(doc)
            doc["rootfs"] = {"type": "layers",
                             "diff_ids": list((doc.get("rootfs") or {}).get("diff_ids") or []) + [result.diff_id]}
            return self._store(parent_id, doc, staging, Descriptor(OCI_LAYER, digest, result.size))

    def _check_overlay(self) -> None:
        if self.images.snapshotter.name != "overlayfs":
            raise NotSupported("building images needs the overlay snapshotter")

    # -- RUN -----------------------------------------------------------------------------------
    def run(self, parent_id: str, run_config: dict, host_config: dict, started, output) -> tuple[str, int]:
        from .logs import LogQuery

        self._check_overlay()
        body = dict(run_config)
        body["Image"] = parent_id
        body["HostConfig"] = dict(host_config, NetworkMode=host_config.get("NetworkMode") or "default")
        body["AttachStdout"] = body["AttachStderr"] = True
        cid, _ = self._call(self.containers.create(None, body))
        self._containers.append(cid)
        started(cid)
        self._call(self.containers.start(cid))

        async def open_log():
            return self.containers.logs(cid, LogQuery(), True)[1]

        # The log is read on the loop a chunk at a time and handed out in this (the build's) thread:
        # a slow client slows the build without holding one of the daemon's few worker threads.
        chunks = self._call(open_log())
        buffer = b""
        try:
            while True:
                try:
                    chunk = self._call(chunks.__anext__())
                except StopAsyncIteration:
                    break
                buffer += chunk
                while len(buffer) >= 8:
                    size = struct.unpack(">I", buffer[4:8])[0]
                    if len(buffer) < 8 + size:
                        break
                    data, buffer = buffer[8:8 + size], buffer[8 + size:]
                    output(data)
        finally:
            self._call(chunks.aclose())

        async def wait() -> int:
            result = self.containers.wait_for(cid, "not-running")
            code, _ = await result()
            return code

        return cid, self._call(wait())

    def commit_container(self, container_id: str, parent_id: str, doc: dict) -> str:
        doc = dict(doc, container=container_id)
        return self._layer_image(self.images.container_upper_dir(container_id), parent_id, doc)

    def remove_container(self, container_id: str) -> None:
        with contextlib.suppress(EngineError):
            self._call(self.containers.remove(container_id, force=True, internal=True))
        if container_id in self._containers:
            self._containers.remove(container_id)

    def keep_container(self, container_id: str) -> None:
        if self.cancelled.is_set():
            return  # a cancelled build's containers go at its cleanup, whatever rm says
        if container_id in self._containers:
            self._containers.remove(container_id)

    def cleanup(self) -> None:
        """Containers of a build that was interrupted mid-step (the client went away) are removed."""
        for cid in list(self._containers):
            self.remove_container(cid)

    # -- COPY / ADD ----------------------------------------------------------------------------------
    def _top_chain(self, image_id: str) -> str | None:
        if not image_id:
            return None
        record = self.images.store.get(image_id)
        return record.top_chain if record else None

    @contextlib.contextmanager
    def _snapshot(self, image_id: str, writable: bool) -> Iterator[tuple[str, str]]:
        """A temporary snapshot on top of `image_id`, mounted: (snapshot key, mount point)."""
        snap = self.images.snapshotter
        key = f"{'build' if writable else 'build-view'}-{os.getpid()}-{os.urandom(16).hex()}"
        make = snap.prepare if writable else snap.view
        mounts = make(key, self._top_chain(image_id), {"dockyard.build": "true"})
        root = tempfile.mkdtemp(prefix=f"root-{os.getpid()}-", dir=self.service.tmp)
        try:
            mount_all(mounts, root)
            try:
                yield key, root
            finally:
                unmount_all(root)
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(root)
            snap.remove(key)

    def add_layer(self, parent_id: str, doc: dict, fill) -> str:
        self._check_overlay()
        with self._snapshot(parent_id, True) as (key, root):
            fill(root)
            unmount_all(root)  # the layer is read from the upper directory, unmounted
            return self._layer_image(self.images.snapshotter.upper_dir(key), parent_id, doc)

    @contextlib.contextmanager
    def mounted(self, image_id: str) -> Iterator[str]:
        with self._snapshot(image_id, False) as (_, root):
            yield root

    def tag(self, image_id: str, names: tuple[str, ...]) -> None:
        for name in names:
            repo, tag = _split_tag(name)
            try:
                parse_repository_tag(repo, tag)
            except EngineError as err:
                raise BuildFailed(err.message) from None
            self.images.tag(image_id, repo, tag)


def _split_tag(name: str) -> tuple[str, str | None]:
    if "@" in name:
        return name, None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, None
