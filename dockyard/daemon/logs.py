"""Container logs in Docker's json-file format: the monitor writes them, the daemon reads them.

    <data-root>/containers/<id>/<id>-json.log      the current file
                                <id>-json.log.1    rotated (newest first), up to max-file - 1 of them

One JSON object per line, as dockerd writes it:

    {"log":"hello\\n","stream":"stdout","time":"2026-11-27T20:32:34.581981030Z"}

Output is split at newlines; a line longer than `PARTIAL` bytes, or the last
bytes before the stream ends, is stored without its newline (docker's partial
messages).  Times are RFC 3339 in UTC with nine fractional digits, always,
so that comparing the strings compares the instants (`since`/`until` work on
the text).  Rotation (`--log-opt max-size=10m --log-opt max-file=3`) renames
`log` -> `log.1` -> `log.2` ... before a write would exceed max-size.

The writer runs in the monitor, so logging goes on while dockyardd is down;
it keeps no buffer of its own across writes except an unfinished line.
"""

from __future__ import annotations

import os
import time

from .. import jsonio
from ..errors import InvalidArgument, NotSupported

PARTIAL = 16 << 10
STREAMS = ("stdout", "stderr")

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4}


def timestamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def parse_size(text: str) -> int:
    """docker's --log-opt max-size values: `10m`, `1k`, `512` (decimal units, as docker's)."""
    value = text.strip().lower()
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = value[len(number):]
    try:
        size = float(number)
    except ValueError:
        raise InvalidArgument(f"invalid size: '{text}'") from None
    if unit not in _UNITS or size < 0:
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(size * _UNITS[unit])


# dockerd's other built-in logging drivers: known names, refused as not supported yet rather than unknown.
OTHER_BUILTIN_DRIVERS = ("awslogs", "fluentd", "gcplogs", "gelf", "journald", "local", "logentries", "splunk",
                         "syslog")


def log_options(log_config: dict | None) -> tuple[int, int]:
    """(max_size bytes or 0, max_file) from HostConfig.LogConfig; bad options are InvalidArgument."""
    log_config = log_config or {}
    kind = log_config.get("Type") or "json-file"
    if kind == "none":
        return 0, 1  # dockerd checks no options for it
    if kind != "json-file":
        if kind in OTHER_BUILTIN_DRIVERS:
            raise NotSupported(f"the {kind} logging driver is not supported yet",
                               hint="use json-file (the default) or none")
        raise InvalidArgument(f'error looking up logging plugin {kind}: plugin "{kind}" not found')  # dockerd's
    opts = log_config.get("Config") or {}
    for key in opts:
        if key not in ("max-size", "max-file", "compress", "labels", "env", "tag", "mode", "env-regex",
                       "labels-regex"):
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    max_size = parse_size(opts["max-size"]) if opts.get("max-size") not in (None, "", "-1") else 0
    max_file = 1
    if opts.get("max-file"):
        try:
            max_file = int(opts["max-file"])
        except ValueError:
            raise InvalidArgument(f"invalid value for max-file: {opts['max-file']}") from None
        if max_file < 1:
            raise InvalidArgument("max-file cannot be less than 1")
        if max_size == 0:
            raise InvalidArgument("max-file cannot be set when max-size is not set")
    return max_size, max_file


def rotated_paths(path: str, max_file: int = 1000) -> list[str]:
    """The log files of a container, oldest first (the current one last)."""
    out = []
    for n in range(max_file, 0, -1):
        candidate = f"{path}.{n}"
        if os.path.exists(candidate):
            out.append(candidate)
    out.append(path)
    return out


class JsonFileWriter:
    """Appends a container's output to its json-file log (in the monitor)."""

    __slots__ = ("path", "max_size", "max_file", "fd", "size", "_partial")

    def __init__(self, path: str, max_size: int = 0, max_file: int = 1):
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.fd = -1
        self.size = 0
        self._partial = {"stdout": b"", "stderr": b""}
        self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_file > 1:
            for n in range(self.max_file - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{n - 1}", f"{self.path}.{n}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        else:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = 0

    def _emit(self, lines: list[bytes]) -> None:
        if not lines:
            return
        if self.max_size and self.size + sum(len(x) for x in lines) > self.max_size:
            # One record never straddles two files: rotate at record boundaries.
            for line in lines:
                if self.size and self.size + len(line) > self.max_size:
                    self._rotate()
                self._write(line)
            return
        self._write(b"".join(lines))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)

    def write(self, stream: str, data: bytes) -> None:
        """Log `data` from `stream` ("stdout"/"stderr"): complete lines now, the rest when finished."""
        now = timestamp()
        buf = self._partial[stream] + data
        records = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            records.append(_record(buf[start:end + 1], stream, now))
            start = end + 1
        rest = buf[start:]
        while len(rest) >= PARTIAL:
            records.append(_record(rest[:PARTIAL], stream, now))
            rest = rest[PARTIAL:]
        self._partial[stream] = rest
        self._emit(records)

    def finish(self, stream: str) -> None:
        """The stream ended: store its unfinished last line as it is."""
        rest = self._partial[stream]
        if rest:
            self._partial[stream] = b""
            self._emit([_record(rest, stream, timestamp())])

    def close(self) -> None:
        for stream in STREAMS:
            self.finish(stream)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _record(data: bytes, stream: str, now: str) -> bytes:
    text = data.decode("utf-8", "replace")
    return ('{"log":' + jsonio.dumps(text) + ',"stream":"' + stream + '","time":"' + now + '"}\n').encode()


# --- reading (daemon side) ----------------------------------------------------------------------


class Entry:
    __slots__ = ("stream", "data", "time")

    def __init__(self, stream: int, data: bytes, time_text: str):
        self.stream = stream  # 1 stdout, 2 stderr
        self.data = data
        self.time = time_text


def parse(line: bytes) -> Entry | None:
    try:
        obj = jsonio.loads(line)
    except ValueError:
        return None  # a torn last line (the writer is mid-write): the follower retries it
    if not isinstance(obj, dict):
        return None
    return Entry(2 if obj.get("stream") == "stderr" else 1, str(obj.get("log", "")).encode(),
                 str(obj.get("time", "")))


class LogQuery:
    """What `GET /containers/{id}/logs` asks for."""

    __slots__ = ("stdout", "stderr", "since", "until", "tail", "timestamps")

    def __init__(self, stdout: bool = True, stderr: bool = True, since: str = "", until: str = "",
                 tail: int = -1, timestamps: bool = False):
        self.stdout = stdout
        self.stderr = stderr
        self.since = since      # timestamp() text or ""
        self.until = until
        self.tail = tail        # -1: all
        self.timestamps = timestamps

    def wants(self, entry: Entry) -> bool:
        if entry.stream == 1 and not self.stdout:
            return False
        if entry.stream == 2 and not self.stderr:
            return False
        if self.since and entry.time < self.since:
            return False
        return True

    def render(self, entry: Entry) -> bytes:
        if self.timestamps:
            return entry.time.encode() + b" " + entry.data
        return entry.data

    def past_until(self, entry: Entry) -> bool:
        return bool(self.until) and entry.time > self.until


class LogReader:
    """Reads a container's log files from the start, then (when following) what is appended.

    `read_available()` returns the complete records written since the last
    call; it notices rotation (the current file was renamed away) and moves
    on to the new file after finishing the old one.
    """

    def __init__(self, path: str, query: LogQuery):
        self.path = path
        self.query = query
        self._files = rotated_paths(path)
        self._fd = -1
        self._ino = None
        self._pending = b""
        self.done = False   # `until` passed

    def _open_next(self) -> bool:
        while self._files:
            candidate = self._files.pop(0)
            try:
                self._fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            self._ino = os.fstat(self._fd).st_ino
            self._pending = b""
            return True
        return False

    def _read_chunk(self) -> bytes:
        if self._fd < 0 and not self._open_next():
            # The current file may not exist yet (nothing logged): look again next time.
            self._files = [self.path]
            return b""
        data = os.read(self._fd, 1 << 20)
        if data:
            return data
        if self._files:  # an older file is finished: go on to the next one
            os.close(self._fd)
            self._fd = -1
            return self._read_chunk()
        try:
            if os.stat(self.path).st_ino != self._ino:  # rotated under us
                os.close(self._fd)
                self._fd = -1
                self._files = [self.path]
                return self._read_chunk()
        except FileNotFoundError:
            pass
        return b""

    def read_available(self) -> list[Entry]:
        out = []
        while not self.done:
            data = self._read_chunk()
            if not data:
                break
            buf = self._pending + data
            lines = buf.split(b"\n")
            self._pending = lines.pop()
            for line in lines:
                entry = parse(line)
                if entry is None:
                    continue
                if self.query.past_until(entry):
                    self.done = True
                    break
                if self.query.wants(entry):
                    out.append(entry)
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def tail_entries(entries: list[Entry], tail: int) -> list[Entry]:
    if tail < 0:
        return entries
    return entries[len(entries) - tail:] if tail else []
