"""`dockyard build` and the real `docker build` (legacy builder, DOCKER_BUILDKIT=0) against the same dockyardd.

Both CLIs pack the same context, so the `Sending build context` line must agree to the byte; the
engine's step output must have the same shape (IDs aside); the images must run and hold the same files
(.dockerignore applied on the client side); `-q`, `--iidfile` and a failing RUN's exit status must match.
While the engine has no `POST /build` (a 404 "page not found" or a 501), every test here is skipped
with that reason.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from dockyard.client.api import ApiError
from tests.support.engine import DOCKER

pytestmark = [pytest.mark.root, pytest.mark.peers]

_LONG_ID = re.compile(r"sha256:[0-9a-f]{64}")
_SHORT_ID = re.compile(r"\b[0-9a-f]{12}\b")
_DEPRECATION = ("DEPRECATED:", "BuildKit is currently disabled", "environment-variable.", "Install the buildx",
                "            ")


@pytest.fixture(scope="module")
def builds(engine, busybox_image):
    """The engine, once it is known to serve POST /build."""
    client = engine.client()
    try:
        client.request("POST", "/build", [("version", "1")], b"", {"Content-Type": "application/x-tar"}).read()
    except ApiError as exc:
        if exc.status == 501 or (exc.status == 404 and "page not found" in exc.message.lower()):
            pytest.skip(f"the engine does not serve POST /build yet ({exc.status} {exc.message})")
    finally:
        client.close()
    return engine


def docker(engine, *args: str, input: bytes | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    env = engine.env(DOCKER_BUILDKIT="0", DOCKER_CONFIG=str(engine.root / "docker-config"))
    return subprocess.run([DOCKER, *args], input=input, capture_output=True, timeout=180, env=env, cwd=cwd,
                          stdin=None if input is not None else subprocess.DEVNULL)


def dockyard(engine, *args: str, input: bytes | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    from tests.support.engine import DOCKYARD

    env = engine.env(DOCKYARD_CONFIG=str(engine.root / "dockyard-config"))
    return subprocess.run([DOCKYARD, "-H", engine.host, *args], input=input, capture_output=True, timeout=180,
                          env=env, cwd=cwd, stdin=None if input is not None else subprocess.DEVNULL)


def without_deprecation(stderr: bytes) -> str:
    """docker's stderr less the legacy builder's DEPRECATED notice (ours has none)."""
    lines = stderr.decode().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(_DEPRECATION)]
    return "".join(kept).lstrip("\n")


def shape(stdout: bytes) -> list[str]:
    """Build output with image and container IDs replaced, one entry per line."""
    text = _LONG_ID.sub("<ID>", stdout.decode())
    return [_SHORT_ID.sub("<id>", line) for line in text.split("\n")]


@pytest.fixture
def context(tmp_path):
    root = tmp_path / "ctx"
    (root / "sub").mkdir(parents=True)
    (root / "Dockerfile").write_text(
        "FROM busybox\n"
        "ARG WHO=nobody\n"
        "ENV GREETING=hello\n"
        "COPY . /ctx/\n"
        'RUN echo "$GREETING $WHO" > /ctx/who.txt\n'
        'CMD ["cat", "/ctx/who.txt"]\n')
    (root / ".dockerignore").write_text("# secrets stay home\nsecret.txt\n**/*.log\n!sub/keep.log\n")
    (root / "a.txt").write_text("a\n")
    (root / "secret.txt").write_text("s\n")
    (root / "x.log").write_text("x\n")
    (root / "sub" / "keep.log").write_text("k\n")
    (root / "sub" / "drop.log").write_text("d\n")
    os.chmod(root / "a.txt", 0o751)
    os.symlink("a.txt", root / "link")
    return root


# .dockerignore files whose effect on the context both CLIs must agree on, byte for byte
IGNORE_CASES = [
    "", "*", "*\n!src", "*\n!src/**/*.go", "**\n!Dockerfile", ".git\nnode_modules", "**/*.md\n!docs/**",
    "*.md\n!README*.md\nREADME-secret.md", "a/b\n!a/b/c/z.md", "a\n!a/b", "/a/../docs", "./src/pkg/",
    "src/*/*_test.go", "**/*_test.go", "temp?", "temp*\n!tempa", "[a-c]*", "we\\[ir\\]d", "*/*", "*/*/*",
    "!docs\ndocs", "Dockerfile\n.dockerignore", "sp?ace", "**/c", "a/**/z.md",
    " # not a comment\n#a comment\n.env", "src\n!src/pkg\nsrc/pkg/util_test.go",
]


@pytest.fixture(scope="module")
def tree(builds, tmp_path_factory):
    root = tmp_path_factory.mktemp("tree") / "ctx"
    for directory in ("a/b/c", "docs/api", ".git/objects", "src/pkg", "node_modules/x", "sp ace", "d" * 110):
        (root / directory).mkdir(parents=True)
    for name in ("a/x.txt", "a/b/y.txt", "a/b/c/z.md", "docs/README.md", "docs/api/ref.md", ".git/HEAD",
                 ".git/objects/o1", "src/main.go", "src/pkg/util.go", "src/pkg/util_test.go",
                 "node_modules/x/index.js", "README.md", "README-secret.md", "CHANGES.md", ".env", "sp ace/f",
                 "we[ir]d", "tempa", "temp", "tempab", "Dockerfile.dev", "d" * 110 + "/" + "é" * 3):
        (root / name).write_text(name + "\n")
    (root / "Dockerfile").write_text("FROM busybox\n")
    os.chmod(root / "src/main.go", 0o4755)
    os.symlink("a/x.txt", root / "link")
    os.link(root / "README.md", root / "hardlink")
    os.mkfifo(root / "fifo")
    return root


@pytest.mark.parametrize("ignore", IGNORE_CASES)
def test_the_same_context_bytes_as_docker(builds, tree, tmp_path, ignore):
    from tests.support.wiretap import Wiretap

    (tree / ".dockerignore").write_text(ignore + "\n")
    with Wiretap(builds.host, tmp_path) as tap:
        env_ours = builds.env(DOCKYARD_HOST=tap.host, DOCKYARD_CONFIG=str(builds.root / "dockyard-config"))
        env_theirs = builds.env(DOCKER_HOST=tap.host, DOCKER_BUILDKIT="0",
                                DOCKER_CONFIG=str(builds.root / "docker-config"))
        from tests.support.engine import DOCKYARD

        for argv, env in (([DOCKER, "build", "-q", str(tree)], env_theirs),
                          ([DOCKYARD, "build", "-q", str(tree)], env_ours)):
            done = subprocess.run(argv, capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
            assert done.returncode == 0, done.stderr.decode()
        theirs, ours = [r for r in tap.requests() if r.method == "POST" and r.path == "/build"]
    assert ours.target.split("?", 1)[1] == theirs.target.split("?", 1)[1]
    assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/x-tar"
    assert ours.headers["x-registry-config"] == theirs.headers["x-registry-config"]
    assert ours.body == theirs.body


def test_same_output_shape_and_a_runnable_image(builds, context):
    ours = dockyard(builds, "build", "--no-cache", "-t", "built-by:dockyard", "--build-arg", "WHO=me", str(context))
    theirs = docker(builds, "build", "--no-cache", "-t", "built-by:docker", "--build-arg", "WHO=me", str(context))
    assert theirs.returncode == 0, theirs.stderr.decode()
    assert ours.returncode == 0, ours.stderr.decode()
    assert ours.stderr.decode() == without_deprecation(theirs.stderr)
    want = [line.replace("built-by:docker", "built-by:dockyard") for line in shape(theirs.stdout)]
    assert shape(ours.stdout) == want
    # the same tar from both CLIs: the same size on the first line
    assert ours.stdout.split(b"\r\r\n")[0] == theirs.stdout.split(b"\r\r\n")[0]
    assert ours.stdout.startswith(b"Sending build context to Docker daemon  ")

    run = dockyard(builds, "run", "--rm", "built-by:dockyard")
    assert (run.returncode, run.stdout) == (0, b"hello me\n"), run.stderr


def test_dockerignore_effects_in_the_image(builds, context):
    for cli, tag in ((dockyard, "ignore:dockyard"), (docker, "ignore:docker")):
        result = cli(builds, "build", "-q", "-t", tag, str(context))
        assert result.returncode == 0, result.stderr.decode()
    listings = {}
    for tag in ("ignore:dockyard", "ignore:docker"):
        run = dockyard(builds, "run", "--rm", tag, "sh", "-c",
                       "cd /ctx && find . | sort && stat -c '%n %a %u:%g' a.txt && readlink link")
        assert run.returncode == 0, run.stderr
        listings[tag] = run.stdout.decode()
    assert listings["ignore:dockyard"] == listings["ignore:docker"]
    names = listings["ignore:dockyard"].split()
    assert "./secret.txt" not in names and "./x.log" not in names and "./sub/drop.log" not in names
    for kept in ("./Dockerfile", "./.dockerignore", "./a.txt", "./link", "./sub/keep.log", "./who.txt"):
        assert kept in names
    assert "a.txt 751 0:0" in listings["ignore:dockyard"]


def test_quiet_prints_the_image_id_only(builds, context):
    ours = dockyard(builds, "build", "-q", str(context))
    theirs = docker(builds, "build", "-q", str(context))
    assert ours.returncode == theirs.returncode == 0
    assert re.fullmatch(rb"sha256:[0-9a-f]{64}\n", ours.stdout), ours.stdout
    assert re.fullmatch(rb"sha256:[0-9a-f]{64}\n", theirs.stdout), theirs.stdout
    assert ours.stderr == b"" and without_deprecation(theirs.stderr) == ""
    image = builds.client().image_inspect(ours.stdout.decode().strip())
    assert image["Id"] == ours.stdout.decode().strip()


def test_iidfile(builds, context, tmp_path):
    for cli, name in ((dockyard, "ours"), (docker, "theirs")):
        iid = tmp_path / f"{name}.iid"
        iid.write_text("stale")
        result = cli(builds, "build", "--iidfile", str(iid), "-t", f"iid:{name}", str(context))
        assert result.returncode == 0, result.stderr.decode()
        content = iid.read_text()
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", content), content
        assert builds.client().image_inspect(f"iid:{name}")["Id"] == content


def test_a_failing_run_step(builds, tmp_path):
    root = tmp_path / "fail"
    root.mkdir()
    (root / "Dockerfile").write_text('FROM busybox\nRUN sh -c "exit 3"\n')
    ours = dockyard(builds, "build", str(root))
    theirs = docker(builds, "build", str(root))
    assert theirs.returncode == 3, theirs.stderr.decode()
    assert ours.returncode == 3, ours.stderr.decode()
    assert ours.stderr.decode() == without_deprecation(theirs.stderr)
    assert ours.stderr.decode().endswith("returned a non-zero code: 3\n")
    assert shape(ours.stdout) == shape(theirs.stdout)
    # -q: nothing on stdout; what was kept back, then the error, on stderr (an engine that has sent nothing
    # yet may answer with an error status instead of a stream, as dockerd does: then the status is 1)
    ours = dockyard(builds, "build", "-q", str(root))
    theirs = docker(builds, "build", "-q", str(root))
    assert ours.returncode == theirs.returncode != 0
    assert ours.stdout == theirs.stdout == b""
    assert shape(ours.stderr) == shape(without_deprecation(theirs.stderr).encode())


def test_dockerfiles_from_stdin_and_from_outside_the_context(builds, context, tmp_path):
    outside = tmp_path / "Dockerfile.outside"
    outside.write_text('FROM busybox\nCOPY a.txt /a.txt\nCMD ["cat", "/a.txt"]\n')
    built = dockyard(builds, "build", "-q", "-f", str(outside), str(context))
    assert built.returncode == 0, built.stderr.decode()
    run = dockyard(builds, "run", "--rm", built.stdout.decode().strip())
    assert run.stdout == b"a\n"

    built = dockyard(builds, "build", "-q", "-f", "-", str(context), input=outside.read_bytes())
    assert built.returncode == 0, built.stderr.decode()
    run = dockyard(builds, "run", "--rm", built.stdout.decode().strip())
    assert run.stdout == b"a\n"

    built = dockyard(builds, "build", "-q", "-", input=b'FROM busybox\nCMD ["echo", "from stdin"]\n')
    assert built.returncode == 0, built.stderr.decode()
    run = dockyard(builds, "run", "--rm", built.stdout.decode().strip())
    assert run.stdout == b"from stdin\n"


def test_help_is_docker_s(tmp_path):
    from tests.support.engine import DOCKYARD

    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKYARD_HOST")}
    env.update(DOCKER_BUILDKIT="0", DOCKER_CONFIG=str(tmp_path / "docker-config"))
    ours = subprocess.run([DOCKYARD, "build", "--help"], capture_output=True, env=env, stdin=subprocess.DEVNULL)
    theirs = subprocess.run([DOCKER, "build", "--help"], capture_output=True, env=env, stdin=subprocess.DEVNULL)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout.decode() == theirs.stdout.decode().replace("docker", "dockyard")
