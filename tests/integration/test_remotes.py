"""The registry client against real registries: docker-registry (plain and htpasswd), a Bearer token
front written here, and skopeo reading what we pushed.

Each registry is a process of this module's own, on a free loopback port with a temporary config and
storage, stopped and deleted afterwards.  The helpers at the top (`RegistryProcess`, `TokenFront`,
`make_image`, `push_image`) are also used by tests/api/test_pull_push.py.
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
from dockyard.errors import NotFound
from dockyard.images.formats import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Platform,
    build_manifest,
    canonical_json,
)
from dockyard.remotes import AuthConfig, Registry, RegistryError, Unauthorized, login
from dockyard.remotes.platforms import choose_manifest

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


plain = registry_fixture()
locked = registry_fixture(htpasswd=True)


@pytest.fixture
def client(plain):
    with Registry(plain.host) as registry:
        yield registry


# -- tests ------------------------------------------------------------------------------------------


def test_push_resolve_fetch_round_trip(client, plain):
    image = make_image({"hello": b"hello from the registry\n"})
    digest = push_image(client, "apx/round", "v1", image)
    assert digest == image.digest
    assert client.base_url == f"http://{plain.host}"  # HTTPS failed, plain HTTP answered: a loopback registry
    desc = client.resolve("apx/round", "v1")
    assert (desc.digest, desc.size, desc.media_type) == (image.digest, len(image.manifest), OCI_MANIFEST)
    assert client.resolve("apx/round", image.digest) == desc
    assert client.fetch_manifest("apx/round", desc) == image.manifest
    config = Descriptor(OCI_CONFIG, image.config_digest, len(image.config))
    assert client.fetch_blob("apx/round", config) == image.config
    layer = Descriptor(OCI_LAYER, digest_of(image.layers[0]), len(image.layers[0]))
    seen = []
    with client.open_blob("apx/round", layer, seen.append) as stream:
        assert stream.read_all(1 << 20) == image.layers[0]
    assert seen[-1] == len(image.layers[0])
    assert client.blob_size("apx/round", layer.digest) == layer.size
    assert client.blob_size("apx/round", "sha256:" + "0" * 64) is None
    assert client.tags("apx/round") == ["v1"]


def test_missing_manifest_in_dockerd_words(client):
    push_image(client, "apx/missing", "v1", make_image({"a": b"a"}))
    with pytest.raises(NotFound) as exc:
        client.resolve("apx/missing", "nope")
    assert exc.value.message == \
        f"manifest for {client.host}/apx/missing:nope not found: manifest unknown: manifest unknown"
    with pytest.raises(NotFound, match="not found: manifest unknown"):
        client.resolve("apx/nosuchrepo", "v1")
    with pytest.raises(NotFound, match="@sha256:0000"):
        client.resolve("apx/missing", "sha256:" + "0" * 64)
    with pytest.raises(NotFound, match="blob unknown"):
        client.open_blob("apx/missing", Descriptor(OCI_LAYER, "sha256:" + "1" * 64, 3))


def test_cross_repository_mount(client):
    image = make_image({"shared": b"shared layer\n"})
    push_image(client, "apx/source", "v1", image)
    layer = digest_of(image.layers[0])
    assert client.blob_size("apx/target", layer) is None
    mounted, location = client.mount_blob("apx/target", layer, "apx/source")
    assert mounted and location is None
    assert client.blob_size("apx/target", layer) == len(image.layers[0])
    # A blob the source lacks is not mounted: the registry opens an upload instead, which we can use.
    data = b"only here"
    mounted, location = client.mount_blob("apx/target", digest_of(data), "apx/source")
    assert not mounted and location
    client.upload_blob("apx/target", digest_of(data), len(data), iter([data]), location)
    assert client.blob_size("apx/target", digest_of(data)) == len(data)


def test_index_resolves_and_the_platform_is_chosen(client):
    amd64 = make_image({"arch": b"amd64\n"}, "amd64")
    arm64 = make_image({"arch": b"arm64\n"}, "arm64", "v8")
    index = push_index(client, "apx/multi", "1", {("amd64", ""): amd64, ("arm64", "v8"): arm64})
    desc = client.resolve("apx/multi", "1")
    assert desc.media_type == OCI_INDEX and desc.digest == digest_of(index)
    from dockyard.images.formats import parse_manifest_or_index

    parsed = parse_manifest_or_index(client.fetch_manifest("apx/multi", desc), desc.media_type)
    assert choose_manifest(parsed, Platform("linux", "amd64")).digest == amd64.digest
    assert choose_manifest(parsed, Platform("linux", "arm64")).digest == arm64.digest


def test_skopeo_reads_what_we_pushed(client, plain):
    image = make_image({"etc/skopeo": b"checked by skopeo\n"})
    push_image(client, "apx/skopeo", "v1", image)
    out = subprocess.run([SKOPEO, "inspect", "--tls-verify=false", f"docker://{plain.host}/apx/skopeo:v1"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    info = json.loads(out)
    assert info["Digest"] == image.digest
    assert info["Layers"] == [digest_of(image.layers[0])]
    assert info["Architecture"] == "amd64" and info["Labels"] == {"made.by": "test_remotes"}


def test_basic_auth(locked):
    image = make_image({"locked": b"behind htpasswd\n"})
    with Registry(locked.host) as anonymous:
        with pytest.raises(Unauthorized) as exc:
            anonymous.resolve("apx/locked", "v1")
        assert exc.value.message == \
            f'Head "http://{locked.host}/v2/apx/locked/manifests/v1": no basic auth credentials'
        assert exc.value.reason == "no basic auth credentials"
    with Registry(locked.host, AuthConfig(USER, "wrong")) as wrong:
        with pytest.raises(Unauthorized, match="^unauthorized: authentication required$"):
            wrong.resolve("apx/locked", "v1")
        with pytest.raises(Unauthorized, match="unauthorized: authentication required"):
            wrong.blob_size("apx/locked", image.config_digest)
    with Registry(locked.host, AuthConfig(USER, PASSWORD)) as right:
        assert push_image(right, "apx/locked", "v1", image) == image.digest
        assert right.resolve("apx/locked", "v1").digest == image.digest


def test_login(locked, plain):
    login(AuthConfig(USER, PASSWORD, locked.host))
    login(AuthConfig(USER, PASSWORD, f"http://{locked.host}/"))
    login(AuthConfig(USER, "anything", plain.host))  # a registry without auth takes anyone, as with dockerd
    with pytest.raises(Unauthorized) as exc:
        login(AuthConfig(USER, "wrong", locked.host))
    assert exc.value.message == f"login attempt to http://{locked.host}/v2/ failed with status: 401 Unauthorized"
    port = free_port()
    with pytest.raises(RegistryError) as exc:
        login(AuthConfig(USER, PASSWORD, f"127.0.0.1:{port}"))
    assert exc.value.message == \
        f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    assert not isinstance(exc.value, Unauthorized)


def test_bearer_tokens_are_fetched_per_scope_and_reused(plain):
    front = TokenFront(plain.host)
    try:
        image = make_image({"bearer": b"behind a token server\n"})
        with Registry(front.host, AuthConfig(USER, PASSWORD)) as registry:
            push_image(registry, "apx/bearer", "v1", image)
            assert registry.resolve("apx/bearer", "v1").digest == image.digest
            assert registry.fetch_manifest("apx/bearer", registry.resolve("apx/bearer", "v1")) == image.manifest
        # One token for the push (pull,push covers the pulls after it), none asked twice for one scope.
        assert len(front.token_requests) == 1, front.token_requests
        assert "scope=repository%3Aapx%2Fbearer%3Apull%2Cpush" in front.token_requests[0]
        assert "service=test-registry" in front.token_requests[0]
        assert [r for r in front.requests if r[2] == "Bearer"], "requests carried the token"

        front.token_requests.clear()
        with Registry(front.host, AuthConfig(USER, PASSWORD)) as reader:
            layer = Descriptor(OCI_LAYER, digest_of(image.layers[0]), len(image.layers[0]))
            with reader.open_blob("apx/bearer", layer) as stream:
                assert stream.read_all(1 << 20) == image.layers[0]
            reader.resolve("apx/bearer", "v1")
        assert len(front.token_requests) == 1 and "pull" in front.token_requests[0] \
            and "push" not in front.token_requests[0]

        with Registry(front.host, AuthConfig(USER, "wrong")) as wrong:
            with pytest.raises(Unauthorized, match="incorrect username or password"):
                wrong.resolve("apx/bearer", "v1")
        login(AuthConfig(USER, PASSWORD, front.host))
        with pytest.raises(Unauthorized, match="login attempt to .* failed with status: 401 Unauthorized"):
            login(AuthConfig(USER, "wrong", front.host))
    finally:
        front.stop()


def test_https_registry_on_loopback_and_a_scheme_that_changes():
    """A loopback registry on HTTPS (a self-signed certificate: not checked for insecure registries)
    is spoken to over HTTPS; restarted on plain HTTP at the same port, it is found again."""
    from dockyard.remotes.registry import _SCHEMES

    tls = TlsRegistryProcess()
    port = tls.port
    try:
        image = make_image({"tls": b"over https\n"})
        with Registry(tls.host) as registry:
            assert push_image(registry, "apx/tls", "v1", image) == image.digest
            assert registry.base_url == f"https://{tls.host}"
        with Registry(tls.host) as registry:
            assert registry.resolve("apx/tls", "v1").digest == image.digest
        assert _SCHEMES[tls.host] == "https"
    finally:
        tls.stop()
    plain_again = RegistryProcess(port=port)
    try:
        with Registry(plain_again.host) as registry:
            push_image(registry, "apx/tls", "v2", image)
            assert registry.base_url == f"http://{plain_again.host}"
        assert _SCHEMES[plain_again.host] == "http"
    finally:
        plain_again.stop()


def test_oversized_answers_are_refused():
    """A registry that answers a manifest beyond the 4 MiB limit, or a config longer than its descriptor:
    refused without reading it all."""
    config = b'{"rootfs":{"type":"layers","diff_ids":[]}}'

    def handle(request):
        path = request.path
        if path.endswith("/manifests/huge"):
            if request.command == "HEAD":
                return reply(request, 404, b"")
            return reply(request, 200, b" " * (5 << 20), {"Content-Type": OCI_MANIFEST})
        if "/blobs/" in path:
            return reply(request, 200, config * 100, {"Content-Type": "application/octet-stream"})
        reply(request, 200, b"{}")

    server = LoopbackServer(handle)
    try:
        with Registry(server.host) as registry:
            with pytest.raises(RegistryError, match="manifest too large: more than 4194304 bytes"):
                registry.resolve("apx/big", "huge")
            with pytest.raises(RegistryError, match=f"failed to verify blob .*: got {len(config) + 1} bytes of "
                                                    f"{len(config)}"):
                registry.fetch_blob("apx/big", Descriptor(OCI_CONFIG, digest_of(config), len(config)))
            # The connections were not left with unread bytes: the next answer is still right.
            assert registry.ping() == 200
    finally:
        server.stop()
