"""The events bus: docker's filter semantics, since/until, live delivery from threads."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dockyard.daemon.events import Event, EventBus, EventFilter
from dockyard.errors import InvalidArgument


def ev(type_, action, actor, **attrs) -> Event:
    return Event(type_, action, actor, attrs)


CREATE = ev("container", "create", "3f2a9c" + "0" * 58, name="web", image="bb:latest",
            **{"com.docker.compose.project": "apx", "com.docker.compose.oneoff": "False"})
EXEC = ev("container", "exec_start: true ", "3f2a9c" + "0" * 58, name="web", image="bb")
TAG = ev("image", "tag", "sha256:" + "b" * 64, name="apximg:1")
VOLUME = ev("volume", "create", "data", driver="local")


@pytest.mark.parametrize(("filters", "matching"), [
    ({}, {"CREATE", "EXEC", "TAG", "VOLUME"}),
    ({"type": ["container"]}, {"CREATE", "EXEC"}),
    ({"type": ["container", "image"]}, {"CREATE", "EXEC", "TAG"}),
    ({"event": ["create"]}, {"CREATE", "VOLUME"}),
    ({"event": ["exec_start"]}, {"EXEC"}),
    ({"container": ["web"]}, {"CREATE", "EXEC"}),
    ({"container": ["3f2a"]}, {"CREATE", "EXEC"}),
    ({"container": ["other"]}, set()),
    ({"image": ["bb"]}, {"CREATE", "EXEC"}),
    ({"image": ["apximg"]}, {"TAG"}),
    ({"label": ["com.docker.compose.project=apx", "com.docker.compose.oneoff=False"]}, {"CREATE"}),
    ({"label": ["com.docker.compose.project=apx", "com.docker.compose.oneoff=True"]}, set()),
    ({"label": ["com.docker.compose.project"]}, {"CREATE"}),
    ({"volume": ["data"]}, {"VOLUME"}),
    ({"type": ["container"], "event": ["create"]}, {"CREATE"}),
])
def test_filters(filters, matching):
    events = {"CREATE": CREATE, "EXEC": EXEC, "TAG": TAG, "VOLUME": VOLUME}
    flt = EventFilter(filters)
    assert {name for name, e in events.items() if flt.matches(e)} == matching


def test_unknown_filter_keys_and_types_are_refused():
    with pytest.raises(InvalidArgument, match="Invalid filter 'bogus'"):
        EventFilter({"bogus": ["1"]})
    with pytest.raises(InvalidArgument, match="Invalid event type"):
        EventFilter({"type": ["spaceship"]})


async def _collect(bus: EventBus, n: int | None = None, **kwargs) -> list[Event]:
    out = []
    async for event in bus.subscribe(**kwargs):
        out.append(event)
        if n is not None and len(out) >= n:
            break
    return out


def test_history_with_since_and_until():
    async def scenario():
        bus = EventBus()
        bus.attach(asyncio.get_running_loop())
        first = bus.emit("image", "tag", "sha256:1", {"name": "a:1"})
        time.sleep(0.01)
        middle = time.time_ns()
        second = bus.emit("image", "untag", "sha256:1", {"name": "a:1"})
        until_now = time.time_ns()
        everything = await _collect(bus, since_ns=0, until_ns=until_now)
        recent = await _collect(bus, since_ns=middle, until_ns=until_now)
        only_until = await _collect(bus, until_ns=until_now)
        filtered = await _collect(bus, filters={"event": ["untag"]}, since_ns=0, until_ns=until_now)
        return first, second, everything, recent, only_until, filtered

    first, second, everything, recent, only_until, filtered = asyncio.run(scenario())
    assert [e.seq for e in everything] == [first.seq, second.seq]
    assert [e.seq for e in recent] == [second.seq]
    assert [e.seq for e in only_until] == [first.seq, second.seq]  # like dockerd: until alone replays history
    assert [e.action for e in filtered] == ["untag"]


def test_live_events_from_other_threads_in_order_without_duplicates():
    async def scenario():
        bus = EventBus()
        bus.attach(asyncio.get_running_loop())
        bus.emit("image", "tag", "sha256:old", {})
        subscription = bus.subscribe(since_ns=0)

        def worker():
            for i in range(50):
                bus.emit("image", "load", f"sha256:{i}", {})

        threading.Thread(target=worker).start()
        got = []
        async for event in subscription:
            got.append(event.actor_id)
            if len(got) == 51:
                break
        subscription.close()
        return got, bus.listener_count

    got, listeners = asyncio.run(scenario())
    assert got == ["sha256:old"] + [f"sha256:{i}" for i in range(50)]
    assert listeners == 0


def test_until_in_the_future_ends_the_stream_on_time():
    async def scenario():
        bus = EventBus()
        bus.attach(asyncio.get_running_loop())
        started = time.monotonic()
        events = await _collect(bus, until_ns=time.time_ns() + 300_000_000)
        return events, time.monotonic() - started

    events, took = asyncio.run(scenario())
    assert events == []
    assert 0.25 < took < 2
