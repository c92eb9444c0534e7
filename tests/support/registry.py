"""Registries for tests: docker-registry processes (plain, htpasswd, TLS) of a test's own on free loopback
ports, a Bearer token front, a tiny loopback HTTP server for broken registries, and images made and pushed
by hand (`make_image`, `push_image`, `push_index`).

Each registry process has a temporary config and storage, stopped and deleted by its fixture.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass

import pytest
import urllib3

from dockyard.content import Descriptor, digest_of
from dockyard.images.formats import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    build_manifest,
    canonical_json,
)
from dockyard.remotes import Registry

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
USER, PASSWORD = "tester", "s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RegistryProcess:
    """`docker-registry serve` on a free loopback port; `htpasswd=True` requires Basic auth (USER/PASSWORD)."""

    def __init__(self, htpasswd: bool = False, port: int | None = None):
        self.dir = tempfile.mkdtemp(prefix="dockyard-test-registry-")
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = {"version": 0.1, "log": {"level": "warn"},
                  "storage": {"filesystem": {"rootdirectory": os.path.join(self.dir, "data")},
                              "delete": {"enabled": True}},
                  "http": {"addr": self.host}}
        if htpasswd:
            import bcrypt

            path = os.path.join(self.dir, "htpasswd")
            with open(path, "w") as f:
                f.write(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
            config["auth"] = {"htpasswd": {"realm": "test-realm", "path": path}}
        config_path = os.path.join(self.dir, "config.yml")
        with open(config_path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")  # noqa: SIM115 - the process writes it
        self.proc = subprocess.Popen([REGISTRY, "serve", config_path], stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        self._wait("http")

    def _wait(self, scheme: str) -> None:
        pool = urllib3.PoolManager(cert_reqs="CERT_NONE")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                pool.request("GET", f"{scheme}://{self.host}/v2/", timeout=1, retries=False)
                return
            except urllib3.exceptions.HTTPError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the registry did not start on {self.host}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsRegistryProcess(RegistryProcess):
    """Our own registry server (`python -m dockyard.registry serve`) on HTTPS, with a self-signed
    certificate made by openssl."""

    def __init__(self, port: int | None = None):
        import sys
        import warnings

        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("openssl is needed to make a certificate")
        self.dir = tempfile.mkdtemp(prefix="dockyard-test-registry-")
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")  # noqa: SIM115 - the process writes it
        self.proc = subprocess.Popen([sys.executable, "-m", "dockyard.registry", "serve", "--addr", self.host,
                                      "--root", os.path.join(self.dir, "data"), "--tls-cert", cert,
                                      "--tls-key", key], stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            self._wait("https")


class LoopbackServer:
    """An HTTP/1.1 server on a free loopback port, in a thread: `handle(request)` answers every request
    (a BaseHTTPRequestHandler; `reply` writes an answer)."""

    def __init__(self, handle):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                handle(self)

            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply(request, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    request.send_response(status)
    for key, value in (headers or {"Content-Type": "application/json"}).items():
        request.send_header(key, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(body)


class TokenFront:
    """A registry front that wants Bearer tokens (as Docker Hub does): `/token` hands out a token for
    the scopes asked, to USER/PASSWORD only; `/v2/…` needs a token covering the request's scope and is
    relayed to `backend` (a RegistryProcess without auth).  `requests` logs (method, path, auth scheme)."""

    def __init__(self, backend: str):
        self.backend = backend
        self.tokens: dict[str, set[str]] = {}
        self.token_requests: list[str] = []
        self.requests: list[tuple[str, str, str]] = []
        self.pool = urllib3.PoolManager()
        self.http = LoopbackServer(self.handle)
        self.host = self.http.host

    def stop(self) -> None:
        self.http.stop()
        self.pool.clear()

    @staticmethod
    def _scope_of(method: str, path: str) -> str | None:
        parts = path.split("?", 1)[0].split("/")
        for marker in ("manifests", "blobs", "tags"):
            if marker in parts:
                repo = "/".join(parts[2:parts.index(marker)])
                action = "pull" if method in ("GET", "HEAD") else "push"
                return f"repository:{repo}:{action}"
        return None

    def handle(self, h) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        auth = h.headers.get("Authorization", "")
        self.requests.append((h.command, h.path, auth.split(" ", 1)[0]))
        if h.path.startswith("/token"):
            return self._token(h, auth)
        scope = self._scope_of(h.command, h.path)
        granted = self.tokens.get(auth[7:], set()) if auth.startswith("Bearer ") else None
        if granted is None or (scope is not None and scope not in granted):
            challenge = f'Bearer realm="http://{self.host}/token",service="test-registry"'
            if scope:
                challenge += f',scope="{scope}"'
            out = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}'
            return reply(h, 401, out, {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("authorization", "host")}
        resp = self.pool.request(h.command, f"http://{self.backend}{h.path}", body=body or None, headers=headers,
                                 redirect=False, preload_content=True, decode_content=False)
        headers = {}
        for key, value in resp.headers.items():
            if key.lower() in ("transfer-encoding", "connection", "date", "content-length"):
                continue
            if key.lower() == "location":
                value = value.replace(f"http://{self.backend}", f"http://{self.host}")
            headers[key] = value
        if h.command == "HEAD":  # keep the backend's length: a HEAD's own body is empty
            headers["Content-Length"] = resp.headers.get("Content-Length", "0")
            h.send_response(resp.status)
            for key, value in headers.items():
                h.send_header(key, value)
            h.end_headers()
            return
        reply(h, resp.status, resp.data, headers)

    def _token(self, h, auth: str) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(h.path).query)
        self.token_requests.append(h.path)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if auth != expected:
            return reply(h, 401, b'{"details":"incorrect username or password"}')
        scopes = set()
        for scope in query.get("scope", []):
            for one in scope.split(" "):
                resource, _, actions = one.rpartition(":")
                scopes.update(f"{resource}:{a}" for a in actions.split(","))
        token = f"tok{len(self.tokens)}"
        self.tokens[token] = scopes
        reply(h, 200, json.dumps({"token": token, "expires_in": 300}).encode())


# -- images made here ---------------------------------------------------------------------------


@dataclass
class MadeImage:
    config: bytes
    layers: list[bytes]
    manifest: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def config_digest(self) -> str:
        return digest_of(self.config)


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(files: dict[str, bytes], arch: str = "amd64", variant: str = "", cmd=("/hello",)) -> MadeImage:
    """A one-layer OCI image (uncompressed layer) for `linux/<arch>`."""
    layer = layer_tar(files)
    config_obj = {"architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
                  "config": {"Cmd": list(cmd), "Labels": {"made.by": "test_remotes"}},
                  "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
                  "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "test"}]}
    if variant:
        config_obj["variant"] = variant
    config = canonical_json(config_obj)
    manifest = build_manifest(Descriptor(OCI_CONFIG, digest_of(config), len(config)),
                              [Descriptor(OCI_LAYER, digest_of(layer), len(layer))])
    return MadeImage(config, [layer], manifest)


def push_image(registry: Registry, repo: str, tag: str, image: MadeImage) -> str:
    """Upload the image's blobs and put its manifest under `tag`; returns the manifest digest."""
    for blob in [image.config, *image.layers]:
        if registry.blob_size(repo, digest_of(blob)) is None:
            registry.upload_blob(repo, digest_of(blob), len(blob), iter([blob]))
    return registry.put_manifest(repo, tag, image.manifest, OCI_MANIFEST)


def push_index(registry: Registry, repo: str, tag: str, images: dict[tuple[str, str], MadeImage]) -> bytes:
    """Push each image by digest and an OCI index of them under `tag`; returns the index bytes."""
    entries = []
    for (arch, variant), image in images.items():
        push_image(registry, repo, image.digest, image)
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        entries.append({"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
                        "platform": platform})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    registry.put_manifest(repo, tag, index, OCI_INDEX)
    return index


# -- fixtures ---------------------------------------------------------------------------------------


def registry_fixture(htpasswd: bool = False):
    """A module-scoped fixture giving a RegistryProcess of the module's own."""

    @pytest.fixture(scope="module")
    def fixture():
        reg = RegistryProcess(htpasswd)
        yield reg
        reg.stop()

    return fixture
