"""`dockyard-registry`: the command that serves a registry.

    dockyard-registry serve --addr 127.0.0.1:5000 --root DIR [--htpasswd FILE] [--realm NAME]
                            [--tls-cert FILE --tls-key FILE] [--insecure] [--log-level LEVEL]

Plain HTTP is served only on loopback addresses unless `--insecure` says
otherwise: a registry takes pushes, and credentials in Basic auth travel in
clear text without TLS.  SIGTERM and SIGINT stop it cleanly (no new
connections, requests in progress finish for a few seconds, exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import socket
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor

from .auth import Htpasswd, HtpasswdError

log = logging.getLogger("dockyard.registry")

DEFAULT_ADDR = "127.0.0.1:5000"
DEFAULT_REALM = "Dockyard Registry"
PURGE_EVERY = 3600.0


class UsageError(Exception):
    """A flag's value cannot be used; argparse-style exit 2."""


def parse_addr(text: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise UsageError(f"invalid --addr {text!r}: expected [IPv6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise UsageError(f"invalid --addr {text!r}: expected HOST:PORT")
        if ":" in host:
            raise UsageError(f"invalid --addr {text!r}: write IPv6 addresses in brackets, [::1]:5000")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"invalid --addr {text!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one ('' and 0.0.0.0 mean every interface: no)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard-registry",
                                     description="Dockyard's registry server: the OCI distribution API (v1.1).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve a registry", description=(
        "Serve the OCI distribution API from a root directory. Plain HTTP is only served on loopback "
        "addresses unless --insecure is given; elsewhere give --tls-cert and --tls-key."))
    serve.add_argument("--addr", default=DEFAULT_ADDR, metavar="HOST:PORT",
                       help=f"address to listen on (default {DEFAULT_ADDR}; port 0 picks a free one)")
    serve.add_argument("--root", required=True, metavar="DIR",
                       help="directory of the registry's blobs, repositories and uploads (created if missing)")
    serve.add_argument("--htpasswd", metavar="FILE",
                       help="require Basic authentication against this htpasswd file of bcrypt entries "
                            "(htpasswd -B)")
    serve.add_argument("--realm", default=DEFAULT_REALM, help=f"realm of the Basic challenge (default {DEFAULT_REALM!r})")
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM, chain first)")
    serve.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert (PEM)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow plain HTTP on a non-loopback address")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                       help="least severe messages logged to stderr (default info: one line per request)")
    return parser


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise UsageError(f"cannot read {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"cannot use the TLS certificate {cert} with key {key}: {exc}") from None
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def check_serve_args(args: argparse.Namespace) -> tuple[str, int, ssl.SSLContext | None, Htpasswd | None]:
    host, port = parse_addr(args.addr)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    tls = _tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    if tls is None and not args.insecure and not is_loopback(host):
        raise UsageError(f"refusing to serve plain HTTP on {args.addr}, which is not a loopback address: "
                         "give --tls-cert and --tls-key, or --insecure if you mean it")
    htpasswd = None
    if args.htpasswd:
        try:
            htpasswd = Htpasswd(args.htpasswd)
        except HtpasswdError as exc:
            raise UsageError(str(exc)) from None
    return host, port, tls, htpasswd


async def serve(args: argparse.Namespace) -> int:
    from .app import API_VERSION_HEADER, RegistryApp
    from .http import HttpServer
    from .storage import RegistryStorage, RootInUse

    host, port, tls, htpasswd = check_serve_args(args)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=16, thread_name_prefix="registry"))
    try:
        storage = RegistryStorage(args.root)
    except RootInUse as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot use --root {args.root}: {exc.strerror or exc}") from None
    app = RegistryApp(storage, htpasswd, args.realm)
    server = HttpServer(app, ssl_context=tls, common_headers=[API_VERSION_HEADER])
    try:
        bound = await server.listen(host or None, port)
    except OSError as exc:
        storage.close()
        raise UsageError(f"cannot listen on {args.addr}: {exc.strerror or exc}") from None

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    scheme = "https" if tls else "http"
    for h, p in bound:
        shown = f"[{h}]" if ":" in h else h
        log.warning("serving %s://%s:%d from %s%s", scheme, shown, p, storage.root,
                    " (Basic authentication)" if htpasswd else "")

    async def purge() -> None:
        while True:
            await asyncio.sleep(PURGE_EVERY)
            try:
                await loop.run_in_executor(None, storage.purge_uploads)
            except Exception as exc:
                log.error("purging stale uploads failed: %s", exc)

    purger = asyncio.ensure_future(purge())
    try:
        await stop.wait()
    finally:
        log.warning("shutting down")
        purger.cancel()
        await server.close()
        storage.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        return asyncio.run(serve(args))
    except UsageError as exc:
        print(f"dockyard-registry: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
