"""The network service: networks as dockerd shows them, and containers' places on them.

    <data-root>/networks/<id>.json     a network's record (dockerd's inspect document plus "Engine":
                                       its bridge interface), replaced atomically
    <exec-root>/netns/<container id>   a running container's network namespace (a bind mount)

Built in: `bridge` (the default network, a bridge named `dockyard0` on the
first free private subnet), `host` and `none`. User networks (`network
create`) are bridges of their own (`dy-<id12>`) with a name server: the
gateway address answers DNS for the names and aliases of the containers on
that network, and asks the host's servers for the rest.

An *endpoint* is a container's place on one network: its IPv4 address, MAC
and aliases. The container record keeps them in NetworkSettings.Networks
(addresses filled while it runs, cleared when it stops, as dockerd); this
service holds the running ones in memory (`_running`), which is all the
address management needs: an address is taken while a running endpoint
holds it. A start (`attach_all`, a worker thread) makes the namespace,
allocates and plugs a veth into each network's bridge; published ports
(`publish`, on the loop) are a userland proxy from the host's port to the
container's address; a stop undoes both.

The mechanisms (namespaces, links, firewall rules, the proxy, DNS) live in
dockyard/network; pyroute2 is imported on first use, never at start-up.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import jsonio
from ..errors import Conflict, EngineError, Forbidden, InvalidArgument, NotFound, NotSupported

log = logging.getLogger("dockyard.daemon")

BUILTIN = ("bridge", "host", "none")
DEFAULT_BRIDGE = "dockyard0"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")


def _now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def _write_atomic(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(jsonio.dumps(obj).encode())
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def _endpoint_template() -> dict:
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "", "EndpointID": "",
            "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}


class NetworkService:
    def __init__(self, data_root: str, exec_root: str, emit: Callable[..., Any], bridge: str = DEFAULT_BRIDGE):
        self.bridge = bridge
        self.root = os.path.join(data_root, "networks")
        self.netns_dir = os.path.join(exec_root, "netns")
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.makedirs(self.netns_dir, mode=0o711, exist_ok=True)
        self._emit = emit
        self._lock = threading.RLock()
        self._nets: dict[str, dict] = {}
        self._running: dict[str, dict[str, dict]] = {}  # network id -> container id -> endpoint
        self._ready: set[str] = set()  # bridges set up since this daemon started
        self._dns: dict[str, Any] = {}
        self.proxy = None
        self._published: dict[str, list[tuple[str, int, str]]] = {}
        self._ifaces: dict[tuple[str, str], int] = {}  # (container, network) -> its interface's number
        self.container_name: Callable[[str], str] = lambda cid: cid[:12]
        self.lookup_names: Callable[[str, str], list[str]] = lambda net_id, name: []
        for entry in os.listdir(self.root):
            if entry.endswith(".json"):
                try:
                    with open(os.path.join(self.root, entry), "rb") as f:
                        rec = jsonio.loads(f.read())
                    self._nets[rec["Id"]] = rec
                except (OSError, ValueError, KeyError):
                    log.warning("network record %s is unreadable; ignored", entry)
        self._ensure_builtins()

    # --- records -------------------------------------------------------------------------------------
    def _save(self, rec: dict) -> None:
        _write_atomic(os.path.join(self.root, rec["Id"] + ".json"), rec)

    def _new_record(self, name: str, driver: str, config: list[dict], options: dict, labels: dict,
                    internal: bool = False, attachable: bool = False, ipam_options: dict | None = None,
                    bridge: str = "") -> dict:
        return {"Name": name, "Id": os.urandom(32).hex(), "Created": _now(), "Scope": "local", "Driver": driver,
                "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": ipam_options, "Config": config},
                "Internal": internal, "Attachable": attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
                "ConfigOnly": False, "Options": options, "Labels": labels, "Engine": {"Bridge": bridge}}

    def _ensure_builtins(self) -> None:
        names = {rec["Name"] for rec in self._nets.values()}
        for rec in self._nets.values():
            if rec["Name"] == "bridge" and rec["Engine"].get("Bridge") != self.bridge:  # --bridge changed
                rec["Engine"]["Bridge"] = self.bridge
                rec["Options"]["com.docker.network.bridge.name"] = self.bridge
                self._save(rec)
        if "bridge" not in names:
            subnet = self._choose_subnet([])
            options = {"com.docker.network.bridge.default_bridge": "true",
                       "com.docker.network.bridge.enable_icc": "true",
                       "com.docker.network.bridge.enable_ip_masquerade": "true",
                       "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                       "com.docker.network.bridge.name": self.bridge,
                       "com.docker.network.driver.mtu": "1500"}
            rec = self._new_record("bridge", "bridge", [{"Subnet": str(subnet),
                                                         "Gateway": str(next(subnet.hosts()))}],
                                   options, {}, bridge=self.bridge)
            self._nets[rec["Id"]] = rec
            self._save(rec)
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in names:
                rec = self._new_record(name, driver, [], {}, {})
                self._nets[rec["Id"]] = rec
                self._save(rec)

    def _choose_subnet(self, taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
        from ..network.ipam import choose_subnet
        from ..network.links import routed_networks

        return choose_subnet(taken, routed_networks())

    def _subnets(self, exclude: str = "") -> list[ipaddress.IPv4Network]:
        out = []
        for rec in self._nets.values():
            if rec["Id"] == exclude:
                continue
            for cfg in rec["IPAM"].get("Config") or []:
                if cfg.get("Subnet"):
                    out.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
        return out

    def get(self, ref: str) -> dict:
        """A network by full id, name, or unique id prefix (dockerd's order)."""
        with self._lock:
            if ref in self._nets:
                return self._nets[ref]
            for rec in self._nets.values():
                if rec["Name"] == ref:
                    return rec
            found = [rec for rec in self._nets.values() if ref and rec["Id"].startswith(ref)]
            if len(found) == 1:
                return found[0]
        raise NotFound(f"network {ref} not found")

    def view(self, rec: dict) -> dict:
        out = {k: v for k, v in rec.items() if k != "Engine"}
        containers = {}
        for cid, ep in sorted(self._running.get(rec["Id"], {}).items()):
            containers[cid] = {"Name": self.container_name(cid), "EndpointID": ep["EndpointID"],
                               "MacAddress": ep["MacAddress"],
                               "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}", "IPv6Address": ""}
        out["Containers"] = containers
        return out

    # --- the API's verbs ---------------------------------------------------------------------------------
    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict]:
        filters = filters or {}
        for key in filters:
            if key not in ("name", "id", "driver", "label", "type", "scope", "dangling"):
                raise InvalidArgument(f"Invalid filter '{key}'")
        out = []
        with self._lock:
            recs = list(self._nets.values())
        for rec in sorted(recs, key=lambda r: r["Name"]):
            if filters.get("name") and not any(n in rec["Name"] for n in filters["name"]):
                continue
            if filters.get("id") and not any(rec["Id"].startswith(i) for i in filters["id"]):
                continue
            if filters.get("driver") and rec["Driver"] not in filters["driver"]:
                continue
            if filters.get("scope") and "local" not in filters["scope"]:
                continue
            if filters.get("type"):
                kind = "builtin" if rec["Name"] in BUILTIN else "custom"
                if kind not in filters["type"]:
                    continue
            labels = rec.get("Labels") or {}
            if not all(_label_holds(labels, c) for c in filters.get("label", [])):
                continue
            if filters.get("dangling"):
                dangling = filters["dangling"][0].lower() in ("true", "1")
                if (rec["Name"] not in BUILTIN and not self._running.get(rec["Id"])) != dangling:
                    continue
            out.append(self.view(rec))
        return out

    def create(self, body: dict) -> tuple[str, str]:
        name = body.get("Name")
        if not name or not isinstance(name, str):
            raise InvalidArgument("network name is required")
        if not _NAME.match(name):
            raise InvalidArgument(f'invalid network name "{name}": only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if body.get("EnableIPv6"):
            raise NotSupported("IPv6 networks are not supported yet")
        ipam = body.get("IPAM") or {}
        if (ipam.get("Driver") or "default") != "default":
            raise NotFound(f'plugin "{ipam["Driver"]}" not found')
        with self._lock:
            if any(rec["Name"] == name for rec in self._nets.values()):
                raise Conflict(f"network with name {name} already exists")
            config = self._ipam_config(ipam.get("Config") or [])
            rec = self._new_record(name, "bridge", config, dict(body.get("Options") or {}),
                                   dict(body.get("Labels") or {}), internal=bool(body.get("Internal")),
                                   attachable=bool(body.get("Attachable")),
                                   ipam_options=dict(ipam.get("Options") or {}))
            rec["Engine"]["Bridge"] = "dy-" + rec["Id"][:12]
            self._save(rec)
            self._nets[rec["Id"]] = rec
        self._emit("network", "create", rec["Id"], {"name": name, "type": "bridge"})
        return rec["Id"], ""

    def _ipam_config(self, requested: list[dict]) -> list[dict]:
        if len(requested) > 1:
            raise NotSupported("more than one IPv4 subnet per network is not supported yet")
        taken = self._subnets()
        if not requested or not requested[0].get("Subnet"):
            subnet = self._choose_subnet(taken)
            return [{"Subnet": str(subnet), "Gateway": str(next(subnet.hosts()))}]
        cfg = requested[0]
        try:
            subnet = ipaddress.ip_network(cfg["Subnet"], strict=False)
        except ValueError:
            raise InvalidArgument(f"invalid subnet {cfg['Subnet']}") from None
        if subnet.version != 4:
            raise NotSupported("IPv6 subnets are not supported yet")
        if subnet.num_addresses < 4:
            raise InvalidArgument(f"subnet {subnet} is too small")
        if any(subnet.overlaps(other) for other in taken):
            raise Forbidden("Pool overlaps with other one on this address space")
        gateway = cfg.get("Gateway") or str(next(subnet.hosts()))
        try:
            if ipaddress.ip_address(gateway) not in subnet:
                raise ValueError
        except ValueError:
            raise InvalidArgument(f"invalid gateway {gateway} for subnet {subnet}") from None
        out = {"Subnet": str(subnet), "Gateway": gateway}
        if cfg.get("IPRange"):
            out["IPRange"] = cfg["IPRange"]
        return [out]

    def remove(self, ref: str) -> None:
        rec = self.get(ref)
        if rec["Name"] in BUILTIN:
            raise Forbidden(f"{rec['Name']} is a pre-defined network and cannot be removed")
        with self._lock:
            if self._running.get(rec["Id"]):
                raise Forbidden(f"error while removing network: network {rec['Name']} id {rec['Id']} has active "
                                "endpoints")
            del self._nets[rec["Id"]]
            os.unlink(os.path.join(self.root, rec["Id"] + ".json"))
        self._teardown_bridge(rec)
        self._emit("network", "destroy", rec["Id"], {"name": rec["Name"], "type": "bridge"})

    def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        filters = filters or {}
        for key in filters:
            if key not in ("label", "label!", "until"):
                raise InvalidArgument(f"Invalid filter '{key}'")
        deleted = []
        with self._lock:
            candidates = [r for r in self._nets.values() if r["Name"] not in BUILTIN and not self._running.get(r["Id"])]
        for rec in candidates:
            labels = rec.get("Labels") or {}
            if not all(_label_holds(labels, c) for c in filters.get("label", [])):
                continue
            if any(_label_holds(labels, c) for c in filters.get("label!", [])):
                continue
            try:
                self.remove(rec["Id"])
            except EngineError:
                continue
            deleted.append(rec["Name"])
        return deleted

    # --- containers ------------------------------------------------------------------------------------
    @staticmethod
    def mode_network(host_config: dict) -> str | None:
        """The network a container's NetworkMode names ("bridge" for default), or None (host, none)."""
        mode = host_config.get("NetworkMode") or "default"
        if mode in ("host", "none"):
            return None
        if mode.startswith("container:"):
            raise NotSupported("joining another container's network (--network container:…) is not supported yet")
        return "bridge" if mode == "default" else mode

    def endpoints_at_create(self, host_config: dict, networking: dict | None) -> dict[str, dict]:
        """NetworkSettings.Networks of a new container: its primary network with the endpoint settings the
        client sent (aliases, a static address); addresses come at start. A network that does not exist is
        reported at start, as dockerd does."""
        name = self.mode_network(host_config)
        if name is None:
            mode = host_config.get("NetworkMode")
            return {mode: _endpoint_template()} if mode in ("host", "none") else {}
        configs = (networking or {}).get("EndpointsConfig") or {}
        if not isinstance(configs, dict):
            configs = {}
        given = configs.get(name) or configs.get(host_config.get("NetworkMode") or "") or {}
        try:
            rec = self.get(name)
        except NotFound:
            return {name: self._endpoint_settings(given if isinstance(given, dict) else {})}
        return {rec["Name"]: self.endpoint_for(rec, given if isinstance(given, dict) else {})}

    def endpoint_for(self, rec: dict, given: dict) -> dict:
        """A new endpoint on network `rec` from the client's EndpointSettings, refused as dockerd refuses."""
        endpoint = self._endpoint_settings(given)
        if rec["Name"] == "bridge" and (endpoint["IPAMConfig"] or {}).get("IPv4Address"):
            raise InvalidArgument("user specified IP address is supported on user defined networks only")
        if rec["Name"] == "bridge" and endpoint["Aliases"]:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        if rec["Name"] in ("host", "none"):
            raise InvalidArgument("container cannot be disconnected from host network or connected to host network")
        endpoint["NetworkID"] = rec["Id"]
        return endpoint

    @staticmethod
    def _endpoint_settings(given: dict) -> dict:
        endpoint = _endpoint_template()
        ipam = given.get("IPAMConfig") or None
        if ipam and (ipam.get("IPv4Address") or ipam.get("IPv6Address") or ipam.get("LinkLocalIPs")):
            endpoint["IPAMConfig"] = {k: v for k, v in ipam.items() if v}
            if ipam.get("IPv4Address"):
                try:
                    ipaddress.IPv4Address(ipam["IPv4Address"])
                except ValueError:
                    raise InvalidArgument(f"invalid IPv4 address: {ipam['IPv4Address']}") from None
        aliases = [a for a in given.get("Aliases") or [] if a]
        endpoint["Aliases"] = aliases or None
        if given.get("Links"):
            endpoint["Links"] = given["Links"]
        return endpoint

    def netns_path(self, cid: str) -> str:
        return os.path.join(self.netns_dir, cid)

    def attach_all(self, cid: str, hostname: str, networks: dict[str, dict]) -> list[str]:
        """Start of a container on bridge networks (worker thread): its namespace, an endpoint on each
        network; `networks` (the record's NetworkSettings.Networks) is filled in. Returns /etc/hosts lines."""
        from ..network import netns

        path = self.netns_path(cid)
        netns.create(path)
        done: list[str] = []
        try:
            lines = []
            for index, (name, endpoint) in enumerate(list(networks.items())):
                rec = self.get(endpoint.get("NetworkID") or name)
                self._attach(cid, rec, endpoint, index, primary=index == 0)
                done.append(rec["Id"])
                if rec["Name"] != name:  # renamed meanwhile, or given by id
                    networks[rec["Name"]] = networks.pop(name)
                lines.append(f"{endpoint['IPAddress']}\t{hostname}")
            return lines
        except BaseException:
            for net_id in done:
                self._release(net_id, cid)
            netns.remove(path)
            for endpoint in networks.values():
                _clear(endpoint)
            raise

    def attach_one(self, cid: str, rec: dict, endpoint: dict) -> None:
        """`network connect` of a running container (worker thread): one more interface at once."""
        used = {i for (c, _), i in self._ifaces.items() if c == cid}
        self._attach(cid, rec, endpoint, next(i for i in range(len(used) + 1) if i not in used), primary=not used)

    def detach_one(self, cid: str, endpoint: dict) -> None:
        """`network disconnect` of a running container (worker thread)."""
        from ..network import links

        net_id = endpoint.get("NetworkID", "")
        index = self._ifaces.pop((cid, net_id), None)
        if index is not None:
            links.detach(_host_ifname(cid, index))
        self._release(net_id, cid)
        self._emit("network", "disconnect", net_id, {"container": cid, "name": self._nets.get(net_id, {}).get(
            "Name", ""), "type": "bridge"})
        _clear(endpoint)

    def _attach(self, cid: str, rec: dict, endpoint: dict, index: int, primary: bool = True) -> None:
        from ..network import ipam, links

        subnet = ipaddress.ip_network(rec["IPAM"]["Config"][0]["Subnet"], strict=False)
        gateway = ipaddress.ip_address(rec["IPAM"]["Config"][0]["Gateway"])
        self._ensure_bridge(rec)
        wanted = (endpoint.get("IPAMConfig") or {}).get("IPv4Address")
        with self._lock:
            running = self._running.setdefault(rec["Id"], {})
            taken = {ipaddress.ip_address(ep["IPAddress"]) for ep in running.values()}
            address = ipam.allocate(subnet, gateway, taken, ipaddress.ip_address(wanted) if wanted else None)
            endpoint.update(NetworkID=rec["Id"], EndpointID=os.urandom(32).hex(), Gateway=str(gateway),
                            IPAddress=str(address), IPPrefixLen=subnet.prefixlen, MacAddress=ipam.mac_for(address))
            running[cid] = endpoint
        try:
            links.attach(self.netns_path(cid), rec["Engine"]["Bridge"], _host_ifname(cid, index),
                         f"{address}/{subnet.prefixlen}", str(gateway) if primary else None,
                         endpoint["MacAddress"], ifname=f"eth{index}")
        except BaseException:
            self._release(rec["Id"], cid)
            raise
        with self._lock:
            self._ifaces[(cid, rec["Id"])] = index
        if rec["Name"] != "bridge":
            self._emit("network", "connect", rec["Id"], {"container": cid, "name": rec["Name"], "type": "bridge"})
        else:
            self._emit("network", "connect", rec["Id"], {"container": cid, "name": "bridge", "type": "bridge"})

    def _ensure_bridge(self, rec: dict) -> None:
        from ..network import firewall, links

        with self._lock:
            if rec["Id"] in self._ready:
                return
            cfg = rec["IPAM"]["Config"][0]
            prefix = ipaddress.ip_network(cfg["Subnet"], strict=False).prefixlen
            links.ensure_bridge(rec["Engine"]["Bridge"], f"{cfg['Gateway']}/{prefix}")
            firewall.setup_bridge(rec["Engine"]["Bridge"], cfg["Subnet"], internal=bool(rec.get("Internal")))
            self._ready.add(rec["Id"])

    def _teardown_bridge(self, rec: dict) -> None:
        from ..network import firewall, links

        server = self._dns.pop(rec["Id"], None)
        if server is not None:
            server.close()
        cfg = (rec["IPAM"].get("Config") or [{}])[0]
        try:
            firewall.teardown_bridge(rec["Engine"]["Bridge"], cfg.get("Subnet", ""))
            links.remove_bridge(rec["Engine"]["Bridge"])
        except Exception as err:  # noqa: BLE001 - the record is gone; say what could not be undone
            log.warning("removing bridge %s: %s", rec["Engine"]["Bridge"], err)
        with self._lock:
            self._ready.discard(rec["Id"])

    def _release(self, net_id: str, cid: str) -> None:
        with self._lock:
            self._running.get(net_id, {}).pop(cid, None)
            self._ifaces.pop((cid, net_id), None)

    def detach_all(self, cid: str, networks: dict[str, dict]) -> None:
        """After a container stopped (worker thread): its namespace goes (and the veths with it), its
        addresses are free again."""
        from ..network import netns

        # The veths go with the namespace, which the kernel tears down a little later: deleting them here
        # would wait for that (~20 ms) on the path of every `run --rm`.
        for endpoint in networks.values():
            net_id = endpoint.get("NetworkID")
            if net_id and cid in self._running.get(net_id, {}):
                self._release(net_id, cid)
                name = self._nets.get(net_id, {}).get("Name", "")
                self._emit("network", "disconnect", net_id, {"container": cid, "name": name, "type": "bridge"})
            _clear(endpoint)
        netns.remove(self.netns_path(cid))

    def adopt(self, cid: str, networks: dict[str, dict]) -> None:
        """A container found running after a restart of the engine: its addresses are taken again."""
        with self._lock:
            for index, endpoint in enumerate(networks.values()):
                if endpoint.get("NetworkID") and endpoint.get("IPAddress"):
                    self._running.setdefault(endpoint["NetworkID"], {})[cid] = endpoint
                    self._ifaces[(cid, endpoint["NetworkID"])] = index

    # --- on the loop: published ports and name servers ------------------------------------------------------
    async def publish(self, cid: str, config: dict, host_config: dict, networks: dict[str, dict]) -> dict:
        """The container's published ports, proxied from the host to its address on its first network;
        NetworkSettings.Ports as dockerd shows it (exposed ports without a binding are null)."""
        bindings = {k: list(v or [{}]) for k, v in (host_config.get("PortBindings") or {}).items()}
        exposed = dict(config.get("ExposedPorts") or {})
        if host_config.get("PublishAllPorts"):
            for key in exposed:
                bindings.setdefault(key, [{}])
        target = next((ep["IPAddress"] for ep in networks.values() if ep.get("IPAddress")), "")
        ports: dict[str, list[dict] | None] = {}
        if not bindings:
            return {k: None for k in exposed} if target else {}
        if self.proxy is None:
            from ..network.portproxy import PortProxy

            self.proxy = PortProxy()
        done: list[tuple[str, int, str]] = []
        try:
            for key, entries in bindings.items():
                port, _, proto = key.partition("/")
                proto = proto or "tcp"
                for entry in entries:
                    host_ip = entry.get("HostIp") or "0.0.0.0"
                    bound = await self._publish_one(host_ip, entry.get("HostPort") or "", proto, target, int(port))
                    done.append((host_ip, bound, proto))
                    ports.setdefault(f"{port}/{proto}", []).append({"HostIp": host_ip, "HostPort": str(bound)})
        except BaseException:
            for host_ip, bound, proto in done:
                await self.proxy.unpublish(host_ip, bound, proto)
            raise
        self._published[cid] = done
        for key in exposed:
            ports.setdefault(key, None)
        return ports

    async def _publish_one(self, host_ip: str, host_port: str, proto: str, target: str, port: int) -> int:
        low, _, high = host_port.partition("-")
        if not high:
            return await self.proxy.publish(host_ip, int(low) if low else 0, proto, target, port)
        last: EngineError | None = None
        for candidate in range(int(low), int(high) + 1):  # a range: the first free port in it
            try:
                return await self.proxy.publish(host_ip, candidate, proto, target, port)
            except Conflict as err:
                last = err
        raise last or Conflict(f"Bind for {host_ip}:{host_port} failed: port is already allocated")

    async def unpublish(self, cid: str) -> None:
        for host_ip, bound, proto in self._published.pop(cid, []):
            try:
                await self.proxy.unpublish(host_ip, bound, proto)
            except Exception as err:  # noqa: BLE001
                log.warning("unpublishing %s:%s/%s: %s", host_ip, bound, proto, err)

    async def serve_names(self, networks: dict[str, dict]) -> None:
        """A name server on the gateway of each user network the container is on (started once)."""
        for endpoint in networks.values():
            rec = self._nets.get(endpoint.get("NetworkID") or "")
            if rec is None or rec["Name"] in BUILTIN or rec["Id"] in self._dns:
                continue
            from ..network.dns import DnsServer

            server = DnsServer()
            gateway = rec["IPAM"]["Config"][0]["Gateway"]
            net_id = rec["Id"]
            try:
                await server.serve(gateway, 53, lambda name, net_id=net_id: self.lookup_names(net_id, name))
            except OSError as err:
                log.warning("no name server on %s for network %s: %s", gateway, rec["Name"], err)
                continue
            self._dns[net_id] = server

    def resolv_conf(self, networks: dict[str, dict], host_text: str) -> str | None:
        """On a user network the container asks the network's gateway (our name server) first."""
        for endpoint in networks.values():
            rec = self._nets.get(endpoint.get("NetworkID") or "")
            if rec is not None and rec["Name"] not in BUILTIN:
                kept = [line for line in host_text.splitlines()
                        if line.split()[:1] and line.split()[0] in ("search", "options")]
                return "\n".join([f"nameserver {rec['IPAM']['Config'][0]['Gateway']}", *kept]) + "\n"
        return None


def _clear(endpoint: dict) -> None:
    endpoint.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")


def _host_ifname(cid: str, index: int) -> str:
    return f"veth{cid[:9]}{index:x}"[:15]


def _label_holds(labels: dict, condition: str) -> bool:
    key, eq, value = condition.partition("=")
    return key in labels and (not eq or labels[key] == value)
