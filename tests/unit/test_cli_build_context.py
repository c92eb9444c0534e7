"""`dockyard build` on the client side: .dockerignore matching (moby/patternmatcher), the context tar as
the docker CLI sends it, the query, the output, and flag errors; the engine is a recording fake."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import tarfile

import pytest

from dockyard.cli import build
from dockyard.cli.build import PatternError, PatternMatcher, read_dockerignore, trim_build_files
from dockyard.cli.main import Cli, run_command

# --- patterns --------------------------------------------------------------------------------------

# (pattern, path, excluded): patternmatcher's rules as docker documents them (.dockerignore reference)
# and as its own test table pins them; a match of a parent directory covers what is below it.
MATCHES = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "dir/file", True),
    ("**/file", "file", True),
    ("**/file", "dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/*", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir", False),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    # the .dockerignore reference's examples
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/temp", True),
    ("*/temp*", "temp", False),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("*/*/temp*", "somedir/temporary.txt", False),
    ("temp?", "tempa", True),
    ("temp?", "temp", False),
    ("temp?", "tempab", False),
    ("temp?", "dir/tempa", False),
    ("**/*.go", "main.go", True),
    ("**/*.go", "cmd/tool/main.go", True),
    ("**/*.go", "main.gone", False),
    # a directory's match covers its contents; `*` stops at a slash, but a match covers what is below
    ("dir", "dir/file", True),
    ("dir", "dir/sub/file", True),
    ("dir", "dirt", False),
    ("dir*", "dirt/file", True),
    ("*", "a/b/c", True),
    ("*.md", "docs/x.md", False),
    ("docs/*.md", "docs/x.md", True),
]


@pytest.mark.parametrize("pattern, path, excluded", MATCHES)
def test_pattern_table(pattern, path, excluded):
    assert PatternMatcher([pattern]).matches(path)[0] is excluded


@pytest.mark.parametrize("patterns, path, excluded", [
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    # the reference: the last matching line decides
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    (["docs", "!docs/keep.txt"], "docs/keep.txt", False),
    (["docs", "!docs/keep.txt"], "docs/other.txt", True),
    (["!x"], "x", False),
])
def test_exceptions(patterns, path, excluded):
    assert PatternMatcher(patterns).matches(path)[0] is excluded


def test_parent_results_are_reused_for_children():
    matcher = PatternMatcher(["dir", "!dir/keep"])
    skip, parent = matcher.matches("dir")
    assert skip
    assert matcher.matches("dir/file", parent)[0] is True
    assert matcher.matches("dir/keep", parent)[0] is False


def test_dockerignore_parsing():
    text = ("\ufeff# a comment\n"
            "\n"
            "  spaced.txt  \r\n"
            " # not a comment: a pattern\n"
            "/rooted/file\n"
            "./dotted/../cleaned//x\n"
            "!  /kept\n"
            "dir/\n"
            "/\n")
    assert read_dockerignore(text.encode()) == [
        "spaced.txt", "# not a comment: a pattern", "rooted/file", "cleaned/x", "!kept", "dir", "/",
    ]


def test_bad_patterns():
    with pytest.raises(PatternError, match="illegal exclusion pattern"):
        PatternMatcher(["!"])
    # docker build (CLI 28) refuses exactly these with "error checking context: syntax error in pattern"
    for bad in ("[", "a[", "x\\", "[]a]x[", "[a-]", "[-a]", "[]", "[a", "[a-z", "[a\\", "[]]", "x[a-b-c]"):
        with pytest.raises(PatternError, match="syntax error in pattern"):
            PatternMatcher([bad])
    with pytest.raises(PatternError, match="syntax error in pattern"):
        PatternMatcher(["x\\q"]).compile()  # an escape Go's regexp does not know
    for good in ("[a-z]", "[^a]", "[\\]]", "a]", "[!]", "a(", "\\d+"):
        PatternMatcher([good]).compile()


def test_dockerfile_and_dockerignore_are_always_sent():
    assert trim_build_files(["*"], "Dockerfile", False) == ["*", "!.dockerignore", "!Dockerfile"]
    assert trim_build_files(["*"], "Dockerfile", True) == ["*", "!.dockerignore"]
    assert trim_build_files(["sub"], "sub/Dockerfile.alt", False) == ["sub", "!sub/Dockerfile.alt"]
    assert trim_build_files(["x"], "Dockerfile", False) == ["x"]


# --- the context tar -------------------------------------------------------------------------------


def _tar(root, dockerignore: str | None = None, dockerfile: str = "Dockerfile", extra=None, stdin=False):
    root = str(root)
    excludes = read_dockerignore(dockerignore.encode()) if dockerignore is not None else []
    matcher = PatternMatcher(trim_build_files(excludes, dockerfile, stdin))
    data = b"".join(build.context_tar(root, matcher, extra))
    return data


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def _names(data: bytes) -> list[str]:
    # in the order of the stream, directories with their trailing slash as sent
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]


@pytest.fixture
def context(tmp_path):
    root = tmp_path / "ctx"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "logs").mkdir()
    (root / "keep").mkdir()
    (root / "Dockerfile").write_text("FROM bb\nCOPY . /ctx\n")
    (root / "a.txt").write_text("a\n")
    (root / "secret.txt").write_text("s\n")
    (root / "sub" / "x.go").write_text("x\n")
    (root / "sub" / "deep" / "y.go").write_text("y\n")
    (root / "logs" / "1.log").write_text("l\n")
    (root / "keep" / "k.log").write_text("k\n")
    os.chmod(root / "a.txt", 0o755)
    os.chmod(root / "sub" / "x.go", 0o4755)
    os.utime(root / "a.txt", (1577934245.75, 1577934245.75))
    os.symlink("a.txt", root / "link")
    os.symlink("/nonexistent", root / "dangling")
    os.link(root / "a.txt", root / "hard")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()
    return root


IGNORE = "# comment\nsecret.txt\n**/*.log\n!keep/k.log\n/sub/deep\n"


def test_tar_entries_as_docker_sends_them(context):
    (context / ".dockerignore").write_text(IGNORE)
    data = _tar(context, IGNORE)
    # the order, names and ignored files of `docker build` (legacy builder, CLI 28) on the same tree
    assert _names(data) == [
        ".dockerignore", "Dockerfile", "a.txt", "dangling", "empty/", "fifo", "hard", "keep/", "keep/k.log",
        "link", "logs/", "sub/", "sub/x.go",
    ]
    members = _members(data)
    assert {m.uid for m in members.values()} == {0} and {m.gid for m in members.values()} == {0}
    assert {m.uname for m in members.values()} == {""}
    a = members["a.txt"]
    assert (a.mode, a.mtime, a.size, a.isreg()) == (0o755, 1577934245, 2, True)
    assert members["sub/x.go"].mode == 0o4755
    assert members["empty"].isdir() and members["empty"].mode == 0o755
    assert members["link"].issym() and members["link"].linkname == "a.txt" and members["link"].mode == 0o777
    assert members["dangling"].issym() and members["dangling"].linkname == "/nonexistent"
    assert members["hard"].islnk() and members["hard"].linkname == "a.txt"
    assert members["fifo"].isfifo()
    assert "sock" not in members
    # ustar headers as Go writes them, two zero blocks at the end, no record padding
    assert data[257:265] == b"ustar\x0000"
    assert data.endswith(b"\0" * 1024) and len(data) % 512 == 0
    first_header_of_a = data.index(b"a.txt\0")
    assert data[first_header_of_a + 148:first_header_of_a + 156].endswith(b"\0 ")


def test_an_ignored_directory_with_an_exception_below_it(context):
    data = _tar(context, "sub\n!sub/deep/y.go\n")
    names = _names(data)
    assert "sub/" not in names and "sub/x.go" not in names and "sub/deep/" not in names
    assert "sub/deep/y.go" in names


def test_ignored_dockerfile_and_dockerignore_still_go(context):
    (context / "Dockerfile.alt").write_text("FROM bb\n")
    (context / ".dockerignore").write_text("*\n")
    names = _names(_tar(context, "*\n", dockerfile="Dockerfile.alt"))
    assert names == [".dockerignore", "Dockerfile.alt"]


def test_long_and_non_ascii_names_use_pax_records(tmp_path):
    root = tmp_path / "ctx"
    long_dir = "d" * 120
    (root / long_dir).mkdir(parents=True)
    (root / long_dir / "é.txt").write_text("z\n")
    os.symlink(f"{long_dir}/é.txt", root / "ln")
    members = _members(_tar(root))
    assert members[f"{long_dir}/é.txt"].size == 2
    assert members["ln"].linkname == f"{long_dir}/é.txt"
    assert members[long_dir].isdir()


def test_dockerfile_from_outside_goes_in_under_a_generated_name(context):
    (context / ".dockerignore").write_text(IGNORE)
    data = _tar(context, IGNORE, dockerfile="../Dockerfile.out",
                extra=(".dockerfile.0123456789abcdef0123", b"FROM bb\nRUN true\n"))
    members = _members(data)
    extra = members[".dockerfile.0123456789abcdef0123"]
    assert extra.mode == 0o600 and extra.size == 17
    assert _names(data)[-1] == ".dockerfile.0123456789abcdef0123"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        ignore = tar.extractfile(".dockerignore").read()
    assert ignore == IGNORE.encode() + b"\n.dockerfile.0123456789abcdef0123\n"


def test_a_generated_dockerignore_when_the_context_has_none(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "f").write_text("f\n")
    data = _tar(root, None, extra=(".dockerfile.aaaaaaaaaaaaaaaaaaaa", b"FROM bb\n"), stdin=True)
    assert _names(data) == ["f", ".dockerfile.aaaaaaaaaaaaaaaaaaaa", ".dockerignore"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile(".dockerignore").read() == b".dockerignore\n.dockerfile.aaaaaaaaaaaaaaaaaaaa\n"


def test_the_tar_is_streamed_in_pieces(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    with open(root / "big", "wb") as f:
        f.write(os.urandom(3 << 20))
    pieces = list(build.context_tar(str(root), PatternMatcher([])))
    assert max(len(p) for p in pieces) <= 1 << 20
    assert _members(b"".join(pieces))["big"].size == 3 << 20


def _drain(stream) -> bytes:
    """Read a body as the HTTP client does: 1 MiB at a time, to the empty read."""
    data = b""
    while piece := stream.read(1 << 20):
        data += piece
    return data


def test_progress_line_on_a_non_terminal():
    out = io.StringIO()
    body = _drain(build.ProgressStream(iter([b"x" * 1024, b"y" * 1024]), out))
    assert len(body) == 2048
    assert out.getvalue() == "Sending build context to Docker daemon  2.048kB\r\r\n"
    # not on a terminal, docker draws the final count only, however big the context
    out = io.StringIO()
    _drain(build.ProgressStream(iter([b"z" * (1 << 20)] * 40), out))
    assert out.getvalue() == "Sending build context to Docker daemon  41.94MB\r\r\n"


# --- the command, against a recording fake engine ----------------------------------------------------


class FakeEngine:
    def __init__(self, messages):
        self.messages = messages
        self.calls = []

    def image_build(self, body, params, registry_config):
        self.calls.append((params, registry_config, _drain(body)))
        yield from self.messages


ID = "sha256:" + "ab" * 32
OK = [{"stream": "Step 1/1 : FROM bb\n"}, {"stream": " ---> abababababab\n"}, {"aux": {"ID": ID}},
      {"stream": "Successfully built abababababab\n"}, {"stream": "Successfully tagged x:latest\n"}]


def _run(argv, messages=OK, monkeypatch=None, stdin: bytes | None = None, capsys=None):
    cli = Cli("unix:///nonexistent.sock")
    fake = FakeEngine(messages)
    cli._client = fake  # type: ignore[assignment]
    if stdin is not None:
        monkeypatch.setattr(build, "_read_stdin", lambda: io.BytesIO(stdin))
    status = run_command(cli, build.BUILD, argv)
    return status, fake


@pytest.fixture
def no_logins(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "cfg"))
    monkeypatch.delenv("DOCKER_DEFAULT_PLATFORM", raising=False)


def test_query_and_output(context, capsys, no_logins, monkeypatch):
    monkeypatch.setenv("WHO", "me")
    status, fake = _run(["-t", "x:1", "-t", "y", "--build-arg", "A=1", "--build-arg", "WHO", "--build-arg", "NOPE",
                         "--label", "L=v", "--label", "bare", "--no-cache", "--pull", "--target", "t",
                         "--network", "host", "--rm=false", "--force-rm", "--platform", "linux/amd64",
                         str(context)])
    assert status == 0
    params, config, _ = fake.calls[0]
    # the docker CLI's query for the same flags, keys in Go's order
    assert params == [
        ("buildargs", json.dumps({"A": "1", "WHO": "me", "NOPE": None}, separators=(",", ":"))),
        ("dockerfile", "Dockerfile"), ("forcerm", "1"),
        ("labels", json.dumps({"L": "v", "bare": ""}, separators=(",", ":"))),
        ("networkmode", "host"), ("nocache", "1"), ("platform", "linux/amd64"), ("pull", "1"), ("rm", "0"),
        ("t", "x:1"), ("t", "y"), ("target", "t"), ("version", "1"),
    ]
    assert config == "e30="
    out = capsys.readouterr().out
    assert out.startswith("Sending build context to Docker daemon  ")
    assert out.split("\r\r\n", 1)[1] == ("Step 1/1 : FROM bb\n ---> abababababab\nSuccessfully built abababababab\n"
                                         "Successfully tagged x:latest\n")


def test_defaults_send_only_what_docker_sends(context, no_logins, capsys):
    status, fake = _run([str(context)])
    assert status == 0
    assert fake.calls[0][0] == [("dockerfile", "Dockerfile"), ("version", "1")]


def test_quiet_and_iidfile(context, tmp_path, no_logins, capsys):
    iid = tmp_path / "iid"
    iid.write_text("stale")
    status, fake = _run(["-q", "--iidfile", str(iid), str(context)], [{"stream": ID + "\n"}])
    assert status == 0
    assert ("q", "1") in fake.calls[0][0]
    assert capsys.readouterr().out == ID + "\n"
    assert iid.read_text() == ID + "\n"  # docker writes the whole quiet output
    status, _ = _run(["--iidfile", str(iid), str(context)])
    assert status == 0
    assert iid.read_text() == ID


def test_iidfile_without_an_id_from_the_engine(context, tmp_path, no_logins, capsys):
    iid = tmp_path / "iid"
    status, _ = _run(["--iidfile", str(iid), str(context)], [{"stream": "Successfully built ab\n"}])
    assert status == 1
    assert capsys.readouterr().err == f"Server did not provide an image ID. Cannot write {iid}\n"
    assert not iid.exists()


def test_errors_in_the_stream(context, no_logins, capsys):
    failing = [{"stream": "Step 1/1 : RUN exit 3\n"},
               {"errorDetail": {"code": 3, "message": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"},
                "error": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"}]
    status, _ = _run([str(context)], failing)
    captured = capsys.readouterr()
    assert status == 3
    assert captured.out.endswith("Step 1/1 : RUN exit 3\n")
    assert captured.err == "The command '/bin/sh -c exit 3' returned a non-zero code: 3\n"
    status, _ = _run(["-q", str(context)], failing)
    captured = capsys.readouterr()
    assert status == 3 and captured.out == ""
    assert captured.err.startswith("Sending build context to Docker daemon  ")
    assert captured.err.endswith("\r\r\nStep 1/1 : RUN exit 3\nThe command '/bin/sh -c exit 3' returned a non-zero "
                                 "code: 3\n")
    status, _ = _run([str(context)], [{"errorDetail": {"message": "no code"}, "error": "no code"}])
    assert status == 1 and capsys.readouterr().err == "no code\n"


def test_engine_errors_before_the_stream(context, no_logins, capsys):
    from dockyard.client.api import ApiError

    class Refusing(FakeEngine):
        def image_build(self, body, params, registry_config):
            _drain(body)
            raise ApiError(400, "the build context is not a tar archive")
            yield  # a generator, as the client's

    cli = Cli("unix:///nonexistent.sock")
    cli._client = Refusing([])  # type: ignore[assignment]
    assert run_command(cli, build.BUILD, [str(context)]) == 1
    assert capsys.readouterr().err == "Error response from daemon: the build context is not a tar archive\n"
    assert run_command(cli, build.BUILD, ["-q", str(context)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Sending build context to Docker daemon  ")
    assert err.endswith("\r\r\nError response from daemon: the build context is not a tar archive\n")


def test_dockerfile_from_stdin_and_from_outside(context, tmp_path, no_logins, monkeypatch, capsys):
    status, fake = _run(["-f", "-", str(context)], monkeypatch=monkeypatch, stdin=b"FROM bb\nRUN x\n")
    assert status == 0
    params, _, body = fake.calls[0]
    name = dict(params)["dockerfile"]
    assert name.startswith(".dockerfile.") and len(name) == len(".dockerfile.") + 20
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile(name).read() == b"FROM bb\nRUN x\n"

    outside = tmp_path / "Dockerfile.out"
    outside.write_text("FROM bb\n")
    status, fake = _run(["-f", str(outside), str(context)])
    assert status == 0
    params, _, body = fake.calls[0]
    name = dict(params)["dockerfile"]
    assert name.startswith(".dockerfile.")
    assert _members(body)[name].size == 8

    inside = context / "sub" / "Dockerfile.in"
    inside.write_text("FROM bb\n")
    monkeypatch.chdir(context / "sub")
    status, fake = _run(["-f", "Dockerfile.in", str(context)])  # -f is relative to the working directory
    assert status == 0
    assert dict(fake.calls[0][0])["dockerfile"] == "sub/Dockerfile.in"


def test_stdin_contexts(tmp_path, no_logins, monkeypatch, capsys):
    status, fake = _run(["-"], monkeypatch=monkeypatch, stdin=b"FROM bb\n")
    assert status == 0
    params, _, body = fake.calls[0]
    assert params == [("dockerfile", "Dockerfile"), ("version", "1")]
    assert list(_members(body)) == ["Dockerfile"]

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = 8
        tar.addfile(info, io.BytesIO(b"FROM bb\n"))
    status, fake = _run(["-"], monkeypatch=monkeypatch, stdin=buf.getvalue())
    assert status == 0
    params, _, body = fake.calls[0]
    assert params == [("version", "1")]  # a tar goes as it is, with no dockerfile= unless -f says
    assert body == buf.getvalue()


@pytest.mark.parametrize("argv, status, message", [
    (["-t", "Bad:tag", "."], 125,
     'invalid argument "Bad:tag" for "-t, --tag" flag: invalid reference format: repository name (library/Bad) '
     "must be lowercase"),
    (["-t", "a:b:c", "."], 125, 'invalid argument "a:b:c" for "-t, --tag" flag: invalid reference format'),
    (["--build-arg", "=x", "."], 125, 'invalid argument "=x" for "--build-arg" flag: invalid environment variable: =x'),
    (["--rm=maybe", "."], 125,
     'invalid argument "maybe" for "--rm" flag: strconv.ParseBool: parsing "maybe": invalid syntax'),
    (["--bogus", "."], 125, "unknown flag: --bogus"),
    ([], 1, "dockyard: 'dockyard build' requires 1 argument"),
    (["a", "b"], 1, "dockyard: 'dockyard build' requires 1 argument"),
    (["-f", "-", "-"], 1, "invalid argument: can't use stdin for both build context and dockerfile"),
    (["/nonexistent/ctx"], 1, 'unable to prepare context: path "/nonexistent/ctx" not found'),
    (["https://example.com/ctx.tar"], 1, "unable to prepare context: unable to use remote context"),
    (["git@github.com:x/y.git"], 1, "unable to prepare context: unable to use remote context"),
])
def test_usage_errors(argv, status, message, capsys, no_logins):
    code, fake = _run(argv)
    assert code == status
    assert capsys.readouterr().err.startswith(message)
    assert fake.calls == []


def test_context_and_dockerfile_errors(context, tmp_path, capsys, no_logins):
    code, _ = _run([str(context / "a.txt")])
    assert code == 1
    assert capsys.readouterr().err == f"unable to prepare context: context must be a directory: {context}/a.txt\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _ = _run([str(empty)])
    assert code == 1
    assert capsys.readouterr().err == ("unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                                       f"lstat {empty}/Dockerfile: no such file or directory\n")
    (context / ".dockerignore").write_text("[\n")
    code, _ = _run([str(context)])
    assert code == 1
    assert capsys.readouterr().err == "error checking context: syntax error in pattern\n"


def test_registry_config_carries_every_login(tmp_path, monkeypatch):
    import base64

    from dockyard.cli import registry

    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "cfg"))
    assert build.registry_config() == "e30="
    registry._write_config({"auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"u:p").decode()}}})
    assert json.loads(base64.urlsafe_b64decode(build.registry_config())) == {
        "127.0.0.1:5000": {"username": "u", "password": "p", "serveraddress": "127.0.0.1:5000"},
    }


def test_modes_of_regular_files_keep_special_bits(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    for name, mode in (("setgid", 0o2750), ("sticky", 0o1777), ("plain", 0o600)):
        (root / name).write_text("")
        os.chmod(root / name, mode)
    members = _members(_tar(root))
    assert {n: stat.S_IMODE(m.mode) for n, m in members.items()} == {"plain": 0o600, "setgid": 0o2750,
                                                                       "sticky": 0o1777}


@pytest.mark.parametrize("pattern, path, excluded", [
    # measured with docker build (CLI 28) on the same names
    ("a[^b-d]e", "a^e", True),
    ("a[^b-d]e", "a!e", True),
    ("a[^b-d]e", "abe", False),
    ("x\\d", "x5", True),
    ("x\\d", "xd", False),
])
def test_classes_and_escapes_as_docker_reads_them(pattern, path, excluded):
    assert PatternMatcher([pattern]).matches(path)[0] is excluded


def test_resource_and_host_flags_in_the_query(context, no_logins, capsys):
    status, fake = _run(["--add-host", "a:1.2.3.4", "--add-host", "b:5.6.7.8", "--cache-from", "x:1",
                         "--cache-from", "y,z", "--cgroup-parent", "cg", "--cpu-period", "100000", "--cpu-quota",
                         "50000", "-c", "512", "--cpuset-cpus", "0-1", "--cpuset-mems", "0", "--isolation", "default",
                         "-m", "64m", "--memory-swap", "128m", "--security-opt", "seccomp=unconfined", "--shm-size",
                         "32m", "--ulimit", "nofile=1024:2048", str(context)])
    assert status == 0
    # what docker build (CLI 28) sent for the same flags
    assert fake.calls[0][0] == [
        ("cachefrom", '["x:1","y","z"]'), ("cgroupparent", "cg"), ("cpuperiod", "100000"), ("cpuquota", "50000"),
        ("cpusetcpus", "0-1"), ("cpusetmems", "0"), ("cpushares", "512"), ("dockerfile", "Dockerfile"),
        ("extrahosts", "a:1.2.3.4"), ("extrahosts", "b:5.6.7.8"), ("memory", "67108864"), ("memswap", "134217728"),
        ("securityopt", "seccomp=unconfined"), ("shmsize", "33554432"),
        ("ulimits", '[{"Name":"nofile","Hard":2048,"Soft":1024}]'), ("version", "1"),
    ]


def test_compress_gzips_the_context(context, no_logins, capsys):
    import gzip

    status, fake = _run(["--compress", str(context)])
    assert status == 0
    body = fake.calls[0][2]
    assert body[:3] == b"\x1f\x8b\x08"
    assert "Dockerfile" in _members(gzip.decompress(body))


def test_squash_needs_an_experimental_daemon(context, no_logins, capsys):
    status, fake = _run(["--squash", str(context)])
    assert status == 1 and fake.calls == []
    assert capsys.readouterr().err == '"--squash" is only supported on a Docker daemon with experimental features ' \
                                      "enabled\n"


def _as_nobody(func):
    """Run `func` without root's access override (a forked child as nobody when we are root); its
    CliError message, or "" when it passed."""
    from dockyard.cli.main import CliError

    def attempt() -> str:
        try:
            func()
        except CliError as exc:
            return exc.message
        return ""

    if os.geteuid() != 0:
        return attempt()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, attempt().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        message = f.read().decode()
    os.waitpid(pid, 0)
    return message


@pytest.fixture
def open_tmp():
    """A directory everyone can reach (pytest's tmp_path is under a root-only directory)."""
    import shutil
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="dockyard-build-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def test_unreadable_context_files_fail_before_anything_is_sent(open_tmp):
    root = open_tmp / "ctx"
    (root / "sub").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM bb\n")
    (root / "secret").write_text("s\n")
    (root / "sub" / "f").write_text("f\n")
    os.chmod(root, 0o755)
    os.chmod(root / "secret", 0)
    os.mkfifo(root / "fifo", 0)  # fifos are not opened
    # docker build's words for the same trees (CLI 28, run as nobody)
    assert _as_nobody(lambda: build.validate_context(str(root), [])) == \
        f"error checking context: no permission to read from '{root}/secret'"
    assert _as_nobody(lambda: build.validate_context(str(root), ["secret"])) == ""
    os.chmod(root / "sub", 0o700)
    assert _as_nobody(lambda: build.validate_context(str(root), ["secret"])) == \
        f"error checking context: can't stat '{root}/sub'"
    assert _as_nobody(lambda: build.validate_context(str(root), ["secret", "sub"])) == ""


def test_a_failed_build_leaves_no_stale_iidfile(tmp_path, no_logins, capsys):
    iid = tmp_path / "iid"
    iid.write_text("sha256:old")
    status, _ = _run(["--iidfile", str(iid), str(tmp_path / "missing")])
    assert status == 1
    assert not iid.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_device_nodes_go_as_devices(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "loop", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    os.chmod(root / "null", 0o666)  # mknod's mode went through the umask
    members = _members(_tar(root))
    assert members["null"].ischr() and (members["null"].devmajor, members["null"].devminor) == (1, 3)
    assert members["null"].mode == 0o666
    assert members["loop"].isblk() and (members["loop"].devmajor, members["loop"].devminor) == (7, 0)
