"""The registry client against real registries: docker-registry (plain and htpasswd), a Bearer token
front written here, and skopeo reading what we pushed.

Each registry is a process of this module's own, on a free loopback port with a temporary config and
storage, stopped and deleted afterwards (tests/support/registry.py).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from dockyard.content import Descriptor, digest_of
from dockyard.errors import NotFound
from dockyard.images.formats import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Platform,
)
from dockyard.remotes import AuthConfig, Registry, RegistryError, Unauthorized, login
from dockyard.remotes.platforms import choose_manifest
from tests.support.registry import (
    PASSWORD,
    SKOPEO,
    USER,
    LoopbackServer,
    RegistryProcess,
    TlsRegistryProcess,
    TokenFront,
    free_port,
    make_image,
    push_image,
    push_index,
    registry_fixture,
    reply,
)

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
