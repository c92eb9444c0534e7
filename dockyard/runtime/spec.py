"""The OCI runtime spec (`config.json`): loading, validation, and runc's default spec.

The spec stays the parsed JSON dict it is (camelCase keys, as the OCI runtime
spec names them): it is handed on to cgroups, hooks and the init unchanged, and
a copy in the state directory is what `exec` and `delete` read later.
`load()` checks everything a manager or a user can get wrong and names the
field, so a bad bundle fails in `create` with a clear message and before any
namespace, mount or cgroup exists.
"""

from __future__ import annotations

import os

from .. import jsonio
from ..errors import InvalidArgument, NotFound

OCI_VERSION = "1.0.2-dev"

NAMESPACE_KINDS = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _fail(msg: str):
    raise InvalidArgument(msg)


def load(bundle: str) -> dict:
    """Read and validate `<bundle>/config.json`; returns the spec with `root.path` made absolute."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise NotFound(f"JSON specification file {path} not found") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{path} is a directory, not a JSON specification file") from None
    try:
        spec = jsonio.loads(data)
    except ValueError as err:
        raise InvalidArgument(f"config.json: invalid JSON: {err}") from None
    if not isinstance(spec, dict):
        _fail("config.json: the top level must be a JSON object")
    validate(spec, bundle)
    return spec


def _type(value, kind, field: str):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = {str: "a string", int: "an integer", list: "an array", dict: "an object", bool: "a boolean"}
        _fail(f"config.json: {field} must be {names.get(kind, kind.__name__)}")
    return value


def validate(spec: dict, bundle: str) -> None:
    _type(spec.get("ociVersion"), str, "ociVersion")
    root = spec.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        _fail("config.json: root.path is required")
    rootfs = root["path"]
    if not os.path.isabs(rootfs):
        joined = os.path.normpath(os.path.join(bundle, rootfs))
        if joined != bundle and not joined.startswith(bundle.rstrip("/") + "/"):
            _fail(f"config.json: root.path {rootfs!r} escapes the bundle {bundle}")
        rootfs = joined
    rootfs = os.path.realpath(rootfs)
    if not os.path.isdir(rootfs):
        raise NotFound(f"rootfs ({rootfs}) does not exist")
    root["path"] = rootfs
    if "readonly" in root:
        _type(root["readonly"], bool, "root.readonly")

    process = spec.get("process")
    if process is not None:
        validate_process(process)
    hostname = spec.get("hostname")
    if hostname is not None:
        _type(hostname, str, "hostname")

    for i, m in enumerate(_type(spec.get("mounts", []), list, "mounts")):
        _type(m, dict, f"mounts[{i}]")
        dest = m.get("destination")
        if not isinstance(dest, str) or not dest:
            _fail(f"config.json: mounts[{i}].destination is required")
        if not dest.startswith("/"):
            m["destination"] = "/" + dest  # runc accepts relative destinations as rootfs-relative
        if "options" in m:
            for opt in _type(m["options"], list, f"mounts[{i}].options"):
                _type(opt, str, f"mounts[{i}].options[]")
        for key in ("type", "source"):
            if key in m:
                _type(m[key], str, f"mounts[{i}].{key}")

    hooks = spec.get("hooks") or {}
    _type(hooks, dict, "hooks")
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            _fail(f"config.json: unknown hook kind {kind!r}")
        for j, hook in enumerate(_type(entries, list, f"hooks.{kind}")):
            p = hook.get("path") if isinstance(hook, dict) else None
            if not isinstance(p, str) or not p.startswith("/"):
                _fail(f"config.json: hooks.{kind}[{j}].path must be an absolute path")
            if "timeout" in hook and (_type(hook["timeout"], int, f"hooks.{kind}[{j}].timeout") <= 0):
                _fail(f"config.json: hooks.{kind}[{j}].timeout must be positive")

    linux = spec.get("linux") or {}
    _type(linux, dict, "linux")
    seen = set()
    for i, ns in enumerate(_type(linux.get("namespaces", []), list, "linux.namespaces")):
        kind = ns.get("type") if isinstance(ns, dict) else None
        if kind not in NAMESPACE_KINDS:
            _fail(f"config.json: linux.namespaces[{i}]: unknown namespace type {kind!r}")
        if kind in seen:
            _fail(f"config.json: linux.namespaces: duplicate namespace {kind!r}")
        seen.add(kind)
        if "path" in ns and ns["path"]:
            if not os.path.exists(_type(ns["path"], str, f"linux.namespaces[{i}].path")):
                raise NotFound(f"config.json: namespace path {ns['path']} does not exist")
    for key in ("uidMappings", "gidMappings"):
        for i, m in enumerate(_type(linux.get(key, []), list, f"linux.{key}")):
            for field in ("containerID", "hostID", "size"):
                _type(m.get(field) if isinstance(m, dict) else None, int, f"linux.{key}[{i}].{field}")
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        _fail("config.json: uid/gid mappings need a user namespace (linux.namespaces has no 'user')")
    for key in ("maskedPaths", "readonlyPaths"):
        for p in _type(linux.get(key, []), list, f"linux.{key}"):
            if not isinstance(p, str) or not p.startswith("/"):
                _fail(f"config.json: linux.{key} entries must be absolute paths, got {p!r}")
    for i, d in enumerate(_type(linux.get("devices", []), list, "linux.devices")):
        if not isinstance(d, dict) or not isinstance(d.get("path"), str) or not d["path"].startswith("/"):
            _fail(f"config.json: linux.devices[{i}].path must be an absolute path")
        if d.get("type") not in ("c", "b", "u", "p"):
            _fail(f"config.json: linux.devices[{i}].type must be one of c, b, u, p")
    _type(linux.get("sysctl", {}), dict, "linux.sysctl")
    _type(linux.get("resources", {}), dict, "linux.resources")
    if "cgroupsPath" in linux:
        _type(linux["cgroupsPath"], str, "linux.cgroupsPath")


def validate_process(process: dict, field: str = "process") -> None:
    _type(process, dict, field)
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        _fail(f"config.json: {field}.args must be a non-empty array of strings")
    if "cwd" in process and not (isinstance(process["cwd"], str) and process["cwd"].startswith("/")):
        _fail(f"config.json: {field}.cwd must be an absolute path")
    for e in _type(process.get("env", []), list, f"{field}.env"):
        if not isinstance(e, str):
            _fail(f"config.json: {field}.env entries must be strings")
    user = process.get("user", {})
    _type(user, dict, f"{field}.user")
    for key in ("uid", "gid", "umask"):
        if key in user:
            _type(user[key], int, f"{field}.user.{key}")
    for g in _type(user.get("additionalGids", []) or [], list, f"{field}.user.additionalGids"):
        _type(g, int, f"{field}.user.additionalGids[]")
    for i, r in enumerate(_type(process.get("rlimits", []) or [], list, f"{field}.rlimits")):
        if not isinstance(r, dict) or r.get("type") not in RLIMITS:
            _fail(f"config.json: {field}.rlimits[{i}]: unknown rlimit type {r.get('type') if isinstance(r, dict) else r!r}")
        soft, hard = r.get("soft"), r.get("hard")
        _type(soft, int, f"{field}.rlimits[{i}].soft")
        _type(hard, int, f"{field}.rlimits[{i}].hard")
    caps = process.get("capabilities") or {}
    _type(caps, dict, f"{field}.capabilities")
    from ..linux.caps import NUMBER

    for kind, names in caps.items():
        if kind not in ("bounding", "effective", "inheritable", "permitted", "ambient"):
            _fail(f"config.json: {field}.capabilities: unknown set {kind!r}")
        for name in _type(names or [], list, f"{field}.capabilities.{kind}"):
            if name not in NUMBER:
                _fail(f"config.json: {field}.capabilities.{kind}: unknown capability {name!r}")
    if "terminal" in process:
        _type(process["terminal"], bool, f"{field}.terminal")
    if "oomScoreAdj" in process:
        adj = _type(process["oomScoreAdj"], int, f"{field}.oomScoreAdj")
        if not -1000 <= adj <= 1000:
            _fail(f"config.json: {field}.oomScoreAdj must be between -1000 and 1000")


def namespaces(spec: dict) -> dict:
    """{kind: path or ""} for the namespaces the spec asks for."""
    return {ns["type"]: ns.get("path") or "" for ns in (spec.get("linux") or {}).get("namespaces", [])}


DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec(rootless: bool = False) -> dict:
    """runc's default config.json (`runc spec`): a shell on a terminal in every namespace."""
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }
    if rootless:
        linux = spec["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
        del linux["resources"]
        # An unprivileged user can mount neither sysfs nor cgroupfs: bind the host's, read-only.
        host_bind = ["rbind", "nosuid", "noexec", "nodev", "ro"]
        spec["mounts"] = [
            {"destination": m["destination"], "type": "none", "source": m["destination"], "options": host_bind}
            if m["type"] in ("sysfs", "cgroup") else m
            for m in spec["mounts"]
        ]
    return spec
