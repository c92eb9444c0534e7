"""Registry commands: pull, push, login, logout — and the credentials they keep.

Credentials live where docker keeps its own, in the same format, but in a
directory of ours: `$DOCKYARD_CONFIG/config.json` (default `~/.dockyard`),

    {"auths": {"127.0.0.1:5000": {"auth": base64("user:password")}}}

keyed by registry host (Docker Hub as `https://index.docker.io/v1/`), written
atomically and readable by its owner only. Pull and push send the stored
login for the image's registry in `X-Registry-Auth` (base64url JSON, `e30=`
when there is none), exactly as the docker CLI does; the engine does the
registry work.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.flags import BOOL, STRING, Command, Flag
from dockyard.cli.main import CliError

TYPE_CHECKING = False  # typing costs ~15 ms to import; only checkers read these names
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.main import Cli

HUB_KEY = "https://index.docker.io/v1/"
HUB_DOMAINS = ("docker.io", "index.docker.io", "registry-1.docker.io")


# --- credentials --------------------------------------------------------------------------------------


def config_path() -> str:
    directory = os.environ.get("DOCKYARD_CONFIG") or os.path.join(os.path.expanduser("~"), ".dockyard")
    return os.path.join(directory, "config.json")


def _read_config() -> dict[str, Any]:
    from dockyard.jsonio import loads

    try:
        with open(config_path(), "rb") as f:
            data = loads(f.read())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise CliError(f"loading config file {config_path()}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _write_config(data: dict[str, Any]) -> None:
    from dockyard.jsonio import dumps

    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, dumps(data).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def registry_key(server: str) -> str:
    """The key of a registry in `auths`: its host[:port], Docker Hub's index URL for the Hub."""
    host = server
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = host.split("/", 1)[0]
    return HUB_KEY if host in HUB_DOMAINS or not host else host


def stored_login(key: str) -> dict[str, str] | None:
    import base64

    entry = (_read_config().get("auths") or {}).get(key)
    if not entry or not entry.get("auth"):
        return None
    try:
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return {"username": user, "password": password, "serveraddress": key}


def auth_header(image_name: str) -> str:
    """X-Registry-Auth for the registry of a (normalized) image name."""
    import base64

    from dockyard.jsonio import dumps

    login = stored_login(registry_key(image_name.split("/", 1)[0]))
    return base64.urlsafe_b64encode(dumps(login or {}).encode()).decode()


# --- progress -----------------------------------------------------------------------------------------


def print_progress(out: Any, messages: Any, quiet: bool = False) -> dict[str, Any]:
    """docker's jsonmessage display on a non-terminal: one `id: status` line per message, messages that
    carry a progress bar left out; an error ends the stream. Returns the last `aux`."""
    from dockyard.cli.run import PullFailed

    aux: dict[str, Any] = {}
    for message in messages:
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise PullFailed(detail.get("message") or message.get("error") or "unknown error")
        if "aux" in message:
            aux = message["aux"] or {}
            continue
        if quiet:
            continue
        detail = message.get("progressDetail") or {}
        if (detail.get("current") or 0) > 0 or (detail.get("total") or 0) > 0:
            continue
        if message.get("status"):
            prefix = f"{message['id']}: " if message.get("id") else ""
            out.write(f"{prefix}{message['status']}\n")
        elif "stream" in message:
            out.write(message["stream"])
        out.flush()
    return aux


def _reference(text: str) -> Any:
    from dockyard.images.reference import parse

    try:
        return parse(text)
    except ValueError as exc:
        raise CliError(f"invalid reference format: {exc}") from None


def _show(cli: Cli, messages: Any, quiet: bool) -> None:
    """pull's and push's progress on stdout; the stream's error as the command's."""
    from dockyard.cli.run import PullFailed

    try:
        print_progress(cli.out, messages, quiet)
    except PullFailed as exc:
        raise CliError(str(exc)) from None


# --- pull -----------------------------------------------------------------------------------------------


def run_pull(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.run import image_reference

    ref = _reference(args[0])
    if opts["all_tags"] and (ref.tag or ref.digest):
        raise CliError("tag can't be used with --all-tags/-a")
    if not (ref.tag or ref.digest or opts["all_tags"]) and not opts["quiet"]:
        cli.out.write("Using default tag: latest\n")
    name, tag, familiar = image_reference(args[0])
    if opts["all_tags"]:
        tag, familiar = "", ref.familiar_name
    _show(cli, cli.client().image_pull(name, tag, opts["platform"].lower(), auth=auth_header(name)), opts["quiet"])
    cli.out.write(familiar + "\n")
    return 0


PULL = Command(
    ("pull",), "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry",
    [
        Flag("all-tags", "a", BOOL, "Download all tagged images in the repository"),
        Flag("disable-content-trust", "", BOOL, "Skip image verification", shown_default="true"),
        Flag("platform", "", STRING, "Set platform if server is multi-platform capable"),
        Flag("quiet", "q", BOOL, "Suppress verbose output"),
    ],
    run_pull, min_args=1, max_args=1, aliases=("image pull", "pull"),
)


# --- push -----------------------------------------------------------------------------------------------


def run_push(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    ref = _reference(args[0])
    if opts["all_tags"] and ref.tag:
        raise CliError("tag can't be used with --all-tags/-a")
    if not ref.tag and not opts["all_tags"] and not ref.digest:
        if not opts["quiet"]:
            cli.out.write("Using default tag: latest\n")
        ref = ref.with_default_tag()
    _show(cli, cli.client().image_push(ref.name, "" if opts["all_tags"] else (ref.tag or ""),
                                       auth=auth_header(ref.name)), opts["quiet"])
    if opts["quiet"]:
        cli.out.write(str(ref.familiar()) + "\n")
    return 0


PUSH = Command(
    ("push",), "[OPTIONS] NAME[:TAG]", "Upload an image to a registry",
    [
        Flag("all-tags", "a", BOOL, "Push all tags of an image to the repository"),
        Flag("disable-content-trust", "", BOOL, "Skip image signing", shown_default="true"),
        Flag("quiet", "q", BOOL, "Suppress verbose output"),
    ],
    run_push, min_args=1, max_args=1, aliases=("image push", "push"),
)


# --- login / logout -------------------------------------------------------------------------------------


def run_login(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    server = args[0] if args else HUB_KEY
    key = registry_key(server)
    user, password = opts["username"], opts["password"]
    if password and opts["password_stdin"]:
        raise CliError("--password and --password-stdin are mutually exclusive")
    if opts["password_stdin"]:
        if not user:
            raise CliError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        cli.err.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if not user or not password:
        stored = stored_login(key)
        if stored is None or (user and stored["username"] != user):
            if not sys.stdin.isatty():
                raise CliError("Cannot perform an interactive login from a non TTY device")
            user, password = _ask(cli, user)
        else:
            user, password = stored["username"], stored["password"]
    reply = cli.client().auth({"username": user, "password": password, "serveraddress": key})
    config = _read_config()
    import base64

    config.setdefault("auths", {})[key] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    _write_config(config)
    cli.err.write(f"WARNING! Your credentials are stored unencrypted in '{config_path()}'.\n")
    cli.out.write((reply or {}).get("Status") or "Login Succeeded")
    cli.out.write("\n")
    return 0


def _ask(cli: Cli, user: str) -> tuple[str, str]:
    import getpass

    if not user:
        cli.out.write("Username: ")
        cli.out.flush()
        user = sys.stdin.readline().strip()
    if not user:
        raise CliError("Error: Non-null Username Required")
    password = getpass.getpass("Password: ")
    if not password:
        raise CliError("Error: Password Required")
    return user, password


LOGIN = Command(
    ("login",), "[OPTIONS] [SERVER]", "Authenticate to a registry",
    [
        Flag("password", "p", STRING, "Password"),
        Flag("password-stdin", "", BOOL, "Take the password from stdin"),
        Flag("username", "u", STRING, "Username"),
    ],
    run_login, max_args=1,
)


def run_logout(cli: Cli, opts: dict[str, Any], args: list[str]) -> int:
    server = args[0] if args else HUB_KEY
    key = registry_key(server)
    config = _read_config()
    auths = config.get("auths") or {}
    cli.out.write(f"Removing login credentials for {server}\n")
    if key in auths:
        del auths[key]
        _write_config(config)
    return 0


LOGOUT = Command(
    ("logout",), "[SERVER]", "Log out from a registry", [], run_logout, max_args=1,
)
