"""`cp`: copy files between a container and the host, as tar streams through the archive endpoints.

    dockyard cp CONTAINER:SRC DEST|-     GET  /containers/{id}/archive?path=SRC  -> unpack (or raw tar to stdout)
    dockyard cp SRC|- CONTAINER:DEST     HEAD /containers/{id}/archive?path=DEST, then
                                         PUT  /containers/{id}/archive?path=DIR (chunked tar)

Naming follows docker's copy rules (moby pkg/archive CopyTo and
PrepareArchiveCopy): a directory source ending in `/.` copies its contents;
a destination that exists as a directory receives the source under its own
name; otherwise the source is renamed to the destination's base name inside
its parent directory, which must exist. A destination ending in `/` must be
an existing directory. Unpacking on the host refuses entries that would land
outside the destination (`..`, absolute links), never changes ownership, and
will not replace a directory with a file or the reverse.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.flags import BOOL, Command, Flag
from dockyard.cli.main import CliError
from dockyard.units import MODE_DEVICE, MODE_DIR, MODE_IRREGULAR, MODE_SYMLINK

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from dockyard.cli.main import Cli



class CopyInfo:
    __slots__ = ("path", "exists", "is_dir", "rebase_name")

    def __init__(self, path: str, exists: bool = False, is_dir: bool = False, rebase_name: str = ""):
        self.path = path
        self.exists = exists
        self.is_dir = is_dir
        self.rebase_name = rebase_name


def split_cp_arg(arg: str) -> tuple[str, str]:
    """`ctr:/path` -> ("ctr", "/path"); local paths (absolute, or `./x:y`) -> ("", arg)."""
    if arg.startswith("/"):
        return "", arg
    container, colon, path = arg.partition(":")
    if not colon or container.startswith("."):
        return "", arg
    return container, path


def specifies_current_dir(path: str) -> bool:
    return os.path.basename(path) == "." or path == "."


def has_trailing_separator(path: str) -> bool:
    return len(path) > 0 and path.endswith("/")


def asserts_directory(path: str) -> bool:
    return has_trailing_separator(path) or specifies_current_dir(path)


def split_dir_entry(path: str) -> tuple[str, str]:
    """moby's SplitPathDirEntry: `/a/b/` -> ("/a", "b"); `/a/b/.` -> ("/a/b", ".")."""
    cleaned = os.path.normpath(path) if path else "."
    if path.startswith("//") and not path.startswith("///"):
        cleaned = "/" + cleaned.lstrip("/")
    if specifies_current_dir(path):
        cleaned = cleaned.rstrip("/") + "/."
    return os.path.dirname(cleaned) or ".", os.path.basename(cleaned)


def preserve_trailing(cleaned: str, original: str) -> str:
    """moby's PreserveTrailingDotOrSeparator."""
    if not specifies_current_dir(cleaned) and specifies_current_dir(original):
        if not has_trailing_separator(cleaned):
            cleaned += "/"
        cleaned += "."
    if not has_trailing_separator(cleaned) and has_trailing_separator(original):
        cleaned += "/"
    return cleaned


def resolve_local_path(path: str) -> str:
    return preserve_trailing(os.path.abspath(path), path)


def rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """moby's GetRebaseName: keep `/.` and `/` from `path`; the name to use when the last part changed."""
    if specifies_current_dir(path) and not specifies_current_dir(resolved):
        resolved += "/."
    if has_trailing_separator(path) and not has_trailing_separator(resolved):
        resolved += "/"
    rebase = ""
    if os.path.basename(path.rstrip("/")) != os.path.basename(resolved.rstrip("/")):
        rebase = os.path.basename(path.rstrip("/"))
    return resolved, rebase


def _lower_error(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def source_info(path: str, follow_link: bool) -> CopyInfo:
    """moby's CopyInfoSourcePath for a host path."""
    if follow_link:
        try:
            resolved = os.path.realpath(path, strict=True)
        except OSError as exc:
            raise CliError(f"lstat {exc.filename or path}: {_lower_error(exc)}") from None
        resolved, rebase = rebase_name(path, resolved)
    else:
        directory, base = os.path.split(path)
        resolved_dir = os.path.realpath(directory or ".")
        resolved = resolved_dir + "/" + base
        rebase = ""
        if has_trailing_separator(path) and os.path.basename(path.rstrip("/")) != os.path.basename(resolved):
            rebase = os.path.basename(path.rstrip("/"))
    try:
        st = os.lstat(resolved)
    except OSError as exc:
        raise CliError(f"lstat {resolved}: {_lower_error(exc)}") from None
    import stat

    return CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


def destination_info(path: str) -> CopyInfo:
    """moby's CopyInfoDestinationPath for a host path: symlinks followed, the parent must exist."""
    import stat

    original = path
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    hops = 0
    while st is not None and stat.S_ISLNK(st.st_mode):
        if hops > 10:
            raise CliError(f"too many symlinks in {original}")
        target = os.readlink(path)
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(path)[0], target)
        path = target
        hops += 1
        try:
            st = os.lstat(path)
        except OSError:
            st = None
    if st is None:
        parent = split_dir_entry(path)[0]
        try:
            parent_st = os.stat(parent)
        except OSError as exc:
            raise CliError(f"stat {parent}: {_lower_error(exc)}") from None
        if not stat.S_ISDIR(parent_st.st_mode):
            raise CliError("not a directory")
        return CopyInfo(path)
    return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))


def prepare_names(src: CopyInfo, dst: CopyInfo) -> tuple[str, tuple[str, str] | None]:
    """moby's PrepareArchiveCopy: (directory to unpack into, (old, new) first path part to rename or None)."""
    dst_dir, dst_base = split_dir_entry(dst.path)
    src_base = src.rebase_name or split_dir_entry(src.path)[1]
    if dst.exists and dst.is_dir:
        return dst.path, None
    if dst.exists and src.is_dir:
        raise CliError("cannot copy directory")
    if dst.exists or src.is_dir:
        return dst_dir, (src_base, dst_base)
    if asserts_directory(dst.path):
        raise CliError("no such directory")
    return dst_dir, (src_base, dst_base)


def rename_entry(name: str, rename: tuple[str, str] | None) -> str:
    """Replace the first path part `old` of an archive entry by `new` (`.` matches every entry)."""
    if rename is None:
        return name
    old, new = rename
    stripped = name[2:] if name.startswith("./") else name
    if old == ".":
        return new if stripped in ("", ".") else f"{new}/{stripped}"
    if stripped == old or stripped == old + "/":
        return new + stripped[len(old):]
    if stripped.startswith(old + "/"):
        return new + stripped[len(old):]
    return name


# --- host -> container ----------------------------------------------------------------------


class _Counter:
    """A file-like reader that counts what passes (the size docker reports)."""

    def __init__(self, source: BinaryIO):
        self.source = source
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.total += len(data)
        return data


def _tar_to_pipe(src: CopyInfo, rename: tuple[str, str] | None, writer: BinaryIO, failures: list) -> None:
    """Write the tar of `src` (its base entry renamed) to `writer`, like moby's TarResource."""
    import tarfile

    source_dir, source_base = split_dir_entry(src.path)
    try:
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            root = os.path.join(source_dir, source_base) if source_base != "." else source_dir
            base_name = source_base if source_base != "." else "."
            if src.rebase_name:
                base_name = src.rebase_name

            def add(path: str, name: str) -> None:
                info = tar.gettarinfo(path, rename_entry(name, rename))
                if info is None:  # a socket: docker skips what tar cannot hold
                    return
                info.uname = info.gname = ""
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)

            add(root, base_name)
            if os.path.isdir(root) and not os.path.islink(root):
                for dirpath, dirnames, filenames in os.walk(root):
                    dirnames.sort()
                    rel = os.path.relpath(dirpath, root)
                    prefix = base_name if rel == "." else f"{base_name}/{rel}"
                    if prefix.startswith("./"):
                        prefix = prefix[2:]
                    for entry in sorted(dirnames + filenames):
                        name = entry if prefix == "." else f"{prefix}/{entry}"
                        add(os.path.join(dirpath, entry), name)
    except BaseException as exc:  # noqa: BLE001 - reported by the reading side
        failures.append(exc)
    finally:
        writer.close()


def copy_to_container(cli: Cli, container: str, src_path: str, dst_path: str, follow_link: bool,
                      copy_uid_gid: bool, quiet: bool) -> int:
    from dockyard.client.api import ApiError

    if src_path != "-":
        src_path = resolve_local_path(src_path)
    client = cli.client()
    dst = CopyInfo(dst_path)
    try:
        stat = client.archive_stat(container, dst_path)
        mode = stat.get("mode", 0)
        if mode & MODE_SYMLINK:
            link = stat.get("linkTarget", "")
            if not link.startswith("/"):
                link = os.path.join(split_dir_entry(dst_path)[0], link)
            dst.path = link
            stat = client.archive_stat(container, link)
            mode = stat.get("mode", 0)
        problem = "got a device" if mode & MODE_DEVICE else "got an irregular file" if mode & MODE_IRREGULAR else ""
        if problem:
            raise CliError(f'destination "{container}:{dst_path}" must be a directory or a regular file: {problem}')
        dst.exists, dst.is_dir = True, bool(mode & MODE_DIR)
    except ApiError:
        pass  # like docker: an unknown destination is one to create (a missing container fails at the PUT)
    if src_path == "-":
        if not dst.is_dir:
            raise CliError(f'destination "{container}:{dst_path}" must be a directory')
        counter = _Counter(sys.stdin.buffer)
        client.archive_put(container, dst.path, counter, copy_uid_gid)
        return 0
    src = source_info(src_path, follow_link)
    target_dir, rename = prepare_names(src, dst)
    import threading

    read_fd, write_fd = os.pipe()
    failures: list[BaseException] = []
    writer = os.fdopen(write_fd, "wb")
    thread = threading.Thread(target=_tar_to_pipe, args=(src, rename, writer, failures), daemon=True)
    thread.start()
    counter = _Counter(os.fdopen(read_fd, "rb"))
    try:
        client.archive_put(container, target_dir, counter, copy_uid_gid)
    finally:
        counter.source.close()
        thread.join()
    if failures:
        exc = failures[0]
        raise CliError(f"{exc.strerror.lower()}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror
                       else str(exc))
    if not quiet:
        from dockyard.cli.format import human_size

        cli.err.write(f"Successfully copied {human_size(counter.total, 3)} to {container}:{dst.path}\n")
    return 0


# --- container -> host ------------------------------------------------------------------------


def _check_output_path(path: str) -> None:
    """docker's ValidateOutputPath."""
    import stat

    directory = os.path.dirname(os.path.normpath(path))
    if directory not in ("", ".") and not os.path.exists(directory):
        raise CliError(f'invalid output path: directory "{directory}" does not exist')
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
        return
    problem = "got a device" if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode) else "got an irregular file"
    raise CliError(f'invalid output path: "{path}" must be a directory or a regular file: {problem}')


def untar(stream: BinaryIO, directory: str, rename: tuple[str, str] | None) -> int:
    """Unpack a tar stream into `directory` (moby Untar with NoLchown and NoOverwriteDirNonDir).

    Returns the bytes read. Entries are renamed first; any that would land
    outside `directory` are refused.
    """
    import shutil
    import stat
    import tarfile

    counter = _Counter(stream)
    uid, gid = os.getuid(), os.getgid()
    root = os.path.realpath(directory)

    def keep_owner(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        # tarfile's "tar" filter refuses entries and links that escape `dest`; its
        # other changes (dropping setuid and write bits) are not docker's, so the
        # mode stays as archived. Ownership is ours (docker's NoLchown).
        checked = tarfile.tar_filter(member, dest)
        return member.replace(name=checked.name, linkname=checked.linkname, uid=uid, gid=gid, uname="", gname="",
                              deep=False)

    with tarfile.open(fileobj=counter, mode="r|") as tar:
        for member in tar:
            member.name = rename_entry(member.name, rename)
            if member.islnk():
                member.linkname = rename_entry(member.linkname, rename)
            target = os.path.join(root, member.name)
            try:
                existing = os.lstat(target)
            except OSError:
                existing = None
            if existing is not None:
                if stat.S_ISDIR(existing.st_mode) and not member.isdir():
                    raise CliError(f'cannot overwrite directory "{target}" with non-directory "{root}"')
                if not stat.S_ISDIR(existing.st_mode) and member.isdir():
                    raise CliError(f'cannot overwrite non-directory "{target}" with directory "{root}"')
                if not stat.S_ISDIR(existing.st_mode):
                    os.unlink(target)
                elif not member.isdir():
                    shutil.rmtree(target)
            try:
                tar.extract(member, root, filter=keep_owner)
            except tarfile.FilterError as exc:
                raise CliError(f"refusing to copy {member.name!r}: {exc}") from None
    return counter.total


def copy_from_container(cli: Cli, container: str, src_path: str, dst_path: str, follow_link: bool,
                        quiet: bool) -> int:
    if dst_path != "-":
        dst_path = resolve_local_path(dst_path)
    _check_output_path(dst_path)
    client = cli.client()
    rebase = ""
    if follow_link:
        from dockyard.client.api import ApiError

        try:
            stat = client.archive_stat(container, src_path)
        except ApiError:
            stat = {}
        if stat.get("mode", 0) & MODE_SYMLINK:
            link = stat.get("linkTarget", "")
            if not link.startswith("/"):
                link = os.path.join(split_dir_entry(src_path)[0], link)
            src_path, rebase = rebase_name(src_path, link)
    response, stat = client.archive_get(container, src_path)
    try:
        if dst_path == "-":
            from dockyard.cli.stream import body_to_stdout

            body_to_stdout(cli, response)
            return 0
        src = CopyInfo(src_path, True, bool(stat.get("mode", 0) & MODE_DIR), rebase)
        dst = destination_info(dst_path)
        target_dir, rename = prepare_names(src, dst)
        if rename is not None and src.rebase_name:
            rename = (split_dir_entry(src.path)[1], rename[1])
        elif rename is None and src.rebase_name:
            rename = (split_dir_entry(src.path)[1], src.rebase_name)
        total = untar(_ResponseReader(response), target_dir, rename)
    finally:
        response.close()
    if not quiet:
        from dockyard.cli.format import human_size

        cli.err.write(f"Successfully copied {human_size(total, 3)} to {dst_path}\n")
    return 0


class _ResponseReader:
    """A response body as a file-like object for tarfile's stream mode."""

    def __init__(self, response: Any):
        self._pieces = response.iter_raw()
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._buf += piece
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


def run_cp(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    source, destination = args
    if not source:
        raise CliError("source can not be empty")
    if not destination:
        raise CliError("destination can not be empty")
    quiet = opts["quiet"] if "quiet" in opts["_set"] else not sys.stdout.isatty()
    src_container, src_path = split_cp_arg(source)
    dst_container, dst_path = split_cp_arg(destination)
    if src_container and dst_container:
        raise CliError("copying between containers is not supported")
    if src_container:
        return copy_from_container(cli, src_container, src_path, dst_path, opts["follow_link"], quiet)
    if dst_container:
        return copy_to_container(cli, dst_container, src_path, dst_path, opts["follow_link"], opts["archive"],
                                 quiet)
    raise CliError("must specify at least one container source")


CP = Command(
    ("cp",), "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    "Copy files/folders between a container and the local filesystem",
    [
        Flag("archive", "a", BOOL, "Archive mode (copy all uid/gid information)"),
        Flag("follow-link", "L", BOOL, "Always follow symbol link in SRC_PATH"),
        Flag("quiet", "q", BOOL, "Suppress progress output during copy. Progress output is automatically "
             "suppressed if no terminal is attached"),
    ],
    run_cp, min_args=2, max_args=2, aliases=("container cp", "cp"),
    long_help="Copy files/folders between a container and the local filesystem\n\n"
              "Use '-' as the source to read a tar archive from stdin\n"
              "and extract it to a directory destination in a container.\n"
              "Use '-' as the destination to stream a tar archive of a\n"
              "container source to stdout.",
)
