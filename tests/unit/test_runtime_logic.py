"""The runtime's pure logic: command-line grammar, signals, spec checks, paths, options."""

from __future__ import annotations

import json
import os

import pytest

from dockyard import jsonio
from dockyard.errors import InvalidArgument, NotFound
from dockyard.linux.flags import CloneFlag, MountFlag, Prctl, name, names
from dockyard.runtime import spec as specmod
from dockyard.runtime.cli import COMMANDS, GLOBAL_FLAGS, UsageError, parse_flags
from dockyard.runtime.kill import parse_signal
from dockyard.runtime.rootfs import MountOptions, secure_join, validate_sysctls
from dockyard.runtime.state import TRANSITIONS, check_id
from dockyard.runtime.update import _size


def create_flags():
    flags, aliases, _, _ = COMMANDS["create"]
    return flags, aliases


@pytest.mark.parametrize("args", [
    ["--bundle", "/b", "--pid-file", "/p", "id"],
    ["--bundle=/b", "--pid-file=/p", "id"],
    ["-bundle", "/b", "-pid-file=/p", "id"],
    ["--pid-file", "/p", "-b", "/b", "id"],
])
def test_flag_spellings_and_order(args):
    flags, positional = parse_flags(args, *create_flags(), stop_at_positional=False)
    assert flags == {"bundle": "/b", "pid-file": "/p"} and positional == ["id"]


def test_booleans_lists_and_positionals():
    eflags, ealiases, _, _ = COMMANDS["exec"]
    flags, positional = parse_flags(["--detach", "-e", "A=1", "--env=B=2", "--tty", "cid", "sh", "-c", "--x"],
                                    eflags, ealiases, stop_at_positional=True)
    assert flags == {"detach": True, "env": ["A=1", "B=2"], "tty": True}
    assert positional == ["cid", "sh", "-c", "--x"], "flags after the id belong to the command"
    kflags, kaliases, _, _ = COMMANDS["kill"]
    flags, positional = parse_flags(["--all", "cid", "9"], kflags, kaliases, stop_at_positional=False)
    assert flags == {"all": True} and positional == ["cid", "9"]


def test_unknown_flag_and_missing_value():
    with pytest.raises(UsageError, match="flag provided but not defined: -frob"):
        parse_flags(["--frob", "x"], *create_flags(), stop_at_positional=False)
    with pytest.raises(UsageError, match="flag needs an argument"):
        parse_flags(["--bundle"], *create_flags(), stop_at_positional=False)
    assert GLOBAL_FLAGS["log-format"] == "value" and GLOBAL_FLAGS["debug"] == "bool"


@pytest.mark.parametrize("text,number", [
    (None, 15), ("", 15), ("9", 9), ("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("TERM", 15), ("USR1", 10),
    ("SIGUSR2", 12), ("RTMIN", 34), ("RTMIN+3", 37), ("rtmax", 64), ("64", 64),
])
def test_signals(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["NOTASIGNAL", "0", "65", "RTMIN+40", "SIG", "-1"])
def test_unknown_signals(text):
    with pytest.raises(InvalidArgument, match="unknown signal"):
        parse_signal(text)


@pytest.mark.parametrize("cid", ["abc", "a-b_c.d+e", "0123456789" * 7])
def test_valid_ids(cid):
    check_id(cid)


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "a b", "../x", "x\n"])
def test_invalid_ids(cid):
    with pytest.raises(InvalidArgument, match="invalid container id"):
        check_id(cid)


def test_transition_table_messages():
    assert TRANSITIONS["start"]["running"] == "cannot start an already running container"
    assert TRANSITIONS["kill"]["stopped"] == "container not running"
    assert TRANSITIONS["exec"]["stopped"] == "cannot exec in a stopped container"
    for verb, table in TRANSITIONS.items():
        assert set(table) == {"created", "running", "paused", "stopped"}, verb


def write_bundle(tmp_path, **changes) -> str:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec = specmod.default_spec()
    spec.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(spec))
    return str(tmp_path)


def test_spec_load_makes_root_absolute(tmp_path):
    spec = specmod.load(write_bundle(tmp_path))
    assert spec["root"]["path"] == os.path.realpath(tmp_path / "rootfs")


@pytest.mark.parametrize("change,phrase", [
    ({"root": {"path": "../outside"}}, "escapes the bundle"),
    ({"root": {"path": "missing"}}, "does not exist"),
    ({"root": {}}, "root.path is required"),
    ({"ociVersion": 1}, "ociVersion must be a string"),
    ({"process": {"args": []}}, "process.args"),
    ({"process": {"args": ["sh"], "cwd": "relative"}}, "cwd must be an absolute path"),
    ({"process": {"args": ["sh"], "rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}}, "unknown rlimit"),
    ({"process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_BOGUS"]}}}, "unknown capability"),
    ({"process": {"args": ["sh"], "oomScoreAdj": 5000}}, "oomScoreAdj"),
    ({"process": {"args": ["sh"], "user": {"uid": "0"}}}, "user.uid must be an integer"),
    ({"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}}, "duplicate namespace"),
    ({"linux": {"namespaces": [{"type": "net"}]}}, "unknown namespace type"),
    ({"linux": {"namespaces": [{"type": "network", "path": "/nonexistent/ns"}]}}, "does not exist"),
    ({"linux": {"uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}}, "need a user namespace"),
    ({"linux": {"devices": [{"path": "/dev/x", "type": "z"}]}}, "type must be one of"),
    ({"linux": {"maskedPaths": ["relative"]}}, "absolute paths"),
    ({"hooks": {"prestart": [{"path": "relative"}]}}, "must be an absolute path"),
    ({"hooks": {"bogus": []}}, "unknown hook kind"),
    ({"mounts": [{"type": "tmpfs"}]}, "destination is required"),
])
def test_spec_errors_name_the_field(tmp_path, change, phrase):
    with pytest.raises((InvalidArgument, NotFound), match=phrase):
        specmod.load(write_bundle(tmp_path, **change))


def test_spec_not_json(tmp_path):
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(InvalidArgument, match="invalid JSON"):
        specmod.load(str(tmp_path))
    os.remove(tmp_path / "config.json")
    with pytest.raises(NotFound, match="not found"):
        specmod.load(str(tmp_path))


def test_secure_join_stays_inside(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../etc", root / "up")
    os.symlink("loop", root / "loop")
    os.symlink("etc/passwd", root / "rel")
    r = str(root)
    assert secure_join(r, "/abs/passwd") == r + "/etc/passwd"
    assert secure_join(r, "/up/passwd") == r + "/etc/passwd"
    assert secure_join(r, "../../x") == r + "/x"
    assert secure_join(r, "/rel") == r + "/etc/passwd"
    assert secure_join(r, "/") == r
    with pytest.raises(InvalidArgument, match="too many symlinks"):
        secure_join(r, "/loop/x")


def test_mount_options():
    opts = MountOptions(["nosuid", "noexec", "rbind", "ro", "mode=755", "size=64k", "rprivate", "rro", "tmpcopyup"])
    assert opts.flags == MountFlag.NOSUID | MountFlag.NOEXEC | MountFlag.BIND | MountFlag.REC | MountFlag.RDONLY
    assert opts.data == "mode=755,size=64k"
    assert opts.propagation == [MountFlag.PRIVATE | MountFlag.REC]
    assert opts.recursive_set and opts.tmpcopyup and opts.is_bind
    assert MountOptions(["ro", "rw"]).flags == 0, "a later option wins"


def test_sysctl_rules():
    validate_sysctls({"net.ipv4.ip_forward": "1"}, {"network": ""})
    validate_sysctls({"kernel.shmmax": "1", "fs.mqueue.msg_max": "1"}, {"ipc": ""})
    validate_sysctls({"net.core.somaxconn": "1"}, {"network": "/run/netns/x"})
    with pytest.raises(InvalidArgument, match="not in a separate kernel namespace"):
        validate_sysctls({"kernel.panic": "1"}, {"ipc": ""})
    with pytest.raises(InvalidArgument, match="host's network namespace"):
        validate_sysctls({"net.ipv4.ip_forward": "1"}, {})


def test_flag_names():
    assert names(CloneFlag, CloneFlag.NEWNS | CloneFlag.NEWPID) == "CLONE_NEWNS|CLONE_NEWPID"
    assert names(MountFlag, MountFlag.BIND | 1 << 30) == "MS_BIND|0x40000000"
    assert names(MountFlag, 0) == "0"
    assert name(Prctl, Prctl.SET_NO_NEW_PRIVS) == "PR_SET_NO_NEW_PRIVS" and name(Prctl, 999) == "999"


@pytest.mark.parametrize("text,value", [("64m", 64 << 20), ("1g", 1 << 30), ("100", 100), ("2k", 2048),
                                         ("-1", -1), ("512mb", 512 << 20)])
def test_update_sizes(text, value):
    assert _size(text) == value


def test_jsonio_matches_json():
    docs = [{"a": [1, 2.5, "é\n\u2028", None, True, {}], "b": {"c": []}}, [], "s", 3, -0.5, {"k": [[1, [2]]]}]
    for doc in docs:
        assert jsonio.dumps(doc) == json.dumps(doc, separators=(",", ":"))
        assert jsonio.dumps(doc, compact=False) == json.dumps(doc)
        assert jsonio.dumps(doc, indent=2) == json.dumps(doc, indent=2)
        assert jsonio.loads(json.dumps(doc, indent=4).encode()) == doc
    for bad in ["", "{", "{nope", '{"a":1} x', "nul", "[1,]"]:
        with pytest.raises(ValueError):
            jsonio.loads(bad)
