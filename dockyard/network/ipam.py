"""Address management for bridge networks, as dockerd's default IPAM does it (pure: no I/O).

Vocabulary: a *pool* is a subnet a network may be given when its creator
names none; the *gateway* is the bridge's address, the subnet's first host;
an endpoint's address is the lowest free host address of the subnet (neither
the network nor the broadcast address, nor the gateway); its MAC is derived
from that address as dockerd 20.10 does (02:42 followed by the four octets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from ..errors import Conflict, InvalidArgument, Unavailable


def _pools() -> tuple[IPv4Network, ...]:
    # dockerd's defaults: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 cut into /20s.
    first = [IPv4Network(f"172.{n}.0.0/16") for n in range(17, 32)]
    second = list(IPv4Network("192.168.0.0/16").subnets(new_prefix=20))
    return tuple(first + second)


DEFAULT_POOLS: tuple[IPv4Network, ...] = _pools()

NO_POOL = ("could not find an available, non-overlapping IPv4 address pool among the defaults "
           "to assign to the network")


def choose_subnet(taken: Iterable[IPv4Network], avoid: Iterable[IPv4Network],
                  pools: Iterable[IPv4Network] = DEFAULT_POOLS) -> IPv4Network:
    """The first pool that overlaps neither a network in use (`taken`) nor one of the host's (`avoid`)."""
    busy = [n for n in (*taken, *avoid) if n.version == 4]
    for pool in pools:
        if not any(pool.overlaps(other) for other in busy):
            return pool
    raise Unavailable(NO_POOL)


def gateway_of(subnet: IPv4Network) -> IPv4Address:
    """The subnet's first host address (172.18.0.1 for 172.18.0.0/16)."""
    if subnet.prefixlen >= 31:
        return subnet.network_address
    return subnet.network_address + 1


def allocate(subnet: IPv4Network, gateway: IPv4Address | None, taken: set[IPv4Address],
             wanted: IPv4Address | None = None, name: str = "") -> IPv4Address:
    """An address for an endpoint: `wanted` if it is in the subnet and free, else the lowest free one.

    `name` (the network's) only appears in the error when the subnet is full.
    """
    subnet = ipaddress.ip_network(subnet, strict=False)
    gateway = ipaddress.ip_address(gateway) if gateway is not None else None
    taken = {ipaddress.ip_address(a) for a in taken}
    if wanted is not None:
        wanted = ipaddress.ip_address(wanted)
        if wanted.version != 4 or wanted not in subnet:
            raise InvalidArgument(f"Invalid address {wanted}: It does not belong to any of this network's subnets")
        if wanted in taken or wanted == gateway or not _usable(subnet, wanted):
            raise Conflict("Address already in use")
        return wanted
    first, last = _host_range(subnet)
    # Skip over the taken addresses in order instead of walking every host of a /8.
    candidate = first
    if gateway is not None:
        taken.add(gateway)
    for used in sorted(a for a in taken if a.version == 4 and a in subnet and int(a) >= first):
        if int(used) > candidate:
            break
        if int(used) == candidate:
            candidate += 1
    if candidate > last:
        raise Unavailable(f"no available IPv4 addresses on this network's address pools: {name or subnet}")
    return IPv4Address(candidate)


def _host_range(subnet: IPv4Network) -> tuple[int, int]:
    if subnet.prefixlen >= 31:  # RFC 3021: both addresses are hosts
        return int(subnet.network_address), int(subnet.broadcast_address)
    return int(subnet.network_address) + 1, int(subnet.broadcast_address) - 1


def _usable(subnet: IPv4Network, address: IPv4Address) -> bool:
    first, last = _host_range(subnet)
    return first <= int(address) <= last


def mac_for(ip: IPv4Address | str) -> str:
    """dockerd's MAC for an IPv4 address: 02:42 and the address's four octets (02:42:ac:11:00:02)."""
    octets = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)
