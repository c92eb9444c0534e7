"""`exec`: start another process inside a running container."""

from __future__ import annotations

import copy
import os

from .. import jsonio
from ..errors import EngineError, InvalidArgument
from ..linux import ns as lns
from ..linux import proc as lproc
from . import create, init, process
from . import spec as specmod
from .state import Container
from .sync import ChildError


class ExecOptions:
    __slots__ = ("process", "args", "detach", "pid_file", "tty", "console_socket", "preserve_fds", "env", "cwd",
                 "user", "additional_gids", "caps", "no_new_privs")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


def build_process(config: dict, opts: ExecOptions) -> dict:
    """The Process to run: --process FILE, or the container's process with the command-line overrides."""
    if opts.process:
        try:
            with open(opts.process, "rb") as f:
                proc = jsonio.loads(f.read())
        except OSError as err:
            raise InvalidArgument(f"open {opts.process}: {err.strerror}") from None
        except ValueError as err:
            raise InvalidArgument(f"parsing {opts.process}: {err}") from None
        specmod.validate_process(proc, "process")
        if opts.tty:
            proc["terminal"] = True
        return proc
    if not opts.args:
        raise InvalidArgument("exec: no command given (args or --process)")
    proc = copy.deepcopy(config.get("process") or {})
    proc["args"] = list(opts.args)
    proc["terminal"] = bool(opts.tty)
    env = list(proc.get("env") or [])
    for entry in opts.env or []:
        key = entry.split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != key] + [entry]
    proc["env"] = env
    if opts.cwd:
        proc["cwd"] = opts.cwd
    if opts.user:
        uid, _, gid = opts.user.partition(":")
        try:
            proc["user"] = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise InvalidArgument(f"invalid --user {opts.user!r}: expected UID[:GID]") from None
    if opts.additional_gids:
        proc.setdefault("user", {})["additionalGids"] = [int(g) for g in opts.additional_gids]
    if opts.caps:
        caps = proc.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted", "ambient"):
            caps[kind] = sorted(set(caps.get(kind) or []) | set(opts.caps))
    if opts.no_new_privs:
        proc["noNewPrivileges"] = True
    specmod.validate_process(proc, "process")
    return proc


def execute(root: str, cid: str, opts: ExecOptions) -> int:
    c = Container.load(root, cid)
    c.check("exec")
    config = c.config()
    proc = build_process(config, opts)
    terminal = bool(proc.get("terminal"))
    if terminal and opts.detach and not opts.console_socket:
        raise InvalidArgument("cannot allocate tty if runc will detach without setting console socket")
    if opts.console_socket and not terminal:
        raise InvalidArgument("cannot use console socket if runc will not detach or allocate tty")
    pid = c.pid
    namespaces = {kind: f"/proc/{pid}/ns/{lns.KIND_PROC[kind]}" for kind in c.record.get("namespaces", [])}
    # Joining our own user namespace again is EINVAL: skip it when it is the host's.
    if "user" in namespaces and os.readlink(namespaces["user"]) == os.readlink("/proc/self/ns/user"):
        del namespaces["user"]
    cfg = init.InitConfig(spec=config, process=proc, namespaces=namespaces,
                          preserve_fds=create._preserved(opts.preserve_fds), console=terminal)
    process.preload(config, proc)
    if not opts.detach:
        lproc.set_child_subreaper()
    channel, exec_pid = create._spawn(config, namespaces, create.CgroupSetup(manager=c.cgroup()), cfg,
                                      init.exec_init, opts)
    console_fd = -1
    try:
        while True:
            msg, fd = channel.recv()
            if msg is None:
                raise EngineError("exec process exited unexpectedly")
            if msg["t"] == "console":
                if opts.console_socket:
                    try:
                        create.send_console(opts.console_socket, fd)
                    finally:
                        os.close(fd)
                else:
                    console_fd = fd
            elif msg["t"] == "error":
                raise ChildError(msg["msg"])
            elif msg["t"] == "ready":
                break
        # After "ready" the process execs; the close-on-exec channel then reads EOF.
        msg, _ = channel.recv()
        if msg is not None and msg["t"] == "error":
            raise ChildError(msg["msg"])
    except BaseException:
        if console_fd >= 0:
            os.close(console_fd)
        _reap_quietly(exec_pid)
        raise
    finally:
        channel.close()
    if opts.pid_file:
        from .state import write_atomic

        write_atomic(os.path.abspath(opts.pid_file), str(exec_pid).encode(), 0o644)
    if opts.detach:
        return 0
    from .run import wait_foreground

    return wait_foreground(exec_pid, console_fd)


def _reap_quietly(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
