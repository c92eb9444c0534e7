"""The real docker CLI (DOCKER_HOST at our socket) as the judge of the container endpoints."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.support.engine import DOCKER
from tests.support.peers import Terminal, converse

pytestmark = [pytest.mark.root, pytest.mark.peers]


@pytest.fixture(scope="module")
def docker(engine, busybox_image):
    if not os.path.exists(DOCKER):
        pytest.skip("the docker CLI is not installed")

    def run(*args: str, input: bytes | None = None, timeout: float = 60):
        return engine.docker(*args, input=input, timeout=timeout)

    return run


def test_run_rm_echo(docker):
    result = docker("run", "--rm", "busybox", "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hi\n", b"")


@pytest.mark.parametrize("args, code, message", [
    (["sh", "-c", "exit 7"], 7, b""),
    (["nosuchcommand"], 127, b"executable file not found"),
    (["/etc/passwd"], 126, b"permission denied"),
    (["--memory", "1k", "busybox", "true"], 125, b"Minimum memory limit allowed is 6MB"),
    (["--name", "bad name", "busybox", "true"], 125, b"Invalid container name"),
], ids=["own", "not-found", "not-executable", "engine-error", "bad-name"])
def test_run_exit_codes(docker, args, code, message):
    argv = ["run", "--rm", *args] if args[0].startswith("-") else ["run", "--rm", "busybox", *args]
    result = docker(*argv)
    assert result.returncode == code, result.stderr
    assert message in result.stderr


def test_stdin_through_run_i(docker):
    result = docker("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo end", input=b"piped\n")
    assert result.stdout == b"piped\nend\n"


def test_detached_container_workflow(docker, tmp_path):
    name = "cli-web"
    started = docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                     "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    assert len(cid) == 64
    try:
        ps = docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}")
        assert f"{cid[:12]} {name} Up" in ps.stdout.decode()
        assert docker("ps", "-q", "--filter", f"name={name}").stdout.decode().split() == [cid[:12]]
        inspect = json.loads(docker("inspect", name).stdout)
        assert inspect[0]["Id"] == cid and inspect[0]["State"]["Running"]
        assert docker("inspect", "-f", "{{.Config.Tty}} {{.HostConfig.LogConfig.Type}}", name).stdout == \
            b"false json-file\n"
        time.sleep(0.4)
        logs = docker("logs", "--tail", "2", name).stdout.decode().splitlines()
        assert len(logs) == 2 and all(line.startswith("tick ") for line in logs)
        exec_result = docker("exec", "-e", "X=1", "-w", "/tmp", "-u", "nobody", name, "sh", "-c",
                             'echo "$X $PWD $(id -u)"; exit 4')
        assert exec_result.returncode == 4 and exec_result.stdout == b"1 /tmp 65534\n"
        assert docker("exec", name, "nosuchcommand").returncode == 126
        assert docker("exec", "-d", name, "touch", "/tmp/detached").returncode == 0
        (tmp_path / "in.txt").write_text("copied in\n")
        assert docker("cp", str(tmp_path / "in.txt"), f"{name}:/tmp/cpin.txt").returncode == 0
        assert docker("exec", name, "cat", "/tmp/cpin.txt").stdout == b"copied in\n"
        assert docker("cp", f"{name}:/tmp/cpin.txt", str(tmp_path / "out.txt")).returncode == 0
        assert (tmp_path / "out.txt").read_text() == "copied in\n"
        missing = docker("cp", f"{name}:/nonexistent", str(tmp_path / "x"))
        assert missing.returncode != 0 and b"Could not find the file /nonexistent" in missing.stderr
        assert docker("stop", "-t", "1", name).stdout == f"{name}\n".encode()
        assert "Exited (137)" in docker("ps", "-a", "--format", "{{.Status}}", "--filter", f"name={name}").stdout.decode()
        exec_stopped = docker("exec", name, "true")
        assert exec_stopped.returncode != 0 and b"is not running" in exec_stopped.stderr
        assert docker("rm", name).stdout == f"{name}\n".encode()
    finally:
        docker("rm", "-f", name)


def test_logs_follow_ends_with_the_container(docker):
    cid = docker("run", "-d", "busybox", "sh", "-c", "for i in 1 2 3; do echo f$i; sleep 0.2; done").stdout
    cid = cid.decode().strip()
    try:
        result = docker("logs", "-f", cid, timeout=20)
        assert result.stdout == b"f1\nf2\nf3\n"
    finally:
        docker("rm", "-f", cid)


def test_run_it_through_a_pty(engine, docker):
    status, screen = converse([DOCKER, "run", "-it", "--rm", "busybox", "sh"], engine.env(), b"tty; exit 5\r")
    assert status == 5
    assert b"/dev/pts/0" in screen
    term = Terminal([DOCKER, "run", "-it", "--rm", "busybox", "sh", "-c", "stty size"], env=engine.env(),
                    rows=31, cols=99)
    try:
        status, screen = term.finish()
    finally:
        term.kill()
    assert status == 0 and b"31 99" in screen


def test_exec_it_through_a_pty(engine, docker):
    name = "cli-exec-it"
    docker("run", "-d", "--name", name, "busybox", "sleep", "600")
    try:
        status, screen = converse([DOCKER, "exec", "-it", name, "sh"], engine.env(), b"stty size; exit 3\r",
                                  rows=27, cols=88)
        assert status == 3 and b"27 88" in screen
    finally:
        docker("rm", "-f", name)


def test_restart_policy_and_port(docker):
    name = "cli-restart"
    docker("run", "-d", "--name", name, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = docker("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", name).stdout.decode().split()
            if state == ["2", "exited"]:
                break
            time.sleep(0.1)
        assert state == ["2", "exited"]
        assert docker("port", name).stdout == b""
    finally:
        docker("rm", "-f", name)
