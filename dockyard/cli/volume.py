"""`dockyard volume`: create, ls, inspect, rm, prune — docker's flags, output and errors."""

from __future__ import annotations

from dockyard.cli.flags import BOOL, FORMAT_HELP, FORMAT_TABLE_HELP, LIST, STRING, Command, Flag
from dockyard.cli.image import confirm, inspect_each, key_values, parse_filter_flags, remove_each
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.main import Cli

VOLUME_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS",
                  "Scope": "SCOPE", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
                  "Availability": "AVAILABILITY", "Status": "STATUS"}
VOLUME_TABLE = "{{.Driver}}\t{{.Name}}"
# API 1.41 prunes named volumes too (docker's warning for servers older than 1.42).
PRUNE_WARNING = "WARNING! This will remove all local volumes not used by at least one container."


def run_create(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    name = opts["name"]
    if args:
        if name and name != args[0]:
            raise CliError("conflicting options: cannot specify a volume-name through both --name and as a "
                           "positional arg")
        name = args[0]
    body: dict[str, Any] = {"Driver": opts["driver"] or "local", "DriverOpts": key_values(opts["opt"], "option"),
                            "Labels": key_values(opts["label"], "label"), "Name": name}
    volume = cli.client().volume_create(body)
    cli.out.write(volume["Name"] + "\n")
    return 0


CREATE = Command(
    ("volume", "create"), "[OPTIONS] [VOLUME]", "Create a volume",
    [
        Flag("driver", "d", STRING, 'Specify volume driver name (default "local")'),
        Flag("label", "", LIST, "Set metadata for a volume", metavar="list"),
        Flag("name", "", STRING, "Specify volume name", hidden=True),
        Flag("opt", "o", LIST, "Set driver specific options (default map[])", metavar="map"),
    ],
    run_create, max_args=1,
)


def _context(volume: dict[str, Any]) -> Any:
    from dockyard.cli.format import human_size
    from dockyard.cli.template import Context

    usage = volume.get("UsageData") or {}
    labels = volume.get("Labels") or {}
    ctx = Context({
        "Driver": volume.get("Driver", ""), "Name": volume.get("Name", ""),
        "Mountpoint": volume.get("Mountpoint", ""), "Scope": volume.get("Scope", ""),
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "Links": str(usage["RefCount"]) if "RefCount" in usage else "N/A",
        "Size": human_size(usage["Size"]) if "Size" in usage else "N/A",
        "Group": "", "Availability": "", "Status": "",
    })
    ctx.type_name = "*formatter.volumeContext"
    return ctx


def run_ls(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.format import Formatter

    filters = parse_filter_flags(LS, opts["filter"])
    volumes = cli.client().volumes(filters) or []
    formatter = Formatter(opts["format"], VOLUME_TABLE, VOLUME_HEADERS, "{{.Name}}", opts["quiet"])
    cli.out.write(formatter.render([_context(v) for v in sorted(volumes, key=lambda v: v.get("Name", ""))]))
    return 0


LS = Command(
    ("volume", "ls"), "[OPTIONS]", "List volumes",
    [
        Flag("filter", "f", LIST, 'Provide filter values (e.g. "dangling=true")', metavar="filter"),
        Flag("format", "", STRING, FORMAT_TABLE_HELP),
        Flag("quiet", "q", BOOL, "Only display volume names"),
    ],
    run_ls, max_args=0, aliases=("volume ls", "volume list"),
)


def _as_decoded(volume: dict[str, Any]) -> dict[str, Any]:
    """docker executes the template on its decoded struct: a null map is an empty one there."""
    return dict(volume, Labels=volume.get("Labels") or {}, Options=volume.get("Options") or {})


def run_inspect(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    return inspect_each(cli, args, cli.client().volume_inspect, opts["format"], _as_decoded)


INSPECT = Command(
    ("volume", "inspect"), "[OPTIONS] VOLUME [VOLUME...]", "Display detailed information on one or more volumes",
    [Flag("format", "f", STRING, FORMAT_HELP)],
    run_inspect, min_args=1,
)


def run_rm(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    client = cli.client()
    return remove_each(cli, args, lambda name: client.volume_remove(name, force=opts["force"]))


RM = Command(
    ("volume", "rm"), "[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes",
    [Flag("force", "f", BOOL, "Force the removal of one or more volumes")],
    run_rm, min_args=1, aliases=("volume rm", "volume remove"),
)


def run_prune(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.format import human_size

    filters = parse_filter_flags(PRUNE, opts["filter"])
    if not opts["force"] and not confirm(cli, PRUNE_WARNING):
        return 0
    report = cli.client().volume_prune(filters) or {}
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        cli.out.write("Deleted Volumes:\n" + "".join(name + "\n" for name in deleted) + "\n")
    cli.out.write(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed', 0))}\n")
    return 0


PRUNE = Command(
    ("volume", "prune"), "[OPTIONS]", "Remove unused local volumes",
    [
        Flag("all", "a", BOOL, "Remove all unused volumes, not just anonymous ones"),
        Flag("filter", "", LIST, 'Provide filter values (e.g. "label=<label>")', metavar="filter"),
        Flag("force", "f", BOOL, "Do not prompt for confirmation"),
    ],
    run_prune, max_args=0,
)
