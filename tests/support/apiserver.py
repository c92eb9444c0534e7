"""An ApiServer in a background thread, for testing the HTTP machinery with test routes."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from dockyard.api.routing import Router, RouteTable
from dockyard.api.server import ApiServer


class ServerThread:
    """Runs `ApiServer(Router(tables), services)` on `socket_path` until `stop()`."""

    def __init__(self, socket_path: str, tables: list[RouteTable], services: Any = None):
        self.socket_path = socket_path
        self.server = ApiServer(Router(tables), services, grace=2.0)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.listen_unix(self.socket_path))
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
