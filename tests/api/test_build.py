"""`POST /build` on a real dockyardd, driven by the real docker CLI (legacy builder) and the docker SDK."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import urllib.parse
from pathlib import Path

import pytest

from tests.support.dockerd import SOCKET, peer_docker  # noqa: F401  (fixture)
from tests.support.engine import DOCKER, import_busybox
from tests.support.registry import PASSWORD, USER, registry_fixture


def write(ctx: Path, files: dict[str, str | bytes]) -> Path:
    ctx.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return ctx


def cli_build(engine, ctx: Path, *args: str):
    env = engine.env(DOCKER_CONFIG=str(engine.root / "docker-config"), DOCKER_BUILDKIT="0")
    import subprocess

    return subprocess.run([DOCKER, "build", *args, str(ctx)], capture_output=True, timeout=300, env=env)


def context_tar(files: dict[str, str | bytes | tuple]) -> bytes:
    """A context tar; a tuple value is ("symlink", target) or ("raw", TarInfo-name) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = data[1]
                tar.addfile(info)
                continue
            raw = data.encode() if isinstance(data, str) else data
            info.size = len(raw)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def api_build(engine, tar: bytes, **query) -> tuple[int, list[dict] | dict]:
    """A raw POST /build (status, messages or error body)."""
    params = []
    for key, value in query.items():
        for v in value if isinstance(value, list) else [value]:
            params.append((key, v))
    path = "/build?" + urllib.parse.urlencode(params)
    status, body = _post(engine, path, tar)
    if status != 200:
        return status, json.loads(body)
    return status, [json.loads(line) for line in body.splitlines() if line.strip()]


def _post(engine, path: str, data: bytes, method: str = "POST") -> tuple[int, bytes]:
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(engine.socket))

    conn = Conn("localhost", timeout=300)
    conn.request(method, "/v1.41" + path, body=data, headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def streams(messages: list[dict]) -> str:
    return "".join(m.get("stream", "") for m in messages)


def test_cli_build_steps_output_and_run(engine, busybox_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nENV GREETING=hello\nCOPY a.txt /a.txt\nRUN echo $GREETING && cat /a.txt\n"
                      "CMD [\"cat\", \"/a.txt\"]\n",
        "a.txt": "hi\n",
    })
    res = cli_build(engine, ctx, "-t", "bt1")
    out = res.stdout.decode()
    assert res.returncode == 0, res.stderr.decode() + out
    lines = [line for line in out.splitlines() if line.strip() and not line.startswith("Sending build context")]
    assert lines[0] == "Step 1/5 : FROM busybox"
    assert lines[1] == f" ---> {busybox_image[7:19]}"
    assert "Step 2/5 : ENV GREETING=hello" in lines
    assert "Step 4/5 : RUN echo $GREETING && cat /a.txt" in lines
    assert "hello" in lines and "hi" in lines
    assert any(line.startswith(" ---> Running in ") for line in lines)
    assert any(line.startswith("Removing intermediate container ") for line in lines)
    assert lines[-2].startswith("Successfully built ")
    assert lines[-1] == "Successfully tagged bt1:latest"
    run = engine.docker("run", "--rm", "bt1")
    assert run.stdout == b"hi\n", run.stderr
    hist = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "bt1").stdout.decode().splitlines()
    assert hist[0] == '/bin/sh -c #(nop)  CMD ["cat" "/a.txt"]'
    assert hist[1] == "/bin/sh -c echo $GREETING && cat /a.txt"
    assert hist[2].startswith("/bin/sh -c #(nop) COPY file:") and hist[2].endswith(" in /a.txt ")
    assert hist[3] == "/bin/sh -c #(nop)  ENV GREETING=hello"
    # no container is left behind
    assert engine.docker("ps", "-aq").stdout.strip() == b""


def _build_ok(engine, ctx: Path, *args: str) -> list[str]:
    res = cli_build(engine, ctx, *args)
    out = res.stdout.decode()
    assert res.returncode == 0, res.stderr.decode() + out
    return [line for line in out.splitlines() if line.strip() and not line.startswith("Sending build context")]


def test_cache_second_build_hits_and_a_changed_file_rebuilds_from_its_step(engine, busybox_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nENV A=1\nRUN echo one > /one\nCOPY f.txt /f.txt\nRUN cat /f.txt /one\n",
        "f.txt": "v1\n",
    })
    first = _build_ok(engine, ctx, "-t", "bcache")
    assert " ---> Using cache" not in first
    second = _build_ok(engine, ctx, "-t", "bcache")
    assert second.count(" ---> Using cache") == 4
    assert not any("Running in" in line for line in second)
    assert second[-2] == first[-2]  # same image
    (ctx / "f.txt").write_text("v2\n")
    third = _build_ok(engine, ctx, "-t", "bcache")
    assert third.count(" ---> Using cache") == 2  # ENV and the first RUN; COPY and after rebuild
    assert "v2" in third and "one" in third
    nocache = _build_ok(engine, ctx, "--no-cache", "-t", "bcache")
    assert " ---> Using cache" not in nocache


def test_failing_run_exit_code_and_message(engine, busybox_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo before\nRUN exit 3\nRUN echo never\n"})
    before = engine.docker("images", "-aq").stdout
    res = cli_build(engine, ctx, "-t", "bfail")
    assert res.returncode == 3
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in res.stderr.decode()
    assert "never" not in res.stdout.decode()
    assert engine.docker("image", "inspect", "bfail").returncode != 0
    status, messages = api_build(engine, context_tar({"Dockerfile": "FROM busybox\nRUN exit 3\n"}), forcerm="1")
    assert status == 200
    assert messages[-1] == {"errorDetail": {"code": 3, "message": "The command '/bin/sh -c exit 3' returned a "
                                                                  "non-zero code: 3"},
                            "error": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"}
    assert before is not None


def test_build_args_reach_run_not_the_image(engine, busybox_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "ARG BASE=busybox\nFROM $BASE\nARG WHO=nobody\nARG UNSET\n"
                      "ENV GREETING=${GREETING:-hello} ALT=${UNSET:+set}\nRUN echo \"$GREETING $WHO\" \\\n  '$WHO'\n",
    })
    lines = _build_ok(engine, ctx, "--build-arg", "WHO=me", "--build-arg", "EXTRA=1", "-t", "bargs")
    assert "Step 1/6 : ARG BASE=busybox" in lines
    assert "hello me $WHO" in lines
    assert "[Warning] One or more build-args [EXTRA] were not consumed" in lines
    cfg = json.loads(engine.docker("image", "inspect", "bargs").stdout)[0]
    assert "GREETING=hello" in cfg["Config"]["Env"] and "ALT=" in cfg["Config"]["Env"]
    assert not any(e.startswith("WHO=") for e in cfg["Config"]["Env"])
    hist = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "bargs").stdout.decode()
    assert hist.splitlines()[0].startswith("|1 WHO=me /bin/sh -c echo")


def test_multi_stage_copy_from_and_target(engine, busybox_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox AS builder\nRUN mkdir -p /out && echo built > /out/artifact\n"
                      "FROM busybox AS tester\nRUN echo testing\n"
                      "FROM scratch\nCOPY --from=builder /out/artifact /artifact\nCOPY --from=busybox /etc/passwd /etc/\n"
                      "COPY --from=busybox /bin/busybox /busybox\nCMD [\"/busybox\", \"cat\", \"/artifact\"]\n",
    })
    lines = _build_ok(engine, ctx, "-t", "bmulti")
    assert "Step 8/9 : COPY --from=busybox /bin/busybox /busybox" in lines
    run = engine.docker("run", "--rm", "bmulti")
    assert run.stdout == b"built\n", run.stderr
    target = _build_ok(engine, ctx, "--target", "builder", "-t", "bmulti:builder")
    assert target[0] == "Step 1/2 : FROM busybox AS builder"
    assert not any("testing" in line for line in target)
    run = engine.docker("run", "--rm", "bmulti:builder", "cat", "/out/artifact")
    assert run.stdout == b"built\n"
    res = cli_build(engine, ctx, "--target", "nope")
    assert res.returncode != 0 and "failed to reach build target nope" in res.stderr.decode()


def test_dockerignore_through_the_cli(engine, busybox_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN ls /ctx | sort\n",
        ".dockerignore": "secret.txt\n*.log\n",
        "secret.txt": "s3cret", "app.log": "x", "keep.txt": "keep",
    })
    lines = _build_ok(engine, ctx, "-t", "bignore")
    assert "keep.txt" in lines and "Dockerfile" in lines
    assert "secret.txt" not in lines and "app.log" not in lines


@pytest.mark.parametrize("files, dockerfile", [
    ({}, "COPY ../etc/passwd /x"),
    ({"link": ("symlink", "/etc/passwd")}, "COPY link /x"),
    ({"link": ("symlink", "../../../../etc/passwd")}, "COPY link /x"),
    ({"dir/link": ("symlink", "/etc")}, "COPY dir/link/passwd /x"),
])
def test_context_escapes_are_refused(engine, busybox_image, files, dockerfile):
    tar = context_tar({"Dockerfile": f"FROM busybox\n{dockerfile}\n", **files})
    status, messages = api_build(engine, tar, t="besc")
    assert status == 200
    assert "Forbidden path outside the build context" in messages[-1]["error"], messages
    assert engine.docker("image", "inspect", "besc").returncode != 0


def test_absolute_source_is_the_context_root_and_a_tar_member_outside_is_refused(engine, busybox_image):
    tar = context_tar({"Dockerfile": "FROM busybox\nCOPY /a.txt /etc/hostname.txt\nRUN cat /etc/hostname.txt\n",
                       "a.txt": "from-context\n"})
    status, messages = api_build(engine, tar)
    assert status == 200 and "from-context\n" in streams(messages), messages
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"FROM busybox\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    status, body = api_build(engine, buf.getvalue())
    assert status in (400, 500) and "Forbidden path outside the build context" in body["message"]


def test_malformed_dockerfile_fails_before_any_step_and_stores_nothing(engine, busybox_image):
    before = engine.docker("images", "-aq").stdout
    for text, words in (("FROM busybox\nFOO bar\n", "unknown instruction: FOO"),
                        ("FROM busybox\nCOPY onlyone\n", "COPY requires at least two arguments"),
                        ("RUN echo\n", "no build stage"),
                        ("FROM busybox\nCOPY --bogus=1 a b\n", "Unknown flag: bogus")):
        status, body = api_build(engine, context_tar({"Dockerfile": text}), t="bbad")
        assert status == 400, (text, body)
        assert words in body["message"]
    assert engine.docker("images", "-aq").stdout == before
    res = cli_build(engine, write(Path(engine.root) / "badctx", {"Dockerfile": "FROM busybox\nFOO bar\n"}))
    assert res.returncode == 1 and "unknown instruction: FOO" in res.stderr.decode()
    assert "Step 1/" not in res.stdout.decode()


def test_every_instruction_lands_in_the_config(engine, busybox_image, tmp_path):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as t:
        info = tarfile.TarInfo("pkg/inside.txt")
        info.size = 7
        t.addfile(info, io.BytesIO(b"inside\n"))
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": (
            "FROM busybox\n"
            "MAINTAINER someone <s@example.org>\n"
            "LABEL org.example.a=\"one two\" b=3\n"
            "WORKDIR /app\n"
            "WORKDIR sub\n"
            "COPY --chown=1000:1001 --chmod=640 f.txt ./\n"
            "ADD pkg.tar.gz /opt/\n"
            "ADD plain.txt /opt/plain.txt\n"
            "SHELL [\"/bin/sh\", \"-ec\"]\n"
            "RUN stat -c '%u:%g %a' f.txt && cat /opt/pkg/inside.txt && pwd\n"
            "USER 1000\n"
            "EXPOSE 80 53/udp 8000-8001\n"
            "VOLUME /data\n"
            "VOLUME [\"/other\"]\n"
            "STOPSIGNAL SIGQUIT\n"
            "HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD true\n"
            "ONBUILD RUN echo triggered > /tmp/triggered\n"
            "ENTRYPOINT [\"/bin/echo\"]\n"
            "CMD [\"default\"]\n"),
        "f.txt": "file\n", "pkg.tar.gz": inner.getvalue(), "plain.txt": "plain\n",
    })
    lines = _build_ok(engine, ctx, "-t", "ball")
    assert "1000:1001 640" in lines and "inside" in lines and "/app/sub" in lines
    cfg = json.loads(engine.docker("image", "inspect", "ball").stdout)[0]
    c = cfg["Config"]
    assert cfg["Author"] == "someone <s@example.org>"
    assert c["Labels"] == {"org.example.a": "one two", "b": "3"}
    assert c["WorkingDir"] == "/app/sub" and c["User"] == "1000"
    assert set(c["ExposedPorts"]) == {"80/tcp", "53/udp", "8000/tcp", "8001/tcp"}
    assert set(c["Volumes"]) == {"/data", "/other"}
    assert c["StopSignal"] == "SIGQUIT"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                                "Timeout": 2_000_000_000, "Retries": 4}
    assert c["OnBuild"] == ["RUN echo triggered > /tmp/triggered"]
    assert c["Entrypoint"] == ["/bin/echo"] and c["Cmd"] == ["default"]
    assert c["Shell"] == ["/bin/sh", "-ec"]
    assert engine.docker("run", "--rm", "ball").stdout == b"default\n"
    assert engine.docker("run", "--rm", "--entrypoint", "cat", "ball", "/opt/plain.txt").stdout == b"plain\n"
    # the ONBUILD trigger runs when the image is a base
    child = write(tmp_path / "child", {"Dockerfile": "FROM ball\nRUN cat /tmp/triggered\n"})
    lines = _build_ok(engine, child, "-t", "bchild")
    assert "# Executing 1 build trigger" in lines and "triggered" in lines
    cfg = json.loads(engine.docker("image", "inspect", "bchild").stdout)[0]
    assert not cfg["Config"]["OnBuild"]
    hist = json.loads(engine.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", "ball").stdout)
    assert len(hist) >= 6


def test_add_url_is_refused_clearly(engine, busybox_image):
    status, messages = api_build(engine, context_tar({"Dockerfile": "FROM busybox\nADD http://example.com/x /x\n"}))
    assert status == 200
    assert "fetching remote sources is not supported" in messages[-1]["error"]


def test_quiet_labels_and_sdk(engine, busybox_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo quiet-output\n"})
    res = cli_build(engine, ctx, "-q", "--label", "L1=v1", "-t", "bquiet")
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().strip().startswith("sha256:") and b"quiet-output" not in res.stdout
    cfg = json.loads(engine.docker("image", "inspect", "bquiet").stdout)[0]
    assert cfg["Config"]["Labels"] == {"L1": "v1"}
    iid = tmp_path / "iid"
    res = cli_build(engine, ctx, "--iidfile", str(iid), "-t", "bquiet")
    assert res.returncode == 0 and iid.read_text().startswith("sha256:")
    client = engine.docker_sdk()
    image, logs = client.images.build(path=str(ctx), tag="bsdk:1", rm=True)
    assert "bsdk:1" in image.tags
    assert any("quiet-output" in (entry.get("stream") or "") for entry in logs) or \
        any("Using cache" in (entry.get("stream") or "") for entry in logs)
    assert client.containers.run("bsdk:1", ["echo", "ran"], remove=True) == b"ran\n"
    image, _ = client.images.build(path=str(ctx), tag="bsdk:2", buildargs={"X": "1"}, nocache=True)
    assert image.id != ""


def test_intermediate_images_are_hidden(fresh_engine, busybox_tar, tmp_path):
    engine = fresh_engine
    import_busybox(engine, busybox_tar)
    stale = engine.data_root / "builder" / "tmp" / "build-1-left-by-a-crash"  # a daemon of pid 1 died mid-build
    (stale / "context").mkdir(parents=True)
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nENV X=1\nENV Y=2\nCOPY Dockerfile /\n"})
    _build_ok(engine, ctx, "-t", "bhide")
    assert not stale.exists()
    assert os.listdir(engine.data_root / "builder" / "tmp") == []  # nothing of the finished build either
    listed = engine.docker("images", "--format", "{{.Repository}}").stdout.decode().split()
    assert "<none>" not in listed
    assert len(engine.docker("images", "-aq").stdout.split()) > len(listed)


PEER = SOCKET  # the peer dockerd (the tests that use it ask for the peer_docker fixture, which starts it)


def _post_socket(socket_path: str, path: str, data: bytes, method: str = "POST") -> tuple[int, bytes]:
    class _Peer:
        socket = socket_path

    return _post(_Peer, path, data, method)


def _masked(body: bytes) -> list[dict]:
    """The messages with IDs masked and a RUN's output as one message (dockerd splits it as it reads it)."""
    text = re.sub(rb"[0-9a-f]{64}", b"<id64>", body)
    text = re.sub(rb"[0-9a-f]{12}", b"<id12>", text)
    out: list[dict] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        message = json.loads(line)
        chunk = message.get("stream", "")
        output = chunk and chunk != "\n" and not chunk.startswith(("Step ", " --->", "Removing intermediate",
                                                                     "Successfully "))
        if output and out and out[-1].get("output"):
            out[-1]["stream"] += chunk
        else:
            out.append(dict(message, output=True) if output else message)
    return out


@pytest.mark.usefixtures("peer_docker")
def test_stream_matches_dockerds_legacy_builder(engine, busybox_image):
    engine.docker("tag", "busybox", "bb")
    tar = context_tar({
        "Dockerfile": "FROM bb AS base\nARG V=1\nENV GREETING=hello\nCOPY a.txt /a.txt\nCOPY a.txt d/ /multi/\n"
                      "WORKDIR /w\nRUN echo $GREETING $V && cat /a.txt\nLABEL x=y\nEXPOSE 80 53/udp\n"
                      "VOLUME /data\nUSER root\nSTOPSIGNAL SIGTERM\nSHELL [\"/bin/sh\", \"-c\"]\n"
                      "HEALTHCHECK --interval=90s --timeout=500ms --retries=4 CMD [\"true\"]\n"
                      "ONBUILD RUN true\nMAINTAINER me\nENTRYPOINT [\"sh\"]\nCMD echo hi\n",
        "a.txt": "hi\n", "d/x": "x\n",
    })
    query = "/build?" + urllib.parse.urlencode({"t": "bpeer:1", "nocache": "1", "networkmode": "none"})
    peer_status, peer_body = _post_socket(PEER, query, tar)
    ours_status, ours_body = _post_socket(str(engine.socket), query, tar)
    assert peer_status == ours_status == 200
    peer, ours = _masked(peer_body), _masked(ours_body)
    assert ours == peer, "\n".join(f"{a!r:60} | {b!r}" for a, b in zip(ours, peer, strict=False))
    # and the cached rebuild
    query = "/build?" + urllib.parse.urlencode({"t": "bpeer:1", "networkmode": "none"})
    assert _masked(_post_socket(str(engine.socket), query, tar)[1]) == _masked(_post_socket(PEER, query, tar)[1])
    # the images record the same steps (COPY's checksums are of another algorithm)
    histories = []
    for sock in (str(engine.socket), PEER):
        status, body = _post_socket(sock, "/images/bpeer:1/history", b"", "GET")
        assert status == 200
        histories.append([re.sub(r"(file|dir|multi):[0-9a-f]{64}", "<sum>", h["CreatedBy"])
                          for h in json.loads(body)[:-1]])
    assert histories[0] == histories[1]
    _post_socket(PEER, "/images/bpeer:1?force=1", b"", "DELETE")


locked = registry_fixture(htpasswd=True)


def test_from_pulls_a_missing_base_with_the_clis_credentials(engine, busybox_image, locked, fresh_engine,
                                                             tmp_path):
    repo = f"{locked.host}/apx/buildbase"
    assert engine.docker("tag", busybox_image, f"{repo}:v1").returncode == 0
    login = engine.docker("login", "-u", USER, "--password-stdin", locked.host, input=PASSWORD.encode() + b"\n")
    assert login.returncode == 0, login.stderr
    assert engine.docker("push", f"{repo}:v1").returncode == 0
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {repo}:v1\nRUN echo pulled-base\n"})
    # no credentials: the pull fails inside the stream, after the step line
    res = cli_build(fresh_engine, ctx, "-t", "bpulled")
    assert res.returncode == 1
    assert "Step 1/2 : FROM" in res.stdout.decode()
    assert "no basic auth credentials" in res.stderr.decode()
    login = fresh_engine.docker("login", "-u", USER, "--password-stdin", locked.host,
                                input=PASSWORD.encode() + b"\n")
    assert login.returncode == 0, login.stderr
    lines = _build_ok(fresh_engine, ctx, "-t", "bpulled")
    assert "pulled-base" in lines
    assert any(line.startswith("Status: Downloaded newer image for") for line in lines), lines
    assert fresh_engine.docker("image", "inspect", f"{repo}:v1").returncode == 0


def test_run_host_options_and_refused_remote_contexts(engine, busybox_image):
    tar = context_tar({"Dockerfile": "FROM busybox\nRUN grep myhost /etc/hosts && df -k /dev/shm | tail -1\n"})
    status, messages = api_build(engine, tar, extrahosts=["myhost:10.9.8.7"], shmsize=str(8 << 20), nocache="1")
    assert status == 200, messages
    out = streams(messages)
    assert "10.9.8.7" in out and "myhost" in out and " 8192 " in out, out
    status, body = api_build(engine, b"", remote="https://github.com/x/y.git")
    assert status == 400 and "remote build contexts" in body["message"]
    status, body = api_build(engine, tar, version="2")
    assert status == 400 and "BuildKit" in body["message"]


def test_dockerfile_from_outside_the_context_and_from_stdin(engine, busybox_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"a.txt": "in-context\n"})
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM busybox\nCOPY . /ctx/\nRUN ls -A /ctx && cat /ctx/a.txt\n")
    lines = _build_ok(engine, ctx, "-f", str(outside), "-t", "boutside")
    # the CLI sends it as .dockerfile.<random>, listed in .dockerignore: neither lands in the image
    assert "in-context" in lines and "a.txt" in lines
    assert not any(line.startswith((".dockerfile", ".dockerignore")) for line in lines), lines
    import subprocess

    env = engine.env(DOCKER_CONFIG=str(engine.root / "docker-config"), DOCKER_BUILDKIT="0")
    res = subprocess.run([DOCKER, "build", "-f", "-", str(ctx)], input=b"FROM busybox\nRUN echo from-stdin\n",
                         capture_output=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert b"from-stdin" in res.stdout
    res = subprocess.run([DOCKER, "build", "-"], input=b"FROM busybox\nRUN echo no-context\n",
                         capture_output=True, timeout=120, env=env)
    assert res.returncode == 0 and b"no-context" in res.stdout, res.stderr


@pytest.mark.skipif(not os.path.exists("/usr/bin/docker-compose"), reason="docker-compose is not installed")
@pytest.mark.parametrize("through_cli", ["1", "0"])
def test_compose_builds_through_the_cli_and_through_docker_py(engine, busybox_image, tmp_path, through_cli):
    import subprocess

    write(tmp_path, {
        "web/Dockerfile": "FROM busybox\nARG GREETING=hi\nRUN echo \"$GREETING\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n",
        "docker-compose.yml": "version: \"3\"\nservices:\n  web:\n    build:\n      context: web\n"
                              "      args:\n        GREETING: hi-compose\n",
    })
    env = engine.env(DOCKER_CONFIG=str(engine.root / "docker-config"), COMPOSE_DOCKER_CLI_BUILD=through_cli)
    project = f"bcompose{through_cli}"
    try:
        res = subprocess.run(["docker-compose", "-p", project, "up"], cwd=tmp_path, env=env, capture_output=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr.decode()
        assert b"hi-compose" in res.stdout
    finally:
        subprocess.run(["docker-compose", "-p", project, "down"], cwd=tmp_path, env=env, capture_output=True,
                       timeout=120)


def test_image_events_of_a_build_are_its_tags_only(engine, busybox_image, tmp_path):
    import time

    client = engine.docker_sdk()
    started = time.time_ns()  # events of earlier tests within the query's second are not this build's
    since = time.time() - 1
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nENV E=1\nRUN true\nCOPY Dockerfile /\n"})
    _build_ok(engine, ctx, "--no-cache", "-t", "bevents:1")
    until = time.time() + 1
    events = [e for e in client.events(since=since, until=until, decode=True, filters={"type": "image"})
              if e["id"] != busybox_image and e["timeNano"] >= started]  # the fixture's import may fall in the window
    assert [e["Action"] for e in events] == ["tag"], events
    assert events[0]["Actor"]["Attributes"]["name"] == "bevents:1"


@pytest.mark.usefixtures("peer_docker")
def test_onbuild_triggers_stream_as_dockerds(engine, busybox_image):
    engine.docker("tag", "busybox", "bb")
    parent = context_tar({"Dockerfile": "FROM bb\nONBUILD ENV T=1\nONBUILD RUN echo trig $T\n"})
    child = context_tar({"Dockerfile": "FROM bonbuild-parent\nENV X=1\n"})
    query = "/build?" + urllib.parse.urlencode({"t": "bonbuild-parent", "networkmode": "none"})
    child_query = "/build?" + urllib.parse.urlencode({"nocache": "1", "networkmode": "none"})
    try:
        for sock in (str(engine.socket), PEER):
            assert _post_socket(sock, query, parent)[0] == 200
        ours = _masked(_post_socket(str(engine.socket), child_query, child)[1])
        peer_body = _post_socket(PEER, child_query, child)[1]
        peer = _masked(peer_body)
        assert ours == peer, "\n".join(f"{a!r:60} | {b!r}" for a, b in zip(ours, peer, strict=False))
        assert {"stream": "trig 1\n", "output": True} in ours
    finally:
        for line in peer_body.splitlines() if "peer_body" in locals() else ():
            if b'"aux"' in line:  # the child is untagged: remove it, the peer is shared
                _post_socket(PEER, f"/images/{json.loads(line)['aux']['ID']}", b"", "DELETE")
        _post_socket(PEER, "/images/bonbuild-parent?force=1", b"", "DELETE")


@pytest.mark.usefixtures("peer_docker")
@pytest.mark.parametrize("dockerfile", [
    "FROM bb\nFOO bar\n", "FROM bb\nCOPY a\n", "RUN x\n", "FROM bb\nRUN exit 3\n", "FROM bb\nCOPY nothere /x\n",
    "FROM bb\nRUN [\"sh\", \"-c\", \"exit 4\"]\n",
])
def test_failures_answer_as_dockerds(engine, busybox_image, dockerfile):
    engine.docker("tag", "busybox", "bb")
    tar = context_tar({"Dockerfile": dockerfile})
    query = "/build?" + urllib.parse.urlencode({"networkmode": "none", "forcerm": "1"})
    ours_status, ours = _post_socket(str(engine.socket), query, tar)
    peer_status, peer = _post_socket(PEER, query, tar)
    assert ours_status == peer_status
    if peer_status != 200:
        assert json.loads(ours) == json.loads(peer)
    else:
        assert _masked(ours)[-1] == _masked(peer)[-1]


@pytest.mark.parametrize("run", ["echo started; while true; do echo tick; sleep 0.2; done", "sleep 300"])
def test_a_client_gone_mid_run_leaves_no_container(engine, busybox_image, run):
    """Whether the step prints (the next message fails) or not (the engine stops it), its container goes."""
    import http.client
    import socket
    import time

    tar = context_tar({"Dockerfile": f"FROM busybox\nRUN {run}\n"})
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(engine.socket))
    conn = http.client.HTTPConnection("localhost")
    conn.sock = sock
    conn.request("POST", "/v1.41/build?nocache=1", body=tar, headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    seen = b""
    while b"Running in" not in seen:
        seen += resp.read1(4096)
    deadline = time.monotonic() + 10
    while not engine.docker("ps", "-q").stdout.split() and time.monotonic() < deadline:
        time.sleep(0.1)
    running = engine.docker("ps", "-q").stdout.split()
    assert len(running) == 1
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    deadline = time.monotonic() + 30
    while running[0] in engine.docker("ps", "-aq").stdout.split() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running[0] not in engine.docker("ps", "-aq").stdout.split()


def test_concurrent_builds(engine, busybox_image):
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int):
        tar = context_tar({"Dockerfile": f"FROM busybox\nENV N={i}\nRUN echo build-$N\nCOPY Dockerfile /\n"})
        return api_build(engine, tar, t=f"bconc:{i}", nocache="1")

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    for i, (status, messages) in enumerate(results):
        assert status == 200 and f"build-{i}\n" in streams(messages), messages
        assert messages[-1] == {"stream": f"Successfully tagged bconc:{i}\n"}
