"""The embedded DNS server's messages (pure) and its resolver over loopback only."""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import pytest

from dockyard.network import dns


def query(name: str, qtype: int = dns.A, ident: int = 0x1234, flags: int = dns.RD, qclass: int = dns.IN) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + dns.encode_name(name) + struct.pack("!HH", qtype, qclass)


def parse_reply(data: bytes) -> dict:
    """A small reader for what our server sends (answers point at the question's name)."""
    ident, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    pos = 12
    qname = b""
    if qd:
        qname, pos = dns._read_name(data, pos)
        pos += 4
    answers = []
    for _ in range(an):
        _name, pos = dns._read_name(data, pos)
        rtype, rclass, ttl, size = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        rdata = data[pos:pos + size]
        pos += size
        if rtype == dns.A:
            answers.append((rtype, ttl, socket.inet_ntoa(rdata)))
        elif rtype == dns.PTR:
            answers.append((rtype, ttl, dns.decode_name(dns._read_name(data, pos - size)[0])))
        else:
            answers.append((rtype, ttl, rdata))
    return {"id": ident, "flags": flags, "rcode": flags & 0xF, "qname": qname, "answers": answers,
            "tc": bool(flags & dns.TC), "aa": bool(flags & dns.AA), "qd": qd}


def test_parse_query():
    q = dns.parse_query(query("Web.MyNet.", dns.AAAA))
    assert q.id == 0x1234
    assert q.qtype == dns.AAAA and q.qclass == dns.IN
    assert q.name == "web.mynet"
    assert q.qname == b"\x03Web\x05MyNet\x00"


def test_parse_query_follows_a_pointer():
    # "web" then a pointer to "mynet", which sits after the question's type and class
    header = struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0)
    data = header + b"\x03web\xc0" + bytes([12 + 6 + 4]) + struct.pack("!HH", dns.A, dns.IN) + b"\x05mynet\x00"
    q = dns.parse_query(data)
    assert q.name == "web.mynet" and q.qtype == dns.A
    answer = parse_reply(dns.reply(q, addresses=["10.0.0.1"]))
    assert answer["qname"] == b"\x03web\x05mynet\x00" and answer["answers"] == [(dns.A, 600, "10.0.0.1")]


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\x12\x34\x01\x00\x00\x01",                        # shorter than a header
    struct.pack("!HHHHHH", 1, 0, 0, 0, 0, 0),                         # no question
    struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0) + dns.encode_name("a") + b"\0\1\0\1" * 2,  # two questions
    struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x05ab",             # label past the end
    struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x01a\x00\x00",      # type/class cut short
    struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c\0\1\0\1",   # pointer to itself
    struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x80abc",            # reserved label type
    struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x3fx" * 5,           # name longer than 255
])
def test_malformed(data):
    with pytest.raises(dns.Malformed):
        dns.parse_query(data)
    answer = dns.error_reply(data, dns.FORMERR)
    if len(data) < 12:
        assert answer is None
    else:
        got = parse_reply(answer)
        assert got["id"] == 1 and got["rcode"] == dns.FORMERR and got["flags"] & dns.QR


def test_a_response_is_never_answered():
    data = query("web", flags=dns.QR)
    with pytest.raises(dns.Malformed):
        dns.parse_query(data)
    assert dns.error_reply(data, dns.FORMERR) is None


def test_garbage_never_raises_anything_else():
    rng = random.Random(4)
    resolver = dns.Resolver(lambda name: ["10.0.0.2"], None, [])
    valid = query("web.mynet")
    for _ in range(3000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data[: rng.randint(0, len(data))]) if rng.random() < 0.3 else bytes(data)
        answer = asyncio.run(resolver.answer(data, tcp=False)) if rng.random() < 0.05 else None
        try:
            q = dns.parse_query(data)
        except dns.Malformed:
            dns.error_reply(data, dns.FORMERR)
            continue
        resolver.local(q, dns.UDP_LIMIT)
        del answer


def test_reply_a_records():
    q = dns.parse_query(query("WEB", ident=99))
    got = parse_reply(dns.reply(q, addresses=["172.18.0.2", "172.18.0.3"], authoritative=True))
    assert got["id"] == 99 and got["rcode"] == dns.NOERROR and got["aa"]
    assert got["flags"] & dns.QR and got["flags"] & dns.RD and got["flags"] & dns.RA
    assert got["qname"] == b"\x03WEB\x00"  # the question echoed as asked (0x20 case randomisation)
    assert got["answers"] == [(dns.A, 600, "172.18.0.2"), (dns.A, 600, "172.18.0.3")]


def test_reply_truncates_over_udp():
    q = dns.parse_query(query("many"))
    addresses = [f"10.0.{i // 256}.{i % 256}" for i in range(100)]
    data = dns.reply(q, addresses=addresses, limit=dns.UDP_LIMIT)
    assert len(data) <= 512
    got = parse_reply(data)
    assert got["tc"] and 0 < len(got["answers"]) < 100
    assert not parse_reply(dns.reply(q, addresses=addresses))["tc"]


def resolve(resolver, data, tcp=False):
    return parse_reply(asyncio.run(resolver.answer(data, tcp=tcp)))


def test_resolver_local_names():
    names = {"web": ["172.18.0.2"], "db": ["172.18.0.3", "172.18.0.4"]}
    seen = []

    def lookup(name):
        seen.append(name)
        return names.get(name, [])

    resolver = dns.Resolver(lookup, None, [])
    got = resolve(resolver, query("Web."))
    assert got["answers"] == [(dns.A, 600, "172.18.0.2")] and got["rcode"] == 0
    assert seen[-1] == "web"
    got = resolve(resolver, query("db"))
    assert sorted(a[2] for a in got["answers"]) == ["172.18.0.3", "172.18.0.4"]
    # a known name has no AAAA: empty NOERROR, so the resolver does not look further
    got = resolve(resolver, query("web", dns.AAAA))
    assert got["rcode"] == dns.NOERROR and got["answers"] == []
    got = resolve(resolver, query("web", dns.MX))
    assert got["rcode"] == dns.NOERROR and got["answers"] == []
    # unknown, and nowhere to forward: NXDOMAIN
    got = resolve(resolver, query("nothere.example"))
    assert got["rcode"] == dns.NXDOMAIN and got["answers"] == []
    # other opcodes are not implemented
    got = resolve(resolver, query("web", flags=2 << 11))
    assert got["rcode"] == dns.NOTIMP


def test_resolver_lookup_failure_is_servfail():
    def lookup(name):
        raise RuntimeError("boom")

    got = resolve(dns.Resolver(lookup, None, []), query("web"))
    assert got["rcode"] == dns.SERVFAIL


def test_reverse():
    assert dns.reverse_name("2.0.18.172.in-addr.arpa") == "172.18.0.2"
    assert dns.reverse_name("0.18.172.in-addr.arpa") is None
    assert dns.reverse_name("x.0.18.172.in-addr.arpa") is None
    assert dns.reverse_name("web") is None
    resolver = dns.Resolver(lambda n: [], lambda ip: ["web.mynet"] if ip == "172.18.0.2" else [], [])
    got = resolve(resolver, query("2.0.18.172.in-addr.arpa", dns.PTR))
    assert got["answers"] == [(dns.PTR, 600, "web.mynet")]
    assert resolve(resolver, query("3.0.18.172.in-addr.arpa", dns.PTR))["rcode"] == dns.NXDOMAIN


def test_host_resolvers_skip_loopback(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\n"
                    "nameserver fe80::1%eth0\nnameserver bogus\nsearch example.org\noptions ndots:0\n")
    assert dns.host_resolvers(str(conf)) == [("10.1.2.3", 53), ("fe80::1", 53)]
    assert dns.host_resolvers(str(tmp_path / "missing")) == []


class FakeUpstream(asyncio.DatagramProtocol):
    """An upstream server on 127.0.0.1 that answers every A query with 192.0.2.99 (or stays silent)."""

    def __init__(self, silent=False):
        self.silent = silent
        self.seen = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        q = dns.parse_query(data)
        self.seen.append(q.name)
        if not self.silent:
            self.transport.sendto(dns.reply(q, addresses=["192.0.2.99"]), addr)


def test_forwarding_over_udp_and_tcp_to_loopback_upstreams():
    async def scenario():
        loop = asyncio.get_running_loop()
        silent_t, silent = await loop.create_datagram_endpoint(lambda: FakeUpstream(True), local_addr=("127.0.0.1", 0))
        up_t, up = await loop.create_datagram_endpoint(FakeUpstream, local_addr=("127.0.0.1", 0))

        async def tcp_upstream(reader, writer):
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            q = dns.parse_query(await reader.readexactly(size))
            answer = dns.reply(q, addresses=["192.0.2.100"])
            writer.write(struct.pack("!H", len(answer)) + answer)
            await writer.drain()
            writer.close()

        port = up_t.get_extra_info("sockname")[1]
        tcp_server = await asyncio.start_server(tcp_upstream, "127.0.0.1", port)
        try:
            resolver = dns.Resolver(lambda n: ["172.18.0.2"] if n == "web" else [], None,
                                    [silent_t.get_extra_info("sockname")[:2], ("127.0.0.1", port)], timeout=0.3)
            over_udp = parse_reply(await resolver.answer(query("example.org", ident=4321), tcp=False))
            over_tcp = parse_reply(await resolver.answer(query("example.org", ident=4322), tcp=True))
            local = parse_reply(await resolver.answer(query("web"), tcp=False))
            return over_udp, over_tcp, local, silent.seen, up.seen
        finally:
            tcp_server.close()
            silent_t.close()
            up_t.close()

    over_udp, over_tcp, local, silent_seen, up_seen = asyncio.run(scenario())
    assert over_udp["id"] == 4321 and over_udp["answers"] == [(dns.A, 600, "192.0.2.99")]
    assert over_tcp["id"] == 4322 and over_tcp["answers"] == [(dns.A, 600, "192.0.2.100")]
    assert local["answers"] == [(dns.A, 600, "172.18.0.2")]
    assert silent_seen == ["example.org"] and up_seen == ["example.org"]


def test_forwarding_fails_to_servfail():
    async def scenario():
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_datagram_endpoint(lambda: FakeUpstream(True), local_addr=("127.0.0.1", 0))
        try:
            resolver = dns.Resolver(lambda n: [], None, [t.get_extra_info("sockname")[:2]], timeout=0.2)
            return parse_reply(await resolver.answer(query("example.org"), tcp=False))
        finally:
            t.close()

    assert asyncio.run(scenario())["rcode"] == dns.SERVFAIL


def test_dns_server_udp_and_tcp_on_loopback():
    async def scenario():
        server = dns.DnsServer(upstreams=[])
        port = await server.serve("127.0.0.1", 0, lambda n: {"web": ["172.18.0.2"]}.get(n, []))
        loop = asyncio.get_running_loop()
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, query("WEB.", ident=5))
            udp = parse_reply(await asyncio.wait_for(loop.sock_recv(sock, 512), 2))
            await loop.sock_sendall(sock, b"\x00\x09garbage-garbage")
            formerr = parse_reply(await asyncio.wait_for(loop.sock_recv(sock, 512), 2))
            sock.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for name, ident in (("web", 6), ("other", 7)):
                data = query(name, ident=ident)
                writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            tcp = []
            for _ in range(2):
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                tcp.append(parse_reply(await reader.readexactly(size)))
            writer.close()
            return udp, formerr, tcp
        finally:
            server.close()

    udp, formerr, tcp = asyncio.run(scenario())
    assert udp["id"] == 5 and udp["answers"] == [(dns.A, 600, "172.18.0.2")]
    assert formerr["id"] == 9 and formerr["rcode"] == dns.FORMERR
    assert tcp[0]["id"] == 6 and tcp[0]["answers"] == [(dns.A, 600, "172.18.0.2")]
    assert tcp[1]["id"] == 7 and tcp[1]["rcode"] == dns.NXDOMAIN
