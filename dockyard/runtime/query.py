"""The read-only verbs: `state`, `list`, `features`, `--version`."""

from __future__ import annotations

import os
import sys

from .. import jsonio
from ..errors import InvalidArgument
from .spec import HOOK_KINDS, NAMESPACE_KINDS, OCI_VERSION
from .state import Container, list_ids

VERSION = "0.1.0"


def state(root: str, cid: str) -> None:
    c = Container.load(root, cid)
    sys.stdout.write(jsonio.dumps(c.oci_state(), indent=2))


def list_containers(root: str, fmt: str, quiet: bool) -> None:
    containers = []
    for cid in list_ids(root):
        try:
            containers.append(Container.load(root, cid))
        except Exception:  # noqa: BLE001 - a container deleted while we list
            continue
    if quiet:
        for c in containers:
            print(c.id)
        return
    owner = _owner(root)
    states = [c.oci_state(owner=owner) for c in containers]
    if fmt == "json":
        sys.stdout.write(jsonio.dumps(states) + "\n")
        return
    if fmt != "table":
        raise InvalidArgument(f"invalid format option: {fmt}")
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("".join(r[i].ljust(max(widths[i], 8) + 4) for i in range(5)) + r[5])


def _owner(root: str) -> str:
    try:
        uid = os.stat(root).st_uid
    except OSError:
        uid = os.getuid()
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "#" + str(uid)


def libseccomp_version() -> str:
    from ..linux import seccomp as lseccomp

    try:
        return lseccomp.version()
    except (OSError, AttributeError):
        return "unavailable"


def version(name: str) -> None:
    sys.stdout.write(
        f"{name} version {VERSION}\ncommit: dockyard-{VERSION}\nspec: {OCI_VERSION}\n"
        f"python: {sys.version.split()[0]}\nlibseccomp: {libseccomp_version()}\n"
    )


def features() -> None:
    from ..linux.caps import NAMES
    from .rootfs import _FLAG_OPTIONS, _PROPAGATION_OPTIONS, _RECURSIVE_OPTIONS
    from .seccomp import ACTIONS, ARCHES, OPERATORS

    mount_options = sorted(set(_FLAG_OPTIONS) | set(_PROPAGATION_OPTIONS) | set(_RECURSIVE_OPTIONS) | {"tmpcopyup"})
    doc = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": mount_options,
        "linux": {
            "namespaces": sorted(NAMESPACE_KINDS),
            "capabilities": list(NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": libseccomp_version() != "unavailable",
                "actions": sorted(a for a in ACTIONS if a != "SCMP_ACT_NOTIFY"),
                "operators": sorted(OPERATORS),
                "archs": sorted(ARCHES),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {
            "io.github.seccomp.libseccomp.version": libseccomp_version(),
            "org.dockyard.runtime.version": VERSION,
        },
    }
    sys.stdout.write(jsonio.dumps(doc, indent=4) + "\n")
