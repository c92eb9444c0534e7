"""Health checks: a container's HEALTHCHECK (from its image or `run --health-*`) probed as dockerd does.

A running container with a check has a probe loop on the event loop: after
each interval (the start interval during the start period) the test runs as
an exec in the container (`CMD` argv, or `CMD-SHELL` through the image's
shell), its output (stdout and stderr, the first 4096 bytes) and exit code
recorded in State.Health.Log (the last 5). Exit 0 makes the container
`healthy`; a failure counts towards `unhealthy` (after Retries in a row)
unless it happens during the start period; a probe longer than Timeout is
killed and counts as a failure. Each change of status is an event
`health_status: <status>`. The loop ends with the run; the next run starts
over from `starting`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..errors import EngineError

log = logging.getLogger("dockyard.daemon")

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
KEEP_RESULTS = 5
MAX_OUTPUT = 4096


def probe_command(check: dict | None, shell: list[str] | None) -> list[str] | None:
    """The argv a check runs, or None when there is no check (absent, empty or NONE)."""
    test = (check or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return list(test[1:]) or None
    if test[0] == "CMD-SHELL":
        return [*(shell or ["/bin/sh", "-c"]), " ".join(test[1:])]
    return None


def _timestamp() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // SECOND)) + f".{ns % SECOND:09d}Z"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 300ms, 1.5s, 1m30s, 1h0m0s."""
    if ns == 0:
        return "0s"
    if ns < SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    hours, rest = divmod(ns, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    seconds = f"{rest / SECOND:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    return f"{minutes}m{seconds}" if minutes else seconds


class HealthMonitor:
    def __init__(self, containers, execs):
        self.containers = containers
        self.execs = execs
        self._tasks: dict[str, asyncio.Task] = {}

    def start(self, ctr) -> None:
        """A run began: probe it if its config has a check."""
        self.stop(ctr)
        config = ctr.rec["Config"]
        command = probe_command(config.get("Healthcheck"), config.get("Shell"))
        if command is None:
            ctr.state.pop("Health", None)
            return
        ctr.state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
        self._tasks[ctr.id] = asyncio.ensure_future(self._loop(ctr, command, ctr.engine.get("Generation", 0)))

    def stop(self, ctr) -> None:
        task = self._tasks.pop(ctr.id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()

    async def _loop(self, ctr, command: list[str], generation: int) -> None:
        check = ctr.rec["Config"].get("Healthcheck") or {}
        interval = int(check.get("Interval") or DEFAULT_INTERVAL)
        timeout = int(check.get("Timeout") or DEFAULT_TIMEOUT)
        start_period = int(check.get("StartPeriod") or 0)
        start_interval = int(check.get("StartInterval") or DEFAULT_START_INTERVAL)
        retries = int(check.get("Retries") or DEFAULT_RETRIES)
        began = time.monotonic_ns()
        while True:
            starting = time.monotonic_ns() - began < start_period
            await asyncio.sleep((start_interval if starting else interval) / SECOND)
            if not ctr.running or ctr.engine.get("Generation", 0) != generation:
                return
            if ctr.state.get("Paused"):
                continue
            started_at = _timestamp()
            try:
                code, output = await self._probe(ctr, command, timeout)
            except EngineError as err:
                code, output = -1, err.message
            if not ctr.running or ctr.engine.get("Generation", 0) != generation:
                return
            in_start_period = time.monotonic_ns() - began < start_period
            self._record(ctr, started_at, code, output, retries, in_start_period)

    async def _probe(self, ctr, command: list[str], timeout: int) -> tuple[int, str]:
        result = await self.execs.run_captured(ctr, command, timeout / SECOND, MAX_OUTPUT)
        if result is None:
            return -1, f"Health check exceeded timeout ({go_duration(timeout)})"
        code, output = result
        return code, output.decode(errors="replace")

    def _record(self, ctr, started_at: str, code: int, output: str, retries: int, in_start_period: bool) -> None:
        health = ctr.state.setdefault("Health", {"Status": "starting", "FailingStreak": 0, "Log": []})
        entries = health.get("Log") or []
        entries.append({"Start": started_at, "End": _timestamp(), "ExitCode": code, "Output": output})
        health["Log"] = entries[-KEEP_RESULTS:]
        before = health["Status"]
        if code == 0:
            health["Status"] = "healthy"
            health["FailingStreak"] = 0
        elif not in_start_period:
            health["FailingStreak"] = health.get("FailingStreak", 0) + 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        self.containers._save(ctr)
        if health["Status"] != before:
            self.containers.emit(ctr, f"health_status: {health['Status']}")


def status_suffix(state: dict[str, Any]) -> str:
    """What `ps` adds to "Up …" for a container with a check."""
    health = state.get("Health") or {}
    status = health.get("Status")
    if not status or not state.get("Running"):
        return ""
    return " (health: starting)" if status == "starting" else f" ({status})"
