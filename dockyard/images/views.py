"""What the image service answers, as values, and those values in the Docker Engine API's JSON shapes.

The values are plain frozen dataclasses (snake_case); the `*_json`
functions build exactly what dockerd 20.10 sends for `GET /images/json`,
`GET /images/{name}/json`, `GET /images/{name}/history`,
`DELETE /images/{name}`, `POST /images/prune` and `GET /system/df`, for the
API routes to send as they are.  This module sits below the API layer so the
routes can import it; nothing else here knows Docker's casing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSummary:
    """One row of `GET /images/json` (and of `system df`)."""

    id: str
    parent_id: str
    repo_tags: tuple[str, ...]          # familiar: ("bb:latest",)
    repo_digests: tuple[str, ...]       # familiar: ("127.0.0.1:5000/x@sha256:…",)
    created: int                        # Unix seconds
    size: int
    labels: dict = field(default_factory=dict, compare=False, hash=False)
    shared_size: int = -1               # filled in by usage()
    containers: int = -1                # filled in by usage()


@dataclass(frozen=True)
class ImageDetails:
    """`GET /images/{name}/json`: the image config plus what the store knows."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    parent: str
    comment: str
    created: str                        # RFC 3339, from the config
    container: str
    container_config: dict = field(compare=False, hash=False)
    docker_version: str = ""
    author: str = ""
    config: dict = field(default_factory=dict, compare=False, hash=False)
    architecture: str = ""
    variant: str = ""
    os: str = ""
    os_version: str = ""
    size: int = 0
    layers: tuple[str, ...] = ()        # diff ids
    last_tag_time: str = ""
    graph_driver: str = ""
    graph_driver_data: dict = field(default_factory=dict, compare=False, hash=False)
    manifest_digest: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    id: str                             # the image ID for the top entry, "<missing>" below
    created: int
    created_by: str
    tags: tuple[str, ...]
    size: int
    comment: str


@dataclass(frozen=True)
class Deletion:
    """One line of `docker rmi` output: ("Untagged", "bb:latest") or ("Deleted", "sha256:…")."""

    kind: str
    value: str


@dataclass(frozen=True)
class PruneReport:
    deleted: tuple[Deletion, ...]
    space_reclaimed: int


@dataclass(frozen=True)
class DiskUsage:
    layers_size: int
    images: tuple[ImageSummary, ...]
    containers_by_image: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class StorageInfo:
    """For `GET /info`: image count and storage driver facts."""

    image_count: int
    driver: str                                   # "overlay2" or "vfs", as Docker names them
    driver_status: tuple[tuple[str, str], ...]


# -- Docker Engine API shapes --------------------------------------------------------------------

_CONTAINER_CONFIG_DEFAULTS = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def _container_config_json(config: dict) -> dict:
    out = dict(_CONTAINER_CONFIG_DEFAULTS)
    out.update(config or {})
    return out


def summary_json(s: ImageSummary, containers: int | None = None) -> dict:
    """One element of `GET /images/json` (and of `system df`'s Images, with `containers`)."""
    dangling = not s.repo_tags
    return {
        "Containers": s.containers if containers is None else containers,
        "Created": s.created,
        "Id": s.id,
        "Labels": dict(s.labels) if s.labels else None,
        "ParentId": s.parent_id,
        "RepoDigests": list(s.repo_digests) if s.repo_digests else (["<none>@<none>"] if dangling else None),
        "RepoTags": list(s.repo_tags) if s.repo_tags else (["<none>:<none>"] if dangling else None),
        "SharedSize": s.shared_size,
        "Size": s.size,
        "VirtualSize": s.size,
    }


def inspect_json(d: ImageDetails) -> dict:
    """`GET /images/{name}/json`."""
    out = {
        "Id": d.id,
        "RepoTags": list(d.repo_tags),
        "RepoDigests": list(d.repo_digests),
        "Parent": d.parent,
        "Comment": d.comment,
        "Created": d.created,
        "Container": d.container,
        "ContainerConfig": _container_config_json(d.container_config),
        "DockerVersion": d.docker_version,
        "Author": d.author,
        "Config": _container_config_json(d.config),
        "Architecture": d.architecture,
        "Os": d.os,
        "Size": d.size,
        "VirtualSize": d.size,
        "GraphDriver": {"Data": d.graph_driver_data or None, "Name": d.graph_driver},
        "RootFS": {"Type": "layers", "Layers": list(d.layers)},
        "Metadata": {"LastTagTime": d.last_tag_time or "0001-01-01T00:00:00Z"},
    }
    if d.variant:
        out["Variant"] = d.variant
    if d.os_version:
        out["OsVersion"] = d.os_version
    return out


def history_json(entries: Sequence[HistoryEntry]) -> list[dict]:
    """`GET /images/{name}/history`."""
    return [{"Comment": e.comment, "Created": e.created, "CreatedBy": e.created_by, "Id": e.id,
             "Size": e.size, "Tags": list(e.tags) if e.tags else None} for e in entries]


def deletions_json(records: Sequence[Deletion]) -> list[dict]:
    """`DELETE /images/{name}` (and `ImagesDeleted` of prune)."""
    return [{r.kind: r.value} for r in records]


def prune_json(report: PruneReport) -> dict:
    """`POST /images/prune`."""
    return {"ImagesDeleted": deletions_json(report.deleted) or None, "SpaceReclaimed": report.space_reclaimed}


def df_json(usage: DiskUsage) -> dict:
    """The image part of `GET /system/df`: {"LayersSize": …, "Images": […]}."""
    return {"LayersSize": usage.layers_size, "Images": [summary_json(s) for s in usage.images]}
