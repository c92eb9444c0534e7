"""The daemon's configuration: where it listens and keeps its state.

    <data-root>  (default /var/lib/dockyard)   engine metadata, blobs, snapshots;
                                               survives reboots
      engine-id                                this engine's stable ID (docker info "ID")
    <exec-root>  (default /run/dockyard)       runtime state; gone after a reboot
      dockyardd.log                            log of a daemon the CLI started for the user
    <pidfile>    (default /run/dockyard.pid)   locked while the daemon runs
    <socket>     (default /run/dockyard.sock)  the Engine API, mode 0660, group dockyard
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SOCKET = "/run/dockyard.sock"
DEFAULT_HOST = "unix://" + DEFAULT_SOCKET
DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"
DEFAULT_PIDFILE = "/run/dockyard.pid"
LOG_NAME = "dockyardd.log"


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    socket_path: str = DEFAULT_SOCKET
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    pidfile: str = DEFAULT_PIDFILE
    debug: bool = False
    socket_group: str = "dockyard"
    default_runtime: str = "dockyard-runtime"   # for containers that name none (dockerd's --default-runtime)
    bridge: str = "dockyard0"                   # the default bridge network's interface (dockerd's --bridge)
