"""IPAM: dockerd's default pools, subnet choice, gateway, address allocation and MACs."""

from __future__ import annotations

from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

import pytest

from dockyard.errors import Conflict, InvalidArgument, Unavailable
from dockyard.network import ipam


def test_default_pools_are_dockerds():
    pools = ipam.DEFAULT_POOLS
    assert pools[0] == N("172.17.0.0/16")
    assert pools[14] == N("172.31.0.0/16")
    assert pools[15] == N("192.168.0.0/20")
    assert pools[16] == N("192.168.16.0/20")
    assert pools[-1] == N("192.168.240.0/20")
    assert len(pools) == 15 + 16


def test_choose_subnet_first_free():
    assert ipam.choose_subnet([], []) == N("172.17.0.0/16")
    assert ipam.choose_subnet([N("172.17.0.0/16")], []) == N("172.18.0.0/16")
    # the host's routes count as much as other networks
    assert ipam.choose_subnet([N("172.17.0.0/16")], [N("172.18.5.0/24")]) == N("172.19.0.0/16")
    # a wide host route covers several pools
    assert ipam.choose_subnet([], [N("172.16.0.0/12")]) == N("192.168.0.0/20")
    # a narrow network inside a pool takes the whole pool out
    assert ipam.choose_subnet([N("172.17.3.0/24")], []) == N("172.18.0.0/16")


def test_choose_subnet_holes_are_filled_first():
    taken = [N(f"172.{n}.0.0/16") for n in range(17, 32) if n != 20]
    assert ipam.choose_subnet(taken, []) == N("172.20.0.0/16")


def test_choose_subnet_all_taken():
    with pytest.raises(Unavailable, match="could not find an available, non-overlapping IPv4 address pool"):
        ipam.choose_subnet([N("172.16.0.0/12")], [N("192.168.0.0/16")])


def test_choose_subnet_custom_pools_and_ipv6_ignored():
    pools = [N("10.10.0.0/24"), N("10.10.1.0/24")]
    from ipaddress import IPv6Network
    assert ipam.choose_subnet([IPv6Network("fd00::/64"), N("10.10.0.0/25")], [], pools) == N("10.10.1.0/24")


def test_gateway_of():
    assert ipam.gateway_of(N("172.18.0.0/16")) == A("172.18.0.1")
    assert ipam.gateway_of(N("192.168.16.0/20")) == A("192.168.16.1")


def test_allocate_lowest_free():
    subnet, gw = N("172.18.0.0/16"), A("172.18.0.1")
    assert ipam.allocate(subnet, gw, set()) == A("172.18.0.2")
    assert ipam.allocate(subnet, gw, {A("172.18.0.2"), A("172.18.0.3")}) == A("172.18.0.4")
    assert ipam.allocate(subnet, gw, {A("172.18.0.3")}) == A("172.18.0.2")
    # addresses outside the subnet do not matter
    assert ipam.allocate(subnet, gw, {A("10.0.0.2")}) == A("172.18.0.2")
    # a gateway that is not the first host
    assert ipam.allocate(N("10.1.0.0/24"), A("10.1.0.254"), set()) == A("10.1.0.1")


def test_allocate_crosses_octets():
    subnet, gw = N("172.18.0.0/16"), A("172.18.0.1")
    taken = {A(int(A("172.18.0.2")) + i) for i in range(254)}
    assert ipam.allocate(subnet, gw, taken) == A("172.18.1.0")


def test_allocate_full():
    subnet, gw = N("10.0.0.0/30"), A("10.0.0.1")
    assert ipam.allocate(subnet, gw, set()) == A("10.0.0.2")
    with pytest.raises(Unavailable) as info:
        ipam.allocate(subnet, gw, {A("10.0.0.2")}, name="mynet")
    assert str(info.value) == "no available IPv4 addresses on this network's address pools: mynet"


def test_allocate_wanted():
    subnet, gw = N("172.18.0.0/16"), A("172.18.0.1")
    assert ipam.allocate(subnet, gw, set(), A("172.18.5.9")) == A("172.18.5.9")
    for busy in (A("172.18.0.1"), A("172.18.0.0"), A("172.18.255.255")):
        with pytest.raises(Conflict, match="^Address already in use$"):
            ipam.allocate(subnet, gw, set(), busy)
    with pytest.raises(Conflict, match="^Address already in use$"):
        ipam.allocate(subnet, gw, {A("172.18.0.7")}, A("172.18.0.7"))
    with pytest.raises(InvalidArgument, match="does not belong"):
        ipam.allocate(subnet, gw, set(), A("10.0.0.7"))


def test_allocate_accepts_strings():
    assert ipam.allocate("172.18.0.0/16", "172.18.0.1", {"172.18.0.2"}) == A("172.18.0.3")


def test_mac_for():
    assert ipam.mac_for(A("172.17.0.2")) == "02:42:ac:11:00:02"
    assert ipam.mac_for("192.168.16.255") == "02:42:c0:a8:10:ff"
