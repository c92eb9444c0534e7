"""The container service: create, start, stop, remove, wait, attach, logs… and their state on disk.

    <data-root>/containers/<id>/        what survives reboots
      config.v2.json                    the record: Docker's inspect document (Config, HostConfig,
                                        State…) plus the engine's bookkeeping under "Engine";
                                        replaced atomically (temp file, fsync, rename)
      hostname, hosts, resolv.conf      the engine-managed files, bound into the container
      <id>-json.log[.N]                 the json-file log (written by the monitor: logs.py)
      exit.json                         the last exit, written by the monitor (monitor.py)
    <exec-root>/containers/<id>/        the OCI bundle; gone after a reboot, rebuilt at start
      config.json                       the runtime spec (ocispec.py)
      rootfs/                           the writable snapshot, mounted from start until exit

A container's writable layer is a snapshot from the image service, keyed by
the container id (prepared at create, removed with the container).

Processes: containers run under the monitor (monitor.py), never as children
of this threaded daemon. The service talks to it through `MonitorClient`
(supervisor.py): start, kill, resize and exec requests; exit events.

Concurrency: the service runs on the daemon's event loop. Operations on one
container (start, stop, kill, restart, remove, rename, pause) hold its
`lock`; an exit is recorded at once without the lock (stop waits for it
while holding the lock) and its clean-up (unmount, auto-remove, restart)
runs afterwards under the lock. Blocking work (mounts, files, snapshots)
goes to the worker pool.

After a daemon restart (`startup`): records are read back, the monitor is
asked what still runs and what exited meanwhile (exits it saw, or exit.json),
containers it does not know are marked exited, and restart policies apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from .. import jsonio
from ..errors import Conflict, EngineError, Forbidden, InvalidArgument, NotFound, NotSupported
from . import containerconfig, mounts, ocispec, restart
from .archive import helper_output
from .logs import LogQuery, LogReader, log_options, tail_entries, timestamp
from .signals import signal_number, valid_signal
from .stdio import parse_detach_keys, pump_session
from .supervisor import MonitorClient, MonitorError, MonitorStream

log = logging.getLogger("dockyard.daemon")

ZERO_TIME = "0001-01-01T00:00:00Z"
RECORD = "config.v2.json"
DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 30.0
CGROUP_PARENT = "/dockyard"
SIGNALS_BY_NUMBER: dict[int, str] = {}

HOSTS_TEMPLATE = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                  "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def now() -> str:
    return timestamp()


def parse_time(text: str) -> float:
    """RFC 3339 (nanoseconds allowed) -> Unix seconds; 0 for docker's zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    import datetime

    main, _, frac = text.rstrip("Z").partition(".")
    seconds = datetime.datetime.fromisoformat(main).replace(tzinfo=datetime.UTC).timestamp()
    return seconds + (float("0." + frac) if frac else 0.0)


def write_json_atomic(path: str, obj: Any, sync: bool = False) -> None:
    tmp = f"{path}.tmp"
    data = jsonio.dumps(obj).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def runtime_path(name: str) -> str:
    if name == "dockyard-runtime":
        return name
    found = shutil.which(name)
    if not found:
        raise InvalidArgument(f"the runtime {name!r} is not installed on this host")
    return found


class Ctr:
    """One container as the service holds it: its record and what waits on it."""

    __slots__ = ("id", "rec", "lock", "exit_waiters", "removed", "attaches", "exit_on_next", "restart_timer",
                 "restart_delay", "removing", "run_done", "exec_ids", "cleanup", "mount_holds", "early_exit")

    def __init__(self, rec: dict):
        self.id = rec["Id"]
        self.rec = rec
        self.lock = asyncio.Lock()
        self.exit_waiters: list[asyncio.Future] = []
        self.removed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.attaches: list[AttachSession] = []
        self.exit_on_next = False
        self.restart_timer: asyncio.TimerHandle | None = None
        self.restart_delay = 0.0
        self.removing = False
        self.run_done = asyncio.Event()
        self.exec_ids: list[str] = []
        self.cleanup: asyncio.Task | None = None
        self.mount_holds = 0  # cp, export, diff or commit of a stopped container need its rootfs mounted
        self.early_exit: tuple | None = None

    @property
    def name(self) -> str:
        return self.rec["Name"].lstrip("/")

    @property
    def state(self) -> dict:
        return self.rec["State"]

    @property
    def running(self) -> bool:
        return bool(self.rec["State"]["Running"])

    @property
    def engine(self) -> dict:
        return self.rec["Engine"]

    @property
    def tty(self) -> bool:
        return bool(self.rec["Config"].get("Tty"))


class AttachSession:
    """One client attached to a container's stdio (`docker attach`, or `docker run` in the foreground).

    It connects to the monitor as soon as it exists, before any start: the
    container's first output must reach it (§13 of the contract: attach comes
    before start, and stdin may arrive before start).
    """

    def __init__(self, service: ContainerService, ctr: Ctr, stdin: bool, stdout: bool, stderr: bool,
                 detach_keys: bytes):
        self.service = service
        self.ctr = ctr
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.detach_keys = detach_keys
        self.stream: MonitorStream | None = None
        self.ready = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        _, self.stream = await self.service.monitor.open_stream(
            "attach", id=self.ctr.id, stdin=self.stdin, stdout=self.stdout, stderr=self.stderr)

    async def run(self, client) -> None:
        """Pump bytes between the hijacked client connection and the monitor until either ends."""
        try:
            await self.ready
        except Exception as err:  # noqa: BLE001 - the client only sees the stream close
            log.warning("attach to %s failed: %s", self.ctr.id[:12], err)
            return
        finally:
            with contextlib.suppress(ValueError):
                self.ctr.attaches.remove(self)
        await pump_session(self.stream, self.stream, client, self.ctr.tty, self.stdin, self.detach_keys,
                           closes_stdin=bool(self.ctr.rec["Config"].get("StdinOnce")))


class ContainerService:
    def __init__(self, data_root: str, exec_root: str, images, emit: Callable[..., Any],
                 default_runtime: str = containerconfig.DEFAULT_RUNTIME, volumes=None, networks=None):
        self.root = os.path.join(data_root, "containers")
        self.bundles = os.path.join(exec_root, "containers")
        self.exec_root = exec_root
        self.default_runtime = default_runtime
        self.images = images
        self._emit = emit
        os.makedirs(self.root, mode=0o710, exist_ok=True)
        os.makedirs(self.bundles, mode=0o711, exist_ok=True)
        self.monitor = MonitorClient(exec_root, self._on_monitor_event, self._on_monitor_connect)
        self._ctrs: dict[str, Ctr] = {}
        self._names: dict[str, str] = {}
        self._loaded: list[dict] = []
        self.exec_exit_handler: Callable[[dict], None] | None = None
        for name in sorted(os.listdir(self.root)):
            rec = self._read_record(name)
            if rec is not None:
                self._loaded.append(rec)
        images.container_running = self._holder_running
        self.volumes = volumes
        if volumes is not None:
            volumes.recorded = self._volume_users
        self.health = None  # the HealthMonitor (health.py), set by the exec service (probes are execs)
        self.networks = networks
        if networks is not None:
            networks.container_name = lambda cid: self._ctrs[cid].name if cid in self._ctrs else cid[:12]
            networks.lookup_names = self._names_on_network

    def _names_on_network(self, net_id: str, name: str) -> list[str]:
        """What a user network's name server answers for `name`: the addresses of running containers on
        it called so (name, alias or short id), case-insensitively."""
        wanted = name.lower().rstrip(".")
        out = []
        for ctr in list(self._ctrs.values()):
            if not ctr.running:
                continue
            for endpoint in (ctr.rec.get("NetworkSettings") or {}).get("Networks", {}).values():
                if endpoint.get("NetworkID") != net_id or not endpoint.get("IPAddress"):
                    continue
                names = {ctr.name.lower(), ctr.id[:12]} | {a.lower() for a in endpoint.get("Aliases") or ()}
                if wanted in names:
                    out.append(endpoint["IPAddress"])
        return out

    def _bridged(self, ctr: Ctr) -> bool:
        return self.networks is not None and self.networks.mode_network(ctr.rec["HostConfig"]) is not None

    def _networks_of(self, ctr: Ctr) -> dict:
        settings = ctr.rec.setdefault("NetworkSettings", {})
        if "Networks" not in settings:  # a record from before networks existed
            settings["Networks"] = self.networks.endpoints_at_create(ctr.rec["HostConfig"], None)
        return settings["Networks"]

    def _volumes_source(self, ref: str) -> dict:
        """The record of a --volumes-from container; dockerd answers 400 (not 404: that would mean the image)."""
        try:
            return self.get(ref).rec
        except NotFound as err:
            raise InvalidArgument(err.message) from None

    def _volume_users(self, name: str) -> list[str]:
        """Containers whose records name volume `name` (called from worker threads too)."""
        recs = [*(c.rec for c in list(self._ctrs.values())), *self._loaded]  # _loaded: before startup()
        return [rec["Id"] for rec in recs if any(v.get("Name") == name for v in rec["Engine"].get("Volumes") or ())]

    # --- records ----------------------------------------------------------------------------
    def _dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def _bundle(self, cid: str) -> str:
        return os.path.join(self.bundles, cid)

    def _rootfs(self, cid: str) -> str:
        return os.path.join(self.bundles, cid, "rootfs")

    def _read_record(self, cid: str) -> dict | None:
        path = os.path.join(self._dir(cid), RECORD)
        try:
            with open(path, "rb") as f:
                rec = jsonio.loads(f.read())
        except FileNotFoundError:
            return None
        except ValueError as err:
            log.error("container %s: unreadable record %s: %s", cid[:12], path, err)
            return None
        if not isinstance(rec, dict) or rec.get("Id") != cid or "Engine" not in rec:
            return None
        return rec

    def _save(self, ctr: Ctr) -> None:
        """Write the record, on the event loop: a few KB, and never two writers of one record at once.

        Ordered with removal: nothing is written once a removal began (its directory is on its way
        out), and a container gone meanwhile is not an error of whoever saved it.
        """
        if ctr.removing or self._ctrs.get(ctr.id) is not ctr:
            return
        try:
            write_json_atomic(os.path.join(self._dir(ctr.id), RECORD), ctr.rec)
        except FileNotFoundError:
            if os.path.isdir(self._dir(ctr.id)):
                raise
            log.warning("container %s: its directory is gone; the record was not saved", ctr.id[:12])

    def _holder_running(self, holder: str) -> bool:
        ctr = self._ctrs.get(holder)
        return ctr is not None and ctr.running

    def emit(self, ctr: Ctr, action: str, **extra: str) -> None:
        attributes = dict(ctr.rec["Config"].get("Labels") or {})
        attributes.update(image=ctr.rec["Config"].get("Image", ""), name=ctr.name)
        attributes.update(extra)
        self._emit("container", action, ctr.id, attributes)

    # --- lookup -----------------------------------------------------------------------------
    def get(self, ref: str) -> Ctr:
        """A container by full id, name (with or without `/`), or unique id prefix."""
        ctr = self._ctrs.get(ref)
        if ctr is not None:
            return ctr
        cid = self._names.get(ref.lstrip("/"))
        if cid is not None:
            return self._ctrs[cid]
        if ref and all(c in "0123456789abcdef" for c in ref):
            found = [c for cid, c in self._ctrs.items() if cid.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[Ctr]:
        return list(self._ctrs.values())

    def counts(self) -> tuple[int, int, int, int]:
        total = len(self._ctrs)
        paused = sum(1 for c in self._ctrs.values() if c.state["Paused"])
        running = sum(1 for c in self._ctrs.values() if c.running) - paused
        return total, running, paused, total - running - paused

    # --- start-up and the monitor ------------------------------------------------------------------
    async def startup(self) -> None:
        """Take the records back in hand, reconcile with the monitor, apply restart policies."""
        for rec in self._loaded:
            ctr = Ctr(rec)
            self._ctrs[ctr.id] = ctr
            self._names[ctr.name] = ctr.id
        self._loaded = []
        await self._run_blocking(self._sweep_orphans)
        was_running = {c.id for c in self._ctrs.values() if c.running}
        # A monitor still serving from before our restart knows what runs; start one
        # only when some container was running when we went away.
        known = await self.monitor.connect(spawn=bool(was_running))
        if known is None:
            await self._reconcile([])
        if self.volumes is not None:
            for ctr in list(self._ctrs.values()):
                if ctr.running and ctr.engine.get("Volumes"):
                    await self._run_blocking(self.volumes.adopt, ctr.id, ctr.engine["Volumes"])
        if self.health is not None:
            for ctr in list(self._ctrs.values()):
                if ctr.running:
                    self.health.start(ctr)
        if self.networks is not None:
            for ctr in list(self._ctrs.values()):
                if ctr.running and self._bridged(ctr):
                    networks = self._networks_of(ctr)
                    self.networks.adopt(ctr.id, networks)
                    try:
                        ctr.rec["NetworkSettings"]["Ports"] = await self.networks.publish(
                            ctr.id, ctr.rec["Config"], ctr.rec["HostConfig"], networks)
                        await self.networks.serve_names(networks)
                    except EngineError as err:
                        log.error("container %s: its ports after the restart: %s", ctr.name, err.message)
        for ctr in list(self._ctrs.values()):
            if ctr.running or ctr.removing:
                continue
            if restart.at_daemon_start(ctr.rec["HostConfig"], ctr.state["ExitCode"], ctr.rec["RestartCount"],
                                       ctr.engine.get("ManuallyStopped", False), ctr.id in was_running,
                                       ctr.state["StartedAt"] != ZERO_TIME):
                asyncio.ensure_future(self._restart_at_startup(ctr))

    def _sweep_orphans(self) -> None:
        """What a crash in the middle of a create or a removal leaves behind: directories, bundles and
        snapshots of no container (a worker thread, before the API serves)."""
        from ..snapshots import Kind

        known = set(self._ctrs)
        for name in os.listdir(self.root):
            if name not in known and _is_container_id(name):
                log.info("removing the leftovers of container %s (no record)", name[:12])
                shutil.rmtree(self._dir(name), ignore_errors=True)
        for name in os.listdir(self.bundles):
            if name not in known:
                self._unmount(name)
                shutil.rmtree(self._bundle(name), ignore_errors=True)
        if not os.path.isdir(os.path.join(os.path.dirname(self.root), "snapshots")):
            return
        for info in list(self.images.snapshotter.walk()):
            if info.kind is Kind.ACTIVE and _is_container_id(info.key) and info.key not in known:
                log.info("removing the snapshot of container %s (no record)", info.key[:12])
                self.images.release_container(info.key)

    async def _restart_at_startup(self, ctr: Ctr) -> None:
        async with ctr.lock:
            if ctr.running or ctr.removing or ctr.id not in self._ctrs:
                return
            try:
                await self._start_locked(ctr)
            except EngineError as err:
                log.error("restarting %s after the daemon started: %s", ctr.name, err.message)

    async def _on_monitor_connect(self, known: list[dict]) -> None:
        await self._reconcile(known)

    async def _reconcile(self, known: list[dict]) -> None:
        by_id = {k["id"]: k for k in known}
        for info in known:
            ctr = self._ctrs.get(info["id"])
            if ctr is not None and info.get("generation", 0) > ctr.engine.get("Generation", 0):
                # A run whose start the daemon did not live to record: take it in as running
                # (an exit it already had is then recorded below like any other).
                ctr.engine["Generation"] = info["generation"]
                ctr.state.update(Status="running", Running=True, Paused=False, Restarting=False,
                                 Pid=info.get("pid", 0), StartedAt=info.get("started_at") or now(), Error="")
                ctr.run_done = asyncio.Event()
                self._save(ctr)
        for ctr in list(self._ctrs.values()):
            if not ctr.running:
                continue
            info = by_id.get(ctr.id)
            generation = ctr.engine.get("Generation", 0)
            if info is not None and info.get("generation") == generation:
                if info.get("running") or info.get("starting"):
                    ctr.state["Pid"] = info.get("pid", ctr.state["Pid"])
                    continue
                self._exited(ctr, info.get("code", 255), info.get("finished_at") or now(), generation,
                             oom_killed=bool(info.get("oom_killed")))
                continue
            # The monitor does not know this run (it was restarted, or the machine was):
            # its exit.json may still say how it ended; otherwise it was lost.
            exit_info = self._exit_file(ctr)
            if exit_info is not None and exit_info.get("generation") == generation:
                self._exited(ctr, exit_info.get("code", 255), exit_info.get("finished_at") or now(), generation,
                             oom_killed=bool(exit_info.get("oom_killed")))
            else:
                await self._run_blocking(self._kill_orphans, ctr)
                self._exited(ctr, 255, now(), generation, error="the container's supervisor went away")
        for info in known:
            if info["id"] in self._ctrs:
                continue
            with contextlib.suppress(EngineError):
                if info.get("running"):
                    # The container's record is gone (a crash in the middle of `rm -f`): end its run.
                    await self.monitor.request("kill", id=info["id"], signal=9)
                else:
                    await self.monitor.request("ack", id=info["id"], generation=info.get("generation"))

    def _exit_file(self, ctr: Ctr) -> dict | None:
        try:
            with open(os.path.join(self._dir(ctr.id), "exit.json"), "rb") as f:
                return jsonio.loads(f.read())
        except (OSError, ValueError):
            return None

    def _kill_orphans(self, ctr: Ctr) -> None:
        """Processes of a run nobody supervises any more (its monitor died): kill them, drop the cgroup."""
        from ..cgroups import open_manager

        try:
            cgroup = open_manager(f"{CGROUP_PARENT}/{ctr.id}")
            if cgroup.exists():
                with contextlib.suppress(Exception):
                    cgroup.thaw()
                cgroup.kill_all(9)
                deadline = time.monotonic() + 5
                while cgroup.pids() and time.monotonic() < deadline:
                    time.sleep(0.02)
                cgroup.destroy()
        except Exception as err:  # noqa: BLE001
            log.warning("cleaning up the lost run of %s: %s", ctr.id[:12], err)
        for root in ("runtime", "runc"):
            shutil.rmtree(os.path.join(self.exec_root, root, ctr.id), ignore_errors=True)

    def _on_monitor_event(self, msg: dict) -> None:
        kind = msg.get("event")
        if kind == "exit":
            ctr = self._ctrs.get(msg["id"])
            if ctr is None:
                asyncio.ensure_future(self._ack(msg["id"], msg.get("generation")))
                return
            self._exited(ctr, msg.get("code", 255), msg.get("finished_at") or now(), msg.get("generation", 0),
                         oom_killed=bool(msg.get("oom_killed")))
        elif kind == "exec-exit" and self.exec_exit_handler is not None:
            self.exec_exit_handler(msg)

    async def _ack(self, cid: str, generation) -> None:
        with contextlib.suppress(EngineError):
            await self.monitor.request("ack", id=cid, generation=generation)

    async def _run_blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # --- create ------------------------------------------------------------------------------------
    async def create(self, name: str | None, body: dict) -> tuple[str, list[str]]:
        """A new container from a create request; returns its id and warnings."""
        if not isinstance(body, dict):
            raise InvalidArgument("config cannot be empty in order to create a container")
        image_ref = body.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise InvalidArgument("No image was specified (Config.Image is empty)")
        stored_name = containerconfig.check_name(name) if name else None
        details = await self._run_blocking(self.images.inspect, image_ref)
        config, host_config = containerconfig.normalize(body, details.config or {}, self.default_runtime)
        cid = os.urandom(32).hex()
        if not config.get("Hostname"):
            # dockerd fills it in at create: the short id, or the host's name on the host's network.
            config["Hostname"] = os.uname().nodename if host_config["NetworkMode"] == "host" else cid[:12]
        if stored_name is None:
            from .names import random_name

            stored_name = "/" + random_name(self._names)
        short = stored_name[1:]
        if short in self._names:
            raise Conflict(f'Conflict. The container name "{stored_name}" is already in use by container '
                           f'"{self._names[short]}". You have to remove (or rename) that container to be able '
                           f'to reuse that name.')
        self._names[short] = cid  # reserved now: a concurrent create with the same name gets the conflict
        entrypoint = list(config.get("Entrypoint") or [])
        command = entrypoint + list(config.get("Cmd") or [])
        rec = {
            "Id": cid,
            "Created": now(),
            "Path": command[0] if command else "",
            "Args": command[1:],
            "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                      "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                      "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
            "Image": details.id,
            "ResolvConfPath": os.path.join(self._dir(cid), "resolv.conf"),
            "HostnamePath": os.path.join(self._dir(cid), "hostname"),
            "HostsPath": os.path.join(self._dir(cid), "hosts"),
            "LogPath": os.path.join(self._dir(cid), f"{cid}-json.log"),
            "Name": stored_name,
            "RestartCount": 0,
            "Driver": "",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "Config": dict(config, Image=image_ref),
            "HostConfig": host_config,
            "NetworkSettings": {"Networks": self.networks.endpoints_at_create(host_config, body.get(
                "NetworkingConfig")) if self.networks is not None else {}, "Ports": {}},
            "Engine": {"Snapshot": cid, "Generation": 0, "ManuallyStopped": False},
        }
        if host_config["LogConfig"]["Type"] == "none":
            rec["LogPath"] = ""
        made: list[str] = []
        try:
            inherited = mounts.inherit(host_config.get("VolumesFrom"), host_config, self._volumes_source)
            plan = mounts.volume_plan(config, host_config, inherited)
            entries = []
            if plan:
                if self.volumes is None:
                    raise InvalidArgument("volumes are not available in this engine")
                entries, made = await self._run_blocking(self.volumes.claim, cid, plan)
            if inherited or entries:
                rec["Engine"]["Volumes"] = inherited + entries
            await self._run_blocking(self._create_on_disk, rec)
        except BaseException:
            self._names.pop(short, None)
            if self.volumes is not None:
                await self._run_blocking(self.volumes.release_claim, cid, made)
            raise
        ctr = Ctr(rec)
        self._ctrs[cid] = ctr
        if self.volumes is not None:
            self.volumes.release_claim(cid)
        self.emit(ctr, "create")
        return cid, []

    def _create_on_disk(self, rec: dict) -> None:
        cid = rec["Id"]
        directory = self._dir(cid)
        os.makedirs(directory, mode=0o710)
        try:
            self.images.mounts_for_container(rec["Image"], cid, init_layer=True)
            rec["Driver"] = self.images.driver_name
            graph = self.images.container_graph_data(cid)
            if graph:
                rec["Engine"]["GraphDriver"] = dict(graph, MergedDir=self._rootfs(cid))
            if rec["Config"].get("WorkingDir"):
                self._make_working_dir_now(cid, rec["Config"]["WorkingDir"])
            write_json_atomic(os.path.join(directory, RECORD), rec, sync=True)
        except BaseException:
            with contextlib.suppress(Exception):
                self.images.release_container(cid)
            shutil.rmtree(directory, ignore_errors=True)
            raise

    def _make_working_dir_now(self, cid: str, workdir: str) -> None:
        """dockerd makes the working directory at create (a `diff` of the new container shows it)."""
        from ..snapshots import mount_all

        rootfs = self._rootfs(cid)
        os.makedirs(rootfs, mode=0o755)
        try:
            mount_all(self.images.container_mounts(cid), rootfs)
            try:
                make_working_dir(rootfs, workdir)
            finally:
                self._unmount(cid)
        finally:
            with contextlib.suppress(OSError):  # rmdir, not rmtree: never into a mount left behind
                os.rmdir(rootfs)
                os.rmdir(self._bundle(cid))

    # --- start -------------------------------------------------------------------------------------
    async def start(self, ref: str) -> bool:
        """Start a container; False if it was running already (304)."""
        ctr = self.get(ref)
        async with ctr.lock:
            if self._ctrs.get(ctr.id) is not ctr:
                raise NotFound(f"No such container: {ref}")  # removed while this start waited for it
            if ctr.removing:
                raise Conflict(f"container {ctr.id} is marked for removal and cannot be started")
            if ctr.running:
                if ctr.state["Paused"]:
                    raise Conflict("cannot start a paused container, try unpause instead")
                return False
            self._cancel_restart(ctr)
            ctr.engine["ManuallyStopped"] = False
            await self._start_locked(ctr)
            return True

    async def _start_locked(self, ctr: Ctr) -> None:
        generation = ctr.engine.get("Generation", 0) + 1
        hc = ctr.rec["HostConfig"]
        cfg = ctr.rec["Config"]
        bridged = self._bridged(ctr)
        if bridged and os.path.exists(self.networks.netns_path(ctr.id)):
            # A restart comes before the last run's clean-up (which waits for this lock): undo it now.
            await self._release_networks(ctr)
        try:
            await self._run_blocking(self._prepare_bundle, ctr)
            if bridged:
                networks = self._networks_of(ctr)
                ctr.rec["NetworkSettings"]["Ports"] = await self.networks.publish(ctr.id, cfg, hc, networks)
                await self.networks.serve_names(networks)
        except EngineError as err:
            await self._start_failed(ctr, err.message)
            raise
        if ctr.attaches:
            await asyncio.gather(*(a.ready for a in ctr.attaches), return_exceptions=True)
        max_size, max_file = log_options(hc.get("LogConfig"))
        runtime = hc.get("Runtime") or containerconfig.DEFAULT_RUNTIME
        request = {
            "id": ctr.id, "generation": generation, "bundle": self._bundle(ctr.id),
            "runtime": runtime_path(runtime), "tty": bool(cfg.get("Tty")), "stdin": bool(cfg.get("OpenStdin")),
            "stdin_once": bool(cfg.get("StdinOnce")), "log_path": ctr.rec["LogPath"],
            "log_max_size": max_size, "log_max_file": max_file, "state_dir": self._dir(ctr.id),
            "loopback": ocispec.network_mode(hc) != "host" and runtime == "dockyard-runtime" and not bridged,
        }
        ctr.exit_on_next = False
        try:
            reply = await self.monitor.request("start", **request)
        except MonitorError as err:
            error = start_error(err.message)
            await self._start_failed(ctr, error.message)  # State.Error says what the client was told
            raise error from None
        except BaseException as err:
            await self._start_failed(ctr, str(err))
            raise
        state = ctr.state
        state.update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False, Dead=False,
                     Pid=reply.get("pid", 0), ExitCode=0, Error="", StartedAt=reply.get("started_at") or now())
        ctr.engine["Generation"] = generation
        ctr.run_done = asyncio.Event()
        self.emit(ctr, "start")
        if self.health is not None:
            self.health.start(ctr)
        early, ctr.early_exit = ctr.early_exit, None
        if early is not None and early[2] == generation:
            self._exited(ctr, *early)
        else:
            self._save(ctr)

    def _prepare_bundle(self, ctr: Ctr) -> None:
        """Mount the rootfs, write the engine's files and config.json (in a worker thread)."""
        from ..snapshots import mount_all

        bundle = self._bundle(ctr.id)
        rootfs = os.path.join(bundle, "rootfs")
        os.makedirs(rootfs, mode=0o755, exist_ok=True)
        if not os.path.ismount(rootfs):
            mount_all(self.images.container_mounts(ctr.engine["Snapshot"]), rootfs)
        try:
            if ctr.rec["Config"].get("WorkingDir"):
                make_working_dir(rootfs, ctr.rec["Config"]["WorkingDir"])  # again, as dockerd: it may be gone
            mounts.make_bind_sources(ctr.rec["HostConfig"])
            self._lend_volumes(ctr, rootfs)
            netns = None
            host_lines: list[str] = []
            if self._bridged(ctr):
                hostname = ctr.rec["Config"].get("Hostname") or ctr.id[:12]
                host_lines = self.networks.attach_all(ctr.id, hostname, self._networks_of(ctr))
                netns = self.networks.netns_path(ctr.id)
            self._write_engine_files(ctr, host_lines)
            paths = ocispec.Paths(rootfs, ctr.rec["HostsPath"], ctr.rec["HostnamePath"], ctr.rec["ResolvConfPath"])
            spec = ocispec.build(ctr.id, ctr.rec["Config"], ctr.rec["HostConfig"], paths, CGROUP_PARENT,
                                 ctr.engine.get("Volumes"), netns)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._dir(ctr.id), "exit.json"))
            write_json_atomic(os.path.join(bundle, "config.json"), spec)
        except BaseException:
            self._unmount(ctr.id)
            self._return_volumes(ctr, announce=False)
            self._detach_networks(ctr)
            raise

    def _detach_networks(self, ctr: Ctr) -> None:
        """The end of a run on bridge networks (worker thread): namespace, veths and addresses go."""
        if self.networks is not None and os.path.exists(self.networks.netns_path(ctr.id)):
            self.networks.detach_all(ctr.id, self._networks_of(ctr))

    def _lend_volumes(self, ctr: Ctr, rootfs: str) -> None:
        """Mount the container's volumes where they need it, and fill empty ones from the image (dockerd's
        copy-up: the image's directory at the destination, symlinks resolved inside the root)."""
        from ..runtime.rootfs import secure_join

        entries = ctr.engine.get("Volumes") or []
        if not entries:
            return
        self.volumes.mount(ctr.id, entries)
        for entry in entries:
            if entry.get("NoCopy") or entry.get("Type") == "bind":
                continue
            source = secure_join(rootfs, entry["Destination"])
            if os.path.isdir(source) and not os.path.islink(source) and os.listdir(source):
                self.volumes.fill_if_empty(entry, source)

    async def _release_networks(self, ctr: Ctr) -> None:
        if self.networks is None or not self._bridged(ctr):
            return
        await self.networks.unpublish(ctr.id)
        if "NetworkSettings" in ctr.rec:
            ctr.rec["NetworkSettings"]["Ports"] = {}
        await self._run_blocking(self._detach_networks, ctr)
        self._save(ctr)

    def _return_volumes(self, ctr: Ctr, announce: bool = True) -> None:
        entries = ctr.engine.get("Volumes") or []
        if entries and self.volumes is not None:
            self.volumes.unmount(ctr.id, entries, announce)

    def _write_engine_files(self, ctr: Ctr, host_lines: list[str] = ()) -> None:
        hostname = ctr.rec["Config"].get("Hostname") or ctr.id[:12]
        host_network = ocispec.network_mode(ctr.rec["HostConfig"]) == "host"
        _write_text(ctr.rec["HostnamePath"], hostname + "\n")
        if host_network:
            _write_text(ctr.rec["HostsPath"], _read_text("/etc/hosts") or HOSTS_TEMPLATE)
            _write_text(ctr.rec["ResolvConfPath"], _read_text("/etc/resolv.conf"))
            return
        extra = "".join(f"{address}\t{host}\n" for host, address in
                        (e.split(":", 1) for e in ctr.rec["HostConfig"].get("ExtraHosts") or () if ":" in e))
        _write_text(ctr.rec["HostsPath"], HOSTS_TEMPLATE + extra + "".join(line + "\n" for line in host_lines))
        host_resolv = _read_text("/etc/resolv.conf")
        own = None
        if self.networks is not None and not ctr.rec["HostConfig"].get("Dns") and self._bridged(ctr):
            own = self.networks.resolv_conf(self._networks_of(ctr), host_resolv)
        _write_text(ctr.rec["ResolvConfPath"], own or resolv_conf(host_resolv, ctr.rec["HostConfig"]))

    def _unmount(self, cid: str) -> None:
        from ..snapshots import unmount_all

        rootfs = self._rootfs(cid)
        if os.path.isdir(rootfs):
            unmount_all(rootfs)

    async def _start_failed(self, ctr: Ctr, message: str) -> None:
        state = ctr.state
        state["Error"] = message
        state["ExitCode"] = failure_exit_code(message)
        state["Status"] = "created" if state["StartedAt"] == ZERO_TIME else "exited"
        await self._run_blocking(self._unmount, ctr.id)
        await self._run_blocking(self._return_volumes, ctr)
        await self._release_networks(ctr)
        self._save(ctr)
        if ctr.rec["HostConfig"].get("AutoRemove"):
            asyncio.ensure_future(self.remove(ctr.id, force=True, volumes=True, internal=True))

    # --- exits -------------------------------------------------------------------------------------
    def _exited(self, ctr: Ctr, code: int, finished_at: str, generation: int, error: str = "",
                oom_killed: bool = False) -> None:
        """Record the end of a run (on the loop, without the lock); clean-up follows as a task."""
        if generation > ctr.engine.get("Generation", 0):
            # The exit of a run whose start reply is still on its way to `_start_locked`
            # (the monitor answers the start first, but the reply resumes its waiter later).
            ctr.early_exit = (code, finished_at, generation, error, oom_killed)
            return
        if generation != ctr.engine.get("Generation", 0) or not ctr.running:
            asyncio.ensure_future(self._ack(ctr.id, generation))
            return
        state = ctr.state
        if self.health is not None:
            self.health.stop(ctr)
        ran_for = max(0.0, parse_time(finished_at) - parse_time(state["StartedAt"]))
        state.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0, ExitCode=code,
                     FinishedAt=finished_at, Error=error, OOMKilled=oom_killed)
        again = not ctr.removing and restart.after_exit(
            ctr.rec["HostConfig"], code, ctr.rec["RestartCount"], ctr.engine.get("ManuallyStopped", False),
            ctr.exit_on_next)
        if again:
            ctr.restart_delay = restart.next_delay(ctr.restart_delay, ran_for)
            state.update(Restarting=True, Status="restarting")
        self._save(ctr)
        if oom_killed:
            self.emit(ctr, "oom")
        self.emit(ctr, "die", exitCode=str(code))
        for waiter in ctr.exit_waiters:
            if not waiter.done():
                waiter.set_result(code)
        ctr.exit_waiters = []
        ctr.run_done.set()
        ctr.cleanup = asyncio.ensure_future(self._after_exit(ctr, generation, again))

    async def _after_exit(self, ctr: Ctr, generation: int, again: bool) -> None:
        async with ctr.lock:
            if not ctr.running and not ctr.mount_holds:
                await self._run_blocking(self._unmount, ctr.id)
            if not ctr.running:
                await self._run_blocking(self._return_volumes, ctr)
                await self._release_networks(ctr)
        await self._ack(ctr.id, generation)
        if ctr.removing or ctr.id not in self._ctrs:
            return
        if ctr.rec["HostConfig"].get("AutoRemove"):
            await self.remove(ctr.id, force=True, volumes=True, internal=True)
            return
        if again:
            loop = asyncio.get_running_loop()
            ctr.restart_timer = loop.call_later(ctr.restart_delay,
                                                lambda: asyncio.ensure_future(self._restart_after_exit(ctr)))

    async def _restart_after_exit(self, ctr: Ctr) -> None:
        ctr.restart_timer = None
        async with ctr.lock:
            if ctr.running or ctr.removing or not ctr.state["Restarting"] or ctr.id not in self._ctrs:
                return
            ctr.rec["RestartCount"] += 1
            try:
                await self._start_locked(ctr)
            except EngineError as err:
                log.error("restarting %s failed: %s", ctr.name, err.message)
                ctr.state.update(Restarting=False, Status="exited")
                self._save(ctr)

    def _cancel_restart(self, ctr: Ctr) -> None:
        if ctr.restart_timer is not None:
            ctr.restart_timer.cancel()
            ctr.restart_timer = None
        if ctr.state["Restarting"]:
            ctr.state.update(Restarting=False, Status="exited")

    # --- stop, kill, restart ---------------------------------------------------------------------------
    async def kill(self, ref: str, signal: str | None = None) -> None:
        signum = signal_number(signal, 9)
        ctr = self.get(ref)
        if not valid_signal(signum):
            raise EngineError(f"Cannot kill container: {ref}: The linux daemon does not support signal "
                              f"{signum % (1 << 64)}")
        async with ctr.lock:
            if not ctr.running:
                raise Conflict(f"Cannot kill container: {ref}: Container {ctr.id} is not running")
            await self._signal(ctr, signum, manual=True)

    async def _signal(self, ctr: Ctr, signum: int, manual: bool) -> None:
        stop_signal = signal_number(ctr.rec["Config"].get("StopSignal"), 15)
        if manual:
            if signum in (9, stop_signal):
                ctr.exit_on_next = True
            ctr.engine["ManuallyStopped"] = True
            self._save(ctr)
        if ctr.state["Paused"] and signum == 9:
            await self._run_blocking(self._freeze, ctr, False)
        try:
            await self.monitor.request("kill", id=ctr.id, signal=signum)
        except MonitorError as err:
            raise Conflict(f"Cannot kill container: {ctr.name}: {err.message}") from None
        self.emit(ctr, "kill", signal=str(signum))

    async def _wait_exit(self, ctr: Ctr, timeout: float | None) -> bool:
        """Wait for the current run to end (True) or the timeout (False)."""
        if not ctr.running:
            return True
        waiter = asyncio.get_running_loop().create_future()
        ctr.exit_waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> bool:
        """Stop a container (its stop signal, then SIGKILL after `timeout` s); False if it was not running."""
        ctr = self.get(ref)
        async with ctr.lock:
            if not ctr.running:
                if ctr.state["Restarting"] or ctr.restart_timer is not None:
                    self._cancel_restart(ctr)
                    ctr.engine["ManuallyStopped"] = True
                    self._save(ctr)
                    return True
                return False
            await self._stop_locked(ctr, timeout, signal)
            self.emit(ctr, "stop")
            return True

    async def _stop_locked(self, ctr: Ctr, timeout: int | None, signal: str | None = None) -> None:
        if timeout is None:
            timeout = ctr.rec["Config"].get("StopTimeout")
            timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        signum = signal_number(signal or ctr.rec["Config"].get("StopSignal"), 15)
        self._cancel_restart(ctr)
        if ctr.state["Paused"]:
            await self._run_blocking(self._freeze, ctr, False)
            ctr.state["Paused"] = False
        ctr.exit_on_next = True
        ctr.engine["ManuallyStopped"] = True
        with contextlib.suppress(MonitorError):
            await self.monitor.request("kill", id=ctr.id, signal=signum)
            self.emit(ctr, "kill", signal=str(signum))
        if await self._wait_exit(ctr, None if timeout < 0 else timeout):
            return
        with contextlib.suppress(MonitorError):
            await self.monitor.request("kill", id=ctr.id, signal=9)
            self.emit(ctr, "kill", signal="9")
        if not await self._wait_exit(ctr, KILL_WAIT):
            raise EngineError(f"container {ctr.id[:12]} did not exit within {KILL_WAIT:.0f}s of SIGKILL")

    async def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        ctr = self.get(ref)
        async with ctr.lock:
            if ctr.running:
                await self._stop_locked(ctr, timeout, signal)
            self._cancel_restart(ctr)
            ctr.engine["ManuallyStopped"] = False
            await self._start_locked(ctr)
        self.emit(ctr, "restart")

    # --- remove ------------------------------------------------------------------------------------
    async def remove(self, ref: str, force: bool = False, volumes: bool = False, internal: bool = False) -> None:
        try:
            ctr = self.get(ref)
        except NotFound:
            if internal:
                return
            raise
        if ctr.removing:
            if internal:
                return
            raise Conflict(f"removal of container {ctr.id} is already in progress")
        async with ctr.lock:
            if ctr.id not in self._ctrs:
                return
            if ctr.running:
                if ctr.state["Paused"] and not force:
                    raise Conflict(f"You cannot remove a paused container {ctr.id}. Unpause and then stop the "
                                   "container before attempting removal or force remove")
                if not force:
                    raise Conflict(f"You cannot remove a running container {ctr.id}. Stop the container before "
                                   "attempting removal or force remove")
                await self._stop_locked(ctr, 0, "KILL")
            self._cancel_restart(ctr)
            ctr.removing = True
            ctr.state["Status"] = "removing"
        if ctr.cleanup is not None:
            with contextlib.suppress(BaseException):
                await ctr.cleanup
        async with ctr.lock:
            try:
                await self._run_blocking(self._remove_on_disk, ctr)
            except BaseException:
                ctr.removing = False
                ctr.state["Status"] = "dead"
                ctr.state["Dead"] = True
                raise
            self._ctrs.pop(ctr.id, None)
            if self._names.get(ctr.name) == ctr.id:
                del self._names[ctr.name]
        with contextlib.suppress(EngineError):
            await self.monitor.request("ack", id=ctr.id, generation=ctr.engine.get("Generation", 0)) \
                if self.monitor.connected else None
        self.emit(ctr, "destroy")
        if volumes and self.volumes is not None:
            for entry in ctr.engine.get("Volumes") or ():
                if entry.get("Anonymous"):
                    with contextlib.suppress(EngineError):  # another container may use it too
                        await self._run_blocking(self.volumes.remove, entry["Name"])
        if not ctr.removed.done():
            ctr.removed.set_result(ctr.state["ExitCode"])

    def _remove_on_disk(self, ctr: Ctr) -> None:
        self._unmount(ctr.id)
        self.images.release_container(ctr.engine["Snapshot"])
        shutil.rmtree(self._bundle(ctr.id), ignore_errors=True)
        shutil.rmtree(self._dir(ctr.id), ignore_errors=True)

    # --- wait ----------------------------------------------------------------------------------------
    def wait_for(self, ref: str, condition: str | None) -> Callable[[], Any]:
        """Check now (404 before any header), return a coroutine function giving (code, error)."""
        condition = condition or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        ctr = self.get(ref)
        future: asyncio.Future | None = None
        if condition == "removed":
            future = ctr.removed
        elif condition == "next-exit" or ctr.running or ctr.state["Restarting"]:
            future = asyncio.get_running_loop().create_future()
            ctr.exit_waiters.append(future)

        async def result() -> tuple[int, str]:
            if future is None:
                return ctr.state["ExitCode"], ""
            code = await asyncio.shield(future)
            return code, ctr.state.get("Error", "") if condition != "removed" else ""

        return result

    # --- attach and logs -------------------------------------------------------------------------------
    def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool, detach_keys: str | None) -> AttachSession:
        ctr = self.get(ref)
        keys = parse_detach_keys(detach_keys, "detach")
        if not (stdin and ctr.tty):
            keys = b""  # as dockerd: without a terminal, stdin is data (ctrl-p ctrl-q included)
        open_stdin = bool(ctr.rec["Config"].get("OpenStdin"))
        session = AttachSession(self, ctr, stdin and open_stdin, stdout, stderr, keys)
        ctr.attaches.append(session)
        self.emit(ctr, "attach")
        return session

    async def resize(self, ref: str, height: int, width: int) -> None:
        ctr = self.get(ref)
        if not ctr.running:
            raise Conflict(f"Container {ctr.id} is not running")
        with contextlib.suppress(MonitorError):
            await self.monitor.request("resize", id=ctr.id, h=height, w=width)
        self.emit(ctr, "resize", height=str(height), width=str(width))

    def logs(self, ref: str, query: LogQuery, follow: bool) -> tuple[bool, AsyncIterator[bytes]]:
        """(tty, body): the container's log as stdcopy frames (raw bytes for a TTY)."""
        from .monitorwire import frame

        ctr = self.get(ref)
        path = ctr.rec["LogPath"]
        if not path:
            raise InvalidArgument('configured logging driver does not support reading')
        tty = ctr.tty

        def encode(entries) -> bytes:
            parts = []
            for entry in entries:
                data = query.render(entry)
                parts.append(data if tty else frame(entry.stream, data))
            return b"".join(parts)

        async def body() -> AsyncIterator[bytes]:
            reader = LogReader(path, query)
            try:
                entries = await self._run_blocking(reader.read_available)
                entries = tail_entries(entries, query.tail)
                if entries:
                    yield encode(entries)
                if not follow or reader.done or not (ctr.running or ctr.state["Restarting"]):
                    return
                done = ctr.run_done
                while not reader.done:
                    finished = False
                    try:
                        await asyncio.wait_for(done.wait(), 0.1)
                        finished = True
                    except TimeoutError:
                        pass
                    chunk = encode(reader.read_available())
                    if chunk:
                        yield chunk
                    if finished or ctr.id not in self._ctrs:
                        return
            finally:
                reader.close()

        return tty, body()

    # --- rename, pause ------------------------------------------------------------------------------------
    async def rename(self, ref: str, new_name: str) -> None:
        ctr = self.get(ref)
        if not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        stored = containerconfig.check_name(new_name)
        short = stored[1:]
        async with ctr.lock:
            old = ctr.name
            if short == old:
                raise InvalidArgument("Renaming a container with the same name as its current name")
            if short in self._names:
                raise Conflict(f'Error when allocating new name: Conflict. The container name "{stored}" is '
                               f'already in use by container "{self._names[short]}". You have to remove (or '
                               f'rename) that container to be able to reuse that name.')
            self._names[short] = ctr.id
            del self._names[old]
            ctr.rec["Name"] = stored
            self._save(ctr)
        self.emit(ctr, "rename", oldName="/" + old)

    def _freeze(self, ctr: Ctr, frozen: bool) -> None:
        from ..cgroups import open_manager

        cgroup = open_manager(f"{CGROUP_PARENT}/{ctr.id}")
        if frozen:
            cgroup.freeze()
        else:
            cgroup.thaw()

    async def pause(self, ref: str) -> None:
        ctr = self.get(ref)
        async with ctr.lock:
            if not ctr.running:
                raise Conflict(f"Container {ctr.id} is not running")
            if ctr.state["Paused"]:
                raise Conflict(f"Container {ctr.id} is already paused")
            await self._run_blocking(self._freeze, ctr, True)
            ctr.state.update(Paused=True, Status="paused")
            self._save(ctr)
        self.emit(ctr, "pause")

    async def unpause(self, ref: str) -> None:
        ctr = self.get(ref)
        async with ctr.lock:
            if not ctr.state["Paused"]:
                raise Conflict(f"Container {ctr.id} is not paused")
            await self._run_blocking(self._freeze, ctr, False)
            ctr.state.update(Paused=False, Status="running")
            self._save(ctr)
        self.emit(ctr, "unpause")

    # --- top and stats ----------------------------------------------------------------------------------
    def pids(self, ctr: Ctr) -> list[int]:
        from ..cgroups import open_manager

        return open_manager(f"{CGROUP_PARENT}/{ctr.id}").pids()

    async def top(self, ref: str, ps_args: str) -> tuple[list[str], list[list[str]]]:
        ctr = self.get(ref)
        if not ctr.running:
            raise Conflict(f"Container {ctr.id} is not running")
        pids = set(await self._run_blocking(self.pids, ctr))
        args = ps_args.split(" ") if ps_args else ["-ef"]  # dockerd splits on single spaces
        proc = await asyncio.create_subprocess_exec("ps", *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            # dockerd's words: the first line of what ps said, or its exit status.
            first = err.decode(errors="replace").split("\n", 1)[0]
            raise EngineError(f"ps: {first or f'exit status {proc.returncode}'}")
        lines = out.decode(errors="replace").splitlines()
        if not lines:
            return [], []
        titles = lines[0].split()
        try:
            pid_col = titles.index("PID")
        except ValueError:
            raise InvalidArgument(f"Couldn't find PID field in ps output: {lines[0]}") from None
        processes = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
                processes.append(fields)
        self.emit(ctr, "top")
        return titles, processes

    def stats_sample(self, ctr: Ctr) -> dict:
        """One stats reading in Docker's shape (without name/id/read), in a worker thread."""
        from ..cgroups import open_manager

        if not ctr.running:
            return {}
        cgroup = open_manager(f"{CGROUP_PARENT}/{ctr.id}")
        try:
            return cgroup.stats()
        except OSError:
            return {}

    # --- listing -----------------------------------------------------------------------------------------
    def list(self, all: bool = False, filters: dict[str, list[str]] | None = None, limit: int = -1,
             latest: bool = False) -> list[Ctr]:
        filters = filters or {}
        allowed = {"id", "name", "label", "status", "exited", "ancestor", "before", "since", "isTask",
                   "volume", "network", "health", "publish", "expose"}
        for key in filters:
            if key not in allowed:
                raise InvalidArgument(f"Invalid filter '{key}'")
        for status in filters.get("status", []):
            if status not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
                raise InvalidArgument(f"Invalid filter 'status={status}'")
        for health in filters.get("health", []):
            if health not in ("starting", "healthy", "unhealthy", "none"):
                raise InvalidArgument(f"Unrecognised filter value for health: {health}")
        ctrs = sorted(self._ctrs.values(), key=lambda c: c.rec["Created"], reverse=True)
        if filters.get("before"):
            edge = self.get(filters["before"][0]).rec["Created"]
            ctrs = [c for c in ctrs if c.rec["Created"] < edge]
        if filters.get("since"):
            edge = self.get(filters["since"][0]).rec["Created"]
            ctrs = [c for c in ctrs if c.rec["Created"] > edge]
        explicit_status = bool(filters.get("status") or filters.get("exited"))
        out = []
        for ctr in ctrs:
            status = ctr.state["Status"]
            if not all and not explicit_status and status not in ("running", "paused", "restarting"):
                continue
            if not self._matches(ctr, filters):
                continue
            out.append(ctr)
        if latest:
            out = out[:1]
        if limit is not None and limit > 0:
            out = out[:limit]
        return out

    def _matches(self, ctr: Ctr, filters: dict[str, list[str]]) -> bool:
        if filters.get("id") and not any(ctr.id.startswith(v) for v in filters["id"]):
            return False
        if filters.get("name"):
            import re

            if not any(re.search(v.lstrip("/"), ctr.name) for v in filters["name"]):
                return False
        labels = ctr.rec["Config"].get("Labels") or {}
        for cond in filters.get("label", []):
            key, eq, value = cond.partition("=")
            if key not in labels or (eq and labels[key] != value):
                return False
        if filters.get("status") and ctr.state["Status"] not in filters["status"]:
            return False
        if filters.get("exited"):
            if ctr.running or ctr.state["StartedAt"] == ZERO_TIME:
                return False
            if str(ctr.state["ExitCode"]) not in filters["exited"]:
                return False
        if filters.get("ancestor"):
            if not any(self._descends(ctr, a) for a in filters["ancestor"]):
                return False
        if filters.get("network"):
            names = set((ctr.rec.get("NetworkSettings") or {}).get("Networks") or ())
            mode = ctr.rec["HostConfig"].get("NetworkMode") or "default"
            names.add("bridge" if mode == "default" else mode)
            ids = {e.get("NetworkID") for e in ((ctr.rec.get("NetworkSettings") or {}).get("Networks") or {}).values()}
            if not any(n in names or any(i and i.startswith(n) for i in ids) for n in filters["network"]):
                return False
        if filters.get("volume"):
            used = {v.get("Name") for v in ctr.engine.get("Volumes") or ()} | {
                v.get("Destination") for v in ctr.engine.get("Volumes") or ()}
            used |= {p.source for p in mounts.bind_like(ctr.rec["HostConfig"])} | {
                p.destination for p in mounts.bind_like(ctr.rec["HostConfig"])}
            if not any(v in used for v in filters["volume"]):
                return False
        if filters.get("health"):
            health = (ctr.state.get("Health") or {}).get("Status") or "none"
            if health not in filters["health"]:
                return False
        return True

    def _descends(self, ctr: Ctr, ancestor: str) -> bool:
        if ctr.rec["Config"].get("Image") == ancestor:
            return True
        try:
            return self.images.resolve(ancestor) == ctr.rec["Image"]
        except EngineError:
            return False

    def size_rw(self, ctr: Ctr) -> int:
        try:
            return self.images.container_usage(ctr.engine["Snapshot"])
        except Exception:  # noqa: BLE001
            return 0

    def sizes(self, ctr: Ctr) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): what the container wrote, and that plus its image, as dockerd counts."""
        size_rw = self.size_rw(ctr)
        try:
            return size_rw, size_rw + self.images.image_size(ctr.rec["Image"])
        except Exception:  # noqa: BLE001 - an image gone from under a container: dockerd says -1 too
            return size_rw, -1

    # --- prune -------------------------------------------------------------------------------------------------
    async def prune(self, filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
        filters = filters or {}
        for key in filters:
            if key not in ("label", "label!", "until"):
                raise InvalidArgument(f"Invalid filter '{key}'")
        until = None
        if filters.get("until"):
            from .images import parse_timestamp

            until = parse_timestamp(filters["until"][0])
        deleted, reclaimed = [], 0
        for ctr in list(self._ctrs.values()):
            if ctr.running or ctr.state["Restarting"] or ctr.removing:
                continue
            labels = ctr.rec["Config"].get("Labels") or {}
            if not all(_label_holds(labels, c) for c in filters.get("label", [])):
                continue
            if any(_label_holds(labels, c) for c in filters.get("label!", [])):
                continue
            if until is not None and parse_time(ctr.rec["Created"]) >= until:
                continue
            size = await self._run_blocking(self.size_rw, ctr)
            try:
                await self.remove(ctr.id, internal=True)
            except EngineError as err:
                log.warning("prune: %s", err.message)
                continue
            deleted.append(ctr.id)
            reclaimed += size
        self._emit("container", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    # --- networks --------------------------------------------------------------------------------------------
    async def connect(self, net_ref: str, ref: str, endpoint_config: dict) -> None:
        """`network connect`: the endpoint goes into the record; a running container gets it at once."""
        if self.networks is None:
            raise NotSupported("networks are not available in this engine")
        net = await self._run_blocking(self.networks.get, net_ref)
        ctr = self.get(ref)
        async with ctr.lock:
            if self.networks.mode_network(ctr.rec["HostConfig"]) is None:
                raise InvalidArgument("container sharing network namespace with another container or host cannot "
                                      "be connected to any other network")
            networks = self._networks_of(ctr)
            if net["Name"] in networks:
                raise Forbidden(f"endpoint with name {ctr.name} already exists in network {net['Name']}")
            endpoint = self.networks.endpoint_for(net, endpoint_config if isinstance(endpoint_config, dict) else {})
            networks[net["Name"]] = endpoint
            if ctr.running:
                try:
                    await self._run_blocking(self.networks.attach_one, ctr.id, net, endpoint)
                    await self.networks.serve_names(networks)
                except BaseException:
                    networks.pop(net["Name"], None)
                    raise
            self._save(ctr)

    async def disconnect(self, net_ref: str, ref: str, force: bool = False) -> None:
        if self.networks is None:
            raise NotSupported("networks are not available in this engine")
        net = await self._run_blocking(self.networks.get, net_ref)
        ctr = self.get(ref)
        async with ctr.lock:
            networks = self._networks_of(ctr)
            endpoint = networks.get(net["Name"])
            if endpoint is None:
                raise Forbidden(f"container {ctr.id} is not connected to network {net['Name']}")
            if ctr.running and endpoint.get("IPAddress"):
                await self._run_blocking(self.networks.detach_one, ctr.id, endpoint)
            del networks[net["Name"]]
            self._save(ctr)

    # --- filesystem: cp, export, diff, update ----------------------------------------------------------------
    async def hold_rootfs(self, ctr: Ctr) -> Callable[[], Any]:
        """Keep the container's root filesystem mounted (it is while it runs); returns the release."""
        async with ctr.lock:
            if ctr.removing:
                raise Conflict(f"container {ctr.id} is being removed")
            ctr.mount_holds += 1
            try:
                await self._run_blocking(self._mount_rootfs, ctr)
            except BaseException:
                ctr.mount_holds -= 1
                raise

        async def release() -> None:
            async with ctr.lock:
                ctr.mount_holds -= 1
                if ctr.mount_holds == 0 and not ctr.running:
                    await self._run_blocking(self._unmount, ctr.id)

        return release

    def _mount_rootfs(self, ctr: Ctr) -> None:
        from ..snapshots import mount_all

        rootfs = self._rootfs(ctr.id)
        os.makedirs(rootfs, mode=0o755, exist_ok=True)
        if not os.path.ismount(rootfs):
            mount_all(self.images.container_mounts(ctr.engine["Snapshot"]), rootfs)

    async def _helper(self, ctr: Ctr, command: str, *args: str, stdin: bool = False):
        """Start the archive helper in `ctr`'s root; returns (process, first JSON line, release)."""
        from .archive import helper_argv, stopped_binds

        release = await self.hold_rootfs(ctr)
        try:
            env = None
            if ctr.running and command != "export":
                enter = f"pid:{ctr.state['Pid']}"
            else:
                enter = f"root:{self._rootfs(ctr.id)}"
                if command != "export":  # cp of a stopped container sees its binds, as dockerd's does
                    release = await self._hold_volumes(ctr, release)
                    files = {"/etc/hosts": ctr.rec["HostsPath"], "/etc/hostname": ctr.rec["HostnamePath"],
                             "/etc/resolv.conf": ctr.rec["ResolvConfPath"]}
                    files = {dest: path for dest, path in files.items() if os.path.exists(path)}
                    env = dict(os.environ, DOCKYARD_ARCHIVE_BINDS=jsonio.dumps(
                        stopped_binds(ctr.rec["HostConfig"], files, ctr.engine.get("Volumes"))))
            proc = await asyncio.create_subprocess_exec(
                *helper_argv(command, enter, *args), stdin=asyncio.subprocess.PIPE if stdin else
                asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                limit=1 << 20, env=env)
        except BaseException:
            await release()
            raise
        return proc, release

    async def _hold_volumes(self, ctr: Ctr, release: Callable[[], Any]) -> Callable[[], Any]:
        """A stopped container's volumes with options mounted for one cp helper; returns the release of
        both the volumes and `release`."""
        entries = ctr.engine.get("Volumes") or []
        if not entries or self.volumes is None:
            return release
        user = f"{ctr.id}/cp-{os.urandom(4).hex()}"
        await self._run_blocking(self.volumes.mount, user, entries, False)

        async def release_both() -> None:
            try:
                await self._run_blocking(self.volumes.unmount, user, entries, False)
            finally:
                await release()

        return release_both

    async def _helper_line(self, proc, release, ctr: Ctr, path: str) -> dict:
        line = await proc.stdout.readline()
        if not line:
            err = (await proc.stderr.read()).decode(errors="replace").strip()
            await proc.wait()
            await release()
            raise EngineError(f"copying failed: {err.splitlines()[-1] if err else 'the helper died'}")
        answer = jsonio.loads(line)
        if "error" in answer:
            await proc.wait()
            await release()
            if answer.get("kind") == "notfound":
                raise NotFound(f"Could not find the file {path} in container {ctr.name}")
            if answer.get("kind") == "refused":
                raise EngineError(answer["error"])
            raise InvalidArgument(answer["error"])
        return answer

    async def archive_stat(self, ref: str, path: str) -> dict:
        ctr = self.get(ref)
        proc, release = await self._helper(ctr, "stat", path)
        answer = await self._helper_line(proc, release, ctr, path)
        await proc.wait()
        await release()
        return answer

    async def archive_get(self, ref: str, path: str) -> tuple[dict, AsyncIterator[bytes]]:
        ctr = self.get(ref)
        proc, release = await self._helper(ctr, "get", path)
        stat = await self._helper_line(proc, release, ctr, path)
        self.emit(ctr, "archive-path")

        return stat, helper_output(proc, release)

    async def archive_put(self, ref: str, path: str, chunks: AsyncIterator[bytes],
                          no_overwrite_dir_non_dir: bool = False) -> None:
        ctr = self.get(ref)
        refusal = mounts.write_refusal(ctr.rec["HostConfig"], path, ctr.engine.get("Volumes"))  # said once the path is found, as dockerd
        proc, release = await self._helper(ctr, "put", path, "1" if no_overwrite_dir_non_dir else "0", refusal,
                                           stdin=True)
        try:
            async for chunk in chunks:
                proc.stdin.write(chunk)
                with contextlib.suppress(ConnectionError):
                    await proc.stdin.drain()
            proc.stdin.close()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            await release()
            raise
        await self._helper_line(proc, release, ctr, path)
        await proc.wait()
        await release()
        self.emit(ctr, "extract-to-dir")

    async def export(self, ref: str) -> AsyncIterator[bytes]:
        ctr = self.get(ref)
        proc, release = await self._helper(ctr, "export")
        await self._helper_line(proc, release, ctr, "/")
        self.emit(ctr, "export")

        return helper_output(proc, release)

    async def changes(self, ref: str) -> list[tuple[str, str]]:
        """`docker diff`: (kind, path) for what the container changed: A added, C changed, D deleted."""
        ctr = self.get(ref)
        release = await self.hold_rootfs(ctr)
        try:
            return await self._run_blocking(self._changes, ctr)
        finally:
            await release()

    def _changes(self, ctr: Ctr) -> list[tuple[str, str]]:
        from ..errors import NotSupported

        mounts = self.images.container_mounts(ctr.engine["Snapshot"])
        lowers: list[str] = []
        for m in mounts:
            for opt in m.options:
                if opt.startswith("lowerdir="):
                    lowers = opt[len("lowerdir="):].split(":")
        if not mounts or mounts[0].type != "overlay":
            if mounts and mounts[0].type == "bind":
                lowers = []
            else:
                raise NotSupported("docker diff needs the overlay snapshotter")
        upper = self.images.container_upper_dir(ctr.engine["Snapshot"])
        return overlay_changes(upper, lowers)

    async def update(self, ref: str, body: dict) -> list[str]:
        """`docker update`: resources and the restart policy; running containers get the new limits at once."""
        ctr = self.get(ref)
        if not isinstance(body, dict):
            raise InvalidArgument("update configuration must be a JSON object")
        async with ctr.lock:
            hc = dict(ctr.rec["HostConfig"])
            for key, value in body.items():
                if key == "RestartPolicy":
                    if value and value.get("Name"):
                        hc["RestartPolicy"] = {"Name": value["Name"],
                                               "MaximumRetryCount": value.get("MaximumRetryCount") or 0}
                elif key in containerconfig.HOST_CONFIG_DEFAULTS and value not in (None, 0, "", []):
                    hc[key] = value
            if hc.get("Memory") and not body.get("MemorySwap") and hc.get("MemorySwap", 0) > 0 \
                    and hc["MemorySwap"] < hc["Memory"]:
                hc["MemorySwap"] = 0
            containerconfig.check_resources(hc)
            containerconfig.check_restart_policy(hc)
            if ctr.running:
                await self._run_blocking(self._apply_resources, ctr, hc)
            ctr.rec["HostConfig"] = hc
            self._save(ctr)
        self.emit(ctr, "update")
        return []

    def _apply_resources(self, ctr: Ctr, hc: dict) -> None:
        from ..cgroups import open_manager

        resources = ocispec.resources(hc, bool(hc.get("Privileged")))
        resources.pop("devices", None)
        open_manager(f"{CGROUP_PARENT}/{ctr.id}").update(resources)

    async def commit(self, ref: str, repo: str = "", tag: str = "", author: str = "", comment: str = "",
                     changes: list[str] | None = None, config: dict | None = None, pause: bool = True) -> str:
        """`docker commit`: a new image from the container's changes (paused meanwhile, as docker does)."""
        from .commit import commit_image

        ctr = self.get(ref)
        if config is not None and not isinstance(config, dict):
            raise InvalidArgument("commit config must be a JSON object")
        release = await self.hold_rootfs(ctr)
        paused = False
        try:
            if pause and ctr.running and not ctr.state["Paused"]:
                await self._run_blocking(self._freeze, ctr, True)
                paused = True
            command = [ctr.rec["Path"], *ctr.rec["Args"]]
            image_id = await self._run_blocking(
                lambda: commit_image(self.images, ctr.id, ctr.rec["Image"], ctr.engine["Snapshot"],
                                     ctr.rec["Config"], command, repo, tag, author, comment, changes, config))
        finally:
            if paused:
                await self._run_blocking(self._freeze, ctr, False)
            await release()
        self.emit(ctr, "commit", comment=comment)
        return image_id

    # --- shutdown -----------------------------------------------------------------------------------------------
    async def close(self) -> None:
        """The daemon stops: containers keep running under the monitor (live restore)."""
        for ctr in self._ctrs.values():
            if ctr.restart_timer is not None:
                ctr.restart_timer.cancel()
        if self.health is not None:
            await self.health.close()
        await self.monitor.close()


# Empty files the runtime creates as mount points for the engine's bind mounts (docker keeps them
# in an "init" layer below the container's, so they never show in its diff or commits).
MOUNT_POINTS = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


def overlay_changes(upper: str, lowers: list[str]) -> list[tuple[str, str]]:
    """What an overlay upper directory changed over its lower ones, as docker diff lists it."""
    out: list[tuple[str, str]] = []
    skipped = set()
    for rel in MOUNT_POINTS:
        path = os.path.join(upper, rel)
        if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == 0:
            skipped.add(rel)

    def in_lower(rel: str) -> bool:
        return any(os.path.lexists(os.path.join(lower, rel)) for lower in lowers)

    for directory, dirs, files in os.walk(upper):
        dirs.sort()
        rel_dir = os.path.relpath(directory, upper)
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            if rel in skipped:
                continue
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(("D", "/" + rel))
            elif in_lower(rel):
                out.append(("C", "/" + rel))
            else:
                out.append(("A", "/" + rel))
    # A directory copied up only to hold such mount points has not changed either.
    for parent in {os.path.dirname(rel) for rel in skipped}:
        entries = set(os.listdir(os.path.join(upper, parent)))
        if entries <= {os.path.basename(rel) for rel in skipped if os.path.dirname(rel) == parent}:
            out = [change for change in out if change != ("C", "/" + parent)]
    out.sort(key=lambda change: change[1])
    return out


def _is_container_id(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _label_holds(labels: dict, cond: str) -> bool:
    key, eq, value = cond.partition("=")
    return key in labels and (not eq or labels[key] == value)


def make_working_dir(rootfs: str, workdir: str) -> None:
    """dockerd's SetupWorkingDirectory: the directory, made as root (0755) with its parents, symlinks
    resolved inside the container's root; a non-directory there is an error."""
    from ..runtime.process import mkdir_all
    from ..runtime.rootfs import secure_join

    path = secure_join(rootfs, workdir)
    try:
        mkdir_all(path)
    except OSError as err:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise EngineError(f"Cannot mkdir: {workdir} is not a directory") from None
        where = os.path.relpath(err.filename or path, rootfs)
        raise EngineError(f"mkdir /{'' if where == '.' else where}: {os.strerror(err.errno).lower()}") from None


NOT_A_DIRECTORY_HINT = (": Are you trying to mount a directory onto a file (or vice-versa)? Check if the specified "
                        "host path exists and is the expected type")


def failure_exit_code(message: str) -> int:
    """dockerd's exit code for a container whose program could not be started."""
    lowered = message.lower()
    if "not a directory" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    return 128


def runtime_error_text(prefix: str, message: str) -> str:
    """dockerd's words for a runtime that could not start a process (its translateContainerdStartErr)."""
    text = f"{prefix}: {message}: unknown"
    if "not a directory" in text.lower():
        text += NOT_A_DIRECTORY_HINT
    return text


def start_error(message: str) -> EngineError:
    text = runtime_error_text("OCI runtime create failed", message)
    if failure_exit_code(message) in (126, 127):
        return InvalidArgument(text)
    return EngineError(text)


def resolv_conf(host: str, host_config: dict) -> str:
    """The container's resolv.conf: the host's without loopback nameservers (they would not answer
    inside the container's network namespace), or the user's --dns/--dns-search/--dns-option."""
    lines = []
    servers = list(host_config.get("Dns") or [])
    searches = list(host_config.get("DnsSearch") or [])
    options = list(host_config.get("DnsOptions") or [])
    for line in host.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            if not servers and not (words[1].startswith("127.") or words[1] == "::1"):
                lines.append(line)
        elif words[0] == "search" and searches:
            continue
        elif words[0] == "options" and options:
            continue
        else:
            lines.append(line)
    for server in servers:
        lines.append(f"nameserver {server}")
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n" if lines else ""


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
