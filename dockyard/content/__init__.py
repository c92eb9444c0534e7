"""Content-addressed blob store.

Vocabulary:
  digest      `sha256:<64 lowercase hex>`, the SHA-256 of a blob's bytes; the
              blob's only name.  Other algorithms are refused.
  descriptor  what points at a blob: media type, digest, size (and, in the
              image formats, annotations and platform).  See `Descriptor`.
  ingest      writing a new blob: bytes go to a temporary file in the store's
              ingest directory while they are hashed; `commit` checks size and
              digest, fsyncs and renames the file into place, so a blob is
              either whole and verified or absent.

`ContentStore` is the role; `LocalContentStore` (a directory tree) is the one
implementation.
"""

from .digest import Descriptor, Digest, check_digest, digest_of, short_id
from .local import BlobWriter, ContentStore, LocalContentStore

__all__ = [
    "BlobWriter", "ContentStore", "Descriptor", "Digest", "LocalContentStore", "check_digest",
    "digest_of", "short_id",
]
