"""Where a reference's registry answers, and the distribution API's URLs (pure: no I/O).

    docker.io/library/busybox:latest
        -> https://registry-1.docker.io/v2/library/busybox/manifests/latest
    127.0.0.1:5001/apx/img@sha256:…
        -> http(s)://127.0.0.1:5001/v2/apx/img/manifests/sha256:…

    /v2/                                      ping (and login)
    /v2/<repo>/manifests/<tag|digest>         HEAD, GET, PUT
    /v2/<repo>/blobs/<digest>                 HEAD, GET
    /v2/<repo>/blobs/uploads/                 POST (start an upload; ?mount=<digest>&from=<repo>)
    <upload location>&digest=<digest>         PUT (the whole blob: a monolithic upload)
    /v2/<repo>/tags/list                      GET
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

from ..images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN

DOCKER_HUB_HOST = "registry-1.docker.io"

# dockerd's default InsecureRegistryCIDRs, plus IPv6 loopback and the name localhost.
INSECURE_CIDRS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def registry_host(domain: str) -> str:
    """The host[:port] serving `domain`'s registry (Docker Hub's API lives on registry-1.docker.io)."""
    if domain in (DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN):
        return DOCKER_HUB_HOST
    return domain


def hostname(host: str) -> str:
    """`127.0.0.1:5001` -> `127.0.0.1`, `[::1]:5000` -> `::1`, `localhost` -> `localhost`."""
    if host.startswith("["):
        return host[1:host.index("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_insecure(host: str, cidrs=INSECURE_CIDRS) -> bool:
    """Whether plain HTTP may be used: localhost and loopback addresses (dockerd's default)."""
    name = hostname(host).lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return any(address in net for net in cidrs)


def base_url(scheme: str, host: str) -> str:
    return f"{scheme}://{host}"


def ping_url(base: str) -> str:
    return f"{base}/v2/"


def manifest_url(base: str, repo: str, reference: str) -> str:
    return f"{base}/v2/{repo}/manifests/{quote(reference, safe=':')}"


def blob_url(base: str, repo: str, digest: str) -> str:
    return f"{base}/v2/{repo}/blobs/{digest}"


def upload_url(base: str, repo: str, mount: str | None = None, source: str | None = None) -> str:
    url = f"{base}/v2/{repo}/blobs/uploads/"
    if mount:
        url += f"?mount={quote(mount, safe=':')}&from={quote(source or '', safe='/')}"
    return url


def tags_url(base: str, repo: str) -> str:
    return f"{base}/v2/{repo}/tags/list"


def with_query(url: str, **params: str) -> str:
    """`url` plus `params`, after the query it may have (an upload location carries its own state)."""
    extra = "&".join(f"{k}={quote(v, safe=':')}" for k, v in params.items())
    return url + ("&" if "?" in url else "?") + extra
