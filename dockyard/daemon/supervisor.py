"""dockyardd's side of the monitor protocol (monitor.py draws it): connect, ask, stream.

`MonitorClient` lives on the daemon's event loop. It starts the monitor when
none answers on `<exec-root>/monitor.sock` (a detached process of its own,
which outlives the daemon), keeps one control connection for requests and
events, and opens one extra connection per attach or attached exec.

If the control connection breaks (the monitor died), the next request
reconnects, starting a new monitor; `on_connect` is then called with what the
new monitor knows (nothing), so the service can mark lost containers exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable

from ..errors import EngineError, Unavailable
from . import monitorwire as wire
from .monitor import SOCKET_NAME

log = logging.getLogger("dockyard.daemon")

START_TIMEOUT = 30.0


class MonitorError(EngineError):
    """The monitor refused or failed a request; `message` is its reason."""


class MonitorStream:
    """A stream connection after its request was answered: frames in, frames out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, decoder: wire.Decoder,
                 pending: list[tuple[int, bytes]]):
        self._reader = reader
        self._writer = writer
        self._decoder = decoder
        self._pending = pending

    async def read_frames(self) -> list[tuple[int, bytes]]:
        """The next frames from the monitor; [] once it closed the stream."""
        if self._pending:
            frames, self._pending = self._pending, []
            return frames
        while True:
            try:
                data = await self._reader.read(1 << 16)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                return []
            frames = self._decoder.feed(data)
            if frames:
                return frames

    async def send(self, channel: int, data: bytes) -> None:
        if self._writer.is_closing():
            return
        self._writer.write(wire.frame(channel, data))
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()

    async def send_control(self, obj: dict) -> None:
        await self.send(wire.CONTROL, wire.control(obj)[wire.HEADER:])

    async def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


class MonitorClient:
    def __init__(self, exec_root: str, on_event: Callable[[dict], None],
                 on_connect: Callable[[list[dict]], Awaitable[None]] | None = None):
        self.exec_root = exec_root
        self.socket_path = os.path.join(exec_root, SOCKET_NAME)
        self.on_event = on_event
        self.on_connect = on_connect
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: dict[int, asyncio.Future] = {}
        self._seq = itertools.count(1)
        self._connecting: asyncio.Lock | None = None
        self._read_task: asyncio.Task | None = None
        self._closing = False
        self.monitor_pid = 0

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, spawn: bool = True) -> list[dict] | None:
        """Make sure the control connection is up; returns the monitor's containers when it was (re)made.

        With `spawn=False` an absent monitor is not started (None is returned).
        """
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.connected:
                return None
            try:
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
            except (FileNotFoundError, ConnectionRefusedError):
                if not spawn:
                    return None
                await asyncio.get_running_loop().run_in_executor(None, self._spawn)
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
            self._reader, self._writer = reader, writer
            self._read_task = asyncio.ensure_future(self._read_loop(reader))
            reply = await self._ask("hello")
            self.monitor_pid = reply.get("pid", 0)
            containers = reply.get("containers") or []
        if self.on_connect is not None:
            await self.on_connect(containers)
        return containers

    def _spawn(self) -> None:
        """Start a monitor for this exec root and wait until it serves (runs in a worker thread)."""
        os.makedirs(self.exec_root, mode=0o700, exist_ok=True)
        argv = [sys.executable, "-m", "dockyard.daemon.monitor", "--exec-root", self.exec_root]
        # subprocess forks and execs in C (no Python runs in the child), which is
        # safe from a threaded process; the monitor starts its own session.
        log_path = os.path.join(self.exec_root, "monitor.log")
        with open(log_path, "ab") as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                    start_new_session=True, close_fds=True)
        try:
            line = proc.stdout.readline()
        finally:
            proc.stdout.close()
        if line.strip() != b"ready":
            code = proc.poll()
            if code == 0 and os.path.exists(self.socket_path):
                return  # another monitor was already serving this exec root
            raise Unavailable(f"the container monitor did not start (exit status {code}); see {log_path}")
        # The monitor keeps running in its own session; reap it when it exits
        # so it never lingers as a zombie of this daemon.
        import threading

        threading.Thread(target=proc.wait, name="dockyardd-monitor-reaper", daemon=True).start()

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        decoder = wire.Decoder()
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                for channel, payload in decoder.feed(data):
                    if channel != wire.CONTROL:
                        continue
                    msg = wire.parse_control(payload)
                    if "event" in msg:
                        try:
                            self.on_event(msg)
                        except Exception:  # noqa: BLE001
                            log.exception("handling monitor event %s", msg)
                        continue
                    future = self._replies.pop(msg.get("seq"), None)
                    if future is not None and not future.done():
                        future.set_result(msg)
        except (ConnectionError, OSError, wire.ProtocolError) as err:
            log.warning("monitor connection failed: %s", err)
        finally:
            writer = self._writer
            self._writer = None
            self._reader = None
            if writer is not None:
                writer.close()
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(Unavailable("the container monitor went away"))
            self._replies.clear()
            log.info("monitor connection closed")
            if not self._closing:
                # The monitor died: a new one is started, and what the old one
                # supervised is accounted for (on_connect) at once, not at the next request.
                asyncio.get_running_loop().call_later(0.2, lambda: asyncio.ensure_future(self._reconnect()))

    async def _reconnect(self) -> None:
        if self._closing or self.connected:
            return
        try:
            await self.connect()
        except Exception as err:  # noqa: BLE001 - the next request tries again
            log.error("restarting the container monitor failed: %s", err)

    async def _ask(self, op: str, **fields) -> dict:
        if self._writer is None:
            raise Unavailable("not connected to the container monitor")
        seq = next(self._seq)
        future = asyncio.get_running_loop().create_future()
        self._replies[seq] = future
        self._writer.write(wire.control(dict(fields, op=op, seq=seq)))
        await self._writer.drain()
        reply = await future
        if "error" in reply:
            raise MonitorError(reply["error"])
        return reply

    async def request(self, op: str, **fields) -> dict:
        """One request on the control connection (connecting, or starting the monitor, first)."""
        if not self.connected:
            await self.connect()
        return await self._ask(op, **fields)

    async def open_stream(self, op: str, **fields) -> tuple[dict, MonitorStream]:
        """A new connection carrying one attach or exec: its reply, and the stream."""
        if not self.connected:
            await self.connect()
        reader, writer = await asyncio.open_unix_connection(self.socket_path)
        writer.write(wire.control(dict(fields, op=op, seq=0)))
        await writer.drain()
        decoder = wire.Decoder()
        pending: list[tuple[int, bytes]] = []
        reply = None
        while reply is None:
            data = await reader.read(1 << 16)
            if not data:
                writer.close()
                raise Unavailable("the container monitor closed the stream before answering")
            frames = decoder.feed(data)
            while frames:
                channel, payload = frames.pop(0)
                if channel == wire.CONTROL and reply is None:
                    reply = wire.parse_control(payload)
                    pending = frames
                    break
        if "error" in reply:
            writer.close()
            raise MonitorError(reply["error"])
        return reply, MonitorStream(reader, writer, decoder, pending)

    async def close(self) -> None:
        self._closing = True
        writer = self._writer
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        if self._read_task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._read_task, 2)
