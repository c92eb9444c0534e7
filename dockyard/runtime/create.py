"""`create` (and the start-up half of `run` and `exec`): the runtime's side of `sync`'s drawing."""

from __future__ import annotations

import _signal  # not `signal`: its enums cost start-up time
import os

from ..errors import EngineError, InvalidArgument, NotFound
from ..linux import ns as lns
from . import hooks, init, process
from . import spec as specmod
from .state import Container, now_rfc3339, proc_start_time, write_atomic
from .sync import Channel, ChildError

# Device rules every container gets on top of the spec's (runc's AllowedDevices):
# mknod of anything, and rwm on the nodes the runtime itself creates.
DEFAULT_DEVICE_RULES = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
]


class Options:
    """The flags of `create`/`run` (and the globals they need)."""

    __slots__ = ("root", "bundle", "pid_file", "console_socket", "no_pivot", "no_new_keyring", "preserve_fds",
                 "systemd_cgroup", "log")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


class Launched:
    __slots__ = ("container", "pid", "channel", "console_fd")

    def __init__(self, container: Container, pid: int, channel: Channel | None, console_fd: int = -1):
        self.container = container
        self.pid = pid
        self.channel = channel
        self.console_fd = console_fd  # the pty master, when `run` holds the terminal itself


def resolve_bundle(bundle: str | None) -> str:
    path = os.path.abspath(bundle or os.getcwd())
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise InvalidArgument(f"chdir {path}: not a directory")
        raise NotFound(f"chdir {path}: no such file or directory")
    return path


def cgroup_resources(spec: dict) -> dict:
    linux = spec.get("linux") or {}
    resources = dict(linux.get("resources") or {})
    rules = list(resources.get("devices") or [])
    for d in linux.get("devices") or []:
        kind = d["type"]
        if kind == "p":
            continue  # a fifo: the device cgroup only governs char and block nodes
        rules.append({"allow": True, "type": "c" if kind == "u" else kind, "major": d.get("major"),
                      "minor": d.get("minor"), "access": "rwm"})
    resources["devices"] = rules + DEFAULT_DEVICE_RULES
    return resources


def default_cgroup_path(cid: str) -> str:
    return "/" + cid


def launch(cid: str, opts: Options, *, use_fifo: bool) -> Launched:
    """Set a container up and leave its init waiting to be started (see `sync`)."""
    bundle = resolve_bundle(opts.bundle)
    spec = specmod.load(bundle)
    proc_spec = spec.get("process")
    if proc_spec is None and not use_fifo:
        raise InvalidArgument("config.json: process is required to run a container")
    # Without a process `create` still works and `start` refuses (the spec; runc refuses `create`).
    terminal = bool((proc_spec or {}).get("terminal"))
    if terminal and not opts.console_socket and use_fifo:
        raise InvalidArgument("cannot allocate tty if runc will detach without setting console socket")
    if opts.console_socket and not terminal:
        raise InvalidArgument("cannot use console socket if runc will not detach or allocate tty")
    namespaces = specmod.namespaces(spec)
    linux = spec.get("linux") or {}
    from .rootfs import validate_sysctls

    validate_sysctls(linux.get("sysctl") or {}, namespaces)
    if linux.get("seccomp") is not None:
        from .seccomp import validate

        validate(linux["seccomp"])
    if "mount" not in namespaces and (linux.get("maskedPaths") or linux.get("readonlyPaths")):
        raise InvalidArgument("unable to restrict sys entries without a private MNT namespace")

    cgroup_path = linux.get("cgroupsPath") or default_cgroup_path(cid)
    cgroup = CgroupSetup(cgroup_path, bool(opts.systemd_cgroup), cgroup_resources(spec))
    if opts.systemd_cgroup:
        cgroup.open()  # refused on a host without systemd: say so before anything exists
    container = Container.claim(opts.root, cid)
    init_pid = 0
    channel = None
    console_fd = -1
    try:
        write_atomic(os.path.join(container.dir, "config.json"), _dumps(spec))
        container.record = {
            "ociVersion": spec.get("ociVersion", specmod.OCI_VERSION),
            "pid": 0, "pid_start": None, "bundle": bundle, "rootfs": spec["root"]["path"],
            "created": now_rfc3339(), "annotations": spec.get("annotations") or {},
            "cgroup": cgroup_path, "namespaces": sorted(namespaces), "owner": "",
        }
        if use_fifo:
            os.mkfifo(container.fifo, 0o622)
        cfg = init.InitConfig(
            spec=spec, process=proc_spec, rootfs=spec["root"]["path"], namespaces=namespaces,
            fifo=init.open_fifo(container.fifo) if use_fifo else None, no_pivot=bool(opts.no_pivot),
            no_new_keyring=bool(opts.no_new_keyring), preserve_fds=_preserved(opts.preserve_fds),
            console=bool(terminal), state_for_hooks=container.oci_state("creating"),
        )
        process.preload(spec, proc_spec or {})
        try:
            channel, init_pid = _spawn(spec, namespaces, cgroup, cfg, init.container_init, opts)
        finally:
            for fd in cfg.fifo or ():
                os.close(fd)  # the init holds its own copies
        container.record["pid"] = init_pid
        while True:
            msg, fd = channel.recv()
            if msg is None:
                raise EngineError("container init exited unexpectedly")
            kind = msg["t"]
            if kind == "hooks":
                # prestart waits for `start` (see hooks).
                state = hooks.state_for(container, "creating", init_pid)
                hooks.run("createRuntime", hooks.chosen(spec, "createRuntime"), state)
                channel.send("hooks-done")
            elif kind == "console":
                if opts.console_socket:
                    try:
                        send_console(opts.console_socket, fd)
                    finally:
                        os.close(fd)
                else:
                    console_fd = fd
            elif kind == "ready":
                break
            elif kind == "error":
                raise ChildError(msg["msg"])
        container.record["pid_start"] = proc_start_time(init_pid)
        container.save()
        if opts.pid_file:
            write_atomic(os.path.abspath(opts.pid_file), str(init_pid).encode(), 0o644)
    except BaseException:
        if console_fd >= 0:
            os.close(console_fd)
        _teardown(container, cgroup.manager, init_pid)
        raise
    return Launched(container, init_pid, channel, console_fd)


def _preserved(extra) -> int:
    count = int(extra or 0)
    listen = os.environ.get("LISTEN_FDS")
    if listen and listen.isdigit():
        count += int(listen)
    return count


def cgroup_dirs(cgroup) -> dict:
    """{hierarchy name under /sys/fs/cgroup: the container's directory in it} ("" on a pure v2 host)."""
    out = {}
    for procs in cgroup.procs_paths():
        directory = os.path.dirname(procs)
        rel = os.path.relpath(directory, cgroup.root)
        name = rel.split("/", 1)[0] if cgroup.__class__.__name__ == "V1Manager" else ""
        out[name] = directory
    return out


class CgroupSetup:
    """A container's cgroup as `_spawn` sets it up.

    The manager is opened on first use, so that its import and the scan of
    the hierarchies can overlap the init's own work; `resources` is None for
    a group that already exists (exec).
    """

    __slots__ = ("path", "systemd", "resources", "manager")

    def __init__(self, path: str = "", systemd: bool = False, resources: dict | None = None, manager=None):
        self.path = path
        self.systemd = systemd
        self.resources = resources
        self.manager = manager

    def open(self):
        if self.manager is None:
            from ..cgroups import open_manager

            self.manager = open_manager(self.path, systemd=self.systemd)
        return self.manager

    def make(self):
        manager = self.open()
        manager.create()
        manager.apply(self.resources)
        return manager


def _spawn(spec: dict, namespaces: dict, cgroup: CgroupSetup, cfg, target, opts) -> tuple[Channel, int]:
    """Fork the bridge, walk it through the namespaces, and return the target's host pid.

    Processes move themselves into the cgroup (`cgroups.join_self`: without
    the kernel's global lock, so without waiting for an RCU grace period):
    - exec, and a container with a cgroup namespace (rooted where its
      creator is) or a user namespace (inside it, the host's cgroup files are
      out of reach): the group exists before the fork and the bridge joins it
      first thing, so what it forks starts inside;
    - otherwise the bridge is let go at once, the group is made while it and
      the init set up namespaces and mounts, and a "cgroups" message tells
      the init where the group is: it joins when it first needs the group
      (its cgroup mount), and before anything is exec'd.
    """
    resources = cgroup.resources
    # A new user namespace: the init could no longer write the host's cgroup files.
    early = resources is None or "cgroup" in namespaces or "user" in namespaces
    if early:
        manager = cgroup.make() if resources is not None else cgroup.open()
        cfg.cgroup_join = manager.self_join_paths()
    parent, child = Channel.pair()
    bridge = os.fork()
    if bridge == 0:
        parent.close()
        _bridge(child, spec, namespaces, cfg, target)  # never returns
    child.close()
    try:
        parent.send("go")
        if not early:
            manager = cgroup.make()
        while True:
            msg, _ = parent.recv()
            if msg is None:
                raise EngineError("container init exited unexpectedly")
            if msg["t"] == "userns":
                write_id_maps(bridge, spec)
                parent.send("mapped")
            elif msg["t"] == "pid":
                init_pid = msg["pid"]
                break
            elif msg["t"] == "error":
                raise ChildError(msg["msg"])
        if resources is not None:
            # Only now: until "pid" the bridge reads the channel too.
            parent.send("cgroups", dirs=cgroup_dirs(manager), join=[] if early else manager.self_join_paths())
    finally:
        _reap(bridge)
    return parent, init_pid


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def write_id_maps(pid: int, spec: dict) -> None:
    linux = spec.get("linux") or {}
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux.get(key) or [])
        if lines:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(lines)


def _bridge(ch: Channel, spec: dict, namespaces: dict, cfg, target) -> None:
    """C1: join and create namespaces, fork the init, report its host pid, exit."""
    code = 0
    try:
        ch.expect("go")
        if cfg.cgroup_join:
            from ..cgroups import join_self

            join_self(cfg.cgroup_join)  # before any unshare: a cgroup namespace is rooted here
        for kind in lns.ORDER:
            path = namespaces.get(kind)
            if path:
                lns.join(path, lns.KIND_FLAG[kind])
        new = [k for k, p in namespaces.items() if not p]
        if "user" in new:
            lns.unshare(lns.KIND_FLAG["user"])
            ch.send("userns")
            ch.expect("mapped")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        flags = 0
        for kind in new:
            if kind != "user":
                flags |= lns.KIND_FLAG[kind]
        if flags:
            lns.unshare(flags)
        offsets = (spec.get("linux") or {}).get("timeOffsets")
        if "time" in new and offsets:
            with open("/proc/self/timens_offsets", "w") as f:
                for clock, off in offsets.items():
                    f.write(f"{clock} {off.get('secs', 0)} {off.get('nanosecs', 0)}\n")
        # The init must not talk on the channel before its pid is reported:
        # it waits for this pipe to close.
        hold_r, hold_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(hold_w)
            os.read(hold_r, 1)
            os.close(hold_r)
            cfg.channel = ch
            target(cfg)
            os._exit(1)  # target never returns
        os.close(hold_r)
        ch.send("pid", pid=pid)
        os.close(hold_w)
    except BaseException as err:  # noqa: BLE001
        code = 1
        try:
            ch.send("error", msg=init.describe(err))
        except OSError:
            pass
    os._exit(code)


def send_console(socket_path: str, fd: int) -> None:
    import array
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(socket_path)
        s.sendmsg([b"/dev/ptmx"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def _teardown(container: Container, cgroup, init_pid: int) -> None:
    """Undo a failed create: no process, cgroup or state may be left behind."""
    if init_pid:
        try:
            os.kill(init_pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass
        container.wait_gone(5.0)
    if cgroup is not None:
        try:
            cgroup.kill_all(_signal.SIGKILL)
        except (OSError, EngineError):
            pass
        try:
            cgroup.destroy()
        except (OSError, EngineError):
            pass
    container.remove()


def _dumps(obj) -> bytes:
    from .. import jsonio

    return jsonio.dumps(obj).encode()

