"""Exec endpoints: `POST /containers/{id}/exec`, `POST /exec/{id}/start`, `GET /exec/{id}/json`,
`POST /exec/{id}/resize`.

An attached start switches protocols at once and then starts the process
(errors after the switch go into the stream, as dockerd does); a detached
start answers 200 once the process runs. The exit code is final before an
attached stream closes: clients ask for it right after EOF (§6.3).
"""

from __future__ import annotations

from dockyard.api.http import Request, Response, empty_response, json_response
from dockyard.api.routing import RouteTable
from dockyard.api.streams import MULTIPLEXED_STREAM_TYPE, RAW_STREAM_TYPE, Hijack

routes = RouteTable()


@routes.post(r"/containers/(?P<id>[^/]+)/exec")
async def create_exec(req: Request) -> Response:
    body = await req.json() or {}
    exec_id = req.services.execs.create(req.params["id"], body)
    return json_response({"Id": exec_id}, 201)


@routes.post(r"/exec/(?P<id>[^/]+)/start")
async def start_exec(req: Request) -> Response | Hijack:
    execs = req.services.execs
    body = await req.json() or {}
    if body.get("Detach"):
        await execs.start_detached(req.params["id"])
        return empty_response(200)
    ex = execs.prepare_attached(req.params["id"])

    async def session(stream) -> None:
        await execs.run_attached(ex, stream)

    return Hijack(session, RAW_STREAM_TYPE if ex.tty else MULTIPLEXED_STREAM_TYPE)


@routes.get(r"/exec/(?P<id>[^/]+)/json")
async def inspect_exec(req: Request) -> Response:
    ex = req.services.execs.get(req.params["id"])
    process = {"tty": ex.tty, "entrypoint": ex.cmd[0], "arguments": ex.cmd[1:], "privileged": ex.privileged}
    if ex.user:
        process["user"] = ex.user
    return json_response({
        "ID": ex.id,
        "Running": ex.running,
        "ExitCode": ex.exit_code,
        "ProcessConfig": process,
        "OpenStdin": ex.stdin,
        "OpenStderr": ex.stderr,
        "OpenStdout": ex.stdout,
        "CanRemove": False,
        "ContainerID": ex.ctr.id,
        "DetachKeys": ex.detach_keys,
        "Pid": ex.pid,
    })


@routes.post(r"/exec/(?P<id>[^/]+)/resize")
async def resize_exec(req: Request) -> Response:
    await req.services.execs.resize(req.params["id"], req.int_arg("h", 0), req.int_arg("w", 0))
    return Response(200)
