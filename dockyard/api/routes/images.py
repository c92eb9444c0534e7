"""Image endpoints (wired to the image service as it lands)."""

from __future__ import annotations

from typing import Any

from dockyard.api.routing import RouteTable

routes = RouteTable()


def image_summary(image: Any, containers: int = -1) -> dict[str, Any]:
    raise NotImplementedError
