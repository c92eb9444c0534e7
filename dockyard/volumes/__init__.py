"""Volumes: named directories that outlive the containers using them.

Vocabulary:
  volume      a name, a driver and a directory, its *mountpoint*, which containers bind in
  local       the one driver: the mountpoint is a directory under the data root, or, with the
              *options* `type`, `device` and `o` (docker's `volume create -o`), a filesystem
              mounted there while containers use it (a tmpfs, a bind of a host directory…)
  anonymous   a volume the engine named itself (64 hex) for a container's `-v /path`, `--mount`
              without a source or an image's VOLUME; `rm -v` and `run --rm` remove it with the
              container
  users       the containers whose records name a volume; a volume with users cannot be removed

`LocalVolumes` (local.py) keeps them on disk; the engine's service
(daemon/volumes.py) adds events, users and the Engine API's shapes.
"""

from __future__ import annotations

from .local import LocalVolumes, Volume, check_name

__all__ = ["LocalVolumes", "Volume", "check_name"]
