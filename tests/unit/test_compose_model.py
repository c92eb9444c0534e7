"""The compose model without an engine: interpolation, .env, parsing and normalizing, merging, ordering,
errors, and the Engine API bodies a service turns into."""

from __future__ import annotations

import textwrap

import pytest

from dockyard.compose import model, spec
from dockyard.compose.interpolation import (
    ComposeError,
    InterpolationError,
    interpolate,
    parse_env_file,
    substitute,
)
from dockyard.compose.loader import Options, load_project, parse_port, parse_yaml

ENV = {"A": "a", "EMPTY": "", "N": "3"}


def sub(text: str, env: dict[str, str] = ENV, warnings: list[str] | None = None) -> str:
    return substitute(text, env.get, warnings.append if warnings is not None else None)


# --- interpolation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("plain", "plain"),
    ("$A", "a"), ("${A}", "a"), ("x${A}y$A-z", "xay" + "a-z"),
    ("$$A", "$A"), ("$${A}", "${A}"), ("cost: $$5", "cost: $5"),
    ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${A:-dflt}", "a"),
    ("${UNSET-dflt}", "dflt"), ("${EMPTY-dflt}", ""),
    ("${A:+alt}", "alt"), ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${UNSET+alt}", ""),
    ("${UNSET:-${A}-${N}}", "a-3"), ("${UNSET:-${ALSO:-deep}}", "deep"),
    ("${A:?must}", "a"), ("${EMPTY?must}", ""),
    ("${UNSET:-}", ""),
])
def test_substitutions(text, expected):
    assert sub(text) == expected


def test_unset_variables_are_blank_with_a_warning():
    warnings: list[str] = []
    assert sub("img:${TAG}", warnings=warnings) == "img:"
    assert warnings == ['The "TAG" variable is not set. Defaulting to a blank string.']


@pytest.mark.parametrize("text,message", [
    ("${UNSET:?set it please}", "required variable UNSET is missing a value: set it please"),
    ("${EMPTY:?no empty}", "required variable EMPTY is missing a value: no empty"),
    ("${UNSET?}", "required variable UNSET is missing a value"),
])
def test_required_variables(text, message):
    with pytest.raises(InterpolationError) as info:
        sub(text)
    assert info.value.message == message


@pytest.mark.parametrize("text", ["${", "${A", "${}", "$ x", "end$", "${A:x}", "${-x}"])
def test_invalid_templates(text):
    with pytest.raises(InterpolationError, match="Invalid template"):
        sub(text)


def test_interpolate_touches_values_not_keys_and_names_the_place():
    doc = {"services": {"$A": {"image": "bb:${N}", "command": ["echo", "$A"], "tty": True}}}
    assert interpolate(doc, ENV.get) == {"services": {"$A": {"image": "bb:3", "command": ["echo", "a"],
                                                             "tty": True}}}
    with pytest.raises(InterpolationError, match=r"services\.web\.image: required variable X"):
        interpolate({"services": {"web": {"image": "${X:?}"}}}, ENV.get)


# --- .env files ---------------------------------------------------------------------------------------------


def test_env_file_syntax():
    text = textwrap.dedent("""\
        # a comment
        PLAIN=value
        export EXPORTED=yes
        SPACED = padded   # a comment after a space
        HASH=a#b
        SINGLE='no $A expansion \\n here'
        DOUBLE="line\\nbreak and $A"
        REF=${PLAIN}-${A}
        MULTI="one
        two"
        EMPTY=
        BARE
        """)
    values = parse_env_file(text, {"A": "env-a"}.get)
    assert values == {"PLAIN": "value", "EXPORTED": "yes", "SPACED": "padded", "HASH": "a#b",
                      "SINGLE": "no $A expansion \\n here", "DOUBLE": "line\nbreak and env-a",
                      "REF": "value-env-a", "MULTI": "one\ntwo", "EMPTY": "", "BARE": None}


def test_env_file_errors():
    with pytest.raises(ComposeError, match="unterminated"):
        parse_env_file('X="open')
    with pytest.raises(ComposeError, match="variable name"):
        parse_env_file("BAD KEY=1")


# --- YAML 1.2 scalars -----------------------------------------------------------------------------------------


def test_yaml_reads_scalars_as_compose_does():
    doc = parse_yaml("a: no\nb: on\nc: 22:22\nd: 2024-01-01\ne: true\nf: 010\ng: 1.5\nh: 80\ni: ~\n", "x")
    assert doc == {"a": "no", "b": "on", "c": "22:22", "d": "2024-01-01", "e": True, "f": "010", "g": 1.5,
                   "h": 80, "i": None}


def test_yaml_anchors_and_merge_keys():
    doc = parse_yaml("x-base: &base {image: bb, tty: true}\nservices:\n  a: {<<: *base, tty: false}\n", "x")
    assert doc["services"]["a"] == {"image": "bb", "tty": False}


# --- ports --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value,expected", [
    (80, [{"mode": "ingress", "target": 80, "protocol": "tcp"}]),
    ("8080:80", [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}]),
    ("127.0.0.1:8080:80/udp", [{"mode": "ingress", "target": 80, "published": "8080", "host_ip": "127.0.0.1",
                                "protocol": "udp"}]),
    ("127.0.0.1::80", [{"mode": "ingress", "target": 80, "host_ip": "127.0.0.1", "protocol": "tcp"}]),
    ("[::1]:8080:80", [{"mode": "ingress", "target": 80, "published": "8080", "host_ip": "::1",
                        "protocol": "tcp"}]),
    ("9000-9001:80-81", [{"mode": "ingress", "target": 80, "published": "9000", "protocol": "tcp"},
                         {"mode": "ingress", "target": 81, "published": "9001", "protocol": "tcp"}]),
    ("9000-9010:80", [{"mode": "ingress", "target": 80, "published": "9000-9010", "protocol": "tcp"}]),
    ({"target": 80, "published": 8080, "host_ip": "0.0.0.0"},
     [{"mode": "ingress", "target": 80, "published": "8080", "host_ip": "0.0.0.0", "protocol": "tcp"}]),
])
def test_ports(value, expected):
    from dockyard.compose.loader import _Where

    assert parse_port(value, _Where("ports[0]")) == expected


@pytest.mark.parametrize("value", ["abc", "80/xyz", "1:2:3:4", "0", "70000", "80-81:90-95", {"published": 1}])
def test_bad_ports(value):
    from dockyard.compose.loader import _Where

    with pytest.raises(ComposeError, match=r"^ports\[0\]"):
        parse_port(value, _Where("ports[0]"))


# --- projects from files -----------------------------------------------------------------------------------------


def write(directory, name: str, text: str):
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def load(directory, files=None, environ=None, **kw) -> model.Project:
    warnings = kw.pop("warnings", [])
    return load_project(Options(files=files, cwd=str(directory), environ=environ or {"HOME": "/home/u"}, **kw),
                        warnings.append)


FULL = """\
    services:
      web:
        image: busybox:${TAG:-1.36}
        command: httpd -f -p "80" -h /www
        entrypoint: [/bin/sh, -c]
        environment: [A=1, B, "C=x=y"]
        env_file: web.env
        ports: ["8080:80"]
        volumes:
          - data:/data
          - ./site:/www:ro
          - /anon
          - ~/cfg:/cfg
          - {type: tmpfs, target: /tmp/t, tmpfs: {size: 1m}}
          - {type: bind, source: ./raw, target: /raw, bind: {propagation: rshared}}
        depends_on:
          db: {condition: service_started}
        restart: on-failure:3
        networks:
          front:
          back: {aliases: [www], ipv4_address: 10.5.0.5}
        labels: {team: a}
        working_dir: /www
        user: "1000:1000"
        hostname: webhost
        tty: true
        stdin_open: "true"
        init: true
        read_only: true
        cap_add: [NET_ADMIN]
        cap_drop: [ALL]
        mem_limit: 64m
        stop_signal: SIGINT
        stop_grace_period: 1m30s
        tmpfs: /run:size=64k
        extra_hosts: ["h1:10.0.0.1", "h2=10.0.0.2"]
        deploy: {replicas: 2}
      db:
        image: busybox
        network_mode: none
    networks:
      front:
      back:
        ipam: {config: [{subnet: 10.5.0.0/16}]}
    volumes:
      data:
    """


def test_full_service(tmp_path):
    write(tmp_path, "compose.yaml", FULL)
    write(tmp_path, "web.env", "B=from-file\nA=overridden\nD=4\n")
    project = load(tmp_path, environ={"HOME": "/home/u"})
    assert project.name == model.normalize_project_name(tmp_path.name)
    web = project.services["web"]
    assert web.image == "busybox:1.36"
    assert web.command == ("httpd", "-f", "-p", "80", "-h", "/www")
    assert web.entrypoint == ("/bin/sh", "-c")
    # env_file first, environment over it; B without a value and not in the shell keeps the file's
    assert dict(web.environment) == {"A": "1", "B": "from-file", "C": "x=y", "D": "4"}
    assert web.ports == (model.Port(80, "8080"),)
    assert web.volumes == (
        model.Mount("volume", "/data", "data"),
        model.Mount("bind", "/www", str(tmp_path / "site"), read_only=True, create_host_path=True),
        model.Mount("volume", "/anon"),
        model.Mount("bind", "/cfg", "/home/u/cfg", create_host_path=True),
        model.Mount("tmpfs", "/tmp/t", tmpfs_size=1 << 20),
        model.Mount("bind", "/raw", str(tmp_path / "raw"), propagation="rshared"),
    )
    assert web.depends_on == (model.Dependency("db"),)
    assert web.restart == "on-failure:3"
    assert web.networks == (model.Attachment("front"), model.Attachment("back", ("www",), "10.5.0.5"))
    assert (web.tty, web.stdin_open, web.init, web.read_only) == (True, True, True, True)
    assert web.mem_limit == 64 << 20 and web.stop_grace_period == 90.0 and web.scale == 2
    assert web.tmpfs == ("/run:size=64k",) and web.extra_hosts == ("h1:10.0.0.1", "h2:10.0.0.2")
    assert project.networks["back"].name == f"{project.name}_back"
    assert "default" not in project.networks  # no service uses it
    assert project.volumes["data"].name == f"{project.name}_data"
    assert [s.name for s in project.ordered()] == ["db", "web"]


def test_create_body(tmp_path):
    write(tmp_path, "compose.yaml", FULL)
    write(tmp_path, "web.env", "")
    project = load(tmp_path, project_name="p")
    web = project.services["web"]
    body = spec.create_body(project, web, 2, image_id="sha256:abc", inherited={"/anon": "anonvol"})
    labels = body["Labels"]
    assert labels["com.docker.compose.project"] == "p"
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "2"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert labels["com.docker.compose.config-hash"] == spec.config_hash(web)
    assert labels["com.docker.compose.project.working_dir"] == str(tmp_path)
    assert labels["com.docker.compose.project.config_files"] == str(tmp_path / "compose.yaml")
    assert labels["team"] == "a"
    host = body["HostConfig"]
    assert host["Binds"] == [f"{tmp_path}/site:/www:ro", "/home/u/cfg:/cfg:rw"]
    assert host["Mounts"] == [
        {"Type": "volume", "Target": "/data", "Source": "p_data"},
        {"Type": "volume", "Target": "/anon", "Source": "anonvol"},
        {"Type": "tmpfs", "Target": "/tmp/t", "TmpfsOptions": {"SizeBytes": 1 << 20}},
        {"Type": "bind", "Target": "/raw", "Source": f"{tmp_path}/raw", "BindOptions": {"Propagation": "rshared"}},
    ]
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert body["ExposedPorts"] == {"80/tcp": {}}
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["Tmpfs"] == {"/run": "size=64k"}
    assert host["Memory"] == 64 << 20 and host["Init"] is True and host["ReadonlyRootfs"] is True
    assert body["StopTimeout"] == 90 and body["StopSignal"] == "SIGINT"
    # the primary network: by priority, then name ("back" before "front")
    assert host["NetworkMode"] == "p_back"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"p_back": {
        "Aliases": ["p-web-2", "web", "www"], "IPAMConfig": {"IPv4Address": "10.5.0.5"}}}}
    db = spec.create_body(project, project.services["db"], 1)
    assert db["HostConfig"]["NetworkMode"] == "none" and "NetworkingConfig" not in db


def test_default_network_and_names(tmp_path):
    directory = tmp_path / "My_App.v2"
    directory.mkdir()
    write(directory, "docker-compose.yml", "services: {web: {image: bb}}\n")
    project = load(directory)
    assert project.name == "my_appv2"
    assert project.networks["default"].name == "my_appv2_default"
    assert model.container_name(project.name, project.services["web"], 1) == "my_appv2-web-1"
    body = spec.network_create_body(project, "default")
    assert body["Name"] == "my_appv2_default"
    assert body["Labels"]["com.docker.compose.network"] == "default"
    assert body["Labels"]["com.docker.compose.project"] == "my_appv2"


def test_project_name_precedence(tmp_path):
    write(tmp_path, "compose.yaml", "name: fromfile\nservices: {web: {image: bb}}\n")
    assert load(tmp_path).name == "fromfile"
    assert load(tmp_path, environ={"COMPOSE_PROJECT_NAME": "fromenv"}).name == "fromenv"
    assert load(tmp_path, environ={"COMPOSE_PROJECT_NAME": "fromenv"}, project_name="flag").name == "flag"
    with pytest.raises(ComposeError, match='invalid project name "Bad Name"'):
        load(tmp_path, project_name="Bad Name")


def test_files_override_in_order(tmp_path):
    write(tmp_path, "a.yaml", """\
        services:
          web:
            image: bb:1
            command: [echo, a]
            environment: {A: "1", B: "1"}
            ports: ["80:80"]
            volumes: [/x, "v:/data"]
            cap_add: [NET_ADMIN]
            labels: [one=1]
        volumes: {v: {}}
        """)
    write(tmp_path, "b.yaml", """\
        services:
          web:
            image: bb:2
            command: echo b
            environment: [B=2, C=3]
            ports: ["81:81"]
            volumes: ["./here:/data"]
            cap_add: [NET_ADMIN, SYS_TIME]
            labels: {two: "2"}
          extra: {image: bb}
        """)
    project = load(tmp_path, files=["a.yaml", "b.yaml"])
    web = project.services["web"]
    assert web.image == "bb:2" and web.command == ("echo", "b")
    assert dict(web.environment) == {"A": "1", "B": "2", "C": "3"}
    assert [p.target for p in web.ports] == [80, 81]
    assert [(m.type, m.target) for m in web.volumes] == [("volume", "/x"), ("bind", "/data")]
    assert web.cap_add == ("NET_ADMIN", "SYS_TIME")
    assert dict(web.labels) == {"one": "1", "two": "2"}
    assert set(project.services) == {"web", "extra"}
    assert project.config_files == (str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))


def test_default_files_and_override_file(tmp_path):
    write(tmp_path, "compose.yaml", "services: {web: {image: bb:1}}\n")
    write(tmp_path, "compose.override.yaml", "services: {web: {image: bb:2}}\n")
    sub_dir = tmp_path / "deeper" / "still"
    sub_dir.mkdir(parents=True)
    project = load(sub_dir)  # found upwards
    assert project.services["web"].image == "bb:2"
    assert project.working_dir == str(tmp_path)


def test_dotenv_and_environment(tmp_path):
    write(tmp_path, "compose.yaml", "services: {web: {image: 'bb:${TAG}', environment: [FROM_SHELL]}}\n")
    write(tmp_path, ".env", "TAG=dotenv\nFROM_SHELL=not-used\n")
    assert load(tmp_path).services["web"].image == "bb:dotenv"
    project = load(tmp_path, environ={"TAG": "shell", "FROM_SHELL": "s"})
    assert project.services["web"].image == "bb:shell"
    # a bare variable takes the shell's value (or .env's), as compose does
    assert dict(project.services["web"].environment) == {"FROM_SHELL": "s"}
    write(tmp_path, "other.env", "TAG=other\n")
    assert load(tmp_path, env_file="other.env").services["web"].image == "bb:other"


def test_version_is_ignored_with_a_warning(tmp_path):
    write(tmp_path, "compose.yaml", "version: '3.8'\nservices: {web: {image: bb}}\n")
    warnings: list[str] = []
    load(tmp_path, warnings=warnings)
    assert any("`version` is obsolete" in w for w in warnings)


def test_order_and_cycles(tmp_path):
    write(tmp_path, "compose.yaml", """\
        services:
          a: {image: bb, depends_on: [b, c]}
          b: {image: bb, depends_on: {c: {condition: service_completed_successfully}}}
          c: {image: bb}
          d: {image: bb, network_mode: "service:a"}
        """)
    project = load(tmp_path)
    assert [s.name for s in project.ordered()] == ["c", "b", "a", "d"]
    assert [s.name for s in project.ordered(["b"])] == ["c", "b"]
    assert [s.name for s in project.ordered(["b"], with_dependencies=False)] == ["b"]
    with pytest.raises(ComposeError, match="no such service: zz"):
        project.ordered(["zz"])
    write(tmp_path, "compose.yaml", "services:\n  a: {image: bb, depends_on: [b]}\n  b: {image: bb, depends_on: [a]}\n")
    with pytest.raises(ComposeError, match="dependency cycle detected: a -> b -> a"):
        load(tmp_path)


@pytest.mark.parametrize("text,message", [
    ("services: {web: {image: bb, foo: 1}}", r"services\.web additional property foo is not allowed"),
    ("services: {web: {build: .}}", r'service "web" has a build section.*cannot build'),
    ("services: {web: {image: bb, profiles: [x]}}", r"services\.web\.profiles is not supported"),
    ("services: {web: {image: bb, healthcheck: {test: [CURL, x]}}}",
     r"services\.web\.healthcheck\.test must start with CMD, CMD-SHELL or NONE"),
    ("services: {web: {image: bb, healthcheck: {interval: soon}}}", r"services\.web\.healthcheck\.interval is not a duration"),
    ("services: {web: {command: x}}", r'service "web" has neither an image nor a build context'),
    ("services: {web: {image: bb, volumes: ['data:/d']}}", r'service "web" refers to undefined volume data'),
    ("services: {web: {image: bb, networks: [back]}}", r'service "web" refers to undefined network back'),
    ("services: {web: {image: bb, depends_on: [db]}}", r'service "web" depends on undefined service "db"'),
    ("services: {web: {image: bb, tty: maybe}}", r"services\.web\.tty must be a boolean"),
    ("services: {web: {image: bb, ports: {a: 1}}}", r"services\.web\.ports must be a list"),
    ("services: {web: {image: bb, restart: sometimes}}", r"services\.web\.restart is invalid"),
    ("services: {web: {image: bb, mem_limit: lots}}", r"services\.web\.mem_limit is not a size"),
    ("services: {web: {image: bb, volumes: ['rel:dir']}}", r"target must be an absolute path"),
    ("services: {web: {image: bb, network_mode: host, networks: [x]}}", "mutually exclusive"),
    ("services: {web: {image: bb, deploy: {resources: {}}}}", r"services\.web\.deploy\.resources is not supported"),
    ("services: {web: {image: bb, container_name: x, scale: 2}}", "container_name"),
    ("services: {web: {image: 'bb:${T:?tag needed}'}}", "required variable T is missing a value: tag needed"),
    ("secrets: {}\nservices: {web: {image: bb}}", "secrets is not supported"),
    ("bogus: 1\nservices: {web: {image: bb}}", r"\(root\) additional property bogus is not allowed"),
    ("services: [web]", r"services must be a mapping"),
    ("services: {web: {image: bb}}\n  bad indent: [", "while parsing|expected"),
    ("services: {}", "no service"),
])
def test_errors_name_the_key_and_service(tmp_path, text, message):
    write(tmp_path, "compose.yaml", text + "\n")
    with pytest.raises(ComposeError, match=message):
        load(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(ComposeError, match="no configuration file provided: not found"):
        load(tmp_path)
    with pytest.raises(ComposeError, match="no such file or directory"):
        load(tmp_path, files=["nope.yaml"])


def test_config_hash_ignores_scale_and_dependencies(tmp_path):
    write(tmp_path, "compose.yaml", "services: {web: {image: bb, command: [a]}, db: {image: bb}}\n")
    before = spec.config_hash(load(tmp_path).services["web"])
    write(tmp_path, "compose.yaml", "services: {web: {image: bb, command: [a], scale: 3, depends_on: [db]}, "
                                    "db: {image: bb}}\n")
    assert spec.config_hash(load(tmp_path).services["web"]) == before
    write(tmp_path, "compose.yaml", "services: {web: {image: bb, command: [b]}, db: {image: bb}}\n")
    assert spec.config_hash(load(tmp_path).services["web"]) != before


def test_external_resources(tmp_path):
    write(tmp_path, "compose.yaml", """\
        services: {web: {image: bb, networks: [shared], volumes: ["keep:/k"]}}
        networks: {shared: {external: true, name: the-net}}
        volumes: {keep: {external: true}}
        """)
    project = load(tmp_path)
    assert project.networks["shared"] == model.NetworkDef("the-net", external=True)
    assert project.volumes["keep"] == model.VolumeDef("keep", external=True)
    write(tmp_path, "compose.yaml", "services: {web: {image: bb}}\nvolumes: {v: {external: true, driver: x}}\n")
    with pytest.raises(ComposeError, match="conflicts with external"):
        load(tmp_path)


def test_normalize_project_name():
    assert model.normalize_project_name("-My App_1.0") == "myapp_10"
    assert model.valid_project_name("a-b_c1") and not model.valid_project_name("_a")


# --- convergence against a recording fake engine ----------------------------------------------------------------


class FakeEngine:
    """Just enough of EngineClient for Compose: records calls, answers from its own state."""

    def __init__(self, networks: bool = True):
        from dockyard.client.api import ApiError

        self.ApiError = ApiError
        self.serves_networks = networks
        self.calls: list[tuple] = []
        self.containers_: list[dict] = []
        self.host = "unix:///nonexistent"

    def get_json(self, path, params=None):
        self.calls.append(("GET", path))
        if not self.serves_networks:
            raise self.ApiError(404, "page not found")
        if path == "/networks":
            return []
        raise self.ApiError(404, f"network {path.rsplit('/', 1)[-1]} not found")

    def post_json(self, path, params=None, body=None):
        self.calls.append(("POST", path, body))
        return {"Id": "n" * 64}

    def volume_inspect(self, name):
        raise self.ApiError(404, f"get {name}: no such volume")

    def volume_create(self, body):
        self.calls.append(("volume_create", body["Name"]))
        return body

    def image_inspect(self, name):
        return {"Id": "sha256:" + "i" * 64}

    def containers(self, all=False, filters=None):
        return [dict(c) for c in self.containers_]

    def container_create(self, body, name=""):
        cid = f"{len(self.containers_):064d}"
        self.calls.append(("create", name, body))
        self.containers_.append({"Id": cid, "Names": ["/" + name], "Labels": body["Labels"], "State": "created",
                                 "ImageID": "sha256:" + "i" * 64, "Mounts": []})
        return {"Id": cid, "Warnings": []}

    def container_remove(self, cid, force=False, volumes=False):
        self.calls.append(("remove", cid))
        self.containers_ = [c for c in self.containers_ if c["Id"] != cid]

    def container_stop(self, cid, timeout=None):
        self.calls.append(("stop", cid))

    def container_rename(self, cid, name):
        self.calls.append(("rename", cid, name))

    def close(self):
        pass


def test_convergence_without_engine_networks_and_scaling(tmp_path):
    from dockyard.compose.convergence import Compose

    write(tmp_path, "compose.yaml", "services: {web: {image: bb, scale: 3}}\n")
    project = load(tmp_path, project_name="p")
    fake = FakeEngine(networks=False)
    warnings: list[str] = []
    steps: list[tuple[str, str]] = []
    compose = Compose(fake, project, lambda r, s: steps.append((r, s)), warnings.append,  # type: ignore[arg-type]
                      connect=lambda: fake)
    compose.create(project.ordered())
    created = [c for c in fake.calls if c[0] == "create"]
    assert [c[1] for c in created] == ["p-web-1", "p-web-2", "p-web-3"]
    assert all(c[2]["HostConfig"]["NetworkMode"] == "default" and "NetworkingConfig" not in c[2] for c in created)
    assert any("does not serve networks" in w for w in warnings)
    assert steps[:2] == [("Container p-web-1", "Creating"), ("Container p-web-1", "Created")]

    # nothing changed: no writes
    fake.calls.clear()
    compose.create(project.ordered())
    assert [c for c in fake.calls if c[0] != "GET"] == []

    # scaled down: the highest numbers go
    write(tmp_path, "compose.yaml", "services: {web: {image: bb, scale: 1}}\n")
    project = load(tmp_path, project_name="p")
    Compose(fake, project, connect=lambda: fake).create(project.ordered())  # type: ignore[arg-type]
    assert [c["Names"][0] for c in fake.containers_] == ["/p-web-1"]

    # changed: recreated under the same name and number, the old one renamed out of the way first
    write(tmp_path, "compose.yaml", "services: {web: {image: bb, command: [x]}}\n")
    project = load(tmp_path, project_name="p")
    fake.calls.clear()
    old = fake.containers_[0]["Id"]
    Compose(fake, project, connect=lambda: fake).create(project.ordered())  # type: ignore[arg-type]
    kinds = [c[0] for c in fake.calls if c[0] != "GET"]
    assert kinds == ["stop", "rename", "create", "remove"]
    assert fake.calls[[c[0] for c in fake.calls].index("rename")][2] == f"{old[:12]}_p-web-1"
    assert [c["Names"][0] for c in fake.containers_] == ["/p-web-1"]


def test_convergence_creates_project_networks_and_connects_the_others(tmp_path):
    from dockyard.compose.convergence import Compose

    write(tmp_path, "compose.yaml", """\
        services: {web: {image: bb, networks: {front: {}, back: {aliases: [api]}}}}
        networks: {front: {}, back: {}}
        """)
    project = load(tmp_path, project_name="p")
    fake = FakeEngine()
    Compose(fake, project, connect=lambda: fake).create(project.ordered())  # type: ignore[arg-type]
    posts = [c for c in fake.calls if c[0] == "POST"]
    assert [(c[1], c[2]["Name"]) for c in posts[:2]] == [("/networks/create", "p_back"),
                                                         ("/networks/create", "p_front")]
    assert posts[0][2]["Labels"]["com.docker.compose.network"] == "back"
    create = next(c for c in fake.calls if c[0] == "create")
    assert create[2]["HostConfig"]["NetworkMode"] == "p_back"
    assert posts[2][1] == "/networks/p_front/connect"
    assert posts[2][2]["EndpointConfig"] == {"Aliases": ["p-web-1", "web"]}
