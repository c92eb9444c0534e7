"""On the wire: `dockyard` sends the engine what the docker CLI sends, in the same order.

A recording proxy (tests/support/wiretap.py) sits in front of the engine;
each scenario runs once through each CLI and the two request logs must
match: method, path and query of every request, which requests share a
connection, the JSON bodies, what was written after a hijack and whether the
write side was shut. Container and exec IDs, names and times are put back
to placeholders first. This is the contract the engine is built to
(Engine API reference §11); a CLI that sends the same calls gets the same
answers.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import uuid

import pytest

from tests.support.targets import SESSION_LABEL
from tests.support.wiretap import Wiretap

pytestmark = [pytest.mark.root, pytest.mark.peers]

CLIS = ("dockyard", "docker")
_HEX = re.compile(r"[0-9a-f]{64}")
_SHORT = re.compile(r"\b[0-9a-f]{12}\b")


def _normalized(requests, names: dict[str, str]) -> list[tuple]:
    order: dict[int, int] = {}
    out = []
    for r in requests:
        conn = order.setdefault(r.conn, len(order))
        path = _HEX.sub("<ID>", r.path)
        query = dict(r.query)
        for key in ("since", "until"):
            if key in query:
                query[key] = "<TIME>"
        text = json.dumps([path, query])
        for name, placeholder in names.items():
            text = text.replace(name, placeholder)
        path, query = json.loads(text)
        body = _body(r, names)
        out.append((f"C{conn}", r.method, path, query, body, bytes(r.after_upgrade), r.half_closed))
    return out


def _body(request, names):
    if not request.body:
        return None
    if request.headers.get("content-type", "").startswith("application/json"):
        text = request.body.decode()
        for name, placeholder in names.items():
            text = text.replace(name, placeholder)
        return json.loads(text)
    try:
        with tarfile.open(fileobj=io.BytesIO(request.body)) as tar:
            return ("tar", sorted((m.name, m.size, m.mode, m.type) for m in tar.getmembers()))
    except tarfile.TarError:
        return request.body


def through_both(target, tmp_path, scenario):
    """Run `scenario(run, name)` with each CLI behind its own proxy; their normalized request logs."""
    logs = {}
    for cli in CLIS:
        name = f"wire-{uuid.uuid4().hex[:8]}"
        with Wiretap(target.host, tmp_path / cli) as tap:
            env = target.env(DOCKER_HOST=tap.host, DOCKYARD_HOST=tap.host)

            def run(*args, input=None, env=env, cli=cli, name=name):
                args = [a.replace("{name}", name) for a in args]
                return target.cli(cli)(*args, input=input, env=env)

            try:
                scenario(run, name)
            finally:
                target.docker("rm", "-f", name, f"{name}-2")
            logs[cli] = _normalized(tap.requests(), {name: "NAME"})
    return logs["dockyard"], logs["docker"]


def assert_same_calls(mine, theirs):
    assert [c[:4] for c in mine] == [c[:4] for c in theirs], "requests differ"
    for a, b in zip(mine, theirs, strict=True):
        assert a == b, f"{a[:4]}: dockyard sent {a[4:]}, docker {b[4:]}"


@pytest.fixture(autouse=True)
def directories(tmp_path):
    for cli in CLIS:
        (tmp_path / cli).mkdir()


def test_run_in_the_foreground(target, tmp_path):
    def scenario(run, name):
        assert run("run", "--rm", "--network", "none", "-l", SESSION_LABEL, "bb", "echo", "hi").stdout == b"hi\n"

    mine, theirs = through_both(target, tmp_path, scenario)
    assert_same_calls(mine, theirs)
    # create, attach (its own connection, write side shut at once), wait before start, start
    assert [(c[0], c[1], c[2]) for c in mine] == [
        ("C0", "POST", "/containers/create"), ("C1", "POST", "/containers/<ID>/attach"),
        ("C0", "POST", "/containers/<ID>/wait"), ("C2", "POST", "/containers/<ID>/start")]
    assert mine[1][6] is True and mine[2][3] == {"condition": "removed"}


def test_run_with_stdin_and_flags(target, tmp_path):
    def scenario(run, name):
        done = run("run", "--rm", "-i", "--name", "{name}", "--network", "none", "-l", SESSION_LABEL, "-e", "A=1",
                   "-u", "nobody", "-w", "/tmp", "-m", "64m", "--cpus", "0.5", "--pids-limit", "20",
                   "--ulimit", "nofile=100:200", "--cap-drop", "net_raw", "--restart", "no", "--init",
                   "--stop-timeout", "3", "--read-only", "-h", "box", "bb", "cat", input=b"from stdin\n")
        assert done.stdout == b"from stdin\n"

    mine, theirs = through_both(target, tmp_path, scenario)
    assert_same_calls(mine, theirs)
    attach = mine[1]
    assert attach[3] == {"stderr": "1", "stdin": "1", "stdout": "1", "stream": "1"}
    assert attach[5] == b"from stdin\n" and attach[6] is True  # stdin, then the half-close


def test_detached_lifecycle(target, tmp_path):
    def scenario(run, name):
        assert run("run", "-d", "--name", "{name}", "--network", "none", "-l", SESSION_LABEL, "bb", "sleep",
                   "60").returncode == 0
        for args in (["pause", "{name}"], ["unpause", "{name}"], ["kill", "-s", "HUP", "{name}"],
                     ["top", "{name}", "-o", "pid,comm"], ["port", "{name}"], ["diff", "{name}"],
                     ["inspect", "-f", "{{.Name}}", "{name}"], ["container", "inspect", "-s", "{name}"],
                     ["rename", "{name}", "{name}-2"], ["restart", "-t", "1", "{name}-2"],
                     ["stop", "-t", "1", "{name}-2"], ["wait", "{name}-2"], ["start", "{name}-2"],
                     ["rm", "-f", "{name}-2"]):
            assert run(*args).returncode == 0, args

    mine, theirs = through_both(target, tmp_path, scenario)
    assert_same_calls(mine, theirs)


def test_exec_logs_and_listings(target, tmp_path):
    def scenario(run, name):
        assert run("run", "-d", "--name", "{name}", "--network", "none", "-l", SESSION_LABEL, "bb", "sh", "-c",
                   "echo started; exec sleep 60").returncode == 0
        assert run("exec", "{name}", "echo", "x").stdout == b"x\n"
        assert run("exec", "-i", "-e", "A=1", "-u", "nobody", "-w", "/tmp", "{name}", "cat", input=b"in\n").stdout \
            == b"in\n"
        assert run("exec", "-d", "{name}", "true").returncode == 0
        run("logs", "{name}")
        run("logs", "-t", "--tail", "1", "--since", "1h", "--until", "1s", "--details", "{name}")
        run("ps", "-a", "-s", "-n", "2", "--filter", f"label={SESSION_LABEL}", "--filter", "name={name}")
        run("ps", "--format", "{{.Names}}", "--filter", "name={name}")
        run("stats", "--no-stream", "{name}")
        run("container", "prune", "-f", "--filter", "label=dockyard.test.nothing=here")

    mine, theirs = through_both(target, tmp_path, scenario)
    assert_same_calls(mine, theirs)


def test_cp_calls(target, tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("data\n")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f").write_text("f\n")
    out = tmp_path / "out"
    out.mkdir()

    def scenario(run, name):
        assert run("run", "-d", "--name", "{name}", "--network", "none", "-l", SESSION_LABEL, "bb", "sleep",
                   "60").returncode == 0
        for args in (["cp", str(source), "{name}:/tmp/copied.txt"], ["cp", str(source), "{name}:/tmp"],
                     ["cp", str(folder), "{name}:/tmp/"], ["cp", "{name}:/tmp/copied.txt", str(out / "back.txt")],
                     ["cp", "{name}:/tmp/folder", "-"]):
            assert run(*args).returncode == 0, args

    mine, theirs = through_both(target, tmp_path, scenario)
    # the archive bodies: same entry names, sizes, modes and types (times differ run to run)
    assert_same_calls(mine, theirs)
    puts = [c for c in mine if c[1] == "PUT"]
    assert [p[3]["path"] for p in puts] == ["/tmp", "/tmp", "/tmp/"]
    assert [m[0] for m in puts[0][4][1]] == ["copied.txt"]


def test_create_body_through_both(target, tmp_path):
    def scenario(run, name):
        created = run("create", "--name", "{name}", "-l", SESSION_LABEL, "-v", "/anon",
                      "--mount", "type=tmpfs,target=/t", "--tmpfs", "/run:size=1m", "--security-opt",
                      "no-new-privileges", "--cap-add", "NET_ADMIN", "--memory-swap", "128m", "-m", "64m",
                      "--stop-signal", "USR1", "bb", "true")
        assert created.returncode == 0, created.stderr

    mine, theirs = through_both(target, tmp_path, scenario)
    assert_same_calls(mine, theirs)
    assert mine[0][4]["NetworkingConfig"]["EndpointsConfig"]["default"]["NetworkID"] == ""


def test_create_with_published_ports(target, tmp_path):
    def scenario(run, name):
        created = run("create", "--name", "{name}", "-l", SESSION_LABEL, "-p", "8080:80", "-p", "53/udp",
                      "--expose", "9000-9001", "bb", "true")
        assert created.returncode == 0, created.stderr

    mine, theirs = through_both(target, tmp_path, scenario)
    assert_same_calls(mine, theirs)
    assert mine[0][4]["HostConfig"]["PortBindings"] == {"53/udp": [{"HostIp": "", "HostPort": ""}],
                                                        "80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
