"""Health checks on a real daemon: probes as execs, State.Health, ps's status, events, timeouts."""

from __future__ import annotations

import json
import time

import pytest

from dockyard.daemon.health import go_duration, probe_command

pytestmark = pytest.mark.root


def _cli(engine, *args: str):
    got = engine.dockyard(*args)
    got.stdout, got.stderr = got.stdout.decode(), got.stderr.decode()
    return got


def _health(engine, name: str) -> dict:
    return engine.client().container_inspect(name)["State"].get("Health") or {}


def _wait_for(engine, name: str, status: str, deadline: float = 15.0) -> dict:
    end = time.monotonic() + deadline
    while True:
        health = _health(engine, name)
        if health.get("Status") == status or time.monotonic() > end:
            return health
        time.sleep(0.1)


def test_probe_commands_and_durations():
    assert probe_command({"Test": ["CMD", "true"]}, None) == ["true"]
    assert probe_command({"Test": ["CMD-SHELL", "exit 1"]}, None) == ["/bin/sh", "-c", "exit 1"]
    assert probe_command({"Test": ["CMD-SHELL", "x"]}, ["/bin/ash", "-e", "-c"]) == ["/bin/ash", "-e", "-c", "x"]
    assert probe_command({"Test": ["NONE"]}, None) is None and probe_command(None, None) is None
    assert [go_duration(n) for n in (300_000_000, 30_000_000_000, 90_000_000_000)] == ["300ms", "30s", "1m30s"]


def test_a_check_goes_from_starting_to_unhealthy_to_healthy(engine, busybox_image):
    since = time.time()
    got = _cli(engine, "run", "-d", "--name", "hc1", "--network", "none", "--health-cmd", "test -f /tmp/ok",
               "--health-interval", "200ms", "--health-retries", "2", "busybox", "sleep", "120")
    assert got.returncode == 0, got.stderr
    try:
        assert _health(engine, "hc1")["Status"] == "starting"
        assert "(health: starting)" in _cli(engine, "ps", "--filter", "name=hc1", "--format", "{{.Status}}").stdout
        health = _wait_for(engine, "hc1", "unhealthy")
        assert health["Status"] == "unhealthy" and health["FailingStreak"] >= 2
        assert health["Log"][-1]["ExitCode"] == 1 and len(health["Log"]) <= 5
        assert _cli(engine, "exec", "hc1", "touch", "/tmp/ok").returncode == 0
        health = _wait_for(engine, "hc1", "healthy")
        assert health["Status"] == "healthy" and health["FailingStreak"] == 0
        assert _cli(engine, "ps", "--filter", "name=hc1", "--format", "{{.Status}}").stdout.rstrip().endswith(
            "(healthy)")
        docker = engine.docker("inspect", "-f", "{{.State.Health.Status}}", "hc1")
        assert docker.stdout == b"healthy\n"
        assert _cli(engine, "ps", "-q", "--filter", "health=healthy").stdout.split() == [
            engine.client().container_inspect("hc1")["Id"][:12]]
        assert _cli(engine, "ps", "-q", "--filter", "health=unhealthy").stdout == ""
        bad = engine.docker("ps", "--filter", "health=fine")
        assert bad.returncode == 1 and b"Unrecognised filter value for health: fine" in bad.stderr
        events = engine.client().request("GET", "/events", [
            ("since", str(since)), ("until", str(time.time())),
            ("filters", json.dumps({"container": ["hc1"]}))]).read().decode()
        actions = [json.loads(line)["Action"] for line in events.splitlines()]
        assert "health_status: unhealthy" in actions and "health_status: healthy" in actions
        assert any(a.startswith("exec_start: /bin/sh -c test -f /tmp/ok") for a in actions)
    finally:
        _cli(engine, "rm", "-f", "hc1")


def test_a_probe_over_its_timeout_is_killed_and_fails(engine, busybox_image):
    got = _cli(engine, "run", "-d", "--name", "hc2", "--network", "none", "--health-cmd", "sleep 30",
               "--health-interval", "200ms", "--health-timeout", "300ms", "--health-retries", "1", "busybox",
               "sleep", "120")
    assert got.returncode == 0, got.stderr
    try:
        health = _wait_for(engine, "hc2", "unhealthy")
        assert health["Log"][-1] == {**health["Log"][-1], "ExitCode": -1,
                                     "Output": "Health check exceeded timeout (300ms)"}
        top = _cli(engine, "top", "hc2").stdout
        assert top.count("sleep 30") <= 1  # killed probes do not pile up
    finally:
        _cli(engine, "rm", "-f", "hc2")


def test_the_image_check_the_start_period_and_no_healthcheck(engine, busybox_image):
    client = engine.client()
    check = {"Test": ["CMD", "false"], "Interval": 100_000_000, "StartPeriod": 60_000_000_000,
             "StartInterval": 100_000_000, "Retries": 1}
    cid = client.container_create({"Image": "busybox", "Cmd": ["sleep", "120"], "Healthcheck": check,
                                   "HostConfig": {"NetworkMode": "none"}}, "hc3")["Id"]
    try:
        client.container_start(cid)
        time.sleep(1.0)
        health = _health(engine, "hc3")
        # failures inside the start period are logged but not counted
        assert health["Status"] == "starting" and health["FailingStreak"] == 0 and health["Log"]
    finally:
        _cli(engine, "rm", "-f", "hc3")
    got = _cli(engine, "run", "--rm", "--network", "none", "--no-healthcheck", "busybox", "true")
    assert got.returncode == 0, got.stderr
    got = _cli(engine, "run", "-d", "--name", "hc4", "--network", "none", "busybox", "sleep", "30")
    try:
        assert "Health" not in engine.client().container_inspect("hc4")["State"]
    finally:
        _cli(engine, "rm", "-f", "hc4")
