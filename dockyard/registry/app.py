"""The distribution API's endpoints: a request in, a response out.

Each handler checks what the request names (protocol.py), calls the storage
(storage.py, blocking: run in worker threads, never on the event loop) and
answers with the spec's status codes and headers.  Every failure is a
RegistryError and leaves as the spec's error JSON.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dockyard import jsonio
from dockyard.images.formats import OCI_INDEX

from . import protocol
from .auth import Htpasswd, challenge, parse_basic
from .errors import ERROR_CONTENT_TYPE, RegistryError
from .http import BodyTooLarge, ClientGone, Request, Response
from .manifests import MAX_MANIFEST
from .protocol import Route
from .storage import ChunkWriter, RegistryStorage

log = logging.getLogger("dockyard.registry")

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
JSON = "application/json; charset=utf-8"
WRITE_BATCH = 1 << 20


async def in_thread(fn, *args) -> Any:
    """`fn(*args)` in a worker thread; if we are cancelled meanwhile, still wait for it to end.

    Callers close files the call uses when they unwind, which must not
    happen while a thread may still write to them.
    """
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        raise


def _json(status: int, obj, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", JSON), *(headers or [])], (jsonio.dumps(obj) + "\n").encode())


class RegistryApp:
    def __init__(self, storage: RegistryStorage, htpasswd: Htpasswd | None = None,
                 realm: str = "Dockyard Registry"):
        self.storage = storage
        self.htpasswd = htpasswd
        self.realm = realm

    async def __call__(self, req: Request) -> Response:
        try:
            if self.htpasswd is not None:
                await self._authenticate(req)
            found = protocol.route(req.path)
            if found is None:
                raise RegistryError("UNSUPPORTED", {"path": req.path[:300]}, status=404,
                                    message="no such endpoint of the distribution API")
            allowed = protocol.METHODS[found.kind]
            if req.method not in allowed:
                raise RegistryError("UNSUPPORTED", {"method": req.method}, status=405,
                                    headers=[("Allow", ", ".join(allowed))])
            return await getattr(self, "_" + found.kind)(req, found)
        except RegistryError as exc:
            return self._error(exc)
        except BodyTooLarge:
            return self._error(RegistryError("SIZE_INVALID", f"a manifest may have at most {MAX_MANIFEST} bytes",
                                             status=413, message="payload too large"), close=True)
        except ClientGone:
            raise
        except Exception as exc:
            log.error("%s %s failed", req.method, req.target[:300], exc_info=exc)
            return self._error(RegistryError("UNKNOWN", str(exc)[:500]))

    def _error(self, exc: RegistryError, close: bool = False) -> Response:
        headers = [("Content-Type", ERROR_CONTENT_TYPE), *exc.headers]
        return Response(exc.status, headers, exc.body(), close_connection=close)

    async def _authenticate(self, req: Request) -> None:
        creds = parse_basic(req.header("authorization"))
        if creds is not None and await in_thread(self.htpasswd.check, *creds):
            req.user = creds[0]
            return
        raise RegistryError("UNAUTHORIZED", "basic authentication required" if creds is None
                            else "invalid username or password",
                            headers=[("WWW-Authenticate", challenge(self.realm))])

    # --- base, listings ------------------------------------------------------------------

    async def _base(self, req: Request, route: Route) -> Response:
        return _json(200, {})

    async def _catalog(self, req: Request, route: Route) -> Response:
        limit, last = protocol.page(protocol.query_params(req.query))
        if limit == 0:
            return _json(200, {"repositories": []})
        names = await in_thread(self.storage.catalog, None if limit is None else limit + 1, last)
        headers = []
        if limit is not None and len(names) > limit:
            names = names[:limit]
            headers.append(("Link", protocol.next_link("/v2/_catalog", limit, names[-1])))
        return _json(200, {"repositories": names}, headers)

    async def _tags(self, req: Request, route: Route) -> Response:
        limit, last = protocol.page(protocol.query_params(req.query))
        tags = await in_thread(self.storage.tags, route.name, None if limit is None else limit + 1, last)
        headers = []
        if limit is not None:
            if len(tags) > limit:
                tags = tags[:limit]
                if tags:
                    headers.append(("Link", protocol.next_link(f"/v2/{route.name}/tags/list", limit, tags[-1])))
        return _json(200, {"name": route.name, "tags": tags}, headers)

    async def _referrers(self, req: Request, route: Route) -> Response:
        digest = protocol.check_digest(route.ref)
        artifact_type = protocol.query_params(req.query).get("artifactType") or None
        entries = await in_thread(self.storage.referrers, route.name, digest, artifact_type)
        headers = [("OCI-Filters-Applied", "artifactType")] if artifact_type else []
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return Response(200, [("Content-Type", OCI_INDEX), *headers], jsonio.dumps(body).encode())

    # --- manifests ---------------------------------------------------------------------------

    async def _manifest(self, req: Request, route: Route) -> Response:
        reference, by_digest = protocol.check_reference(route.ref)
        if req.method == "PUT":
            # OCI 1.1: a push by digest may tag it too (`?tag=a&tag=b`), answered with OCI-Tag.
            tags = tuple(dict.fromkeys(protocol.query_all(req.query, "tag"))) if by_digest else ()
            for tag in tags:
                if not protocol.is_tag(tag):
                    raise RegistryError("TAG_INVALID", {"tag": tag[:200]})
            body = await req.read(MAX_MANIFEST)
            digest, pushed = await in_thread(self.storage.put_manifest, route.name, reference, by_digest, body,
                                             req.header("content-type"), tags)
            headers = [("Location", f"/v2/{route.name}/manifests/{digest}"), ("Docker-Content-Digest", digest)]
            headers += [("OCI-Tag", tag) for tag in tags]
            if pushed.subject:
                headers.append(("OCI-Subject", pushed.subject))
            return Response(201, headers)
        if req.method == "DELETE":
            await in_thread(self.storage.delete_manifest, route.name, reference, by_digest)
            return Response(202)
        record = await in_thread(self.storage.manifest, route.name, reference, by_digest)
        accepted = protocol.accepted_types(req.header_all("accept"))
        if not by_digest and not protocol.acceptable(record.media_type, accepted):
            # Docker Distribution's answer: the client cannot read what the tag names.
            raise RegistryError("MANIFEST_UNKNOWN", {"tag": reference, "mediaType": record.media_type},
                                message=f"manifest of type {record.media_type} found, but the Accept header "
                                        "does not allow it")
        headers = [("Content-Type", record.media_type), ("Docker-Content-Digest", record.digest),
                   ("ETag", f'"{record.digest}"')]
        if req.method == "HEAD":
            return Response(200, headers + [("Content-Length", str(record.size))])
        body = await in_thread(self.storage.read_manifest, record)
        return Response(200, headers, body)

    # --- blobs ---------------------------------------------------------------------------------

    async def _blob(self, req: Request, route: Route) -> Response:
        digest = protocol.check_digest(route.ref)
        if req.method == "DELETE":
            await in_thread(self.storage.delete_blob, route.name, digest)
            return Response(202, [("Docker-Content-Digest", digest)])
        headers = [("Content-Type", "application/octet-stream"), ("Docker-Content-Digest", digest),
                   ("ETag", f'"{digest}"'), ("Accept-Ranges", "bytes"),
                   ("Cache-Control", "max-age=31536000")]
        if req.method == "HEAD":
            size = await in_thread(self.storage.blob_size, route.name, digest)
            return Response(200, headers + [("Content-Length", str(size))])
        f, size = await in_thread(self.storage.open_blob, route.name, digest)
        try:
            span = protocol.parse_range(req.header("range"), size)
        except protocol.Unsatisfiable:
            f.close()
            return Response(416, [("Content-Range", f"bytes */{size}"), ("Docker-Content-Digest", digest)])
        if span is None:
            return Response(200, headers, file=f, offset=0, length=size)
        start, end = span
        return Response(206, headers + [("Content-Range", f"bytes {start}-{end}/{size}")],
                        file=f, offset=start, length=end - start + 1)

    # --- uploads -------------------------------------------------------------------------------

    def _session_answer(self, status: int, name: str, upload_id: str, size: int) -> Response:
        return Response(status, [("Location", f"/v2/{name}/blobs/uploads/{upload_id}"),
                                 ("Range", protocol.upload_range(size)), ("Docker-Upload-UUID", upload_id)])

    def _created(self, name: str, digest: str) -> Response:
        return Response(201, [("Location", f"/v2/{name}/blobs/{digest}"), ("Docker-Content-Digest", digest)])

    async def _uploads(self, req: Request, route: Route) -> Response:
        params = protocol.query_params(req.query)
        if "mount" in params:
            digest = protocol.check_digest(params["mount"])
            source = params.get("from")
            if source:
                protocol.check_name(source)
                if await in_thread(self.storage.mount, route.name, digest, source):
                    return self._created(route.name, digest)
            # Nothing to mount from: an upload session instead, as the spec says.
        elif "digest" in params:
            digest = protocol.check_digest(params["digest"])
            upload_id = await in_thread(self.storage.start_upload, route.name)
            try:
                await self._receive(req, route.name, upload_id, None)
                await in_thread(self.storage.complete_upload, route.name, upload_id, digest)
            except BaseException:
                await in_thread(self.storage._drop_upload, upload_id)
                raise
            return self._created(route.name, digest)
        upload_id = await in_thread(self.storage.start_upload, route.name)
        return self._session_answer(202, route.name, upload_id, 0)

    async def _upload(self, req: Request, route: Route) -> Response:
        upload_id = protocol.check_upload_id(route.ref)
        name = route.name
        if req.method == "GET":
            size = await in_thread(self.storage.upload_size, name, upload_id)
            return self._session_answer(204, name, upload_id, size)
        if req.method == "DELETE":
            await in_thread(self.storage.cancel_upload, name, upload_id)
            return Response(204)
        if req.method == "PATCH":
            size = await self._receive(req, name, upload_id, req.header("content-range"))
            return self._session_answer(202, name, upload_id, size)
        # PUT: the last chunk (if any) and the digest of the whole.
        digest = protocol.check_digest(protocol.query_params(req.query).get("digest"))
        await in_thread(self.storage.upload_size, name, upload_id)
        if req.content_length or req.header("transfer-encoding"):
            await self._receive(req, name, upload_id, req.header("content-range"))
        await in_thread(self.storage.complete_upload, name, upload_id, digest)
        return self._created(name, digest)

    async def _receive(self, req: Request, name: str, upload_id: str, content_range: str | None) -> int:
        """Append the request body to an upload; the session's size after it."""
        start = expected = None
        if content_range:
            start, end = protocol.parse_content_range(content_range)
            expected = end - start + 1
            if req.content_length is not None and req.content_length != expected:
                raise RegistryError("BLOB_UPLOAD_INVALID",
                                    f"Content-Length {req.content_length} does not match Content-Range "
                                    f"{content_range}")
        writer: ChunkWriter = await in_thread(self.storage.append, name, upload_id, start)
        try:
            batch = bytearray()
            async for chunk in req.chunks():
                batch += chunk
                if len(batch) >= WRITE_BATCH:
                    data, batch = batch, bytearray()
                    await in_thread(writer.write, data)
            if batch:
                await in_thread(writer.write, batch)
            if expected is not None and writer.written != expected:
                raise RegistryError("SIZE_INVALID", {"expected": expected, "received": writer.written})
            return await in_thread(writer.commit)
        finally:
            writer.abort()
