"""Layers as tar streams <-> layers as directories.

Vocabulary:
  layer     a tar stream of changes to a filesystem (possibly gzip or zstd
            compressed); deletions are *whiteouts*: an empty `.wh.<name>`
            entry deletes `<name>` from the layers below, and `.wh..wh..opq`
            in a directory hides everything the lower layers put there.
  diff id   the sha256 of the *uncompressed* layer tar (the config's
            `rootfs.diff_ids`); a blob digest names the stored (maybe
            compressed) bytes instead.
  apply     unpack a layer into a directory (`apply_layer`, `unpack_blob`).
  create    archive a directory, or the difference of two, as a layer
            (`write_tree`, `write_diff`).

Modules: `tarstream` (a fast streaming tar reader), `apply`, `create`,
`compression`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from ..errors import InvalidArgument
from .apply import ApplyResult, Whiteouts, apply_layer, clean_path
from .compression import Compression, compressing_writer, decompressing_reader, detect, detect_file
from .create import TarWriter, WriteResult, write_diff, write_tree
from .tarstream import Entry, TarReader

__all__ = [
    "ApplyResult", "Compression", "Entry", "TarReader", "TarWriter", "UnpackResult", "Whiteouts", "WriteResult",
    "apply_layer", "clean_path", "compressing_writer", "decompressing_reader", "detect", "detect_file",
    "unpack_blob", "write_diff", "write_tree",
]


@dataclass(frozen=True)
class UnpackResult:
    diff_id: str     # sha256 of the uncompressed tar
    size: int        # bytes of file content unpacked
    entries: int
    tar_size: int    # bytes of the uncompressed tar


def unpack_blob(path: str, root: str, whiteouts: Whiteouts, *, blob_digest: str | None = None,
                expected_diff_id: str | None = None) -> UnpackResult:
    """Apply the layer stored in file `path` (plain, gzip or zstd) to `root`.

    For a plain tar whose `blob_digest` the content store has verified, the
    DiffID is that digest and the file is not hashed again (its data is copied
    in the kernel).  Otherwise the uncompressed stream is hashed while it is
    unpacked and checked against `expected_diff_id`.
    """
    compression = detect_file(path)
    if compression is Compression.NONE and blob_digest is not None:
        reader = TarReader.open_file(path, what="layer")
        try:
            result = apply_layer(reader, root, whiteouts)
        finally:
            reader.close()
        diff_id = blob_digest
        tar_size = os.path.getsize(path)
    else:
        hasher = hashlib.sha256()
        raw = open(path, "rb")
        try:
            stream = decompressing_reader(raw, compression, threaded=compression is Compression.GZIP)
            try:
                reader = TarReader(stream, hasher=hasher, what="layer")
                result = apply_layer(reader, root, whiteouts)
                reader.drain()
                tar_size = reader.offset
            finally:
                if stream is not raw:
                    stream.close()
        finally:
            raw.close()
        diff_id = "sha256:" + hasher.hexdigest()
    if expected_diff_id and diff_id != expected_diff_id:
        raise InvalidArgument(f"layer DiffID mismatch: the image config says {expected_diff_id}, "
                              f"the layer is {diff_id}")
    return UnpackResult(diff_id, result.size, result.entries, tar_size)
