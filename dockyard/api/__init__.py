"""The Docker Engine API over HTTP/1.1 on a unix socket.

Vocabulary used in this package:

route     a method plus a path pattern, registered in a `RouteTable` by one
          module of `routes/` (one module per resource: images, system, ...).
handler   an `async def handler(req) -> Response` that only parses the request,
          calls a daemon service (`req.services.<name>`) and shapes the answer.
          Docker's JSON casing (`Id`, `RepoTags`) exists only here.
service   a daemon object (dockyard.daemon) doing the work; handlers reach it
          through `req.services`, so this package never imports the daemon.
stream    a response whose body is written and flushed message by message
          (chunked): JSON message streams, newline-delimited JSON, raw bytes.
hijack    `101 UPGRADED`, after which the connection is a raw bidirectional
          byte pipe (attach, exec start).

Modules: `server` (listener and the h11 connection loop), `routing`, `http`
(request and fixed responses), `streams` (framing, streams, hijack), `errors`
(error class -> HTTP status), `versions` (API version and common headers).
"""
