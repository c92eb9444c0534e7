"""Layer compression: detect it from the first bytes, and undo or apply it as a stream.

gzip goes through `isal` (several times faster than zlib; the threaded reader
decompresses on a second core while the caller unpacks), zstd through
`zstandard`.  Both libraries are imported only when a layer needs them.
"""

from __future__ import annotations

import enum
from typing import BinaryIO

from ..errors import InvalidArgument

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Compression(enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


def detect(head: bytes) -> Compression:
    """The compression of a stream that starts with `head` (4 bytes suffice)."""
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    for magic, name in ((b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz")):
        if head.startswith(magic):
            raise InvalidArgument(f"unsupported layer compression: {name} (gzip, zstd and plain tar are supported)")
    return Compression.NONE


def detect_file(path: str) -> Compression:
    with open(path, "rb") as f:
        return detect(f.read(6))


def decompressing_reader(source: BinaryIO, compression: Compression, threaded: bool = False) -> BinaryIO:
    """A file object yielding the decompressed bytes of `source`.

    Corrupt or truncated input surfaces as `InvalidArgument` naming the
    compression, whatever the library raised.
    """
    if compression is Compression.NONE:
        return source
    if compression is Compression.GZIP:
        if threaded:
            from isal import igzip_threaded
            stream = igzip_threaded.open(source, "rb", threads=1)
        else:
            from isal import igzip
            stream = igzip.IGzipFile(fileobj=source, mode="rb")
    else:
        import zstandard
        stream = zstandard.ZstdDecompressor().stream_reader(source, read_size=1 << 20)
    return _Guarded(stream, compression.value)


class _Guarded:
    """Turns a decompressor's own errors into InvalidArgument."""

    def __init__(self, stream, name: str):
        self._stream = stream
        self._name = name

    def _fail(self, err: Exception):
        return InvalidArgument(f"corrupt {self._name} data: {err or type(err).__name__}")

    def readinto(self, buf) -> int:
        try:
            return self._stream.readinto(buf)
        except InvalidArgument:
            raise
        except Exception as err:  # the libraries raise their own error classes, EOFError, OSError
            raise self._fail(err) from err

    def read(self, n: int = -1) -> bytes:
        try:
            return self._stream.read(n)
        except InvalidArgument:
            raise
        except Exception as err:
            raise self._fail(err) from err

    def close(self) -> None:
        try:
            self._stream.close()
        except Exception:
            pass


def compressing_writer(sink: BinaryIO, compression: Compression, level: int | None = None) -> BinaryIO:
    """A file object that compresses what is written to it into `sink` (close it to finish)."""
    if compression is Compression.NONE:
        return sink
    if compression is Compression.GZIP:
        from isal import igzip
        return igzip.IGzipFile(fileobj=sink, mode="wb", compresslevel=2 if level is None else level)
    import zstandard
    return zstandard.ZstdCompressor(level=3 if level is None else level).stream_writer(sink, closefd=False)


def media_type_compression(media_type: str) -> Compression | None:
    """What a layer media type says about compression (None: it does not say)."""
    if media_type.endswith("+gzip") or media_type.endswith(".gzip"):
        return Compression.GZIP
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        return Compression.ZSTD
    if media_type.endswith(".tar") or media_type.endswith("diff.tar"):
        return Compression.NONE
    return None
