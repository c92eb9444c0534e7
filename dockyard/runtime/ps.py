"""`ps`: the processes of a container (its cgroup's pids)."""

from __future__ import annotations

import json
import subprocess
import sys

from ..errors import InvalidArgument
from .state import STOPPED, Container


def ps(root: str, cid: str, fmt: str, ps_args: list[str]) -> None:
    c = Container.load(root, cid)
    pids = [] if c.status() == STOPPED else c.cgroup().pids()
    if fmt == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
        return
    if fmt != "table":
        raise InvalidArgument(f"invalid format option: {fmt}")
    out = subprocess.run(["ps"] + (ps_args or ["-ef"]), capture_output=True, text=True, check=False).stdout
    lines = out.splitlines()
    if not lines:
        return
    header = lines[0]
    try:
        pid_col = header.split().index("PID")
    except ValueError:
        raise InvalidArgument("couldn't find PID field in ps output") from None
    wanted = set(pids)
    print(header)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in wanted:
            print(line)
