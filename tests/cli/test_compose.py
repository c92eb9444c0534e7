"""`dockyard compose` against a real dockyardd: up, ps, logs, exec, recreate on change, down, volumes kept,
bad files refused before anything is made; and Debian's docker-compose 1.29 driving the same engine."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
import time
import urllib.request

import pytest

pytestmark = pytest.mark.root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dockyard(engine, *args: str, timeout: float = 120, env: dict[str, str] | None = None):
    """Our CLI at the engine, its output as text."""
    result = engine.dockyard(*args, timeout=timeout, env=env)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(),
                                       result.stderr.decode())


def compose(engine, directory, *args, timeout: float = 120):
    """`dockyard compose -f DIR/compose.yaml ARGS`."""
    return dockyard(engine, "compose", "-f", str(directory / "compose.yaml"), *args, timeout=timeout)


EXEC = ("exec", "-T")


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def write(directory, text: str, name: str = "compose.yaml") -> None:
    (directory / name).write_text(textwrap.dedent(text))


def project_objects(engine, project: str) -> tuple[list, list, list]:
    """(containers, networks, volumes) labelled for `project`."""
    client = engine.client()
    label = f"com.docker.compose.project={project}"
    containers = client.containers(all=True, filters={"label": [label]})
    try:
        networks = [n for n in client.get_json("/networks")
                    if (n.get("Labels") or {}).get("com.docker.compose.project") == project]
    except Exception:  # noqa: BLE001 - an engine without networks has none of ours
        networks = []
    volumes = [v for v in client.volumes() if (v.get("Labels") or {}).get("com.docker.compose.project") == project]
    return containers, networks, volumes


def ids_by_name(engine, project: str) -> dict[str, str]:
    containers, _, _ = project_objects(engine, project)
    return {c["Names"][0].lstrip("/"): c["Id"] for c in containers}


def networks_served(engine) -> bool:
    try:
        engine.client().get_json("/networks")
        return True
    except Exception:  # noqa: BLE001
        return False


def http_get(url: str, deadline: float = 10.0) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback only
                return answer.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


APP = """\
    services:
      web:
        image: busybox
        command: httpd -f -p 80 -h /www
        init: true
        stop_grace_period: 2s
        ports: ["127.0.0.1:{port}:80"]
        volumes:
          - ./www:/www:ro
          - data:/data
          - /cache
        environment:
          GREETING: ${{GREETING:-hello}}
      client:
        image: busybox
        command: sh -c 'until wget -q -O /tmp/page http://web/; do sleep 0.2; done; cat /tmp/page; sleep 600'
        init: true
        stop_grace_period: 2s
        depends_on: [web]
    volumes:
      data:
    """


@pytest.fixture
def app(engine, busybox_image, tmp_path):
    if not networks_served(engine):
        pytest.skip("the engine does not serve /networks yet (user-defined networks are not merged)")
    directory = tmp_path / "demoapp"
    directory.mkdir()
    (directory / "www").mkdir()
    (directory / "www" / "index.html").write_text("compose works\n")
    port = free_port()
    write(directory, APP.format(port=port))
    yield directory, port
    compose(engine, directory, "down", "-v", "-t", "1")


def test_up_ps_logs_exec_down(engine, app):
    directory, port = app
    result = compose(engine, directory, "up", "-d")
    ok(result)
    progress = result.stderr
    for line in (" Network demoapp_default  Created", ' Volume "demoapp_data"  Created',
                 " Container demoapp-web-1  Created", " Container demoapp-client-1  Started"):
        assert line in progress, progress
    # dependency order: web starts before client
    assert progress.index("demoapp-web-1  Started") < progress.index("demoapp-client-1  Starting")

    assert http_get(f"http://127.0.0.1:{port}/") == "compose works\n"

    ps = ok(compose(engine, directory, "ps")).splitlines()
    assert ps[0].split() == ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]
    rows = {line.split()[0]: line for line in ps[1:]}
    assert set(rows) == {"demoapp-web-1", "demoapp-client-1"}
    assert f"127.0.0.1:{port}->80/tcp" in rows["demoapp-web-1"]
    assert " web " in rows["demoapp-web-1"] and "Up " in rows["demoapp-web-1"]
    assert sorted(ok(compose(engine, directory, "ps", "--services")).split()) == ["client", "web"]

    # the client reached the web service by its name on the project network
    deadline = time.monotonic() + 15
    while True:
        logs = ok(compose(engine, directory, "logs", "client"))
        if "compose works" in logs or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert "client-1  | compose works" in logs

    assert ok(compose(engine, directory, *EXEC, "web", "sh", "-c", "echo $GREETING; cat /www/index.html")) \
        == "hello\ncompose works\n"
    failed = compose(engine, directory, *EXEC, "web", "sh", "-c", "exit 3")
    assert failed.returncode == 3

    # the labels compose relies on
    info = engine.client().container_inspect("demoapp-web-1")
    labels = info["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == "demoapp"
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "1"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert labels["com.docker.compose.project.working_dir"] == str(directory)
    assert labels["com.docker.compose.project.config_files"] == str(directory / "compose.yaml")
    assert len(labels["com.docker.compose.config-hash"]) == 64
    assert "web" in info["NetworkSettings"]["Networks"]["demoapp_default"]["Aliases"]

    down = compose(engine, directory, "down", "-v", "-t", "1")
    ok(down)
    for line in (" Container demoapp-web-1  Removed", " Network demoapp_default  Removed",
                 ' Volume "demoapp_data"  Removed'):
        assert line in down.stderr, down.stderr
    assert project_objects(engine, "demoapp") == ([], [], [])


def test_a_change_recreates_only_that_service(engine, app):
    directory, port = app
    ok(compose(engine, directory, "up", "-d"))
    before = ids_by_name(engine, "demoapp")
    again = compose(engine, directory, "up", "-d")
    ok(again)
    assert " Container demoapp-web-1  Running" in again.stderr
    assert ids_by_name(engine, "demoapp") == before

    ok(compose(engine, directory, *EXEC, "web", "sh", "-c", "echo cached > /cache/c"))
    write(directory, APP.format(port=port).replace("${GREETING:-hello}", "changed"))
    changed = compose(engine, directory, "up", "-d")
    ok(changed)
    assert " Container demoapp-web-1  Recreated" in changed.stderr
    assert "demoapp-client-1  Recreate" not in changed.stderr
    after = ids_by_name(engine, "demoapp")
    assert after["demoapp-client-1"] == before["demoapp-client-1"]
    assert after["demoapp-web-1"] != before["demoapp-web-1"]
    assert ok(compose(engine, directory, *EXEC, "web", "sh", "-c", "echo $GREETING")) == "changed\n"
    # the new container has the old one's anonymous volume
    assert ok(compose(engine, directory, *EXEC, "web", "cat", "/cache/c")) == "cached\n"
    # the variable from the environment changes the hash too
    env_changed = dockyard(engine, "compose", "-f", str(directory / "compose.yaml"), "up", "-d",
                                  env=engine.env(GREETING="from-env"))
    assert env_changed.returncode == 0, env_changed.stderr
    write(directory, APP.format(port=port))


def test_named_volume_outlives_down_without_v(engine, app):
    directory, _ = app
    ok(compose(engine, directory, "up", "-d", "web"))
    ok(compose(engine, directory, *EXEC, "web", "sh", "-c", "echo kept > /data/note"))
    down = compose(engine, directory, "down", "-t", "1")
    ok(down)
    assert "Volume" not in down.stderr
    containers, networks, volumes = project_objects(engine, "demoapp")
    assert containers == [] and networks == [] and [v["Name"] for v in volumes] == ["demoapp_data"]
    ok(compose(engine, directory, "up", "-d", "web"))
    assert ok(compose(engine, directory, *EXEC, "web", "cat", "/data/note")) == "kept\n"


def test_stop_start_restart_rm(engine, app):
    directory, _ = app
    ok(compose(engine, directory, "up", "-d"))
    stop = compose(engine, directory, "stop", "-t", "1")
    ok(stop)
    # dependents stop first
    assert stop.stderr.index("demoapp-client-1  Stopped") < stop.stderr.index("demoapp-web-1  Stopping")
    assert ok(compose(engine, directory, "ps")).strip().splitlines()[1:] == []
    assert len(ok(compose(engine, directory, "ps", "-a")).strip().splitlines()) == 3
    ok(compose(engine, directory, "start", "web"))
    assert [line.split()[0] for line in ok(compose(engine, directory, "ps")).splitlines()[1:]] == ["demoapp-web-1"]
    restart = compose(engine, directory, "restart", "-t", "1", "web")
    ok(restart)
    assert " Container demoapp-web-1  Restarting" in restart.stderr
    rm = compose(engine, directory, "rm", "-f")
    ok(rm)
    assert " Container demoapp-client-1  Removed" in rm.stderr
    assert list(ids_by_name(engine, "demoapp")) == ["demoapp-web-1"]


def test_up_attached_prints_prefixed_output_until_exit(engine, busybox_image, tmp_path):
    directory = tmp_path / "once"
    directory.mkdir()
    write(directory, """\
        services:
          first:
            image: busybox
            network_mode: none
            command: sh -c 'echo one; echo two >&2'
          second-svc:
            image: busybox
            network_mode: none
            command: sh -c 'echo three; exit 4'
        """)
    result = compose(engine, directory, "up")
    try:
        out = ok(result)
        assert "first-1       | one\n" in out and "first-1       | two\n" in out
        assert "second-svc-1  | three\n" in out
        assert "first-1 exited with code 0\n" in out and "second-svc-1 exited with code 4\n" in out
        assert "Attaching to first-1, second-svc-1" in result.stderr
        logs = ok(compose(engine, directory, "logs", "--no-log-prefix", "second-svc"))
        assert logs == "three\n"
    finally:
        ok(compose(engine, directory, "down"))


def test_ctrl_c_stops_an_attached_up(engine, busybox_image, tmp_path):
    import signal

    directory = tmp_path / "longrun"
    directory.mkdir()
    write(directory, """\
        services:
          ticker:
            image: busybox
            network_mode: none
            init: true
            command: sh -c 'echo started; while true; do sleep 1; done'
        """)
    from tests.support.engine import DOCKYARD

    proc = subprocess.Popen([DOCKYARD, "-H", engine.host, "compose", "-f", str(directory / "compose.yaml"), "up"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ticker-1  | started\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "Gracefully stopping... (press Ctrl+C again to force)" in err
    assert " Container longrun-ticker-1  Stopped" in err
    assert "ticker-1 exited with code 1" in out  # 143 (TERM) or 137 (KILL)
    assert engine.client().container_inspect("longrun-ticker-1")["State"]["Running"] is False
    ok(compose(engine, directory, "down"))


def test_depends_on_completed_successfully(engine, busybox_image, tmp_path):
    directory = tmp_path / "seq"
    directory.mkdir()
    write(directory, """\
        services:
          setup:
            image: busybox
            network_mode: none
            command: sh -c 'sleep 1; echo ready > /shared/flag'
            volumes: [shared:/shared]
          main:
            image: busybox
            network_mode: none
            command: cat /shared/flag
            volumes: [shared:/shared]
            depends_on:
              setup: {condition: service_completed_successfully}
        volumes: {shared: }
        """)
    try:
        result = compose(engine, directory, "up", "-d")
        ok(result)
        assert " Container seq-setup-1  Waiting" in result.stderr
        assert result.stderr.index("seq-setup-1  Exited") < result.stderr.index("seq-main-1  Starting")
        engine.client().wait_result(engine.client().container_wait("seq-main-1"))
        assert ok(compose(engine, directory, "logs", "main")) == "main-1  | ready\n"
        write(directory, (directory / "compose.yaml").read_text().replace("echo ready", "exit 3"))
        failed = compose(engine, directory, "up", "-d")
        assert failed.returncode == 1
        assert 'service "setup" didn\'t complete successfully: exit 3' in failed.stderr
    finally:
        ok(compose(engine, directory, "down", "-v"))


def test_depends_on_service_healthy(engine, busybox_image, tmp_path):
    """A healthcheck in the file becomes the container's; service_healthy waits for it."""
    directory = tmp_path / "hc"
    directory.mkdir()
    write(directory, """\
        services:
          db:
            image: busybox
            network_mode: none
            command: sh -c 'sleep 1; touch /tmp/up; sleep 60'
            healthcheck:
              test: ["CMD", "test", "-f", "/tmp/up"]
              interval: 200ms
              retries: 50
          app:
            image: busybox
            network_mode: none
            command: sleep 60
            depends_on:
              db: {condition: service_healthy}
        """)
    try:
        result = compose(engine, directory, "up", "-d")
        ok(result)
        assert result.stderr.index("hc-db-1  Healthy") < result.stderr.index("hc-app-1  Starting")
        state = engine.client().container_inspect("hc-db-1")["State"]
        assert state["Health"]["Status"] == "healthy"
        check = engine.client().container_inspect("hc-db-1")["Config"]["Healthcheck"]
        assert check == {"Test": ["CMD", "test", "-f", "/tmp/up"], "Interval": 200_000_000, "Retries": 50}
    finally:
        ok(compose(engine, directory, "down"))


def test_scale_and_project_options(engine, busybox_image, tmp_path):
    directory = tmp_path / "scaled"
    directory.mkdir()
    write(directory, """\
        name: fromfile
        services:
          worker:
            image: busybox
            network_mode: none
            command: sleep 600
            init: true
            deploy: {replicas: 2}
        """)
    ok(compose(engine, directory, "up", "-d"))
    try:
        assert sorted(ids_by_name(engine, "fromfile")) == ["fromfile-worker-1", "fromfile-worker-2"]
        ok(compose(engine, directory, "up", "-d", "--scale", "worker=1"))
        assert sorted(ids_by_name(engine, "fromfile")) == ["fromfile-worker-1"]
        # -p wins over name:, --project-directory and --file before the command
        result = dockyard(engine, "compose", "--project-directory", str(directory), "-p", "other", "--file",
                                 str(directory / "compose.yaml"), "config", "--services")
        assert ok(result) == "worker\n"
        config = ok(dockyard(engine, "compose", "-p", "other", "-f", str(directory / "compose.yaml"), "config"))
        assert config.startswith("name: other\nservices:\n  worker:\n")
        assert "replicas: 2" in config
    finally:
        down = compose(engine, directory, "down", "-t", "1")
        ok(down)
    assert project_objects(engine, "fromfile") == ([], [], [])


@pytest.mark.parametrize("text,message", [
    ("services:\n  web:\n    image: busybox\n    bogus: 1\n    volumes: [data:/d]\nvolumes: {data: }\n",
     "services.web additional property bogus is not allowed"),
    ("services:\n  web:\n    build: .\nvolumes: {data: }\n", 'service "web" has a build section'),
    ("services:\n  web: {image: busybox, volumes: ['data:/d']}\n", 'service "web" refers to undefined volume data'),
    ("services:\n  web: {image: 'busybox:${TAG:?set TAG}'}\n", "required variable TAG is missing a value: set TAG"),
    ("services:\n  web: {image: busybox\n", "flow mapping"),
])
def test_bad_files_make_nothing(engine, busybox_image, tmp_path, text, message):
    directory = tmp_path / "badapp"
    directory.mkdir()
    (directory / "compose.yaml").write_text(text)
    result = compose(engine, directory, "up", "-d")
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert project_objects(engine, "badapp") == ([], [], [])


def test_missing_file_and_unknown_service(engine, busybox_image, tmp_path):
    result = dockyard(engine, "compose", "-f", str(tmp_path / "nope.yaml"), "ps")
    assert result.returncode == 1 and "no such file or directory" in result.stderr
    write(tmp_path, "services: {web: {image: busybox, network_mode: none}}\n")
    result = compose(engine, tmp_path, "up", "-d", "nosuch")
    assert result.returncode == 1 and "no such service: nosuch" in result.stderr


# --- docker-compose 1.29 (Debian's) against dockyardd ---------------------------------------------------------


def _docker_compose() -> str | None:
    found = shutil.which("docker-compose")
    if found:
        return found
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    need = os.path.join(root, ".ci", "apt-need")
    if os.geteuid() == 0 and os.path.exists(need):
        subprocess.run([need, "docker-compose"], capture_output=True, timeout=600, check=False)
    return shutil.which("docker-compose")


def test_docker_compose_1_29_up_ps_down(engine, busybox_image, tmp_path):
    binary = _docker_compose()
    if binary is None:
        pytest.skip("docker-compose (Debian package docker-compose) cannot be installed here")
    if not networks_served(engine):
        pytest.skip("docker-compose needs /networks, which the engine does not serve yet")
    directory = tmp_path / "dcapp"
    directory.mkdir()
    (directory / "www").mkdir()
    (directory / "www" / "index.html").write_text("docker-compose works\n")
    port = free_port()
    write(directory, APP.format(port=port))
    env = engine.env(COMPOSE_INTERACTIVE_NO_CLI="1")

    def run(*args):
        return subprocess.run([binary, "-f", str(directory / "compose.yaml"), *args], capture_output=True,
                              text=True, timeout=180, env=env)

    try:
        up = run("up", "-d")
        assert up.returncode == 0, up.stderr
        assert http_get(f"http://127.0.0.1:{port}/") == "docker-compose works\n"
        ps = run("ps")
        assert ps.returncode == 0, ps.stderr
        assert "dcapp_web_1" in ps.stdout and "Up" in ps.stdout
        assert f"127.0.0.1:{port}->80/tcp" in ps.stdout
        again = run("up", "-d")
        assert again.returncode == 0, again.stderr
        assert "is up-to-date" in again.stderr
        # our ps reads what docker-compose made (its labels are compose's)
        ours = ok(compose(engine, directory, "ps", "--services"))
        assert sorted(ours.split()) == ["client", "web"]
    finally:
        down = run("down", "-v", "-t", "1")
    assert down.returncode == 0, down.stderr
    assert project_objects(engine, "dcapp") == ([], [], [])
