"""Image endpoints: list, inspect, history, tag, remove, prune, save, load, import, pull, push.

Image names sit raw in the path, slashes and colons included
(`/images/127.0.0.1:5002/apx/img:v1/json`), so the fixed names
(`/images/json`, `/images/create`, `/images/get`, `/images/load`,
`/images/prune`) are registered first and the greedy `{name}` patterns last.

Pull (`POST /images/create?fromImage=…&tag=…`) answers an HTTP error for
whatever fails before its first message (a missing tag is a 404 in dockerd's
words) and an error message inside the stream after that.  Push streams from
the start, so all its failures are messages, as dockerd's are.  Credentials
come in `X-Registry-Auth` (base64 JSON; a push without the header may carry
them in its body).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from dockyard.api.http import Request, Response, empty_response, json_response, run_blocking
from dockyard.api.routing import RouteTable
from dockyard.api.streams import TAR_TYPE, Stream, bytes_from_thread, iterate_in_thread, json_stream
from dockyard.errors import InvalidArgument, NotSupported
from dockyard.images.reference import parse
from dockyard.images.views import deletions_json, history_json, inspect_json, prune_json, summary_json
from dockyard.remotes.auth import AuthConfig, decode_registry_auth

routes = RouteTable()


@routes.get(r"/images/json")
async def list_images(req: Request) -> Response:
    images = await run_blocking(req.services.images.list, req.filters(), all=req.flag("all"))
    return json_response([summary_json(image) for image in images])


async def _messages(messages: list[dict]) -> AsyncIterator[dict]:
    for message in messages:
        yield message


@routes.post(r"/images/create")
async def create_image(req: Request) -> Stream:
    if req.arg("fromImage"):
        return await _pull(req, req.arg("fromImage"))
    source = req.arg("fromSrc")
    if source is None:
        raise InvalidArgument("either fromSrc or fromImage must be given")
    if source != "-":
        raise NotSupported(f"importing from a URL ({source}) is not supported: download it and import the file")
    # The tarball is read in a worker thread as it arrives; nothing is answered
    # before it has been read whole and the image committed, so a bad tarball
    # is an HTTP error rather than a message inside a 200.
    image_id = await run_blocking(
        req.services.images.import_rootfs, req.body_file(), repo=req.arg("repo") or None,
        tag=req.arg("tag") or None, changes=req.args("changes"), message=req.arg("message") or "",
    )
    return json_stream(_messages([{"status": image_id}]))


async def _pull(req: Request, from_image: str) -> Stream:
    ref = parse(from_image)
    tag = req.arg("tag") or ""
    if tag.startswith("sha256:"):
        ref = ref.with_digest(tag)
    elif tag:
        ref = ref.with_tag(tag)
    # No tag anywhere: every tag of the repository, as dockerd (the CLI sends none only for `pull -a`).
    all_tags = ref.tag is None and ref.digest is None
    auth = decode_registry_auth(req.headers.get("x-registry-auth"))
    platform = req.arg("platform") or None
    images = req.services.images
    await req.drain()
    messages = iterate_in_thread(lambda put: images.pull(ref, auth, platform, progress=put, all_tags=all_tags))
    # Wait for the first message: a failure before it (no such tag, refused credentials) is an HTTP error.
    try:
        first = await messages.__anext__()
    except StopAsyncIteration:
        first = None

    async def body() -> AsyncIterator[dict]:
        if first is not None:
            yield first
        async for message in messages:
            yield message

    return json_stream(body())


async def _request_auth(req: Request) -> AuthConfig | None:
    """X-Registry-Auth; without the header, dockerd reads the auth JSON from the body (docker-py sends {})."""
    header = req.headers.get("x-registry-auth")
    if header is not None:
        await req.drain()
        return decode_registry_auth(header)
    try:
        body = await req.json()
    except InvalidArgument:
        return None
    auth = AuthConfig.from_json(body)
    return auth if auth.has_credentials else None


async def _save(req: Request, names: list[str]) -> Stream:
    images = req.services.images
    chunks = bytes_from_thread(lambda out: images.save(names, out))
    # Names are resolved before the first byte is written: wait for that byte
    # (or the failure) so that a missing image is still a 404.
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""

    async def body() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return Stream(body(), content_type=TAR_TYPE)


@routes.get(r"/images/get")
async def save_images(req: Request) -> Stream:
    names = req.args("names")
    if not names:
        raise InvalidArgument("no image names given: use names=<image> (repeatable)")
    return await _save(req, names)


@routes.post(r"/images/load")
async def load_images(req: Request) -> Stream:
    images = req.services.images
    body = req.body_file()
    quiet = req.flag("quiet")
    messages = await run_blocking(lambda: list(images.load(body, quiet=quiet)))
    return json_stream(_messages(messages))


@routes.post(r"/images/prune")
async def prune_images(req: Request) -> Response:
    report = await run_blocking(req.services.images.prune, req.filters())
    return json_response(prune_json(report))


@routes.get(r"/images/(?P<name>.+)/json")
async def inspect_image(req: Request) -> Response:
    details = await run_blocking(req.services.images.inspect, req.params["name"])
    return json_response(inspect_json(details))


@routes.get(r"/images/(?P<name>.+)/get")
async def save_image(req: Request) -> Stream:
    """docker-py's `Image.save()`: one image."""
    return await _save(req, [req.params["name"]])


@routes.get(r"/images/(?P<name>.+)/history")
async def image_history(req: Request) -> Response:
    entries = await run_blocking(req.services.images.history, req.params["name"])
    return json_response(history_json(entries))


@routes.post(r"/images/(?P<name>.+)/push")
async def push_image(req: Request) -> Stream:
    auth = await _request_auth(req)
    images = req.services.images
    name, tag = req.params["name"], req.arg("tag") or None
    return json_stream(iterate_in_thread(lambda put: images.push(name, tag, auth, progress=put)))


@routes.post(r"/images/(?P<name>.+)/tag")
async def tag_image(req: Request) -> Response:
    repo = req.arg("repo")
    if not repo:
        raise InvalidArgument("repository name (repo) is required to tag an image")
    await run_blocking(req.services.images.tag, req.params["name"], repo, req.arg("tag") or None)
    return empty_response(201)


@routes.delete(r"/images/(?P<name>.+)")
async def remove_image(req: Request) -> Response:
    deletions = await run_blocking(req.services.images.remove, req.params["name"], force=req.flag("force"),
                                   noprune=req.flag("noprune"))
    return json_response(deletions_json(deletions))
