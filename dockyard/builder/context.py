"""The build context: the tar stream a client sends, unpacked into a directory, and the paths in it.

    <tmp>/context/   the unpacked files (members that would land outside are refused)

A COPY/ADD source names a path inside the context: it is cleaned (`..` may
not climb above the context root, an absolute path means the context's
root, as dockerd reads it) and resolved with its symlinks kept inside the
context; a source or a symlink on its way that points outside is refused with
dockerd's words (`Forbidden path outside the build context`).  Wildcards
match as Go's `filepath.Match` does.  `checksum()` is the content key of a
set of sources for the layer cache: names, modes, owners-free metadata and
file contents.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from typing import BinaryIO

from ..errors import InvalidArgument, NotFound

_MAX_LINKS = 255


def forbidden(path: str) -> InvalidArgument:
    return InvalidArgument(f"Forbidden path outside the build context: {path} ()")


_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


class _Uncompressed:
    """A plain tar stream that may stop right after a member's data: the docker CLI's `-f` outside the
    context appends the Dockerfile without padding or the end-of-archive blocks (Go's reader accepts
    that), so zeros are supplied at the end, as if the archive had been closed."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.pending = head
        self.stream = stream
        self.padding = 1024 + 511  # the last block's padding and two zero blocks
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        if self.pending:
            out, self.pending = (self.pending, b"") if n < 0 or n >= len(self.pending) else \
                (self.pending[:n], self.pending[n:])
            return out
        if not self.eof:
            data = self.stream.read(n) if n >= 0 else self.stream.read()
            if data:
                return data
            self.eof = True
        count = self.padding if n < 0 else min(n, self.padding)
        self.padding -= count
        return b"\0" * count


def open_tar(stream: BinaryIO) -> tarfile.TarFile:
    """A tarfile reading `stream` sequentially, whatever its compression (plain, gzip, bzip2, xz)."""
    head = b""
    while len(head) < 6:
        chunk = stream.read(6 - len(head))
        if not chunk:
            break
        head += chunk
    if head.startswith(_COMPRESSED):
        return tarfile.open(fileobj=_Prefixed(head, stream), mode="r|*")
    return tarfile.open(fileobj=_Uncompressed(head, stream), mode="r|")


class _Prefixed(_Uncompressed):
    """The sniffed bytes, then the rest of the stream (no padding: a compressed stream ends itself)."""

    def __init__(self, head: bytes, stream: BinaryIO):
        super().__init__(head, stream)
        self.padding = 0


class BuildContext:
    """A context unpacked under a temporary directory; `close()` removes it."""

    def __init__(self, root: str, owner_dir: str | None = None):
        self.root = os.path.realpath(root)
        self._owner_dir = owner_dir

    @classmethod
    def from_tar(cls, stream: BinaryIO, tmp_parent: str | None = None, prefix: str = "build-") -> BuildContext:
        top = tempfile.mkdtemp(prefix=prefix, dir=tmp_parent)
        root = os.path.join(top, "context")
        os.mkdir(root, 0o755)
        try:
            unpack_context(stream, root)
        except BaseException:
            shutil.rmtree(top, ignore_errors=True)
            raise
        return cls(root, top)

    def close(self) -> None:
        if self._owner_dir:
            shutil.rmtree(self._owner_dir, ignore_errors=True)
            self._owner_dir = None

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_file(self, name: str) -> bytes | None:
        """A file of the context (the Dockerfile, .dockerignore), None when it is missing."""
        try:
            path = self.resolve(name)
        except (InvalidArgument, NotFound):
            return None
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def drop_build_files(self, dockerfile: str) -> None:
        """dockerd's rule: the Dockerfile and .dockerignore leave the context (so `COPY .` does not take
        them) when .dockerignore lists them; the docker CLI lists there the Dockerfile it sent from
        outside the context."""
        raw = self.read_file(".dockerignore")
        if raw is None:
            return
        patterns = []
        for line in raw.decode("utf-8", "replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = posixpath.normpath(line[1:].strip() if negate else line).lstrip("/")
            patterns.append((negate, pattern))
        for name in (dockerfile, ".dockerignore"):
            clean = posixpath.normpath(name).lstrip("/")
            excluded = False
            for negate, pattern in patterns:
                if fnmatch.fnmatchcase(clean, pattern) or clean.startswith(pattern.rstrip("/") + "/"):
                    excluded = not negate
            if excluded:
                with contextlib.suppress(OSError, InvalidArgument):
                    os.unlink(self.resolve(clean, follow_last=False))

    def resolve(self, name: str, follow_last: bool = True) -> str:
        """The host path of context path `name`; never outside the context."""
        return scoped_path(self.root, name, follow_last, what=name)

    def sources(self, name: str) -> list[str]:
        """Host paths of a COPY/ADD source (wildcards expanded); NotFound when nothing matches."""
        rel = clean_source(name)
        if not any(c in rel for c in "*?["):
            path = self.resolve(rel)
            if not os.path.lexists(path):
                raise NotFound(f"COPY failed: file not found in build context or excluded by .dockerignore: "
                               f"stat {rel.lstrip('/') or '.'}: file does not exist")
            return [path]
        matches = []
        parts = [p for p in rel.split("/") if p]
        candidates = [""]
        for part in parts:
            nxt = []
            for base in candidates:
                directory = self.resolve(base or "/")
                if not os.path.isdir(directory):
                    continue
                for entry in sorted(os.listdir(directory)):
                    if fnmatch.fnmatchcase(entry, part):
                        nxt.append(posixpath.join(base, entry))
            candidates = nxt
        for cand in candidates:
            matches.append(self.resolve(cand))
        if not matches:
            raise NotFound("COPY failed: no source files were specified")
        return matches


def clean_source(name: str) -> str:
    """A source path cleaned; one that climbs out of the context with `..` is refused."""
    cleaned = posixpath.normpath("/" + name.replace("\\", "/")) if name else "/"
    rel = posixpath.normpath(name) if name else "."
    if not name.startswith("/") and (rel == ".." or rel.startswith("../")):
        raise forbidden(name)
    return cleaned


def scoped_path(root: str, name: str, follow_last: bool = True, what: str = "") -> str:
    """`name` resolved under `root` like a chroot would, but refusing any step outside it.

    A symlink whose target (absolute or relative) would leave `root` is an error
    rather than being clamped: the context must never reach the host.
    """
    root = os.path.realpath(root)
    parts = [p for p in name.replace("\\", "/").split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not resolved:
                raise forbidden(what or name)
            resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if (parts or follow_last) and os.path.islink(candidate):
            links += 1
            if links > _MAX_LINKS:
                raise InvalidArgument(f"too many levels of symbolic links: {what or name}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                # a link to a host path: outside the context, whatever the context holds there
                raise forbidden(what or name)
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def within_root(root: str, name: str) -> str:
    """For a destination inside an image's root filesystem: symlinks are followed but clamped to `root`
    (as a chroot does), so a link in the image can never send a copy to the host."""
    from ..runtime.rootfs import secure_join

    return secure_join(root, name)


def unpack_context(stream: BinaryIO, root: str) -> None:
    """Unpack the context tar into `root`; members climbing out (`..`, absolute) are refused."""
    try:
        tar = open_tar(stream)
    except tarfile.ReadError as err:
        raise InvalidArgument(f"the build context is not a tar archive: {err}") from None
    with tar:
        for member in tar:
            name = member.name
            clean = posixpath.normpath(name)
            if clean.startswith("/") or clean == ".." or clean.startswith("../"):
                raise forbidden(name)
            if clean in (".", ""):
                continue
            parent = scoped_path(root, posixpath.dirname(clean), what=name)
            os.makedirs(parent, exist_ok=True)
            target = os.path.join(parent, posixpath.basename(clean))
            if member.isdir():
                if not os.path.isdir(target):
                    if os.path.lexists(target):
                        os.unlink(target)
                    os.mkdir(target)
                os.chmod(target, member.mode & 0o7777)
                continue
            if os.path.lexists(target) and not os.path.isdir(target):
                os.unlink(target)
            if member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                link = posixpath.normpath(member.linkname)
                if link.startswith("/") or link == ".." or link.startswith("../"):
                    raise forbidden(member.linkname)
                os.link(scoped_path(root, link, follow_last=False, what=member.linkname), target)
            elif member.isfile():
                src = tar.extractfile(member)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                os.chmod(target, member.mode & 0o7777)
            else:
                continue  # devices and fifos have no place in a context
            try:
                os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
            except OSError:
                pass


def checksum(paths: list[str]) -> str:
    """The content key of sources: relative names, types, modes, link targets and file contents."""
    h = hashlib.sha256()
    for top in paths:
        base = os.path.dirname(top)
        for path in _walk(top):
            st = os.lstat(path)
            rel = os.path.relpath(path, base)
            h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode):o}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            h.update(b"\0")
    return h.hexdigest()


def _walk(top: str):
    yield top
    if os.path.isdir(top) and not os.path.islink(top):
        for entry in sorted(os.listdir(top)):
            yield from _walk(os.path.join(top, entry))
