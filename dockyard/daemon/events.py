"""The in-process events bus behind `GET /events`.

Services announce what happened with `bus.emit(type, action, actor_id,
attributes)` from any thread (image services run in worker threads). The bus
stamps the event, keeps the most recent ones for `since`, and hands each to
every live subscriber on the event loop.

A subscriber registers *before* it reads the history, and every event has a
sequence number, so an event emitted in between is neither lost nor sent
twice. A subscriber that stops reading is dropped once its queue holds
`MAX_QUEUED` events rather than letting the daemon's memory grow.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from dockyard.errors import InvalidArgument

MAX_QUEUED = 10_000

EVENT_TYPES = frozenset({"container", "image", "volume", "network", "daemon", "plugin",
                         "node", "service", "secret", "config", "builder"})
FILTER_KEYS = frozenset({"config", "container", "daemon", "event", "image", "label", "network",
                         "node", "plugin", "scope", "secret", "service", "type", "volume"})


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_nano: int = 0
    scope: str = "local"
    seq: int = 0


def _strip_tag(name: str) -> str:
    """`bb:latest` -> `bb`; a registry port (`host:5000/app`) is not a tag."""
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


class EventFilter:
    """Docker's event filters: values of one key OR-ed, keys AND-ed, every label required."""

    def __init__(self, filters: Mapping[str, list[str]] | None = None):
        filters = dict(filters or {})
        for key in filters:
            if key not in FILTER_KEYS:
                raise InvalidArgument(f"Invalid filter '{key}'")
        for kind in filters.get("type", ()):
            if kind not in EVENT_TYPES:
                raise InvalidArgument(f"Invalid event type '{kind}'")
        self._filters = filters

    def _exact(self, key: str, *candidates: str) -> bool:
        wanted = self._filters.get(key)
        if not wanted:
            return True
        return any(c in wanted for c in candidates if c)

    def _fuzzy(self, key: str, *candidates: str) -> bool:
        # Matches by full value or by prefix, so `container=3f2a` finds the container.
        wanted = self._filters.get(key)
        if not wanted:
            return True
        return any(c == w or c.startswith(w) for c in candidates if c for w in wanted)

    def _named(self, key: str, event: Event) -> bool:
        if not self._filters.get(key):
            return True
        return event.type == key and self._fuzzy(key, event.actor_id, event.attributes.get("name", ""))

    def matches(self, event: Event) -> bool:
        attrs = event.attributes
        actions = self._filters.get("event")
        # exec_create etc. carry the command after a colon ("exec_start: true ").
        if actions and event.action not in actions and event.action.split(":", 1)[0] not in actions:
            return False
        if not self._exact("type", event.type) or not self._exact("scope", event.scope):
            return False
        for key in ("container", "volume", "network", "daemon", "plugin", "node", "service",
                    "secret", "config"):
            if not self._named(key, event):
                return False
        if self._filters.get("image"):
            image = attrs.get("image", "")
            name = attrs.get("name", "") if event.type == "image" else ""
            if not self._exact("image", event.actor_id, image, _strip_tag(image), name, _strip_tag(name)):
                return False
        for label in self._filters.get("label", ()):
            key, eq, value = label.partition("=")
            if key not in attrs or (eq and attrs[key] != value):
                return False
        return True


class _Subscriber:
    __slots__ = ("queue", "overflowed")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.overflowed = False

    def deliver(self, event: Event) -> None:
        if self.queue.qsize() >= MAX_QUEUED:
            self.overflowed = True
            return
        self.queue.put_nowait(event)


class EventBus:
    def __init__(self, history: int = 1024):
        self._history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[_Subscriber] = set()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop subscribers live on; events emitted before this are kept as history."""
        self._loop = loop

    @property
    def listener_count(self) -> int:
        return len(self._subscribers)

    def emit(self, type: str, action: str, actor_id: str,
             attributes: Mapping[str, str] | None = None) -> Event:
        """Announce an event. Safe to call from any thread."""
        with self._lock:
            event = Event(type, action, actor_id, dict(attributes or {}), time.time_ns(),
                          seq=next(self._seq))
            self._history.append(event)
            subscribers = list(self._subscribers)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            for sub in subscribers:
                loop.call_soon_threadsafe(sub.deliver, event)
        return event

    def history(self) -> list[Event]:
        with self._lock:
            return list(self._history)

    def subscribe(self, filters: Mapping[str, list[str]] | None = None, since_ns: int | None = None,
                  until_ns: int | None = None) -> Subscription:
        """Past events (when a bound is given), then live ones until `until_ns` (if given).

        Filters are checked and the subscriber registered now, before the
        caller sends its response headers, so a bad filter is still a 400 and
        no event emitted after this call is missed. With `until_ns` in the
        past only history is sent and the iteration ends.
        """
        return Subscription(self, EventFilter(filters), since_ns, until_ns)


class Subscription:
    """One `GET /events` client: iterate it for events; `close()` when done."""

    def __init__(self, bus: EventBus, event_filter: EventFilter, since_ns: int | None, until_ns: int | None):
        self._bus = bus
        self._filter = event_filter
        self._since = since_ns
        self._until = until_ns
        self._sub = _Subscriber()
        with bus._lock:
            bus._subscribers.add(self._sub)
            # Like dockerd: history is replayed when either bound is given.
            replay = since_ns is not None or until_ns is not None
            self._past = list(bus._history) if replay else []
            self._last_seq = bus._history[-1].seq if bus._history else 0

    def close(self) -> None:
        with self._bus._lock:
            self._bus._subscribers.discard(self._sub)

    async def __aiter__(self) -> AsyncIterator[Event]:
        since, until, matches = self._since, self._until, self._filter.matches
        try:
            for event in self._past:
                if since is not None and event.time_nano < since:
                    continue
                if until is not None and event.time_nano > until:
                    return
                if matches(event):
                    yield event
            self._past = []
            if until is not None and until <= time.time_ns():
                return
            queue = self._sub.queue
            while not self._sub.overflowed:
                if until is None:
                    event = await queue.get()
                else:
                    remaining = (until - time.time_ns()) / 1e9
                    if remaining <= 0:
                        return
                    try:
                        event = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        return
                if event.seq <= self._last_seq:
                    continue
                if until is not None and event.time_nano > until:
                    return
                if matches(event):
                    yield event
        finally:
            self.close()
