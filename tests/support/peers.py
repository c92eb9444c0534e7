"""Real managers (podman, dockerd) driving dockyard-runtime: what their suites share.

`Manager` is one manager's CLI set up to use our runtime, and the `check_*`
functions are the scenarios both suites run through it, asserting on what a
user and the host can observe.  Also here: a terminal to talk through (`on_terminal`), the busybox image as a tarball for
`podman import` / `docker import`, a `runc`-named link to our runtime (podman
chooses features by the runtime's basename, see the runtime CLI contract §2),
the cgroup a container's process sits in, and tear-down of private trees
that peers leave mounts in.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import termios
import time

from dockyard.cgroups import V1_ROOT, mode
from dockyard.linux.mount import mounts_under
from tests.support.runtime import RUNTIME, Runtime

# Where dockyard-runtime keeps container state when the caller sends no --root (podman never does).
DEFAULT_RUNTIME_ROOT = "/run/dockyard-runtime"


def busybox_tarball(rootfs: str, dest: str) -> str:
    subprocess.run(["tar", "-C", rootfs, "-cf", dest, "."], check=True)
    return dest


def runc_link(directory: str) -> str:
    """`directory/runc` -> dockyard-runtime."""
    os.makedirs(directory, exist_ok=True)
    link = os.path.join(directory, "runc")
    os.symlink(RUNTIME, link)
    return link


def unmount_below(path: str) -> None:
    """Unmount whatever a peer left mounted at or below `path` (deepest first); fail if any stays."""
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    leaked = mounts_under(path)
    assert not leaked, f"mounts left below {path}: {leaked}"


def remove_tree(path: str) -> None:
    """Unmount whatever a peer left mounted below `path` (deepest first), then delete it."""
    try:
        unmount_below(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for(predicate, timeout: float = 10.0, what="condition"):
    """Poll `predicate` until it is true; `what` (a string, or a callable giving one) names it on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(0.05)


class Terminal:
    """A command on a fresh pty (its controlling terminal), as a person at a shell runs it."""

    def __init__(self, argv: list[str], env: dict | None = None, rows: int = 30, cols: int = 100):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        # A new session whose first terminal opened is the pty: that makes it the controlling one.
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, preexec_fn=_take_terminal)
        os.close(slave)
        self.output = b""

    def read_until(self, marker: bytes, timeout: float = 20.0) -> bytes:
        """Read until `marker` has appeared (or EOF); the whole output so far."""
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {marker!r} on the terminal after {timeout}s: {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every slave end is closed
                chunk = b""
            if not chunk:
                break
            self.output += chunk
        return self.output

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def finish(self, timeout: float = 20.0) -> tuple[int, bytes]:
        """Read to EOF and reap: (exit status, everything the terminal showed)."""
        self._drain(timeout)
        return self.proc.wait(timeout), self.output

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                self.output += chunk
            elif self.proc.poll() is not None:
                return
        raise AssertionError(f"terminal still open after {timeout}s: {self.output!r}")

    def kill(self) -> None:
        """Make sure the command is gone and the pty closed (after finish(), or when a test failed)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


def converse(argv: list[str], env: dict, line: bytes, **size) -> tuple[int, bytes]:
    """Start `argv` on a terminal, wait for a shell prompt, type `line`: (exit status, what the terminal showed)."""
    term = Terminal(argv, env=env, **size)
    try:
        term.read_until(b"# ")
        term.type(line)
        return term.finish()
    finally:
        term.kill()


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def cgroup_of(pid: int) -> str:
    """The cgroup path of `pid` (the memory hierarchy's on v1, the unified one on v2)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    wanted = "0:" if mode() == "v2" else "memory"
    for line in lines:
        _num, controllers, path = line.split(":", 2)
        if (wanted == "0:" and controllers == "") or wanted in controllers.split(","):
            return path
    raise AssertionError(f"no cgroup of pid {pid} in {lines}")


def memory_limit(cgroup_path: str) -> int | None:
    """The memory limit in bytes set on a group, None for no limit."""
    if mode() == "v2":
        raw = open(os.path.join(V1_ROOT, cgroup_path.lstrip("/"), "memory.max")).read().strip()
        return None if raw == "max" else int(raw)
    value = int(open(os.path.join(V1_ROOT, "memory", cgroup_path.lstrip("/"), "memory.limit_in_bytes")).read())
    return None if value >= 1 << 62 else value


def freezer_state(cgroup_path: str) -> str:
    """FROZEN or THAWED (v1's words, also for v2's cgroup.freeze)."""
    if mode() == "v2":
        raw = open(os.path.join(V1_ROOT, cgroup_path.lstrip("/"), "cgroup.freeze")).read().strip()
        return "FROZEN" if raw == "1" else "THAWED"
    return open(os.path.join(V1_ROOT, "freezer", cgroup_path.lstrip("/"), "freezer.state")).read().strip()


def cgroup_exists(cgroup_path: str) -> bool:
    from dockyard.cgroups import open_manager

    return open_manager(cgroup_path).exists()


def remove_cgroup(cgroup_path: str) -> None:
    """Remove an (empty) parent group a peer created for our containers, in every hierarchy."""
    from dockyard.cgroups import open_manager

    manager = open_manager(cgroup_path)
    if manager.exists():
        manager.destroy()


class Manager:
    """A manager's command line (podman, docker), set up so that its containers run under dockyard-runtime."""

    image: str
    env: dict
    runtime: Runtime  # our runtime, at the --root the manager gives it: reads the manager's containers' state
    exec_missing_status: int  # what `exec` of a missing program exits with (podman 127, docker 126)

    def argv(self, *args) -> list[str]:
        """The manager's command line with `args`."""
        raise NotImplementedError

    def run_argv(self, *args) -> list[str]:
        """`run` with the options that keep the container private (runtime, no network, cgroup parent)."""
        raise NotImplementedError

    def container_cgroup(self, cid: str) -> str:
        raise NotImplementedError

    def __call__(self, *args, input: str | None = None, check: bool = True, timeout: float = 60):
        proc = subprocess.run(self.argv(*args), env=self.env, input=input, capture_output=True, text=True,
                              timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(proc.args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def start_container(self, *cmd, opts=()) -> str:
        """`run -d`: the new container's id."""
        proc = subprocess.run(self.run_argv("-d", *opts, self.image, *cmd), env=self.env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def inspect(self, cid: str) -> dict:
        return json.loads(self("inspect", cid).stdout)[0]

    def running(self, cid: str) -> bool:
        """Our `state` says running (the state dir exists a moment before `create` has written the state)."""
        proc = self.runtime("state", cid)
        return proc.returncode == 0 and json.loads(proc.stdout)["status"] == "running"


def check_run_rm(m: Manager, tmp_path) -> str:
    """`run --rm`: stdout, stderr and exit code pass through; the container was ours while it ran; then gone.

    The container waits for a file the test creates, so the test can look at it
    while it runs.  Returns the container's id.
    """
    sync = tmp_path / "sync"
    sync.mkdir()
    cidfile = tmp_path / "cid"
    script = "while [ ! -e /sync/go ]; do sleep 0.02; done; echo to-stdout; echo to-stderr >&2; exit 3"
    proc = subprocess.Popen(m.run_argv("--rm", "--cidfile", cidfile, "-v", f"{sync}:/sync", m.image,
                                       "sh", "-c", script),
                            env=m.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        def running() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"run exited {proc.returncode} early: {proc.stderr.read()}")
            return m.running(cid)

        cid = wait_for(lambda: cidfile.exists() and cidfile.read_text().strip(), what="the cid file")
        wait_for(running, timeout=30,
                 what=lambda: f"our runtime to report {cid} running: {m.runtime('state', cid).stderr!r}")
        assert cgroup_of(m.runtime.state(cid)["pid"]) == m.container_cgroup(cid)
        (sync / "go").touch()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 3, err
    assert out == "to-stdout\n"
    assert "to-stderr" in err
    # The manager's clean-up ran our `delete`: state and cgroup are gone.
    wait_for(lambda: not os.path.exists(os.path.join(m.runtime.root, cid)), what="state removal")
    assert not cgroup_exists(m.container_cgroup(cid))
    return cid


def check_missing_program(m: Manager) -> None:
    """The runtime's "no such file or directory" becomes the manager's exit 127 (contract §8)."""
    proc = subprocess.run(m.run_argv("--rm", m.image, "/nonexistent"), env=m.env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 127, proc.stderr
    assert "/nonexistent" in proc.stderr and "no such file or directory" in proc.stderr


def check_detached_exec_stop_rm(m: Manager, cid: str) -> None:
    """On a `run -d` container running check_detached_exec_stop_rm.PROGRAM: exec, stop, rm."""
    pid = m.inspect(cid)["State"]["Pid"]
    state = m.runtime.state(cid)
    assert state["status"] == "running" and state["pid"] == pid

    ex = m("exec", cid, "sh", "-c", "echo $((6*7)) $$; exit 5", check=False)
    assert ex.returncode == 5, ex.stderr
    answer, exec_pid = ex.stdout.split()
    assert answer == "42" and exec_pid != "1", "exec joined the container's pid namespace"
    assert m("exec", "-i", cid, "tr", "a-z", "A-Z", input="through stdin\n").stdout == "THROUGH STDIN\n"
    missing = m("exec", cid, "/nonexistent", check=False)
    assert missing.returncode == m.exec_missing_status, missing.stderr
    assert "no such file or directory" in missing.stdout + missing.stderr  # docker's CLI prints it on stdout

    m("stop", "--time", "10", cid)
    info = m.inspect(cid)
    assert info["State"]["Status"] == "exited"
    assert info["State"]["ExitCode"] == 3, "the TERM trap ran: stop sent TERM through our `kill`"
    assert "started" in m("logs", cid).stdout

    m("rm", cid)
    assert not os.path.exists(os.path.join(m.runtime.root, cid))
    assert not cgroup_exists(m.container_cgroup(cid))


# Two processes that stay put while a test looks; `wait` returns on TERM, so the trap runs at once.
check_detached_exec_stop_rm.PROGRAM = ("sh", "-c", "trap 'exit 3' TERM; echo started; sleep 300 & wait")


def check_terminal(m: Manager) -> None:
    """`run -it` and `exec -it` from a real terminal: a pty of the container's own, sized like ours."""
    status, output = converse(m.run_argv("-it", "--rm", m.image, "sh"), m.env,
                              b"tty; stty size; echo typed-$((6*7)); exit 4\r")
    assert status == 4, output
    assert b"/dev/pts/0\r\n" in output
    assert b"30 100\r\n" in output, "the terminal's size reached the container's pty"
    assert b"typed-42\r\n" in output

    cid = m.start_container("sleep", "300")
    status, output = converse(m.argv("exec", "-it", cid, "sh"), m.env, b"tty; stty size; exit 6\r", rows=24, cols=81)
    assert status == 6, output
    assert b"/dev/pts/" in output and b"24 81\r\n" in output
    m("rm", "-f", cid)


def check_pause_unpause(m: Manager) -> None:
    # The counter is replaced by rename, so a reader never sees it half written.
    cid = m.start_container("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/m; mv /tmp/m /tmp/n; "
                                        "sleep 0.02; done")

    def count() -> int:
        out = m("exec", cid, "cat", "/tmp/n", check=False).stdout.strip()
        return int(out) if out.isdigit() else 0

    wait_for(count, what="the loop to start")
    cgroup = m.container_cgroup(cid)
    m("pause", cid)
    assert freezer_state(cgroup) == "FROZEN"
    assert m.inspect(cid)["State"]["Status"] == "paused"
    assert m.runtime.state(cid)["status"] == "paused"

    m("unpause", cid)
    assert freezer_state(cgroup) == "THAWED"
    assert m.runtime.state(cid)["status"] == "running"
    first = count()
    wait_for(lambda: count() > first, what="the loop to go on")
    m("rm", "-f", cid)


def check_kill(m: Manager) -> None:
    """`kill --signal USR1` reaches the program; plain `kill` is SIGKILL (exit 137)."""
    cid = m.start_container("sh", "-c", "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.05; done")
    wait_for(lambda: "ready" in m("logs", cid).stdout, what="the trap to be set")
    m("kill", "--signal", "USR1", cid)
    wait_for(lambda: "got-usr1" in m("logs", cid).stdout, what="USR1 to reach the container")
    assert m.runtime.state(cid)["status"] == "running"

    m("kill", cid)
    assert m("wait", cid).stdout.strip() == "137"
    assert m.inspect(cid)["State"]["Status"] == "exited"
    m("rm", cid)


def check_memory_limit(m: Manager, run_opts: tuple, update_opts: tuple) -> str:
    """A 32 MiB limit from `run`, raised to 64 MiB by `update` (our `update --resources`), on the host's cgroup."""
    cid = m.start_container("sleep", "300", opts=run_opts)
    cgroup = m.container_cgroup(cid)
    assert memory_limit(cgroup) == 32 << 20
    m("update", *update_opts, cid)
    assert memory_limit(cgroup) == 64 << 20
    return cid
