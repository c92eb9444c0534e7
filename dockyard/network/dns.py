"""The embedded DNS server of user-defined networks: containers find each other by name.

Two layers.  The *message* functions are pure (bytes in, bytes out): they
read a query with one question and write a reply, and never raise on
garbage (a malformed packet gets FORMERR when its header can be read, else
no reply at all).  `DnsServer` puts them on asyncio UDP and TCP sockets and
asks the engine's `lookup(name) -> [IPv4 address, …]`; names are matched
case-insensitively without their trailing dot.

Answers as dockerd's resolver gives them: A records with TTL 600 in
shuffled order; a known name asked for AAAA (or another type) gets an empty
NOERROR answer, so resolvers do not go on to search elsewhere; an unknown
name is forwarded to the host's resolvers (those of /etc/resolv.conf that are
not loopback addresses: a container cannot reach the host's 127.0.0.53), or
answered NXDOMAIN when there are none.  An optional `reverse(ip) -> [name]`
answers PTR queries for containers' addresses.

    message: header (12 bytes) | question: name, type, class | answers…
    over TCP each message is preceded by its length (2 bytes, big-endian)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

TTL = 600  # dockerd's respTTL
UDP_LIMIT = 512  # without EDNS a reply over UDP must fit here, else it is truncated (TC)

# types, classes, rcodes, flags
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, OPT, ANY = 1, 2, 5, 6, 12, 15, 16, 28, 41, 255
IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
OPCODE_MASK = 0x7800

_HEADER = struct.Struct("!HHHHHH")


class Malformed(ValueError):
    """A message that cannot be read."""


@dataclass(frozen=True)
class Query:
    """A query with one question.  `qname` is the question's name as sent (its case kept for the echo)."""

    id: int
    flags: int
    qname: bytes
    qtype: int
    qclass: int

    @property
    def name(self) -> str:
        """The name for lookups: lower case, no trailing dot ("" is the root)."""
        return decode_name(self.qname).lower()

    @property
    def opcode(self) -> int:
        return (self.flags & OPCODE_MASK) >> 11


def decode_name(wire: bytes) -> str:
    """Dotted text of a name in wire form (no compression inside; labels may hold any byte)."""
    labels, i = [], 0
    while i < len(wire) and wire[i]:
        n = wire[i]
        labels.append(wire[i + 1:i + 1 + n].decode("latin-1"))
        i += 1 + n
    return ".".join(labels)


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            if len(raw) > 63:
                raise ValueError(f"label too long in {name!r}")
            out += bytes([len(raw)]) + raw
    out += b"\0"
    return bytes(out)


def _read_name(data: bytes, pos: int) -> tuple[bytes, int]:
    """The name at `pos` in wire form (pointers followed, result uncompressed) and where it ends."""
    out = bytearray()
    end = None
    hops = 0
    while True:
        if pos >= len(data):
            raise Malformed("name runs past the end")
        n = data[pos]
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise Malformed("truncated pointer")
            hops += 1
            if hops > 16:
                raise Malformed("pointer loop")
            if end is None:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | data[pos + 1]
            continue
        if n & 0xC0:
            raise Malformed("unknown label type")
        if n == 0:
            out.append(0)
            if len(out) > 255:
                raise Malformed("name too long")
            return bytes(out), (end if end is not None else pos + 1)
        if pos + 1 + n > len(data):
            raise Malformed("label runs past the end")
        out += data[pos:pos + 1 + n]
        pos += 1 + n
        if len(out) > 255:
            raise Malformed("name too long")


def parse_query(data: bytes) -> Query:
    """The query in `data`; `Malformed` if it is not a query with exactly one question."""
    if len(data) < _HEADER.size:
        raise Malformed("shorter than a header")
    ident, flags, qd, _an, _ns, _ar = _HEADER.unpack_from(data)
    if flags & QR:
        raise Malformed("a response, not a query")
    if qd != 1:
        raise Malformed(f"{qd} questions")
    qname, pos = _read_name(data, _HEADER.size)
    if pos + 4 > len(data):
        raise Malformed("question runs past the end")
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    return Query(ident, flags, qname, qtype, qclass)


def reply(query: Query, rcode: int = NOERROR, addresses: Iterable[str] = (), names: Iterable[str] = (),
          ttl: int = TTL, authoritative: bool = False, limit: int | None = None) -> bytes:
    """A reply to `query`: A records for `addresses`, PTR records for `names`, and `rcode`.

    With `limit` (UDP), records that do not fit are left out and the TC flag set.
    """
    flags = QR | (query.flags & (OPCODE_MASK | RD)) | RA | (AA if authoritative else 0) | (rcode & 0xF)
    question = query.qname + struct.pack("!HH", query.qtype, query.qclass)
    records = []
    pointer = struct.pack("!H", 0xC000 | _HEADER.size)  # the question's name
    for address in addresses:
        records.append(pointer + struct.pack("!HHIH", A, IN, ttl, 4) + ipaddress.IPv4Address(address).packed)
    for name in names:
        target = encode_name(name)
        records.append(pointer + struct.pack("!HHIH", PTR, IN, ttl, len(target)) + target)
    size = _HEADER.size + len(question)
    kept = []
    for record in records:
        if limit is not None and size + len(record) > limit:
            flags |= TC
            break
        kept.append(record)
        size += len(record)
    return _HEADER.pack(query.id, flags, 1, len(kept), 0, 0) + question + b"".join(kept)


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """An answer with `rcode` and no question for a message we cannot read; None if even its header is bad."""
    if len(data) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & QR:
        return None  # never answer a response: two servers could play ping-pong
    flags = QR | (flags & (OPCODE_MASK | RD)) | RA | (rcode & 0xF)
    return _HEADER.pack(ident, flags, 0, 0, 0, 0)


def with_id(data: bytes, ident: int) -> bytes:
    return struct.pack("!H", ident) + data[2:]


def reverse_name(name: str) -> str | None:
    """The IPv4 address a PTR name asks about ("2.0.18.172.in-addr.arpa" -> "172.18.0.2"), else None."""
    suffix = ".in-addr.arpa"
    if not name.endswith(suffix):
        return None
    parts = name[: -len(suffix)].split(".")
    if len(parts) != 4:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(parts))))
    except ValueError:
        return None


def host_resolvers(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The nameservers of resolv.conf a container can use: not loopback (those are the host's own)."""
    found = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                ip = ipaddress.ip_address(words[1].split("%")[0])
            except ValueError:
                continue
            if not ip.is_loopback:
                found.append((str(ip), 53))
    return found


Lookup = Callable[[str], list[str]]
Reverse = Callable[[str], list[str]]


class Resolver:
    """What to answer to a query: from `lookup`/`reverse`, else from the upstream servers (pure but for these)."""

    def __init__(self, lookup: Lookup, reverse: Reverse | None, upstreams: list[tuple[str, int]],
                 timeout: float = 3.0):
        self.lookup = lookup
        self.reverse = reverse
        self.upstreams = upstreams
        self.timeout = timeout

    def local(self, query: Query, limit: int | None) -> bytes | None:
        """The reply from our own names, or None if the query is for the upstream servers."""
        if query.opcode != 0:
            return reply(query, NOTIMP)
        if query.qclass not in (IN, ANY):
            return None
        name = query.name
        if query.qtype == PTR and self.reverse is not None:
            ip = reverse_name(name)
            names = self.reverse(ip) if ip else []
            if names:
                return reply(query, names=names[:1], authoritative=True, limit=limit)
            return None
        addresses = self.lookup(name) if name else []
        if not addresses:
            return None
        if query.qtype in (A, ANY):
            addresses = list(addresses)
            random.shuffle(addresses)
            return reply(query, addresses=addresses, authoritative=True, limit=limit)
        return reply(query, authoritative=True)  # a container name has no AAAA, MX…: NOERROR, nothing

    async def answer(self, data: bytes, tcp: bool) -> bytes | None:
        try:
            query = parse_query(data)
        except Malformed as err:
            log.debug("dns: malformed query: %s", err)
            return error_reply(data, FORMERR)
        limit = None if tcp else UDP_LIMIT
        try:
            local = self.local(query, limit)
        except Exception:  # noqa: BLE001 - the engine's lookup failed: say so to the client only
            log.exception("dns: lookup of %r failed", query.name)
            return reply(query, SERVFAIL)
        if local is not None:
            return local
        if not self.upstreams:
            return reply(query, NXDOMAIN)
        for server in self.upstreams:
            try:
                got = await (self._tcp(server, data) if tcp else self._udp(server, data))
            except (TimeoutError, OSError, Malformed) as err:
                log.debug("dns: forwarding %r to %s: %s", query.name, server, err)
                continue
            if got is not None:
                return with_id(got, query.id)
        return reply(query, SERVFAIL)

    async def _udp(self, server: tuple[str, int], data: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, server)
            ident = random.getrandbits(16)  # our own id: a stray reply to someone else's query is not ours
            await loop.sock_sendall(sock, with_id(data, ident))
            deadline = loop.time() + self.timeout
            while True:
                got = await asyncio.wait_for(loop.sock_recv(sock, 65535), max(0.0, deadline - loop.time()))
                if len(got) >= 2 and struct.unpack_from("!H", got)[0] == ident:
                    return got
        finally:
            sock.close()

    async def _tcp(self, server: tuple[str, int], data: bytes) -> bytes | None:
        async def exchange() -> bytes:
            reader, writer = await asyncio.open_connection(*server)
            try:
                writer.write(struct.pack("!H", len(data)) + data)
                await writer.drain()
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                return await reader.readexactly(size)
            finally:
                writer.close()

        try:
            return await asyncio.wait_for(exchange(), self.timeout)
        except asyncio.IncompleteReadError as err:
            raise Malformed("upstream closed mid-message") from err


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver, tasks: set):
        self.resolver = resolver
        self.tasks = tasks
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, data: bytes, addr) -> None:
        answer = await self.resolver.answer(data, tcp=False)
        if answer is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(answer, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns: %s", exc)


class DnsServer:
    """A network's name server: UDP and TCP on one address and port, answers from `lookup`."""

    IDLE = 10.0  # a TCP client silent this long is dropped

    def __init__(self, upstreams: Iterable[tuple[str, int] | str] | None = None, timeout: float = 3.0):
        """`upstreams`: where unknown names go; None means the host's resolvers (`host_resolvers`)."""
        if upstreams is None:
            self.upstreams = host_resolvers()
        else:
            self.upstreams = [(u, 53) if isinstance(u, str) else (u[0], int(u[1])) for u in upstreams]
        self.timeout = timeout
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.address: tuple[str, int] | None = None

    async def serve(self, host: str, port: int, lookup: Lookup, reverse: Reverse | None = None) -> int:
        """Start answering on host:port (0: a free port, the same for UDP and TCP); returns the port.

        Returns once both sockets listen; `close()` stops.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _attempt in range(8 if port == 0 else 1):
            udp = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            tcp = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                udp.bind((host, port))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((host, udp.getsockname()[1]))
                break
            except OSError:
                udp.close()
                tcp.close()
                if port != 0 or _attempt == 7:
                    raise
        await self.serve_on(udp, tcp, lookup, reverse)
        return udp.getsockname()[1]

    async def serve_on(self, udp: socket.socket, tcp: socket.socket | None, lookup: Lookup,
                       reverse: Reverse | None = None) -> None:
        """Serve on sockets made elsewhere (e.g. inside a container's namespace: `netns.run_in`)."""
        loop = asyncio.get_running_loop()
        resolver = Resolver(lookup, reverse, self.upstreams, self.timeout)
        udp.setblocking(False)
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(resolver, self._tasks), sock=udp)
        self.address = udp.getsockname()[:2]
        if tcp is not None:
            tcp.setblocking(False)
            tcp.listen(64)

            async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                self._writers.add(writer)
                try:
                    while True:
                        size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), self.IDLE))[0]
                        data = await asyncio.wait_for(reader.readexactly(size), self.IDLE)
                        answer = await resolver.answer(data, tcp=True)
                        if answer is None:
                            break
                        writer.write(struct.pack("!H", len(answer)) + answer)
                        await writer.drain()
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    pass
                finally:
                    self._writers.discard(writer)
                    writer.close()

            self._tcp = await asyncio.start_server(client, sock=tcp)

    def close(self) -> None:
        """Stop answering (callable from the loop's thread; nothing to await)."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
