"""`dockyardd`: the engine process, with a command line in dockerd's style.

It joins the two halves: the daemon's services (dockyard.daemon.Daemon) and
the API server in front of them.

    dockyardd [-H unix:///run/dockyard.sock] [--data-root DIR] [--exec-root DIR]
              [-p/--pidfile FILE] [-G/--group GROUP] [--default-runtime dockyard-runtime|runc]
              [-b/--bridge IFNAME] [-D/--debug]

Start-up order matters: the pid file lock decides which of two daemons
started at once wins; only the winner touches the socket (replacing a stale
one left by a crash). SIGTERM and SIGINT stop the daemon cleanly: listeners
closed, streams cut, socket and pid file removed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dockyard.daemon import config as defaults
from dockyard.daemon.config import DaemonConfig
from dockyard.errors import EngineError, InvalidArgument

log = logging.getLogger("dockyard.daemon")


def _bridge_name(text: str) -> str:
    if not (0 < len(text) <= 15) or "/" in text or text.strip() != text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"invalid interface name {text!r} (1 to 15 characters, no '/' or spaces)")
    return text


def socket_path_from_host(host: str) -> str:
    """`unix:///run/x.sock` (or a bare path) -> `/run/x.sock`; TCP is refused."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
    elif host.startswith("/"):
        path = host
    elif host.startswith(("tcp://", "http://", "https://")) or ":" in host:
        raise InvalidArgument(
            f"refusing to listen on {host}: the API gives root on this machine to whoever reaches it, "
            "and serving it over TCP without TLS would hand that to the network",
            hint="use a unix socket: -H unix:///run/dockyard.sock",
        )
    else:
        raise InvalidArgument(f"invalid host {host!r}: expected unix://PATH")
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid host {host!r}: the socket path must be absolute")
    return path


def parse_args(argv: list[str]) -> DaemonConfig:
    from dockyard.api.versions import ENGINE_VERSION

    parser = argparse.ArgumentParser(
        prog="dockyardd", description="A container engine serving the Docker Engine API on a unix socket."
    )
    parser.add_argument("-H", "--host", action="append", default=None,
                        help=f"daemon socket to listen on (default {defaults.DEFAULT_HOST})")
    parser.add_argument("--data-root", default=defaults.DEFAULT_DATA_ROOT,
                        help="root directory of persistent engine state (default %(default)s)")
    parser.add_argument("--exec-root", default=defaults.DEFAULT_EXEC_ROOT,
                        help="root directory for execution state files (default %(default)s)")
    parser.add_argument("-p", "--pidfile", default=defaults.DEFAULT_PIDFILE,
                        help="path to use for the daemon PID file (default %(default)s)")
    parser.add_argument("-G", "--group", default="dockyard",
                        help="group for the unix socket, if it exists; root otherwise (default %(default)s)")
    parser.add_argument("--default-runtime", default="dockyard-runtime", choices=("dockyard-runtime", "runc"),
                        help="OCI runtime for containers that name none (default %(default)s)")
    parser.add_argument("-b", "--bridge", default="dockyard0", type=_bridge_name,
                        help="interface of the default bridge network (default dockyard0)")
    parser.add_argument("-D", "--debug", action="store_true", help="enable debug mode")
    parser.add_argument("-v", "--version", action="version", version=f"dockyardd version {ENGINE_VERSION}")
    ns = parser.parse_args(argv)
    hosts = ns.host or [defaults.DEFAULT_HOST]
    if len(hosts) > 1:
        raise InvalidArgument("only one -H/--host is supported")
    return DaemonConfig(
        socket_path=socket_path_from_host(hosts[0]),
        data_root=ns.data_root,
        exec_root=ns.exec_root,
        pidfile=ns.pidfile,
        debug=ns.debug,
        socket_group=ns.group,
        default_runtime=ns.default_runtime,
        bridge=ns.bridge,
    )


# Blocking work (SQLite, hashing, unpacking) runs here; a few threads are
# enough on the small machines we target and keep the idle daemon small.
WORKER_THREADS = 4


async def serve(config: DaemonConfig, stop: asyncio.Event, ready: Any = None) -> None:
    """Run the engine until `stop` is set: build services, listen, then shut down cleanly."""
    from dockyard.api.routes import build_router
    from dockyard.api.server import ApiServer, bind_unix_socket
    from dockyard.daemon.daemon import Daemon

    # Claim the socket before touching any state: a daemon that loses the
    # race for it must leave the winner's data root and exec root alone.
    sock = bind_unix_socket(config.socket_path, group=config.socket_group)
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="dockyardd-worker")
    loop.set_default_executor(executor)
    try:
        daemon = Daemon(config)
    except BaseException:
        sock.close()
        os.unlink(config.socket_path)
        executor.shutdown(wait=False)
        raise
    daemon.events.attach(loop)
    server = ApiServer(build_router(), daemon)
    try:
        await daemon.start()
        await server.serve_socket(sock, config.socket_path)
        log.info("API listening on unix://%s", config.socket_path)
        if ready is not None:
            ready()
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.close()
        await daemon.aclose()
        executor.shutdown(wait=True, cancel_futures=True)
        daemon.close()


async def _run(config: DaemonConfig) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(config, stop)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = parse_args(argv)
    except EngineError as exc:
        print(f"dockyardd: {exc.message}" + (f"\n{exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 1
    logging.basicConfig(
        level=logging.DEBUG if config.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # pyroute2 logs every netlink message at debug level
        handler.addFilter(lambda r: r.levelno >= logging.WARNING or not r.name.startswith("pyroute2"))
    from dockyard.daemon.pidfile import PidFile

    try:
        with PidFile(config.pidfile):
            asyncio.run(_run(config))
    except EngineError as exc:
        log.error("%s", exc.message + (f" ({exc.hint})" if exc.hint else ""))
        return 1
    except PermissionError as exc:
        log.error("%s (dockyardd must run as root)", exc)
        return 1
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
