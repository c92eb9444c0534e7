"""System endpoints: `_ping`, `version`, `info`, `events`, `system/df`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from dockyard.api.http import Request, Response, json_response, run_blocking
from dockyard.api.routing import RouteTable
from dockyard.api.streams import Stream, json_line
from dockyard.api.versions import API_VERSION, ENGINE_VERSION, MIN_API_VERSION
from dockyard.errors import InvalidArgument
from dockyard.images.views import df_json

routes = RouteTable()

_PING_HEADERS = [
    (b"Cache-Control", b"no-cache, no-store, must-revalidate"),
    (b"Pragma", b"no-cache"),
]
_TEXT = b"text/plain; charset=utf-8"


@routes.get(r"/_ping")
async def ping(req: Request) -> Response:
    return Response(200, b"OK", _TEXT, _PING_HEADERS)


@routes.head(r"/_ping")
async def ping_head(req: Request) -> Response:
    return Response(200, b"", _TEXT, _PING_HEADERS)


def _rfc3339_nano(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


@routes.get(r"/version")
async def version(req: Request) -> Response:
    host = await run_blocking(req.services.system.host)
    details = {
        "ApiVersion": API_VERSION,
        "Arch": host.goarch,
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": f"python{host.python_version}",
        "KernelVersion": host.kernel_version,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    }
    return json_response({
        "Platform": {"Name": "Dockyard Engine"},
        "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details}],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{host.python_version}",
        "Os": "linux",
        "Arch": host.goarch,
        "KernelVersion": host.kernel_version,
        "BuildTime": "",
    })


def _container_counts(services: Any) -> tuple[int, int, int, int]:
    """(total, running, paused, stopped); zero until the containers service exists."""
    containers = getattr(services, "containers", None)
    if containers is None:
        return 0, 0, 0, 0
    return containers.counts()


@routes.get(r"/info")
async def info(req: Request) -> Response:
    services = req.services
    config = services.system.config
    host = await run_blocking(services.system.host)
    now = services.system.runtime()
    storage = await run_blocking(services.images.storage_info)
    total, running, paused, stopped = _container_counts(services)
    return json_response({
        "ID": host.engine_id,
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": storage.image_count,
        "Driver": storage.driver,
        "DriverStatus": [list(pair) for pair in storage.driver_status],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": None,
            "Log": ["json-file"],
        },
        "MemoryLimit": True,
        "SwapLimit": True,
        "KernelMemory": False,
        "KernelMemoryTCP": False,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "BridgeNfIptables": True,
        "BridgeNfIp6tables": True,
        "Debug": config.debug,
        "NFd": now.open_fds,
        "OomKillDisable": False,
        "NGoroutines": now.threads,
        "SystemTime": _rfc3339_nano(now.system_time_ns),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": host.cgroup_version,
        "NEventsListener": services.events.listener_count,
        "KernelVersion": host.kernel_version,
        "OperatingSystem": host.operating_system,
        "OSVersion": host.os_version,
        "OSType": "linux",
        "Architecture": host.architecture,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "NCPU": host.ncpu,
        "MemTotal": host.mem_total,
        "GenericResources": None,
        "DockerRootDir": config.data_root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": host.hostname,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": ENGINE_VERSION,
        "Runtimes": {"runc": {"path": "runc"}, "dockyard-runtime": {"path": "dockyard-runtime"}},
        "DefaultRuntime": config.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": None,
    })


def _parse_time(req: Request, name: str) -> int | None:
    """`since`/`until`: Unix seconds with an optional fraction -> nanoseconds."""
    value = req.arg(name)
    if value is None or value == "":
        return None
    seconds, dot, fraction = value.partition(".")
    if not seconds.lstrip("-").isdigit() or (dot and not fraction.isdigit()):
        raise InvalidArgument(f"invalid value for {name}: {value!r} is not a Unix timestamp")
    nanos = int(seconds) * 1_000_000_000
    if fraction:
        nanos += int(fraction[:9].ljust(9, "0"))
    return nanos


def event_json(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    attributes = dict(event.attributes)
    # Only container and image events carry the old top-level fields.
    if event.type in ("container", "image"):
        out["status"] = event.action
        out["id"] = event.actor_id
        if event.type == "container" and "image" in attributes:
            out["from"] = attributes["image"]
    out["Type"] = event.type
    out["Action"] = event.action
    out["Actor"] = {"ID": event.actor_id, "Attributes": attributes}
    out["scope"] = event.scope
    out["time"] = event.time_nano // 1_000_000_000
    out["timeNano"] = event.time_nano
    return out


@routes.get(r"/events")
async def events(req: Request) -> Stream:
    since, until = _parse_time(req, "since"), _parse_time(req, "until")
    if since is not None and until is not None and since > until:
        raise InvalidArgument(f"`since` time ({req.arg('since')}) cannot be after `until` time ({req.arg('until')})")
    subscription = req.services.events.subscribe(req.filters(), since_ns=since, until_ns=until)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in subscription:
                yield json_line(event_json(event))
        finally:
            subscription.close()

    return Stream(body())


@routes.get(r"/system/df")
async def disk_usage(req: Request) -> Response:
    usage = await run_blocking(req.services.images.disk_usage)
    containers = getattr(req.services, "containers", None)
    rows = []
    if containers is not None:
        from dockyard.api.routes.containers import summary_json

        rows = await run_blocking(lambda: [summary_json(c, containers, size=True) for c in containers.all()])
    volumes = getattr(req.services, "volumes", None)
    volume_rows = await run_blocking(volumes.usage) if volumes is not None else []
    return json_response({
        **df_json(usage),
        "Containers": rows,
        "Volumes": volume_rows,
        "BuildCache": [],
        "BuilderSize": 0,
    })
