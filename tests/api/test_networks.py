"""Networks through the Engine API: the default bridge, user networks with names, published ports.

A real daemon, real namespaces, bridges, veth pairs and firewall rules; the docker SDK, the docker CLI
and ours as callers. Traffic only between the host and the containers these tests start.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request

import pytest

pytestmark = pytest.mark.root


def _cli(engine, *args: str, timeout: float = 60):
    got = engine.dockyard(*args, timeout=timeout)
    got.stdout, got.stderr = got.stdout.decode(), got.stderr.decode()
    return got


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def _fetch(url: str, deadline: float = 10.0) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


@pytest.fixture
def cleanup(engine):
    names: list[tuple[str, str]] = []
    yield names
    for kind, name in reversed(names):
        if kind == "container":
            _cli(engine, "rm", "-f", name)
            continue
        found = _cli(engine, "network", "inspect", "-f", "{{.Id}}", name)
        assert _cli(engine, "network", "rm", name).returncode == 0
        assert f" dy-{found.stdout.strip()[:12]}:" not in _links()  # its bridge went with it


def test_builtin_networks_are_listed_and_inspected(engine, busybox_image):
    sdk = engine.docker_sdk()
    try:
        by_name = {n.name: n.attrs for n in sdk.networks.list()}
    finally:
        sdk.close()
    assert {k: by_name[k]["Driver"] for k in ("bridge", "host", "none")} == {
        "bridge": "bridge", "host": "host", "none": "null"}
    bridge = json.loads(_cli(engine, "network", "inspect", "bridge").stdout)[0]
    config = bridge["IPAM"]["Config"][0]
    assert config["Subnet"].endswith("/16") and config["Gateway"].endswith(".1")
    assert bridge["Options"]["com.docker.network.bridge.name"] == engine.bridge  # --bridge (default dockyard0)
    got = _cli(engine, "network", "rm", "bridge")
    assert got.returncode == 1
    assert got.stderr == "Error response from daemon: bridge is a pre-defined network and cannot be removed\n"


def test_the_default_bridge_gives_an_address_a_route_and_the_host(engine, busybox_image):
    got = _cli(engine, "run", "--rm", "--name", "netdef", "busybox", "sh", "-c",
               "ip -o -4 addr show eth0; ip route; cat /etc/hosts; ping -c1 -W2 $(ip route | awk '/default/{print $3}')"
               " >/dev/null && echo gateway-answers")
    assert got.returncode == 0, got.stderr
    bridge = json.loads(_cli(engine, "network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][0]
    prefix = bridge["Subnet"].rsplit(".", 2)[0]
    assert f"inet {prefix}." in got.stdout and f"default via {bridge['Gateway']} dev eth0" in got.stdout
    address = got.stdout.split("inet ", 1)[1].split("/", 1)[0]
    hosts = got.stdout.split("127.0.0.1", 1)[1]
    assert re.search(rf"\n{re.escape(address)}\t[0-9a-f]{{12}}\n", hosts), hosts  # its address and hostname
    assert got.stdout.endswith("gateway-answers\n")


def test_published_ports_reach_a_server_in_the_container(engine, busybox_image, cleanup):
    port = _free_port()
    got = _cli(engine, "run", "-d", "--name", "netweb", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
               "mkdir /www && echo hello-from-the-container > /www/index.html && httpd -f -p 80 -h /www")
    cleanup.append(("container", "netweb"))
    assert got.returncode == 0, got.stderr
    assert _fetch(f"http://127.0.0.1:{port}/") == "hello-from-the-container\n"
    assert _cli(engine, "port", "netweb").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    docker = engine.docker("port", "netweb", "80")
    assert docker.stdout.decode() == f"127.0.0.1:{port}\n"
    ports = engine.client().container_inspect("netweb")["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    # A second container asking for the same port is refused, and does not run.
    busy = _cli(engine, "run", "-d", "--name", "netweb2", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "30")
    cleanup.append(("container", "netweb2"))
    assert busy.returncode == 125 and "port is already allocated" in busy.stderr, busy.stderr
    assert engine.client().container_inspect("netweb2")["State"]["Running"] is False
    assert _cli(engine, "stop", "-t", "1", "netweb").returncode == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_a_user_network_resolves_names_and_aliases(engine, busybox_image, cleanup):
    sdk = engine.docker_sdk()
    try:
        net = sdk.networks.create("usernet1", labels={"k": "v"})
        cleanup.append(("network", "usernet1"))
        assert net.attrs["Driver"] == "bridge" and net.attrs["Labels"] == {"k": "v"}
        got = _cli(engine, "run", "-d", "--name", "netsrv", "--network", "usernet1", "--network-alias", "srvalias",
                   "busybox", "sleep", "120")
        cleanup.append(("container", "netsrv"))
        assert got.returncode == 0, got.stderr
        for name in ("netsrv", "srvalias", "NETSRV"):
            got = _cli(engine, "run", "--rm", "--network", "usernet1", "busybox", "ping", "-c1", "-W3", name)
            assert got.returncode == 0 and "1 packets received" in got.stdout, (name, got.stdout, got.stderr)
        got = _cli(engine, "run", "--rm", "--network", "usernet1", "busybox", "nslookup", "nosuchname.invalid")
        assert got.returncode != 0
        net.reload()
        assert [c["Name"] for c in net.attrs["Containers"].values()] == ["netsrv"]
        assert _cli(engine, "ps", "--filter", "network=usernet1", "--format", "{{.Names}}").stdout == "netsrv\n"
        busy = _cli(engine, "network", "rm", "usernet1")
        assert busy.returncode == 1 and "has active endpoints" in busy.stderr
    finally:
        sdk.close()


def test_connect_and_disconnect_a_running_container(engine, busybox_image, cleanup):
    assert _cli(engine, "network", "create", "usernet2").returncode == 0
    cleanup.append(("network", "usernet2"))
    assert _cli(engine, "run", "-d", "--name", "netcon", "busybox", "sleep", "120").returncode == 0
    cleanup.append(("container", "netcon"))
    got = engine.docker("network", "connect", "--alias", "extra", "usernet2", "netcon")
    assert got.returncode == 0, got.stderr
    got = _cli(engine, "exec", "netcon", "ip", "-o", "-4", "addr")
    assert " eth0 " in got.stdout and " eth1 " in got.stdout
    networks = engine.client().container_inspect("netcon")["NetworkSettings"]["Networks"]
    assert set(networks) == {"bridge", "usernet2"} and networks["usernet2"]["Aliases"] == ["extra"]
    assert _cli(engine, "network", "disconnect", "usernet2", "netcon").returncode == 0
    assert " eth1 " not in _cli(engine, "exec", "netcon", "ip", "-o", "-4", "addr").stdout
    again = _cli(engine, "network", "disconnect", "usernet2", "netcon")
    assert again.returncode == 1 and "is not connected to network usernet2" in again.stderr


def test_compose_create_disconnect_connect_start(engine, busybox_image, cleanup):
    """Compose's sequence: create on the project network, disconnect, connect with aliases, start."""
    client = engine.client()
    client.post_json("/networks/create", None, {"Name": "composenet", "CheckDuplicate": True, "Attachable": True,
                                                 "Labels": {"com.docker.compose.project": "p"}})
    cleanup.append(("network", "composenet"))
    reply = client.container_create({"Image": "busybox", "Cmd": ["sleep", "120"],
                                     "HostConfig": {"NetworkMode": "composenet"},
                                     "NetworkingConfig": {"EndpointsConfig": {"composenet": {"Aliases": ["db"]}}}},
                                    "composedb")
    cleanup.append(("container", "composedb"))
    cid = reply["Id"]
    client.post_json("/networks/composenet/disconnect", None, {"Container": cid})
    client.post_json("/networks/composenet/connect", None,
                     {"Container": cid, "EndpointConfig": {"Aliases": [cid[:12], "db", "database"]}})
    client.container_start(cid)
    got = _cli(engine, "run", "--rm", "--network", "composenet", "busybox", "ping", "-c1", "-W3", "database")
    assert got.returncode == 0, got.stdout + got.stderr


def test_bad_network_input_is_refused(engine, busybox_image, cleanup):
    assert _cli(engine, "network", "create", "--subnet", "10.231.0.0/24", "badnet1").returncode == 0
    cleanup.append(("network", "badnet1"))
    for args, message in (
            (["network", "create", "badnet1"], "network with name badnet1 already exists"),
            (["network", "create", "--subnet", "10.231.0.0/16", "badnet2"],
             "Pool overlaps with other one on this address space"),
            (["network", "create", "-d", "nosuchdriver", "badnet3"], 'plugin "nosuchdriver" not found'),
            (["network", "inspect", "nosuchnet"], "network nosuchnet not found")):
        got = _cli(engine, *args)
        assert got.returncode == 1 and message in got.stderr, (args, got.stderr)
    got = _cli(engine, "run", "--rm", "--ip", "10.231.0.9", "busybox", "true")
    assert got.returncode == 125 and "user specified IP address is supported on user defined networks only" in \
        got.stderr
    got = _cli(engine, "run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert got.returncode == 125 and "network nosuchnet not found" in got.stderr
    got = _cli(engine, "run", "--rm", "--network", "badnet1", "--ip", "10.231.0.9", "busybox", "ip", "-o", "-4",
               "addr", "show", "eth0")
    assert got.returncode == 0 and "inet 10.231.0.9/24" in got.stdout, got.stderr


def test_networks_leave_nothing_behind(engine, busybox_image):
    """After the tests above: no veth of ours, no netns file, and removed networks' bridges are gone."""
    assert _cli(engine, "run", "--rm", "busybox", "true").returncode == 0
    assert not list((engine.exec_root / "netns").iterdir())
    deadline = time.monotonic() + 5  # the kernel removes a dead namespace's veths a moment after
    while f"master {engine.bridge}" in _links() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"master {engine.bridge}" not in _links()  # no veth of a stopped container is left on the bridge
