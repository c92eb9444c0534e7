"""`dockyard inspect`: low-level information on any object, by name or ID.

Like docker, it tries the kinds in order (containers first, then images) and
takes the first the engine knows; `--type` restricts it to one kind.
Networks add their lookup to `KINDS` when they arrive.
"""

from __future__ import annotations

from dockyard.cli.flags import BOOL, FORMAT_HELP, STRING, Command, Flag
from dockyard.cli.image import print_inspected
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.main import Cli

# kind -> API path of its inspect endpoint
KINDS = {
    "container": "/containers/{}/json",
    "image": "/images/{}/json",
    "network": "/networks/{}",
    "volume": "/volumes/{}",
}
DOCKER_KINDS = ("config", "container", "image", "network", "node", "plugin", "secret", "service", "task", "volume")


def run_inspect(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import ApiError, quote

    kind = opts["type"]
    if kind and kind not in DOCKER_KINDS:
        listed = ", ".join(f'"{k}"' for k in DOCKER_KINDS)
        raise CliError(f'unknown type: "{kind}": must be one of {listed}')
    kinds = [kind] if kind else list(KINDS)
    client = cli.client()
    found: list[Any] = []
    errors: list[str] = []
    for name in args:
        last_error: ApiError | None = None
        for k in kinds:
            path = KINDS.get(k)
            if path is None:
                last_error = ApiError(404, f"No such {k}: {name}")
                break
            params = [("size", "1")] if opts["size"] and k == "container" else None
            try:
                found.append(client.get_json(path.format(quote(name, "/:@")), params))
                last_error = None
                break
            except ApiError as exc:
                if exc.status != 404:
                    raise
                last_error = exc
        if last_error is not None:
            errors.append(f"Error response from daemon: {last_error.message}" if kind
                          else f"Error: No such object: {name}")
    print_inspected(cli, found, opts["format"])
    if errors:
        raise CliError("\n".join(errors))
    return 0


INSPECT = Command(
    ("inspect",), "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on Dockyard objects",
    [
        Flag("format", "f", STRING, FORMAT_HELP),
        Flag("size", "s", BOOL, "Display total file sizes if the type is container"),
        Flag("type", "", STRING, "Only inspect objects of the given type"),
    ],
    run_inspect, min_args=1,
)
