"""Black-box: `dockyard` and the real docker CLI (28) through the same container scenarios, same engine.

Each test runs against dockerd (the reference) and dockyardd (see
tests/support/targets.py). Where the docker CLI's own text is the contract
(tables, templates, its messages, exit codes, help), both CLIs must print
the same bytes. Text the docker CLI writes about itself is renamed first:
`docker: ` at the start of an error becomes `dockyard: ` (our choice: the
prefix names the program that failed, as docker's does), and the pointers
to help (`Run 'docker run --help'`) name our program. What the engine says
(`Error response from daemon: ...`) is compared as is: both CLIs relay the
same engine's words.

Scenarios that change state run once per CLI, each on containers of its
own, and compare what each step printed, with the container names put back
to a common placeholder.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from tests.support.targets import SESSION_LABEL

pytestmark = [pytest.mark.root, pytest.mark.peers]

RUN = ["run", "--rm", "--network", "none", "-l", SESSION_LABEL]
CLIS = ("dockyard", "docker")


def ours(text: str) -> str:
    """The docker CLI's words about itself, as ours says them."""
    text = re.sub(r"(?m)^docker: ", "dockyard: ", text)
    for lead in ("'docker ", "Usage:  docker ", "\tdocker "):
        text = text.replace(lead, lead.replace("docker", "dockyard"))
    return text


def outcome(result, rename: bool, normalize) -> tuple[int, str, str]:
    out, err = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    if rename:
        out, err = ours(out), ours(err)
    return result.returncode, normalize(out), normalize(err)


def assert_same(target, *args, input=None, normalize=lambda s: s, attempts=3, timeout=60):
    """Both CLIs print the same (after renaming docker's self-references); retried for ticking times."""
    for attempt in range(attempts):
        got = outcome(target.dockyard(*args, input=input, timeout=timeout), False, normalize)
        want = outcome(target.docker(*args, input=input, timeout=timeout), True, normalize)
        if got == want:
            return got
        if attempt < attempts - 1:
            time.sleep(0.5)
    assert got[0] == want[0], f"exit status of {args}: dockyard {got[0]}, docker {want[0]}\n{got}\n{want}"
    assert got[1] == want[1], f"stdout of {args}"
    assert got[2] == want[2], f"stderr of {args}"
    return got


_HEX_ID = re.compile(r"\b[0-9a-f]{64}\b")


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def per_cli(target, steps, name_prefix="c"):
    """Run `steps(cli, name)` for each CLI on a container name of its own; outputs with the name replaced."""
    results = {}
    for cli in CLIS:
        name = unique(name_prefix)
        outputs = []
        run = target.cli(cli)

        def step(*args, input=None, timeout=60, name=name, run=run, cli=cli, outputs=outputs):
            result = run(*[a.replace("{name}", name) for a in args], input=input, timeout=timeout)
            out = _HEX_ID.sub("<ID>", result.stdout.decode(errors="replace").replace(name, "NAME"))
            err = _HEX_ID.sub("<ID>", result.stderr.decode(errors="replace").replace(name, "NAME"))
            if cli == "docker":
                out, err = ours(out), ours(err)
            outputs.append((" ".join(args), result.returncode, out, err))
            return result

        try:
            steps(step, name)
        finally:
            target.client().container_remove(name, force=True) if _exists(target, name) else None
        results[cli] = outputs
    return results["dockyard"], results["docker"]


def _exists(target, name: str) -> bool:
    from dockyard.client.api import ApiError

    client = target.client()
    try:
        client.container_inspect(name)
        return True
    except ApiError:
        return False
    finally:
        client.close()


def assert_steps_equal(ours_steps, docker_steps):
    assert [s[0] for s in ours_steps] == [s[0] for s in docker_steps]
    for mine, theirs in zip(ours_steps, docker_steps, strict=True):
        assert mine == theirs, f"step {mine[0]!r}: dockyard {mine[1:]} != docker {theirs[1:]}"


# --- run: output, stdin, exit codes --------------------------------------------------------------


@pytest.mark.parametrize(("args", "input"), [
    (["bb", "echo", "hi"], None),
    (["bb", "sh", "-c", "echo out; echo err >&2; exit 3"], None),
    (["bb", "true"], None),
    (["bb", "sh", "-c", "kill -9 $$"], None),
    (["-i", "bb", "cat"], b"hello\nworld\n"),
    (["-i", "bb", "sh", "-c", "cat; echo stdin-closed"], b"x" * 200_000),
    (["-a", "stderr", "bb", "sh", "-c", "echo out; echo err >&2"], None),
    (["-a", "stdout", "bb", "sh", "-c", "echo out; echo err >&2"], None),
    (["-e", "A=1", "-e", "PATH", "-w", "/tmp", "-u", "nobody", "bb", "sh", "-c", "echo $A; pwd; id"], None),
    (["--entrypoint", "echo", "bb", "via", "entrypoint"], None),
    (["-h", "myhost", "bb", "hostname"], None),
    (["--read-only", "bb", "touch", "/x"], None),
    (["--ulimit", "nofile=100:200", "bb", "sh", "-c", "ulimit -n; ulimit -Hn"], None),
    (["--cap-drop", "all", "bb", "sh", "-c", "grep CapEff /proc/self/status"], None),
    (["--init", "bb", "cat", "/proc/1/cmdline"], None),
    (["bb", "nosuchcmd"], None),
    (["bb", "/etc"], None),
    (["-t", "bb", "sh", "-c", "echo tty-out; echo tty-err >&2"], None),
])
def test_run_outputs_and_exit_codes(target, args, input):
    assert_same(target, *RUN, *args, input=input)


def test_run_env_file(target, tmp_path):
    env_file = tmp_path / "vars"
    env_file.write_text("# comment\nFROM_FILE=1\nSPACED=a b\n")
    assert_same(target, *RUN, "--env-file", str(env_file), "-e", "FROM_FLAG=2", "bb", "sh", "-c",
                "echo $FROM_FILE $FROM_FLAG $SPACED")


@pytest.mark.parametrize("args", [
    ["-m", "64x", "bb"],
    ["--restart", "on-failure:x", "bb"],
    ["--restart", "always", "bb"],
    ["--cpus", "abc", "bb"],
    ["--ulimit", "nofile=2:1", "bb"],
    ["-e", "=x", "bb"],
    ["-l", "=x", "bb"],
    ["--env-file", "/nonexistent/env", "bb"],
    ["-p", "abc", "bb"],
    ["--pull", "sometimes", "bb"],
    ["--security-opt", "bogus", "bb"],
    ["--network-alias", "x", "bb"],
    ["-a", "bogus", "bb"],
    ["--mount", "foo", "bb"],
    ["-d", "-a", "stdout", "bb"],
    ["-it", "bb", "true"],
    ["--bogus", "bb"],
    ["BAD NAME"],
    ["bb:"],
])
def test_run_refusals(target, args):
    assert_same(target, *RUN, *args)


def test_run_without_an_image(target):
    assert_same(target, "run")
    assert_same(target, "create")


def test_run_missing_image_tries_to_pull(target):
    """docker: "Unable to find image" and the pull's failure (a registry that refuses at once)."""
    got = assert_same(target, *RUN, "127.0.0.1:9/no/such:v1", "true")
    assert got[0] == 125
    assert got[2].startswith("Unable to find image '127.0.0.1:9/no/such:v1' locally\ndockyard: ")
    got = assert_same(target, "create", "--network", "none", "127.0.0.1:9/no/such:v1")
    assert got[0] == 1


def test_run_name_conflict_and_detached(target):
    def steps(step, name):
        step(*RUN[:1], "-d", "--name", "{name}", "--network", "none", "-l", SESSION_LABEL, "bb", "sleep", "60")
        step("run", "--name", "{name}", "--network", "none", "bb", "true")
        step("create", "--name", "{name}", "--network", "none", "bb", "true")
        step("rm", "-f", "{name}")

    mine, theirs = per_cli(target, steps)
    assert mine[0][2] == theirs[0][2] == "<ID>\n"
    assert_steps_equal(mine, theirs)
    assert mine[1][1] == 125 and mine[2][1] == 1


def test_create_flags_reach_the_engine_alike(target, tmp_path):
    """The same long command line through both CLIs: the engine stores the same configuration."""
    flags = ["--network", "none", "-l", SESSION_LABEL, "-l", "x=y", "-e", "A=1", "-u", "1000:1000",
             "--entrypoint", "/bin/sh", "-h", "myhost", "--init", "--read-only", "-m", "64m", "--memory-swap", "128m",
             "--cpus", "1.5", "-c", "512", "--cpuset-cpus", "0", "--pids-limit", "50", "--ulimit",
             "nofile=1024:2048", "--cap-add", "NET_ADMIN", "--cap-drop", "chown", "--security-opt",
             "no-new-privileges", "--restart", "on-failure:3", "--stop-signal", "SIGUSR1", "--stop-timeout", "5",
             "-w", "/tmp", "--tmpfs", "/run:size=1m", "--privileged"]
    template = ("{{json .Config}}|{{json .HostConfig.RestartPolicy}}|{{.HostConfig.Memory}}|"
                "{{.HostConfig.MemorySwap}}|{{.HostConfig.NanoCpus}}|{{.HostConfig.CpuShares}}|"
                "{{.HostConfig.CpusetCpus}}|{{.HostConfig.PidsLimit}}|{{json .HostConfig.Ulimits}}|"
                "{{json .HostConfig.CapAdd}}|{{json .HostConfig.CapDrop}}|{{json .HostConfig.SecurityOpt}}|"
                "{{.HostConfig.ReadonlyRootfs}}|{{.HostConfig.Privileged}}|{{json .HostConfig.Init}}|"
                "{{json .HostConfig.Tmpfs}}|{{.HostConfig.NetworkMode}}")
    seen = {}
    for cli in CLIS:
        name = unique("cfg")
        created = target.cli(cli)("create", "--name", name, *flags, "bb", "-c", "echo hi")
        assert created.returncode == 0, created.stderr
        inspected = target.docker("inspect", "-f", template, name)
        target.docker("rm", "-f", name)
        seen[cli] = inspected.stdout.decode().replace(name, "NAME")
    assert seen["dockyard"] == seen["docker"]
    config = json.loads(seen["dockyard"].split("|")[0])
    assert config["Entrypoint"] == ["/bin/sh"] and config["Cmd"] == ["-c", "echo hi"]


# --- listings of the same containers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def listed(target):
    """Three containers made with the docker CLI: running, exited (3), created; labelled for the filters."""
    group = unique("grp")
    label = f"dockyard.test.group={group}"
    names = {"running": f"{group}-run", "exited": f"{group}-exit", "created": f"{group}-new"}
    base = ["--network", "none", "-l", SESSION_LABEL, "-l", label, "-l", "com.example.role=web"]
    target.docker("run", "-d", "--name", names["running"], *base, "bb", "sh", "-c",
                  "echo out-line; echo err-line >&2; echo more-out; exec sleep 300")
    target.docker("run", "--name", names["exited"], *base, "bb", "sh", "-c", "echo bye; exit 3")
    target.docker("create", "--name", names["created"], *base, "bb", "true")
    time.sleep(0.3)
    yield {"label": label, "names": names, "filter": f"label={label}"}
    target.docker("rm", "-f", *names.values())


@pytest.mark.parametrize("args", [
    ["ps"],
    ["ps", "-a"],
    ["ps", "-aq"],
    ["ps", "-a", "--no-trunc"],
    ["ps", "-a", "-s"],
    ["ps", "-a", "-n", "2"],
    ["ps", "-l", "--format", "{{.Names}}"],
    ["ps", "-a", "--format", "json"],
    ["ps", "-a", "--format", "raw"],
    ["ps", "-a", "--format", "{{.Names}}\t{{.State}}\t{{.Status}}\t{{.Label \"com.example.role\"}}"],
    ["ps", "-a", "--format", "table {{.Names}}\t{{.Image}}\t{{.Command}}\t{{.Labels}}"],
    ["ps", "-a", "--format", "table {{.ID}}\t{{.Size}}"],
    ["ps", "-a", "--format", "{{.Names}} {{.Mounts}} {{.LocalVolumes}} {{.Networks}} {{.Ports}} {{.Platform}}"],
    ["ps", "-a", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}"],
    ["ps", "-a", "-q", "--format", "{{.Names}}"],
    ["container", "ls", "-a", "--format", "{{.Names}}"],
    ["container", "list", "-aq"],
])
def test_ps_listings(target, listed, args):
    assert_same(target, *args, "--filter", listed["filter"])


@pytest.mark.parametrize("args", [
    ["ps", "--format", "{{.Nope}}"],
    ["ps", "--format", "{{"],
    ["ps", "--format", "table {{.Nope}}"],
    ["ps", "--filter", "nonsense"],
    ["ps", "extra"],
])
def test_ps_errors(target, args):
    assert_same(target, *args)


def test_inspect_and_other_readers(target, listed):
    running, exited, created = (listed["names"][k] for k in ("running", "exited", "created"))
    for args in (
        ["inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.Config.Tty}} {{json .Config.Cmd}}",
         running, exited, created],
        ["container", "inspect", "-f", "{{.Name}} {{json .Config.Labels}}", exited],
        ["container", "inspect", "--format", "json", created],
        ["inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}} {{len .ExecIDs}}", exited],
        ["container", "inspect", "-s", "-f", "{{.SizeRootFs}}", exited],
        ["inspect", exited],
        ["inspect", "nosuch", exited, "-f", "{{.Name}}"],
        ["container", "inspect", "nosuch"],
        ["inspect", "-f", "{{.Id}}", "bb"],  # not a container: docker falls back to the image
        ["inspect", "--type", "container", "bb"],
        ["port", running], ["port", running, "80"], ["port", running, "abc"], ["port", "nosuch"],
        ["diff", exited], ["diff", "nosuch"],
        ["top", running, "-o", "pid,comm"], ["top", exited], ["top", "nosuch"],
        ["logs", exited], ["logs", "--tail", "1", exited], ["logs", "-t", exited], ["logs", "--details", exited],
        ["logs", "-f", exited], ["logs", "--since", "1h", exited], ["logs", "--until", "2000-01-01", exited],
        ["logs", "--since", "bogus", exited], ["logs", "nosuch"],
        ["wait", exited], ["wait", "nosuch", exited],
    ):
        assert_same(target, *args)
    # stdout and stderr of a container are separate pipes: compare each stream on its own
    got = target.dockyard("logs", running)
    assert got.stdout == b"out-line\nmore-out\n" and got.stderr == b"err-line\n"


def test_stats_one_shot(target, listed):
    running = listed["names"]["running"]
    steady = "{{.Name}} {{.ID}} {{.PIDs}}"
    assert_same(target, "stats", "--no-stream", "--format", steady, running)
    assert_same(target, "stats", "--no-stream", "--no-trunc", "--format", "{{.Container}} {{.ID}}", running)
    assert_same(target, "stats", "--no-stream", "nosuch")
    table = target.dockyard("stats", "--no-stream", running)
    lines = table.stdout.decode().splitlines()
    assert table.returncode == 0 and lines[0].split() == [
        "CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%", "NET", "I/O", "BLOCK",
        "I/O", "PIDS"]
    row = lines[1].split()
    assert row[1] == running and re.fullmatch(r"\d+\.\d\d%", row[2]) and row[4] == "/"
    assert row[-1] == "1"
    listing = target.dockyard("stats", "--no-stream", "--format", "{{.Name}}")
    assert running in listing.stdout.decode().split()


def test_stats_streams_until_interrupted(target, listed):
    import signal
    import subprocess

    from tests.support.engine import DOCKYARD

    proc = subprocess.Popen([DOCKYARD, "stats", "--format", "{{.Name}} {{.PIDs}}", listed["names"]["running"]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=target.env())
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    frames = [f for f in out.decode().split("\033[H") if f]
    assert len(frames) >= 3, out
    assert f"{listed['names']['running']} 1 \033[K" in frames[-1]


# --- lifecycle, step by step --------------------------------------------------------------------------


def test_lifecycle_commands(target):
    def steps(step, name):
        step("run", "-d", "--name", "{name}", "--network", "none", "-l", SESSION_LABEL, "bb", "sh", "-c",
             "trap 'exit 9' TERM; while true; do sleep 0.1; done")
        step("ps", "--filter", "name={name}", "--format", "{{.Names}} {{.State}}")
        step("pause", "{name}")
        step("ps", "--filter", "name={name}", "--format", "{{.Names}} {{.State}}")
        step("pause", "{name}")
        step("unpause", "{name}")
        step("rm", "{name}")
        step("stop", "-t", "5", "{name}")
        step("wait", "{name}")
        step("stop", "{name}")
        step("kill", "{name}")
        step("start", "{name}")
        step("start", "{name}")
        step("kill", "-s", "KILL", "{name}")
        step("wait", "{name}")
        step("restart", "-t", "1", "{name}")
        step("inspect", "-f", "{{.State.Running}} {{.RestartCount}}", "{name}")
        step("rename", "{name}", "{name}-renamed")
        step("inspect", "-f", "{{.Name}}", "{name}-renamed")
        step("rename", "{name}", "other")
        step("stop", "--time", "1", "--timeout", "1", "{name}-renamed")
        step("rm", "-f", "{name}-renamed")
        step("rm", "-f", "{name}-renamed")
        step("rm", "{name}-renamed")

    mine, theirs = per_cli(target, steps)
    first = lambda steps: [(s[0], s[1], "ID" if i == 0 else s[2], s[3]) for i, s in enumerate(steps)]  # noqa: E731
    assert_steps_equal(first(mine), first(theirs))


@pytest.mark.parametrize("args", [
    ["start", "nosuch", "also"], ["stop", "nosuch"], ["kill", "nosuch"], ["restart", "nosuch"],
    ["rm", "nosuch", "also"], ["rm", "-f", "nosuch"], ["pause", "nosuch"], ["unpause", "nosuch"],
    ["rename", "nosuch", "x"], ["rename", " ", "x"], ["wait", "nosuch"], ["attach", "nosuch"],
    ["exec", "nosuch", "true"], ["export", "nosuch"], ["commit", "nosuch"], ["cp", "nosuch:/x", "/tmp/y"],
    ["cp", "a", "b"], ["cp", "x:/a", "y:/b"], ["cp", "", "b"],
    ["export", "-o", "/nonexistent/x.tar", "c"], ["export", "-o", "/dev/null", "c"],
    ["export", "-o", "/etc/hostname/x", "c"], ["start", "-a", "c1", "c2"],
])
def test_missing_containers_and_bad_arguments(target, args):
    assert_same(target, *args)


def test_start_attached_and_interactive(target):
    def steps(step, name):
        step("create", "--name", "{name}", "--network", "none", "-l", SESSION_LABEL, "-i", "bb", "sh", "-c",
             "read line; echo got-$line; echo err >&2; exit 4")
        step("start", "-a", "-i", "{name}", input=b"abc\n")
        step("start", "-a", "{name}", "{name}")
        step("start", "-i", "{name}", input=b"again\n")
        step("wait", "{name}")
        step("logs", "{name}")

    mine, theirs = per_cli(target, steps)
    assert_steps_equal([(s[0], s[1], "ID" if i == 0 else s[2], s[3]) for i, s in enumerate(mine)],
                       [(s[0], s[1], "ID" if i == 0 else s[2], s[3]) for i, s in enumerate(theirs)])
    assert mine[1][1:] == (4, "got-abc\n", "err\n")


def test_attach_without_a_terminal(target):
    def steps(step, name):
        step("run", "-d", "--name", "{name}", "--network", "none", "-l", SESSION_LABEL, "bb", "sh", "-c",
             "sleep 1; echo late; exit 6")
        step("attach", "--no-stdin", "{name}", timeout=30)
        step("attach", "{name}")

    mine, theirs = per_cli(target, steps)
    assert_steps_equal([(s[0], s[1], "ID" if i == 0 else s[2], s[3]) for i, s in enumerate(mine)],
                       [(s[0], s[1], "ID" if i == 0 else s[2], s[3]) for i, s in enumerate(theirs)])
    assert mine[1][1:3] == (6, "late\n")


# --- exec --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def running(target):
    name = unique("exec")
    started = target.docker("run", "-d", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb", "sleep",
                            "300")
    assert started.returncode == 0, started.stderr
    yield name
    target.docker("rm", "-f", name)


def test_exec(target, running, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("E1=from-file\n")
    for args, input in (
        (["exec", running, "echo", "hi"], None),
        (["exec", running, "sh", "-c", "echo out; echo err >&2; exit 4"], None),
        (["exec", "-e", "A=1", "--env-file", str(env_file), "-w", "/tmp", "-u", "nobody", running, "sh", "-c",
          "echo $A $E1; pwd; id"], None),
        (["exec", "-i", running, "sh", "-c", "cat; echo eof"], b"from stdin\n"),
        (["exec", "-i", running, "wc", "-c"], b"y" * 300_000),
        (["exec", "-t", running, "sh", "-c", "echo tty-out; test -t 1 && echo on-a-tty"], None),
        (["exec", running, "nosuchcmd"], None),
        (["exec", running, "/etc"], None),
        (["exec", "-it", running, "sh"], None),
        (["exec", running], None),
        (["container", "exec", "--privileged", running, "sh", "-c", "grep CapEff /proc/self/status"], None),
    ):
        assert_same(target, *args, input=input)
    assert_same(target, "exec", "-d", running, "sh", "-c", "echo detached > /tmp/detached")
    time.sleep(0.3)
    assert_same(target, "exec", running, "cat", "/tmp/detached")


def test_exec_in_a_stopped_container(target):
    def steps(step, name):
        step("create", "--name", "{name}", "--network", "none", "-l", SESSION_LABEL, "bb", "true")
        step("exec", "{name}", "true")

    mine, theirs = per_cli(target, steps)
    assert mine[1] == theirs[1]
    assert mine[1][1] != 0


# --- files: cp, export, commit, prune ---------------------------------------------------------------------


def _tree(root) -> list[tuple[str, str]]:
    out = []
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out.append((rel, "-> " + str(path.readlink())))
        elif path.is_dir():
            out.append((rel, "dir"))
        else:
            out.append((rel, path.read_text()))
    return out


def test_cp_both_ways(target, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a\n")
    (src / "sub" / "b.txt").write_text("b\n")
    (src / "link").symlink_to("a.txt")
    results = {}
    for cli in CLIS:
        run = target.cli(cli)
        name = unique("cp")
        out = tmp_path / f"out-{cli}"
        out.mkdir()
        assert run("run", "-d", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb", "sleep",
                   "300").returncode == 0
        steps = []
        for args, input in (
            (["cp", str(src / "a.txt"), f"{name}:/tmp/renamed.txt"], None),
            (["cp", str(src / "a.txt"), f"{name}:/tmp/"], None),
            (["cp", str(src), f"{name}:/tmp/newdir"], None),
            (["cp", str(src), f"{name}:/tmp/newdir"], None),
            (["cp", f"{src}/.", f"{name}:/tmp/contents"], None),
            (["cp", str(src / "link"), f"{name}:/tmp/"], None),
            (["cp", "-L", str(src / "link"), f"{name}:/tmp/followed"], None),
            (["cp", str(src / "a.txt"), f"{name}:/tmp/nodir/"], None),
            (["cp", str(src), f"{name}:/tmp/renamed.txt"], None),
            (["cp", str(tmp_path / "missing"), f"{name}:/tmp"], None),
            (["cp", "-", f"{name}:/tmp/renamed.txt"], b""),
            (["exec", name, "sh", "-c", "cd /tmp && find . | sort && cat renamed.txt newdir/sub/b.txt"], None),
            (["cp", f"{name}:/tmp/newdir", str(out / "dir")], None),
            (["cp", f"{name}:/tmp/newdir/.", str(out / "contents")], None),
            (["cp", f"{name}:/tmp/renamed.txt", str(out)], None),
            (["cp", f"{name}:/tmp/renamed.txt", str(out / "file-copy")], None),
            (["cp", f"{name}:/tmp/newdir", str(out / "file-copy")], None),
            (["cp", f"{name}:/tmp/renamed.txt", str(out / "nodir") + "/"], None),
            (["cp", f"{name}:/nonexistent", str(out)], None),
            (["cp", f"{name}:/tmp/renamed.txt", "/nonexistent/dir/x"], None),
        ):
            result = run(*args, input=input)
            # docker's tar writer sometimes logs its side of a refused copy; that noise is not the contract
            stderr = "".join(line for line in result.stderr.decode().splitlines(True) if not line.startswith("time="))
            text = (result.returncode, result.stdout.decode(), stderr)
            steps.append(tuple(t.replace(name, "NAME").replace(str(out), "OUT") if isinstance(t, str) else t
                               for t in text))
        streamed = run("cp", f"{name}:/tmp/newdir", "-")
        steps.append(("stream", sorted(m.split("/", 1)[-1] for m in _tar_names(streamed.stdout))))
        piped = _tar_of(src)
        run("cp", "-", f"{name}:/tmp", input=piped)
        steps.append(("piped", run("exec", name, "sh", "-c", "ls /tmp/src | sort").stdout.decode()))
        target.docker("rm", "-f", name)
        results[cli] = (steps, _tree(out))
    mine, theirs = results["dockyard"], results["docker"]
    mine_steps = [tuple(ours(x) if isinstance(x, str) else x for x in s) for s in mine[0]]
    theirs_steps = [tuple(ours(x) if isinstance(x, str) else x for x in s) for s in theirs[0]]
    for a, b in zip(mine_steps, theirs_steps, strict=True):
        assert a == b
    assert mine[1] == theirs[1]
    assert ("dir/sub/b.txt", "b\n") in mine[1] and ("contents/a.txt", "a\n") in mine[1]


def _tar_names(data: bytes) -> list[str]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def _tar_of(path) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=path.name)
    return buf.getvalue()


def test_export_commit_and_prune(target, tmp_path):
    group = unique("prune")
    label = f"dockyard.test.group={group}"
    results = {}
    for cli in CLIS:
        run = target.cli(cli)
        name = unique("exp")
        image = f"committed-{uuid.uuid4().hex[:8]}:{cli}"
        steps = []
        run("run", "--name", name, "--network", "none", "-l", SESSION_LABEL, "-l", label, "bb", "sh", "-c",
            "echo made > /made")
        exported = run("export", name)
        steps.append(("export", exported.returncode, "made" in _tar_names(exported.stdout)))
        archive = tmp_path / f"{cli}.tar"
        steps.append(("export -o", run("export", "-o", str(archive), name).returncode,
                      "made" in _tar_names(archive.read_bytes()), oct(archive.stat().st_mode & 0o777)))
        committed = run("commit", "-m", "msg", "-a", "me", "-c", "ENV X=1", "-c", 'CMD ["cat", "/made"]', name,
                        image)
        steps.append(("commit", committed.returncode, bool(re.fullmatch(rb"sha256:[0-9a-f]{64}\n",
                                                                         committed.stdout))))
        steps.append(("inspect", target.docker("image", "inspect", "-f",
                                               "{{.Config.Env}} {{json .Config.Cmd}} {{.Comment}} {{.Author}}",
                                               image).stdout.decode()))
        steps.append(("run committed", run(*RUN, image).stdout.decode()))
        target.docker("rmi", image)
        results[cli] = steps
    assert results["dockyard"] == results["docker"]
    assert results["dockyard"][3][1] == "[PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin X=1]" \
        ' ["cat","/made"] msg me\n' or "X=1" in results["dockyard"][3][1]
    # both stopped containers carry the group label: one prune removes them, the other finds none
    got = target.dockyard("container", "prune", "-f", "--filter", f"label={label}")
    assert got.returncode == 0
    assert got.stdout.decode().startswith("Deleted Containers:\n")
    assert got.stdout.decode().count("\n") == 2 + 2 + 1
    assert_same(target, "container", "prune", "-f", "--filter", f"label={label}")
    assert_same(target, "container", "prune", "--filter", f"label={label}", input=b"n\n")


# --- help and usage --------------------------------------------------------------------------------------

HELP_COMMANDS = [
    ["ps"], ["container", "ls"], ["start"], ["stop"], ["restart"], ["kill"], ["rm"], ["wait"], ["rename"], ["pause"],
    ["unpause"], ["top"], ["port"], ["diff"], ["export"], ["commit"], ["logs"], ["attach"], ["exec"], ["cp"],
    ["stats"], ["container", "prune"], ["container", "inspect"],
]


def _as_ours_everywhere(text: str) -> str:
    """All of docker's names for itself as ours (its documentation links stay)."""
    return re.sub(r"\bDocker\b(?![ -]Hub)", "Dockyard", re.sub(r"\bdocker\b(?![.-])", "dockyard", text))


@pytest.mark.parametrize("args", HELP_COMMANDS, ids=" ".join)
def test_help(target, args):
    ours_help = target.dockyard(*args, "--help")
    docker_help = target.docker(*args, "--help")
    assert ours_help.returncode == docker_help.returncode == 0
    assert ours_help.stdout.decode() == _as_ours_everywhere(docker_help.stdout.decode())


@pytest.mark.parametrize("command", ["run", "create"])
def test_run_and_create_help(target, command):
    """Every flag and its text as docker's; compared without line breaks, as our name is longer than docker's
    and moves pflag's wrapping in a few lines."""
    mine = target.dockyard(command, "--help").stdout.decode()
    theirs = _as_ours_everywhere(target.docker(command, "--help").stdout.decode())
    assert mine.split("Options:")[0] == theirs.split("Options:")[0]
    assert " ".join(mine.split()) == " ".join(theirs.split())


def test_container_group_listing(target):
    mine = target.dockyard("container", "--help")
    listed = [line.split()[0] for line in mine.stdout.decode().split("Commands:\n")[1].split("\n\n")[0].splitlines()]
    theirs = target.docker("container", "--help")
    docker_listed = [line.split()[0] for line in
                     theirs.stdout.decode().split("Commands:\n")[1].split("\n\n")[0].splitlines()]
    assert listed == [c for c in docker_listed if c != "update"]


@pytest.mark.parametrize("args", [
    ["run", "--detach-keys"], ["ps", "-a", "x"], ["start"], ["stop"], ["kill"], ["rm"], ["wait"], ["rename", "a"],
    ["pause"], ["top"], ["port"], ["diff"], ["export"], ["commit"], ["logs"], ["attach"], ["exec", "x"], ["cp", "a"],
    ["container", "prune", "x"], ["container", "inspect"], ["stop", "--bogus", "x"], ["logs", "-x", "c"],
    ["container", "bogus"], ["exec", "--env", "=x", "c", "true"],
])
def test_usage_errors(target, args):
    ours_run = target.dockyard(*args)
    theirs = target.docker(*args)
    # docker 28 mangles one footer ("SRun 'docker ps --help'"); the intended text is "Run"
    want = _as_ours_everywhere(theirs.stderr.decode()).replace("\n\nSRun '", "\n\nRun '")
    assert (ours_run.returncode, ours_run.stdout.decode(), ours_run.stderr.decode()) == (theirs.returncode, "", want)


def test_signals_are_proxied_to_the_container(target):
    """Without a terminal, run forwards the signals it gets (sig-proxy); --sig-proxy=false does not."""
    import signal
    import subprocess

    from tests.support.engine import DOCKER, DOCKYARD

    script = "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done"
    for program in (DOCKYARD, DOCKER):
        proc = subprocess.Popen([program, *RUN, "bb", "sh", "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=target.env())
        try:
            assert proc.stdout.readline() == b"ready\n"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert (proc.returncode, out) == (3, b"got-term\n"), (program, err)


def test_pull_policies_and_cidfile(target, tmp_path):
    assert_same(target, *RUN, "--pull", "never", "127.0.0.1:9/no/such:v1", "true")
    assert_same(target, *RUN, "--pull", "always", "-q", "127.0.0.1:9/no/such:v1", "true")
    taken = tmp_path / "taken.cid"
    taken.write_text("x")
    assert_same(target, *RUN, "--cidfile", str(taken), "bb", "true")
    assert_same(target, *RUN, "--cidfile", str(tmp_path / "no" / "dir.cid"), "bb", "true")
    for cli in CLIS:
        cidfile = tmp_path / f"{cli}.cid"
        result = target.cli(cli)(*RUN, "--cidfile", str(cidfile), "bb", "true")
        assert result.returncode == 0
        assert re.fullmatch(r"[0-9a-f]{64}", cidfile.read_text()), cli
        failed = target.cli(cli)(*RUN, "--cidfile", str(tmp_path / f"{cli}-failed.cid"), "bb", "nosuchcmd")
        assert failed.returncode == 127
        assert (tmp_path / f"{cli}-failed.cid").exists(), "docker keeps the file once the container exists"


def test_commit_refuses_bad_names(target, running):
    for name in ("BAD NAME", "bad/X:1", "bb:", "x@sha256:" + "0" * 64):
        assert_same(target, "commit", running, name)


def test_run_stdin_is_data_without_a_terminal(target):
    """Without a TTY, stdin is passed on byte for byte: ctrl-p ctrl-q are detach keys only on a terminal
    (dockerd watches for them only with a TTY), and stdin sent before the process reads is held for it,
    however much (Engine API reference §3.3)."""
    got = assert_same(target, *RUN, "-i", "bb", "sh", "-c", "cat | od -c", input=b"abc\x10\x11def\n", attempts=1,
                      timeout=20)
    assert got == (0, "0000000   a   b   c 020 021   d   e   f  \\n\n0000011\n", "")
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    got = assert_same(target, *RUN, "-i", "bb", "sh", "-c", "sleep 1; wc -c", input=data, attempts=1, timeout=20)
    assert got == (0, f"{len(data)}\n", "")


def test_checkpoints_are_refused_as_by_a_non_experimental_docker(target):
    mine = target.dockyard("start", "--checkpoint", "x", "c")
    theirs = target.docker("start", "--checkpoint", "x", "c")
    assert (mine.returncode, mine.stdout, mine.stderr.decode()) == (
        theirs.returncode, theirs.stdout, _as_ours_everywhere(theirs.stderr.decode()))


def test_stop_acts_on_all_containers_at_once(target):
    """Like docker's parallelOperation: three containers that ignore SIGTERM stop within one timeout."""
    names = [unique("par") for _ in range(3)]
    try:
        for name in names:
            assert target.docker("run", "-d", "--name", name, "--network", "none", "-l", SESSION_LABEL, "bb",
                                 "sleep", "60").returncode == 0
        start = time.monotonic()
        stopped = target.dockyard("stop", "-t", "2", *names)
        took = time.monotonic() - start
        assert (stopped.returncode, stopped.stdout.decode()) == (0, "".join(f"{n}\n" for n in names))
        assert took < 5, f"three 2-second stops took {took:.1f}s: not in parallel"
    finally:
        target.docker("rm", "-f", *names)
