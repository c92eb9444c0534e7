"""The layer cache: which image a build step made before.

    <data-root>/builder/cache/<key>   the image ID a step with this key produced

A key is the hash of the step's parent image, the step's description (its
history line, which names the build args a RUN saw and, for COPY/ADD, the
content checksum of its sources) and the resulting image config; a hit is
only used while that image still exists (the caller checks).
"""

from __future__ import annotations

import hashlib
import os


def cache_key(parent_id: str, description: str, config: bytes = b"") -> str:
    h = hashlib.sha256()
    for part in (parent_id.encode(), description.encode(), config):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


class BuildCache:
    def __init__(self, directory: str):
        self.dir = directory

    def get(self, key: str) -> str | None:
        try:
            with open(os.path.join(self.dir, key)) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def put(self, key: str, image_id: str) -> None:
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, key)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(image_id)
        os.replace(tmp, path)
