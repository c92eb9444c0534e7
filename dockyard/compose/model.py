"""The resolved compose model: a project, its services, networks and volumes (values, no I/O).

`loader.load_project` builds it from the files; `spec` turns a service into
Engine API bodies; `convergence` makes the engine match it. Keys of
`Project.networks` / `Project.volumes` are the names used in the file
(`default`, `data`); `NetworkDef.name` / `VolumeDef.name` are the engine's
(`myapp_default`, `myapp_data`, or the given `name:`/external name).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Compose's labels: how it finds its objects again.
LABEL_PREFIX = "com.docker.compose."
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
HASH_LABEL = "com.docker.compose.config-hash"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
VERSION_LABEL = "com.docker.compose.version"
IMAGE_LABEL = "com.docker.compose.image"
DEPENDS_ON_LABEL = "com.docker.compose.depends_on"
NETWORK_LABEL = "com.docker.compose.network"
VOLUME_LABEL = "com.docker.compose.volume"
# What the version label says of the objects this implementation makes.
COMPOSE_VERSION = "2.24.0"


@dataclass(frozen=True)
class Port:
    """One published or exposed port: `published` "" means any free host port."""

    target: int
    published: str = ""
    host_ip: str = ""
    protocol: str = "tcp"


@dataclass(frozen=True)
class Mount:
    """A service's mount. type volume: `source` is a key of Project.volumes, "" for an anonymous
    volume; type bind: an absolute host path; type tmpfs: no source."""

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    nocopy: bool = False
    create_host_path: bool = False
    propagation: str = ""
    tmpfs_size: int | None = None


@dataclass(frozen=True)
class Attachment:
    """A service on a network (a key of Project.networks)."""

    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str = ""
    priority: int = 0


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str = "service_started"
    required: bool = True


@dataclass(frozen=True)
class Service:
    name: str
    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()
    ports: tuple[Port, ...] = ()
    expose: tuple[str, ...] = ()
    volumes: tuple[Mount, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    restart: str = ""
    networks: tuple[Attachment, ...] = ()
    network_mode: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    container_name: str = ""
    tty: bool = False
    stdin_open: bool = False
    init: bool | None = None
    read_only: bool = False
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    mem_limit: int | None = None
    stop_signal: str = ""
    stop_grace_period: float | None = None
    tmpfs: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    scale: int = 1
    healthcheck: dict[str, Any] | None = field(default=None, compare=False)  # the Engine API's Healthcheck
    # The service as `config` prints it; the config hash is taken over it.
    canonical: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def dependencies(self) -> list[str]:
        """Services this one needs started first: depends_on, and network_mode service:NAME."""
        names = [dep.service for dep in self.depends_on]
        if self.network_mode.startswith("service:"):
            names.append(self.network_mode[len("service:"):])
        return names


@dataclass(frozen=True)
class NetworkDef:
    name: str
    external: bool = False
    driver: str = ""
    driver_opts: tuple[tuple[str, str], ...] = ()
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = ""
    ipam_config: tuple[tuple[tuple[str, str], ...], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VolumeDef:
    name: str
    external: bool = False
    driver: str = ""
    driver_opts: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Project:
    name: str
    working_dir: str
    config_files: tuple[str, ...]
    services: dict[str, Service]
    networks: dict[str, NetworkDef]
    volumes: dict[str, VolumeDef]
    canonical: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def service(self, name: str) -> Service:
        from dockyard.compose.interpolation import ComposeError

        try:
            return self.services[name]
        except KeyError:
            raise ComposeError(f"no such service: {name}") from None

    def ordered(self, names: list[str] | None = None, with_dependencies: bool = True) -> list[Service]:
        """Services in start order (each after what it depends on); `names` limits the set (their
        dependencies included unless `with_dependencies` is false). Unknown names: ComposeError."""
        wanted = set(self.services) if not names else set()
        pending = [self.service(n).name for n in names or ()]
        while pending:
            name = pending.pop()
            if name in wanted:
                continue
            wanted.add(name)
            if with_dependencies:
                pending.extend(d for d in self.services[name].dependencies() if d in self.services)
        return [self.services[n] for n in start_order(self.services) if n in wanted]


def start_order(services: dict[str, Service]) -> list[str]:
    """Dependencies first, otherwise by name (compose's order is not promised; ours is stable)."""
    from dockyard.compose.interpolation import ComposeError

    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise ComposeError("dependency cycle detected: " + " -> ".join(cycle))
        state[name] = 1
        for dep in sorted(services[name].dependencies()):
            if dep in services:
                visit(dep, path + [name])
        state[name] = 2
        order.append(name)

    for name in sorted(services):
        visit(name, [])
    return order


def normalize_project_name(text: str) -> str:
    """compose-go's NormalizeProjectName: lower case, only [a-z0-9_-], no leading - or _."""
    kept = "".join(ch for ch in text.lower() if ch in "abcdefghijklmnopqrstuvwxyz0123456789_-")
    return kept.lstrip("_-")


def valid_project_name(text: str) -> bool:
    return bool(text) and text == normalize_project_name(text)


def container_name(project: str, service: Service, number: int) -> str:
    if service.container_name:
        return service.container_name
    return f"{project}-{service.name}-{number}"
