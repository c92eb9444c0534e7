"""`docker cp` and `docker export`: tar streams in and out of a container's filesystem.

Paths inside a container must resolve inside it: `/x/../../etc` and a
symlink pointing at `/` must not reach the host. Rather than resolving
paths ourselves, each operation runs in a helper process that is *in* the
container's root — it joins the running container's mount namespace
(so it sees its bind mounts: /etc/hosts…), or chroots into the stopped
container's mounted snapshot — and the kernel does the resolving. The
helper is a fresh, single-threaded interpreter (`python -S`: a couple of
dozen ms), never a fork of the threaded daemon.

    python -S -c <bootstrap> stat|get|put|export  <enter>  [path]  [flags]  [refusal]
      <enter>  pid:<N>    setns(/proc/N/ns/mnt)
               root:<P>   chroot(P); with $DOCKYARD_ARCHIVE_BINDS (JSON [[source, destination,
                          read_only]…]) first, in a mount namespace of its own, the binds a
                          stopped container has when it runs (its -v/--mount binds, the
                          engine's /etc/hosts…), as dockerd mounts them for cp

Output protocol: the first line is JSON — the path's stat in Docker's form
(`{"name","size","mode","mtime","linkTarget"}`, `mode` a Go os.FileMode), or
`{"error": …, "kind": "notfound"|"invalid"}` — then, for `get` and `export`,
the tar stream. `put` reads the tar on stdin, checks every entry before
writing any (names may not leave the destination), then extracts it, and
answers with its JSON line at the end.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys

from ..units import (
    MODE_CHAR_DEVICE,
    MODE_DEVICE,
    MODE_DIR,
    MODE_NAMED_PIPE,
    MODE_SETGID,
    MODE_SETUID,
    MODE_SOCKET,
    MODE_STICKY,
    MODE_SYMLINK,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator



def go_file_mode(st_mode: int) -> int:
    mode = st_mode & 0o777
    if stat.S_ISDIR(st_mode):
        mode |= MODE_DIR
    elif stat.S_ISLNK(st_mode):
        mode |= MODE_SYMLINK
    elif stat.S_ISFIFO(st_mode):
        mode |= MODE_NAMED_PIPE
    elif stat.S_ISSOCK(st_mode):
        mode |= MODE_SOCKET
    elif stat.S_ISCHR(st_mode):
        mode |= MODE_DEVICE | MODE_CHAR_DEVICE
    elif stat.S_ISBLK(st_mode):
        mode |= MODE_DEVICE
    if st_mode & stat.S_ISUID:
        mode |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= MODE_STICKY
    return mode


def stat_json(path: str) -> dict:
    import time

    st = os.lstat(path)
    name = os.path.basename(path.rstrip("/")) or "/"
    if path.endswith("/.") or path == ".":
        name = "."
    return {
        "name": name,
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
        "linkTarget": os.readlink(path) if stat.S_ISLNK(st.st_mode) else "",
    }


def split_path(path: str) -> tuple[str, str]:
    """A container path -> (absolute path to act on, name its tar entries start with)."""
    if not path.startswith("/"):
        path = "/" + path
    if path.endswith("/.") or path == "/.":
        return path, "."
    clean = os.path.normpath(path)
    return clean, os.path.basename(clean) or "."


# --- the helper process -------------------------------------------------------------------------


def _answer(obj: dict) -> None:
    import json

    sys.stdout.buffer.write(json.dumps(obj).encode() + b"\n")
    sys.stdout.buffer.flush()


def _enter(spec: str) -> None:
    kind, _, value = spec.partition(":")
    if kind == "pid":
        from ..linux import ns as lns

        lns.join(f"/proc/{int(value)}/ns/mnt", lns.KIND_FLAG["mount"])
        os.chdir("/")
    elif kind == "root":
        binds = os.environ.get("DOCKYARD_ARCHIVE_BINDS")
        if binds:
            _bind_all(value, binds)
        os.chroot(value)
        os.chdir("/")
    else:
        raise SystemExit(f"bad enter spec {spec!r}")


def _bind_all(root: str, binds_json: str) -> None:
    """In a private mount namespace of this helper: bind each source at its destination under `root`."""
    import json

    from ..linux import mount as lm
    from ..linux import ns as lns
    from ..linux.flags import MountFlag
    from ..runtime.rootfs import secure_join

    lns.unshare(lns.KIND_FLAG["mount"])
    lm.mount(None, "/", None, MountFlag.PRIVATE | MountFlag.REC)
    for source, destination, read_only in json.loads(binds_json):
        target = secure_join(root, destination)
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except FileNotFoundError:
            continue  # gone since: the start would say so
        if is_dir:
            os.makedirs(target, exist_ok=True)
        elif not os.path.lexists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        lm.bind(source, target, recursive=True)
        if read_only:
            lm.remount(target, MountFlag.RDONLY)


def _cmd_stat(path: str) -> None:
    target, _ = split_path(path)
    try:
        _answer(stat_json(target))
    except FileNotFoundError:
        _answer({"error": f"Could not find the file {path}", "kind": "notfound"})


def _cmd_get(path: str) -> None:
    import tarfile

    target, arcname = split_path(path)
    try:
        info = stat_json(target)
    except FileNotFoundError:
        _answer({"error": f"Could not find the file {path}", "kind": "notfound"})
        return
    _answer(info)
    out = sys.stdout.buffer
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(target.rstrip(".") if arcname == "." else target, arcname=arcname, recursive=True)
    out.flush()


def _cmd_export() -> None:
    import tarfile

    _answer({"ok": True})
    out = sys.stdout.buffer
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir("/")):
            tar.add("/" + name, arcname=name, recursive=True)
    out.flush()


def _check_member(member, dest: str) -> str | None:
    """Why `member` may not be extracted into `dest`, or None."""
    name = member.name.lstrip("/")
    joined = os.path.normpath(os.path.join(dest, name))
    if joined != dest and not joined.startswith(dest.rstrip("/") + "/"):
        return f"invalid tar entry {member.name!r}: it would be written outside of {dest}"
    if member.islnk():
        target = os.path.normpath(os.path.join(dest, member.linkname.lstrip("/")))
        if target != dest and not target.startswith(dest.rstrip("/") + "/"):
            return f"invalid hard link {member.name!r} -> {member.linkname!r}: it points outside of {dest}"
    return None


def _cmd_put(path: str, no_overwrite_dir_non_dir: bool, refusal: str, spool) -> None:
    import tarfile

    dest, _ = split_path(path)
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        _answer({"error": f"Could not find the file {path}", "kind": "notfound"})
        return
    if not stat.S_ISDIR(st.st_mode):
        _answer({"error": "extraction point is not a directory", "kind": "invalid"})
        return
    if refusal:  # a read-only bind or root there (the daemon knows its mounts)
        _answer({"error": refusal, "kind": "refused"})
        return
    # The whole archive is checked before anything is written: spool it first (in a file of
    # the host's, opened before entering: nothing of the container's changes meanwhile).
    src = sys.stdin.buffer
    while True:
        chunk = src.read(1 << 20)
        if not chunk:
            break
        spool.write(chunk)
    spool.seek(0)
    try:
        tar = tarfile.open(fileobj=spool, mode="r:*")
        members = tar.getmembers()
    except tarfile.TarError as err:
        _answer({"error": f"invalid tar archive: {err}", "kind": "invalid"})
        return
    for member in members:
        problem = _check_member(member, dest)
        if problem is None and no_overwrite_dir_non_dir:
            target = os.path.join(dest, member.name.lstrip("/"))
            try:
                existing = os.lstat(target)
            except FileNotFoundError:
                existing = None
            if existing is not None:
                if stat.S_ISDIR(existing.st_mode) and not member.isdir():
                    problem = f"cannot overwrite directory {target!r} with non-directory {member.name!r}"
                elif not stat.S_ISDIR(existing.st_mode) and member.isdir():
                    problem = f"cannot overwrite non-directory {target!r} with directory {member.name!r}"
        if problem:
            _answer({"error": problem, "kind": "invalid"})
            return
    for member in members:
        member.name = member.name.lstrip("/")
        if member.islnk():
            member.linkname = member.linkname.lstrip("/")
    tar.extractall(dest, members=members, numeric_owner=True, filter="fully_trusted")
    _answer({"ok": True})


def main(argv: list[str] | None = None) -> None:
    import json  # noqa: F401 - loaded before entering: the container's root has no Python
    import tarfile  # noqa: F401
    import tempfile

    args = sys.argv[1:] if argv is None else argv
    command, enter = args[0], args[1]
    spool = tempfile.TemporaryFile() if command == "put" else None
    _enter(enter)
    if command == "stat":
        _cmd_stat(args[2])
    elif command == "get":
        _cmd_get(args[2])
    elif command == "put":
        _cmd_put(args[2], len(args) > 3 and args[3] == "1", args[4] if len(args) > 4 else "", spool)
    elif command == "export":
        _cmd_export()
    else:
        raise SystemExit(f"unknown command {command!r}")


# --- the daemon's side ------------------------------------------------------------------------------


def stopped_binds(host_config: dict, engine_files: dict[str, str], volumes=()) -> list[list]:
    """What a stopped container's cp sees mounted (dockerd's mountVolumes): its binds and volumes, and the
    engine's files (`destination: host path`) where no mount of the user's is."""
    from .mounts import bind_like

    binds = [[p.source, p.destination, p.read_only] for p in bind_like(host_config, volumes)]
    taken = {b[1] for b in binds}
    return binds + [[source, dest, False] for dest, source in engine_files.items() if dest not in taken]


def helper_argv(command: str, enter: str, *args: str) -> list[str]:
    import dockyard

    root = os.path.dirname(os.path.dirname(os.path.abspath(dockyard.__file__)))
    bootstrap = f"import sys; sys.path.insert(0, {root!r}); from dockyard.daemon.archive import main; main()"
    return [sys.executable, "-S", "-c", bootstrap, command, enter, *args]


async def helper_output(proc, release) -> AsyncIterator[bytes]:
    """The archive helper's stdout after its first line, then its end and the rootfs hold's release."""
    try:
        while True:
            chunk = await proc.stdout.read(1 << 18)
            if not chunk:
                break
            yield chunk
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
        await release()
