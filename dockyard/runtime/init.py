"""The container side of start-up: the init process (C2 in `sync`'s drawing).

`container_init()` runs in the forked init, already inside the new
namespaces and the cgroup, and never returns: it execs the program or exits
after telling the runtime what went wrong.  `exec_init()` is the same for a
process joining a running container.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios

from ..linux import proc as lproc
from . import hooks, process, rootfs
from .sync import Channel

# The pty ioctls Python's termios module does not export (<asm-generic/ioctls.h>).
_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


class InitConfig:
    """What the runtime hands its init across fork (plain attributes, no copying)."""

    __slots__ = ("spec", "process", "rootfs", "channel", "namespaces", "fifo", "no_pivot", "no_new_keyring",
                 "preserve_fds", "console", "state_for_hooks", "cgroup_dirs", "cgroup_join")

    def cgroups(self) -> dict:
        """The container's cgroup directories, from the runtime's "cgroups" message.

        Read once, when first needed; this process then moves itself into the
        group (see `cgroups.join_self`), unless it was born inside it.
        """
        if self.cgroup_dirs is None:
            msg = self.channel.expect("cgroups")
            if msg["join"]:
                from ..cgroups import join_self

                join_self(msg["join"])
            self.cgroup_dirs = msg["dirs"]
        return self.cgroup_dirs

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


def _exit_with(channel: Channel | None, msg: str, code: int = 1) -> None:
    try:
        if channel is not None:
            channel.send("error", msg=msg)
    finally:
        os._exit(code)


def describe(err: BaseException) -> str:
    if isinstance(err, process.ExecError):
        return f"unable to start container process: {err}"
    if isinstance(err, rootfs.MountError):
        return f"unable to start container process: error during container init: {err}"
    return str(err) or type(err).__name__


def setup_terminal(channel: Channel, process_spec: dict) -> None:
    """A pty from the container's own devpts: the master goes to the runtime, the slave becomes stdio."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0"))[0]
    slave_path = f"/dev/pts/{number}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    size = process_spec.get("consoleSize")
    if size:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))
    user = process_spec.get("user") or {}
    os.fchown(slave, user.get("uid", 0), user.get("gid", 0))
    channel.send_fd("console", master)
    os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)


def container_init(cfg: InitConfig) -> None:
    ch = cfg.channel
    try:
        spec = cfg.spec
        proc_spec = cfg.process
        ns = cfg.namespaces
        linux = spec.get("linux") or {}
        fifo_fds = cfg.fifo  # (read end, write end) from the runtime, or None
        if "mount" in ns:
            rootfs.prepare(spec, cfg.rootfs, cgroupns="cgroup" in ns, userns="user" in ns,
                           cgroup_dirs=cfg.cgroups)
        if "uts" in ns:
            if spec.get("hostname"):
                lproc.sethostname(spec["hostname"])
            if spec.get("domainname"):
                lproc.setdomainname(spec["domainname"])
        cfg.cgroups()  # in our cgroup (joined now if not yet) before any hook or exec
        # The runtime runs createRuntime hooks now, in its own namespaces (prestart: in `start`).
        ch.send("hooks")
        ch.expect("hooks-done")
        hooks.run("createContainer", hooks.chosen(spec, "createContainer"), _hook_state(cfg, "creating", 1))
        if "mount" in ns:
            rootfs.enter(cfg.rootfs, cfg.no_pivot)
        else:
            os.chroot(cfg.rootfs)
            os.chdir("/")
        if proc_spec is not None and proc_spec.get("cwd"):
            # As runc: the init's working directory is made if missing, in the new root,
            # before a read-only root is remounted so (an exec's is not: it fails to chdir).
            process.make_cwd(proc_spec["cwd"])
        if cfg.console:
            setup_terminal(ch, proc_spec)
        if "mount" in ns:
            rootfs.finalize(spec)
        else:
            rootfs.set_sysctls(linux.get("sysctl") or {})
        if not cfg.no_new_keyring:
            try:
                lproc.join_session_keyring()
            except OSError:
                pass  # keyrings disabled (or no keyctl in a seccomp'd parent): runc carries on too
        late_filter = None
        if proc_spec is None:
            env = program = None  # nothing to run: `start` will refuse and stop the container
        else:
            env = process.environment(proc_spec)
            seccomp = linux.get("seccomp")
            late_filter = process.finalize(proc_spec, seccomp, cfg.preserve_fds or 0)
            program = process.lookup(proc_spec["args"][0], env)
    except BaseException as err:  # noqa: BLE001 - everything must reach the runtime as a message
        _exit_with(ch, describe(err))
        return
    # Set-up is complete: the runtime may return from `create`.
    try:
        ch.send("ready")
        if fifo_fds:
            _wait_fifo(*fifo_fds)
        else:
            ch.expect("start")
        ch.close()
        if program is None:
            os._exit(1)
        hooks.run("startContainer", hooks.chosen(spec, "startContainer"), _hook_state(cfg, "created", 1))
        process.execute(program, proc_spec["args"], env, late_filter)
    except BaseException as err:  # noqa: BLE001
        import sys

        sys.stderr.write(f"exec failed: {describe(err)}\n")
        os._exit(127)


def _hook_state(cfg: InitConfig, status: str, pid: int) -> dict:
    state = dict(cfg.state_for_hooks or {})
    state["status"] = status
    state["pid"] = pid
    return state


def open_fifo(path: str) -> tuple[int, int]:
    """Open the exec fifo both ways, in the runtime before the fork: the init inherits both ends.

    The init could not open the path itself once it is root of a user namespace
    (the runtime root is 0700 on the host).  Holding a write end makes the init's
    read() block (instead of seeing EOF) until `start` writes its byte; no /proc
    is needed after pivot_root.
    """
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    wfd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    os.set_blocking(rfd, True)
    return rfd, wfd


def _wait_fifo(rfd: int, wfd: int) -> None:
    while True:
        try:
            data = os.read(rfd, 1)
        except InterruptedError:
            continue
        if data:
            break
    os.close(rfd)
    os.close(wfd)


def exec_init(cfg: InitConfig) -> None:
    """A process joining a running container: the init's steps without rootfs or hooks."""
    ch = cfg.channel
    try:
        proc_spec = cfg.process
        spec = cfg.spec
        if cfg.console:
            setup_terminal(ch, proc_spec)
        env = process.environment(proc_spec)
        seccomp = (spec.get("linux") or {}).get("seccomp")
        late_filter = process.finalize(proc_spec, seccomp, cfg.preserve_fds or 0)
        program = process.lookup(proc_spec["args"][0], env)
        ch.send("ready")
        # The channel is close-on-exec: the runtime sees EOF when execve succeeded.
        process.execute(program, proc_spec["args"], env, late_filter)
    except BaseException as err:  # noqa: BLE001
        _exit_with(ch, describe(err), 255)
