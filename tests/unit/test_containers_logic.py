"""Pure pieces of the container engine: config merging and checks, restart decisions, the json-file log,
detach keys, the monitor's framing, the seccomp profile's decisions, users from an image's files."""

from __future__ import annotations

import json
import os
import re

import pytest

from dockyard.daemon import containerconfig, logs, monitorwire, ocispec, restart, seccomp_default
from dockyard.daemon.containers import overlay_changes, resolv_conf
from dockyard.daemon.stdio import scan_detach_keys
from dockyard.errors import InvalidArgument, NotSupported

# --- config --------------------------------------------------------------------------------------------


def test_image_defaults_merge_like_dockerd():
    image = {"Env": ["PATH=/bin", "A=image"], "Cmd": ["sh"], "Entrypoint": ["/entry"], "WorkingDir": "/w",
             "User": "u", "Labels": {"l": "image", "k": "v"}, "ExposedPorts": {"80/tcp": {}}}
    config, hc = containerconfig.normalize({"Image": "x", "Env": ["A=mine"], "Labels": {"l": "mine"}}, image)
    assert config["Env"] == ["A=mine", "PATH=/bin"]  # dockerd: the user's first, then the image's others
    assert config["Cmd"] == ["sh"] and config["Entrypoint"] == ["/entry"]
    assert config["WorkingDir"] == "/w" and config["User"] == "u"
    assert config["Labels"] == {"l": "mine", "k": "v"} and config["ExposedPorts"] == {"80/tcp": {}}
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {}} and hc["NetworkMode"] == "default"
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0} and hc["Runtime"] == "dockyard-runtime"
    # an entrypoint given drops the image's Cmd; an empty one clears the image's entrypoint
    config, _ = containerconfig.normalize({"Entrypoint": ["echo"]}, image)
    assert config["Entrypoint"] == ["echo"] and config["Cmd"] is None
    config, _ = containerconfig.normalize({"Entrypoint": [""], "Cmd": ["ls"]}, image)
    assert config["Entrypoint"] is None and config["Cmd"] == ["ls"]
    config, _ = containerconfig.normalize({"Cmd": "echo hi"}, {})
    assert config["Cmd"] == ["echo hi"]


@pytest.mark.parametrize("body, message", [
    ({"Cmd": ["x"], "HostConfig": {"Memory": 100}}, "Minimum memory limit allowed is 6MB"),
    ({"Cmd": ["x"], "HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}},
     "maximum retry count cannot be used"),
    ({"Cmd": ["x"], "HostConfig": {"LogConfig": {"Type": "bogus"}}},
     'error looking up logging plugin bogus: plugin "bogus" not found'),
    ({"Cmd": ["x"], "HostConfig": {"LogConfig": {"Config": {"max-file": "3"}}}}, "max-file cannot be set"),
    ({"Cmd": ["x"], "HostConfig": {"SecurityOpt": ["bogus"]}}, "Invalid --security-opt"),
    ({"Cmd": ["x"], "WorkingDir": "relative"}, "needs to be an absolute path"),
    ({"Cmd": ["x"], "StopSignal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
    ({"Cmd": ["x"], "HostConfig": {"CapAdd": ["bogus"]}}, 'invalid CapAdd: unknown capability: "CAP_BOGUS"'),
    ({"Cmd": ["x"], "Env": ["=x"]}, "invalid environment variable"),
    ({}, "No command specified"),
])
def test_refusals(body, message):
    with pytest.raises(InvalidArgument, match=message):
        containerconfig.normalize(dict(body, Image="x"), {})


def test_unsupported_options_say_so():
    with pytest.raises(NotSupported, match="joining another container's network"):
        containerconfig.normalize({"Cmd": ["x"], "HostConfig": {"NetworkMode": "container:abc"}}, {})
    with pytest.raises(InvalidArgument, match="includes invalid characters for a local volume name"):
        containerconfig.normalize({"Cmd": ["x"], "HostConfig": {"Binds": ["bad/vol:/data"]}}, {})
    with pytest.raises(InvalidArgument, match="volume name is too short"):
        containerconfig.normalize({"Cmd": ["x"], "HostConfig": {"Mounts": [
            {"Type": "volume", "Source": "v", "Target": "/data"}]}}, {})
    with pytest.raises(NotSupported, match="the syslog logging driver is not supported yet"):
        containerconfig.normalize({"Cmd": ["x"], "HostConfig": {"LogConfig": {"Type": "syslog"}}}, {})


def test_names():
    assert containerconfig.check_name("web") == "/web"
    assert containerconfig.check_name("/web.1_x-y") == "/web.1_x-y"
    for bad in ("", "-x", "a", "a b", "a/b"):
        with pytest.raises(InvalidArgument):
            containerconfig.check_name(bad)


def test_capabilities():
    assert ocispec.capabilities({}) == list(ocispec.DEFAULT_CAPS)
    caps = ocispec.capabilities({"CapAdd": ["sys_admin", "CAP_NET_ADMIN"], "CapDrop": ["chown"]})
    assert "CAP_SYS_ADMIN" in caps and "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps
    assert ocispec.capabilities({"CapDrop": ["ALL"], "CapAdd": ["KILL"]}) == ["CAP_KILL"]
    with pytest.raises(InvalidArgument, match="unknown capability"):
        ocispec.capabilities({"CapAdd": ["FLY"]})


def test_resources():
    res = ocispec.resources({"Memory": 64 << 20, "NanoCpus": 1_500_000_000, "PidsLimit": 10, "CpusetCpus": "0"},
                            False)
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert res["cpu"] == {"period": 100000, "quota": 150000, "cpus": "0"}
    assert res["pids"] == {"limit": 10}
    assert res["devices"][0] == {"allow": False, "access": "rwm"}
    assert ocispec.resources({"Memory": 64 << 20, "MemorySwap": -1}, False)["memory"]["swap"] == -1


def test_users_from_the_images_files(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app,other\n")
    root = str(tmp_path)
    assert ocispec.resolve_user(root, "") == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert ocispec.resolve_user(root, "app") == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 2000]}
    assert ocispec.resolve_user(root, "app:extra")["gid"] == 2000
    assert ocispec.resolve_user(root, "42:43") == {"uid": 42, "gid": 43, "additionalGids": [43]}
    with pytest.raises(InvalidArgument, match="unable to find user ghost"):
        ocispec.resolve_user(root, "ghost")
    with pytest.raises(InvalidArgument, match="unable to find group ghosts"):
        ocispec.resolve_user(root, "app:ghosts")


def test_resolv_conf_drops_loopback_nameservers():
    host = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch example.org\noptions edns0\n"
    assert resolv_conf(host, {}) == "nameserver 10.0.0.1\nsearch example.org\noptions edns0\n"
    assert resolv_conf(host, {"Dns": ["1.1.1.1"], "DnsSearch": ["a.b"]}) == \
        "options edns0\nnameserver 1.1.1.1\nsearch a.b\n"


# --- restart policies -----------------------------------------------------------------------------------


def hc(name, retries=0):
    return {"RestartPolicy": {"Name": name, "MaximumRetryCount": retries}}


def test_restart_after_exit():
    assert restart.after_exit(hc("always"), 0, 5, False, False)
    assert not restart.after_exit(hc("always"), 0, 5, True, True)          # docker stop
    assert restart.after_exit(hc("unless-stopped"), 1, 0, False, False)
    assert not restart.after_exit(hc("unless-stopped"), 1, 0, True, False)
    assert restart.after_exit(hc("on-failure", 2), 1, 1, False, False)
    assert not restart.after_exit(hc("on-failure", 2), 1, 2, False, False)
    assert not restart.after_exit(hc("on-failure"), 0, 0, False, False)
    assert not restart.after_exit(hc("no"), 1, 0, False, False)


def test_restart_at_daemon_start():
    assert restart.at_daemon_start(hc("always"), 0, 0, True, False, True)   # even when stopped by hand
    assert not restart.at_daemon_start(hc("always"), 0, 0, False, False, False)  # never started
    assert not restart.at_daemon_start(hc("unless-stopped"), 0, 0, True, False, True)
    assert restart.at_daemon_start(hc("on-failure"), 255, 0, False, True, True)
    assert not restart.at_daemon_start(hc("on-failure"), 255, 0, False, False, True)


def test_restart_delays():
    assert restart.next_delay(0, 0) == 0.1
    assert restart.next_delay(0.1, 1) == 0.2
    assert restart.next_delay(40, 1) == 60
    assert restart.next_delay(40, 11) == 0.1


# --- json-file log ------------------------------------------------------------------------------------


def test_log_lines_partials_and_reading(tmp_path):
    path = str(tmp_path / "c-json.log")
    w = logs.JsonFileWriter(path)
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\nthree")
    w.close()
    records = [json.loads(line) for line in open(path)]
    assert [(r["log"], r["stream"]) for r in records] == [("one\n", "stdout"), ("err\n", "stderr"),
                                                         ("two\n", "stdout"), ("three", "stdout")]
    assert all(len(r["time"]) == 30 and r["time"].endswith("Z") for r in records)
    reader = logs.LogReader(path, logs.LogQuery())
    entries = reader.read_available()
    assert [(e.stream, e.data) for e in entries] == [(1, b"one\n"), (2, b"err\n"), (1, b"two\n"), (1, b"three")]
    reader.close()
    tail = logs.tail_entries(entries, 2)
    assert [e.data for e in tail] == [b"two\n", b"three"]
    assert logs.tail_entries(entries, 0) == []


def test_log_rotation_and_a_follower_across_it(tmp_path):
    path = str(tmp_path / "c-json.log")
    w = logs.JsonFileWriter(path, max_size=300, max_file=3)
    reader = logs.LogReader(path, logs.LogQuery())
    seen = []
    for i in range(30):
        w.write("stdout", f"line {i:02d}\n".encode())
        seen += [e.data for e in reader.read_available()]
    w.close()
    seen += [e.data for e in reader.read_available()]
    assert seen == [f"line {i:02d}\n".encode() for i in range(30)]
    assert sorted(os.listdir(tmp_path)) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert all(os.path.getsize(tmp_path / name) <= 300 for name in os.listdir(tmp_path))


def test_log_options():
    assert logs.log_options({"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}) == \
        (10_000_000, 3)
    assert logs.log_options(None) == (0, 1)
    assert logs.parse_size("1k") == 1000 and logs.parse_size("512") == 512
    with pytest.raises(InvalidArgument):
        logs.log_options({"Config": {"bogus": "1"}})


# --- detach keys, framing ------------------------------------------------------------------------------


def test_detach_keys_across_reads():
    keys = b"\x10\x11"
    assert scan_detach_keys(b"abc", keys) == (b"abc", b"", False)
    assert scan_detach_keys(b"ab\x10", keys) == (b"ab", b"\x10", False)
    assert scan_detach_keys(b"\x10\x11rest", keys) == (b"", b"", True)
    assert scan_detach_keys(b"\x10x", keys) == (b"\x10x", b"", False)


def test_monitor_frames_split_anywhere():
    data = monitorwire.frame(1, b"out") + monitorwire.control({"op": "x", "seq": 1}) + monitorwire.frame(0, b"")
    decoder = monitorwire.Decoder()
    frames = []
    for i in range(len(data)):
        frames += decoder.feed(data[i:i + 1])
    assert frames == [(1, b"out"), (3, b'{"op":"x","seq":1}'), (0, b"")]
    with pytest.raises(monitorwire.ProtocolError):
        monitorwire.Decoder().feed(b"\x07\x00\x00\x00\x00\x00\x00\x00")


# --- seccomp ------------------------------------------------------------------------------------------


def test_default_profile_decisions():
    default = seccomp_default.profile(set(ocispec.DEFAULT_CAPS), "x86_64", (6, 1))
    allow, eperm = ("SCMP_ACT_ALLOW", None), ("SCMP_ACT_ERRNO", None)
    assert seccomp_default.decide(default, "read") == allow
    assert seccomp_default.decide(default, "mount") == eperm
    assert seccomp_default.decide(default, "ptrace") == allow            # safe since 4.8
    assert seccomp_default.decide(default, "chroot") == allow            # CAP_SYS_CHROOT is a default
    assert seccomp_default.decide(default, "clone", (0x11,)) == allow
    assert seccomp_default.decide(default, "clone", (0x10000000,)) == eperm   # CLONE_NEWUSER
    assert seccomp_default.decide(default, "clone3") == ("SCMP_ACT_ERRNO", 38)
    assert seccomp_default.decide(default, "personality", (8,)) == allow
    assert seccomp_default.decide(default, "personality", (0x400000,)) == eperm
    admin = seccomp_default.profile({"CAP_SYS_ADMIN"}, "x86_64", (6, 1))
    assert seccomp_default.decide(admin, "mount") == allow
    assert seccomp_default.decide(admin, "clone", (0x10000000,)) == allow
    assert seccomp_default.decide(admin, "chroot") == eperm
    old_kernel = seccomp_default.profile(set(), "x86_64", (4, 4))
    assert seccomp_default.decide(old_kernel, "ptrace") == eperm


# --- diff ------------------------------------------------------------------------------------------------


@pytest.mark.root  # mknod of a whiteout needs CAP_MKNOD
def test_overlay_changes(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in (lower / "etc", lower / "tmp", upper / "etc", upper / "tmp" / "new"):
        d.mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("x")
    (upper / "etc" / "hosts").write_text("")          # a mount point the runtime made
    (upper / "tmp" / "new" / "f").write_text("y")
    os.mknod(upper / "etc" / "gone", 0o600 | 0o020000, 0)  # an overlay whiteout
    changes = overlay_changes(str(upper), [str(lower)])
    assert changes == [("C", "/etc"), ("D", "/etc/gone"), ("C", "/tmp"), ("A", "/tmp/new"), ("A", "/tmp/new/f")]
    os.unlink(upper / "etc" / "gone")
    assert ("C", "/etc") not in overlay_changes(str(upper), [str(lower)])


def test_process_environment_as_dockerd_makes_it():
    config = {"Env": ["B=2", "HOSTNAME=x", "A=1", "PATH"]}
    assert ocispec.environment(config, False, "h") == ["HOSTNAME=x", "B=2", "A=1"]
    assert ocispec.environment({"Env": ["A=1"]}, True, "h", ["A=2", "C"]) == [
        "PATH=" + ocispec.DEFAULT_PATH, "HOSTNAME=h", "TERM=xterm", "A=2"]


@pytest.mark.parametrize(("text", "number"), [
    ("KILL", 9), ("sigkill", 9), ("CLD", 17), ("+17", 17), ("RTMIN+15", 49), ("RTMAX-14", 50), ("32", 32),
    ("-1", -1), ("", 15)])
def test_signals_as_dockerd_reads_them(text, number):
    from dockyard.daemon.signals import signal_number, valid_signal

    assert signal_number(text) == number
    assert valid_signal(number) == (number not in (32, -1))


@pytest.mark.parametrize("text", ["BOGUS", "0", " 17", "17.0", "RTMIN+16", "RTMAX-15", "UNUSED", "1_0"])
def test_bad_signals_are_dockerds_invalid_signal(text):
    from dockyard.daemon.signals import signal_number

    with pytest.raises(InvalidArgument, match="^" + re.escape(f"Invalid signal: {text}") + "$"):
        signal_number(text)
