"""Published ports by a userland proxy, as dockerd's docker-proxy does (asyncio, in the engine).

A *mapping* is (host address, host port, protocol) -> (container address,
container port).  The proxy listens on the host side and, per client,
opens its own connection (TCP) or association (UDP) to the container: it
serves every path a packet filter's DNAT cannot, above all connections to
the host's loopback (127.0.0.1 is never routed to a bridge).

TCP: bytes flow both ways as they come; a half-close on one side is passed
on (`write_eof`) while the other direction keeps flowing; a side that cannot
keep up pauses reading on the other (asyncio's write buffer limits), so a
slow reader never makes the proxy buffer without bound.  A reset or an error
on one side closes both.

UDP: each client address gets its own socket connected to the container,
so replies find their way back; an association idle for `udp_idle` seconds
(dockerd: 90) is closed.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket

from ..errors import Conflict, InvalidArgument, NotSupported, Unavailable

log = logging.getLogger(__name__)

UDP_IDLE = 90.0  # dockerd's UDPConnTrackTimeout

Key = tuple[str, int, str]


def _family(host_ip: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host_ip).version == 6 else socket.AF_INET
    except ValueError:
        raise InvalidArgument(f"invalid host IP address: {host_ip}") from None


def _bind(host_ip: str, host_port: int, proto: str) -> socket.socket:
    family = _family(host_ip)
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind | socket.SOCK_CLOEXEC)
    try:
        if proto == "tcp":
            # Rebinding a port whose old connections linger in TIME_WAIT must work, as for dockerd.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host_ip, host_port))
        if proto == "tcp":
            sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
        return sock
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise Conflict(f"Bind for {host_ip}:{host_port} failed: port is already allocated") from None
        text = f"Error starting userland proxy: listen {proto}{'6' if family == socket.AF_INET6 else '4'} " \
               f"{host_ip}:{host_port}: bind: {(err.strerror or str(err)).lower()}"
        if err.errno in (errno.EADDRNOTAVAIL, errno.EINVAL):
            raise InvalidArgument(text) from None
        raise Unavailable(text) from None


class _Pipe(asyncio.Protocol):
    """One side of a proxied TCP connection; `peer` is the other side."""

    def __init__(self, conns: set):
        self.conns = conns
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.got_eof = False
        self.lost = False
        self.paused = False  # our write buffer is full: the peer is not read meanwhile

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.conns.add(self)

    def data_received(self, data: bytes) -> None:
        self.peer.transport.write(data)

    def eof_received(self) -> bool:
        self.got_eof = True
        peer = self.peer
        if peer is None or peer.lost:
            return False
        if peer.got_eof:  # both directions are done
            peer.transport.close()
            return False
        peer.transport.write_eof()
        return True  # keep our side open: the other direction may still be flowing

    def pause_writing(self) -> None:
        self.paused = True
        if self.peer is not None and not self.peer.lost and self.peer.peer is self:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.peer is not None and not self.peer.lost and self.peer.peer is self:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.conns.discard(self)
        peer = self.peer
        if peer is not None and not peer.lost and peer.transport is not None:
            if exc is not None:
                peer.transport.abort()
            else:
                peer.transport.close()  # after what is still buffered for it

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()


class _Inbound(_Pipe):
    """The client's side: reading waits until the container's side is connected."""

    def __init__(self, conns: set, target: tuple[str, int], tasks: set):
        super().__init__(conns)
        self.target = target
        self.tasks = tasks

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._connect())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        outbound = _Pipe(self.conns)
        outbound.peer = self  # the container may speak first, even before we are told it answered
        try:
            await loop.create_connection(lambda: outbound, *self.target)
        except OSError as err:
            log.debug("proxy to %s:%d: %s", *self.target, err)
            self.close()
            return
        if self.lost:
            outbound.close()
            return
        self.peer = outbound
        if self.got_eof:  # the client half-closed before the container answered
            outbound.transport.write_eof()
        if not outbound.paused:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        if self.peer is None:
            self.got_eof = True
            return True
        return super().eof_received()


class _UdpBack(asyncio.DatagramProtocol):
    """One client's association: a socket connected to the container."""

    def __init__(self, front: _UdpFront, client):
        self.front = front
        self.client = client
        self.transport = None
        self.pending: list[bytes] = []
        self.last = asyncio.get_running_loop().time()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        for data in self.pending:
            transport.sendto(data)
        self.pending.clear()
        self._arm(self.front.idle)

    def _arm(self, delay: float) -> None:
        self.timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        left = self.last + self.front.idle - asyncio.get_running_loop().time()
        if left > 0:
            self._arm(left)
        else:
            self.close()

    def send(self, data: bytes) -> None:
        self.last = asyncio.get_running_loop().time()
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr) -> None:
        self.last = asyncio.get_running_loop().time()
        if self.front.transport is not None:
            self.front.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp proxy to %s: %s", self.front.target, exc)  # ICMP unreachable: the client retries

    def connection_lost(self, exc) -> None:
        self.close()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.front.assocs.get(self.client) is self:
            del self.front.assocs[self.client]
        if self.transport is not None:
            self.transport.close()


class _UdpFront(asyncio.DatagramProtocol):
    def __init__(self, target: tuple[str, int], idle: float, tasks: set):
        self.target = target
        self.idle = idle
        self.tasks = tasks
        self.transport = None
        self.assocs: dict[object, _UdpBack] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        assoc = self.assocs.get(addr)
        if assoc is None:
            assoc = self.assocs[addr] = _UdpBack(self, addr)
            task = asyncio.get_running_loop().create_task(self._open(assoc))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        assoc.send(data)

    async def _open(self, assoc: _UdpBack) -> None:
        family = _family(self.target[0])
        try:
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: assoc, remote_addr=self.target,
                                                                      family=family)
        except OSError as err:
            log.debug("udp proxy to %s: %s", self.target, err)
            assoc.close()

    def error_received(self, exc: Exception) -> None:
        log.debug("udp proxy listener: %s", exc)

    def close(self) -> None:
        for assoc in list(self.assocs.values()):
            assoc.close()
        if self.transport is not None:
            self.transport.close()


class _Mapping:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.server: asyncio.base_events.Server | None = None
        self.udp: _UdpFront | None = None
        self.conns: set[_Pipe] = set()
        self.tasks: set[asyncio.Task] = set()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.udp is not None:
            self.udp.close()
        for task in list(self.tasks):
            task.cancel()
        for conn in list(self.conns):
            conn.close()
        if self.server is not None:
            await self.server.wait_closed()


class PortProxy:
    """The engine's published ports: one listener per mapping, all on the caller's event loop."""

    def __init__(self, udp_idle: float = UDP_IDLE):
        self.udp_idle = udp_idle
        self._maps: dict[Key, _Mapping] = {}

    async def publish(self, host_ip: str, host_port: int, proto: str, target_ip: str, target_port: int) -> int:
        """Listen on host_ip:host_port (0: any free port) and forward to target; returns the bound port."""
        proto = proto.lower()
        if proto not in ("tcp", "udp"):
            raise NotSupported(f"publishing {proto} ports is not supported")
        host_ip = host_ip or "0.0.0.0"
        sock = _bind(host_ip, int(host_port), proto)
        port = sock.getsockname()[1]
        mapping = _Mapping((target_ip, int(target_port)))
        loop = asyncio.get_running_loop()
        try:
            if proto == "tcp":
                mapping.server = await loop.create_server(
                    lambda: _Inbound(mapping.conns, mapping.target, mapping.tasks), sock=sock)
            else:
                _, mapping.udp = await loop.create_datagram_endpoint(
                    lambda: _UdpFront(mapping.target, self.udp_idle, mapping.tasks), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._maps[(host_ip, port, proto)] = mapping
        return port

    async def unpublish(self, host_ip: str, host_port: int, proto: str) -> None:
        """Stop listening and close the mapping's connections.  Idempotent."""
        mapping = self._maps.pop((host_ip or "0.0.0.0", int(host_port), proto.lower()), None)
        if mapping is not None:
            await mapping.close()

    def published(self) -> dict[Key, tuple[str, int]]:
        """(host_ip, host_port, proto) -> (target_ip, target_port) of every mapping."""
        return {key: m.target for key, m in self._maps.items()}

    async def close(self) -> None:
        maps, self._maps = list(self._maps.values()), {}
        for mapping in maps:
            await mapping.close()
