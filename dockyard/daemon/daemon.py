"""The Daemon: every service of the engine in one object, wired together.

The API server is given this object and handlers reach services as its
attributes (`req.services.images`, `req.services.events`). A new service
(containers, exec, volumes, networks) is constructed here, handed what it
depends on, and its routes module is added to api/routes/__init__.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.events import EventBus
from dockyard.daemon.system import SystemService

log = logging.getLogger("dockyard.daemon")

# Blocking work (SQLite, hashing, unpacking) runs here; a few threads are
# enough on the small machines we target and keep the idle daemon small.
WORKER_THREADS = 4


class Daemon:
    def __init__(self, config: DaemonConfig):
        from dockyard.daemon.images import ImageService

        self.config = config
        os.makedirs(config.data_root, mode=0o711, exist_ok=True)
        os.makedirs(config.exec_root, mode=0o700, exist_ok=True)
        self.events = EventBus()
        self.system = SystemService(config)
        self.images = ImageService(config.data_root, emit=self._emit_image_event)

    def _emit_image_event(self, action: str, image_id: str,
                          attributes: Mapping[str, str] | None = None) -> None:
        self.events.emit("image", action, image_id, attributes)

    def close(self) -> None:
        close = getattr(self.images, "close", None)
        if close is not None:
            close()


async def serve(config: DaemonConfig, stop: asyncio.Event, ready: Any = None) -> None:
    """Run the engine until `stop` is set: build services, listen, then shut down cleanly."""
    from dockyard.api.routes import build_router
    from dockyard.api.server import ApiServer

    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="dockyardd-worker")
    loop.set_default_executor(executor)
    daemon = Daemon(config)
    daemon.events.attach(loop)
    server = ApiServer(build_router(), daemon)
    try:
        await server.listen_unix(config.socket_path, group=config.socket_group)
        log.info("API listening on unix://%s", config.socket_path)
        if ready is not None:
            ready()
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.close()
        executor.shutdown(wait=True, cancel_futures=True)
        daemon.close()
