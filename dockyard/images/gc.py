"""Garbage collection: which blobs and snapshots nothing uses any more (pure logic).

Alive are: every blob an image lists; every snapshot whose chain an image
lists; every snapshot that is the ancestor of an active snapshot or a view
(a container's root filesystem, a layer being unpacked); and whatever an
import in progress has claimed.  Everything else can go.  Snapshots are
removed children first, since a parent cannot go before its children.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SnapshotNode:
    key: str
    parent: str | None
    committed: bool


def dead_blobs(stored: Iterable[str], referenced: set[str], claimed: set[str] = frozenset()) -> set[str]:
    return {d for d in stored if d not in referenced and d not in claimed}


def dead_snapshots(nodes: Iterable[SnapshotNode], referenced: set[str], claimed: set[str] = frozenset()
                   ) -> list[str]:
    """Keys of committed snapshots to remove, in an order that removes children before parents."""
    nodes = list(nodes)
    by_key = {n.key: n for n in nodes}
    alive: set[str] = set()

    def keep_with_ancestors(key: str | None) -> None:
        while key is not None and key not in alive:
            alive.add(key)
            node = by_key.get(key)
            key = node.parent if node else None

    for node in nodes:
        if not node.committed or node.key in referenced or node.key in claimed:
            keep_with_ancestors(node.key)
    dead = [n.key for n in nodes if n.key not in alive]
    # Depth from the root: deeper first, so every child goes before its parent.
    depth: dict[str, int] = {}
    for key in dead:
        path = []
        k: str | None = key
        while k is not None and k in by_key and k not in depth:
            path.append(k)
            k = by_key[k].parent
        d = depth[k] if k is not None and k in depth else -1
        for p in reversed(path):
            d += 1
            depth[p] = d
    return sorted(dead, key=lambda k: -depth[k])
