"""Pull, push and login through a real dockyardd, driven by the docker SDK, the real docker CLI and our
client, against registries this module starts (docker-plain, plain and htpasswd) and a fake one that
serves broken blobs.  What we push is read back by skopeo and by a second engine that runs it."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import time

import docker
import pytest

from dockyard.client.api import ApiError
from dockyard.content import Descriptor, digest_of
from dockyard.images.formats import OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, build_manifest, host_platform
from dockyard.remotes import Registry
from tests.support.dockerd import peer_docker  # noqa: F401  (fixture)
from tests.support.registry import (
    PASSWORD,
    SKOPEO,
    USER,
    LoopbackServer,
    free_port,
    layer_tar,
    make_image,
    push_image,
    push_index,
    registry_fixture,
    reply,
)

pytestmark = pytest.mark.root

plain = registry_fixture()
locked = registry_fixture(htpasswd=True)


def run_docker(engine, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """The real docker CLI at `engine`, output as text."""
    proc = engine.docker(*args, input=input.encode() if input is not None else None)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def auth_header(**auth) -> str:
    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()


def image_events(sdk, since: float, action: str) -> list[dict]:
    events = sdk.events(since=int(since), until=int(time.time()) + 1, decode=True,
                        filters={"type": "image", "event": action})
    return list(events)


def blobs_and_ingest(engine) -> tuple[list[str], list[str]]:
    content = engine.data_root / "content"
    return sorted(os.listdir(content / "blobs" / "sha256")), sorted(os.listdir(content / "ingest"))


def test_push_then_pull_into_a_fresh_engine_and_run(engine, busybox_image, plain, fresh_engine):
    repo = f"{plain.host}/apx/bb"
    sdk = engine.docker_sdk()
    sdk.images.get(busybox_image).tag(repo, "v1")
    diff_id = engine.client().image_inspect(busybox_image)["RootFS"]["Layers"][0]
    short = diff_id[7:19]
    started = time.time()

    # docker-py: no credentials, so no X-Registry-Auth header and a body of {}.
    out = list(sdk.images.push(repo, tag="v1", stream=True, decode=True))
    assert out[0] == {"status": f"The push refers to repository [{repo}]"}
    assert out[1] == {"status": "Preparing", "progressDetail": {}, "id": short}
    pushing = [m for m in out if m.get("status") == "Pushing"]
    assert pushing and pushing[-1]["id"] == short
    assert pushing[-1]["progressDetail"]["current"] == pushing[-1]["progressDetail"]["total"]
    assert {"status": "Pushed", "progressDetail": {}, "id": short} in out
    aux = out[-1]["aux"]
    digest, size = aux["Digest"], aux["Size"]
    assert aux["Tag"] == "v1" and out[-1]["progressDetail"] == {}
    assert out[-2] == {"status": f"v1: digest: {digest} size: {size}"}
    inspected = engine.client().image_inspect(f"{repo}:v1")
    assert inspected["RepoDigests"] == [f"{repo}@{digest}"]

    # The registry has the stored manifest as it is: skopeo sees the same digest and layers.
    info = json.loads(subprocess.run([SKOPEO, "inspect", "--tls-verify=false", f"docker://{repo}:v1"],
                                     capture_output=True, text=True, timeout=60, check=True).stdout)
    assert info["Digest"] == digest
    assert info["Architecture"] == inspected["Architecture"] and len(info["Layers"]) == 1

    # The real CLI: the second push finds the layer there, another repository gets it mounted.
    again = run_docker(engine, "push", f"{repo}:v1")
    assert again.returncode == 0, again.stderr
    assert f"{short}: Layer already exists" in again.stdout
    assert f"v1: digest: {digest} size: {size}" in again.stdout
    run_docker(engine, "tag", busybox_image, f"{plain.host}/apx/other:v2")
    mounted = run_docker(engine, "push", f"{plain.host}/apx/other:v2")
    assert mounted.returncode == 0, mounted.stderr
    assert f"{short}: Mounted from apx/bb" in mounted.stdout
    pushes = image_events(sdk, started, "push")
    assert [(e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in pushes] == \
        [(f"{repo}:v1", repo), (f"{repo}:v1", repo), (f"{plain.host}/apx/other:v2", f"{plain.host}/apx/other")]
    assert pushes[0]["status"] == "push" and pushes[0]["id"] == f"{repo}:v1"

    # Another engine: `docker run` gets 404 from create, pulls, creates again, runs.
    run = run_docker(fresh_engine, "run", "--rm", f"{repo}:v1", "echo", "pulled and running")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "pulled and running\n"
    assert f"Unable to find image '{repo}:v1' locally" in run.stderr
    assert f"Digest: {digest}" in run.stderr
    assert f"Status: Downloaded newer image for {repo}:v1" in run.stderr
    fresh = fresh_engine.docker_sdk()
    pulled = fresh.images.get(f"{repo}:v1")
    assert pulled.id == busybox_image
    assert pulled.tags == [f"{repo}:v1"]
    assert pulled.attrs["RepoDigests"] == [f"{repo}@{digest}"]
    assert fresh.images.get(f"{repo}@{digest}").id == busybox_image

    # Pulling again is "up to date", with no layer lines (dockerd's shortcut for a stored config).
    messages = list(fresh.api.pull(repo, "v1", stream=True, decode=True))
    assert messages == [{"status": "Pulling from apx/bb", "id": "v1"}, {"status": f"Digest: {digest}"},
                        {"status": f"Status: Image is up to date for {repo}:v1"}]
    cli = run_docker(fresh_engine, "pull", f"{repo}:v1")
    assert cli.returncode == 0 and "Image is up to date" in cli.stdout
    pulls = image_events(fresh, started, "pull")
    assert pulls and {(e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in pulls} == {(f"{repo}:v1", repo)}

    # By digest: the first message names the reference; nothing is tagged.
    by_digest = list(fresh.api.pull(repo, digest, stream=True, decode=True))
    assert by_digest[0] == {"status": "Pulling from apx/bb", "id": f"{repo}@{digest}"}
    assert by_digest[-1] == {"status": f"Status: Image is up to date for {repo}@{digest}"}
    for name in (f"{repo}:v1", f"{plain.host}/apx/other:v2"):
        sdk.images.remove(name)


def test_pull_with_fresh_layers_and_present_layers(fresh_engine, plain):
    """Layers the engine has are not downloaded again ("Already exists")."""
    base = {"base": b"base layer\n" * 100}
    first = make_image(base)
    # A second image sharing the first's layer, plus one of its own.
    top = layer_tar({"top": b"top layer\n"})
    config = json.loads(first.config)
    config["rootfs"]["diff_ids"].append(digest_of(top))
    config_raw = json.dumps(config).encode()
    second_manifest = build_manifest(
        Descriptor(OCI_CONFIG, digest_of(config_raw), len(config_raw)),
        [Descriptor(OCI_LAYER, digest_of(first.layers[0]), len(first.layers[0])),
         Descriptor(OCI_LAYER, digest_of(top), len(top))])
    with Registry(plain.host) as reg:
        push_image(reg, "apx/layers", "1", first)
        reg.upload_blob("apx/layers", digest_of(top), len(top), iter([top]))
        reg.upload_blob("apx/layers", digest_of(config_raw), len(config_raw), iter([config_raw]))
        reg.put_manifest("apx/layers", "2", second_manifest, "application/vnd.oci.image.manifest.v1+json")
    client = fresh_engine.client()
    repo = f"{plain.host}/apx/layers"
    one = list(client.image_pull(repo, "1"))
    base_id, top_id = digest_of(first.layers[0])[7:19], digest_of(top)[7:19]
    assert one[0] == {"status": "Pulling from apx/layers", "id": "1"}
    assert {"status": "Pulling fs layer", "progressDetail": {}, "id": base_id} in one
    statuses = [m["status"] for m in one if m.get("id") == base_id]
    assert statuses[0] == "Pulling fs layer" and statuses[-1] == "Pull complete"
    assert statuses.index("Downloading") < statuses.index("Verifying Checksum") < statuses.index(
        "Download complete") < statuses.index("Extracting")
    two = list(client.image_pull(repo, "2"))
    assert {"status": "Already exists", "progressDetail": {}, "id": base_id} in two
    assert not [m for m in two if m.get("id") == base_id and m["status"] != "Already exists"]
    assert {"status": "Pull complete", "progressDetail": {}, "id": top_id} in two
    assert two[-1] == {"status": f"Status: Downloaded newer image for {repo}:2"}
    run = run_docker(fresh_engine, "image", "inspect", "--format", "{{len .RootFS.Layers}}", f"{repo}:2")
    assert run.stdout.strip() == "2"

    # The first image again, published with a gzip layer: the stored image is kept (no download), named.
    gz = gzip.compress(first.layers[0], mtime=0)
    gz_manifest = build_manifest(Descriptor(OCI_CONFIG, first.config_digest, len(first.config)),
                                 [Descriptor(OCI_LAYER_GZIP, digest_of(gz), len(gz))])
    with Registry(plain.host) as reg:
        reg.upload_blob("apx/layers", digest_of(gz), len(gz), iter([gz]))
        reg.put_manifest("apx/layers", "gz", gz_manifest, "application/vnd.oci.image.manifest.v1+json")
    assert list(client.image_pull(repo, "gz")) == [
        {"status": "Pulling from apx/layers", "id": "gz"}, {"status": f"Digest: {digest_of(gz_manifest)}"},
        {"status": f"Status: Downloaded newer image for {repo}:gz"}]
    info = client.image_inspect(f"{repo}:gz")
    assert info["Id"] == first.config_digest
    assert sorted(info["RepoDigests"]) == sorted([f"{repo}@{first.digest}", f"{repo}@{digest_of(gz_manifest)}"])


def test_pull_of_an_index_chooses_the_host_platform(fresh_engine, plain):
    host = host_platform()
    other = "arm64" if host.architecture != "arm64" else "amd64"
    mine = make_image({"arch": host.architecture.encode()}, host.architecture, host.variant)
    foreign = make_image({"arch": other.encode()}, other)
    with Registry(plain.host) as reg:
        index = push_index(reg, "apx/multi", "1", {(host.architecture, host.variant): mine, (other, ""): foreign})
    repo = f"{plain.host}/apx/multi"
    messages = list(fresh_engine.client().image_pull(repo, "1"))
    assert messages[-2] == {"status": f"Digest: {digest_of(index)}"}  # the index's digest, as dockerd
    sdk = fresh_engine.docker_sdk()
    image = sdk.images.get(f"{repo}:1")
    assert image.id == mine.config_digest
    assert image.attrs["Architecture"] == host.architecture
    assert image.attrs["RepoDigests"] == [f"{repo}@{digest_of(index)}"]
    # Another platform on request (the tag moves to it).
    sdk.images.pull(repo, tag="1", platform=f"linux/{other}")
    image = sdk.images.get(f"{repo}:1")
    assert image.id == foreign.config_digest and image.attrs["Architecture"] == other
    with pytest.raises(docker.errors.APIError, match="no matching manifest for linux/s390x"):
        sdk.images.pull(repo, tag="1", platform="linux/s390x")


def test_pull_errors_before_streaming_are_http_errors(fresh_engine, plain):
    repo = f"{plain.host}/apx/nosuch"
    sdk = fresh_engine.docker_sdk()
    with pytest.raises(docker.errors.NotFound) as exc:
        sdk.images.pull(repo, tag="nope")
    expected = f"manifest for {repo}:nope not found: manifest unknown: manifest unknown"
    assert exc.value.response.status_code == 404 and exc.value.explanation == expected
    cli = run_docker(fresh_engine, "pull", f"{repo}:nope")
    assert cli.returncode == 1
    assert cli.stderr.strip() == f"Error response from daemon: {expected}"
    with pytest.raises(ApiError) as api:
        list(fresh_engine.client().image_pull("BAD_NAME", "1"))
    assert api.value.status == 400 and "repository name must be lowercase" in api.value.message
    port = free_port()
    refused = f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    with pytest.raises(ApiError) as api:
        list(fresh_engine.client().image_pull(f"127.0.0.1:{port}/apx/img", "1"))
    assert (api.value.status, api.value.message) == (500, refused)  # dockerd pings /v2/ first, as we do
    assert fresh_engine.client().images() == []
    assert blobs_and_ingest(fresh_engine) == ([], [])


def test_login_push_and_pull_with_an_htpasswd_registry(engine, busybox_image, locked, fresh_engine):
    repo = f"{locked.host}/apx/locked"
    run_docker(engine, "tag", busybox_image, f"{repo}:v1")
    anonymous = run_docker(engine, "push", f"{repo}:v1")
    assert anonymous.returncode == 1 and "no basic auth credentials" in anonymous.stderr

    wrong = run_docker(engine, "login", "-u", USER, "--password-stdin", locked.host, input="wrong\n")
    assert wrong.returncode == 1
    assert f"login attempt to http://{locked.host}/v2/ failed with status: 401 Unauthorized" in wrong.stderr
    right = run_docker(engine, "login", "-u", USER, "--password-stdin", locked.host, input=PASSWORD + "\n")
    assert right.returncode == 0, right.stderr
    assert "Login Succeeded" in right.stdout
    pushed = run_docker(engine, "push", f"{repo}:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert "Pushed" in pushed.stdout
    # Credentials that stopped working: the push fails in dockerd's words.
    client = engine.client()
    messages = list(client.image_push(repo, "v1", auth=auth_header(username=USER, password="wrong",
                                                                   serveraddress=locked.host)))
    assert messages[-1]["error"] == "unauthorized: authentication required"

    # A fresh engine: without credentials, with wrong ones, then logged in.
    fresh_cli = run_docker(fresh_engine, "pull", f"{repo}:v1")
    assert fresh_cli.returncode == 1
    assert f'Head "http://{locked.host}/v2/apx/locked/manifests/v1": no basic auth credentials' \
        in fresh_cli.stderr
    sdk = fresh_engine.docker_sdk()
    with pytest.raises(docker.errors.APIError, match="unauthorized: authentication required"):
        sdk.images.pull(repo, tag="v1", auth_config={"username": USER, "password": "wrong"})
    assert fresh_engine.client().images() == []
    assert blobs_and_ingest(fresh_engine) == ([], [])
    with pytest.raises(docker.errors.APIError) as exc:
        sdk.login(USER, "wrong", registry=locked.host, reauth=True)
    assert exc.value.response.status_code == 401
    assert sdk.login(USER, PASSWORD, registry=locked.host, reauth=True) == \
        {"IdentityToken": "", "Status": "Login Succeeded"}
    sdk.images.pull(repo, tag="v1")  # docker-py sends what it logged in with
    assert sdk.images.get(f"{repo}:v1").id == busybox_image
    run_docker(engine, "rmi", f"{repo}:v1")


def test_push_errors_and_push_of_every_tag(engine, busybox_image, plain, fresh_engine):
    client = engine.client()
    missing = list(client.image_push(f"{plain.host}/apx/nothing", "v1"))
    text = f"An image does not exist locally with the tag: {plain.host}/apx/nothing"
    assert missing == [{"errorDetail": {"message": text}, "error": text}]
    port = free_port()
    run_docker(engine, "tag", busybox_image, f"127.0.0.1:{port}/apx/img:v1")
    refused = f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    assert list(client.image_push(f"127.0.0.1:{port}/apx/img", "v1")) == [
        {"status": f"The push refers to repository [127.0.0.1:{port}/apx/img]"},
        {"errorDetail": {"message": refused}, "error": refused}]
    run_docker(engine, "rmi", f"127.0.0.1:{port}/apx/img:v1")
    repo = f"{plain.host}/apx/all"
    for tag in ("a", "b"):
        run_docker(engine, "tag", busybox_image, f"{repo}:{tag}")
    no_tag = list(client.image_push(repo, "nope"))
    assert no_tag[-1]["error"] == f"tag does not exist: {repo}:nope"
    cli = run_docker(engine, "push", "--all-tags", repo)
    assert cli.returncode == 0, cli.stderr
    assert "a: digest: sha256:" in cli.stdout and "b: digest: sha256:" in cli.stdout
    # `pull -a`: every tag of the repository.
    pulled = run_docker(fresh_engine, "pull", "--all-tags", repo)
    assert pulled.returncode == 0, pulled.stderr
    assert f"Status: Downloaded newer image for {repo}" in pulled.stdout
    tags = fresh_engine.docker_sdk().images.get(f"{repo}:a").tags
    assert sorted(tags) == [f"{repo}:a", f"{repo}:b"]
    for tag in ("a", "b"):
        run_docker(engine, "rmi", f"{repo}:{tag}")


def test_dockerd_pulls_what_we_push_and_we_pull_what_it_pushes(engine, busybox_image, plain, fresh_engine,
                                                               peer_docker):  # noqa: F811
    ours = f"{plain.host}/interop/ours:v1"
    run_docker(engine, "tag", busybox_image, ours)
    pushed = run_docker(engine, "push", ours)
    assert pushed.returncode == 0, pushed.stderr
    digest = re.search(r"v1: digest: (sha256:[0-9a-f]{64})", pushed.stdout).group(1)
    try:
        peer_docker.run("pull", ours)
        ran = peer_docker.run("run", "--rm", "--network", "none", ours, "echo", "ran under dockerd")
        assert ran.stdout == b"ran under dockerd\n"
        info = json.loads(peer_docker.run("image", "inspect", ours).stdout)[0]
        assert info["Id"] == busybox_image
        assert f"{plain.host}/interop/ours@{digest}" in info["RepoDigests"]
    finally:
        peer_docker.run("rmi", "-f", ours, check=False)
        run_docker(engine, "rmi", ours)

    # The other way: dockerd pushes a Docker schema 2 image with gzip layers; we pull it, run it, push it
    # back elsewhere with the same digest.
    theirs = f"{plain.host}/interop/theirs:v1"
    peer_docker.run("tag", "bb:latest", theirs)
    try:
        their_push = peer_docker.run("push", theirs).stdout.decode()
        their_digest = re.search(r"v1: digest: (sha256:[0-9a-f]{64})", their_push).group(1)
        their_id = json.loads(peer_docker.run("image", "inspect", "bb:latest").stdout)[0]["Id"]
    finally:
        peer_docker.run("rmi", theirs, check=False)
    ran = run_docker(fresh_engine, "run", "--rm", theirs, "echo", "ran under dockyard")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "ran under dockyard\n"
    info = fresh_engine.client().image_inspect(theirs)
    assert info["Id"] == their_id and info["RepoDigests"] == [f"{plain.host}/interop/theirs@{their_digest}"]
    back = f"{plain.host}/interop/back:v1"
    run_docker(fresh_engine, "tag", theirs, back)
    pushed_back = run_docker(fresh_engine, "push", back)
    assert pushed_back.returncode == 0, pushed_back.stderr
    assert f"v1: digest: {their_digest} " in pushed_back.stdout
    assert "Mounted from interop/theirs" in pushed_back.stdout


def test_auth_endpoint_errors(engine):
    port = free_port()
    with pytest.raises(ApiError) as exc:
        engine.client().auth({"username": USER, "password": PASSWORD, "serveraddress": f"127.0.0.1:{port}"})
    assert exc.value.status == 500
    assert exc.value.message == \
        f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused'


# -- a registry that serves broken blobs ------------------------------------------------------------------


class BrokenRegistry:
    """Serves `bad/img:corrupt` (a good layer, then one whose bytes do not match its digest) and
    `bad/img:short` (a layer cut short, with an honest Content-Length)."""

    def __init__(self):
        good = layer_tar({"good": b"a good layer\n" * 50})
        bad = layer_tar({"bad": b"the layer as published\n" * 50})
        self.blobs: dict[str, bytes] = {digest_of(good): good}
        self.manifests: dict[str, bytes] = {}
        # The corrupt layer: same size, other bytes.
        self.blobs[digest_of(bad)] = bad.replace(b"published", b"tampered!")
        self._add("corrupt", [good, bad])
        short = layer_tar({"short": b"a layer cut short\n" * 500})
        self.blobs[digest_of(short)] = short[:len(short) // 2]
        self._add("short", [short])
        self.http = LoopbackServer(self.handle)
        self.host = self.http.host

    def _add(self, tag: str, layers: list[bytes]) -> None:
        config = json.dumps({"architecture": host_platform().architecture, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [digest_of(x) for x in layers]}}).encode()
        self.blobs[digest_of(config)] = config
        manifest = build_manifest(Descriptor(OCI_CONFIG, digest_of(config), len(config)),
                                  [Descriptor(OCI_LAYER, digest_of(x), len(x)) for x in layers])
        self.manifests[tag] = self.manifests[digest_of(manifest)] = manifest

    def handle(self, h) -> None:
        path = h.path.split("?", 1)[0]
        headers = {"Content-Type": "application/json"}
        if path == "/v2/":
            status, body = 200, b"{}"
        elif path.startswith("/v2/bad/img/manifests/") and path.rsplit("/", 1)[1] in self.manifests:
            body = self.manifests[path.rsplit("/", 1)[1]]
            status = 200
            headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                       "Docker-Content-Digest": digest_of(body)}
        elif path.startswith("/v2/bad/img/blobs/") and path.rsplit("/", 1)[1] in self.blobs:
            status, body = 200, self.blobs[path.rsplit("/", 1)[1]]
            headers = {"Content-Type": "application/octet-stream"}
        else:
            status = 404
            body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
        reply(h, status, body, headers)

    def stop(self) -> None:
        self.http.stop()


def test_corrupted_or_short_blobs_store_nothing(fresh_engine):
    broken = BrokenRegistry()
    try:
        client = fresh_engine.client()
        corrupt = list(client.image_pull(f"{broken.host}/bad/img", "corrupt"))
        assert corrupt[0] == {"status": "Pulling from bad/img", "id": "corrupt"}
        bad_digest = json.loads(broken.manifests["corrupt"])["layers"][1]["digest"]
        assert corrupt[-1]["error"] == f"filesystem layer verification failed for digest {bad_digest}"
        cli = run_docker(fresh_engine, "pull", f"{broken.host}/bad/img:short")
        assert cli.returncode == 1
        assert "unexpected end of data" in cli.stderr, cli.stderr
        # Nothing stored: no image, no blob, no ingest file, no snapshot.
        assert client.images(all=True) == []
        assert blobs_and_ingest(fresh_engine) == ([], [])
        for snapshotter in (fresh_engine.data_root / "snapshots").iterdir():
            assert list((snapshotter / "snapshots").iterdir()) == [], "a layer unpacked from the good blob is left"
    finally:
        broken.stop()
