"""Image commands: images/ls, inspect, rm/rmi, tag, history, prune, import, save, load.

Rows for `images` and `history` are template contexts with docker's field
names (`{{.ID}}`, `{{.Repository}}`, `{{.CreatedSince}}`), rendered with
docker's default tables unless `--format` says otherwise.
"""

from __future__ import annotations

import sys

from dockyard.cli.flags import BOOL, FORMAT_HELP, FORMAT_TABLE_HELP, LIST, STRING, Command, Flag, UsageError
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.main import Cli


def short_id(image_id: str) -> str:
    """Docker's TruncateID: drop the algorithm, keep 12 characters."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


def parse_filter_flags(command: Command, values: list[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for value in values:
        key, eq, arg = value.partition("=")
        if not eq:
            flag = next(f for f in command.flags if f.long == "filter")
            names = f"-{flag.short}, --filter" if flag.short else "--filter"
            raise UsageError(f'invalid argument "{value}" for "{names}" flag: '
                             "bad format of filter (expected name=value)", command)
        filters.setdefault(key.strip().lower(), []).append(arg)
    return filters


# --- images / image ls ------------------------------------------------------------------

IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
    "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}
IMAGE_TABLE = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGE_TABLE_DIGESTS = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def _split_ref(ref: str) -> tuple[str, str]:
    """`repo:tag` or `repo@digest` -> (repo, tag-or-digest); a registry port is not a tag."""
    at = ref.find("@")
    if at >= 0:
        return ref[:at], ref[at + 1:]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, ""


def image_rows(image: dict[str, Any], digests: bool) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) rows for one image, as docker's image formatter expands them."""
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    refs = [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
    if not tags and not refs:
        return [("<none>", "<none>", "<none>")]
    by_repo_tags: dict[str, list[str]] = {}
    for ref in tags:
        repo, tag = _split_ref(ref)
        by_repo_tags.setdefault(repo, []).append(tag)
    by_repo_digests: dict[str, list[str]] = {}
    for ref in refs:
        repo, digest = _split_ref(ref)
        by_repo_digests.setdefault(repo, []).append(digest)
    rows = []
    for repo, repo_tags in by_repo_tags.items():
        repo_digests = by_repo_digests.pop(repo, [])
        for tag in repo_tags:
            if digests and repo_digests:
                rows.extend((repo, tag, d) for d in repo_digests)
            else:
                rows.append((repo, tag, "<none>"))
    for repo, repo_digests in by_repo_digests.items():
        if digests:
            rows.extend((repo, "<none>", d) for d in repo_digests)
        else:
            rows.append((repo, "<none>", ""))
    return rows


def image_context(image: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool, now: float) -> Any:
    from dockyard.cli.format import go_time, human_size, time_ago
    from dockyard.cli.template import Context

    size = image.get("Size", 0)
    shared = image.get("SharedSize", -1)
    virtual = image.get("VirtualSize", size)
    containers = image.get("Containers", -1)
    created = image.get("Created", 0)
    ctx = Context({
        "Containers": "N/A" if containers == -1 else str(containers),
        "CreatedAt": go_time(created),
        "CreatedSince": time_ago(created, now),
        "Digest": digest,
        "ID": short_id(image["Id"]) if trunc else image["Id"],
        "Repository": repo,
        "SharedSize": "N/A" if shared == -1 else human_size(shared),
        "Size": human_size(size, 3),
        "Tag": tag,
        "UniqueSize": "N/A" if size == -1 or shared == -1 else human_size(size - shared),
        "VirtualSize": human_size(virtual),
    })
    ctx.type_name = "*formatter.imageContext"
    return ctx


def _ls_fast(images: list[dict[str, Any]], trunc: bool, digests: bool, quiet: bool) -> str:
    """The default table (and -q) without the template engine: the benchmarked path."""
    from dockyard.cli.format import human_size, tabwrite, time_ago

    if quiet:
        return "".join((short_id(img["Id"]) if trunc else img["Id"]) + "\n"
                       for img in images for _ in image_rows(img, digests))
    import time

    now = time.time()
    header = "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE" if digests else \
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE"
    lines = [header]
    for img in images:
        image_id = short_id(img["Id"]) if trunc else img["Id"]
        since = time_ago(img.get("Created", 0), now)
        size = human_size(img.get("Size", 0), 3)
        for repo, tag, digest in image_rows(img, digests):
            cells = (repo, tag, digest, image_id, since, size) if digests else (repo, tag, image_id, since, size)
            lines.append("\t".join(cells))
    return tabwrite(lines)


def run_ls(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    filters = parse_filter_flags(LS, opts["filter"])
    if args:
        filters.setdefault("reference", []).append(args[0])
    fmt = opts["format"]
    images = cli.client().images(all=opts["all"], filters=filters, digests=opts["digests"])
    trunc = not opts["no_trunc"]
    if fmt in ("", "table"):
        cli.out.write(_ls_fast(images, trunc, opts["digests"], opts["quiet"]))
        return 0
    import time

    from dockyard.cli.format import Formatter

    if fmt.startswith("table") and opts["digests"] and "{{.Digest}}" not in fmt:
        fmt += "\t{{.Digest}}"
    formatter = Formatter(fmt, IMAGE_TABLE, IMAGE_HEADERS, "{{.ID}}", opts["quiet"])
    now = time.time()
    rows = [image_context(img, repo, tag, digest, trunc, now)
            for img in images for repo, tag, digest in image_rows(img, opts["digests"])]
    cli.out.write(formatter.render(rows))
    return 0


LS = Command(
    ("images",), "[OPTIONS] [REPOSITORY[:TAG]]", "List images",
    [
        Flag("all", "a", BOOL, "Show all images (default hides intermediate images)"),
        Flag("digests", "", BOOL, "Show digests"),
        Flag("filter", "f", LIST, "Filter output based on conditions provided", metavar="filter"),
        Flag("format", "", STRING, FORMAT_TABLE_HELP),
        Flag("no-trunc", "", BOOL, "Don't truncate output"),
        Flag("quiet", "q", BOOL, "Only show image IDs"),
    ],
    run_ls, max_args=1, aliases=("image ls", "image list", "images"),
)


# --- inspect -------------------------------------------------------------------------------


def print_inspected(cli: Cli, items: list[Any], fmt: str) -> None:
    """docker's inspect output: indented JSON list, compact with `json`, or a template per item."""
    import json

    if fmt == "":
        text = json.dumps(items, indent=4, ensure_ascii=False) if items else "[]"
        cli.out.write(text + "\n")
    elif fmt == "json":
        cli.out.write(json.dumps(items, separators=(",", ":"), ensure_ascii=False) + "\n")
    else:
        from dockyard.cli.template import Template, TemplateError

        template = Template(fmt.replace("\\t", "\t").replace("\\n", "\n"))
        for item in items:
            try:
                cli.out.write(template.execute(item) + "\n")
            except TemplateError:
                cli.out.write("\n")
                raise


def inspect_each(cli: Cli, names: list[str], fetch: Any, fmt: str, prepare: Any = None) -> int:
    """`<noun> inspect`: what `fetch(name)` answers for each name, the errors after (status 1 if any);
    `prepare` adjusts the documents before a template sees them."""
    from dockyard.client.api import ApiError

    found: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(fetch(name))
        except ApiError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
    if prepare is not None and fmt not in ("", "json"):
        found = [prepare(item) for item in found]
    print_inspected(cli, found, fmt)
    if errors:
        raise CliError("\n".join(errors))
    return 0


def remove_each(cli: Cli, names: list[str], remove: Any, ignore_missing: bool = False) -> int:
    """`<noun> rm`: `remove(name)` for each name, the name printed when it went, the errors after (status
    1 if any); `ignore_missing` leaves a 404 unreported (`network rm -f`)."""
    from dockyard.client.api import ApiError

    errors: list[str] = []
    for name in names:
        try:
            remove(name)
        except ApiError as exc:
            if not (ignore_missing and exc.status == 404):
                errors.append(f"Error response from daemon: {exc.message}")
            continue
        cli.out.write(name + "\n")
    if errors:
        raise CliError("\n".join(errors))
    return 0


def key_values(values: list[str], what: str) -> dict[str, str]:
    """`--label k=v`, `--opt k=v`… as a map (a missing `=` is an empty value, as docker's)."""
    out = {}
    for value in values:
        key, _, val = value.partition("=")
        if not key:
            raise CliError(f"invalid {what}: {value}")
        out[key] = val
    return out


def run_inspect(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    return inspect_each(cli, args, cli.client().image_inspect, opts["format"])


INSPECT = Command(
    ("image", "inspect"), "[OPTIONS] IMAGE [IMAGE...]", "Display detailed information on one or more images",
    [Flag("format", "f", STRING, FORMAT_HELP)],
    run_inspect, min_args=1,
)


# --- rm / rmi --------------------------------------------------------------------------------


def run_rm(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.api import ApiError

    client = cli.client()
    errors: list[str] = []
    fatal = False
    for name in args:
        try:
            actions = client.image_remove(name, force=opts["force"], noprune=opts["no_prune"])
        except ApiError as exc:
            # Like docker: with --force a missing image is reported but not a failure.
            fatal = fatal or exc.status != 404
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        for action in actions:
            if action.get("Untagged"):
                cli.out.write(f"Untagged: {action['Untagged']}\n")
            if action.get("Deleted"):
                cli.out.write(f"Deleted: {action['Deleted']}\n")
    if errors:
        if not opts["force"] or fatal:
            raise CliError("\n".join(errors))
        cli.err.write("\n".join(errors) + "\n")
    return 0


RM = Command(
    ("rmi",), "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images",
    [
        Flag("force", "f", BOOL, "Force removal of the image"),
        Flag("no-prune", "", BOOL, "Do not delete untagged parents"),
    ],
    run_rm, min_args=1, aliases=("image rm", "image remove", "rmi"),
)


# --- tag ----------------------------------------------------------------------------------------


def parse_target(text: str) -> tuple[str, str]:
    """A target image name -> (repository, tag), checked on the client as docker does."""
    from dockyard.errors import EngineError
    from dockyard.images import reference

    try:
        ref = reference.parse(text)
    except EngineError as exc:
        raise CliError(f'Error parsing reference: "{text}" is not a valid repository/tag: {exc.message}') from None
    if ref.digest is not None:
        raise CliError(f'Error parsing reference: "{text}" is not a valid repository/tag: '
                       "refusing to create a tag with a digest reference")
    return ref.familiar_name, ref.tag or "latest"


def run_tag(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    repo, tag = parse_target(args[1])
    cli.client().image_tag(args[0], repo, tag)
    return 0


TAG = Command(
    ("tag",), "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    [], run_tag, min_args=2, max_args=2, aliases=("image tag", "tag"),
)


# --- history --------------------------------------------------------------------------------------

HISTORY_HEADERS = {
    "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
    "Size": "SIZE", "Comment": "COMMENT",
}


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def run_history(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    import time

    from dockyard.cli.format import Formatter, human_size, rfc3339, time_ago
    from dockyard.cli.template import Context

    human = opts["human"]
    trunc = not opts["no_trunc"]
    layers = cli.client().image_history(args[0])
    now = time.time()
    rows = []
    for layer in layers:
        created = layer.get("Created", 0)
        created_by = (layer.get("CreatedBy") or "").replace("\t", " ")
        layer_id = layer.get("Id", "<missing>")
        ctx = Context({
            "Comment": layer.get("Comment", ""),
            "CreatedAt": rfc3339(created),
            "CreatedBy": _ellipsis(created_by, 45) if trunc else created_by,
            "CreatedSince": time_ago(created, now) if human else rfc3339(created),
            "ID": short_id(layer_id) if trunc else layer_id,
            "Size": human_size(layer.get("Size", 0), 3) if human else str(layer.get("Size", 0)),
        })
        ctx.type_name = "*formatter.historyContext"
        rows.append(ctx)
    created_col = "{{.CreatedSince}}" if human else "{{.CreatedAt}}"
    table = f"{{{{.ID}}}}\t{created_col}\t{{{{.CreatedBy}}}}\t{{{{.Size}}}}\t{{{{.Comment}}}}"
    cli.out.write(Formatter(opts["format"], table, HISTORY_HEADERS, "{{.ID}}", opts["quiet"]).render(rows))
    return 0


HISTORY = Command(
    ("history",), "[OPTIONS] IMAGE", "Show the history of an image",
    [
        Flag("format", "", STRING, FORMAT_TABLE_HELP),
        Flag("human", "H", BOOL, "Print sizes and dates in human readable format\n(default true)", default=True),
        Flag("no-trunc", "", BOOL, "Don't truncate output"),
        Flag("quiet", "q", BOOL, "Only show image IDs"),
    ],
    run_history, min_args=1, max_args=1, aliases=("image history", "history"),
)


# --- prune ----------------------------------------------------------------------------------------


def confirm(cli: Cli, warning: str) -> bool:
    cli.out.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    cli.out.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def run_prune(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.format import human_size

    filters = parse_filter_flags(PRUNE, opts["filter"])
    filters["dangling"] = ["false" if opts["all"] else "true"]
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if opts["all"] else "WARNING! This will remove all dangling images.")
    if not opts["force"] and not confirm(cli, warning):
        return 0
    report = cli.client().image_prune(filters) or {}
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        lines = ["Deleted Images:"]
        for item in deleted:
            if item.get("Untagged"):
                lines.append(f"untagged: {item['Untagged']}")
            else:
                lines.append(f"deleted: {item.get('Deleted', '')}")
        cli.out.write("\n".join(lines) + "\n\n")
    cli.out.write(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed', 0))}\n")
    return 0


PRUNE = Command(
    ("image", "prune"), "[OPTIONS]", "Remove unused images",
    [
        Flag("all", "a", BOOL, "Remove all unused images, not just dangling ones"),
        Flag("filter", "", LIST, 'Provide filter values (e.g. "until=<timestamp>")', metavar="filter"),
        Flag("force", "f", BOOL, "Do not prompt for confirmation"),
    ],
    run_prune, max_args=0,
)


# --- import -----------------------------------------------------------------------------------------


def print_messages(cli: Cli, messages: Any) -> None:
    """Print a JSON message stream as docker's jsonmessage does (without progress bars)."""
    for message in messages:
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise CliError(detail.get("message") or message.get("error") or "unknown error",
                           exit_code=detail.get("code") or 1)
        if "stream" in message:
            cli.out.write(message["stream"])
        elif message.get("status"):
            prefix = f"{message['id']}: " if message.get("id") else ""
            cli.out.write(f"{prefix}{message['status']}\n")
        cli.out.flush()


def run_import(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    source = args[0]
    repo = ""
    if len(args) > 1:
        name, tag = parse_target(args[1])
        repo = f"{name}:{tag}"
    client = cli.client()
    if source == "-":
        stream = sys.stdin.buffer
        messages = client.image_import(stream, "-", repo, message=opts["message"], changes=opts["change"],
                                       platform=opts["platform"])
        print_messages(cli, messages)
    elif "://" in source:
        messages = client.image_import(None, source, repo, message=opts["message"], changes=opts["change"],
                                       platform=opts["platform"])
        print_messages(cli, messages)
    else:
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below, after the upload
        except OSError as exc:
            raise CliError(f"open {source}: {(exc.strerror or str(exc)).lower()}") from None
        with stream:
            messages = client.image_import(stream, "-", repo, message=opts["message"], changes=opts["change"],
                                           platform=opts["platform"])
            print_messages(cli, messages)
    return 0


IMPORT = Command(
    ("import",), "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
    "Import the contents from a tarball to create a filesystem image",
    [
        Flag("change", "c", LIST, "Apply Dockerfile instruction to the created image"),
        Flag("message", "m", STRING, "Set commit message for imported image"),
        Flag("platform", "", STRING, "Set platform if server is multi-platform capable"),
    ],
    run_import, min_args=1, max_args=2, aliases=("image import", "import"),
)


# --- save -------------------------------------------------------------------------------------------


def run_save(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    import os

    output = opts["output"]
    if not output and sys.stdout.isatty():
        raise CliError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    response = cli.client().image_save(args)
    if not output:
        out = sys.stdout.buffer
        cli.out.flush()
        try:
            for piece in response.iter_raw():
                out.write(piece)
            out.flush()
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            raise CliError(f"write /dev/stdout: {(exc.strerror or str(exc)).lower()}") from None
        return 0
    # Write next to the target and rename, so a failed save never leaves half a file.
    directory = os.path.dirname(os.path.abspath(output))
    tmp = os.path.join(directory, f".{os.path.basename(output)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            for piece in response.iter_raw():
                f.write(piece)
        os.replace(tmp, output)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise CliError(f"failed to save image: {exc.strerror or exc}: {exc.filename or output}") from None
    return 0


SAVE = Command(
    ("save",), "[OPTIONS] IMAGE [IMAGE...]",
    "Save one or more images to a tar archive (streamed to STDOUT by default)",
    [Flag("output", "o", STRING, "Write to a file, instead of STDOUT")],
    run_save, min_args=1, aliases=("image save", "save"),
)


# --- load -------------------------------------------------------------------------------------------


def run_load(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    path = opts["input"]
    if path:
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed below, after the upload
        except OSError as exc:
            raise CliError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    else:
        if sys.stdin.isatty():
            raise CliError("requested load from stdin, but stdin is empty")
        source = sys.stdin.buffer
    # Like docker: progress is only worth drawing on a terminal.
    quiet = opts["quiet"] or not sys.stdout.isatty()
    with source:
        print_messages(cli, cli.client().image_load(source, quiet=quiet))
    return 0


LOAD = Command(
    ("load",), "[OPTIONS]", "Load an image from a tar archive or STDIN",
    [
        Flag("input", "i", STRING, "Read from tar archive file, instead of STDIN"),
        Flag("quiet", "q", BOOL, "Suppress the load output"),
    ],
    run_load, max_args=0, aliases=("image load", "load"),
)
