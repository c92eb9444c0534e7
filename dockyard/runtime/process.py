"""What the container's init and every exec'd process share: becoming the spec's `process`.

`finalize()` runs in the child, inside the container's namespaces and root,
in runc's order: rlimits and oom score while still privileged, seccomp early
when it needs CAP_SYS_ADMIN, the bounding set, the user switch with
keep-caps, the working directory, the capability sets, no_new_privs.  After
it, only `execute()` is left: it resolves the program (an error here is a
create- or exec-time error, as with runc) and execs it.
"""

from __future__ import annotations

import _signal
import os
import resource
import stat

from ..linux import caps as lcaps
from ..linux import proc as lproc
from .spec import RLIMITS


class ExecError(Exception):
    """The program cannot be started (runc's `exec: "x": …` messages)."""


def lookup(program: str, env: list[str]) -> str:
    """Find `program` as Go's exec.LookPath does, with its error texts."""
    if "/" in program:
        try:
            st = os.stat(program)
        except FileNotFoundError:
            raise ExecError(f'exec: "{program}": stat {program}: no such file or directory') from None
        except PermissionError:
            raise ExecError(f'exec: "{program}": stat {program}: permission denied') from None
        if not _executable(st):
            raise ExecError(f'exec: "{program}": permission denied')
        return program
    path = ""
    for entry in env:
        if entry.startswith("PATH="):
            path = entry[5:]
    for d in path.split(":"):
        candidate = os.path.join(d or ".", program)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if _executable(st):
            return candidate
    raise ExecError(f'exec: "{program}": executable file not found in $PATH')


def _executable(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def set_rlimits(process: dict) -> None:
    for r in process.get("rlimits") or []:
        resource.setrlimit(RLIMITS[r["type"]], (_rlim(r["soft"]), _rlim(r["hard"])))


def _rlim(value: int) -> int:
    return -1 if value < 0 or value >= 2**64 - 1 else value


def set_oom_score_adj(process: dict) -> None:
    if "oomScoreAdj" in process:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(process["oomScoreAdj"]))


def home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5]
    except OSError:
        pass
    return "/"


def environment(process: dict) -> list[str]:
    env = list(process.get("env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + home_of((process.get("user") or {}).get("uid", 0)))
    return env


def finalize(process: dict, seccomp: dict | None, preserve_fds: int, keep_fds: tuple = ()):
    """Turn this (root, fully privileged) process into the spec's process, short of execve.

    Returns the seccomp filter still to load, built now (so a bad profile is a
    create-time error) and loaded by `execute()` right before execve: with
    no_new_privs a filter needs no privilege, and loading it last means a
    profile need not allow the runtime's own hand-shake syscalls.  Without
    no_new_privs, loading needs CAP_SYS_ADMIN, so it happens here, before the
    capabilities are dropped (as runc does).
    """
    user = process.get("user") or {}
    capabilities = process.get("capabilities")
    nnp = bool(process.get("noNewPrivileges"))

    # Nothing the runtime holds may reach the program: fds 3.. are close-on-exec,
    # except the ones the caller asked to pass (--preserve-fds).  Before seccomp:
    # an older profile (runtime-tools') does not allow close_range.
    lproc.cloexec_from(3 + preserve_fds)
    for fd in keep_fds:
        os.set_inheritable(fd, True)

    set_rlimits(process)
    set_oom_score_adj(process)
    if nnp:
        lproc.set_no_new_privs()
    late_filter = None
    if seccomp is not None:
        from .seccomp import build

        if nnp:
            late_filter = build(seccomp)
        else:
            build(seccomp).load()

    cwd = process.get("cwd") or "/"
    chdir_done = _try_chdir(cwd)
    if capabilities is not None:
        lcaps.drop_bounding(lcaps.mask(capabilities.get("bounding") or []))
        lproc.set_keepcaps(True)
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    os.setgroups(user.get("additionalGids") or [])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if not chdir_done:
        _chdir(cwd)
    if capabilities is not None:
        lproc.set_keepcaps(False)
        lcaps.capset(lcaps.mask(capabilities.get("effective") or []),
                     lcaps.mask(capabilities.get("permitted") or []),
                     lcaps.mask(capabilities.get("inheritable") or []))
        ambient = capabilities.get("ambient") or []
        if ambient:
            lcaps.set_ambient(lcaps.mask(ambient))
    os.umask(user["umask"] if "umask" in user else 0o022)
    return late_filter


def _try_chdir(cwd: str) -> bool:
    try:
        os.chdir(cwd)
        return True
    except PermissionError:
        return False  # e.g. a directory only the target user may enter: retry after setuid
    except OSError as err:
        raise _chdir_error(cwd, err) from None


def _chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as err:
        raise _chdir_error(cwd, err) from None


def make_cwd(cwd: str) -> None:
    """Go's os.MkdirAll(cwd, 0755), with its error text, inside runc's "error during container init"."""
    try:
        mkdir_all(cwd)
    except OSError as err:
        raise ExecError(f"error during container init: mkdir {err.filename}: {os.strerror(err.errno).lower()}") \
            from None


def mkdir_all(path: str) -> None:
    """Go's os.MkdirAll(path, 0755): a non-directory on the way fails with ENOTDIR naming it."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            return
        raise NotADirectoryError(20, "not a directory", path)
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path:
        mkdir_all(parent)
    try:
        os.mkdir(path, 0o755)
    except OSError as err:
        if not os.path.isdir(path):
            raise OSError(err.errno, err.strerror, path) from None


def _chdir_error(cwd: str, err: OSError) -> ExecError:
    """runc's words (with Go's %q and errno texts): the process cannot start in its working directory."""
    quoted = '"' + cwd.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ExecError(f"chdir to cwd ({quoted}) set in config.json failed: {os.strerror(err.errno).lower()}")


def preload(spec: dict, process: dict) -> None:
    """Import now what the child needs after pivot_root, when the host's files are out of reach."""
    if (spec.get("linux") or {}).get("seccomp") is not None:
        from ..linux import seccomp as lseccomp

        lseccomp.library()  # dlopen now: the library file is out of reach after pivot_root
        from . import seccomp  # noqa: F401
    if (spec.get("hooks") or {}).get("startContainer"):
        import subprocess  # noqa: F401


def reset_signals() -> None:
    """Give the program default signal dispositions and an empty mask.

    Python ignores SIGPIPE and SIGXFSZ and handles SIGINT (and `run` installs
    forwarders); ignored dispositions survive execve, so none may reach the
    container.  `_signal` is the C module under `signal`, which would cost an
    enum import.
    """
    for sig in range(1, _signal.NSIG):
        if sig in (_signal.SIGKILL, _signal.SIGSTOP) or 32 <= sig < 34:
            continue
        try:
            if _signal.getsignal(sig) is not _signal.SIG_DFL:
                _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def execute(path: str, args: list[str], env: list[str], seccomp_filter=None) -> None:
    reset_signals()
    if seccomp_filter is not None:
        seccomp_filter.load()
    os.execve(path, args, dict(e.split("=", 1) if "=" in e else (e, "") for e in env))
