"""Network endpoints: list, inspect, create, connect, disconnect, remove, prune (dockerd's shapes)."""

from __future__ import annotations

from dockyard.api.http import Request, Response, empty_response, json_response, run_blocking
from dockyard.api.routing import RouteTable
from dockyard.errors import InvalidArgument

routes = RouteTable()


@routes.get(r"/networks")
async def list_networks(req: Request) -> Response:
    return json_response(await run_blocking(req.services.networks.list, req.filters()))


@routes.post(r"/networks/create")
async def create_network(req: Request) -> Response:
    body = await req.json() or {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid network create request: expected a JSON object")
    net_id, warning = await run_blocking(req.services.networks.create, body)
    return json_response({"Id": net_id, "Warning": warning}, status=201)


@routes.post(r"/networks/prune")
async def prune_networks(req: Request) -> Response:
    deleted = await run_blocking(req.services.networks.prune, req.filters())
    return json_response({"NetworksDeleted": deleted})


async def _container_body(req: Request) -> dict:
    body = await req.json() or {}
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str) or not body["Container"]:
        raise InvalidArgument("no container given")
    return body


@routes.post(r"/networks/(?P<id>[^/]+)/connect")
async def connect(req: Request) -> Response:
    body = await _container_body(req)
    await req.services.containers.connect(req.params["id"], body["Container"], body.get("EndpointConfig") or {})
    return empty_response(200)


@routes.post(r"/networks/(?P<id>[^/]+)/disconnect")
async def disconnect(req: Request) -> Response:
    body = await _container_body(req)
    await req.services.containers.disconnect(req.params["id"], body["Container"], bool(body.get("Force")))
    return empty_response(200)


@routes.get(r"/networks/(?P<id>[^/]+)")
async def inspect_network(req: Request) -> Response:
    networks = req.services.networks
    return json_response(await run_blocking(lambda: networks.view(networks.get(req.params["id"]))))


@routes.delete(r"/networks/(?P<id>[^/]+)")
async def remove_network(req: Request) -> Response:
    await run_blocking(req.services.networks.remove, req.params["id"])
    return empty_response(204)
