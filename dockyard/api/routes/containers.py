"""Container endpoints: create, list, inspect, start, stop, kill, restart, remove, wait, attach,
logs, resize, rename, pause, top, stats, prune, changes, export, archive, update, commit.

`POST /containers/create` and the lifecycle verbs call the container
service (dockyard.daemon.containers); the Docker shapes of inspect, list and
stats are built here. Records are Docker's inspect document already (the
service stores Config and HostConfig as clients send them), so inspect
mostly copies, filling what only the live system knows.

Timing rules from the contract (§13): `wait` answers 200 at once and writes
its body when the condition is met; `attach` switches protocols at once,
before the container starts; `logs?follow=1` ends when the container stops.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator

from dockyard.api.http import Request, Response, empty_response, json_response, run_blocking
from dockyard.api.routing import RouteTable
from dockyard.api.streams import (
    MULTIPLEXED_STREAM_TYPE,
    RAW_STREAM_TYPE,
    TAR_TYPE,
    Hijack,
    Stream,
    json_line,
)
from dockyard.daemon import mounts
from dockyard.errors import InvalidArgument
from dockyard.units import human_duration

routes = RouteTable()

ID = r"(?P<id>[^/]+)"
ZERO_TIME = "0001-01-01T00:00:00Z"


# --- views ------------------------------------------------------------------------------------


def status_text(state: dict) -> str:
    from dockyard.daemon.containers import parse_time

    status = state["Status"]
    current = time.time()
    if status == "removing":
        return "Removal In Progress"
    if status == "dead":
        return "Dead"
    if state.get("Restarting"):
        return f"Restarting ({state['ExitCode']}) {human_duration(current - parse_time(state['FinishedAt']))} ago"
    if state.get("Running"):
        from dockyard.daemon.health import status_suffix

        text = "Up " + human_duration(current - parse_time(state["StartedAt"]))
        return text + " (Paused)" if state.get("Paused") else text + status_suffix(state)
    if state.get("StartedAt", ZERO_TIME) == ZERO_TIME or state.get("FinishedAt", ZERO_TIME) == ZERO_TIME:
        return "Created"
    return f"Exited ({state['ExitCode']}) {human_duration(current - parse_time(state['FinishedAt']))} ago"


def _network_name(host_config: dict) -> str:
    mode = host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def _endpoint() -> dict:
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "", "EndpointID": "",
            "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}


def _networks(rec: dict) -> dict:
    stored = (rec.get("NetworkSettings") or {}).get("Networks")
    return stored if stored is not None else {_network_name(rec["HostConfig"]): _endpoint()}


def network_settings(rec: dict) -> dict:
    """inspect's NetworkSettings: the endpoints the record keeps; the top-level address fields are those of
    the default bridge network, as dockerd fills them."""
    networks = _networks(rec)
    bridge = networks.get("bridge") or {}
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": (rec.get("NetworkSettings") or {}).get("Ports") or {},
        "SandboxKey": "", "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None, "EndpointID": bridge.get("EndpointID", ""),
        "Gateway": bridge.get("Gateway", ""), "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": bridge.get("IPAddress", ""), "IPPrefixLen": bridge.get("IPPrefixLen", 0), "IPv6Gateway": "",
        "MacAddress": bridge.get("MacAddress", ""), "Networks": networks,
    }


def port_list(rec: dict) -> list[dict]:
    """`ps`'s Ports: one entry per published binding, exposed ports without one as PrivatePort only."""
    out = []
    for key, bindings in ((rec.get("NetworkSettings") or {}).get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
            continue
        for b in bindings:
            out.append({"IP": b.get("HostIp", ""), "PrivatePort": int(port), "PublicPort": int(b["HostPort"]),
                        "Type": proto or "tcp"})
    return out


_ENGINE_ONLY = ("Engine",)


def inspect_json(ctr, service, size: bool = False) -> dict:
    rec = ctr.rec
    out = {key: value for key, value in rec.items() if key not in _ENGINE_ONLY}
    out["ExecIDs"] = list(ctr.exec_ids) or None
    out["GraphDriver"] = {"Data": rec["Engine"].get("GraphDriver") or {}, "Name": rec.get("Driver", "")}
    out["Mounts"] = mounts.inspect(rec["HostConfig"], rec["Engine"].get("Volumes"))
    out["NetworkSettings"] = network_settings(rec)
    if size:
        out["SizeRw"], out["SizeRootFs"] = service.sizes(ctr)
    return out


def command_line(path: str, args: list[str]) -> str:
    """dockerd's list `Command`: the arguments with a space in single quotes (nothing escaped)."""
    if not args:
        return path
    return path + " " + " ".join(f"'{a}'" if " " in a else a for a in args)


def summary_json(ctr, service, size: bool = False) -> dict:
    from dockyard.daemon.containers import parse_time

    rec = ctr.rec
    cfg = rec["Config"]
    out = {
        "Id": ctr.id,
        "Names": ["/" + ctr.name],
        "Image": cfg.get("Image", ""),
        "ImageID": rec["Image"],
        "Command": command_line(rec["Path"], rec["Args"]),
        "Created": int(parse_time(rec["Created"])),
        "Ports": port_list(rec),
        "Labels": cfg.get("Labels") or {},
        "State": rec["State"]["Status"],
        "Status": status_text(rec["State"]),
        "HostConfig": {"NetworkMode": rec["HostConfig"].get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": _networks(rec)},
        "Mounts": mounts.inspect(rec["HostConfig"], rec["Engine"].get("Volumes")),
    }
    if size:
        out["SizeRw"], out["SizeRootFs"] = service.sizes(ctr)
    return out


# --- create, list, inspect ---------------------------------------------------------------------


@routes.post(r"/containers/create")
async def create_container(req: Request) -> Response:
    body = await req.json()
    cid, warnings = await req.services.containers.create(req.arg("name") or None, body)
    return json_response({"Id": cid, "Warnings": warnings}, 201)


@routes.get(r"/containers/json")
async def list_containers(req: Request) -> Response:
    svc = req.services.containers
    limit = req.int_arg("limit", -1)
    size = req.flag("size")
    ctrs = svc.list(all=req.flag("all"), filters=req.filters(), limit=limit, latest=req.flag("latest"))
    if size:
        return json_response(await run_blocking(lambda: [summary_json(c, svc, True) for c in ctrs]))
    return json_response([summary_json(c, svc) for c in ctrs])


@routes.post(r"/containers/prune")
async def prune_containers(req: Request) -> Response:
    deleted, reclaimed = await req.services.containers.prune(req.filters())
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


@routes.get(rf"/containers/{ID}/json")
async def inspect_container(req: Request) -> Response:
    svc = req.services.containers
    ctr = svc.get(req.params["id"])
    if req.flag("size"):
        return json_response(await run_blocking(inspect_json, ctr, svc, True))
    return json_response(inspect_json(ctr, svc))


# --- lifecycle ------------------------------------------------------------------------------------


def _timeout(req: Request) -> int | None:
    return req.int_arg("t", None)  # type: ignore[arg-type] - absent means the container's own


@routes.post(rf"/containers/{ID}/start")
async def start_container(req: Request) -> Response:
    if req.arg("checkpoint"):
        raise InvalidArgument("checkpoints are not supported")
    started = await req.services.containers.start(req.params["id"])
    return empty_response(204 if started else 304)


@routes.post(rf"/containers/{ID}/stop")
async def stop_container(req: Request) -> Response:
    stopped = await req.services.containers.stop(req.params["id"], _timeout(req), req.arg("signal") or None)
    return empty_response(204 if stopped else 304)


@routes.post(rf"/containers/{ID}/restart")
async def restart_container(req: Request) -> Response:
    await req.services.containers.restart(req.params["id"], _timeout(req), req.arg("signal") or None)
    return empty_response(204)


@routes.post(rf"/containers/{ID}/kill")
async def kill_container(req: Request) -> Response:
    await req.services.containers.kill(req.params["id"], req.arg("signal") or None)
    return empty_response(204)


@routes.delete(rf"/containers/{ID}")
async def remove_container(req: Request) -> Response:
    if req.flag("link"):
        raise InvalidArgument("links are not supported")
    await req.services.containers.remove(req.params["id"], force=req.flag("force"), volumes=req.flag("v"))
    return empty_response(204)


@routes.post(rf"/containers/{ID}/wait")
async def wait_container(req: Request) -> Stream:
    result = req.services.containers.wait_for(req.params["id"], req.arg("condition") or None)

    async def body() -> AsyncIterator[bytes]:
        code, error = await result()
        yield json_line({"Error": {"Message": error} if error else None, "StatusCode": code})

    return Stream(body())


@routes.post(rf"/containers/{ID}/rename")
async def rename_container(req: Request) -> Response:
    await req.services.containers.rename(req.params["id"], req.arg("name") or "")
    return empty_response(204)


@routes.post(rf"/containers/{ID}/pause")
async def pause_container(req: Request) -> Response:
    await req.services.containers.pause(req.params["id"])
    return empty_response(204)


@routes.post(rf"/containers/{ID}/unpause")
async def unpause_container(req: Request) -> Response:
    await req.services.containers.unpause(req.params["id"])
    return empty_response(204)


@routes.post(rf"/containers/{ID}/update")
async def update_container(req: Request) -> Response:
    body = await req.json() or {}
    warnings = await req.services.containers.update(req.params["id"], body)
    return json_response({"Warnings": warnings})


# --- stdio ------------------------------------------------------------------------------------------


@routes.post(rf"/containers/{ID}/attach")
async def attach_container(req: Request) -> Hijack:
    svc = req.services.containers
    if not req.flag("stream") and not req.flag("logs"):
        raise InvalidArgument("at least one of stream or logs must be set")
    session = svc.attach(req.params["id"], stdin=req.flag("stdin"), stdout=req.flag("stdout"),
                         stderr=req.flag("stderr"), detach_keys=req.arg("detachKeys"))
    content = RAW_STREAM_TYPE if session.ctr.tty else MULTIPLEXED_STREAM_TYPE
    return Hijack(session.run, content)


@routes.post(rf"/containers/{ID}/resize")
async def resize_container(req: Request) -> Response:
    await req.services.containers.resize(req.params["id"], req.int_arg("h", 0), req.int_arg("w", 0))
    return Response(200)


def _log_time(req: Request, name: str) -> str:
    from dockyard.daemon.images import parse_timestamp
    from dockyard.daemon.logs import timestamp

    value = req.arg(name)
    if not value or value == "0":
        return ""
    return timestamp(int(parse_timestamp(value) * 1_000_000_000))


def tail_lines(text: str) -> int:
    """dockerd's `tail`: Go's strconv.Atoi of it; what that refuses ("all", "x", " 5") is the whole log (-1)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):
        return -1
    lines = int(text)
    return lines if 0 <= lines < 1 << 63 else -1


@routes.get(rf"/containers/{ID}/logs")
async def container_logs(req: Request) -> Stream:
    from dockyard.daemon.logs import LogQuery

    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    if not stdout and not stderr:
        raise InvalidArgument("You must choose at least one stream")
    query = LogQuery(stdout=stdout, stderr=stderr, since=_log_time(req, "since"), until=_log_time(req, "until"),
                     tail=tail_lines(req.arg("tail") or ""), timestamps=req.flag("timestamps"))
    tty, body = req.services.containers.logs(req.params["id"], query, req.flag("follow"))
    return Stream(body, content_type=RAW_STREAM_TYPE if tty else MULTIPLEXED_STREAM_TYPE)


# --- processes and stats ---------------------------------------------------------------------------------


@routes.get(rf"/containers/{ID}/top")
async def top_container(req: Request) -> Response:
    titles, processes = await req.services.containers.top(req.params["id"], req.arg("ps_args") or "")
    return json_response({"Titles": titles, "Processes": processes})


def _zero_cpu() -> dict:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def stats_json(ctr, sample: dict, previous: dict | None, read: str, preread: str) -> dict:
    blkio_keys = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
                  "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
                  "io_time_recursive", "sectors_recursive")
    blkio = sample.get("blkio_stats") or {}
    out = {
        "read": read,
        "preread": preread,
        "pids_stats": sample.get("pids_stats") or {},
        "blkio_stats": {key: blkio.get(key) or None for key in blkio_keys},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": sample.get("cpu_stats") or _zero_cpu(),
        "precpu_stats": (previous or {}).get("cpu_stats") or _zero_cpu(),
        "memory_stats": sample.get("memory_stats") or {},
        "name": "/" + ctr.name,
        "id": ctr.id,
    }
    return out


@routes.get(rf"/containers/{ID}/stats")
async def container_stats(req: Request) -> Response | Stream:
    from dockyard.daemon.logs import timestamp

    svc = req.services.containers
    ctr = svc.get(req.params["id"])
    stream = req.flag("stream", default=True)
    one_shot = req.flag("one-shot")

    async def sample() -> tuple[dict, str]:
        if not ctr.running:
            return {}, ZERO_TIME
        return await run_blocking(svc.stats_sample, ctr), timestamp()

    if not stream:
        first, first_read = await sample()
        if one_shot or not ctr.running:
            return json_response(stats_json(ctr, first, None, first_read, ZERO_TIME))
        await asyncio.sleep(1.0)  # dockerd's one-shot-less answer has a precpu ~1 s older
        second, second_read = await sample()
        return json_response(stats_json(ctr, second, first, second_read, first_read))

    async def body() -> AsyncIterator[bytes]:
        previous, previous_read = None, ZERO_TIME
        while True:
            current, read = await sample()
            yield json_line(stats_json(ctr, current, previous, read, previous_read))
            previous, previous_read = current, read
            await asyncio.sleep(1.0)
            if ctr.id not in svc._ctrs:
                return

    return Stream(body())


# --- filesystem ----------------------------------------------------------------------------------------------


@routes.get(rf"/containers/{ID}/changes")
async def container_changes(req: Request) -> Response:
    changes = await req.services.containers.changes(req.params["id"])
    kinds = {"C": 0, "A": 1, "D": 2}
    return json_response([{"Path": path, "Kind": kinds[kind]} for kind, path in changes] or None)


@routes.get(rf"/containers/{ID}/export")
async def export_container(req: Request) -> Stream:
    return Stream(await req.services.containers.export(req.params["id"]), content_type=TAR_TYPE)


def _stat_header(stat: dict) -> list[tuple[bytes, bytes]]:
    from dockyard.jsonio import dumps

    return [(b"X-Docker-Container-Path-Stat", base64.b64encode(dumps(stat).encode()))]


def _archive_path(req: Request) -> str:
    path = req.arg("path")
    if not path:
        raise InvalidArgument("Path cannot be empty")
    return path


@routes.head(rf"/containers/{ID}/archive")
async def stat_archive(req: Request) -> Response:
    stat = await req.services.containers.archive_stat(req.params["id"], _archive_path(req))
    return Response(200, b"", None, _stat_header(stat))


@routes.get(rf"/containers/{ID}/archive")
async def get_archive(req: Request) -> Stream:
    stat, chunks = await req.services.containers.archive_get(req.params["id"], _archive_path(req))
    return Stream(chunks, content_type=TAR_TYPE, headers=_stat_header(stat))


@routes.put(rf"/containers/{ID}/archive")
async def put_archive(req: Request) -> Response:
    await req.services.containers.archive_put(req.params["id"], _archive_path(req), req.chunks(),
                                              no_overwrite_dir_non_dir=req.flag("noOverwriteDirNonDir"))
    return Response(200)


# --- commit ---------------------------------------------------------------------------------------------------


@routes.post(r"/commit")
async def commit_container(req: Request) -> Response:
    ref = req.arg("container")
    if not ref:
        raise InvalidArgument("container is required (container=<name or id>)")
    changes = req.args("changes")
    config = await req.json()
    image_id = await req.services.containers.commit(
        ref, repo=req.arg("repo") or "", tag=req.arg("tag") or "", author=req.arg("author") or "",
        comment=req.arg("comment") or "", changes=changes, config=config, pause=req.flag("pause", True))
    return json_response({"Id": image_id}, 201)
