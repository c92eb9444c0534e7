"""The Daemon: every service of the engine in one object, wired together.

The API server (api/dockyardd.py runs both) is given this object, and
handlers reach services as its attributes (`req.services.images`,
`req.services.events`). A new service (containers, exec, volumes, networks)
is constructed here, handed what it depends on, and its routes module is
added to api/routes/__init__.py.
"""

from __future__ import annotations

import logging
import os

from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.events import EventBus
from dockyard.daemon.system import SystemService

log = logging.getLogger("dockyard.daemon")


class Daemon:
    def __init__(self, config: DaemonConfig):
        from dockyard.daemon.images import ImageService

        self.config = config
        os.makedirs(config.data_root, mode=0o711, exist_ok=True)
        os.makedirs(config.exec_root, mode=0o700, exist_ok=True)
        self.events = EventBus()
        self.system = SystemService(config)
        self.images = ImageService(config.data_root, emit=self.events.emit)
        from dockyard.daemon.containers import ContainerService
        from dockyard.daemon.exec import ExecService
        from dockyard.daemon.networks import NetworkService
        from dockyard.daemon.volumes import VolumeService

        self.volumes = VolumeService(config.data_root, self.events.emit)
        self.networks = NetworkService(config.data_root, config.exec_root, self.events.emit, bridge=config.bridge)
        self.containers = ContainerService(config.data_root, config.exec_root, self.images, self.events.emit,
                                           default_runtime=config.default_runtime, volumes=self.volumes,
                                           networks=self.networks)
        self.execs = ExecService(self.containers)
        from dockyard.daemon.build import BuildService

        self.builds = BuildService(config.data_root, self.images, self.containers)

    async def start(self) -> None:
        """Work that needs the event loop: containers are reconciled with the monitor."""
        await self.containers.startup()

    async def aclose(self) -> None:
        """Containers keep running under the monitor; only our connection to it closes."""
        await self.containers.close()

    def close(self) -> None:
        close = getattr(self.images, "close", None)
        if close is not None:
            close()
