"""The dockyardd process: clean shutdown, restart after a crash, one daemon per socket, safe sockets."""

from __future__ import annotations

import grp
import os
import signal
import subprocess
import sys
import time

import pytest

from dockyard.client.api import DaemonUnreachable, EngineClient
from dockyard.client.http import ProtocolError
from tests.support.engine import Engine, import_busybox

pytestmark = pytest.mark.root


def test_sigterm_stops_cleanly_and_cuts_streams(fresh_engine):
    events = fresh_engine.client().request("GET", "/events")
    lines = events.iter_lines()
    started = time.monotonic()
    assert fresh_engine.stop() == 0
    assert time.monotonic() - started < 5, "an open events stream held up the shutdown"
    assert not fresh_engine.socket.exists()
    assert not fresh_engine.pidfile.exists()
    with pytest.raises(ProtocolError):
        next(lines)  # cut, not ended cleanly
    assert "shutting down" in fresh_engine.log()


def test_sigint_stops_cleanly_too(fresh_engine):
    fresh_engine.proc.send_signal(signal.SIGINT)
    assert fresh_engine.proc.wait(15) == 0
    assert not fresh_engine.socket.exists() and not fresh_engine.pidfile.exists()


def test_restart_after_a_crash_replaces_stale_socket_and_pid_file(fresh_engine, busybox_tar):
    image_id = import_busybox(fresh_engine, busybox_tar)
    fresh_engine.kill()  # SIGKILL: socket and pid file stay behind
    assert fresh_engine.socket.exists() and fresh_engine.pidfile.exists()
    with pytest.raises(DaemonUnreachable):
        fresh_engine.client().ping()
    fresh_engine.start()
    assert fresh_engine.client().image_inspect("busybox")["Id"] == image_id
    assert int(fresh_engine.pidfile.read_text()) == fresh_engine.proc.pid


def test_pid_file_naming_another_program_is_taken_over(fresh_engine):
    fresh_engine.stop()
    fresh_engine.pidfile.write_text(f"{os.getpid()}\n")  # a live pid, but not a daemon holding the lock
    fresh_engine.start()
    assert int(fresh_engine.pidfile.read_text()) == fresh_engine.proc.pid


def test_a_second_daemon_on_the_same_pid_file_or_socket_refuses(fresh_engine, tmp_path):
    same_pidfile = subprocess.run(fresh_engine.argv(), capture_output=True, text=True, timeout=30)
    assert same_pidfile.returncode == 1
    assert f"is locked by a running dockyardd (pid {fresh_engine.proc.pid})" in same_pidfile.stderr
    other = Engine(tmp_path / "other")
    argv = other.argv()
    argv[argv.index("-H") + 1] = fresh_engine.host  # own pid file and roots, same socket
    same_socket = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert same_socket.returncode == 1
    assert "another daemon is already listening" in same_socket.stderr
    assert not (tmp_path / "other" / "data").exists(), "the loser must not create its state"
    assert fresh_engine.client().ping(), "the first daemon must be unharmed"
    assert fresh_engine.socket.exists()


def test_socket_is_root_only(fresh_engine):
    st = os.stat(fresh_engine.socket)
    assert st.st_mode & 0o777 == 0o660
    assert st.st_uid == 0
    try:
        expected_gid = grp.getgrnam("dockyard").gr_gid
    except KeyError:
        expected_gid = 0
    assert st.st_gid == expected_gid


@pytest.mark.parametrize("host", ["tcp://127.0.0.1:2375", "0.0.0.0:2375", "https://example:2376"])
def test_tcp_hosts_are_refused(host, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dockyard.api.dockyardd", "-H", host, "--data-root",
                           str(tmp_path / "d"), "--exec-root", str(tmp_path / "e"), "--pidfile",
                           str(tmp_path / "p")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "refusing to listen on" in proc.stderr
    assert not (tmp_path / "d").exists(), "a refused start must not create anything"


@pytest.mark.peers
def test_docker_cli_and_sdk_negotiate_1_41(fresh_engine):
    out = fresh_engine.docker("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().split() == ["1.41", "1.41"]
    assert fresh_engine.docker_sdk().api.api_version == "1.41"


def test_client_reports_an_absent_daemon(tmp_path):
    with pytest.raises(DaemonUnreachable):
        EngineClient(f"unix://{tmp_path}/none.sock").ping()
