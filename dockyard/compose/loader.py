"""Compose files -> a Project: find, read (YAML 1.2 scalars), interpolate, check, normalize, merge.

    files (-f, COMPOSE_FILE, or compose.yaml… found upwards, plus its override file)
      each: YAML -> interpolate values (${VAR} from the environment, then .env)
            -> check keys and types, short syntax -> long (canonical) form
      merged in order (later files override earlier ones, by compose's rules)
      -> checked as a whole (references, cycles) -> model.Project

The canonical form is what `config` prints. Relative paths (binds, env_file)
are resolved against the project directory, whichever file they come from.
Keys of the Compose spec this implementation does not handle are refused by
name ("not supported"), unknown keys as compose refuses them.
"""

from __future__ import annotations

import os
import re

import yaml

from dockyard.compose import model
from dockyard.compose.interpolation import ComposeError, interpolate, read_env_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = {
    "compose.yaml": ("compose.override.yaml", "compose.override.yml"),
    "compose.yml": ("compose.override.yml", "compose.override.yaml"),
    "docker-compose.yaml": ("docker-compose.override.yaml", "docker-compose.override.yml"),
    "docker-compose.yml": ("docker-compose.override.yml", "docker-compose.override.yaml"),
}


# --- YAML with 1.2 scalars -----------------------------------------------------------------------------
# Compose reads YAML 1.2: `no`, `on`, `22:22` and `2024-01-01` are strings, not a
# boolean, a base-60 number or a date as YAML 1.1 (PyYAML's default) would have them.

class _Loader(yaml.CSafeLoader):  # type: ignore[misc,name-defined]
    pass


_DROPPED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ComposeError(f"{source}: {exc}") from None


# --- options -------------------------------------------------------------------------------------------


class Options:
    """What the command line and environment say about where the project is."""

    def __init__(self, files: list[str] | None = None, project_name: str = "", project_directory: str = "",
                 env_file: str = "", environ: dict[str, str] | None = None, cwd: str = "",
                 stdin_text: Callable[[], str] | None = None):
        self.files = list(files or [])
        self.project_name = project_name
        self.project_directory = project_directory
        self.env_file = env_file
        self.environ = dict(os.environ if environ is None else environ)
        self.cwd = cwd or os.getcwd()
        self.stdin_text = stdin_text


def find_files(opts: Options) -> list[str]:
    """The compose files to read, as absolute paths ("-" for stdin)."""
    if opts.files:
        return [f if f == "-" else os.path.join(opts.cwd, f) for f in opts.files]
    env_files = opts.environ.get("COMPOSE_FILE", "")
    if env_files:
        sep = opts.environ.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        return [os.path.join(opts.cwd, f) for f in env_files.split(sep) if f]
    directory = os.path.join(opts.cwd, opts.project_directory) if opts.project_directory else opts.cwd
    while True:
        for name in DEFAULT_FILES:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                found = [path]
                for override in OVERRIDE_FILES[name]:
                    if os.path.isfile(os.path.join(directory, override)):
                        found.append(os.path.join(directory, override))
                        break
                return found
        parent = os.path.dirname(directory)
        if parent == directory:
            raise ComposeError("no configuration file provided: not found")
        directory = parent


# --- checks of values ----------------------------------------------------------------------------------


class _Where:
    """Where a value sits, for messages: `services.web.ports[0]` in `compose.yaml`."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path

    def __truediv__(self, key: object) -> _Where:
        return _Where(f"{self.path}[{key}]" if isinstance(key, int) else f"{self.path}.{key}")

    def error(self, what: str) -> ComposeError:
        return ComposeError(f"{self.path} {what}")


_TRUE = {"y", "yes", "true", "on"}
_FALSE = {"n", "no", "false", "off"}


def _bool(value: Any, where: _Where) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise where.error("must be a boolean")


def _int(value: Any, where: _Where) -> int:
    if isinstance(value, bool):
        raise where.error("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise where.error("must be an integer")


def _str(value: Any, where: _Where) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise where.error("must be a string")


def _scalar_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _list(value: Any, where: _Where) -> list:
    if not isinstance(value, list):
        raise where.error("must be a list")
    return value


def _dict(value: Any, where: _Where) -> dict:
    if not isinstance(value, dict):
        raise where.error("must be a mapping")
    for key in value:
        if not isinstance(key, str):
            raise (where / str(key)).error("has a key that is not a string")
    return value


def _strings(value: Any, where: _Where) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [_str(item, where / i) for i, item in enumerate(_list(value, where))]


def _unique(items: list) -> list:
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _command(value: Any, where: _Where) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        import shlex

        try:
            return shlex.split(value)
        except ValueError as exc:
            raise where.error(f"cannot be split into words: {exc}") from None
    return [_str(item, where / i) for i, item in enumerate(_list(value, where))]


def _mapping_or_list(value: Any, where: _Where, sep: str = "=") -> dict[str, str | None]:
    """`environment`, `labels`: a mapping, or a list of KEY=VALUE (a bare KEY maps to None)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {key: None if item is None else _scalar_str(item) for key, item in _dict(value, where).items()}
    out: dict[str, str | None] = {}
    for i, item in enumerate(_list(value, where)):
        text = _str(item, where / i)
        key, eq, val = text.partition(sep)
        if not key:
            raise (where / i).error(f"has no name: {text!r}")
        out[key] = val if eq else None
    return out


_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(value: Any, where: _Where) -> int:
    """go-units RAMInBytes: 512m, 1g, 1.5GB, 1024 (bytes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = _str(value, where).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", text)
    if match is None:
        raise where.error(f"is not a size: {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2) or "b"])


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any, where: _Where) -> float:
    """Go durations (`1m30s`, `500ms`); a bare number is seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = _str(value, where).strip()
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise where.error(f"is not a duration: {value!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


# --- ports -----------------------------------------------------------------------------------------------


def _port_range(text: str, where: _Where) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    try:
        lo = int(first)
        hi = int(last) if dash else lo
    except ValueError:
        raise where.error(f"has an invalid port: {text!r}") from None
    if not 0 < lo <= hi <= 65535:
        raise where.error(f"has an invalid port range: {text!r}")
    return lo, hi


def parse_port(value: Any, where: _Where) -> list[dict[str, Any]]:
    """Short syntax `[[IP:]HOST[-RANGE]:]CONTAINER[-RANGE][/PROTO]` or long syntax -> canonical entries."""
    if isinstance(value, dict):
        port = _dict(value, where)
        _only(port, where, {"target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"})
        if "target" not in port:
            raise where.error("target is required")
        target = _int(port["target"], where / "target")
        published = _scalar_str(port.get("published"))
        entry = {"mode": _str(port.get("mode", "ingress"), where / "mode"), "target": target,
                 "published": published, "host_ip": _str(port.get("host_ip", ""), where / "host_ip"),
                 "protocol": _str(port.get("protocol", "tcp"), where / "protocol").lower()}
        if published:
            _port_range(published, where / "published")
        return [_drop_empty(entry)]
    text = _str(value, where)
    spec, _, proto = text.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise where.error(f"has an invalid protocol: {text!r}")
    host_ip = ""
    if spec.startswith("["):  # [::1]:8080:80
        close = spec.find("]")
        if close < 0 or spec[close + 1:close + 2] != ":":
            raise where.error(f"is an invalid port: {text!r}")
        host_ip, spec = spec[1:close], spec[close + 2:]
        host, _, container = spec.rpartition(":")
    else:
        parts = spec.split(":")
        if len(parts) > 3:
            raise where.error(f"is an invalid port: {text!r}")
        container = parts[-1]
        host = parts[-2] if len(parts) > 1 else ""
        if len(parts) == 3:
            host_ip = parts[0]
    lo, hi = _port_range(container, where)
    entries = []
    if host:
        hlo, hhi = _port_range(host, where)
        if hi - lo != hhi - hlo and hi != lo:
            raise where.error(f"has ranges of different sizes: {text!r}")
    for i, target in enumerate(range(lo, hi + 1)):
        if not host:
            published = ""
        elif hi == lo:
            published = host
        else:
            published = str(hlo + i)
        entries.append(_drop_empty({"mode": "ingress", "target": target, "published": published,
                                    "host_ip": host_ip, "protocol": proto}))
    return entries


def _drop_empty(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if v not in ("", None, {}, [])}


# --- volumes of a service ------------------------------------------------------------------------------

_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def _host_path(source: str, project_dir: str, environ: dict[str, str]) -> str:
    if source == "~" or source.startswith("~/"):
        source = environ.get("HOME", os.path.expanduser("~")) + source[1:]
    return os.path.normpath(os.path.join(project_dir, source))


def parse_service_volume(value: Any, where: _Where, project_dir: str, environ: dict[str, str]) -> dict[str, Any]:
    if isinstance(value, dict):
        vol = _dict(value, where)
        _only(vol, where, {"type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency"})
        kind = _str(vol.get("type", ""), where / "type")
        if kind not in ("volume", "bind", "tmpfs"):
            raise (where / "type").error(f"must be one of volume, bind, tmpfs: {kind!r}"
                                         if kind else "is required")
        if "target" not in vol:
            raise where.error("target is required")
        entry: dict[str, Any] = {"type": kind, "target": _str(vol["target"], where / "target")}
        source = _str(vol.get("source", ""), where / "source")
        if kind == "bind":
            if not source:
                raise where.error("source is required for a bind mount")
            entry["source"] = _host_path(source, project_dir, environ)
        elif kind == "volume" and source:
            entry["source"] = source
        elif kind == "tmpfs" and source:
            raise where.error("source is not allowed for a tmpfs mount")
        if _bool(vol.get("read_only", False), where / "read_only"):
            entry["read_only"] = True
        for section, keys in (("bind", {"propagation", "create_host_path", "selinux"}), ("volume", {"nocopy"}),
                              ("tmpfs", {"size", "mode"})):
            if section in vol and vol[section] is not None:
                if section != kind:
                    raise (where / section).error(f"is not allowed for a {kind} mount")
                options = _dict(vol[section], where / section)
                _only(options, where / section, keys)
                out: dict[str, Any] = {}
                if "propagation" in options:
                    prop = _str(options["propagation"], where / section / "propagation")
                    if prop not in _PROPAGATIONS:
                        raise (where / section / "propagation").error(f"is invalid: {prop!r}")
                    out["propagation"] = prop
                if "create_host_path" in options:
                    out["create_host_path"] = _bool(options["create_host_path"], where / section / "create_host_path")
                if "nocopy" in options:
                    out["nocopy"] = _bool(options["nocopy"], where / section / "nocopy")
                if "size" in options:
                    out["size"] = parse_bytes(options["size"], where / section / "size")
                if "selinux" in options or "mode" in options:
                    raise where.error(f"{section} option {'selinux' if 'selinux' in options else 'mode'} "
                                      "is not supported")
                if out:
                    entry[section] = out
        _check_target(entry["target"], where)
        return entry
    text = _str(value, where)
    parts = text.split(":")
    if len(parts) == 1:
        _check_target(text, where)
        return {"type": "volume", "target": text}
    if len(parts) > 3:
        raise where.error(f"has too many colons: {text!r}")
    source, target = parts[0], parts[1]
    modes = parts[2].split(",") if len(parts) == 3 else []
    _check_target(target, where)
    for mode in modes:
        if mode not in ("ro", "rw", "z", "Z", "nocopy", *_PROPAGATIONS):
            raise where.error(f"has an invalid mode {mode!r}: {text!r}")
    entry = {"type": "volume", "source": source, "target": target}
    if source.startswith((".", "/", "~")):
        entry = {"type": "bind", "source": _host_path(source, project_dir, environ), "target": target,
                 "bind": {"create_host_path": True}}
        prop = next((m for m in modes if m in _PROPAGATIONS), "")
        if prop:
            entry["bind"]["propagation"] = prop
    elif not source:
        raise where.error(f"has an empty source: {text!r}")
    elif "nocopy" in modes:
        entry["volume"] = {"nocopy": True}
    if "ro" in modes:
        entry["read_only"] = True
    return entry


def _check_target(target: str, where: _Where) -> None:
    if not target.startswith("/"):
        raise where.error(f"target must be an absolute path: {target!r}")


# --- a service -----------------------------------------------------------------------------------------

SUPPORTED_SERVICE_KEYS = {
    "image", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes", "depends_on",
    "restart", "networks", "network_mode", "labels", "working_dir", "user", "hostname", "domainname",
    "container_name", "tty", "stdin_open", "init", "read_only", "privileged", "cap_add", "cap_drop", "mem_limit",
    "stop_signal", "stop_grace_period", "tmpfs", "extra_hosts", "dns", "deploy", "scale", "healthcheck",
}
# Keys of the Compose spec that dockyard compose does not handle yet (refused by name).
SPEC_ONLY_SERVICE_KEYS = {
    "annotations", "attach", "blkio_config", "cgroup", "cgroup_parent", "configs", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset",
    "credential_spec", "develop", "device_cgroup_rules", "devices", "dns_opt", "dns_search", "external_links",
    "extends", "group_add", "ipc", "isolation", "label_file", "links", "logging", "mac_address",
    "mem_reservation", "mem_swappiness", "memswap_limit", "oom_kill_disable", "oom_score_adj", "pid",
    "pids_limit", "platform", "profiles", "pull_policy", "runtime", "secrets", "security_opt", "shm_size",
    "stop_timeout", "storage_opt", "sysctls", "ulimits", "userns_mode", "uts", "volumes_from", "gpus", "models",
    "provider", "use_api_socket", "post_start", "pre_stop",
}
_RESTART = re.compile(r"^(?:no|always|unless-stopped|on-failure(?::\d+)?)$")
_DEPENDS_CONDITIONS = ("service_started", "service_completed_successfully", "service_healthy")


def _only(mapping: dict, where: _Where, allowed: set[str]) -> None:
    for key in mapping:
        if key not in allowed and not str(key).startswith("x-"):
            raise where.error(f"additional property {key} is not allowed")


def normalize_service(name: str, raw: Any, where: _Where, project_dir: str,
                      environ: dict[str, str]) -> dict[str, Any]:
    """One service of one file, checked, in canonical (long) form."""
    if raw is None:
        raw = {}
    svc = _dict(raw, where)
    out: dict[str, Any] = {}
    for key, value in svc.items():
        at = where / key
        if key.startswith("x-"):
            continue
        if key == "build":
            raise ComposeError(f'service "{name}" has a build section, but dockyard compose cannot build '
                               "images yet: build the image with `dockyard build` (or docker build) and name it "
                               "in image:")
        if key in SPEC_ONLY_SERVICE_KEYS:
            raise at.error("is not supported by dockyard compose yet")
        if key not in SUPPORTED_SERVICE_KEYS:
            raise where.error(f"additional property {key} is not allowed")
        if key in ("image", "restart", "network_mode", "working_dir", "user", "hostname", "domainname",
                   "container_name", "stop_signal"):
            if key == "restart" and value is False:  # YAML 1.1 writers' `no`
                value = "no"
            out[key] = _str(value, at)
        elif key in ("command", "entrypoint"):
            out[key] = _command(value, at)
        elif key == "environment":
            out[key] = _mapping_or_list(value, at)
        elif key == "labels":
            out[key] = {k: v or "" for k, v in _mapping_or_list(value, at).items()}
        elif key == "env_file":
            out[key] = _env_files(value, at, project_dir)
        elif key == "ports":
            out[key] = [entry for i, item in enumerate(_list(value, at)) for entry in parse_port(item, at / i)]
        elif key == "expose":
            out[key] = [_str(item, at / i) for i, item in enumerate(_list(value, at))]
        elif key == "volumes":
            out[key] = [parse_service_volume(item, at / i, project_dir, environ)
                        for i, item in enumerate(_list(value, at))]
        elif key == "depends_on":
            out[key] = _depends_on(value, at)
        elif key == "networks":
            out[key] = _service_networks(value, at)
        elif key in ("tty", "stdin_open", "init", "read_only", "privileged"):
            out[key] = _bool(value, at)
        elif key in ("cap_add", "cap_drop", "dns", "tmpfs"):
            out[key] = _strings(value, at)
        elif key == "mem_limit":
            out[key] = parse_bytes(value, at)
        elif key == "stop_grace_period":
            parse_duration(value, at)
            out[key] = value if isinstance(value, (int, float)) and not isinstance(value, bool) else _str(value, at)
        elif key == "extra_hosts":
            out[key] = _extra_hosts(value, at)
        elif key == "healthcheck":
            out[key] = _healthcheck(value, at)
        elif key == "scale":
            out[key] = _int(value, at)
        elif key == "deploy":
            deploy = _dict(value or {}, at)
            for sub in deploy:
                if sub != "replicas" and not sub.startswith("x-"):
                    raise (at / sub).error("is not supported by dockyard compose yet")
            if "replicas" in deploy:
                out[key] = {"replicas": _int(deploy["replicas"], at / "replicas")}
    if "restart" in out and not _RESTART.match(out["restart"]):
        raise (where / "restart").error(f"is invalid: {out['restart']!r} (no, always, on-failure[:N], "
                                        "unless-stopped)")
    return out


def _env_files(value: Any, where: _Where, project_dir: str) -> list[dict[str, Any]]:
    items = [value] if isinstance(value, str) else _list(value, where)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            _only(item, where / i, {"path", "required", "format"})
            path = _str(item.get("path", ""), where / i / "path")
            required = _bool(item.get("required", True), where / i / "required")
        else:
            path, required = _str(item, where / i), True
        out.append({"path": os.path.normpath(os.path.join(project_dir, path)), "required": required})
    return out


def _healthcheck(value: Any, where: _Where) -> dict[str, Any]:
    """A service's healthcheck as the Engine API's Healthcheck (durations in ns; `disable` is NONE)."""
    spec = _dict(value or {}, where)
    _only(spec, where, {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"})
    if _bool(spec.get("disable", False), where / "disable"):
        return {"Test": ["NONE"]}
    out: dict[str, Any] = {}
    if "test" in spec:
        test = spec["test"]
        if isinstance(test, str):
            out["Test"] = ["CMD-SHELL", test]
        else:
            items = [_str(t, where / "test" / i) for i, t in enumerate(_list(test, where / "test"))]
            if not items or items[0] not in ("CMD", "CMD-SHELL", "NONE"):
                raise (where / "test").error("must start with CMD, CMD-SHELL or NONE")
            out["Test"] = items
    for key, field in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                       ("start_interval", "StartInterval")):
        if key in spec:
            out[field] = int(parse_duration(spec[key], where / key) * 1_000_000_000)
    if "retries" in spec:
        out["Retries"] = _int(spec["retries"], where / "retries")
    return out


def _depends_on(value: Any, where: _Where) -> dict[str, dict[str, Any]]:
    if isinstance(value, list):
        return {_str(item, where / i): {"condition": "service_started", "required": True}
                for i, item in enumerate(value)}
    out = {}
    for name, spec in _dict(value, where).items():
        spec = _dict(spec or {}, where / name)
        _only(spec, where / name, {"condition", "required", "restart"})
        condition = _str(spec.get("condition", "service_started"), where / name / "condition")
        if condition not in _DEPENDS_CONDITIONS:
            raise (where / name / "condition").error(f"must be one of {', '.join(_DEPENDS_CONDITIONS)}: "
                                                     f"{condition!r}")
        entry = {"condition": condition, "required": _bool(spec.get("required", True), where / name / "required")}
        if "restart" in spec:
            entry["restart"] = _bool(spec["restart"], where / name / "restart")
        out[name] = entry
    return out


def _service_networks(value: Any, where: _Where) -> dict[str, dict[str, Any] | None]:
    if isinstance(value, list):
        return {_str(item, where / i): None for i, item in enumerate(value)}
    out: dict[str, dict[str, Any] | None] = {}
    for name, spec in _dict(value, where).items():
        if spec is None:
            out[name] = None
            continue
        spec = _dict(spec, where / name)
        _only(spec, where / name, {"aliases", "ipv4_address", "ipv6_address", "priority", "link_local_ips",
                                   "mac_address", "driver_opts", "gw_priority"})
        entry: dict[str, Any] = {}
        if "aliases" in spec:
            entry["aliases"] = _strings(spec["aliases"], where / name / "aliases")
        if "ipv4_address" in spec:
            entry["ipv4_address"] = _str(spec["ipv4_address"], where / name / "ipv4_address")
        if "priority" in spec:
            entry["priority"] = _int(spec["priority"], where / name / "priority")
        for unsupported in ("ipv6_address", "link_local_ips", "mac_address", "driver_opts", "gw_priority"):
            if unsupported in spec:
                raise (where / name / unsupported).error("is not supported by dockyard compose yet")
        out[name] = entry or None
    return out


def _extra_hosts(value: Any, where: _Where) -> list[str]:
    if isinstance(value, dict):
        pairs = [(host, _scalar_str(ip)) for host, ip in _dict(value, where).items()]
    else:
        pairs = []
        for i, item in enumerate(_list(value, where)):
            text = _str(item, where / i)
            sep = "=" if "=" in text else ":"
            host, _, ip = text.partition(sep)
            if not host or not ip:
                raise (where / i).error(f"is not HOST:IP or HOST=IP: {text!r}")
            pairs.append((host, ip))
    return [f"{host}:{ip}" for host, ip in pairs]


# --- top-level networks and volumes --------------------------------------------------------------------


def _external(spec: dict, where: _Where) -> tuple[bool, str]:
    value = spec.get("external", False)
    if isinstance(value, dict):  # the old `external: {name: x}`
        _only(value, where / "external", {"name"})
        return True, _str(value.get("name", ""), where / "external" / "name")
    return _bool(value, where / "external"), ""


_RESOURCE_KEYS = {"name", "external", "driver", "driver_opts", "labels"}


def _resource(raw: Any, where: _Where, kind: str, more: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What networks and volumes share: name, external, driver, driver_opts, labels -> (spec, canonical)."""
    spec = _dict(raw or {}, where)
    _only(spec, where, _RESOURCE_KEYS | more)
    external, ext_name = _external(spec, where)
    out: dict[str, Any] = {}
    if "name" in spec or ext_name:
        out["name"] = _str(spec.get("name") or ext_name, where / "name")
    if external:
        out["external"] = True
        if set(spec) - {"name", "external"}:
            raise where.error(f"conflicts with external: an external {kind} is used as it is")
    if "driver" in spec:
        out["driver"] = _str(spec["driver"], where / "driver")
    if "driver_opts" in spec:
        out["driver_opts"] = {k: _scalar_str(v) for k, v in _dict(spec["driver_opts"] or {},
                                                                  where / "driver_opts").items()}
    if "labels" in spec:
        out["labels"] = {k: v or "" for k, v in _mapping_or_list(spec["labels"], where / "labels").items()}
    return spec, out


def normalize_network(key: str, raw: Any, where: _Where) -> dict[str, Any]:
    spec, out = _resource(raw, where, "network", {"ipam", "internal", "attachable", "enable_ipv6"})
    for flag in ("internal", "attachable", "enable_ipv6"):
        if flag in spec:
            out[flag] = _bool(spec[flag], where / flag)
    if "ipam" in spec:
        ipam = _dict(spec["ipam"] or {}, where / "ipam")
        _only(ipam, where / "ipam", {"driver", "config", "options"})
        entry: dict[str, Any] = {}
        if "driver" in ipam:
            entry["driver"] = _str(ipam["driver"], where / "ipam" / "driver")
        if "config" in ipam:
            configs = []
            for i, item in enumerate(_list(ipam["config"], where / "ipam" / "config")):
                at = where / "ipam" / "config" / i
                item = _dict(item, at)
                _only(item, at, {"subnet", "gateway", "ip_range", "aux_addresses"})
                if "aux_addresses" in item:
                    raise (at / "aux_addresses").error("is not supported by dockyard compose yet")
                configs.append({k: _str(v, at / k) for k, v in item.items() if not k.startswith("x-")})
            entry["config"] = configs
        out["ipam"] = entry
    return out


def normalize_volume(key: str, raw: Any, where: _Where) -> dict[str, Any]:
    return _resource(raw, where, "volume", set())[1]


# --- one file --------------------------------------------------------------------------------------------

TOP_LEVEL_KEYS = {"version", "name", "services", "networks", "volumes"}
SPEC_ONLY_TOP_LEVEL_KEYS = {"secrets", "configs", "include", "models"}


def normalize_file(doc: Any, source: str, project_dir: str, environ: dict[str, str],
                   warn: Callable[[str], None]) -> dict[str, Any]:
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ComposeError(f"validating {source}: top-level object must be a mapping")
    try:
        return _normalize_doc(doc, project_dir, environ, warn, source)
    except ComposeError as exc:
        raise ComposeError(f"validating {source}: {exc.message}") from None


def _normalize_doc(doc: dict, project_dir: str, environ: dict[str, str], warn: Callable[[str], None],
                   source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in doc:
        if not isinstance(key, str):
            raise ComposeError(f"top-level key {key!r} is not a string")
        if key.startswith("x-"):
            continue
        if key in SPEC_ONLY_TOP_LEVEL_KEYS:
            raise ComposeError(f"{key} is not supported by dockyard compose yet")
        if key not in TOP_LEVEL_KEYS:
            raise ComposeError(f"(root) additional property {key} is not allowed")
    if "version" in doc:
        warn(f"{source}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid "
             "potential confusion")
    if "name" in doc and doc["name"] is not None:
        out["name"] = _str(doc["name"], _Where("name"))
    services = _dict(doc.get("services") or {}, _Where("services"))
    out["services"] = {name: normalize_service(name, raw, _Where("services") / name, project_dir, environ)
                       for name, raw in services.items()}
    out["networks"] = {key: normalize_network(key, raw, _Where("networks") / key)
                       for key, raw in _dict(doc.get("networks") or {}, _Where("networks")).items()}
    out["volumes"] = {key: normalize_volume(key, raw, _Where("volumes") / key)
                      for key, raw in _dict(doc.get("volumes") or {}, _Where("volumes")).items()}
    return out


# --- merging -----------------------------------------------------------------------------------------------

_APPEND_UNIQUE = ("cap_add", "cap_drop", "dns", "tmpfs", "extra_hosts", "expose", "env_file", "ports")
_MAPS = ("environment", "labels", "depends_on", "networks")


def merge_service(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """compose's override rules: maps merge by key, volumes by target, lists of values are joined
    (duplicates once), everything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if key not in out:
            out[key] = value
        elif key in _MAPS:
            out[key] = {**out[key], **value}
        elif key in _APPEND_UNIQUE:
            out[key] = _unique([*out[key], *value])
        elif key == "volumes":
            by_target = {v["target"]: v for v in out[key]}
            by_target.update({v["target"]: v for v in value})
            out[key] = list(by_target.values())
        elif key == "deploy":
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def merge_files(docs: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"services": {}, "networks": {}, "volumes": {}}
    for doc in docs:
        if "name" in doc:
            merged["name"] = doc["name"]
        for name, svc in doc["services"].items():
            prev = merged["services"].get(name)
            merged["services"][name] = svc if prev is None else merge_service(prev, svc)
        for section in ("networks", "volumes"):
            for key, spec in doc[section].items():
                merged[section][key] = {**merged[section].get(key, {}), **spec}
    return merged


# --- the project --------------------------------------------------------------------------------------------


def load_project(opts: Options, warn: Callable[[str], None] | None = None) -> model.Project:
    """Everything above, in order; ComposeError names the file, the key and the service."""
    warnings: list[str] = []

    def note(message: str) -> None:
        if message not in warnings:
            warnings.append(message)
            if warn is not None:
                warn(message)

    files = find_files(opts)
    first_dir = opts.cwd if files[0] == "-" else os.path.dirname(files[0])
    project_dir = os.path.normpath(os.path.join(opts.cwd, opts.project_directory)) if opts.project_directory \
        else first_dir
    dotenv = _dotenv(opts, project_dir)
    environ = opts.environ

    def lookup(name: str) -> str | None:
        if name in environ:
            return environ[name]
        return dotenv.get(name)

    docs = []
    for path in files:
        if path == "-":
            text = opts.stdin_text() if opts.stdin_text is not None else ""
            source = "-"
        else:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                raise ComposeError(f"open {path}: no such file or directory") from None
            except OSError as exc:
                raise ComposeError(f"open {path}: {exc.strerror}") from None
            source = path
        raw = parse_yaml(text, source)
        try:
            raw = interpolate(raw, lookup, warn=note)
        except ComposeError as exc:
            raise ComposeError(f"{source}: {exc.message}") from None
        docs.append(normalize_file(raw, source, project_dir, environ, note))
    merged = merge_files(docs)
    name = _project_name(opts, merged, project_dir, lookup)
    return build_project(name, project_dir, tuple(files), merged, lookup)


def _dotenv(opts: Options, project_dir: str) -> dict[str, str | None]:
    if opts.env_file:
        return read_env_file(os.path.join(opts.cwd, opts.env_file), opts.environ.get)
    path = os.path.join(project_dir, ".env")
    if not os.path.isfile(path):
        return {}
    return read_env_file(path, opts.environ.get)


def _project_name(opts: Options, merged: dict[str, Any], project_dir: str,
                  lookup: Callable[[str], str | None]) -> str:
    for given, what in ((opts.project_name, "project name"), (lookup("COMPOSE_PROJECT_NAME") or "", "project name"),
                        (merged.get("name", ""), "project name")):
        if given:
            if not model.valid_project_name(given):
                raise ComposeError(f'invalid {what} "{given}": must consist only of lowercase alphanumeric '
                                   "characters, hyphens, and underscores as well as start with a letter or number")
            return given
    name = model.normalize_project_name(os.path.basename(os.path.abspath(project_dir)))
    if not name:
        raise ComposeError(f'project name must not be empty: the directory "{project_dir}" gives none; '
                           "use -p NAME")
    return name


def build_project(name: str, project_dir: str, files: tuple[str, ...], merged: dict[str, Any],
                  lookup: Callable[[str], str | None]) -> model.Project:
    """The merged canonical document -> model.Project, checked as a whole."""
    services_raw: dict[str, dict[str, Any]] = merged["services"]
    if not services_raw:
        raise ComposeError("no service selected: the file defines no services")
    networks_raw = dict(merged["networks"])
    volumes_raw = merged["volumes"]
    uses_default = False
    canonical_services: dict[str, dict[str, Any]] = {}
    services: dict[str, model.Service] = {}
    for sname in sorted(services_raw):
        raw = dict(services_raw[sname])
        if not raw.get("image"):
            raise ComposeError(f'service "{sname}" has neither an image nor a build context specified: '
                               "invalid compose project")
        if raw.get("network_mode") and raw.get("networks"):
            raise ComposeError(f'service "{sname}" declares mutually exclusive `network_mode` and `networks`: '
                               "invalid compose project")
        if not raw.get("network_mode") and not raw.get("networks"):
            raw["networks"] = {"default": None}
        for net in raw.get("networks") or {}:
            if net == "default":
                uses_default = True
            elif net not in networks_raw:
                raise ComposeError(f'service "{sname}" refers to undefined network {net}: invalid compose project')
        for vol in raw.get("volumes") or []:
            if vol["type"] == "volume" and vol.get("source") and vol["source"] not in volumes_raw:
                raise ComposeError(f'service "{sname}" refers to undefined volume {vol["source"]}: '
                                   "invalid compose project")
        for dep in raw.get("depends_on") or {}:
            if dep not in services_raw:
                raise ComposeError(f'service "{sname}" depends on undefined service "{dep}": invalid compose '
                                   "project")
        mode = raw.get("network_mode", "")
        if mode.startswith("service:") and mode[len("service:"):] not in services_raw:
            raise ComposeError(f'service "{sname}" refers to undefined service {mode[len("service:"):]} in '
                               "network_mode: invalid compose project")
        scale = raw.get("scale", (raw.get("deploy") or {}).get("replicas", 1))
        if "scale" in raw and "replicas" in (raw.get("deploy") or {}) and raw["scale"] != raw["deploy"]["replicas"]:
            raise ComposeError(f'services.{sname}: can\'t set distinct values on "scale" and "deploy.replicas"')
        if scale < 0:
            raise ComposeError(f"services.{sname}.scale must be zero or more")
        if raw.get("container_name") and scale > 1:
            raise ComposeError(f'services.{sname}: container_name "{raw["container_name"]}" is unique and cannot '
                               f"be used with {scale} replicas")
        environment = _resolve_environment(raw, lookup)
        raw.pop("env_file", None)
        raw.pop("environment", None)
        if environment:
            raw["environment"] = environment
        canonical_services[sname] = raw
        services[sname] = _service(sname, raw, scale)
    if uses_default and "default" not in networks_raw:
        networks_raw["default"] = {}
    networks = {key: _network(name, key, spec) for key, spec in sorted(networks_raw.items())}
    volumes = {key: _volume(name, key, spec) for key, spec in sorted(volumes_raw.items())}
    model.start_order(services)  # refuses cycles
    canonical: dict[str, Any] = {"name": name, "services": canonical_services}
    if networks:
        canonical["networks"] = {key: {**networks_raw[key], "name": networks[key].name} for key in networks}
    if volumes:
        canonical["volumes"] = {key: {**volumes_raw[key], "name": volumes[key].name} for key in volumes}
    return model.Project(name, project_dir, files, services, networks, volumes, canonical)


def _resolve_environment(raw: dict[str, Any], lookup: Callable[[str], str | None]) -> dict[str, str]:
    """env_file entries, then environment over them; a variable without a value takes the shell's (or
    .env's), and when neither has it, the env_file's value stays or the variable is left out."""
    env: dict[str, str | None] = {}
    for entry in raw.get("env_file") or []:
        path = entry["path"]
        if not os.path.isfile(path):
            if entry["required"]:
                raise ComposeError(f"env file {path} not found: stat {path}: no such file or directory")
            continue
        env.update(read_env_file(path, lookup))
    for key, value in (raw.get("environment") or {}).items():
        if value is None:
            value = lookup(key)
        if value is not None:
            env[key] = value
    out = {}
    for key, value in env.items():
        if value is None:
            value = lookup(key)
            if value is None:
                continue
        out[key] = value
    return out


def _service(name: str, raw: dict[str, Any], scale: int) -> model.Service:
    ports = tuple(model.Port(p["target"], p.get("published", ""), p.get("host_ip", ""), p.get("protocol", "tcp"))
                  for p in raw.get("ports") or ())
    mounts = []
    for v in raw.get("volumes") or ():
        mounts.append(model.Mount(
            v["type"], v["target"], v.get("source", ""), bool(v.get("read_only")),
            bool((v.get("volume") or {}).get("nocopy")), bool((v.get("bind") or {}).get("create_host_path")),
            (v.get("bind") or {}).get("propagation", ""), (v.get("tmpfs") or {}).get("size")))
    networks = tuple(
        model.Attachment(key, tuple((spec or {}).get("aliases", ())), (spec or {}).get("ipv4_address", ""),
                         (spec or {}).get("priority", 0))
        for key, spec in (raw.get("networks") or {}).items())
    depends = tuple(model.Dependency(dep, spec["condition"], spec.get("required", True))
                    for dep, spec in (raw.get("depends_on") or {}).items())
    grace = raw.get("stop_grace_period")
    return model.Service(
        name=name, image=raw["image"],
        command=tuple(raw["command"]) if raw.get("command") is not None else None,
        entrypoint=tuple(raw["entrypoint"]) if raw.get("entrypoint") is not None else None,
        environment=tuple((raw.get("environment") or {}).items()),
        ports=ports, expose=tuple(raw.get("expose") or ()), volumes=tuple(mounts), depends_on=depends,
        restart=raw.get("restart", ""), networks=networks, network_mode=raw.get("network_mode", ""),
        labels=tuple(sorted((raw.get("labels") or {}).items())),
        working_dir=raw.get("working_dir", ""), user=raw.get("user", ""), hostname=raw.get("hostname", ""),
        domainname=raw.get("domainname", ""), container_name=raw.get("container_name", ""),
        tty=bool(raw.get("tty")), stdin_open=bool(raw.get("stdin_open")), init=raw.get("init"),
        read_only=bool(raw.get("read_only")), privileged=bool(raw.get("privileged")),
        cap_add=tuple(raw.get("cap_add") or ()), cap_drop=tuple(raw.get("cap_drop") or ()),
        mem_limit=raw.get("mem_limit"), stop_signal=raw.get("stop_signal", ""),
        stop_grace_period=parse_duration(grace, _Where(f"services.{name}.stop_grace_period"))
        if grace is not None else None,
        tmpfs=tuple(raw.get("tmpfs") or ()), extra_hosts=tuple(raw.get("extra_hosts") or ()),
        dns=tuple(raw.get("dns") or ()), scale=scale, healthcheck=raw.get("healthcheck"), canonical=raw,
    )


def _network(project: str, key: str, spec: dict[str, Any]) -> model.NetworkDef:
    external = bool(spec.get("external"))
    name = spec.get("name") or (key if external else f"{project}_{key}")
    ipam = spec.get("ipam") or {}
    return model.NetworkDef(
        name=name, external=external, driver=spec.get("driver", ""),
        driver_opts=tuple(sorted((spec.get("driver_opts") or {}).items())), internal=bool(spec.get("internal")),
        attachable=bool(spec.get("attachable")), enable_ipv6=bool(spec.get("enable_ipv6")),
        ipam_driver=ipam.get("driver", ""),
        ipam_config=tuple(tuple(sorted(c.items())) for c in ipam.get("config") or ()),
        labels=tuple(sorted((spec.get("labels") or {}).items())))


def _volume(project: str, key: str, spec: dict[str, Any]) -> model.VolumeDef:
    external = bool(spec.get("external"))
    name = spec.get("name") or (key if external else f"{project}_{key}")
    return model.VolumeDef(name=name, external=external, driver=spec.get("driver", ""),
                           driver_opts=tuple(sorted((spec.get("driver_opts") or {}).items())),
                           labels=tuple(sorted((spec.get("labels") or {}).items())))
