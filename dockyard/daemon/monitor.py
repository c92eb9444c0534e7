"""The monitor: one long-lived, single-threaded process that starts and supervises containers.

dockyardd runs worker threads, and a threaded process must not fork. So
containers are started by this process instead, which dockyardd launches on
demand (`python -m dockyard.daemon.monitor --exec-root DIR`) in a session of
its own; it outlives dockyardd's restarts and crashes.

    dockyardd ══ unix socket (<exec-root>/monitor.sock) ══▶ monitor   (PR_SET_CHILD_SUBREAPER)
                                                            │
        fork: a launcher ── runtime create+start, in-process (dockyard-runtime's modules are
        │                   imported here already) or `runc create`/`runc start` ── exits
        │
        └▶ container init, reparented to the monitor when its launcher's bridge exits:
           the monitor reaps it (and every exec'd process), holds its stdio (pipes, or
           the pty master), writes the json-file log, records the exit code on disk

Nothing of ours stays resident per container: per running container the
monitor holds a few file descriptors and objects.

Protocol (frames: monitorwire; requests carry `seq`, replies echo it):

  control connection (dockyardd keeps one open)
    hello                          -> {containers: [state…]}; events follow on this connection
    start {id, bundle, runtime, …} -> {pid} once the program runs, or {error}
    kill {id, signal}              -> {} or {error: not running}
    resize {id|exec_id, h, w}      -> {}
    exec {id, exec_id, process, tty} (detached: no streams) -> {pid} or {error}
    ack {id, generation}           -> {}  (dockyardd stored the exit; forget it)
    shutdown                       -> {}  (kill every container, clean up, exit)
    events: {event: "exit", id, generation, code, finished_at, pid}
            {event: "exec-exit", id, exec_id, code}

  stream connections (one per attach or attached exec; the first frame is the request)
    attach {id, stdin, stdout, stderr} -> {running}: output frames follow from the current run,
                                          or from the next start if none runs now
    exec {id, exec_id, process, tty, stdin, stdout, stderr} -> {pid} or {error}
    then: output frames (1, 2) to dockyardd; stdin frames (0) from it, control
    {eof} for a client's half-close, {resize}; an exec's stream ends with
    control {exit: code}; the monitor closes the connection when the output ends.

State on disk (written atomically): `<state_dir>/exit.json` for each exit,
`{generation, code, finished_at, pid}`, so an exit that happens while
dockyardd is down survives even the monitor's death. The monitor's own files:

    <exec-root>/monitor.sock   the socket above (0600)
    <exec-root>/monitor.pid    flock-ed while a monitor runs: at most one per exec root
    <exec-root>/monitor.log    its log
    <exec-root>/runtime/       dockyard-runtime's --root;  <exec-root>/runc/: runc's
"""

from __future__ import annotations

import errno
import fcntl
import heapq
import os
import selectors
import signal
import socket
import sys
import time

from .. import jsonio
from . import monitorwire as wire
from .logs import JsonFileWriter, timestamp

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
HIGH_WATER = 1 << 20      # stop reading a process's output while a client has this much unsent
LOW_WATER = 256 << 10     # (and a client's stdin while the process has this much unread: the same marks)
DRAIN_TIMEOUT = 2.0       # after the process exits, wait this long for its output to close
IDLE_EXIT = 2.0           # no dockyardd and nothing to supervise: exit after this long
SOCKET_NAME = "monitor.sock"
PID_NAME = "monitor.pid"
LOG_NAME = "monitor.log"

_log_fd = 2


def log(msg: str) -> None:
    try:
        os.write(_log_fd, f"{timestamp()} monitor[{os.getpid()}]: {msg}\n".encode())
    except OSError:
        pass


# --- the reactor ---------------------------------------------------------------------------


class Reactor:
    """select()-based loop: per-fd read and write callbacks, and timers."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self._readers: dict = {}
        self._writers: dict = {}
        self._timers: list = []
        self._seq = 0
        self.stopping = False

    def _update(self, fd: int) -> None:
        mask = (READ if fd in self._readers else 0) | (WRITE if fd in self._writers else 0)
        try:
            self.sel.get_key(fd)
            registered = True
        except KeyError:
            registered = False
        if mask and registered:
            self.sel.modify(fd, mask)
        elif mask:
            self.sel.register(fd, mask)
        elif registered:
            self.sel.unregister(fd)

    def add_reader(self, fd: int, cb) -> None:
        self._readers[fd] = cb
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd: int, cb) -> None:
        self._writers[fd] = cb
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def forget(self, fd: int) -> None:
        self._readers.pop(fd, None)
        self._writers.pop(fd, None)
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def call_later(self, delay: float, cb) -> list:
        self._seq += 1
        handle = [time.monotonic() + delay, self._seq, cb]
        heapq.heappush(self._timers, handle)
        return handle

    @staticmethod
    def cancel(handle: list | None) -> None:
        if handle is not None:
            handle[2] = None

    def run(self) -> None:
        while not self.stopping:
            timeout = None
            while self._timers and self._timers[0][2] is None:
                heapq.heappop(self._timers)
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, mask in self.sel.select(timeout):
                fd = key.fd
                if mask & READ and fd in self._readers:
                    self._guard(self._readers[fd])
                if mask & WRITE and fd in self._writers:
                    self._guard(self._writers[fd])
            now = time.monotonic()
            while self._timers and (self._timers[0][2] is None or self._timers[0][0] <= now):
                _, _, cb = heapq.heappop(self._timers)
                if cb is not None:
                    self._guard(cb)

    @staticmethod
    def _guard(cb) -> None:
        try:
            cb()
        except Exception as err:  # noqa: BLE001 - one bad callback must not stop supervision
            import traceback

            log("callback failed: " + "".join(traceback.format_exception(err)))


# --- connections -----------------------------------------------------------------------------


class Conn:
    """One connection from dockyardd (control or stream), framed both ways."""

    def __init__(self, monitor: Monitor, sock: socket.socket):
        self.monitor = monitor
        self.sock = sock
        sock.setblocking(False)
        self.fd = sock.fileno()
        self.decoder = wire.Decoder()
        self.out = bytearray()
        self.closed = False
        self.role = ""            # "control", "attach" or "exec" once the first request says
        self.proc: Proc | None = None
        self.cid = ""
        self.stdout = self.stderr = True
        self.stdin = False
        self.pending_stdin = bytearray()   # stdin that arrived before the process existed
        self.stdin_closed = False
        self.close_after_flush = False
        self.draining = False              # finished: our side is shut; the peer's last words are dropped
        self.held = False                  # not read while the process has HIGH_WATER of its stdin unread
        monitor.reactor.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        if self.draining:
            return
        try:
            frames = self.decoder.feed(data)
        except wire.ProtocolError as err:
            log(f"dropping a connection: {err}")
            self.close()
            return
        for channel, payload in frames:
            if self.closed:
                return
            self.monitor.on_frame(self, channel, payload)
        if self.stdin and not self.closed and self._stdin_backlog() >= HIGH_WATER:
            self.hold()

    def _stdin_backlog(self) -> int:
        if self.proc is None:
            return len(self.pending_stdin)
        return len(self.proc.stdin_buf) if self.proc.takes_stdin else 0

    def hold(self) -> None:
        """Stop reading: the process does not keep up with its input (dockyardd's writes then wait,
        and so does the client's). Resumed by the process's progress, or its end."""
        if self.held:
            return
        self.held = True
        self.monitor.reactor.remove_reader(self.fd)
        if self.proc is not None:
            self.proc.stdin_held.append(self)

    def release(self) -> None:
        if self.held and not self.closed:
            self.held = False
            self.monitor.reactor.add_reader(self.fd, self._readable)

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.out:
            try:
                n = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self.close()
                return
            if n == len(data):
                return
            data = data[n:]
            self.monitor.reactor.add_writer(self.fd, self._writable)
        self.out += data

    def reply(self, request: dict, **fields) -> None:
        fields["seq"] = request.get("seq")
        self.send(wire.control(fields))

    def fail(self, request: dict, message: str) -> None:
        self.reply(request, error=message)

    def _writable(self) -> None:
        try:
            n = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self.out[:n]
        if not self.out:
            self.monitor.reactor.remove_writer(self.fd)
            if self.close_after_flush:
                self._shut_down()
                return
        if len(self.out) < LOW_WATER and self.proc is not None:
            self.proc.resume_output()

    @property
    def congested(self) -> bool:
        return len(self.out) > HIGH_WATER

    def finish(self) -> None:
        """End the connection once everything queued has been sent."""
        if not self.out:
            self._shut_down()
        else:
            self.close_after_flush = True

    def _shut_down(self) -> None:
        """Half-close, then read (and drop) until the peer closes: closing a unix socket with input still
        unread resets the connection, and the peer then loses what it had not read of ours yet (an exec's
        last output, when its client's stdin EOF was on the way). A peer that never closes is cut after
        DRAIN_TIMEOUT."""
        if self.closed or self.draining:
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.draining = True
        if self.held:
            self.held = False
            self.monitor.reactor.add_reader(self.fd, self._readable)
        self.monitor.reactor.call_later(DRAIN_TIMEOUT, self.close)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.monitor.reactor.forget(self.fd)
        try:
            self.sock.close()
        except OSError:
            pass
        self.monitor.on_conn_closed(self)


# --- processes -------------------------------------------------------------------------------


class Proc:
    """A supervised process (a container's init or an exec'd process): its stdio and its exit."""

    def __init__(self, monitor: Monitor, key: str, tty: bool, log_writer: JsonFileWriter | None = None):
        self.monitor = monitor
        self.key = key
        self.tty = tty
        self.pid = 0
        self.outputs: dict[int, int] = {}   # fd -> channel (1 stdout, 2 stderr)
        self.stdin_fd = -1                  # pipe write end, or the pty master
        self.master = -1
        self.stdin_buf = bytearray()
        self.stdin_held: list[Conn] = []    # clients not read until stdin_buf drains
        self.stdin_ended = False
        self.log = log_writer
        self.sinks: list[Conn] = []
        self.status: int | None = None      # exit code once reaped
        self.finished_at = ""
        self.paused_output = False
        self.close_stdin_when_flushed = False
        self.drain_timer = None
        self.finished = False
        self.on_finished = None             # callback once exited and output drained

    # output ---------------------------------------------------------------------------------
    def watch_outputs(self) -> None:
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.monitor.reactor.add_reader(fd, lambda fd=fd: self._read(fd))

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            if err.errno != errno.EIO:  # EIO: the pty's last slave closed
                log(f"{self.key}: reading output: {err}")
            data = b""
        channel = self.outputs.get(fd, 1)
        if not data:
            self._close_output(fd)
            return
        if self.log is not None:
            self.log.write("stderr" if channel == 2 else "stdout", data)
        congested = False
        for conn in self.sinks:
            if (conn.stdout if channel == 1 else conn.stderr) and not conn.closed:
                conn.send(wire.frame(channel, data))
                congested = congested or conn.congested
        if congested:
            self.pause_output()

    def pause_output(self) -> None:
        if not self.paused_output:
            self.paused_output = True
            for fd in self.outputs:
                self.monitor.reactor.remove_reader(fd)

    def resume_output(self) -> None:
        if self.paused_output and not any(c.congested for c in self.sinks if not c.closed):
            self.paused_output = False
            for fd in self.outputs:
                self.monitor.reactor.add_reader(fd, lambda fd=fd: self._read(fd))

    def _close_output(self, fd: int) -> None:
        channel = self.outputs.pop(fd, None)
        self.monitor.reactor.forget(fd)
        if fd != self.master:
            os.close(fd)
        if self.log is not None and channel is not None:
            self.log.finish("stderr" if channel == 2 else "stdout")
        self._maybe_finish()

    # input ------------------------------------------------------------------------------------
    @property
    def takes_stdin(self) -> bool:
        """Input can still reach the process (before its launch it is held: a pty comes with the launch)."""
        return not (self.finished or self.stdin_ended or (self.stdin_fd < 0 and self.pid))

    def write_stdin(self, data: bytes) -> None:
        """Queue input; nothing is dropped: clients are not read while HIGH_WATER of it waits (Conn.hold)."""
        if not self.takes_stdin:
            return
        self.stdin_buf += data
        self._flush_stdin()

    def _flush_stdin(self) -> None:
        while self.stdin_buf and self.stdin_fd >= 0:
            try:
                n = os.write(self.stdin_fd, self.stdin_buf[:HIGH_WATER])
            except (BlockingIOError, InterruptedError):
                self.monitor.reactor.add_writer(self.stdin_fd, self._flush_stdin)
                break
            except OSError:
                self.stdin_buf.clear()
                break
            del self.stdin_buf[:n]
        else:
            if self.stdin_fd >= 0:
                self.monitor.reactor.remove_writer(self.stdin_fd)
            if self.stdin_fd >= 0 and self.stdin_fd != self.master and self.close_stdin_when_flushed:
                self.close_stdin()
        if len(self.stdin_buf) < LOW_WATER or not self.takes_stdin:
            self._release_stdin()

    def _release_stdin(self) -> None:
        held, self.stdin_held = self.stdin_held, []
        for conn in held:
            conn.release()

    def close_stdin(self) -> None:
        """End the process's input (a pty stays open: it is the process's terminal too)."""
        if self.stdin_fd < 0 or self.stdin_fd == self.master:
            return
        if self.stdin_buf:
            self.close_stdin_when_flushed = True
            return
        self.monitor.reactor.forget(self.stdin_fd)
        os.close(self.stdin_fd)
        self.stdin_fd = -1
        self.stdin_ended = True
        self._release_stdin()

    def resize(self, height: int, width: int) -> None:
        if self.master >= 0:
            import struct
            import termios

            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    # exit ---------------------------------------------------------------------------------------
    def exited(self, status: int) -> None:
        if self.status is not None:
            return
        self.status = status
        self.finished_at = timestamp()
        if self.outputs:
            self.drain_timer = self.monitor.reactor.call_later(DRAIN_TIMEOUT, self._drain_expired)
        self._maybe_finish()

    def _drain_expired(self) -> None:
        for fd in list(self.outputs):
            self._read_rest(fd)
            if fd in self.outputs:
                self._close_output(fd)

    def _read_rest(self, fd: int) -> None:
        for _ in range(64):
            if fd not in self.outputs:
                return
            self._read(fd)

    def _maybe_finish(self) -> None:
        if self.finished or self.status is None or self.outputs:
            return
        self.finished = True
        Reactor.cancel(self.drain_timer)
        if self.log is not None:
            self.log.close()
        if self.stdin_fd >= 0:
            self.monitor.reactor.forget(self.stdin_fd)
            if self.stdin_fd != self.master:
                os.close(self.stdin_fd)
            self.stdin_fd = -1
        if self.master >= 0:
            self.monitor.reactor.forget(self.master)
            os.close(self.master)
            self.master = -1
        self.stdin_buf.clear()
        self._release_stdin()
        if self.on_finished is not None:
            self.on_finished(self)

    def attach(self, conn: Conn) -> None:
        conn.proc = self
        self.sinks.append(conn)
        if conn.pending_stdin:
            self.write_stdin(bytes(conn.pending_stdin))
            conn.pending_stdin.clear()
        if conn.held:
            if len(self.stdin_buf) >= LOW_WATER and self.takes_stdin:
                self.stdin_held.append(conn)
            else:
                conn.release()

    def close_sinks(self, trailer: bytes = b"") -> None:
        for conn in self.sinks:
            if trailer:
                conn.send(trailer)
            conn.finish()
        self.sinks = []


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 255


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


# --- containers ------------------------------------------------------------------------------


class Container:
    """What the monitor knows of a container it started."""

    def __init__(self, request: dict):
        self.id = request["id"]
        self.generation = int(request.get("generation", 0))
        self.bundle = request["bundle"]
        self.runtime = request.get("runtime") or "dockyard-runtime"
        self.state_dir = request.get("state_dir") or ""
        self.open_stdin = bool(request.get("stdin"))
        self.stdin_once = bool(request.get("stdin_once"))
        self.tty = bool(request.get("tty"))
        self.proc: Proc | None = None
        self.started_at = ""
        self.exit: dict | None = None       # the last exit, until dockyardd acknowledges it
        self.cleaning = False

    def state(self) -> dict:
        out = {"id": self.id, "generation": self.generation, "runtime": self.runtime}
        if self.proc is not None and self.proc.status is None:
            out.update(running=True, pid=self.proc.pid, started_at=self.started_at)
        elif self.exit is not None:
            out.update(running=False, **self.exit)
        else:
            out.update(running=False, starting=True)
        return out


class Monitor:
    def __init__(self, exec_root: str):
        self.exec_root = exec_root
        self.reactor = Reactor()
        self.containers: dict[str, Container] = {}
        self.pending_attach: dict[str, list[Conn]] = {}
        self.procs_by_pid: dict[int, Proc] = {}
        self.helpers: dict[int, object] = {}     # pid -> callback(status) for launchers and cleaners
        self.unclaimed: dict[int, int] = {}      # statuses of pids reaped before we knew them
        self.execs: dict[str, Proc] = {}
        self.controls: list[Conn] = []
        self.conns: set[Conn] = set()
        self.idle_timer = None
        self.listener: socket.socket | None = None
        self.shutting_down = False

    # --- start-up ---------------------------------------------------------------------------
    def serve(self, sock: socket.socket) -> None:
        self.listener = sock
        sock.setblocking(False)
        self.reactor.add_reader(sock.fileno(), self._accept)
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_r = rfd
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.reactor.add_reader(rfd, self._signalled)
        self._arm_idle()
        self.reactor.run()

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.set_inheritable(False)
        self.conns.add(Conn(self, sock))
        self._disarm_idle()

    def _signalled(self) -> None:
        try:
            signals = os.read(self._wake_r, 512)
        except BlockingIOError:
            signals = b""
        self._reap()
        if signal.SIGTERM in signals:
            if self._busy():
                log("SIGTERM ignored: containers depend on this process (their stdio and exit codes)")
            else:
                self.stop()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            helper = self.helpers.pop(pid, None)
            if helper is not None:
                helper(status)
                continue
            proc = self.procs_by_pid.pop(pid, None)
            if proc is not None:
                proc.exited(exit_code(status))
            else:
                self.unclaimed[pid] = exit_code(status)

    # --- idleness ------------------------------------------------------------------------------
    def _busy(self) -> bool:
        return bool(self.controls or self.containers or self.execs or self.helpers or self.pending_attach)

    def _arm_idle(self) -> None:
        if self.idle_timer is None and not self._busy():
            self.idle_timer = self.reactor.call_later(IDLE_EXIT, self._idle_check)

    def _disarm_idle(self) -> None:
        Reactor.cancel(self.idle_timer)
        self.idle_timer = None

    def _idle_check(self) -> None:
        self.idle_timer = None
        if not self._busy() and not self.conns:
            log("nothing to supervise and no engine connected: exiting")
            self.stop()

    def stop(self) -> None:
        if self.listener is not None:
            try:
                os.unlink(os.path.join(self.exec_root, SOCKET_NAME))
            except FileNotFoundError:
                pass
            self.reactor.forget(self.listener.fileno())
            self.listener.close()
            self.listener = None
        self.reactor.stopping = True

    # --- frames ---------------------------------------------------------------------------------
    def on_frame(self, conn: Conn, channel: int, payload: bytes) -> None:
        if channel == wire.STDIN:
            self._stdin(conn, payload)
            return
        if channel != wire.CONTROL:
            return
        try:
            msg = wire.parse_control(payload)
        except wire.ProtocolError as err:
            log(f"bad control frame: {err}")
            conn.close()
            return
        if conn.role in ("attach", "exec"):
            self._stream_control(conn, msg)
            return
        op = msg.get("op", "")
        handler = getattr(self, "op_" + op.replace("-", "_"), None)
        if handler is None:
            conn.fail(msg, f"unknown monitor request {op!r}")
            return
        try:
            handler(conn, msg)
        except Exception as err:  # noqa: BLE001 - the daemon gets the reason instead of a hang
            import traceback

            log(f"{op} failed: " + "".join(traceback.format_exception(err)))
            conn.fail(msg, str(err) or type(err).__name__)

    def on_conn_closed(self, conn: Conn) -> None:
        self.conns.discard(conn)
        if conn in self.controls:
            self.controls.remove(conn)
        if conn.proc is not None:
            proc = conn.proc
            if conn in proc.sinks:
                proc.sinks.remove(conn)
            if conn.stdin and not conn.stdin_closed:
                self._stdin_ended(conn)
            proc.resume_output()
        for waiting in self.pending_attach.values():
            if conn in waiting:
                waiting.remove(conn)
        self.pending_attach = {k: v for k, v in self.pending_attach.items() if v}
        self._arm_idle()

    def _emit(self, event: dict) -> None:
        data = wire.control(event)
        for conn in self.controls:
            conn.send(data)

    # --- control requests --------------------------------------------------------------------------
    def op_hello(self, conn: Conn, msg: dict) -> None:
        conn.role = "control"
        self.controls.append(conn)
        conn.reply(msg, containers=[c.state() for c in self.containers.values()], pid=os.getpid())

    def op_list(self, conn: Conn, msg: dict) -> None:
        conn.reply(msg, containers=[c.state() for c in self.containers.values()])

    def op_ack(self, conn: Conn, msg: dict) -> None:
        c = self.containers.get(msg["id"])
        if c is not None and c.exit is not None and c.exit.get("generation") == msg.get("generation") \
                and (c.proc is None or c.proc.finished) and not c.cleaning:
            del self.containers[c.id]
        conn.reply(msg)
        self._arm_idle()

    def op_kill(self, conn: Conn, msg: dict) -> None:
        c = self.containers.get(msg["id"])
        if c is None or c.proc is None or c.proc.status is not None or not c.proc.pid:
            conn.fail(msg, f"container {msg['id']} is not running")
            return
        signum = int(msg.get("signal", signal.SIGTERM))
        try:
            os.kill(c.proc.pid, signum)
        except ProcessLookupError:
            pass
        conn.reply(msg)

    def op_resize(self, conn: Conn, msg: dict) -> None:
        proc = self.execs.get(msg.get("exec_id", "")) if msg.get("exec_id") else None
        if proc is None and msg.get("id") in self.containers:
            proc = self.containers[msg["id"]].proc
        if proc is not None and proc.status is None:
            proc.resize(int(msg.get("h", 0)), int(msg.get("w", 0)))
        conn.reply(msg)

    def op_shutdown(self, conn: Conn, msg: dict) -> None:
        """Kill everything (tests and `reboot` simulations); reply when all are gone."""
        self.shutting_down = True
        for c in list(self.containers.values()):
            self._thaw(c)
            if c.proc is not None and c.proc.status is None and c.proc.pid:
                try:
                    os.kill(c.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        def check() -> None:
            busy = any(c.cleaning or (c.proc is not None and not c.proc.finished) for c in self.containers.values())
            if busy or self.helpers:
                self.reactor.call_later(0.02, check)
                return
            conn.reply(msg)
            conn.finish()
            self.reactor.call_later(0.05, self.stop)

        check()

    def _cgroup(self, c: Container):
        with open(os.path.join(c.bundle, "config.json"), "rb") as f:
            path = (jsonio.loads(f.read()).get("linux") or {}).get("cgroupsPath")
        from ..cgroups import open_manager

        return open_manager(path) if path else None

    def _thaw(self, c: Container) -> None:
        try:
            cgroup = self._cgroup(c)
            if cgroup is not None:
                cgroup.thaw()
        except Exception:  # noqa: BLE001 - best effort: the container may be gone already
            pass

    def _oom_killed(self, c: Container) -> bool:
        """Whether the kernel's OOM killer struck in the container's cgroup (read before it is removed)."""
        try:
            cgroup = self._cgroup(c)
            directory = cgroup.controller_path("memory") if cgroup is not None else None
            if not directory:
                return False
            for name in ("memory.oom_control", "memory.events"):  # v1, v2
                try:
                    with open(os.path.join(directory, name)) as f:
                        for line in f:
                            key, _, value = line.partition(" ")
                            if key == "oom_kill":
                                return int(value) > 0
                except FileNotFoundError:
                    continue
        except Exception:  # noqa: BLE001 - best effort
            pass
        return False

    # --- start ------------------------------------------------------------------------------------
    def op_start(self, conn: Conn, msg: dict) -> None:
        cid = msg["id"]
        old = self.containers.get(cid)
        if old is not None and ((old.proc is not None and not old.proc.finished) or old.cleaning):
            conn.fail(msg, f"container {cid} is already running")
            return
        c = Container(msg)
        self.containers[cid] = c
        max_size, max_file = int(msg.get("log_max_size", 0)), int(msg.get("log_max_file", 1))
        writer = JsonFileWriter(msg["log_path"], max_size, max_file) if msg.get("log_path") else None
        proc = Proc(self, cid, c.tty, writer)
        proc.on_finished = lambda p, c=c: self._container_finished(c, p)
        c.proc = proc
        child_stdio = self._make_stdio(proc, c.tty, c.open_stdin)
        for waiting in self.pending_attach.pop(cid, []):
            waiting.stdin = waiting.stdin and c.open_stdin
            proc.attach(waiting)
            if waiting.stdin and waiting.stdin_closed and c.stdin_once:
                proc.close_stdin()  # the client's input ended even before the start

        def done(result: dict, console_fd: int) -> None:
            if "error" in result:
                self._launch_failed(c, proc)
                conn.fail(msg, result["error"])
                return
            c.started_at = timestamp()
            # The reply goes first: a process that is already gone makes _adopt
            # report its exit, which must not overtake the news of its start.
            conn.reply(msg, pid=result["pid"], started_at=c.started_at)
            self._adopt(proc, result["pid"], console_fd)

        request = dict(msg, runtime_root=self._runtime_root(c.runtime))
        self._spawn_launcher(child_stdio, done, _launch_container, request)

    def _make_stdio(self, proc: Proc, tty: bool, open_stdin: bool) -> tuple[int, int, int]:
        """The fds the process gets as 0, 1, 2 (the monitor keeps the other ends)."""
        if tty:
            devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            return devnull, devnull, devnull  # the runtime makes a pty; its master comes back to us
        if open_stdin:
            stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
            proc.stdin_fd = stdin_w
            os.set_blocking(stdin_w, False)
        else:
            stdin_r = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        proc.outputs = {out_r: 1, err_r: 2}
        return stdin_r, out_w, err_w

    def _adopt(self, proc: Proc, pid: int, console_fd: int) -> None:
        proc.pid = pid
        if console_fd >= 0:
            os.set_blocking(console_fd, False)
            proc.master = console_fd
            proc.stdin_fd = console_fd
            proc.outputs = {console_fd: 1}
        proc.watch_outputs()
        if proc.stdin_buf:
            proc._flush_stdin()
        status = self.unclaimed.pop(pid, None)
        if status is not None:
            proc.exited(status)
        else:
            self.procs_by_pid[pid] = proc

    def _launch_failed(self, c: Container, proc: Proc) -> None:
        for fd in list(proc.outputs):
            self.reactor.forget(fd)
            os.close(fd)
        proc.outputs = {}
        if proc.stdin_fd >= 0:
            self.reactor.forget(proc.stdin_fd)
            os.close(proc.stdin_fd)
            proc.stdin_fd = -1
        proc.stdin_buf.clear()
        proc._release_stdin()
        if proc.log is not None:
            proc.log.close()
        proc.close_sinks()
        proc.finished = True
        c.cleaning = True

        def cleaned() -> None:
            c.cleaning = False
            if self.containers.get(c.id) is c:
                del self.containers[c.id]
            self._arm_idle()

        # A runtime that failed half-way may leave its state (and an init) behind.
        self._delete_runtime_state(c, cleaned)

    def _spawn_launcher(self, stdio: tuple[int, int, int], done, target, msg: dict) -> None:
        """Fork a launcher that runs `target(msg)` with `stdio` as 0-2; `done(result, fd)` gets its answer."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # the launcher
            try:
                parent.close()
                _become_launcher(child, stdio, target, msg)
            finally:
                os._exit(1)
        child.close()
        for fd in set(stdio):
            os.close(fd)
        parent.setblocking(False)

        def readable() -> None:
            try:
                data, fd = _recv_with_fd(parent)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fd = b"", -1
            self.reactor.forget(parent.fileno())
            parent.close()
            # EOF without an answer: the launcher died (its exit status is in the log).
            done(jsonio.loads(data) if data else {"error": "the launcher died without an answer"}, fd)

        # The answer comes over the socket; the exit status of the launcher itself says nothing more.
        self.helpers[pid] = lambda status: None
        self.reactor.add_reader(parent.fileno(), readable)

    def _container_finished(self, c: Container, proc: Proc) -> None:
        c.cleaning = True
        code = proc.status if proc.status is not None else 255
        c.exit = {"generation": c.generation, "code": code, "finished_at": proc.finished_at, "pid": proc.pid,
                  "oom_killed": code == 137 and self._oom_killed(c)}
        proc.close_sinks()
        if c.state_dir:
            try:
                write_atomic(os.path.join(c.state_dir, "exit.json"), jsonio.dumps(c.exit).encode())
            except OSError as err:
                log(f"{c.id}: recording the exit: {err}")

        def cleaned() -> None:
            c.cleaning = False
            self._emit({"event": "exit", "id": c.id, **c.exit})
            if self.shutting_down:
                self.containers.pop(c.id, None)
            self._arm_idle()

        self._delete_runtime_state(c, cleaned)

    def _delete_runtime_state(self, c: Container, then) -> None:
        if _runtime_kind(c.runtime) == "dockyard":
            try:
                _delete_in_process(self._runtime_root(c.runtime), c.id)
            except Exception as err:  # noqa: BLE001
                log(f"{c.id}: deleting the runtime's state: {err}")
            then()
            return
        argv = [c.runtime, "--root", self._runtime_root(c.runtime), "delete", "--force", c.id]
        pid = _spawn_quiet(argv)
        self.helpers[pid] = lambda status: then()

    def _runtime_root(self, runtime: str) -> str:
        return os.path.join(self.exec_root, "runtime" if _runtime_kind(runtime) == "dockyard" else "runc")

    # --- exec ---------------------------------------------------------------------------------------
    def op_exec(self, conn: Conn, msg: dict) -> None:
        c = self.containers.get(msg["id"])
        if c is None or c.proc is None or c.proc.status is not None:
            conn.fail(msg, f"container {msg['id']} is not running")
            return
        exec_id = msg["exec_id"]
        streaming = conn.role == "" and msg.get("stream")
        tty = bool(msg.get("tty"))
        proc = Proc(self, exec_id, tty)
        if streaming:
            conn.role = "exec"
            conn.stdout, conn.stderr = bool(msg.get("stdout", True)), bool(msg.get("stderr", True))
            conn.stdin = bool(msg.get("stdin"))
            stdio = self._make_stdio(proc, tty, conn.stdin)
            proc.attach(conn)
        else:
            devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            stdio = (devnull, devnull, devnull)
        self.execs[exec_id] = proc

        def finished(p: Proc) -> None:
            self.execs.pop(exec_id, None)
            p.close_sinks(wire.control({"exit": p.status}))
            self._emit({"event": "exec-exit", "id": c.id, "exec_id": exec_id, "code": p.status})
            self._arm_idle()

        proc.on_finished = finished
        request = dict(msg, runtime=c.runtime, runtime_root=self._runtime_root(c.runtime), bundle=c.bundle)

        def done(result: dict, console_fd: int) -> None:
            if "error" in result:
                self.execs.pop(exec_id, None)
                self._launch_failed_exec(proc)
                conn.fail(msg, result["error"])
                if streaming:
                    conn.finish()
                return
            conn.reply(msg, pid=result["pid"])
            self._adopt(proc, result["pid"], console_fd)

        self._spawn_launcher(stdio, done, _launch_exec, request)

    def _launch_failed_exec(self, proc: Proc) -> None:
        for fd in list(proc.outputs):
            self.reactor.forget(fd)
            os.close(fd)
        proc.outputs = {}
        if proc.stdin_fd >= 0:
            self.reactor.forget(proc.stdin_fd)
            os.close(proc.stdin_fd)
            proc.stdin_fd = -1
        proc.stdin_buf.clear()
        proc._release_stdin()
        proc.finished = True
        proc.sinks = []
        self._arm_idle()

    # --- streams --------------------------------------------------------------------------------------
    def op_attach(self, conn: Conn, msg: dict) -> None:
        cid = msg["id"]
        conn.role = "attach"
        conn.cid = cid
        conn.stdin = bool(msg.get("stdin"))
        conn.stdout, conn.stderr = bool(msg.get("stdout", True)), bool(msg.get("stderr", True))
        c = self.containers.get(cid)
        running = c is not None and c.proc is not None and c.proc.status is None and c.proc.pid > 0
        if running:
            conn.reply(msg, running=True)
            c.proc.attach(conn)
            if not c.open_stdin:
                conn.stdin = False
        else:
            self.pending_attach.setdefault(cid, []).append(conn)
            conn.reply(msg, running=False)

    def _stdin(self, conn: Conn, data: bytes) -> None:
        if not conn.stdin or conn.stdin_closed:
            return
        if conn.proc is None:
            conn.pending_stdin += data
        else:
            conn.proc.write_stdin(data)

    def _stream_control(self, conn: Conn, msg: dict) -> None:
        if msg.get("eof"):
            if conn.stdin and not conn.stdin_closed:
                self._stdin_ended(conn)
        elif "resize" in msg and conn.proc is not None:
            h, w = msg["resize"]
            conn.proc.resize(int(h), int(w))

    def _stdin_ended(self, conn: Conn) -> None:
        conn.stdin_closed = True
        proc = conn.proc
        if proc is None:
            return
        if conn.role == "exec":
            proc.close_stdin()
            return
        c = self.containers.get(conn.cid)
        if c is not None and c.stdin_once:
            proc.close_stdin()


# --- the launcher (a forked child of the monitor) ---------------------------------------------------


def _recv_with_fd(sock: socket.socket) -> tuple[bytes, int]:
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 16, socket.CMSG_SPACE(4))
    fd = -1
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fd = int.from_bytes(payload[:4], sys.byteorder, signed=True)
            os.set_inheritable(fd, False)
    return data, fd


def _become_launcher(result: socket.socket, stdio: tuple[int, int, int], target, msg: dict) -> None:
    """In the forked launcher: set up stdio, run `target`, send its answer (and a pty master), exit."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    for i, fd in enumerate(stdio):
        os.dup2(fd, i)
    keep = result.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)
    answer: dict
    console_fd = -1
    try:
        answer, console_fd = target(msg)
    except BaseException as err:  # noqa: BLE001 - every failure goes back as a message
        answer = {"error": _describe(err)}
    data = jsonio.dumps(answer).encode()
    if console_fd >= 0:
        result.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, console_fd.to_bytes(4, sys.byteorder))])
    else:
        result.send(data)
    os._exit(0)


def _describe(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text


def _runtime_kind(runtime: str) -> str:
    return "dockyard" if runtime in ("", "dockyard-runtime", "dockyard") else "external"


class _Quiet:
    """The runtime's log object, for calls made in-process."""

    def warning(self, msg: str) -> None:
        log(msg)

    error = debug = info = warning


def _launch_container(msg: dict) -> tuple[dict, int]:
    cid, bundle = msg["id"], msg["bundle"]
    root = msg["runtime_root"]
    if _runtime_kind(msg.get("runtime", "")) == "dockyard":
        from ..runtime.create import Options, launch

        opts = Options(root=root, bundle=bundle, pid_file=None, console_socket=None, no_pivot=False,
                       no_new_keyring=False, preserve_fds=0, systemd_cgroup=False, log=_Quiet())
        launched = launch(cid, opts, use_fifo=False)
        try:
            if msg.get("loopback"):
                _loopback_up(launched.pid)
        except BaseException:
            os.kill(launched.pid, signal.SIGKILL)
            raise
        launched.channel.send("start")
        launched.channel.close()
        return {"pid": launched.pid}, launched.console_fd
    runtime = msg["runtime"]
    pid_file = os.path.join(bundle, "init.pid")
    log_file = os.path.join(bundle, "runtime.log")
    argv = [runtime, "--root", root, "--log", log_file, "--log-format", "json", "create", "--bundle", bundle,
            "--pid-file", pid_file]
    listener, console_path = _console_listener(bundle) if msg.get("tty") else (None, "")
    if console_path:
        argv += ["--console-socket", console_path]
    _run_external(argv + [cid], log_file)
    console_fd = _receive_console(listener, console_path) if listener is not None else -1
    _run_external([runtime, "--root", root, "--log", log_file, "--log-format", "json", "start", cid], log_file,
                  quiet=True)
    with open(pid_file) as f:
        pid = int(f.read().strip())
    return {"pid": pid}, console_fd


def _launch_exec(msg: dict) -> tuple[dict, int]:
    cid, bundle, exec_id = msg["id"], msg["bundle"], msg["exec_id"]
    process_file = os.path.join(bundle, f"exec-{exec_id}.json")
    pid_file = os.path.join(bundle, f"exec-{exec_id}.pid")
    write_atomic(process_file, jsonio.dumps(msg["process"]).encode())
    listener, console_path = _console_listener(bundle, exec_id) if msg.get("tty") else (None, "")
    try:
        if _runtime_kind(msg.get("runtime", "")) == "dockyard":
            from ..runtime.execute import ExecOptions, execute

            execute(msg["runtime_root"], cid, ExecOptions(process=process_file, detach=True, pid_file=pid_file,
                                                          tty=bool(msg.get("tty")),
                                                          console_socket=console_path or None))
        else:
            log_file = os.path.join(bundle, f"exec-{exec_id}.log")
            argv = [msg["runtime"], "--root", msg["runtime_root"], "--log", log_file, "--log-format", "json",
                    "exec", "--detach", "--pid-file", pid_file, "--process", process_file]
            if console_path:
                argv += ["--tty", "--console-socket", console_path]
            _run_external(argv + [cid], log_file)
        console_fd = _receive_console(listener, console_path) if listener is not None else -1
        with open(pid_file) as f:
            pid = int(f.read().strip())
    finally:
        for path in (process_file, pid_file):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return {"pid": pid}, console_fd


def _console_listener(directory: str, name: str = "") -> tuple[socket.socket, str]:
    """A socket for the runtime to send the pty master to (runc's --console-socket).

    A unix socket path is limited to 107 bytes and bundles can be deeper than
    that, so the launcher (a throwaway process) works in the bundle and the
    socket is named relative to it.
    """
    os.chdir(directory)
    path = f"console{('-' + name[:12]) if name else ''}.sock"
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1)
    return sock, path


def _receive_console(listener: socket.socket, path: str) -> int:
    listener.settimeout(10)
    try:
        conn, _ = listener.accept()
        with conn:
            _data, fd = _recv_with_fd(conn)
    finally:
        listener.close()
        os.unlink(path)
    if fd < 0:
        raise RuntimeError("the runtime did not send the terminal's master")
    return fd


def _run_external(argv: list[str], log_file: str, quiet: bool = False) -> None:
    import subprocess

    stdio = {} if not quiet else {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
                                  "stderr": subprocess.DEVNULL}
    try:
        code = subprocess.call(argv, **stdio)
    except OSError as err:
        raise RuntimeError(f"cannot run the runtime {argv[0]}: {err.strerror}") from None
    if code != 0:
        raise RuntimeError(_external_error(log_file) or f"{os.path.basename(argv[0])} exited with status {code}")


def _external_error(log_file: str) -> str:
    """The last error a runc-compatible runtime logged (JSON lines: {"level":"error","msg":…})."""
    message = ""
    try:
        with open(log_file, "rb") as f:
            for line in f:
                try:
                    entry = jsonio.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                    message = str(entry.get("msg", ""))
    except OSError:
        pass
    return message


def _spawn_quiet(argv: list[str]) -> int:
    """Fork and exec `argv` with no stdio (the caller reaps it); returns its pid."""
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            for i in range(3):
                os.dup2(devnull, i)
            os.closerange(3, 65536)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.close(devnull)
    return pid


def _delete_in_process(root: str, cid: str) -> None:
    from ..errors import NotFound
    from ..runtime.delete import destroy
    from ..runtime.state import Container as RuntimeContainer

    try:
        c = RuntimeContainer.load(root, cid)
    except NotFound:
        return
    destroy(c, _Quiet())


def _loopback_up(pid: int) -> None:
    """Bring up `lo` in the container's new network namespace (runc does this itself)."""
    import struct

    from ..linux import ns as lns

    lns.join(f"/proc/{pid}/ns/net", lns.KIND_FLAG["network"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, request + b"\0" * 22)[:18])[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 0x1) + b"\0" * 22)       # SIOCSIFFLAGS, IFF_UP


# --- the process ------------------------------------------------------------------------------------


def _preload() -> None:
    """Import now what every launcher needs, so a container start pays no imports."""
    from ..linux import seccomp as lseccomp
    from ..runtime import create, delete, execute, init, process, rootfs, seccomp, start  # noqa: F401

    try:
        lseccomp.library()
    except OSError:
        pass
    from ..cgroups import mode

    if mode() == "v2":
        from ..cgroups import v2  # noqa: F401
    else:
        from ..cgroups import v1  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    global _log_fd
    import argparse

    parser = argparse.ArgumentParser(prog="dockyard-monitor", description="Starts and supervises containers for dockyardd.")
    parser.add_argument("--exec-root", required=True)
    ns = parser.parse_args(argv)
    exec_root = os.path.abspath(ns.exec_root)
    os.makedirs(exec_root, mode=0o700, exist_ok=True)
    _log_fd = os.open(os.path.join(exec_root, LOG_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    lock_fd = os.open(os.path.join(exec_root, PID_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another monitor serves this exec root
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)
    from ..linux import proc as lproc

    lproc.set_child_subreaper()
    for name in ("runtime", "runc"):
        os.makedirs(os.path.join(exec_root, name), mode=0o700, exist_ok=True)
    _preload()
    path = os.path.join(exec_root, SOCKET_NAME)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o077)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(64)
    log(f"serving {path}")
    # Ready: whoever started us waits for this byte on stdout.
    try:
        os.write(1, b"ready\n")
    except OSError:
        pass
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull if fd != 2 else _log_fd, fd)
    os.close(devnull)
    Monitor(exec_root).serve(sock)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
