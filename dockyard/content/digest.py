"""Digests and descriptors: the names of blobs and the pointers to them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from ..errors import InvalidArgument

Digest = str  # "sha256:<64 hex>"; validated by check_digest wherever one comes from outside

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")


def check_digest(value: str, what: str = "digest") -> Digest:
    """`value` if it is a sha256 digest in canonical form, else InvalidArgument."""
    if not isinstance(value, str) or not _DIGEST.match(value):
        if isinstance(value, str) and ":" in value and not value.startswith("sha256:"):
            raise InvalidArgument(f"unsupported {what} algorithm: {value!r} (only sha256 is supported)")
        raise InvalidArgument(f"invalid {what}: {value!r} (expected sha256:<64 hex digits>)")
    return value


def digest_of(data: bytes) -> Digest:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short_id(digest: str) -> str:
    """The 12-hex-digit form Docker prints (`bc2a8a7a10dd`)."""
    return digest.split(":", 1)[-1][:12]


@dataclass(frozen=True)
class Descriptor:
    """A typed pointer to a blob, as in the OCI image spec (`mediaType`, `digest`, `size`)."""

    media_type: str
    digest: Digest
    size: int
    annotations: dict = field(default_factory=dict, compare=False, hash=False)
    platform: dict | None = field(default=None, compare=False, hash=False)

    def to_json(self) -> dict:
        out = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out

    @classmethod
    def from_json(cls, obj, what: str = "descriptor") -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidArgument(f"invalid {what}: expected an object, got {type(obj).__name__}")
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"invalid {what}: size {size!r} is not a non-negative integer")
        media_type = obj.get("mediaType", "")
        if not isinstance(media_type, str):
            raise InvalidArgument(f"invalid {what}: mediaType {media_type!r} is not a string")
        annotations = obj.get("annotations") or {}
        platform = obj.get("platform")
        if not isinstance(annotations, dict) or (platform is not None and not isinstance(platform, dict)):
            raise InvalidArgument(f"invalid {what}: annotations and platform must be objects")
        return cls(media_type, check_digest(obj.get("digest"), f"{what} digest"), size, annotations, platform)
