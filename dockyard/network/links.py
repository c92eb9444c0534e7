"""Bridges, veth pairs, addresses and routes, through netlink (pyroute2).

Vocabulary: the *bridge* is a network's switch on the host (`br-<id>`, or
`docker0`-like for the default network), holding the network's gateway
address; an *endpoint* is a veth pair whose host end is a port of the bridge
and whose other end lives in a container's network namespace as `eth0`
(`eth1`… for further networks).

pyroute2 costs ~180 ms to import: it is imported on first use, never when
`dockyard.network` is.  Its synchronous `IPRoute` belongs to the thread that
made it (it keeps a per-thread event loop and socket), so each thread keeps
one for the host namespace (see `_host`).  A socket in a container's
namespace is opened by a thread that joined it (`netns.open_socket`), and a
throwaway `IPRoute` drives it from the caller's thread: no fork (pyroute2's
own `netns=` forks), no process.

The peer end of a pair is created directly inside the container's namespace
(IFLA_NET_NS_FD on the peer) with its final name and MAC, and the host end
is made a port of the bridge and set up by the same request: one round trip
for what `ip link add … ; ip link set … netns …; ip link set … master …`
does in four.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
import threading

from ..errors import Conflict, EngineError, InvalidArgument, NotFound, Unavailable
from . import netns

_local = threading.local()
_bridge_lock = threading.Lock()

IFNAMSIZ = 16  # with the NUL: names are at most 15 characters


def _iproute_class():
    from pyroute2 import IPRoute  # noqa: PLC0415 - lazy: ~180 ms

    return IPRoute


def _host():
    """This thread's IPRoute on the host namespace; made on first use and kept."""
    ipr = getattr(_local, "ipr", None)
    if ipr is None:
        # groups=0: no multicast subscription, so no events pile up in an idle socket.
        ipr = _local.ipr = _iproute_class()(groups=0)
    return ipr


def _netlink_error():
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

    return NetlinkError


def _code(err: BaseException) -> int:
    return getattr(err, "code", None) or getattr(err, "errno", None) or 0


def _engine_error(what: str, err: BaseException) -> EngineError:
    code = _code(err)
    text = os.strerror(code) if code else str(err)
    kind = {errno.EEXIST: Conflict, errno.ENODEV: NotFound, errno.ENOENT: NotFound,
            errno.EINVAL: InvalidArgument, errno.ERANGE: InvalidArgument}.get(code, Unavailable)
    return kind(f"{what}: {text}")


def _drop_host() -> None:
    ipr = getattr(_local, "ipr", None)
    _local.ipr = None
    if ipr is not None:
        try:
            ipr.close()
        except Exception:  # noqa: BLE001, S110 - it is being thrown away for being broken
            pass


def _loop_running() -> bool:
    # Without asyncio imported no loop can run: no need to pay its import to ask.
    aio = sys.modules.get("asyncio")
    return aio is not None and aio._get_running_loop() is not None  # noqa: SLF001 - the C-level check


def _off_loop(fn):
    """pyroute2's synchronous API runs its own event loop: never inside a running one.

    An error that is neither the kernel's answer nor ours may have left this
    thread's IPRoute half-way through a request: it is replaced.
    """

    def wrapper(*args, **kwargs):
        if _loop_running():
            return netns.in_thread(lambda: fn(*args, **kwargs))
        try:
            return fn(*args, **kwargs)
        except EngineError:
            raise
        except BaseException as err:
            if getattr(_local, "ipr", None) is not None and not isinstance(err, _netlink_error()):
                _drop_host()
            raise

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def random_mac() -> str:
    """A random unicast, locally administered MAC (what dockerd gives its bridges)."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in octets)


def _check_ifname(name: str) -> None:
    if not name or len(name.encode()) >= IFNAMSIZ or "/" in name or name.strip() != name:
        raise InvalidArgument(f"invalid interface name {name!r}: 1 to {IFNAMSIZ - 1} characters, no '/' or spaces")


def _index(name: str) -> int | None:
    try:
        return socket.if_nametoindex(name)  # one ioctl; only right for the host namespace
    except OSError:
        return None


@_off_loop
def ensure_bridge(name: str, gateway: str, mtu: int = 1500) -> None:
    """The bridge `name` exists, holds `gateway` ("172.18.0.1/16") and is up.  Idempotent."""
    _check_ifname(name)
    iface = ipaddress.IPv4Interface(gateway)
    NetlinkError = _netlink_error()
    ipr = _host()
    with _bridge_lock:
        index = _index(name)
        if index is None:
            try:
                # A MAC of its own: a bridge left to take its ports' MACs changes address as
                # containers come and go, and neighbours' ARP caches go stale.
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu, address=random_mac())
            except NetlinkError as err:
                if err.code != errno.EEXIST:  # another process made it meanwhile: fine
                    raise _engine_error(f"creating bridge {name}", err) from None
            index = _index(name)
            if index is None:
                raise NotFound(f"bridge {name} vanished while being set up")
        try:
            ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen,
                     broadcast=str(iface.network.broadcast_address) if iface.network.prefixlen < 31 else None)
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise _engine_error(f"setting address {gateway} on bridge {name}", err) from None
        try:
            ipr.link("set", index=index, state="up")
        except NetlinkError as err:
            raise _engine_error(f"setting bridge {name} up", err) from None


@_off_loop
def remove_bridge(name: str) -> None:
    """Delete the bridge `name` (its ports are released, not deleted).  Idempotent."""
    _delete_link(name, "bridge")


@_off_loop
def detach(host_ifname: str) -> None:
    """Delete a veth pair by its host end (the other end goes with it).  Idempotent."""
    _delete_link(host_ifname, "veth")


def _delete_link(name: str, what: str) -> None:
    index = _index(name)
    if index is None:
        return
    try:
        _host().link("del", index=index)
    except _netlink_error() as err:
        if err.code not in (errno.ENODEV, errno.ENOENT):
            raise _engine_error(f"deleting {what} {name}", err) from None


@_off_loop
def attach(netns_path: str, bridge: str, host_ifname: str, address: str, gateway: str | None, mac: str,
           mtu: int = 1500, ifname: str = "eth0") -> None:
    """A veth pair from `bridge` into the namespace at `netns_path`.

    The host end `host_ifname` is a port of `bridge` and up; the other end is
    `ifname` in the namespace, with `mac` and `address` ("172.18.0.2/16"), up,
    and the default route via `gateway` when given.  On failure nothing is left.
    A veth already named `host_ifname` is taken for this endpoint's leftover
    and replaced: host names must be unique among live endpoints.
    """
    _check_ifname(host_ifname)
    _check_ifname(ifname)
    iface = ipaddress.IPv4Interface(address)
    via = str(ipaddress.IPv4Address(gateway)) if gateway else None
    NetlinkError = _netlink_error()
    ipr = _host()
    master = _index(bridge)
    if master is None:
        raise NotFound(f"bridge {bridge} not found")
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for attempt in (1, 2):
            try:
                ipr.link("add", ifname=host_ifname, kind="veth", mtu=mtu, master=master, state="up",
                         peer={"ifname": ifname, "net_ns_fd": fd, "address": mac, "mtu": mtu})
                break
            except NetlinkError as err:
                if attempt == 1 and err.code == errno.EEXIST and _is_veth(ipr, host_ifname):
                    # The pair of this endpoint's previous life: its namespace is gone but the kernel
                    # tears namespaces down asynchronously (~25 ms here), so a quick restart finds it.
                    _delete_link(host_ifname, "veth")
                    continue
                raise _engine_error(f"creating veth pair {host_ifname} into {netns_path}", err) from None
    finally:
        os.close(fd)
    try:
        _configure_inside(netns_path, ifname, iface, via)
    except BaseException as err:
        try:
            _delete_link(host_ifname, "veth")
        except Exception:  # noqa: BLE001, S110 - the first error is the one to report
            pass
        if isinstance(err, NetlinkError):
            raise _engine_error(f"configuring {ifname} ({address}) in {netns_path}", err) from None
        raise


def _is_veth(ipr, name: str) -> bool:
    index = _index(name)
    if index is None:
        return False
    try:
        (msg,) = ipr.link("get", index=index)
    except _netlink_error():
        return False
    info = msg.get_attr("IFLA_LINKINFO")
    return info is not None and info.get_attr("IFLA_INFO_KIND") == "veth"


def _configure_inside(path: str, ifname: str, iface: ipaddress.IPv4Interface, via: str | None) -> None:
    sock, index = netns.run_in(path, _inner_socket, ifname)
    try:
        # The host's IPRoute of this thread lends its event loop: a new loop per call costs ~0.5 ms.
        inner = _iproute_class()(use_socket=sock, groups=0, use_event_loop=_host().asyncore.event_loop)
        try:
            inner.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen,
                       broadcast=str(iface.network.broadcast_address) if iface.network.prefixlen < 31 else None)
            inner.link("set", index=index, state="up")
            if via:
                inner.route("add", dst="0.0.0.0/0", gateway=via, oif=index)
        finally:
            inner.close()
    finally:
        sock.close()


def _inner_socket(ifname: str) -> tuple[socket.socket, int]:
    # In a thread that joined the namespace: both the socket and the name lookup are the namespace's.
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)
    try:
        return sock, socket.if_nametoindex(ifname)
    except BaseException:
        sock.close()
        raise


def routed_networks() -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes as /proc/net/route lists them, without pyroute2: what a new subnet must not
    overlap, cheap enough for the engine's start (`host_networks` asks netlink, routes and addresses)."""
    out = []
    try:
        with open("/proc/net/route") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        if int(mask) == 0:
            continue  # the default route covers everything; it says nothing about local subnets
        out.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return out


@_off_loop
def host_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 networks the host already reaches: its routes (not the default one) and its addresses."""
    ipr = _host()
    found: set[ipaddress.IPv4Network] = set()
    for msg in ipr.route("dump", family=socket.AF_INET):
        dst_len = msg["dst_len"]
        dst = msg.get_attr("RTA_DST")
        table = msg.get_attr("RTA_TABLE") or msg["table"]
        if not dst_len or dst is None or table != 254:  # the main table; the local one holds host addresses
            continue
        found.add(ipaddress.IPv4Network(f"{dst}/{dst_len}", strict=False))
    for msg in ipr.addr("dump", family=socket.AF_INET):
        addr = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
        if addr:
            found.add(ipaddress.IPv4Network(f"{addr}/{msg['prefixlen']}", strict=False))
    return sorted(found)
