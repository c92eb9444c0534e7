"""Route modules, one per resource. Each owns a `routes` RouteTable.

Order matters only between modules whose patterns overlap; within the images
module, fixed names come before the greedy `{name}` patterns.
"""

from __future__ import annotations

import importlib

from dockyard.api.routing import Router

MODULES = ("system", "images", "containers", "exec", "volumes", "networks", "auth", "build")


def build_router(modules: tuple[str, ...] = MODULES) -> Router:
    tables = [importlib.import_module(f"dockyard.api.routes.{name}").routes for name in modules]
    return Router(tables)
