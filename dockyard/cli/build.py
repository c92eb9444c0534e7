"""`dockyard build`: the client side of docker's legacy builder (`POST /build?version=1`).

    dockyard build [OPTIONS] PATH | URL | -

What the docker CLI does, and so do we:

- The context is a directory (packed here, `.dockerignore` applied), `-` (a
  tar on stdin, sent as it is, or a Dockerfile on stdin, sent as a tar
  holding just `Dockerfile`) or a URL (refused: remote contexts need the
  network).
- The tar is made while it is sent (chunked), never held whole: entries in
  filepath.Walk's order (names sorted, parents first), directories with a
  trailing slash, uid/gid 0 without names, permission bits plus
  setuid/setgid/sticky, mtimes in whole seconds, symlinks as symlinks, a
  second name of a regular file as a hard link, fifos and devices as such,
  sockets left out; ustar headers, a pax record only where a value does not
  fit (Go's archive/tar in PAX format).
- `.dockerignore` is read as moby/patternmatcher's ignorefile does and
  matched with its rules (see `PatternMatcher`); `!.dockerignore` and
  `!<Dockerfile>` are appended when they would be excluded, so both are
  always sent (unless the Dockerfile comes from stdin).
- A Dockerfile from stdin (`-f -`) or from outside the context goes into the
  tar under `.dockerfile.<20 hex>` (mode 0600), named in `dockerfile=`, and
  that name is appended to the `.dockerignore` sent along (which is created
  when the context has none).
- Output as docker prints it without a terminal: `Sending build context to
  Docker daemon  10.24kB\\r\\r\\n`, then the stream text as it is; an error
  message goes to stderr and its `errorDetail.code` (or 1) is the exit
  status. `-q` keeps everything in a buffer: the image ID line on success,
  the whole buffer on stderr before the error on failure. `--iidfile` gets
  the `aux` ID (with `-q`, the printed line).
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.flags import BOOL, LIST, STRING, Command, Flag
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from dockyard.cli.main import Cli

DEFAULT_DOCKERFILE = "Dockerfile"
SENDING = "Sending build context to Docker daemon"
_UPDATE_EVERY = 512 << 10  # progress lines at most every 512 KiB sent...
_UPDATE_INTERVAL = 0.1  # ...and 100 ms apart (docker's progress reader)
_READ_SIZE = 1 << 20


# --- .dockerignore: moby/patternmatcher ----------------------------------------------------------


class PatternError(ValueError):
    pass


def go_clean(path: str) -> str:
    """Go's path.Clean: `.` and empty elements dropped, `..` resolved lexically."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_dockerignore(data: bytes) -> list[str]:
    """ignorefile.ReadAll: one pattern a line; `#` comments (only at the very start of a line), blank lines
    and a UTF-8 BOM dropped; each pattern trimmed and cleaned, a leading `/` removed, `!` kept in front."""
    patterns = []
    text = data.decode("utf-8", "surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


_ESCAPED = frozenset(".+(){}$|")


class Pattern:
    """One pattern: exact, prefix (`dir/**`), suffix (`**/name`) or a regular expression made as
    patternmatcher makes it (`*` and `?` stop at `/`, `**` spans directories, `[...]` classes,
    `\\` escapes; a match also covers everything below the matched path)."""

    __slots__ = ("text", "exclusion", "kind", "_regex")

    def __init__(self, text: str, exclusion: bool):
        self.text = text
        self.exclusion = exclusion
        self.kind = ""
        self._regex: Any = None
        self._compile_kind()

    def _compile_kind(self) -> None:
        pattern = self.text
        kind = "exact"
        regex = "^"
        i = 0
        n = len(pattern)
        first = True
        while i < n:
            ch = pattern[i]
            i += 1
            if ch == "*":
                if i < n and pattern[i] == "*":
                    i += 1
                    if i < n and pattern[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            regex += ".*"
                            kind = "regexp"
                    else:
                        regex += "(.*/)?"
                        kind = "regexp"
                    if first:
                        kind = "suffix"
                else:
                    regex += "[^/]*"
                    kind = "regexp"
            elif ch == "?":
                regex += "[^/]"
                kind = "regexp"
            elif ch in _ESCAPED:
                regex += "\\" + ch
            elif ch == "\\":
                if i < n:
                    regex += "\\" + pattern[i]  # as a regexp escape: `\d` is a digit, as with docker
                    i += 1
                    kind = "regexp"
                else:
                    regex += "\\\\"
            elif ch in "[]":
                regex += ch
                kind = "regexp"
            else:
                regex += ch  # as Go's regexp reads it (`^` negates a class)
            first = False
        self.kind = kind
        if kind == "regexp":
            self._regex = regex + "(/.*)?$"

    def match(self, path: str) -> bool:
        kind = self.kind
        if kind == "exact":
            return path == self.text
        if kind == "prefix":
            return path.startswith(self.text[:-2])
        if kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix[:1] == "/" and path == suffix[1:]
        regex = self._regex
        if isinstance(regex, str):  # compiled on first use: `re` only for contexts that need it
            import re

            try:
                regex = self._regex = re.compile(regex, re.DOTALL)
            except re.error:
                raise PatternError("syntax error in pattern") from None
        return regex.match(path) is not None


def _class_char(pattern: str, i: int) -> int:
    """filepath.Match's getEsc: one character of a class (maybe escaped); the index after it."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise PatternError("syntax error in pattern")
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise PatternError("syntax error in pattern")
    i += 1
    if i >= n:  # the class is not closed
        raise PatternError("syntax error in pattern")
    return i


def _check_syntax(pattern: str) -> None:
    """filepath.Match's syntax errors (ErrBadPattern): an unclosed or empty class, a range without its end,
    a trailing `\\`."""
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise PatternError("syntax error in pattern")
            i += 2
        elif ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges:
                    i += 1
                    break
                i = _class_char(pattern, i)
                if pattern[i] == "-":
                    i = _class_char(pattern, i + 1)
                ranges += 1
        else:
            i += 1


class PatternMatcher:
    """patternmatcher.PatternMatcher: later patterns override earlier ones; `!` patterns re-include."""

    def __init__(self, patterns: list[str]):
        self.patterns: list[Pattern] = []
        self.exclusions = False
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text[0] == "!"
            if exclusion:
                if len(text) == 1:
                    raise PatternError('illegal exclusion pattern: "!"')
                text = text[1:]
                self.exclusions = True
            _check_syntax(text)
            self.patterns.append(Pattern(text, exclusion))

    def compile(self) -> None:
        """Compile the regular expressions now, so a bad one fails before anything is sent."""
        for pattern in self.patterns:
            pattern.match("")

    def matches(self, path: str, parent: list[bool] | None = None) -> tuple[bool, list[bool]]:
        """MatchesUsingParentResults (MatchesOrParentMatches when `parent` is None): whether `path` is
        excluded, and the per-pattern results its children take as their parent's."""
        matched = False
        results = [False] * len(self.patterns)
        parent_dirs: list[str] | None = None
        for i, pattern in enumerate(self.patterns):
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit:
                if parent:
                    hit = parent[i]  # what this pattern said of the parent directory holds for its children
                else:
                    if parent_dirs is None:
                        head = path.rpartition("/")[0]
                        parent_dirs = head.split("/") if head else []
                    for j in range(len(parent_dirs)):
                        if pattern.match("/".join(parent_dirs[:j + 1])):
                            hit = True
                            break
            if hit:
                matched = not pattern.exclusion
            results[i] = hit
        return matched, results


def matches_or_parent_matches(path: str, patterns: list[str]) -> bool:
    try:
        return PatternMatcher(patterns).matches(path)[0]
    except PatternError:
        return False


def trim_build_files(excludes: list[str], dockerfile: str, from_stdin: bool) -> list[str]:
    """build.TrimBuildFilesFromExcludes: `.dockerignore` and the Dockerfile are sent even when ignored."""
    excludes = list(excludes)
    if matches_or_parent_matches(".dockerignore", excludes):
        excludes.append("!.dockerignore")
    if matches_or_parent_matches(dockerfile, excludes) and not from_stdin:
        excludes.append("!" + dockerfile)
    return excludes


# --- tar -------------------------------------------------------------------------------------------

_REG, _LNK, _SYM, _CHR, _BLK, _DIR, _FIFO, _PAX = b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"x"


def _octal(value: int, size: int) -> bytes:
    if value < 0 or value >= 8 ** (size - 1):
        value = 0  # carried by a pax record instead
    return b"%0*o\0" % (size - 1, value)


def _field(data: bytes, size: int) -> bytes:
    return data[:size].ljust(size, b"\0")


def _ascii(name: bytes) -> bytes:
    return bytes(b for b in name if b < 0x80)


def _pax_records(records: dict[str, bytes]) -> bytes:
    out = b""
    for key in sorted(records):
        body = b" " + key.encode() + b"=" + records[key] + b"\n"
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length = len(str(length)) + len(body)
        out += str(length).encode() + body
    return out


def _block(name: bytes, mode: int, size: int, mtime: int, typeflag: bytes, linkname: bytes = b"",
           devmajor: int = 0, devminor: int = 0, raw: bool = False) -> bytes:
    """A header block; `raw` for a pax record's own header, whose device numbers Go leaves empty."""
    devices = b"\0" * 16 if raw else _octal(devmajor, 8) + _octal(devminor, 8)
    head = b"".join((
        _field(_ascii(name), 100), _octal(mode, 8), _octal(0, 8), _octal(0, 8), _octal(size, 12),
        _octal(mtime, 12), b" " * 8, typeflag, _field(_ascii(linkname), 100), b"ustar\x0000",
        b"\0" * 64, devices, b"\0" * 167,
    ))
    checksum = b"%06o\0 " % sum(head)
    return head[:148] + checksum + head[156:]


def tar_header(name: bytes, mode: int, size: int, mtime: int, typeflag: bytes, linkname: bytes = b"",
               devmajor: int = 0, devminor: int = 0) -> bytes:
    """One entry's header as Go's archive/tar writes it in PAX format (uid/gid 0, no user names)."""
    records: dict[str, bytes] = {}
    if len(name) > 100 or _ascii(name) != name:
        records["path"] = name
    if len(linkname) > 100 or _ascii(linkname) != linkname:
        records["linkpath"] = linkname
    if size >= 8 ** 11:
        records["size"] = str(size).encode()
    if mtime < 0 or mtime >= 8 ** 11:
        records["mtime"] = str(mtime).encode()
    head = b""
    if records:
        data = _pax_records(records)
        directory, _, base = name.rpartition(b"/")  # Go: path.Join(dir, "PaxHeaders.0", file)
        pax_name = (directory + b"/" if directory else b"") + b"PaxHeaders.0" + (b"/" + base if base else b"")
        head = _block(pax_name, 0, len(data), 0, _PAX, raw=True) + data + _padding(len(data))
    return head + _block(name, mode, size, mtime, typeflag, linkname, devmajor, devminor)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % 512)


def _file_chunks(path: str, size: int) -> Iterator[bytes]:
    """A regular file's data, exactly `size` bytes (padded with zeros if it shrank meanwhile)."""
    left = size
    with open(path, "rb") as f:
        while left > 0:
            data = f.read(min(left, _READ_SIZE))
            if not data:
                break
            left -= len(data)
            yield data
    if left > 0:
        yield b"\0" * left
    yield _padding(size)


def context_entries(root: str, matcher: PatternMatcher) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of what archive.TarWithOptions sends, in its order (filepath.Walk)."""
    import stat

    parents: dict[str, list[bool]] = {}
    exclusion_texts = [p.text for p in matcher.patterns if p.exclusion]

    def walk(rel_dir: str) -> Iterator[tuple[str, os.stat_result]]:
        directory = os.path.join(root, rel_dir) if rel_dir else root
        try:
            names = sorted(os.listdir(directory), key=os.fsencode)
        except OSError:
            return
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(os.path.join(root, rel))
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            skip, results = matcher.matches(rel, parents.get(rel_dir)) if matcher.patterns else (False, [])
            if is_dir:
                parents[rel] = results  # what its children inherit
            if skip:
                if not is_dir:
                    continue
                if not matcher.exclusions:
                    continue
                prefix = rel + "/"
                if any((text + "/").startswith(prefix) for text in exclusion_texts):
                    yield from walk(rel)  # an exception may re-include something below: look inside
                continue
            yield rel, st
            if is_dir:
                yield from walk(rel)

    yield from walk("")


def validate_context(root: str, excludes: list[str]) -> None:
    """build.ValidateContextDirectory: before anything is sent, every directory that is not ignored must be
    listable and every file readable (symlinks and fifos are not opened). Raises CliError in docker's words."""
    import errno
    import stat

    try:
        matcher = PatternMatcher(excludes)
        matcher.compile()
    except PatternError as exc:
        raise CliError(f"error checking context: {exc}") from None

    def fail(path: str, exc: OSError) -> None:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise CliError(f"error checking context: can't stat '{path}'")
        if exc.errno == errno.ENOENT:
            raise CliError(f"error checking context: file ('{path}') not found or excluded by .dockerignore")
        raise CliError(f"error checking context: lstat {path}: {(exc.strerror or str(exc)).lower()}")

    def walk(path: str, rel: str) -> None:
        try:
            names = sorted(os.listdir(path), key=os.fsencode)
        except OSError as exc:
            fail(path, exc)
            return
        for name in names:
            child = os.path.join(path, name)
            child_rel = f"{rel}/{name}" if rel else name
            try:
                st = os.lstat(child)
            except OSError as exc:
                fail(child, exc)
                continue
            if matcher.patterns and matcher.matches(child_rel)[0]:
                continue  # ignored (a directory with all below it)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                walk(child, child_rel)
            elif not (stat.S_ISLNK(mode) or stat.S_ISFIFO(mode)):
                try:
                    os.close(os.open(child, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC))
                except OSError as exc:
                    if exc.errno in (errno.EACCES, errno.EPERM):
                        raise CliError(f"error checking context: no permission to read from '{child}'") from None

    walk(root, "")


def context_tar(root: str, matcher: PatternMatcher, extra_dockerfile: tuple[str, bytes] | None = None
                ) -> Iterator[bytes]:
    """The context directory as a tar stream, piece by piece. `extra_dockerfile` is (name, content) of a
    Dockerfile from stdin or outside the context, added as docker's AddDockerfileToBuildContext does."""
    import stat
    import time

    seen_inodes: dict[tuple[int, int], bytes] = {}
    sent_ignore = False
    for rel, st in context_entries(root, matcher):
        mode = st.st_mode
        perm = stat.S_IMODE(mode)
        mtime = int(st.st_mtime)
        name = os.fsencode(rel)
        path = os.path.join(root, rel)
        if stat.S_ISDIR(mode):
            yield tar_header(name + b"/", perm, 0, mtime, _DIR)
        elif stat.S_ISLNK(mode):
            try:
                target = os.fsencode(os.readlink(path))
            except OSError:
                continue
            yield tar_header(name, perm, 0, mtime, _SYM, target)
        elif stat.S_ISREG(mode):
            if rel == ".dockerignore" and extra_dockerfile is not None:
                with open(path, "rb") as f:
                    data = f.read() + b"\n" + extra_dockerfile[0].encode() + b"\n"
                sent_ignore = True
                yield tar_header(name, perm, len(data), mtime, _REG) + data + _padding(len(data))
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = seen_inodes.get(key)
                if first is not None:
                    yield tar_header(name, perm, 0, mtime, _LNK, first)
                    continue
                seen_inodes[key] = name
            yield tar_header(name, perm, st.st_size, mtime, _REG)
            yield from _file_chunks(path, st.st_size)
        elif stat.S_ISFIFO(mode):
            yield tar_header(name, perm, 0, mtime, _FIFO)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = _CHR if stat.S_ISCHR(mode) else _BLK
            yield tar_header(name, perm, 0, mtime, kind, b"", os.major(st.st_rdev), os.minor(st.st_rdev))
        # sockets: left out, as docker does
    if extra_dockerfile is not None:
        now = int(time.time())
        dockerfile_name, content = extra_dockerfile
        yield tar_header(dockerfile_name.encode(), 0o600, len(content), now, _REG) + content + _padding(len(content))
        if not sent_ignore:
            data = b".dockerignore\n" + dockerfile_name.encode() + b"\n"
            yield tar_header(b".dockerignore", 0o600, len(data), now, _REG) + data + _padding(len(data))
    yield b"\0" * 1024


def single_dockerfile_tar(content: bytes) -> Iterator[bytes]:
    """A Dockerfile read from stdin as the whole context (docker writes it to a temporary directory
    and tars that: `Dockerfile`, mode 0666 less the umask)."""
    import time

    umask = os.umask(0)
    os.umask(umask)
    yield tar_header(DEFAULT_DOCKERFILE.encode(), 0o666 & ~umask, len(content), int(time.time()), _REG)
    yield content + _padding(len(content))
    yield b"\0" * 1024


def gzip_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """--compress: the context gzipped on the way (the engine sniffs the magic bytes)."""
    import zlib

    packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 31)
    for chunk in chunks:
        packed = packer.compress(chunk)
        if packed:
            yield packed
    yield packer.flush()


class ProgressStream:
    """A file-like body over an iterator of byte strings; counts what was read and draws docker's
    `Sending build context` line (raw progress output) to `out`."""

    def __init__(self, chunks: Iterator[bytes], out: Any):
        self._chunks = chunks
        self._pending = b""
        self._out = out
        self.sent = 0
        self._last_update = 0
        self._last_time = 0.0
        self._done = False
        # Measured: docker draws only the final line when its output is not a terminal (even for 200 MB);
        # on a terminal we redraw the count as it grows.
        try:
            self._live = out.isatty()
        except (AttributeError, ValueError):
            self._live = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        parts = [self._pending] if self._pending else []
        have = len(self._pending)
        self._pending = b""
        while have < size:
            piece = next(self._chunks, None)
            if piece is None:
                break
            parts.append(piece)
            have += len(piece)
        data = b"".join(parts)
        if len(data) > size:
            data, self._pending = data[:size], data[size:]
        if data:
            self.sent += len(data)
            if self._live and self.sent - self._last_update > _UPDATE_EVERY:
                self._update()
        elif not self._done:
            self._done = True
            self._write(f"{SENDING} {_human(self.sent):>8}\r\r\n")
        return data

    def _update(self) -> None:
        import time

        now = time.monotonic()
        self._last_update = self.sent
        if self._last_time and now - self._last_time < _UPDATE_INTERVAL:
            return
        self._last_time = now
        self._write(f"{SENDING} {_human(self.sent):>8}\r")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def _human(size: int) -> str:
    from dockyard.cli.format import human_size

    return human_size(size)


# --- context preparation -------------------------------------------------------------------------


def _missing_component(path: str) -> str:
    """The path EvalSymlinks names in its lstat error: the first component that does not exist."""
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if not os.path.lexists(prefix):
            return prefix
    return path


def _go_quote(text: str) -> str:
    from dockyard.jsonio import dumps

    return dumps(text)


def is_git_url(text: str) -> bool:
    if text.startswith(("git://", "github.com/", "git@")):
        return True
    if is_url(text):
        base = text.split("#", 1)[0]
        return base.endswith(".git")
    return False


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def resolve_local_context(context: str, dockerfile: str) -> tuple[str, str]:
    """(real context directory, Dockerfile path relative to it, `../…` when outside)."""
    absolute = os.path.abspath(context)
    real = os.path.realpath(absolute)
    if not os.path.isdir(real):
        raise CliError(f"unable to prepare context: context must be a directory: {real}")
    if dockerfile == "-":
        return real, DEFAULT_DOCKERFILE
    if dockerfile:
        candidate = os.path.abspath(dockerfile)
    else:
        candidate = os.path.join(real, DEFAULT_DOCKERFILE)
        if not os.path.lexists(candidate):
            lower = os.path.join(real, DEFAULT_DOCKERFILE.lower())
            if os.path.lexists(lower):
                candidate = lower
    try:
        resolved = os.path.realpath(candidate, strict=True)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise CliError("unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                           f"lstat {_missing_component(candidate)}: no such file or directory") from None
        raise CliError("unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                       f"{(exc.strerror or str(exc)).lower()}") from None
    return real, os.path.relpath(resolved, real)


def _read_stdin() -> Any:
    return sys.stdin.buffer


def _is_archive(head: bytes) -> bool:
    """build.IsArchive: a compressed stream, or a block that reads as a tar header."""
    if head.startswith((b"\x1f\x8b\x08", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
        return True
    if len(head) < 512:
        return False
    block = head[:512]
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return stored == computed


def _stdin_chunks(head: bytes, source: Any) -> Iterator[bytes]:
    if head:
        yield head
    while True:
        data = source.read(_READ_SIZE)
        if not data:
            return
        yield data


# --- flags ----------------------------------------------------------------------------------------


def _tag(text: str) -> str:
    from dockyard.errors import EngineError
    from dockyard.images import reference

    try:
        reference.parse(text)
    except EngineError as exc:
        message = exc.message
        if message.endswith("repository name must be lowercase"):
            _, rest = reference.split_domain(text)
            path = rest.split("@", 1)[0]
            head, slash, last = path.rpartition("/")
            path = head + slash + last.split(":", 1)[0]
            message = f"invalid reference format: repository name ({path}) must be lowercase"
        raise ValueError(message) from None
    return text


def _build_arg(text: str) -> str:
    key, eq, _ = text.partition("=")
    if not key:
        raise ValueError(f"invalid environment variable: {text}")
    if not eq and key in os.environ:
        return f"{key}={os.environ[key]}"
    return text


def _kv_map(values: list[str], allow_nil: bool) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for value in values:
        key, eq, val = value.partition("=")
        out[key] = val if eq else (None if allow_nil else "")
    return out


def registry_config() -> str:
    """X-Registry-Config: every stored login, by registry (`e30=`, "{}", without any), in URL-safe base64."""
    import binascii  # not base64: that module imports `re`

    from dockyard.cli.registry import _read_config, stored_login
    from dockyard.jsonio import dumps

    logins = {}
    for key in sorted(_read_config().get("auths") or {}):
        login = stored_login(key)
        if login:
            logins[key] = login
    encoded = binascii.b2a_base64(dumps(logins).encode(), newline=False).decode()
    return encoded.replace("+", "-").replace("/", "_")


def build_params(opts: dict[str, Any], dockerfile: str) -> list[tuple[str, str]]:
    """The query, keys sorted as Go's url.Values encodes them (repeated keys in the order given)."""
    from dockyard.jsonio import dumps

    query: dict[str, list[str]] = {}

    def put(key: str, *values: str) -> None:
        query.setdefault(key, []).extend(values)

    if opts["build_arg"]:
        put("buildargs", dumps(_kv_map(opts["build_arg"], True)))
    cache_from = [item for value in opts["cache_from"] for item in value.split(",") if item]
    if cache_from:
        put("cachefrom", dumps(cache_from))
    for flag, key in (("cgroup_parent", "cgroupparent"), ("cpu_period", "cpuperiod"), ("cpu_quota", "cpuquota"),
                      ("cpuset_cpus", "cpusetcpus"), ("cpuset_mems", "cpusetmems"), ("cpu_shares", "cpushares"),
                      ("memory", "memory"), ("memory_swap", "memswap"), ("shm_size", "shmsize")):
        if opts[flag]:
            put(key, str(opts[flag]))
    if dockerfile:
        put("dockerfile", dockerfile)
    if opts["add_host"]:
        put("extrahosts", *opts["add_host"])
    if opts["force_rm"]:
        put("forcerm", "1")
    if opts["isolation"] and opts["isolation"] != "default":
        put("isolation", opts["isolation"])
    if opts["label"]:
        put("labels", dumps(_kv_map(opts["label"], False)))
    if opts["network"] and opts["network"] != "default":
        put("networkmode", opts["network"])
    if opts["no_cache"]:
        put("nocache", "1")
    if opts["platform"]:
        put("platform", opts["platform"])
    if opts["pull"]:
        put("pull", "1")
    if opts["quiet"]:
        put("q", "1")
    if not opts["rm"]:
        put("rm", "0")
    security = [item for value in opts["security_opt"] for item in value.split(",") if item]
    if security:
        put("securityopt", *security)
    if opts["tag"]:
        put("t", *opts["tag"])
    if opts["target"]:
        put("target", opts["target"])
    if opts["ulimit"]:
        put("ulimits", dumps(opts["ulimit"]))
    put("version", "1")
    return [(key, value) for key in sorted(query) for value in query[key]]


# --- the command ----------------------------------------------------------------------------------


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(self.parts)


def render_messages(messages: Any, out: Any, on_aux: Callable[[Any], None]) -> None:
    """jsonmessage.DisplayJSONMessagesStream on a non-terminal. Raises CliError for an error message."""
    for message in messages:
        detail = message.get("errorDetail")
        if detail or message.get("error"):
            detail = detail or {}
            raise CliError(detail.get("message") or message.get("error") or "", exit_code=detail.get("code") or 1)
        if "aux" in message:
            on_aux(message["aux"])
            continue
        progress = message.get("progressDetail")
        if progress is not None and ((progress.get("current") or 0) > 0 or (progress.get("total") or 0) > 0):
            continue  # progress bars are drawn on terminals only
        text = f"{message['id']}: " if message.get("id") else ""
        if message.get("from"):
            text += f"(from {message['from']}) "
        if message.get("progress"):
            text += f"{message.get('status') or ''} {message['progress']}"
        elif message.get("stream"):
            text += message["stream"]
        else:
            text += f"{message.get('status') or ''}\n"
        out.write(text)
        out.flush()


def run_build(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    if opts["squash"]:
        raise CliError('"--squash" is only supported on a Docker daemon with experimental features enabled')
    context = args[0]
    dockerfile_opt = opts["file"]
    if dockerfile_opt == "-" and context == "-":
        raise CliError("invalid argument: can't use stdin for both build context and dockerfile")
    iidfile = opts["iidfile"]
    if iidfile:  # first, so that a failed build leaves no stale ID behind
        try:
            os.remove(iidfile)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CliError(f"Removing image ID file: remove {iidfile}: {(exc.strerror or str(exc)).lower()}") \
                from None
    quiet = opts["quiet"]
    # -q: the context's progress and the engine's output are kept, and shown only if the build fails
    progress_out: Any = _Buffer() if quiet else cli.out
    build_out: Any = _Buffer() if quiet else cli.out

    chunks: Iterator[bytes]
    dockerfile = ""
    if context == "-":
        source = _read_stdin()
        head = source.read(512)  # a buffered reader: 512 bytes unless the input is shorter
        if _is_archive(head):
            chunks = _stdin_chunks(head, source)
            dockerfile = dockerfile_opt
        else:
            chunks = single_dockerfile_tar(head + source.read())
            dockerfile = DEFAULT_DOCKERFILE
    elif os.path.exists(context):
        root, rel_dockerfile = resolve_local_context(context, dockerfile_opt)
        extra: tuple[str, bytes] | None = None
        from_stdin = dockerfile_opt == "-"
        if from_stdin:
            extra = (_random_dockerfile_name(), _read_stdin().read())
        elif rel_dockerfile == ".." or rel_dockerfile.startswith("../"):
            try:
                with open(dockerfile_opt, "rb") as f:
                    extra = (_random_dockerfile_name(), f.read())
            except OSError as exc:
                raise CliError(f"unable to open Dockerfile: open {dockerfile_opt}: "
                               f"{(exc.strerror or str(exc)).lower()}") from None
        try:
            with open(os.path.join(root, ".dockerignore"), "rb") as f:
                excludes = read_dockerignore(f.read())
        except FileNotFoundError:
            excludes = []
        except OSError as exc:
            raise CliError(f"error reading .dockerignore: {(exc.strerror or str(exc)).lower()}") from None
        validate_context(root, excludes)
        excludes = trim_build_files(excludes, rel_dockerfile, from_stdin)
        try:
            matcher = PatternMatcher(excludes)
            matcher.compile()
        except PatternError as exc:
            raise CliError(f"error checking context: {exc}") from None
        chunks = context_tar(root, matcher, extra)
        dockerfile = extra[0] if extra is not None else rel_dockerfile
    elif is_git_url(context) or is_url(context):
        raise CliError(f"unable to prepare context: unable to use remote context {context}: "
                       "dockyard builds from a local directory or stdin only (no network access)")
    else:
        raise CliError(f"unable to prepare context: path {_go_quote(context)} not found")

    if opts["compress"]:
        chunks = gzip_chunks(chunks)
    body = ProgressStream(chunks, progress_out)
    image_id = ""

    def on_aux(aux: Any) -> None:
        nonlocal image_id
        if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
            image_id = aux["ID"]

    from dockyard.client.api import ApiError

    messages = cli.client().image_build(body, build_params(opts, dockerfile), registry_config())
    try:
        render_messages(messages, build_out, on_aux)
    except (CliError, ApiError):
        if quiet:  # docker shows what it kept back, then the error
            cli.err.write(progress_out.text() + build_out.text())
            cli.err.flush()
        raise
    if quiet:
        image_id = build_out.text()  # docker takes all of it, line end included
        cli.out.write(image_id)
        cli.out.flush()
    if iidfile:
        if not image_id:
            raise CliError(f"Server did not provide an image ID. Cannot write {iidfile}")
        with open(iidfile, "w") as f:
            f.write(image_id)
    return 0


def _random_dockerfile_name() -> str:
    return ".dockerfile." + os.urandom(10).hex()


def _bytes(text: str) -> int:
    from dockyard.cli import values

    return values.memory(text)


def _swap(text: str) -> int:
    from dockyard.cli import values

    return values.memory_swap(text)


def _int(text: str) -> int:
    from dockyard.cli import values

    return values.go_parse_int(text)


def _ulimit(text: str) -> dict[str, Any]:
    from dockyard.cli import values

    return values.ulimit(text)


BUILD = Command(
    ("build",), "[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile",
    [
        Flag("add-host", "", LIST, 'Add a custom host-to-IP mapping ("host:ip")', metavar="list"),
        Flag("build-arg", "", LIST, "Set build-time variables", metavar="list", check=_build_arg),
        Flag("cache-from", "", LIST, "Images to consider as cache sources", metavar="strings"),
        Flag("cgroup-parent", "", STRING, 'Set the parent cgroup for the "RUN" instructions during build'),
        Flag("compress", "", BOOL, "Compress the build context using gzip"),
        Flag("cpu-period", "", STRING, "Limit the CPU CFS (Completely Fair Scheduler) period", metavar="int",
             check=_int, default=0),
        Flag("cpu-quota", "", STRING, "Limit the CPU CFS (Completely Fair Scheduler) quota", metavar="int",
             check=_int, default=0),
        Flag("cpu-shares", "c", STRING, "CPU shares (relative weight)", metavar="int", check=_int, default=0),
        Flag("cpuset-cpus", "", STRING, "CPUs in which to allow execution (0-3, 0,1)"),
        Flag("cpuset-mems", "", STRING, "MEMs in which to allow execution (0-3, 0,1)"),
        Flag("disable-content-trust", "", BOOL, "Skip image verification", default=True, shown_default="true"),
        Flag("file", "f", STRING, 'Name of the Dockerfile (Default is "PATH/Dockerfile")'),
        Flag("force-rm", "", BOOL, "Always remove intermediate containers"),
        Flag("iidfile", "", STRING, "Write the image ID to the file"),
        Flag("isolation", "", STRING, "Container isolation technology"),
        Flag("label", "", LIST, "Set metadata for an image", metavar="list"),
        Flag("memory", "m", STRING, "Memory limit", metavar="bytes", check=_bytes, default=0),
        Flag("memory-swap", "", STRING, "Swap limit equal to memory plus swap: -1 to enable unlimited swap",
             metavar="bytes", check=_swap, default=0),
        Flag("network", "", STRING, "Set the networking mode for the RUN instructions during build",
             default="default", shown_default='"default"'),
        Flag("no-cache", "", BOOL, "Do not use cache when building the image"),
        Flag("platform", "", STRING, "Set platform if server is multi-platform capable",
             default=os.environ.get("DOCKER_DEFAULT_PLATFORM", "")),
        Flag("pull", "", BOOL, "Always attempt to pull a newer version of the image"),
        Flag("quiet", "q", BOOL, "Suppress the build output and print image ID on success"),
        Flag("rm", "", BOOL, "Remove intermediate containers after a successful build", default=True,
             shown_default="true"),
        Flag("security-opt", "", LIST, "Security options", metavar="strings"),
        Flag("shm-size", "", STRING, 'Size of "/dev/shm"', metavar="bytes", check=_bytes, default=0),
        Flag("squash", "", BOOL, "Squash newly built layers into a single new layer"),
        Flag("tag", "t", LIST, 'Name and optionally a tag in the "name:tag" format', metavar="list", check=_tag),
        Flag("target", "", STRING, "Set the target build stage to build."),
        Flag("ulimit", "", LIST, "Ulimit options", metavar="ulimit", check=_ulimit, shown_default="[]"),
    ],
    run_build, min_args=1, max_args=1, aliases=("image build", "build", "builder build"),
)
