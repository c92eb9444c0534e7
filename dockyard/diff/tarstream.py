"""A streaming tar reader built for speed: headers parsed with one struct call,
file data handed out as slices of one large buffer, or copied file-to-file in
the kernel (`copy_file_range`) when the archive is a plain file on disk.

Understands ustar/GNU/PAX: PAX `x`/`g` records (path, linkpath, size, uid,
gid, mtime, atime, SCHILY.xattr.*, LIBARCHIVE.xattr.*), GNU long names (`L`,
`K`), base-256 numbers.  Sparse files and other rarities are refused by name.
Every header's checksum is checked, so a corrupt or truncated archive fails
loudly (`InvalidArgument`) instead of unpacking garbage.

Optionally hashes every byte it reads (`hasher`), including the padding and
whatever follows the end-of-archive marker, which is how a layer's DiffID is
computed while it is being unpacked.
"""

from __future__ import annotations

import base64
import os
import struct
import zlib

from ..errors import InvalidArgument

BLOCK = 512
BUFSIZE = 1 << 20

REGULAR = "0"
HARDLINK = "1"
SYMLINK = "2"
CHAR = "3"
BLOCKDEV = "4"
DIRECTORY = "5"
FIFO = "6"
CONTIGUOUS = "7"
_KNOWN = {REGULAR, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO}

_HEADER = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s")
_ZERO_BLOCK = bytes(BLOCK)


class Entry:
    """One archive member, with PAX and GNU extensions already merged in."""

    __slots__ = ("path", "type", "mode", "uid", "gid", "size", "mtime_ns", "atime_ns", "linkname",
                 "devmajor", "devminor", "xattrs", "offset")

    def __repr__(self) -> str:
        return f"Entry({self.path!r}, type={self.type!r}, size={self.size})"

    @property
    def is_file(self) -> bool:
        return self.type == REGULAR

    @property
    def is_dir(self) -> bool:
        return self.type == DIRECTORY


def _number(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:
        # GNU base-256: big-endian two's complement in the remaining bits.
        value = int.from_bytes(field, "big", signed=bool(field[0] & 0x40))
        if not field[0] & 0x40:
            value &= ~(0x80 << (8 * (len(field) - 1)))
        return value
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise InvalidArgument(f"corrupt archive: bad {what} field {field!r} in a tar header") from None


def _text(field: bytes) -> str:
    if field[:1] == b"\0":
        return ""
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict:
    records = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            break
        space = data.find(b" ", pos)
        if space < 0:
            raise InvalidArgument("corrupt tar archive: bad PAX record")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise InvalidArgument("corrupt tar archive: bad PAX record length") from None
        if length <= 0 or pos + length > len(data):
            raise InvalidArgument("corrupt tar archive: bad PAX record length")
        record = data[space + 1:pos + length - 1]
        key, sep, value = record.partition(b"=")
        if not sep:
            raise InvalidArgument("corrupt tar archive: PAX record without '='")
        records[key.decode("utf-8", "surrogateescape")] = value
        pos += length
    return records


def _pax_time(value: bytes) -> int:
    text = value.decode()
    try:
        if "." in text:
            whole, frac = text.split(".", 1)
            neg = whole.startswith("-")
            ns = int(whole) * 1_000_000_000 + (-1 if neg else 1) * int((frac + "000000000")[:9])
            return ns
        return int(text) * 1_000_000_000
    except ValueError:
        raise InvalidArgument(f"corrupt tar archive: bad PAX time {text!r}") from None


class TarReader:
    """Iterate the members of a tar stream; read, skip or copy each one's data.

    `source` is a binary file object (anything with `read`, ideally
    `readinto`).  When `fd` is given, `source` must be that same plain file,
    positioned at offset 0, and large members are copied straight from it with
    copy_file_range.  Data not consumed is skipped when iteration moves on.
    """

    def __init__(self, source, hasher=None, fd: int | None = None, what: str = "tar archive"):
        self._src = source
        self._readinto = getattr(source, "readinto", None)
        self._hasher = hasher
        self._fd = fd
        self.what = what
        self._buf = bytearray(BUFSIZE)
        self._view = memoryview(self._buf)
        self._start = 0          # next unread byte in _buf
        self._end = 0            # end of valid bytes in _buf
        self._base = 0           # archive offset of _buf[0]
        self._eof = False
        self._left = 0           # unread data bytes of the current member
        self._pad = 0            # padding after the current member's data
        self.finished = False
        self._global_pax: dict | None = None

    @classmethod
    def open_file(cls, path: str, what: str = "tar archive") -> TarReader:
        """A reader over a plain file that copies large members with copy_file_range.

        Close it with `close()`.  The file is read unbuffered, so the kernel's
        file offset always equals what the reader has consumed.
        """
        f = open(path, "rb", buffering=0)
        return cls(f, fd=f.fileno(), what=what)

    def close(self) -> None:
        close = getattr(self._src, "close", None)
        if close is not None:
            close()

    # -- low-level buffer -------------------------------------------------

    def _fill(self, need: int) -> bool:
        """Make at least `need` bytes available from _start; False at EOF first."""
        while self._end - self._start < need:
            if self._eof:
                return False
            if self._start:
                rest = self._end - self._start
                self._buf[:rest] = self._buf[self._start:self._end]
                self._base += self._start
                self._start, self._end = 0, rest
            if self._readinto is not None:
                n = self._readinto(self._view[self._end:])
            else:
                chunk = self._src.read(BUFSIZE - self._end)
                n = len(chunk)
                self._buf[self._end:self._end + n] = chunk
            if not n:
                self._eof = True
                return False
            if self._hasher is not None:
                self._hasher.update(self._view[self._end:self._end + n])
            self._end += n
        return True

    def _take(self, n: int) -> memoryview:
        if not self._fill(n):
            raise InvalidArgument(f"unexpected end of {self.what}: it is truncated")
        view = self._view[self._start:self._start + n]
        self._start += n
        return view

    def _skip_bytes(self, n: int) -> None:
        avail = self._end - self._start
        if n <= avail:
            self._start += n
            return
        n -= avail
        self._base += self._end
        self._start = self._end = 0
        if self._fd is not None and self._hasher is None:
            # A plain file: seek instead of reading.
            self._base += n
            os.lseek(self._fd, self._base, os.SEEK_SET)
            return
        while n:
            got = self._fill(min(n, BUFSIZE))
            take = min(n, self._end - self._start)
            self._start += take
            n -= take
            if not got and n:
                raise InvalidArgument(f"unexpected end of {self.what}: it is truncated")

    @property
    def offset(self) -> int:
        """Archive offset of the next unread byte."""
        return self._base + self._start

    # -- members ------------------------------------------------------------

    def __iter__(self):
        return self

    def __next__(self) -> Entry:
        self._finish_member()
        entry = self._next_header()
        if entry is None:
            self.finished = True
            raise StopIteration
        return entry

    def _finish_member(self) -> None:
        if self._left or self._pad:
            self._skip_bytes(self._left + self._pad)
            self._left = self._pad = 0

    def _next_header(self) -> Entry | None:
        pax: dict = {}
        long_name = long_link = None
        global_pax = self._global_pax
        while True:
            if not self._fill(BLOCK):
                if self._end - self._start:
                    raise InvalidArgument(f"unexpected end of {self.what}: it is truncated")
                return None  # EOF on a block boundary: end without the zero blocks (Go accepts it too)
            raw = self._take(BLOCK)
            if raw[0] == 0 and raw == _ZERO_BLOCK:
                self.drain()
                return None
            fields = _HEADER.unpack_from(raw)
            try:
                checksum = int(fields[6].rstrip(b"\0 ") or b"0", 8)
            except ValueError:
                checksum = _number(fields[6], "checksum")
            # The byte sum (chksum field counted as spaces), modulo 65521 via adler32's first
            # half: C speed, and as good as the exact sum at catching corruption.
            if ((zlib.adler32(raw) & 0xFFFF) - 1 - sum(fields[6]) + 256 - checksum) % 65521:
                self._check_exactly(bytes(raw), checksum)
            kind = fields[7].decode("latin-1")
            try:
                size = int(fields[4].rstrip(b"\0 ") or b"0", 8)
            except ValueError:
                size = _number(fields[4], "size")
            if kind in ("x", "g", "L", "K"):
                data = bytes(self._take(size)) if size <= len(self._buf) else self._read_large(size)
                self._skip_bytes(-size % BLOCK)
                if kind == "x":
                    pax.update(_pax_records(data))
                elif kind == "g":
                    global_pax = dict(global_pax or {})
                    global_pax.update(_pax_records(data))
                    self._global_pax = global_pax
                elif kind == "L":
                    long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                else:
                    long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            if kind == "\0" or kind == CONTIGUOUS:
                kind = REGULAR
            if kind == "S":
                raise InvalidArgument(f"unsupported entry in {self.what}: GNU sparse file "
                                      f"{_text(fields[0])!r}")
            if kind not in _KNOWN:
                raise InvalidArgument(f"unsupported entry in {self.what}: type {kind!r} for "
                                      f"{_text(fields[0])!r}")
            if global_pax:
                merged = dict(global_pax)
                merged.update(pax)
                pax = merged
            e = Entry()
            name = fields[0]
            if b"\0" in name:
                name = name[:name.index(b"\0")]
            prefix = fields[15]
            if prefix[:1] not in (b"\0", b"") and fields[9] == b"ustar\0":
                name = prefix.split(b"\0", 1)[0] + b"/" + name
            e.path = long_name if long_name is not None else name.decode("utf-8", "surrogateescape")
            e.linkname = long_link if long_link is not None else _text(fields[8])
            e.type = kind
            try:
                e.mode = int(fields[1].rstrip(b"\0 ") or b"0", 8) & 0o7777
                e.uid = int(fields[2].rstrip(b"\0 ") or b"0", 8)
                e.gid = int(fields[3].rstrip(b"\0 ") or b"0", 8)
                e.mtime_ns = int(fields[5].rstrip(b"\0 ") or b"0", 8) * 1_000_000_000
            except ValueError:
                e.mode = _number(fields[1], "mode") & 0o7777
                e.uid = _number(fields[2], "uid")
                e.gid = _number(fields[3], "gid")
                e.mtime_ns = _number(fields[5], "mtime") * 1_000_000_000
            e.atime_ns = None
            if kind == CHAR or kind == BLOCKDEV:
                e.devmajor = _number(fields[13], "devmajor")
                e.devminor = _number(fields[14], "devminor")
            else:
                e.devmajor = e.devminor = 0
            e.xattrs = None
            if pax:
                self._apply_pax(e, pax)
                if "size" in pax:
                    size = int(pax["size"])
            # Only regular files carry data (as Python's tarfile and GNU tar read it); the size
            # field of links, directories and devices is ignored.
            data_size = size if kind == REGULAR else 0
            e.size = data_size
            e.offset = self.offset
            self._left = data_size
            self._pad = -data_size % BLOCK
            return e

    def _check_exactly(self, raw: bytes, checksum: int) -> None:
        unsigned = sum(raw[:148]) + 256 + sum(raw[156:])
        signed = sum(b - 256 if b > 127 else b for b in raw[:148] + raw[156:]) + 256
        if checksum not in (unsigned, signed):
            raise InvalidArgument(f"corrupt {self.what}: header checksum mismatch at offset {self.offset - BLOCK}")

    def _read_large(self, size: int) -> bytes:
        if size > 64 << 20:
            raise InvalidArgument(f"corrupt {self.what}: extended header of {size} bytes")
        out = bytearray()
        while len(out) < size:
            n = min(BUFSIZE // 2, size - len(out))
            out += self._take(n)
        return bytes(out)

    @staticmethod
    def _apply_pax(e: Entry, pax: dict) -> None:
        for key, value in pax.items():
            if key == "path":
                e.path = value.decode("utf-8", "surrogateescape")
            elif key == "linkpath":
                e.linkname = value.decode("utf-8", "surrogateescape")
            elif key == "uid":
                e.uid = int(value)
            elif key == "gid":
                e.gid = int(value)
            elif key == "mtime":
                e.mtime_ns = _pax_time(value)
            elif key == "atime":
                e.atime_ns = _pax_time(value)
            elif key.startswith("SCHILY.xattr."):
                if e.xattrs is None:
                    e.xattrs = {}
                e.xattrs[key[13:]] = value
            elif key.startswith("LIBARCHIVE.xattr."):
                if e.xattrs is None:
                    e.xattrs = {}
                e.xattrs[key[17:]] = base64.b64decode(value + b"=" * (-len(value) % 4))
            elif key == "SCHILY.devmajor":
                e.devmajor = int(value)
            elif key == "SCHILY.devminor":
                e.devminor = int(value)
            elif key.startswith("GNU.sparse."):
                raise InvalidArgument(f"unsupported entry: PAX sparse file {e.path!r}")

    # -- member data ----------------------------------------------------------

    def read(self, limit: int | None = None) -> bytes:
        """The current member's remaining data (or up to `limit` bytes of it)."""
        n = self._left if limit is None else min(limit, self._left)
        out = bytearray()
        while len(out) < n:
            want = min(n - len(out), BUFSIZE // 2)
            out += self._take(want)
        self._left -= n
        return bytes(out)

    def write_to(self, fd: int) -> int:
        """Write the current member's remaining data to `fd`; returns the byte count."""
        total = self._left
        left = total
        if self._fd is not None and self._hasher is None and left > (1 << 16):
            avail = self._end - self._start
            if avail:
                take = min(avail, left)
                _write_all(fd, self._view[self._start:self._start + take])
                self._start += take
                left -= take
            if left:
                src = self._base + self._end
                _copy_range(self._fd, fd, src, left)
                self._base = src + left
                self._start = self._end = 0
                os.lseek(self._fd, self._base, os.SEEK_SET)
            self._left = 0
            return total
        while left:
            if self._start == self._end and not self._fill(1):
                raise InvalidArgument(f"unexpected end of {self.what}: it is truncated")
            take = min(self._end - self._start, left)
            _write_all(fd, self._view[self._start:self._start + take])
            self._start += take
            left -= take
        self._left = 0
        return total

    def detach_data(self, inline_limit: int) -> tuple[bytes | None, int]:
        """Consume the current member's data without copying it anywhere yet.

        Returns (bytes, -1) for data up to `inline_limit` bytes (or any size
        when the archive is not a plain file), else (None, offset): the data is
        at that offset of the plain file (`fd`), to be copied by someone else.
        """
        if self._fd is not None and self._hasher is None and self._left > inline_limit:
            offset = self.offset
            self._skip_bytes(self._left)
            self._left = 0
            return None, offset
        return self.read(), -1

    @property
    def source_fd(self) -> int | None:
        """The plain file's descriptor, for copying detached data (None when streaming)."""
        return self._fd if self._hasher is None else None

    def member_reader(self) -> _MemberReader:
        """A file object over the current member's data (for nested archives)."""
        return _MemberReader(self)

    def drain(self) -> None:
        """Read (and hash) whatever follows the end-of-archive marker."""
        self._finish_member()
        if self._hasher is None:
            self.finished = True
            return
        self._start = self._end
        while self._fill(1):
            self._start = self._end
        self.finished = True


class _MemberReader:
    """`read`/`readinto` over the current member of a TarReader, ending at its end."""

    def __init__(self, reader: TarReader):
        self._r = reader

    def readinto(self, buf) -> int:
        r = self._r
        if not r._left:
            return 0
        if r._start == r._end and not r._fill(1):
            raise InvalidArgument(f"unexpected end of {r.what}: it is truncated")
        n = min(len(buf), r._end - r._start, r._left)
        buf[:n] = r._view[r._start:r._start + n]
        r._start += n
        r._left -= n
        return n

    def read(self, n: int = -1) -> bytes:
        r = self._r
        if n is None or n < 0:
            return r.read()
        return r.read(min(n, r._left))

    @property
    def remaining(self) -> int:
        return self._r._left


def _write_all(fd: int, view) -> None:
    while view:
        n = os.write(fd, view)
        view = view[n:]


def copy_range(src_fd: int, dst_fd: int, offset: int, count: int) -> None:
    """Copy `count` bytes at `offset` of `src_fd` to `dst_fd` (in the kernel when it can)."""
    _copy_range(src_fd, dst_fd, offset, count)


def write_all(fd: int, view) -> None:
    _write_all(fd, memoryview(view))


def _copy_range(src_fd: int, dst_fd: int, offset: int, count: int) -> None:
    done = 0
    while done < count:
        try:
            n = os.copy_file_range(src_fd, dst_fd, count - done, offset + done)
        except OSError:
            n = 0
        if n == 0:
            # Not supported between these filesystems, or a short source: fall back to pread.
            data = os.pread(src_fd, min(BUFSIZE, count - done), offset + done)
            if not data:
                raise InvalidArgument("unexpected end of tar archive: it is truncated")
            _write_all(dst_fd, memoryview(data))
            n = len(data)
        done += n
