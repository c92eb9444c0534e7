"""`POST /build`: the legacy builder's endpoint ("version 1"), as the docker CLI, docker-py and compose use it.

The body is the build context, a tar stream (plain or compressed), read in the
build's worker thread as it arrives (never held whole in memory).  Whatever
fails before the first step (a malformed Dockerfile, an unknown
instruction, a bad context) is an HTTP error; after that failures are
messages in the stream, a failing RUN's with its exit status as
`errorDetail.code` (the CLI exits with it).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator

from dockyard.api.http import Request
from dockyard.api.routing import RouteTable
from dockyard.api.streams import Stream, error_message, json_stream
from dockyard.builder.dispatch import BuildFailed, BuildOptions
from dockyard.errors import EngineError, InvalidArgument

routes = RouteTable()


def _json_arg(req: Request, name: str, kind: type):
    raw = req.arg(name)
    if not raw:
        return kind()
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name} JSON: {raw!r}") from None
    if not isinstance(value, kind):
        raise InvalidArgument(f"{name} must be a JSON {'object' if kind is dict else 'list'}")
    return value


def _registry_config(value: str | None) -> dict:
    """X-Registry-Config: base64 (URL-safe or standard, padded or not) JSON map of registry -> auth."""
    if not value:
        return {}
    text = value.strip().translate(str.maketrans("+/", "-_"))
    try:
        obj = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


@routes.post(r"/build")
async def build(req: Request) -> Stream:
    version = req.arg("version") or "1"
    if version not in ("1", ""):
        raise InvalidArgument(f"builder version {version} (BuildKit) is not supported: use the legacy builder")
    if req.arg("remote"):
        raise InvalidArgument(f"remote build contexts ({req.arg('remote')}) are not supported by this engine "
                              f"(no internet access here): send the context as the request body")
    build_args = {k: v for k, v in _json_arg(req, "buildargs", dict).items() if v is not None}
    host_config: dict = {"NetworkMode": req.arg("networkmode") or ""}
    if req.args("extrahosts"):  # repeated "name:address", as the CLI and docker-py send them
        host_config["ExtraHosts"] = req.args("extrahosts")
    for key, field_name in (("shmsize", "ShmSize"), ("memory", "Memory"), ("memswap", "MemorySwap"),
                            ("cpushares", "CpuShares")):
        if req.arg(key):
            host_config[field_name] = req.int_arg(key, 0)
    options = BuildOptions(
        dockerfile=req.arg("dockerfile") or "Dockerfile",
        tags=tuple(t for t in req.args("t") if t),
        build_args={str(k): str(v) for k, v in build_args.items()},
        target=req.arg("target") or None,
        no_cache=req.flag("nocache"),
        quiet=req.flag("q"),
        remove=req.flag("rm", True),
        force_remove=req.flag("forcerm"),
        labels={str(k): str(v) for k, v in _json_arg(req, "labels", dict).items()},
        pull=req.flag("pull"),
        host_config=host_config,
    )
    auth = _registry_config(req.headers.get("x-registry-config"))
    messages = req.services.builds.messages(req.body_file(), options, auth)
    # A failure before the first message (bad context, malformed Dockerfile) is an HTTP error.
    try:
        first = await messages.__anext__()
    except StopAsyncIteration:
        first = None
    except BuildFailed:
        raise

    async def stream() -> AsyncIterator[dict]:
        if first is not None:
            yield first
        try:
            async for message in messages:
                yield message
        except BuildFailed as err:
            yield error_message(err.message, err.code)
        except EngineError as err:
            yield error_message(err.message)

    return json_stream(stream())
