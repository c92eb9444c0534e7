"""`dockyard network`: create, ls, inspect, rm, connect, disconnect, prune — docker's flags and output."""

from __future__ import annotations

from dockyard.cli.flags import BOOL, FORMAT_HELP, FORMAT_TABLE_HELP, LIST, STRING, Command, Flag
from dockyard.cli.image import confirm, inspect_each, key_values, parse_filter_flags, remove_each
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.main import Cli

NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                   "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
NETWORK_TABLE = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
PRUNE_WARNING = "WARNING! This will remove all custom networks not used by at least one container."


def run_create(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    subnets, gateways, ranges = opts["subnet"], opts["gateway"], opts["ip_range"]
    if len(gateways) > len(subnets) or len(ranges) > len(subnets):
        raise CliError("every ip-range or gateway must have a corresponding subnet")
    config = []
    for i, subnet in enumerate(subnets):
        entry = {"Subnet": subnet}
        if i < len(gateways):
            entry["Gateway"] = gateways[i]
        if i < len(ranges):
            entry["IPRange"] = ranges[i]
        config.append(entry)
    body = {
        "Name": args[0], "Driver": opts["driver"] or "bridge", "Scope": opts["scope"], "EnableIPv6": opts["ipv6"],
        "IPAM": {"Driver": opts["ipam_driver"] or "default", "Options": key_values(opts["ipam_opt"], "IPAM option"),
                 "Config": config},
        "Internal": opts["internal"], "Attachable": opts["attachable"], "Ingress": False, "ConfigOnly": False,
        "ConfigFrom": None, "Options": key_values(opts["opt"], "option"), "Labels": key_values(opts["label"], "label"),
        "CheckDuplicate": True,
    }
    reply = cli.client().post_json("/networks/create", None, body)
    cli.out.write(reply["Id"] + "\n")
    return 0


CREATE = Command(
    ("network", "create"), "[OPTIONS] NETWORK", "Create a network",
    [
        Flag("attachable", "", BOOL, "Enable manual container attachment"),
        Flag("driver", "d", STRING, 'Driver to manage the Network (default "bridge")'),
        Flag("gateway", "", LIST, "IPv4 or IPv6 Gateway for the master subnet", metavar="strings"),
        Flag("internal", "", BOOL, "Restrict external access to the network"),
        Flag("ip-range", "", LIST, "Allocate container ip from a sub-range", metavar="strings"),
        Flag("ipam-driver", "", STRING, 'IP Address Management Driver (default "default")'),
        Flag("ipam-opt", "", LIST, "Set IPAM driver specific options (default map[])", metavar="map"),
        Flag("ipv6", "", BOOL, "Enable IPv6 networking"),
        Flag("label", "", LIST, "Set metadata on a network", metavar="list"),
        Flag("opt", "o", LIST, "Set driver specific options (default map[])", metavar="map"),
        Flag("scope", "", STRING, "Control the network's scope"),
        Flag("subnet", "", LIST, "Subnet in CIDR format that represents a network segment", metavar="strings"),
    ],
    run_create, min_args=1, max_args=1,
)


def _context(net: dict[str, Any], trunc: bool) -> Any:
    from dockyard.cli.template import Context

    labels = net.get("Labels") or {}
    ctx = Context({
        "ID": net["Id"][:12] if trunc else net["Id"], "Name": net.get("Name", ""), "Driver": net.get("Driver", ""),
        "Scope": net.get("Scope", ""), "IPv6": str(bool(net.get("EnableIPv6"))).lower(),
        "Internal": str(bool(net.get("Internal"))).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()), "CreatedAt": net.get("Created", ""),
    })
    ctx.type_name = "*formatter.networkContext"
    return ctx


def run_ls(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.format import Formatter
    from dockyard.client.api import filters_param

    filters = parse_filter_flags(LS, opts["filter"])
    params = [("filters", filters_param(filters))] if filters else None
    networks = cli.client().get_json("/networks", params) or []
    formatter = Formatter(opts["format"], NETWORK_TABLE, NETWORK_HEADERS, "{{.ID}}", opts["quiet"])
    trunc = not opts["no_trunc"]
    cli.out.write(formatter.render([_context(n, trunc) for n in sorted(networks, key=lambda n: n.get("Name", ""))]))
    return 0


LS = Command(
    ("network", "ls"), "[OPTIONS]", "List networks",
    [
        Flag("filter", "f", LIST, 'Provide filter values (e.g. "driver=bridge")', metavar="filter"),
        Flag("format", "", STRING, FORMAT_TABLE_HELP),
        Flag("no-trunc", "", BOOL, "Do not truncate the output"),
        Flag("quiet", "q", BOOL, "Only display network IDs"),
    ],
    run_ls, max_args=0, aliases=("network ls", "network list"),
)


def run_inspect(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import quote

    client = cli.client()
    return inspect_each(cli, args, lambda name: client.get_json(f"/networks/{quote(name)}"), opts["format"])


INSPECT = Command(
    ("network", "inspect"), "[OPTIONS] NETWORK [NETWORK...]",
    "Display detailed information on one or more networks",
    [Flag("format", "f", STRING, FORMAT_HELP), Flag("verbose", "v", BOOL, "Verbose output for diagnostics")],
    run_inspect, min_args=1,
)


def run_rm(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import quote

    client = cli.client()
    return remove_each(cli, args, lambda name: client.request("DELETE", f"/networks/{quote(name)}").read(),
                       ignore_missing=opts["force"])


RM = Command(
    ("network", "rm"), "NETWORK [NETWORK...]", "Remove one or more networks",
    [Flag("force", "f", BOOL, "Do not error if the network does not exist")],
    run_rm, min_args=1, aliases=("network rm", "network remove"),
)


def run_connect(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import quote

    endpoint: dict[str, Any] = {"Aliases": opts["alias"] or [], "Links": opts["link"] or None}
    if opts["ip"] or opts["ip6"] or opts["link_local_ip"]:
        endpoint["IPAMConfig"] = {"IPv4Address": opts["ip"], "IPv6Address": opts["ip6"],
                                  "LinkLocalIPs": opts["link_local_ip"] or None}
    if opts["driver_opt"]:
        endpoint["DriverOpts"] = key_values(opts["driver_opt"], "driver option")
    cli.client().post_json(f"/networks/{quote(args[0])}/connect", None,
                           {"Container": args[1], "EndpointConfig": endpoint})
    return 0


CONNECT = Command(
    ("network", "connect"), "[OPTIONS] NETWORK CONTAINER", "Connect a container to a network",
    [
        Flag("alias", "", LIST, "Add network-scoped alias for the container", metavar="strings"),
        Flag("driver-opt", "", LIST, "driver options for the network", metavar="strings"),
        Flag("ip", "", STRING, "IPv4 address (e.g., \"172.30.100.104\")"),
        Flag("ip6", "", STRING, "IPv6 address (e.g., \"2001:db8::33\")"),
        Flag("link", "", LIST, "Add link to another container", metavar="list"),
        Flag("link-local-ip", "", LIST, "Add a link-local address for the container", metavar="strings"),
    ],
    run_connect, min_args=2, max_args=2,
)


def run_disconnect(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import quote

    cli.client().post_json(f"/networks/{quote(args[0])}/disconnect", None,
                           {"Container": args[1], "Force": opts["force"]})
    return 0


DISCONNECT = Command(
    ("network", "disconnect"), "[OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network",
    [Flag("force", "f", BOOL, "Force the container to disconnect from a network")],
    run_disconnect, min_args=2, max_args=2,
)


def run_prune(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import filters_param

    filters = parse_filter_flags(PRUNE, opts["filter"])
    if not opts["force"] and not confirm(cli, PRUNE_WARNING):
        return 0
    params = [("filters", filters_param(filters))] if filters else None
    report = cli.client().post_json("/networks/prune", params) or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        cli.out.write("Deleted Networks:\n" + "".join(name + "\n" for name in deleted))
    return 0


PRUNE = Command(
    ("network", "prune"), "[OPTIONS]", "Remove all unused networks",
    [
        Flag("filter", "", LIST, 'Provide filter values (e.g. "until=<timestamp>")', metavar="filter"),
        Flag("force", "f", BOOL, "Do not prompt for confirmation"),
    ],
    run_prune, max_args=0,
)
