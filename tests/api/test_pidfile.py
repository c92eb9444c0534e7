"""The daemon's pid file: locked while alive, taken over after a crash."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dockyard.daemon.pidfile import PidFile
from dockyard.errors import Conflict


def test_acquire_writes_our_pid_and_release_removes_it(tmp_path):
    path = str(tmp_path / "d.pid")
    with PidFile(path):
        assert open(path).read().strip() == str(os.getpid())
    assert not os.path.exists(path)


def test_a_stale_pid_file_is_taken_over(tmp_path):
    path = tmp_path / "d.pid"
    path.write_text("999999\n")  # a crash left it behind; nobody holds the lock
    with PidFile(str(path)):
        assert path.read_text().strip() == str(os.getpid())


def test_a_live_holder_makes_the_second_fail(tmp_path):
    path = str(tmp_path / "d.pid")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from dockyard.daemon.pidfile import PidFile\n"
         f"p = PidFile({path!r}); p.acquire(); print('ok', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(Conflict, match=f"pid {holder.pid}"):
            PidFile(path).acquire()
        assert open(path).read().strip() == str(holder.pid), "the loser must not touch the file"
    finally:
        holder.kill()
        holder.wait()
    with PidFile(path):  # the holder died: its lock went with it
        pass
