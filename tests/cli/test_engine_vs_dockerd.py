"""Black-box: the engine's behaviour where dockerd is the reference, through both CLIs, on both engines.

Each test runs against dockerd and dockyardd (tests/support/targets.py) and
compares what the docker CLI and ours print, as test_container_vs_docker.py
does; the scenarios here pin what the engine itself does (streams, defaults,
inspect fields, wording) rather than what the CLI prints about itself.
"""

from __future__ import annotations

import hashlib
import json
import random
import time

import pytest

from tests.cli.test_container_vs_docker import RUN, SESSION_LABEL, assert_same, running, unique  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.peers]


# --- stdin and output: every byte, however much ----------------------------------------------------------


def _random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_large_binary_stdin_and_output_pass_whole(target):
    """Binary stdin (ctrl-p ctrl-q and every other byte value, many times over) and outputs of megabytes
    pass both ways, for run -i and exec -i; stdin the process does not read for a while is held back
    (nothing dropped, however much: more than the engine buffers)."""
    data = _random(5_000_000, 1)
    want = f"{_sha(data)}  -\n"
    assert assert_same(target, *RUN, "-i", "bb", "sh", "-c", "cat | sha256sum", input=data, attempts=1,
                       timeout=60) == (0, want, "")
    # Output as large as the input, on both streams at once.
    got = assert_same(target, *RUN, "-i", "bb", "sh", "-c", "tee /dev/stderr | sha256sum", input=data,
                      normalize=lambda s: _sha(s.encode(errors="surrogateescape")) if len(s) > 200 else s,
                      attempts=1, timeout=60)
    assert got[1] == want
    late = _random(24 << 20, 2)  # more than any buffer between the client and the process
    assert assert_same(target, *RUN, "-i", "bb", "sh", "-c", "sleep 2; wc -c", input=late, attempts=1,
                       timeout=60) == (0, f"{len(late)}\n", "")
    name = unique("bigio")
    started = target.docker("run", "-d", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb",
                            "sleep", "120")
    assert started.returncode == 0, started.stderr
    try:
        assert assert_same(target, "exec", "-i", name, "sh", "-c", "cat | sha256sum", input=data, attempts=1,
                           timeout=60) == (0, want, "")
        out = target.docker("exec", "-i", name, "cat", input=data, timeout=60)
        assert (out.returncode, _sha(out.stdout)) == (0, _sha(data))
        out = target.dockyard("exec", "-i", name, "cat", input=data, timeout=60)
        assert (out.returncode, _sha(out.stdout)) == (0, _sha(data))
    finally:
        target.docker("rm", "-f", name)


def test_attach_stdin_end_ends_the_session_without_stdin_once(target):
    """dockerd closes an attach's output when the client's stdin ends, unless the container was created to
    close its input then (StdinOnce, `run -i` in the foreground): `docker attach` gets nothing more and
    returns the container's exit code once it exits."""
    for cli in ("docker", "dockyard"):
        name = unique("attach")
        started = target.docker("run", "-d", "-i", "--name", name, "--network", "none", "-l", SESSION_LABEL,
                                "bb", "sh", "-c", "read x; sleep 0.5; echo got $x; exit 3")
        assert started.returncode == 0, started.stderr
        try:
            attached = target.cli(cli)("attach", name, input=b"hello\n", timeout=30)
            assert (attached.returncode, attached.stdout, attached.stderr) == (3, b"", b""), cli
            logs = target.docker("logs", name)
            assert logs.stdout == b"got hello\n"
        finally:
            target.docker("rm", "-f", name)


# --- working directories ------------------------------------------------------------------------------------


def test_working_directory_is_made_at_create_and_checked(target):
    """dockerd makes the working directory at create (cleaned, symlinks resolved in the container, shown by
    diff) and again at start; a non-directory there is refused; an exec's is only checked, by the runtime,
    whose words reach the client with dockerd's hint for ENOTDIR."""
    assert assert_same(target, *RUN, "-w", "/nonexist/deep", "bb", "pwd") == (0, "/nonexist/deep\n", "")
    assert assert_same(target, *RUN, "-u", "nobody", "-w", "/new", "bb", "stat", "-c", "%U %a", "/new") == (
        0, "root 755\n", "")
    refused = assert_same(target, *RUN, "-w", "/etc/passwd", "bb", "pwd")
    assert refused[0] == 125 and "Cannot mkdir: /etc/passwd is not a directory" in refused[2]
    name = unique("wd")
    created = target.docker("create", "--name", name, "--network", "none", "-l", SESSION_LABEL, "-w",
                            "/tmp/../x/./", "bb", "pwd")
    assert created.returncode == 0, created.stderr
    try:
        assert target.docker("inspect", "-f", "{{.Config.WorkingDir}}", name).stdout == b"/x\n"
        assert target.docker("diff", name).stdout == b"A /x\n"
        assert target.docker("start", "-a", name).stdout == b"/x\n"
    finally:
        target.docker("rm", "-f", name)
    name = unique("wd")
    assert target.docker("run", "-d", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb", "sleep",
                         "60").returncode == 0
    try:
        for workdir in ("/nonexist", "/etc/passwd"):
            got = assert_same(target, "exec", "-w", workdir, name, "pwd")
            assert got[0] == 126 and f'chdir to cwd ("{workdir}") set in config.json failed' in got[1] + got[2]
    finally:
        target.docker("rm", "-f", name)


# --- mounts ----------------------------------------------------------------------------------------------------

MOUNTS = ("--mount", "type=tmpfs,target=/t",
          "--mount", "type=tmpfs,target=/t2,tmpfs-size=1048576,tmpfs-mode=1770,readonly",
          "--mount", "type=bind,source=/etc,target=/hostetc,readonly", "--mount", "type=bind,src=/usr,dst=/t/usr",
          "--tmpfs", "/old:size=2m,exec", "-v", "/etc:/vetc:ro", "--tmpfs", "/dev/shm:size=1m")
MOUNTED = r"grep -E ' /(t|t2|hostetc|t/usr|old|vetc|dev/shm) ' /proc/self/mountinfo | cut -d' ' -f5- | sort"


def test_mounts_from_every_flag(target):
    """--mount (tmpfs and bind), --tmpfs and -v mount as dockerd mounts them (shallowest first, a user's
    mount replacing the default one at its place); inspect lists Binds and Mounts, not Tmpfs."""
    got = assert_same(target, *RUN, *MOUNTS, "bb", "sh", "-c", MOUNTED)
    assert got[0] == 0 and "/t2 ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,size=1024k,mode=1770\n" in got[1]
    assert "/dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,size=1024k\n" in got[1]
    name = unique("mounts")
    created = target.docker("create", "--name", name, "--network", "none", "-l", SESSION_LABEL, *MOUNTS, "bb",
                            "true")
    assert created.returncode == 0, created.stderr
    try:
        listed = json.loads(target.docker("inspect", "-f", "{{json .Mounts}}", name).stdout)
    finally:
        target.docker("rm", "-f", name)
    assert sorted(listed, key=lambda m: m["Destination"]) == [
        {"Type": "bind", "Source": "/etc", "Destination": "/hostetc", "Mode": "", "RW": False,
         "Propagation": "rprivate"},
        {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": True, "Propagation": ""},
        {"Type": "bind", "Source": "/usr", "Destination": "/t/usr", "Mode": "", "RW": True,
         "Propagation": "rprivate"},
        {"Type": "tmpfs", "Source": "", "Destination": "/t2", "Mode": "", "RW": False, "Propagation": ""},
        {"Type": "bind", "Source": "/etc", "Destination": "/vetc", "Mode": "ro", "RW": False,
         "Propagation": "rprivate"},
    ]


@pytest.mark.parametrize("args", [
    ["--mount", "type=bind,source=/nonexistent-source,target=/t"],
    ["--mount", "type=bind,source=/etc,target=/t", "--mount", "type=tmpfs,target=/t"],
    ["-v", "/etc:/t", "--mount", "type=tmpfs,target=/t"],
    ["--mount", "type=tmpfs,target=/"],
    ["--tmpfs", "/x:bogus=1"],
    ["--mount", "type=bind,source=/etc,target=/t,bind-propagation=bogus"],
])
def test_bad_mounts_are_refused_alike(target, args):
    got = assert_same(target, *RUN, *args, "bb", "true")
    assert got[0] == 125


def test_a_missing_bind_source_of_v_is_made(target, tmp_path):
    source = tmp_path / f"made-{target.name}" / "deep"
    assert assert_same(target, *RUN, "-v", f"{source}:/m", "bb", "stat", "-c", "%F", "/m") == (0, "directory\n", "")
    assert source.is_dir()


def test_volumes_named_anonymous_and_copied_up(target):
    """A named volume is made on demand and filled from the image's directory once (it stays as the
    container left it); `-v /path` and `--mount` without a source make anonymous volumes, which `rm -v`
    removes while named ones stay; inspect's Mounts say so in dockerd's shape."""
    vol = unique("vol")
    name = unique("vols")
    try:
        assert assert_same(target, *RUN, "-v", f"{vol}:/etc", "bb", "sh", "-c",
                           "cat /etc/group >/dev/null && echo ok; echo x > /etc/mark") == (0, "ok\n", "")
        assert assert_same(target, *RUN, "-v", f"{vol}:/data:ro", "bb", "cat", "/data/mark") == (0, "x\n", "")
        got = assert_same(target, *RUN, "-v", f"{vol}:/data:ro", "bb", "sh", "-c", "echo y > /data/mark")
        assert got[0] == 1 and "Read-only file system" in got[2]
        created = target.docker("create", "--name", name, "-l", SESSION_LABEL, "--network", "none",
                                "-v", f"{vol}:/n", "-v", "/anon", "--mount", "type=volume,dst=/m,volume-nocopy",
                                "bb", "true")
        assert created.returncode == 0, created.stderr
        mounts = json.loads(target.docker("inspect", "-f", "{{json .Mounts}}", name).stdout)
        by_dest = {m["Destination"]: m for m in mounts}
        assert set(by_dest) == {"/n", "/anon", "/m"}
        assert {k: v for k, v in by_dest["/n"].items() if k != "Source"} == {
            "Type": "volume", "Name": vol, "Destination": "/n", "Driver": "local", "Mode": "z", "RW": True,
            "Propagation": ""}
        assert by_dest["/n"]["Source"].endswith(f"/volumes/{vol}/_data")
        assert by_dest["/anon"]["Mode"] == "" and len(by_dest["/anon"]["Name"]) == 64
        anonymous = [by_dest["/anon"]["Name"], by_dest["/m"]["Name"]]
        busy = target.docker("volume", "rm", vol)
        assert busy.returncode == 1
        assert busy.stderr.decode().startswith(f"Error response from daemon: remove {vol}: volume is in use - [")
        assert target.docker("rm", "-v", name).returncode == 0
        left = target.docker("volume", "ls", "-q").stdout.decode().split()
        assert vol in left and not set(anonymous) & set(left)
    finally:
        target.docker("rm", "-f", "-v", name)
        target.docker("volume", "rm", "-f", vol)


def test_volume_commands_and_their_errors(target):
    vol = unique("vcmd")
    try:
        assert assert_same(target, "volume", "create", "--label", "k=v", vol) == (0, f"{vol}\n", "")
        assert assert_same(target, "volume", "create", vol) == (0, f"{vol}\n", "")  # an existing one: no error
        assert assert_same(target, "volume", "ls", "-f", f"name={vol}", "--format",
                           "{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}}") == (0, f"{vol} local k=v local\n", "")
        assert assert_same(target, "volume", "inspect", "-f", "{{.Name}} {{.Labels}} {{.Options}}", vol) == (
            0, f"{vol} map[k:v] map[]\n", "")
        assert assert_same(target, "volume", "ls", "-q", "-f", "dangling=true", "-f", f"name={vol}") == (
            0, f"{vol}\n", "")
        for args, status, message in (
                (("volume", "create", "bad/name"), 1, 'create bad/name: "bad/name" includes invalid characters '
                 'for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
                 "a host directory, use absolute path"),
                (("volume", "create", "-d", "nodriver", "x1"), 1, "create x1: error looking up volume plugin "
                 'nodriver: plugin "nodriver" not found'),
                (("volume", "create", "-o", "bogus=1", "x2"), 1, 'create x2: invalid option: "bogus"'),
                (("volume", "create", "-o", "type=tmpfs", "x3"), 1, 'create x3: missing required option: "device"'),
                (("volume", "inspect", "nosuch-vol"), 1, "get nosuch-vol: no such volume"),
                (("volume", "rm", "nosuch-vol"), 1, "get nosuch-vol: no such volume"),
                (("volume", "ls", "-f", "bogus=1"), 1, "Invalid filter 'bogus'")):
            got = assert_same(target, *args)
            assert got[0] == status and got[2].endswith(f"Error response from daemon: {message}\n"), got
        assert assert_same(target, "volume", "rm", "-f", "nosuch-vol") == (0, "nosuch-vol\n", "")
        assert "x3" not in target.docker("volume", "ls", "-q").stdout.decode().split()
    finally:
        target.docker("volume", "rm", "-f", vol)


def test_a_volume_with_options_is_mounted_while_used(target):
    """`volume create -o type=tmpfs -o device=tmpfs -o o=size=1m`: a tmpfs of that size while a container
    uses it, gone with its contents after; prune keeps such volumes."""
    vol = unique("vtmp")
    try:
        made = target.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", vol)
        assert made.returncode == 0, made.stderr
        assert assert_same(target, *RUN, "-v", f"{vol}:/t", "bb", "sh", "-c",
                           "df -k /t | tail -1 | awk '{print $1, $2}'; echo a > /t/a; ls /t") == (
            0, "tmpfs 1024\na\n", "")
        assert assert_same(target, *RUN, "-v", f"{vol}:/t", "bb", "ls", "/t") == (0, "", "")
        mountpoint = target.docker("volume", "inspect", "-f", "{{.Mountpoint}}", vol).stdout.decode().strip()
        assert mountpoint not in open("/proc/self/mountinfo").read()
        target.docker("volume", "prune", "-f")
        assert vol in target.docker("volume", "ls", "-q").stdout.decode().split()
    finally:
        target.docker("volume", "rm", "-f", vol)



# --- sizes -------------------------------------------------------------------------------------------------------


def test_size_root_fs_counts_the_image(target):
    """SizeRootFs (inspect -s, ps -s) is what the container wrote plus its image's Size, as dockerd counts."""
    name = unique("size")
    started = target.docker("run", "-d", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb", "sh", "-c",
                            "printf ab > /f; sleep 60")
    assert started.returncode == 0, started.stderr
    try:
        image_size = int(target.docker("image", "inspect", "-f", "{{.Size}}", "bb").stdout)
        for _ in range(50):
            sizes = target.docker("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", name).stdout.split()
            if sizes[0] == b"2":
                break
            time.sleep(0.1)
        assert [int(s) for s in sizes] == [2, 2 + image_size]
        listed = json.loads(target.docker("ps", "-s", "--no-trunc", "-f", f"name={name}", "--format",
                                          "{{json .}}").stdout)
        virtual = target.docker("images", "--format", "{{.Size}}", "bb").stdout.decode().strip()
        assert listed["Size"] == f"2B (virtual {virtual})"
    finally:
        target.docker("rm", "-f", name)


# --- list ----------------------------------------------------------------------------------------------------------


def test_list_command_quotes_arguments_with_spaces(target):
    """GET /containers/json `Command` as dockerd makes it: arguments with a space in single quotes."""
    name = unique("cmd")
    created = target.docker("create", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb", "sh", "-c",
                            "echo out; it's  x", "", "a b", "tab\tx")
    assert created.returncode == 0, created.stderr
    try:
        client = target.client()
        try:
            listed = client.containers(all=True, filters={"name": [name]})
        finally:
            client.close()
        assert [c["Command"] for c in listed] == ["sh -c 'echo out; it's  x'  'a b' tab\tx"]
        shown = target.dockyard("ps", "-a", "--no-trunc", "-f", f"name={name}", "--format", "{{.Command}}")
        assert shown.stdout == target.docker("ps", "-a", "--no-trunc", "-f", f"name={name}", "--format",
                                             "{{.Command}}").stdout
    finally:
        target.docker("rm", "-f", name)


# --- inspect -------------------------------------------------------------------------------------------------------

# Fields of `docker inspect` that differ between the engines on purpose, and why.
INSPECT_DIFFERS = {
    "Id": "each container's own",
    "Created": "each container's own",
    "Name": "a random name",
    "Config.Hostname": "the short id",
    "State.Pid": "each run's own",
    "State.StartedAt": "each run's own",
    "Image": "each engine imported bb itself: other layer tars, other ids",
    "ResolvConfPath": "under each engine's data root",
    "HostnamePath": "under each engine's data root",
    "HostsPath": "under each engine's data root",
    "LogPath": "under each engine's data root",
    "GraphDriver.Data.LowerDir": "each engine's storage (dockerd's also has its -init layer)",
    "GraphDriver.Data.MergedDir": "each engine's storage",
    "GraphDriver.Data.UpperDir": "each engine's storage",
    "GraphDriver.Data.WorkDir": "each engine's storage",
    "HostConfig.Runtime": "the default runtime: ours is dockyard-runtime, dockerd's runc",
    "NetworkSettings.Networks.none.EndpointID": "no network objects until the networking issue",
    "NetworkSettings.Networks.none.NetworkID": "no network objects until the networking issue",
    "NetworkSettings.SandboxID": "no network sandboxes until the networking issue",
    "NetworkSettings.SandboxKey": "no network sandboxes until the networking issue",
}


def _flat(value, path: str = "") -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{path}.{key}" if path else key))
        return out
    return {path: value}


def _inspect_of_a_run(target) -> dict:
    started = target.docker("run", "-d", "--network", "none", "-l", SESSION_LABEL, "bb", "sleep", "60")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    try:
        return json.loads(target.docker("inspect", cid).stdout)[0]
    finally:
        target.docker("rm", "-f", cid)


def test_inspect_matches_dockerd_field_by_field(dockerd_target, dockyardd_target):
    """`docker inspect` of the same `docker run -d --network none bb sleep 60` on both engines: the same
    fields with the same values, but for INSPECT_DIFFERS (present on both, values of their own)."""
    theirs, mine = _flat(_inspect_of_a_run(dockerd_target)), _flat(_inspect_of_a_run(dockyardd_target))
    assert sorted(theirs) == sorted(mine), "fields only dockerd has: " + repr(sorted(set(theirs) - set(mine))) + \
        "; only ours: " + repr(sorted(set(mine) - set(theirs)))
    differing = {key for key in theirs if theirs[key] != mine[key]}
    assert differing <= set(INSPECT_DIFFERS), {k: (theirs[k], mine[k]) for k in differing - set(INSPECT_DIFFERS)}
    assert mine["Config.Hostname"] == mine["Id"][:12]
    assert mine["HostConfig.IpcMode"] == "private" and mine["HostConfig.CgroupnsMode"] in ("host", "private")


# --- environment ---------------------------------------------------------------------------------------------------


def _sdk(target):
    import docker

    return docker.DockerClient(base_url=target.host, timeout=60)


DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.mark.parametrize(("tty", "env", "want", "exec_want"), [
    (False, ["A=1", "B=2"], [DEFAULT_PATH, "HOSTNAME=<h>", "A=1", "B=2", "HOME=/root"],
     [DEFAULT_PATH, "HOSTNAME=<h>", "A=exec", "B=2", "C=3", "HOME=/root"]),
    (False, ["B=2", "HOSTNAME=x", "PATH=/bin", "A=1"], ["PATH=/bin", "HOSTNAME=x", "B=2", "A=1", "HOME=/root"],
     ["PATH=/bin", "HOSTNAME=x", "B=2", "A=exec", "C=3", "HOME=/root"]),
    (True, ["A=1", "TERM=vt100"], [DEFAULT_PATH, "HOSTNAME=<h>", "TERM=vt100", "A=1", "HOME=/root"],
     [DEFAULT_PATH, "HOSTNAME=<h>", "A=exec", "TERM=vt100", "C=3", "HOME=/root"]),
])
def test_environment_order(target, tty, env, want, exec_want):
    """dockerd's order: PATH, HOSTNAME (TERM with a TTY), the user's variables replacing those in place or
    appended, HOME last (from the runtime); an exec's the same with its own TTY, then its own variables."""
    client = _sdk(target)
    ctr = client.containers.run("bb", ["sleep", "60"], environment=env, tty=tty, network_mode="none",
                                labels=dict([SESSION_LABEL.split("=", 1)]), detach=True)
    try:
        hostname = ctr.attrs["Config"]["Hostname"]
        out = client.containers.run("bb", ["env"], environment=env, tty=tty, network_mode="none", remove=True,
                                    hostname=hostname)
        assert out.decode().replace("\r", "").splitlines() == [w.replace("<h>", hostname) for w in want]
        code, out = ctr.exec_run(["env"], environment=["C=3", "A=exec"], tty=False)
        assert (code, out.decode().splitlines()) == (0, [w.replace("<h>", hostname) for w in exec_want])
    finally:
        ctr.remove(force=True)
        client.close()


def test_user_environment_comes_before_the_images(target):
    """dockerd's merge: the user's variables, then the image's that they do not set."""
    name, image = unique("envimg"), f"envimg-{unique()}:t"
    assert target.docker("create", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb",
                         "true").returncode == 0
    try:
        committed = target.docker("commit", "--change", "ENV FOO=1 PATH=/bin:/usr/bin BAR=2", name, image)
        assert committed.returncode == 0, committed.stderr
        got = target.docker("run", "--rm", "--network", "none", "-e", "BAR=9", image, "env")
        assert got.stdout.decode().splitlines()[2:] == ["BAR=9", "FOO=1", "HOME=/root"]
        created = target.docker("create", "--network", "none", "-l", SESSION_LABEL, "-e", "BAR=9", image, "env")
        shown = target.docker("inspect", "-f", "{{json .Config.Env}}", created.stdout.decode().strip())
        assert json.loads(shown.stdout) == ["BAR=9", "FOO=1", "PATH=/bin:/usr/bin"]
        target.docker("rm", created.stdout.decode().strip())
    finally:
        target.docker("rm", "-f", name)
        target.docker("rmi", image)


# --- logs ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logged(target):
    name = unique("logs")
    ran = target.docker("run", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb", "sh", "-c",
                        "echo 1; echo 2 >&2; echo 3")
    assert ran.returncode == 0, ran.stderr
    yield name
    target.docker("rm", "-f", name)


@pytest.mark.parametrize("tail", ["x", "2", "+2", "-1", "0", " 2", "1_0", "all", ""])
def test_logs_tail_is_go_atoi_or_everything(target, logged, tail):
    """dockerd reads `tail` with Go's strconv.Atoi; anything it refuses means the whole log."""
    got = assert_same(target, "logs", "--tail", tail, logged)
    assert got[0] == 0
    if tail in ("x", "-1", " 2", "1_0", "all"):
        assert (got[1], got[2]) == ("1\n3\n", "2\n")


# --- export and commit: the init layer ------------------------------------------------------------------------


def _members(data: bytes) -> list[tuple]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        # Modes without the file type bits docker's archives add (fillGo18FileTypeBits): tar
        # itself ignores them, and Python's tarfile cannot write them.
        return sorted((m.name.rstrip("/"), m.type.decode(), oct(m.mode & 0o7777), m.uname, m.gname, m.uid, m.gid,
                       m.size, m.linkname) for m in tar.getmembers())


def test_export_and_commit_see_the_init_layer_as_dockerd(dockerd_target, dockyardd_target, tmp_path):
    """The same image on both engines: a created container exports the same entries as on dockerd (its init
    layer's /.dockerenv, /dev/console, /etc/hosts… included), and a commit holds only what the container
    wrote (the engine's mount points are in the init layer, not in the container's own)."""
    from tests.support.engine import make_busybox_tar

    tarball = make_busybox_tar(tmp_path / "rootfs.tar")
    image = f"initlayer-{unique()}:t"
    seen = {}
    for target in (dockerd_target, dockyardd_target):
        imported = target.docker("import", str(tarball), image)
        assert imported.returncode == 0, imported.stderr
        name = unique("export")
        try:
            assert target.docker("create", "--name", name, "--network", "none", "-l", SESSION_LABEL, image,
                                 "true").returncode == 0
            exported = target.docker("export", name)
            assert exported.returncode == 0, exported.stderr
            ran = target.docker("run", "--name", name + "-c", "--network", "none", "-l", SESSION_LABEL, image,
                                "sh", "-c", "echo hi > /new; mkdir -p /etc/x")
            assert ran.returncode == 0, ran.stderr
            assert target.docker("commit", name + "-c", image + "c").returncode == 0
            saved = target.docker("save", image + "c")
            manifest, layers = None, {}
            import io
            import tarfile

            with tarfile.open(fileobj=io.BytesIO(saved.stdout)) as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        layers[member.name] = tar.extractfile(member).read()
                manifest = json.loads(layers["manifest.json"])[0]
            committed = [m[:2] for m in _members(layers[manifest["Layers"][-1]])]
            seen[target.name] = (_members(exported.stdout), committed)
        finally:
            target.docker("rm", "-f", name, name + "-c")
            target.docker("rmi", image, image + "c")
    for entry in ((".dockerenv", "0", "0o755", "root", "root", 0, 0, 0, ""),
                  ("etc/mtab", "2", "0o777", "root", "root", 0, 0, 0, "/proc/mounts")):
        assert entry in seen["dockerd"][0]
    theirs, mine = set(seen["dockerd"][0]), set(seen["dockyardd"][0])
    assert mine == theirs, f"only dockerd's: {sorted(theirs - mine)}; only ours: {sorted(mine - theirs)}"
    assert seen["dockyardd"][1] == seen["dockerd"][1] == [("etc", "5"), ("etc/x", "5"), ("new", "0")]


# --- wording -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("signal", "message"), [
    ("BOGUS", "Invalid signal: BOGUS"),
    ("SIGBOGUS", "Invalid signal: SIGBOGUS"),
    ("RTMIN+16", "Invalid signal: RTMIN+16"),
    ("0", "Invalid signal: 0"),
    ("999", "Cannot kill container: {name}: The linux daemon does not support signal 999"),
    ("32", "Cannot kill container: {name}: The linux daemon does not support signal 32"),
])
def test_kill_signal_refusals(target, running, signal, message):  # noqa: F811
    got = assert_same(target, "kill", "-s", signal, running)
    assert got == (1, "", f"Error response from daemon: {message.format(name=running)}\n")


@pytest.mark.parametrize(("flag", "field"), [("--cap-add", "CapAdd"), ("--cap-drop", "CapDrop")])
def test_unknown_capability_wording(target, flag, field):
    got = assert_same(target, *RUN, flag, "bogus", "bb", "true")
    assert got[0] == 125
    assert got[2].startswith(f'dockyard: Error response from daemon: invalid {field}: unknown capability: '
                             f'"CAP_BOGUS"\n')


def test_rename_conflict_wording(target, running):  # noqa: F811
    other = unique("other")
    assert target.docker("create", "--name", other, "--network", "none", "-l", SESSION_LABEL, "bb",
                         "true").returncode == 0
    try:
        got = assert_same(target, "rename", other, running)
        assert got[0] == 1
        assert got[2].startswith(f'Error response from daemon: Error when allocating new name: Conflict. The '
                                 f'container name "/{running}" is already in use by container "')
    finally:
        target.docker("rm", "-f", other)


def test_exec_into_a_paused_container_names_it_as_given(target, running):  # noqa: F811
    assert target.docker("pause", running).returncode == 0
    try:
        short = target.docker("inspect", "-f", "{{.Id}}", running).stdout.decode()[:10]
        for ref in (running, short):
            got = assert_same(target, "exec", ref, "true")
            assert got == (1, "", f"Error response from daemon: Container {ref} is paused, unpause the container "
                                  "before exec\n")
    finally:
        target.docker("unpause", running)


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "ps: error: unknown gnu long option"),
    (["axo", "bogus"], 'ps: error: unknown user-defined format specifier "bogus"'),
])
def test_top_with_bad_ps_arguments_says_pss_first_line(target, running, args, message):  # noqa: F811
    got = assert_same(target, "top", running, *args)
    assert got == (1, "", f"Error response from daemon: {message}\n")


def test_unknown_log_driver_wording(target):
    """dockerd's words, measured on the peer (it looks for a plugin of that name for 15 s before saying so:
    too long to ask it in every run)."""
    if target.name == "dockerd":
        pytest.skip("dockerd takes 15 s to answer this")
    got = assert_same(target, *RUN, "--log-driver", "bogus", "bb", "true")
    assert got[0] == 125
    assert got[2].startswith('dockyard: Error response from daemon: error looking up logging plugin bogus: '
                             'plugin "bogus" not found\n')


def test_cp_archive_names_owners_from_the_container(target):
    """uname/gname in a cp archive come from the container's /etc/passwd and /etc/group (ids without a
    name there stay numbers), running or stopped."""
    import io
    import tarfile

    name = unique("cpnames")
    started = target.docker("run", "-d", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb", "sh", "-c",
                            "mkdir /d && touch /d/a /d/b /d/c && chown 65534:65534 /d/a && chown 1234:4321 /d/b "
                            "&& chown 0:0 /d/c && sleep 300")
    assert started.returncode == 0, started.stderr
    try:
        for _ in range(50):
            if target.docker("exec", name, "test", "-e", "/d/c").returncode == 0:
                break
            time.sleep(0.1)
        for _ in ("running", "stopped"):
            for cli in ("docker", "dockyard"):
                copied = target.cli(cli)("cp", f"{name}:/d", "-")
                with tarfile.open(fileobj=io.BytesIO(copied.stdout)) as tar:
                    owners = {m.name: (m.uname, m.gname, m.uid, m.gid) for m in tar.getmembers()}
                assert owners == {"d": ("root", "root", 0, 0), "d/a": ("nobody", "nobody", 65534, 65534),
                                  "d/b": ("", "", 1234, 4321), "d/c": ("root", "root", 0, 0)}, cli
            target.docker("stop", "-t", "0", name)
    finally:
        target.docker("rm", "-f", name)


def test_cp_of_a_stopped_container_sees_its_binds_and_refuses_read_only_places(target, tmp_path):
    """As dockerd mounts them for cp: a stopped container's binds and the engine's /etc files (once it ran);
    writes into a read-only bind or root are refused in dockerd's words, once the path is found."""
    import io
    import tarfile

    source = tmp_path / f"src-{target.name}"
    source.mkdir()
    (source / "f").write_text("from the host\n")
    (tmp_path / "new").write_text("x\n")
    name = unique("cpstopped")
    assert target.docker("run", "--name", name, "--network", "none", "-l", SESSION_LABEL, "--read-only", "-v",
                         f"{source}:/data:ro", "-v", f"{source}:/rw", "bb", "true").returncode == 0
    try:
        copied = target.docker("cp", f"{name}:/data/f", "-")
        with tarfile.open(fileobj=io.BytesIO(copied.stdout)) as tar:
            assert tar.extractfile("f").read() == b"from the host\n"
        copied = target.docker("cp", f"{name}:/etc", "-")
        with tarfile.open(fileobj=io.BytesIO(copied.stdout)) as tar:
            hostname = tar.extractfile("etc/hostname").read()
        assert hostname == target.docker("inspect", "-f", "{{.Config.Hostname}}", name).stdout
        for dest, words in (("/data", "mounted volume is marked read-only"), ("/tmp", "container rootfs is "
                                                                                      "marked read-only"),
                            ("/data/nope", None)):
            got = assert_same(target, "cp", str(tmp_path / "new"), f"{name}:{dest}")
            assert got[0] == 1
            if words:
                assert got[2] == f"Error response from daemon: {words}\n"
        assert assert_same(target, "cp", str(tmp_path / "new"), f"{name}:/rw/")[0] == 0
        assert (source / "new").read_text() == "x\n"
        assert sorted(target.docker("diff", name).stdout.splitlines()) == [b"A /data", b"A /rw"]
    finally:
        target.docker("rm", "-f", name)
