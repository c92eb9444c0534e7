"""Volume endpoints: create, list, inspect, remove, prune (dockerd's shapes and words)."""

from __future__ import annotations

from dockyard.api.http import Request, Response, empty_response, json_response, run_blocking
from dockyard.api.routing import RouteTable
from dockyard.daemon.volumes import view
from dockyard.errors import InvalidArgument

routes = RouteTable()


@routes.get(r"/volumes")
async def list_volumes(req: Request) -> Response:
    volumes = await run_blocking(req.services.volumes.list, req.filters())
    return json_response({"Volumes": [view(v) for v in volumes], "Warnings": None})


@routes.post(r"/volumes/create")
async def create_volume(req: Request) -> Response:
    body = await req.json() or {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid volume create request: expected a JSON object")
    name = body.get("Name") or ""
    if not isinstance(name, str):
        raise InvalidArgument("invalid volume create request: Name must be a string")
    volume, _ = await run_blocking(req.services.volumes.create, name, body.get("Driver") or "",
                                   body.get("DriverOpts"), body.get("Labels"))
    return json_response(view(volume), status=201)


@routes.post(r"/volumes/prune")
async def prune_volumes(req: Request) -> Response:
    deleted, reclaimed = await run_blocking(req.services.volumes.prune, req.filters())
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


@routes.get(r"/volumes/(?P<name>[^/]+)")
async def inspect_volume(req: Request) -> Response:
    volume = await run_blocking(req.services.volumes.get, req.params["name"])
    return json_response(view(volume))


@routes.delete(r"/volumes/(?P<name>[^/]+)")
async def remove_volume(req: Request) -> Response:
    await run_blocking(req.services.volumes.remove, req.params["name"], req.flag("force"))
    return empty_response(204)
