"""Exec: more processes in a running container (`docker exec`).

An exec is created (its configuration kept in memory, as dockerd keeps
them), then started once: attached, its stdio travels over its own monitor
connection (the hijacked client's bytes are pumped to and from it, and the
stream ends with the exit code), or detached (the monitor starts it and
reports its exit as an event). The process spec is the container's own
(`config.json`: capabilities, seccomp, rlimits, no_new_privileges) with the
exec's command, environment, working directory, user and terminal.

A start that fails after the hijack is reported the way dockerd does: the
message goes into the stream as output, and the exit code is 126.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

from .. import jsonio
from ..errors import Conflict, InvalidArgument, NotFound
from . import ocispec
from .containers import ContainerService, Ctr, runtime_error_text
from .stdio import parse_detach_keys, pump_session
from .supervisor import MonitorError

EXEC_FAILED = 126
# Finished execs are forgotten after this long (dockerd keeps them until the container goes).
KEEP_FINISHED = 600.0


class Exec:
    __slots__ = ("id", "ctr", "cmd", "tty", "stdin", "stdout", "stderr", "detach_keys", "env", "workdir",
                 "user", "privileged", "running", "exit_code", "pid", "started", "done", "finished_at", "size")

    def __init__(self, exec_id: str, ctr: Ctr, body: dict):
        self.id = exec_id
        self.ctr = ctr
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd or not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd):
            raise InvalidArgument("No exec command specified")
        self.cmd = list(cmd)
        self.tty = bool(body.get("Tty"))
        self.stdin = bool(body.get("AttachStdin"))
        self.stdout = bool(body.get("AttachStdout"))
        self.stderr = bool(body.get("AttachStderr"))
        self.detach_keys = body.get("DetachKeys") or ""
        self.env = list(body.get("Env") or [])
        self.workdir = body.get("WorkingDir") or ""
        if self.workdir and not self.workdir.startswith("/"):
            raise InvalidArgument(f"the working directory '{self.workdir}' is invalid, it needs to be an absolute path")
        self.user = body.get("User") or ""
        self.privileged = bool(body.get("Privileged"))
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.started = False
        self.done = asyncio.get_running_loop().create_future()
        self.finished_at = 0.0
        self.size: tuple[int, int] | None = None  # a resize that came before the process existed

    @property
    def command_line(self) -> str:
        return " ".join(self.cmd)


class ExecService:
    def __init__(self, containers: ContainerService):
        from .health import HealthMonitor

        self.containers = containers
        self.execs: dict[str, Exec] = {}
        containers.exec_exit_handler = self._on_exit
        containers.health = HealthMonitor(containers, self)  # health checks are execs

    def get(self, exec_id: str) -> Exec:
        ex = self.execs.get(exec_id)
        if ex is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return ex

    def create(self, ref: str, body: dict) -> str:
        ctr = self.containers.get(ref)
        if not isinstance(body, dict):
            raise InvalidArgument("exec configuration must be a JSON object")
        if not ctr.running:
            raise Conflict(f"Container {ctr.id} is not running")
        if ctr.state["Paused"]:
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")  # as given
        if ctr.state["Restarting"]:
            raise Conflict(f"Container {ctr.id} is restarting, wait until the container is running")
        self._forget_old()
        ex = Exec(os.urandom(32).hex(), ctr, body)
        self.execs[ex.id] = ex
        ctr.exec_ids.append(ex.id)
        self.containers.emit(ctr, "exec_create: " + ex.command_line + " ", execID=ex.id)
        return ex.id

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - KEEP_FINISHED
        for exec_id, ex in list(self.execs.items()):
            if ex.finished_at and ex.finished_at < cutoff or ex.ctr.id not in self.containers._ctrs:
                del self.execs[exec_id]
                with contextlib.suppress(ValueError):
                    ex.ctr.exec_ids.remove(exec_id)

    def process_spec(self, ex: Exec) -> dict:
        """The OCI process for `ex`: the container's, with the exec's command and settings (worker thread)."""
        ctr = ex.ctr
        bundle = self.containers._bundle(ctr.id)
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            spec = jsonio.loads(f.read())
        process = dict(spec.get("process") or {})
        process["args"] = list(ex.cmd)
        process["terminal"] = ex.tty
        process.pop("consoleSize", None)
        if ex.tty and ex.size:
            process["consoleSize"] = {"height": ex.size[0], "width": ex.size[1]}
        process["env"] = ocispec.environment(ctr.rec["Config"], ex.tty, spec.get("hostname") or ctr.id[:12], ex.env)
        if ex.workdir:
            process["cwd"] = ex.workdir
        if ex.user:
            process["user"] = ocispec.resolve_user(spec["root"]["path"], ex.user)
        if ex.privileged:
            caps = ocispec.capabilities({"Privileged": True})
            process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        return process

    def _check_start(self, ex: Exec) -> None:
        if ex.started:
            raise Conflict(f"Error: Exec command {ex.id} has already run")
        if not ex.ctr.running:
            raise Conflict(f"Container {ex.ctr.id} is not running")
        if ex.ctr.state["Paused"]:
            raise Conflict(f"Container {ex.ctr.id} is paused, unpause the container before exec")

    async def start_detached(self, exec_id: str) -> None:
        ex = self.get(exec_id)
        self._check_start(ex)
        ex.started = True
        process = await self._process(ex)
        try:
            reply = await self.containers.monitor.request("exec", id=ex.ctr.id, exec_id=ex.id, process=process,
                                                          tty=ex.tty)
        except MonitorError as err:
            self._finished(ex, EXEC_FAILED)
            raise InvalidArgument(runtime_error_text("OCI runtime exec failed: exec failed", err.message)) from None
        ex.running, ex.pid = True, reply.get("pid", 0)
        self.containers.emit(ex.ctr, "exec_start: " + ex.command_line + " ", execID=ex.id)

    async def _process(self, ex: Exec) -> dict:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.process_spec, ex)

    def prepare_attached(self, exec_id: str) -> Exec:
        """Checks before the hijack (errors are still HTTP statuses here)."""
        ex = self.get(exec_id)
        self._check_start(ex)
        ex.started = True
        return ex

    async def run_attached(self, ex: Exec, client) -> None:
        """The hijacked session of an attached exec: start it, pump its stdio, end with its exit code."""
        from .monitorwire import CONTROL, STDOUT, frame

        async def fail(message: str) -> None:
            text = (message + "\r\n").encode()
            await client.write(text if ex.tty else frame(STDOUT, text))
            self._finished(ex, EXEC_FAILED)

        try:
            process = await self._process(ex)
        except Exception as err:  # noqa: BLE001 - e.g. an unknown user: reported in the stream, like dockerd
            await fail(str(err))
            return
        try:
            reply, stream = await self.containers.monitor.open_stream(
                "exec", id=ex.ctr.id, exec_id=ex.id, process=process, tty=ex.tty, stream=True,
                stdin=ex.stdin, stdout=ex.stdout or ex.tty, stderr=ex.stderr or ex.tty)
        except MonitorError as err:
            await fail(runtime_error_text("OCI runtime exec failed: exec failed", err.message))
            return
        ex.running, ex.pid = True, reply.get("pid", 0)
        if ex.tty and ex.size and process.get("consoleSize") != {"height": ex.size[0], "width": ex.size[1]}:
            await self.resize(ex.id, *ex.size)  # it came while the process was being started
        self.containers.emit(ex.ctr, "exec_start: " + ex.command_line + " ", execID=ex.id)
        exit_code: list[int] = []

        class Capture:
            """Takes the exit code out of the monitor's stream on the way to the client."""

            async def read_frames(self):
                frames = await stream.read_frames()
                for channel, payload in frames:
                    if channel == CONTROL:
                        msg = jsonio.loads(payload)
                        if "exit" in msg:
                            exit_code.append(int(msg["exit"]))
                return frames

        keys = parse_detach_keys(ex.detach_keys) if ex.stdin and ex.tty else b""
        await pump_session(stream, Capture(), client, ex.tty, ex.stdin, keys, closes_stdin=True)
        if exit_code:
            self._finished(ex, exit_code[0])

    def _on_exit(self, msg: dict) -> None:
        ex = self.execs.get(msg.get("exec_id", ""))
        if ex is not None:
            self._finished(ex, int(msg.get("code", 255)))

    async def run_captured(self, ctr: Ctr, cmd: list[str], timeout: float, limit: int) -> tuple[int, bytes] | None:
        """An exec the engine runs for itself (a health probe): its exit code and the first `limit` bytes of
        its stdout and stderr together, or None when it ran past `timeout` seconds (it is killed)."""
        from .monitorwire import CONTROL

        ex = self.get(self.create(ctr.id, {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True}))
        ex.started = True
        process = await self._process(ex)
        reply, stream = await self.containers.monitor.open_stream(
            "exec", id=ctr.id, exec_id=ex.id, process=process, tty=False, stream=True, stdin=False, stdout=True,
            stderr=True)
        ex.running, ex.pid = True, reply.get("pid", 0)
        self.containers.emit(ctr, "exec_start: " + ex.command_line + " ", execID=ex.id)
        output = bytearray()
        code: list[int] = []

        async def collect() -> None:
            while True:
                frames = await stream.read_frames()
                if not frames:
                    return
                for channel, payload in frames:
                    if channel == CONTROL:
                        message = jsonio.loads(payload)
                        if "exit" in message:
                            code.append(int(message["exit"]))
                    elif len(output) < limit:
                        output.extend(payload[:limit - len(output)])

        try:
            await asyncio.wait_for(collect(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if ex.pid:
                    os.kill(ex.pid, signal.SIGKILL)
            return None
        finally:
            await stream.close()
        self._finished(ex, code[0] if code else 255)
        return ex.exit_code, bytes(output)

    def _finished(self, ex: Exec, code: int) -> None:
        if ex.exit_code is not None and not ex.running:
            return
        ex.running = False
        ex.exit_code = code
        ex.finished_at = time.monotonic()
        if not ex.done.done():
            ex.done.set_result(code)
        self.containers.emit(ex.ctr, "exec_die", execID=ex.id, exitCode=str(code))

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        ex = self.get(exec_id)
        ex.size = (height, width)
        if not ex.running:
            return  # applied when the process starts (the CLI resizes right after its start request)
        with contextlib.suppress(MonitorError):
            await self.containers.monitor.request("resize", exec_id=ex.id, h=height, w=width)
