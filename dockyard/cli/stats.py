"""`stats`: live resource usage, with docker's table and arithmetic.

From each `GET /containers/{id}/stats` sample (Engine API reference §5.13):

    CPU %      (Δ cpu_usage.total_usage / Δ system_cpu_usage) × online_cpus × 100
               (Δ against precpu_stats; online_cpus falls back to len(percpu_usage))
    MEM USAGE  usage − total_inactive_file (cgroup v1) or − inactive_file (v2), when smaller than usage
    MEM %      that / limit × 100
    NET I/O    Σ networks.*.rx_bytes / tx_bytes          (decimal units, 3 digits)
    BLOCK I/O  Σ io_service_bytes_recursive by op read / write
    PIDS       pids_stats.current

One thread per container reads its samples (a fresh connection each, as the
docker CLI opens one per container); the table is drawn every half second,
or once with --no-stream. Without names, the containers come from the
list, and `start`/`die` events add and drop them while streaming.
"""

from __future__ import annotations

import threading
import time

from dockyard.cli.flags import BOOL, FORMAT_TABLE_HELP, STRING, Command, Flag
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.main import Cli

STATS_TABLE = ("{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}"
               "\t{{.PIDs}}")
STATS_HEADERS = {
    "Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
NO_VALUE = "--"
FIRST_SAMPLE_TIMEOUT = 2.0  # the docker CLI marks a container "--" when no sample came in this time


# --- the arithmetic ---------------------------------------------------------------------------


def cpu_percent(sample: dict[str, Any]) -> float:
    cpu = sample.get("cpu_stats") or {}
    pre = sample.get("precpu_stats") or {}
    cpu_delta = float((cpu.get("cpu_usage") or {}).get("total_usage", 0)) - \
        float((pre.get("cpu_usage") or {}).get("total_usage", 0))
    system_delta = float(cpu.get("system_cpu_usage", 0) or 0) - float(pre.get("system_cpu_usage", 0) or 0)
    online = float(cpu.get("online_cpus", 0) or 0)
    if online == 0.0:
        online = float(len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []))
    if system_delta > 0.0 and cpu_delta > 0.0:
        return (cpu_delta / system_delta) * online * 100.0
    return 0.0


def memory_usage(memory: dict[str, Any]) -> float:
    usage = memory.get("usage", 0) or 0
    stats = memory.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
        return float(usage - stats["total_inactive_file"])
    inactive = stats.get("inactive_file", 0)
    if inactive < usage:
        return float(usage - inactive)
    return float(usage)


def memory_percent(limit: float, used: float) -> float:
    return used / limit * 100.0 if limit != 0 else 0.0


def block_io(blkio: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    for entry in (blkio or {}).get("io_service_bytes_recursive") or []:
        op = entry.get("op") or ""
        if op[:1] in ("r", "R"):
            read += entry.get("value", 0)
        elif op[:1] in ("w", "W"):
            write += entry.get("value", 0)
    return read, write


def network_io(networks: dict[str, Any] | None) -> tuple[float, float]:
    rx = tx = 0.0
    for net in (networks or {}).values():
        rx += float(net.get("rx_bytes", 0))
        tx += float(net.get("tx_bytes", 0))
    return rx, tx


class Entry:
    """One row: the latest numbers for a container (or its error)."""

    def __init__(self, container: str):
        self.container = container
        self.name = ""
        self.id = ""
        self.cpu = self.memory = self.limit = self.memory_pct = 0.0
        self.rx = self.tx = self.read = self.write = 0.0
        self.pids = 0
        self.invalid = False
        self.error: str | None = None
        self.first = threading.Event()
        self.lock = threading.Lock()

    def update(self, sample: dict[str, Any]) -> None:
        memory = sample.get("memory_stats") or {}
        used = memory_usage(memory)
        limit = float(memory.get("limit", 0) or 0)
        read, write = block_io(sample.get("blkio_stats") or {})
        rx, tx = network_io(sample.get("networks"))
        with self.lock:
            self.name = sample.get("name", "")
            self.id = sample.get("id", "")
            self.cpu = cpu_percent(sample)
            self.memory, self.limit, self.memory_pct = used, limit, memory_percent(limit, used)
            self.read, self.write, self.rx, self.tx = float(read), float(write), rx, tx
            self.pids = int((sample.get("pids_stats") or {}).get("current", 0) or 0)
            self.error = None
            self.invalid = False

    def fail(self, message: str, reset: bool = False) -> None:
        with self.lock:
            self.error = message
            self.invalid = True
            if reset:
                self.cpu = self.memory = self.limit = self.memory_pct = 0.0
                self.rx = self.tx = self.read = self.write = 0.0
                self.pids = 0

    def context(self, trunc: bool) -> Any:
        from dockyard.cli.format import bytes_size, human_size
        from dockyard.cli.template import Context

        with self.lock:
            invalid = self.invalid
            fields = {
                "BlockIO": NO_VALUE if invalid else f"{human_size(self.read, 3)} / {human_size(self.write, 3)}",
                "CPUPerc": NO_VALUE if invalid else f"{self.cpu:.2f}%",
                "Container": self.container,
                "ID": self.id.rpartition(":")[2][:12] if trunc else self.id,
                "MemPerc": NO_VALUE if invalid else f"{self.memory_pct:.2f}%",
                "MemUsage": "-- / --" if invalid else f"{bytes_size(self.memory)} / {bytes_size(self.limit)}",
                "Name": self.name[1:] if len(self.name) > 1 else NO_VALUE,
                "NetIO": NO_VALUE if invalid else f"{human_size(self.rx, 3)} / {human_size(self.tx, 3)}",
                "PIDs": NO_VALUE if invalid else str(self.pids),
            }
        ctx = Context(fields)
        ctx.type_name = "*container.statsContext"
        return ctx


def collect(host: str, entry: Entry, stream: bool) -> None:
    """Read `entry`'s samples (one, or until the stream ends) on a connection of its own."""
    from dockyard.client.api import ApiError, EngineClient
    from dockyard.jsonio import loads

    client = EngineClient(host)
    try:
        response = client.container_stats(entry.container, stream)
        for line in response.iter_lines():
            try:
                entry.update(loads(line))
            except (ValueError, TypeError, AttributeError) as exc:
                entry.fail(str(exc))
            entry.first.set()
            if not stream:
                break
        response.close()
    except ApiError as exc:
        entry.fail(f"Error response from daemon: {exc.message}")
    except Exception as exc:  # noqa: BLE001 - a broken stream makes the row "--", as in docker
        entry.fail(str(exc))
    finally:
        entry.first.set()
        client.close()


class Board:
    """The containers being watched, in the order they were added."""

    def __init__(self, host: str, stream: bool):
        self.host = host
        self.stream = stream
        self.entries: list[Entry] = []
        self.lock = threading.Lock()

    def add(self, container: str) -> Entry | None:
        with self.lock:
            if any(e.container == container for e in self.entries):
                return None
            entry = Entry(container)
            self.entries.append(entry)
        threading.Thread(target=collect, args=(self.host, entry, self.stream), daemon=True).start()
        return entry

    def remove(self, container: str) -> None:
        with self.lock:
            self.entries = [e for e in self.entries if e.container != container]

    def snapshot(self) -> list[Entry]:
        with self.lock:
            return list(self.entries)

    def wait_first(self, entries: list[Entry]) -> None:
        deadline = time.monotonic() + FIRST_SAMPLE_TIMEOUT
        for entry in entries:
            if not entry.first.wait(max(0.0, deadline - time.monotonic())):
                entry.fail("timeout waiting for stats", reset=True)


def _watch_events(cli: Cli, board: Board, all_containers: bool, stop: threading.Event, response: Any) -> None:
    from dockyard.jsonio import loads

    try:
        for line in response.iter_lines():
            if stop.is_set():
                return
            event = loads(line)
            action = event.get("Action") or event.get("status")
            container = ((event.get("Actor") or {}).get("ID") or event.get("id") or "")[:12]
            if action == "start" or (action == "create" and all_containers):
                board.add(container)
            elif action == "die" and not all_containers:
                board.remove(container)
    except Exception:  # noqa: BLE001, S110 - the event feed ending only stops the updates
        pass


def run_stats(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.format import Formatter
    from dockyard.client.api import filters_param

    stream = not opts["no_stream"]
    client = cli.client()
    board = Board(client.host, stream)
    stop = threading.Event()
    show_all = not args
    if show_all:
        # like docker: listen for container events first, so none starting meanwhile is missed
        events = client.request("GET", "/events", [("filters", filters_param({"type": ["container"]}))])
        if stream:
            threading.Thread(target=_watch_events, args=(cli, board, opts["all"], stop, events), daemon=True).start()
        for container in client.containers(all=opts["all"]):
            board.add(container["Id"][:12])
        board.wait_first(board.snapshot())
        if not stream:
            events.close()
    else:
        for name in args:
            board.add(name)
        entries = board.snapshot()
        board.wait_first(entries)
        errors = [e.error for e in entries if e.error]
        if errors:
            raise CliError("\n".join(errors))
    fmt = opts["format"] or "table"
    formatter = Formatter(fmt, STATS_TABLE, STATS_HEADERS)
    trunc = not opts["no_trunc"]
    out = cli.out
    try:
        while True:
            entries = board.snapshot()
            text = formatter.render([e.context(trunc) for e in entries])
            if stream:
                # cursor home, each line erased to its end, the rest of the screen cleared
                text = "\033[H" + "".join(f"{line} \033[K\n" for line in text.split("\n")) + "\033[J"
            out.write(text)
            out.flush()
            if not stream or (not entries and not show_all):
                return 0
            time.sleep(0.5)
    finally:
        stop.set()


STATS = Command(
    ("stats",), "[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource usage statistics",
    [
        Flag("all", "a", BOOL, "Show all containers (default shows just running)"),
        Flag("format", "", STRING, FORMAT_TABLE_HELP),
        Flag("no-stream", "", BOOL, "Disable streaming stats and only pull the first result"),
        Flag("no-trunc", "", BOOL, "Do not truncate output"),
    ],
    run_stats, aliases=("container stats", "stats"),
)
