"""Route tables and the router.

Each module of `routes/` owns a `RouteTable` and registers its handlers with
decorators:

    routes = RouteTable()

    @routes.get(r"/images/(?P<name>.+)/json")
    async def inspect_image(req): ...

Patterns are regular expressions matched against the whole path, after the
version prefix has been removed and the path percent-decoded. Tables are
searched in the order they were given to the Router, and routes in the order
they were registered: fixed names such as `/images/json` must come before
greedy patterns such as `/images/(?P<name>.+)`, because image names sit in
the path unencoded, slashes and colons included.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from dockyard.api.errors import HttpError

Handler = Callable[[Any], Awaitable[Any]]


class Route:
    __slots__ = ("method", "pattern", "regex", "handler")

    def __init__(self, method: str, pattern: str, handler: Handler):
        self.method = method
        self.pattern = pattern
        self.regex = re.compile(pattern + r"\Z")
        self.handler = handler


class RouteTable:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, pattern, handler))
            return handler

        return register

    def get(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("GET", pattern)

    def head(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("HEAD", pattern)

    def post(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("POST", pattern)

    def put(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("PUT", pattern)

    def delete(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", pattern)


class Router:
    def __init__(self, tables: Iterable[RouteTable]):
        self._routes: list[Route] = [route for table in tables for route in table.routes]

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        for route in self._routes:
            if route.method != method:
                continue
            found = route.regex.match(path)
            if found is not None:
                return route.handler, found.groupdict()
        # dockerd's wording for an unknown endpoint. Not 405 for a known path
        # with another method: with greedy image-name patterns, "known path"
        # would take in endpoints that do not exist yet (`/images/x/push`).
        raise HttpError(404, "page not found")
