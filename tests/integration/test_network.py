"""Real network plumbing: namespaces, a bridge, veth pairs, iptables rules, the port proxy, the DNS server.

Every test works on a bridge of its own (`dyt…`, a subnet chosen away from
the host's routes) and namespaces bind-mounted under its tmp_path; the
`lab` fixture removes all of it, and checks it is gone, even when the test
fails.  Traffic goes only to loopback and to the namespaces made here.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import secrets
import socket
import subprocess
import threading
import time

import pytest

from dockyard.errors import Conflict, NotFound
from dockyard.network import dns, firewall, ipam, links, netns
from dockyard.network.portproxy import PortProxy

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

# dockerd's default bridge subnet is kept for the peer dockerd of this machine even while docker0 is absent.
RESERVED = [ipaddress.IPv4Network("172.17.0.0/16")]


def _netns_id(path: str) -> int:
    return os.stat(path).st_ino


def _forward_drops() -> bool:
    """Whether bridged traffic is filtered and dropped unless accepted (as on this machine)."""
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            if f.read().strip() != "1":
                return False
    except FileNotFoundError:
        return False
    out = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
    return "-P FORWARD DROP" in out


class Lab:
    """What a test made, to be removed in reverse order whatever happens."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.prefix = "dyt" + secrets.token_hex(3)
        self.bridges: list[str] = []
        self.namespaces: list[str] = []
        self.veths: list[str] = []
        self.rules: list[str] = []
        self.closers: list = []
        self._count = 0

    def name(self, tag: str) -> str:
        self._count += 1
        name = f"{self.prefix}{tag}{self._count}"
        assert len(name) <= 15
        return name

    def subnet(self) -> ipaddress.IPv4Network:
        # The bridges made so far have their routes: host_networks() keeps their subnets out.
        return ipam.choose_subnet([], [*links.host_networks(), *RESERVED])

    def bridge(self, subnet: ipaddress.IPv4Network | None = None, rules: bool = True):
        subnet = subnet or self.subnet()
        name = self.name("b")
        self.bridges.append(name)
        gateway = ipam.gateway_of(subnet)
        links.ensure_bridge(name, f"{gateway}/{subnet.prefixlen}")
        if rules:
            self.rules.append(name)
            firewall.setup_bridge(name, str(subnet))
        return name, subnet, gateway

    def namespace(self) -> str:
        path = str(self.tmp / f"ns{len(self.namespaces)}")
        netns.create(path)
        self.namespaces.append(path)
        return path

    def attach(self, path: str, bridge: str, subnet, gateway, taken: set) -> str:
        address = ipam.allocate(subnet, gateway, taken)
        taken.add(address)
        veth = self.name("v")
        self.veths.append(veth)
        links.attach(path, bridge, veth, f"{address}/{subnet.prefixlen}", str(gateway), ipam.mac_for(address))
        return str(address)

    def background(self, sock: socket.socket, step) -> None:
        """Run `step()` over and over in a thread until cleanup, then close `sock`."""
        sock.settimeout(0.2)
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    step()
                except OSError:  # a timeout, or the socket closed
                    continue

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            thread.join(5)
            sock.close()

        self.closers.append(close)

    def cleanup(self) -> list[str]:
        problems = []
        for close in reversed(self.closers):
            try:
                close()
            except Exception as err:  # noqa: BLE001
                problems.append(f"closing: {err!r}")
        for bridge in self.rules:
            firewall.teardown_bridge(bridge)
        for veth in self.veths:
            links.detach(veth)
        for path in self.namespaces:
            netns.remove(path)
        for bridge in self.bridges:
            links.remove_bridge(bridge)
        left = [name for _, name in socket.if_nameindex() if name.startswith(self.prefix)]
        if left:
            problems.append(f"links left: {left}")
        for bridge in self.rules:
            if firewall.rules_of(bridge):
                problems.append(f"iptables rules left for {bridge}: {firewall.rules_of(bridge)}")
        for path in self.namespaces:
            if os.path.exists(path):
                problems.append(f"namespace file left: {path}")
        mounts = open("/proc/self/mountinfo").read()
        if str(self.tmp) in mounts:
            problems.append(f"mounts left under {self.tmp}")
        return problems


@pytest.fixture
def lab(tmp_path):
    made = Lab(tmp_path)
    try:
        yield made
    finally:
        problems = made.cleanup()
    assert not problems, problems


def serve_tcp(lab: Lab, path: str, ip: str) -> int:
    """A TCP server inside the namespace: echoes what it reads, then after EOF says END:<count> and closes."""
    server = netns.run_in(path, socket.create_server, (ip, 0))

    def handle(conn: socket.socket) -> None:
        total = 0
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    total += len(data)
                    conn.sendall(data)
                conn.sendall(f"END:{total}".encode())
            except OSError:  # a client that went away (the back-pressure test aborts its connection)
                pass

    def step() -> None:
        conn, _ = server.accept()
        conn.settimeout(30)
        threading.Thread(target=handle, args=(conn,), daemon=True).start()

    lab.background(server, step)
    return server.getsockname()[1]


def serve_udp(lab: Lab, path: str, ip: str) -> int:
    """A UDP server inside the namespace: answers `echo:` + the datagram."""
    sock = netns.run_in(path, socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))

    def step() -> None:
        data, peer = sock.recvfrom(65535)
        sock.sendto(b"echo:" + data, peer)

    lab.background(sock, step)
    return sock.getsockname()[1]


def tcp_talk(path: str, ip: str, port: int, payload: bytes = b"hello", timeout: float = 2.0) -> bytes:
    """Connect from inside the namespace at `path`; send, half-close, read to the end."""
    sock = netns.run_in(path, socket.socket, socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def all_at_once(fn, jobs: list[tuple]) -> list[BaseException]:
    """`fn(*job)` for every job, each in a thread of its own, all started together; the errors."""
    errors: list[BaseException] = []

    def run(job):
        try:
            fn(*job)
        except Exception as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def reachable(path: str, ip: str, port: int) -> bool:
    try:
        return tcp_talk(path, ip, port, b"x", timeout=1.0) == b"xEND:1"
    except OSError:
        return False


def ping(path: str, ip: str) -> bool:
    proc = subprocess.run(["nsenter", f"--net={path}", "busybox", "ping", "-c", "1", "-W", "2", ip],
                          capture_output=True, text=True, timeout=10)
    return proc.returncode == 0


# ---------------------------------------------------------------------------------------------- netns


def test_netns_create_run_in_remove(tmp_path):
    path = str(tmp_path / "ns")
    home = os.readlink("/proc/thread-self/ns/net")
    netns.create(path)
    try:
        assert os.readlink("/proc/thread-self/ns/net") == home  # the caller's thread never moved
        assert netns.exists(path)
        assert _netns_id(path) != os.stat("/proc/thread-self/ns/net").st_ino
        # inside: only lo, and it is up
        assert netns.run_in(path, socket.if_nameindex) == [(1, "lo")]
        assert netns.run_in(path, lambda: os.stat("/proc/thread-self/ns/net").st_ino) == _netns_id(path)
        assert netns.run_in(path, _is_up, "lo")
        with pytest.raises(ZeroDivisionError):
            netns.run_in(path, lambda: 1 / 0)
        with pytest.raises(Conflict):
            netns.create(path)
        # a loopback server inside is not the host's
        sock = netns.run_in(path, socket.create_server, ("127.0.0.1", 0))
        with sock:
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=0.5).close()
    finally:
        netns.remove(path)
    assert not os.path.exists(path)
    netns.remove(path)  # idempotent
    assert str(tmp_path) not in open("/proc/self/mountinfo").read()


def _is_up(ifname: str) -> bool:
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        got = fcntl.ioctl(sock, 0x8913, struct.pack("16sH14x", ifname.encode(), 0))
        return bool(struct.unpack("16sH14x", got)[1] & 1)


def test_netns_create_fails_cleanly(tmp_path, monkeypatch):
    home = os.readlink("/proc/thread-self/ns/net")
    with pytest.raises(FileNotFoundError):
        netns.create(str(tmp_path / "missing" / "ns"))
    from dockyard.linux import mount
    from dockyard.linux.syscall import SyscallError

    def refuse(source, target, recursive=False):
        raise SyscallError("mount", (source, target), errno.EPERM)

    monkeypatch.setattr(mount, "bind", refuse)
    path = str(tmp_path / "ns")
    with pytest.raises(SyscallError):
        netns.create(path)
    assert not os.path.exists(path)
    assert os.readlink("/proc/thread-self/ns/net") == home


def test_netns_concurrent_creates(tmp_path):
    paths = [str(tmp_path / f"ns{i}") for i in range(8)]
    errors = all_at_once(netns.create, [(p,) for p in paths])
    try:
        assert not errors
        assert len({_netns_id(p) for p in paths}) == 8
    finally:
        for p in paths:
            netns.remove(p)


# ---------------------------------------------------------------------------------------------- links


def test_bridge_is_idempotent_and_concurrent(lab):
    subnet = lab.subnet()
    name = lab.name("b")
    lab.bridges.append(name)
    gateway = f"{ipam.gateway_of(subnet)}/{subnet.prefixlen}"
    assert not all_at_once(links.ensure_bridge, [(name, gateway)] * 4)
    links.ensure_bridge(name, gateway)
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", name], capture_output=True, text=True).stdout
    assert out.count(" inet ") == 1 and gateway in out
    assert "UP" in subprocess.run(["ip", "link", "show", name], capture_output=True, text=True).stdout
    assert subnet in links.host_networks()
    links.remove_bridge(name)
    links.remove_bridge(name)
    assert name not in dict((n, i) for i, n in socket.if_nameindex())


def test_attach_two_namespaces_and_traffic(lab):
    bridge, subnet, gateway = lab.bridge(rules=False)
    taken: set = set()
    ns_a, ns_b = lab.namespace(), lab.namespace()
    ip_a = lab.attach(ns_a, bridge, subnet, gateway, taken)
    ip_b = lab.attach(ns_b, bridge, subnet, gateway, taken)
    assert ip_a == str(gateway + 1) and ip_b == str(gateway + 2)

    # inside: eth0 with the MAC, the address, up, and the default route via the gateway
    out = subprocess.run(["nsenter", f"--net={ns_a}", "ip", "-o", "addr", "show", "eth0"],
                         capture_output=True, text=True).stdout
    assert f"{ip_a}/{subnet.prefixlen}" in out
    link = subprocess.run(["nsenter", f"--net={ns_a}", "ip", "link", "show", "eth0"],
                          capture_output=True, text=True).stdout
    assert ipam.mac_for(ip_a) in link and "state UP" in link
    route = subprocess.run(["nsenter", f"--net={ns_a}", "ip", "route", "show", "default"],
                           capture_output=True, text=True).stdout
    assert f"default via {gateway} dev eth0" in route
    # the host end: a port of the bridge, up
    host_end = subprocess.run(["ip", "link", "show", lab.veths[0]], capture_output=True, text=True).stdout
    assert f"master {bridge}" in host_end and "state UP" in host_end

    port_b = serve_tcp(lab, ns_b, ip_b)
    if _forward_drops():
        # FORWARD's policy drops bridged frames: nothing passes before our rules…
        assert not reachable(ns_a, ip_b, port_b)
    firewall.setup_bridge(bridge, str(subnet))
    lab.rules.append(bridge)
    firewall.setup_bridge(bridge, str(subnet))  # idempotent
    assert len(firewall.rules_of(bridge)) == 6
    # …and with them, container to container, both ways, and to the host's gateway address
    assert tcp_talk(ns_a, ip_b, port_b, b"ping" * 1000) == b"ping" * 1000 + b"END:4000"
    assert ping(ns_a, ip_b) and ping(ns_b, ip_a) and ping(ns_a, str(gateway))
    host_server = socket.create_server((str(gateway), 0))
    lab.closers.append(host_server.close)
    got: list = []

    def accept_one():
        conn, peer = host_server.accept()
        got.append(peer[0])
        conn.close()

    t = threading.Thread(target=accept_one, daemon=True)
    t.start()
    netns.run_in(ns_a, socket.create_connection, (str(gateway), host_server.getsockname()[1]), 2).close()
    t.join(5)
    assert got == [ip_a]

    firewall.teardown_bridge(bridge, str(subnet))
    assert firewall.rules_of(bridge) == []
    if _forward_drops():
        assert not reachable(ns_a, ip_b, port_b)

    links.detach(lab.veths[1])
    links.detach(lab.veths[1])  # idempotent
    assert netns.run_in(ns_b, socket.if_nameindex) == [(1, "lo")]


def test_attach_failure_leaves_nothing(lab):
    bridge, subnet, gateway = lab.bridge(rules=False)
    path = lab.namespace()
    veth = lab.name("v")
    lab.veths.append(veth)
    with pytest.raises(NotFound):
        links.attach(path, lab.prefix + "none", veth, f"{gateway + 1}/{subnet.prefixlen}", str(gateway),
                     ipam.mac_for(gateway + 1))
    # a gateway outside the subnet: the route cannot be added, after the pair was made
    with pytest.raises(Exception) as info:
        links.attach(path, bridge, veth, f"{gateway + 1}/{subnet.prefixlen}", "192.0.2.254",
                     ipam.mac_for(gateway + 1))
    assert "unreachable" in str(info.value).lower()
    assert veth not in [n for _, n in socket.if_nameindex()]
    assert netns.run_in(path, socket.if_nameindex) == [(1, "lo")]
    # and a retry with good values works
    links.attach(path, bridge, veth, f"{gateway + 1}/{subnet.prefixlen}", str(gateway), ipam.mac_for(gateway + 1))
    assert [n for _, n in netns.run_in(path, socket.if_nameindex)] == ["lo", "eth0"]


def test_networks_are_isolated(lab):
    bridge_1, subnet_1, gw_1 = lab.bridge()
    bridge_2, subnet_2, gw_2 = lab.bridge()
    assert not subnet_1.overlaps(subnet_2)
    ns_1, ns_2 = lab.namespace(), lab.namespace()
    ip_1 = lab.attach(ns_1, bridge_1, subnet_1, gw_1, set())
    ip_2 = lab.attach(ns_2, bridge_2, subnet_2, gw_2, set())
    port_1, port_2 = serve_tcp(lab, ns_1, ip_1), serve_tcp(lab, ns_2, ip_2)
    # each reaches its own gateway, but not the other network's containers
    assert ping(ns_1, str(gw_1)) and ping(ns_2, str(gw_2))
    assert not reachable(ns_1, ip_2, port_2)
    assert not reachable(ns_2, ip_1, port_1)


def test_internal_network_rules(lab):
    bridge, subnet, _ = lab.bridge(rules=False)
    firewall.setup_bridge(bridge, str(subnet), internal=True)
    lab.rules.append(bridge)
    rules = firewall.rules_of(bridge)
    assert not any(chain == firewall.POSTROUTING for _, chain, _ in rules)
    assert sum("DROP" in rule for _, _, rule in rules) == 3
    # our jump comes before any verdict of FORWARD (another tool may since have put its own jump first)
    forward = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout.splitlines()
    ours = forward.index(f"-A FORWARD -j {firewall.FORWARD}")
    verdicts = [i for i, line in enumerate(forward)
                if line.startswith("-A ") and line.split()[-1] in ("ACCEPT", "DROP", "REJECT")]
    assert all(ours < i for i in verdicts)


def test_teardown_keeps_other_bridges_and_removes_chains_with_the_last(lab):
    bridge_1, subnet_1, _ = lab.bridge()
    bridge_2, subnet_2, _ = lab.bridge()
    firewall.teardown_bridge(bridge_1)
    assert firewall.rules_of(bridge_1) == [] and len(firewall.rules_of(bridge_2)) == 6
    firewall.teardown_bridge(bridge_2)
    others = [b for b in firewall.Tables.read().rules if b[1].startswith("DOCKYARD")]
    still_used = any(firewall.Tables.read().rules.get(c) for c in others
                     if c != ("filter", firewall.FORWARD))
    if not still_used:  # no other user of our chains on this machine right now
        save = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert "DOCKYARD" not in save


# ---------------------------------------------------------------------------------------------- ports


def test_published_port_by_dnat(lab):
    """What comes to the host's own (non-loopback) addresses is DNATed to the container, no proxy involved."""
    bridge, subnet, gateway = lab.bridge()
    path = lab.namespace()
    ip = lab.attach(path, bridge, subnet, gateway, set())
    port = serve_tcp(lab, path, ip)
    with socket.socket() as probe:  # a host port nothing listens on
        probe.bind((str(gateway), 0))
        host_port = probe.getsockname()[1]

    def talk() -> bytes:
        with socket.create_connection((str(gateway), host_port), timeout=2) as sock:
            sock.sendall(b"dnat")
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while data := sock.recv(100):
                chunks.append(data)
            return b"".join(chunks)

    with pytest.raises(ConnectionRefusedError):
        talk()
    for host_ip in ("0.0.0.0", str(gateway)):
        firewall.publish(bridge, host_ip, host_port, "tcp", ip, port)
        firewall.publish(bridge, host_ip, host_port, "tcp", ip, port)  # idempotent
        assert len(firewall.rules_of(bridge)) == 6 + 2
        assert talk() == b"dnatEND:4"
        firewall.unpublish(bridge, host_ip, host_port, "tcp", ip, port)
        firewall.unpublish(bridge, host_ip, host_port, "tcp", ip, port)
        assert len(firewall.rules_of(bridge)) == 6
        with pytest.raises(ConnectionRefusedError):
            talk()
    # a bridge's teardown takes its ports' rules too
    firewall.publish(bridge, "", host_port, "udp", ip, 53)
    firewall.teardown_bridge(bridge)
    assert firewall.rules_of(bridge) == []


def test_port_proxy_tcp_and_udp(lab):
    bridge, subnet, gateway = lab.bridge()
    path = lab.namespace()
    ip = lab.attach(path, bridge, subnet, gateway, set())
    tcp_port = serve_tcp(lab, path, ip)
    udp_port = serve_udp(lab, path, ip)

    async def scenario():
        proxy = PortProxy(udp_idle=0.3)
        try:
            port = await proxy.publish("127.0.0.1", 0, "tcp", ip, tcp_port)
            assert port > 0
            with pytest.raises(Conflict) as info:
                await proxy.publish("127.0.0.1", port, "tcp", ip, tcp_port)
            assert str(info.value) == f"Bind for 127.0.0.1:{port} failed: port is already allocated"

            # streaming both ways, and the half-close passed on while the reply still flows
            assert await _roundtrip(port, os.urandom(4 << 20))

            # back-pressure: a client that does not read makes the proxy stop reading, not buffer
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sent = [0]
            sender = asyncio.create_task(_send_forever(writer, sent))
            await asyncio.sleep(1.5)  # enough to fill every kernel buffer on the way
            before = sent[0]
            await asyncio.sleep(1.0)
            mapping = proxy._maps[("127.0.0.1", port, "tcp")]
            buffered = max(c.transport.get_write_buffer_size() for c in mapping.conns)
            assert buffered < 1 << 20, buffered
            assert sent[0] - before <= 1 << 20, (before, sent[0])  # the client is held back too
            assert not sender.done()
            sender.cancel()
            writer.transport.abort()

            # several connections at once
            results = await asyncio.gather(*(_roundtrip(port, f"c{i}".encode() * 100) for i in range(10)))
            assert all(results)

            # udp: an association per client, replies back to each
            uport = await proxy.publish("127.0.0.1", 0, "udp", ip, udp_port)
            loop = asyncio.get_running_loop()
            clients = []
            for i in range(2):
                q: asyncio.Queue = asyncio.Queue()
                transport, _ = await loop.create_datagram_endpoint(
                    lambda q=q: _Collect(q), remote_addr=("127.0.0.1", uport))
                clients.append((transport, q))
                transport.sendto(f"hi{i}".encode())
            answers = [await asyncio.wait_for(q.get(), 5) for _, q in clients]
            assert answers == [b"echo:hi0", b"echo:hi1"]
            assert len(proxy._maps[("127.0.0.1", uport, "udp")].udp.assocs) == 2
            await asyncio.sleep(1.0)  # idle associations go
            assert proxy._maps[("127.0.0.1", uport, "udp")].udp.assocs == {}
            clients[0][0].sendto(b"again")
            assert await asyncio.wait_for(clients[0][1].get(), 5) == b"echo:again"
            for transport, _ in clients:
                transport.close()

            # unpublish frees the port
            await proxy.unpublish("127.0.0.1", port, "tcp")
            await proxy.unpublish("127.0.0.1", port, "tcp")
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)
            assert await proxy.publish("127.0.0.1", port, "tcp", ip, tcp_port) == port
        finally:
            await proxy.close()
        assert proxy.published() == {}

    asyncio.run(scenario())


async def _send_forever(writer, sent: list) -> None:
    chunk = b"x" * (1 << 16)
    while True:
        writer.write(chunk)
        await writer.drain()
        sent[0] += len(chunk)


async def _roundtrip(port: int, payload: bytes) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()
    got = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return got == payload + f"END:{len(payload)}".encode()


class _Collect(asyncio.DatagramProtocol):
    def __init__(self, queue):
        self.queue = queue

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)


def test_port_proxy_to_nowhere_closes_the_client(lab):
    bridge, subnet, gateway = lab.bridge()
    path = lab.namespace()
    ip = lab.attach(path, bridge, subnet, gateway, set())

    async def scenario():
        proxy = PortProxy()
        try:
            port = await proxy.publish("127.0.0.1", 0, "tcp", ip, 1)  # nothing listens on port 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello")
            try:
                got = await asyncio.wait_for(reader.read(), 5)
            except ConnectionResetError:  # what it sent was never read: closing resets
                got = b""
            writer.close()
            return got
        finally:
            await proxy.close()

    assert asyncio.run(scenario()) == b""


# ---------------------------------------------------------------------------------------------- dns


def test_dns_server_answers_a_container(lab):
    bridge, subnet, gateway = lab.bridge()
    path = lab.namespace()
    ip = lab.attach(path, bridge, subnet, gateway, set())
    names = {"web": [ip], "db": ["10.9.9.9"]}

    def lookup(name):
        return names.get(name, [])

    def ask(name: str, qtype: int = dns.A) -> bytes:
        sock = netns.run_in(path, socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            sock.settimeout(3)
            sock.sendto(struct_query(name, qtype), (str(gateway), port))
            return sock.recv(512)

    async def scenario():
        nonlocal port
        server = dns.DnsServer(upstreams=[])  # never forward from a test: only our namespaces are talked to
        port = await server.serve(str(gateway), 0, lookup)
        loop = asyncio.get_running_loop()
        try:
            return [await loop.run_in_executor(None, ask, name, qtype)
                    for name, qtype in (("WEB.", dns.A), ("db", dns.A), ("web", dns.AAAA), ("nothere", dns.A))]
        finally:
            server.close()

    port = 0
    web, db, web6, missing = asyncio.run(scenario())
    assert socket.inet_aton(ip) in web and web[3] & 0xF == dns.NOERROR and int.from_bytes(web[6:8], "big") == 1
    assert socket.inet_aton("10.9.9.9") in db
    assert web6[3] & 0xF == dns.NOERROR and int.from_bytes(web6[6:8], "big") == 0
    assert missing[3] & 0xF == dns.NXDOMAIN


def struct_query(name: str, qtype: int) -> bytes:
    import struct

    return struct.pack("!HHHHHH", 0x4242, dns.RD, 1, 0, 0, 0) + dns.encode_name(name) + struct.pack("!HH", qtype, 1)


# ---------------------------------------------------------------------------------------------- speed


def test_attach_is_quick(lab):
    """Not a benchmark (those live in bench/): a guard against a slow path creeping in (e.g. a fork)."""
    bridge, subnet, gateway = lab.bridge()
    path = lab.namespace()
    veth = lab.name("v")
    lab.veths.append(veth)
    address = f"{gateway + 1}/{subnet.prefixlen}"
    links.attach(path, bridge, veth, address, str(gateway), ipam.mac_for(gateway + 1))  # warm up
    links.detach(veth)
    spent = []
    for _ in range(5):
        start = time.perf_counter()
        links.attach(path, bridge, veth, address, str(gateway), ipam.mac_for(gateway + 1))
        spent.append(time.perf_counter() - start)
        links.detach(veth)
    assert min(spent) < 0.05, spent


def test_concurrent_attaches_from_worker_threads(lab):
    """The engine starts containers from several worker threads at once."""
    bridge, subnet, gateway = lab.bridge()
    paths = [lab.namespace() for _ in range(6)]
    jobs = []
    for i, path in enumerate(paths):
        address = gateway + 1 + i
        veth = lab.name("v")
        lab.veths.append(veth)
        jobs.append((path, bridge, veth, f"{address}/{subnet.prefixlen}", str(gateway), ipam.mac_for(address)))
    assert not all_at_once(links.attach, jobs)
    for i, path in enumerate(paths):
        assert ping(path, str(gateway + 1 + (i + 1) % len(paths)))


def test_links_from_a_thread_running_an_event_loop(lab):
    """pyroute2's sync API cannot run inside a running loop: the call moves to a thread of its own."""
    bridge, subnet, gateway = lab.bridge(rules=False)

    async def inside():
        return links.host_networks()

    assert subnet in asyncio.run(inside())


def test_quick_restart_reuses_the_host_name(lab):
    """The kernel drops a removed namespace's veths a little later: a restart at once must still attach."""
    bridge, subnet, gateway = lab.bridge(rules=False)
    veth = lab.name("v")
    lab.veths.append(veth)
    address = f"{gateway + 1}/{subnet.prefixlen}"
    for _ in range(3):
        path = lab.namespace()
        links.attach(path, bridge, veth, address, str(gateway), ipam.mac_for(gateway + 1))
        assert ping(path, str(gateway))
        netns.remove(path)  # what a container's stop does; the pair goes with the namespace, later
    # a name held by something that is not a veth is not taken over
    path = lab.namespace()
    other = lab.name("b")
    lab.bridges.append(other)
    links.ensure_bridge(other, f"{gateway + 2}/32")
    with pytest.raises(Conflict):
        links.attach(path, bridge, other, address, str(gateway), ipam.mac_for(gateway + 1))
    assert netns.run_in(path, socket.if_nameindex) == [(1, "lo")]
