"""`dockyard-registry serve`, a real process on a loopback port, driven by skopeo, dockerd and raw HTTP."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import uuid

import bcrypt
import pytest

from tests.support.busybox import make_rootfs
from tests.support.dockerd import need_tool, peer_docker  # noqa: F401  (fixture)
from tests.support.images import Img, write_layout

pytestmark = [pytest.mark.peers]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(os.path.dirname(sys.executable), "dockyard-registry")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command() -> list[str]:
    if os.path.exists(SCRIPT):
        return [SCRIPT]
    return [sys.executable, "-m", "dockyard.registry"]  # not installed as a console script yet


class Registry:
    """One `dockyard-registry serve` process with its own root, log and port."""

    def __init__(self, workdir: str, *args: str, tls: tuple[str, str] | None = None):
        self.workdir = workdir
        self.root = os.path.join(workdir, "root")
        self.log_path = os.path.join(workdir, f"registry-{uuid.uuid4().hex[:6]}.log")
        self.args = list(args)
        self.tls = tls
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.auth: tuple[str, str] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Registry:
        os.makedirs(self.workdir, exist_ok=True)
        for _attempt in range(3):
            self.port = free_port()
            argv = [*command(), "serve", "--addr", self.addr, "--root", self.root, *self.args]
            if self.tls:
                argv += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             cwd=REPO_ROOT, start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    self.request("GET", "/v2/")
                    return self
                except OSError:
                    time.sleep(0.05)
            if self.proc.poll() is None:
                self.stop()
                raise AssertionError(f"the registry did not answer within {timeout} s:\n{self.log()}")
            if "Address already in use" not in self.log():
                raise AssertionError(f"the registry exited ({self.proc.returncode}):\n{self.log()}")
        raise AssertionError(f"no free port found:\n{self.log()}")

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit status (SIGKILL after 20 s, then the test fails)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"the registry ignored SIGTERM:\n{self.log()}") from None
        return self.proc.returncode

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-5000:]
        except OSError:
            return ""

    def connection(self) -> http.client.HTTPConnection:
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls[0])
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method: str, path: str, body=None, headers: dict | None = None, auth=None):
        """(status, headers (lower-case names), body) of one request on a fresh connection."""
        headers = dict(headers or {})
        auth = auth or self.auth
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            joined: dict[str, str] = {}
            for k, v in resp.getheaders():  # repeated headers joined, as HTTP allows
                joined[k.lower()] = f"{joined[k.lower()]}, {v}" if k.lower() in joined else v
            return resp.status, joined, data
        finally:
            conn.close()

    # -- small helpers on top of request --------------------------------------------------------

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha(data)
        status, headers, body = self.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data,
                                             {"Content-Type": "application/octet-stream"})
        assert status == 201, (status, body)
        assert headers["docker-content-digest"] == digest
        return digest

    def push_manifest(self, repo: str, ref: str, manifest: dict | bytes, media_type: str = OCI_MANIFEST):
        data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        return self.request("PUT", f"/v2/{repo}/manifests/{ref}", data, {"Content-Type": media_type})


def error_code(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


def busybox_layer(tmp: str) -> bytes:
    root = make_rootfs(os.path.join(tmp, "rootfs"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root, arcname=".")
    shutil.rmtree(root)
    return buf.getvalue()


def image_manifest(reg: Registry, repo: str, layers: list[bytes], media_type: str = OCI_MANIFEST) -> dict:
    """Push a config and `layers` as blobs of `repo`; the manifest that names them (not pushed)."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(x) for x in layers]}}).encode()
    docker = media_type == DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json" if docker
                   else "application/vnd.oci.image.config.v1+json",
                   "digest": reg.push_blob(repo, config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar" if docker
                    else "application/vnd.oci.image.layer.v1.tar",
                    "digest": reg.push_blob(repo, layer), "size": len(layer)} for layer in layers],
    }
    return manifest


def stored_blobs(reg: Registry) -> set[str]:
    directory = os.path.join(reg.root, "content", "blobs", "sha256")
    return {"sha256:" + name for name in os.listdir(directory)} if os.path.isdir(directory) else set()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("registry")
    yield str(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(workdir):
    reg = Registry(os.path.join(workdir, "main")).start()
    yield reg
    assert reg.stop() == 0, reg.log()


@pytest.fixture(scope="module")
def layout(workdir):
    """An OCI layout with one busybox image tagged `1`, for skopeo to copy."""
    path = os.path.join(workdir, "layout")
    img = Img([busybox_layer(workdir)], tags=["1"], compress=True)
    write_layout(path, [img])
    return path


@pytest.fixture(scope="module")
def skopeo():
    return need_tool("skopeo", "skopeo")


def run(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


# --- the real tools ------------------------------------------------------------------------------


def test_base_endpoint(registry):
    status, headers, body = registry.request("GET", "/v2/")
    assert status == 200 and json.loads(body) == {}
    assert headers["docker-distribution-api-version"] == "registry/2.0"


def test_skopeo_copies_in_and_out(registry, layout, skopeo, workdir):
    dest = f"docker://{registry.addr}/t/bb:1"
    run(skopeo, "copy", "--dest-tls-verify=false", f"oci:{layout}:1", dest)
    info = json.loads(run(skopeo, "inspect", "--tls-verify=false", dest).stdout)
    with open(os.path.join(layout, "index.json")) as f:
        pushed = json.load(f)["manifests"][0]["digest"]
    assert info["Digest"] == pushed
    assert info["RepoTags"] == ["1"] and info["Os"] == "linux"
    raw = json.loads(run(skopeo, "inspect", "--raw", "--tls-verify=false", dest).stdout)
    assert raw["mediaType"] == OCI_MANIFEST
    tags = json.loads(run(skopeo, "list-tags", "--tls-verify=false", f"docker://{registry.addr}/t/bb").stdout)
    assert tags["Tags"] == ["1"]

    out = os.path.join(workdir, "out")
    run(skopeo, "copy", "--src-tls-verify=false", dest, f"oci:{out}:back")
    assert sorted(os.listdir(os.path.join(out, "blobs", "sha256"))) == \
        sorted(os.listdir(os.path.join(layout, "blobs", "sha256")))
    with open(os.path.join(out, "index.json")) as f:
        assert json.load(f)["manifests"][0]["digest"] == pushed

    status, headers, _ = registry.request("HEAD", "/v2/t/bb/manifests/1")
    assert status == 200 and headers["docker-content-digest"] == pushed
    assert headers["content-type"] == OCI_MANIFEST


def test_docker_push_and_pull(registry, peer_docker):  # noqa: F811
    ref = f"{registry.addr}/t/bb:docker"
    peer_docker.run("tag", "bb:latest", ref)
    try:
        out = peer_docker.run("push", ref).stdout.decode()
        assert "digest: sha256:" in out
        peer_docker.run("rmi", ref)
        peer_docker.run("pull", ref)
        run_out = peer_docker.run("run", "--rm", "--network", "none", ref, "echo", "pulled").stdout
        assert run_out.strip() == b"pulled"
    finally:
        peer_docker.run("rmi", "-f", ref, check=False)
    status, headers, body = registry.request("GET", "/v2/t/bb/manifests/docker",
                                             headers={"Accept": DOCKER_MANIFEST})
    assert status == 200 and headers["content-type"] == DOCKER_MANIFEST
    assert json.loads(body)["mediaType"] == DOCKER_MANIFEST


def test_docker_pull_of_a_missing_tag_names_it(registry, peer_docker):  # noqa: F811
    proc = peer_docker.run("pull", f"{registry.addr}/t/bb:nope", check=False)
    assert proc.returncode != 0
    assert b"manifest unknown" in proc.stderr


# --- uploads by hand -------------------------------------------------------------------------------


def test_chunked_upload(registry):
    data = os.urandom(300_000)
    status, headers, _ = registry.request("POST", "/v2/chunks/a/blobs/uploads/")
    assert status == 202 and headers["range"] == "0-0"
    location = headers["location"]
    assert location.startswith("/v2/chunks/a/blobs/uploads/")
    assert headers["docker-upload-uuid"] == location.rsplit("/", 1)[1]

    status, headers, _ = registry.request("PATCH", location, data[:100_000],
                                          {"Content-Range": "0-99999", "Content-Type": "application/octet-stream"})
    assert status == 202 and headers["range"] == "0-99999"
    # Out of order: the next chunk must start at 100000.
    status, headers, body = registry.request("PATCH", location, data[200_000:],
                                             {"Content-Range": "200000-299999"})
    assert status == 416 and error_code(body) == "BLOB_UPLOAD_INVALID"
    status, headers, _ = registry.request("GET", location)
    assert status == 204 and headers["range"] == "0-99999"
    # A streamed chunk (no Content-Range), then the last one with the PUT.
    status, headers, _ = registry.request("PATCH", headers["location"], data[100_000:250_000])
    assert status == 202 and headers["range"] == "0-249999"
    digest = sha(data)
    status, headers, _ = registry.request("PUT", f"{location}?digest={digest}", data[250_000:],
                                          {"Content-Range": "250000-299999"})
    assert status == 201
    assert headers["location"] == f"/v2/chunks/a/blobs/{digest}"
    assert headers["docker-content-digest"] == digest
    # The session is over.
    status, _, body = registry.request("GET", location)
    assert status == 404 and error_code(body) == "BLOB_UPLOAD_UNKNOWN"

    status, headers, body = registry.request("GET", f"/v2/chunks/a/blobs/{digest}")
    assert status == 200 and body == data and headers["docker-content-digest"] == digest
    status, headers, body = registry.request("HEAD", f"/v2/chunks/a/blobs/{digest}")
    assert status == 200 and headers["content-length"] == str(len(data)) and body == b""
    status, headers, body = registry.request("GET", f"/v2/chunks/a/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20]
    assert headers["content-range"] == f"bytes 10-19/{len(data)}"
    status, headers, body = registry.request("GET", f"/v2/chunks/a/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert status == 206 and body == data[-5:]
    status, headers, _ = registry.request("GET", f"/v2/chunks/a/blobs/{digest}",
                                          headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"


def test_cancelled_upload_is_gone(registry):
    status, headers, _ = registry.request("POST", "/v2/chunks/b/blobs/uploads/")
    location = headers["location"]
    assert registry.request("PATCH", location, b"x" * 1000)[0] == 202
    status, _, _ = registry.request("DELETE", location)
    assert status == 204
    status, _, body = registry.request("PATCH", location, b"y")
    assert status == 404 and error_code(body) == "BLOB_UPLOAD_UNKNOWN"
    assert not os.path.exists(os.path.join(registry.root, "uploads", location.rsplit("/", 1)[1]))


def test_upload_belongs_to_its_repository(registry):
    status, headers, _ = registry.request("POST", "/v2/chunks/c/blobs/uploads/")
    upload_id = headers["location"].rsplit("/", 1)[1]
    status, _, body = registry.request("PATCH", f"/v2/chunks/other/blobs/uploads/{upload_id}", b"data")
    assert status == 404 and error_code(body) == "BLOB_UPLOAD_UNKNOWN"
    registry.request("DELETE", headers["location"])


def test_digest_mismatch_stores_nothing(registry):
    data = b"these bytes are not what the digest says" * 1000
    wrong = sha(b"something else")
    before = stored_blobs(registry)
    status, _, body = registry.request("POST", f"/v2/mismatch/x/blobs/uploads/?digest={wrong}", data)
    assert status == 400 and error_code(body) == "DIGEST_INVALID"

    status, headers, _ = registry.request("POST", "/v2/mismatch/x/blobs/uploads/")
    location = headers["location"]
    assert registry.request("PATCH", location, data)[0] == 202
    status, _, body = registry.request("PUT", f"{location}?digest={wrong}")
    assert status == 400 and error_code(body) == "DIGEST_INVALID"
    assert json.loads(body)["errors"][0]["detail"]["received"] == sha(data)
    assert registry.request("GET", location)[0] == 404  # the session went with its bytes

    for digest in (wrong, sha(data)):
        status, _, body = registry.request("HEAD", f"/v2/mismatch/x/blobs/{digest}")
        assert status == 404
    assert stored_blobs(registry) == before
    assert os.listdir(os.path.join(registry.root, "uploads")) == [] or \
        all(name != location.rsplit("/", 1)[1] for name in os.listdir(os.path.join(registry.root, "uploads")))
    status, _, body = registry.request("GET", "/v2/mismatch/x/tags/list")
    assert status == 404 and error_code(body) == "NAME_UNKNOWN"


def test_cross_repository_mount(registry):
    data = os.urandom(5000)
    digest = registry.push_blob("mount/src", data)
    # Knowing the digest is not enough to read it from another repository.
    status, _, body = registry.request("GET", f"/v2/mount/dst/blobs/{digest}")
    assert status == 404 and error_code(body) == "BLOB_UNKNOWN"
    status, _, _ = registry.request("HEAD", f"/v2/mount/dst/blobs/{digest}")
    assert status == 404

    status, headers, _ = registry.request("POST", f"/v2/mount/dst/blobs/uploads/?mount={digest}&from=mount/src")
    assert status == 201
    assert headers["location"] == f"/v2/mount/dst/blobs/{digest}"
    assert headers["docker-content-digest"] == digest
    status, _, body = registry.request("GET", f"/v2/mount/dst/blobs/{digest}")
    assert status == 200 and body == data

    # Not in the source: an upload session instead.
    unknown = sha(b"never pushed")
    status, headers, _ = registry.request("POST", f"/v2/mount/dst2/blobs/uploads/?mount={unknown}&from=mount/src")
    assert status == 202 and "/blobs/uploads/" in headers["location"]
    registry.request("DELETE", headers["location"])
    # In the store (pushed to mount/src) but the named source does not hold it: no mount either.
    status, headers, _ = registry.request("POST", f"/v2/mount/dst3/blobs/uploads/?mount={digest}&from=chunks/a")
    assert status == 202
    registry.request("DELETE", headers["location"])


def test_streams_a_large_blob_without_holding_it(registry):
    """256 MiB up and down; the server's peak memory stays far below that."""
    size, piece = 256 << 20, os.urandom(1 << 20)
    h = hashlib.sha256()
    for _ in range(size // len(piece)):
        h.update(piece)
    digest = "sha256:" + h.hexdigest()

    def body():
        for _ in range(size // len(piece)):
            yield piece

    status, headers, _ = registry.request("POST", "/v2/large/blob/blobs/uploads/")
    conn = registry.connection()
    conn.request("PATCH", headers["location"], body=body(), encode_chunked=True)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 202 and resp.getheader("Range") == f"0-{size - 1}"
    status, _, _ = registry.request("PUT", f"{headers['location']}?digest={digest}")
    assert status == 201

    conn = registry.connection()
    conn.request("GET", f"/v2/large/blob/blobs/{digest}")
    resp = conn.getresponse()
    got, h2 = 0, hashlib.sha256()
    while chunk := resp.read(1 << 20):
        got += len(chunk)
        h2.update(chunk)
    conn.close()
    assert got == size and "sha256:" + h2.hexdigest() == digest
    with open(f"/proc/{registry.proc.pid}/status") as f:
        peak_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    assert peak_kib < 128 * 1024, f"peak RSS {peak_kib} KiB"
    assert registry.request("DELETE", f"/v2/large/blob/blobs/{digest}")[0] == 202
    os.unlink(os.path.join(registry.root, "content", "blobs", "sha256", digest[7:]))


# --- manifests ----------------------------------------------------------------------------------------


def test_manifest_with_missing_blob_is_refused(registry):
    manifest = image_manifest(registry, "manifests/missing", [b"layer one"])
    manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                               "digest": sha(b"never pushed layer"), "size": 18})
    status, _, body = registry.push_manifest("manifests/missing", "v1", manifest)
    assert status == 400 and error_code(body) == "MANIFEST_BLOB_UNKNOWN"
    assert registry.request("HEAD", "/v2/manifests/missing/manifests/v1")[0] == 404
    assert registry.request("GET", "/v2/manifests/missing/tags/list")[2] and \
        json.loads(registry.request("GET", "/v2/manifests/missing/tags/list")[2])["tags"] == []
    # A blob of another repository does not count either.
    other = registry.push_blob("manifests/elsewhere", b"elsewhere")
    manifest["layers"][-1] = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": other, "size": 9}
    status, _, body = registry.push_manifest("manifests/missing", "v1", manifest)
    assert status == 400 and error_code(body) == "MANIFEST_BLOB_UNKNOWN"


def test_manifests_keep_their_type_and_digest(registry):
    repo = "manifests/kinds"
    docker = image_manifest(registry, repo, [b"docker layer"], DOCKER_MANIFEST)
    docker_bytes = json.dumps(docker, indent=3).encode()  # stored byte for byte, whatever the formatting
    status, headers, _ = registry.push_manifest(repo, "docker", docker_bytes, DOCKER_MANIFEST)
    assert status == 201 and headers["docker-content-digest"] == sha(docker_bytes)
    assert headers["location"] == f"/v2/{repo}/manifests/{sha(docker_bytes)}"

    oci = image_manifest(registry, repo, [b"oci layer"])
    oci_bytes = json.dumps(oci).encode()
    # By digest: the digest is checked.
    status, _, body = registry.push_manifest(repo, sha(b"not it"), oci_bytes)
    assert status == 400 and error_code(body) == "DIGEST_INVALID"
    # By digest, tagged on the way (OCI 1.1 tag parameters).
    status, headers, _ = registry.push_manifest(repo, f"{sha(oci_bytes)}?tag=t1&tag=t2", oci_bytes)
    assert status == 201 and headers["oci-tag"] == "t1, t2"
    assert json.loads(registry.request("GET", f"/v2/{repo}/tags/list")[2])["tags"] == ["docker", "t1", "t2"]
    status, _, body = registry.push_manifest(repo, f"{sha(oci_bytes)}?tag=-bad", oci_bytes)
    assert status == 400 and error_code(body) == "TAG_INVALID"

    index = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": sha(docker_bytes), "size": len(docker_bytes),
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    status, _, _ = registry.push_manifest(repo, "list", index, DOCKER_LIST)
    assert status == 201
    oci_index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(b"no such manifest"), "size": 3}]}
    status, _, body = registry.push_manifest(repo, "index", oci_index, OCI_INDEX)
    assert status == 400 and error_code(body) == "MANIFEST_BLOB_UNKNOWN"

    for ref, media_type, raw in (("docker", DOCKER_MANIFEST, docker_bytes), (sha(oci_bytes), OCI_MANIFEST, oci_bytes)):
        status, headers, body = registry.request("GET", f"/v2/{repo}/manifests/{ref}")
        assert status == 200 and body == raw
        assert headers["content-type"] == media_type and headers["docker-content-digest"] == sha(raw)
    # Accept is honoured: a client that reads only OCI does not get a Docker manifest by tag.
    status, _, body = registry.request("GET", f"/v2/{repo}/manifests/docker", headers={"Accept": OCI_MANIFEST})
    assert status == 404 and error_code(body) == "MANIFEST_UNKNOWN"
    status, _, _ = registry.request("GET", f"/v2/{repo}/manifests/docker",
                                    headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST};q=0.9"})
    assert status == 200

    # A mismatch between Content-Type and the body's mediaType, a schema 1 push, and garbage.
    status, _, body = registry.push_manifest(repo, "bad", docker_bytes, OCI_MANIFEST)
    assert status == 400 and error_code(body) == "MANIFEST_INVALID"
    status, _, body = registry.push_manifest(repo, "bad", {"schemaVersion": 1, "name": "x"},
                                             "application/vnd.docker.distribution.manifest.v1+prettyjws")
    assert status == 400 and error_code(body) == "MANIFEST_INVALID"
    status, _, body = registry.push_manifest(repo, "bad", b"{not json", OCI_MANIFEST)
    assert status == 400 and error_code(body) == "MANIFEST_INVALID"

    # Deleting a tag leaves the manifest; deleting by digest takes its tags along.
    assert registry.request("DELETE", f"/v2/{repo}/manifests/list")[0] == 202
    assert registry.request("GET", f"/v2/{repo}/manifests/list")[0] == 404
    assert registry.request("DELETE", f"/v2/{repo}/manifests/{sha(docker_bytes)}")[0] == 202
    status, _, body = registry.request("GET", f"/v2/{repo}/manifests/docker")
    assert status == 404 and error_code(body) == "MANIFEST_UNKNOWN"
    assert registry.request("DELETE", f"/v2/{repo}/manifests/{sha(docker_bytes)}")[0] == 404


def test_referrers(registry):
    repo = "manifests/referrers"
    subject = image_manifest(registry, repo, [b"subject layer"])
    subject_bytes = json.dumps(subject).encode()
    assert registry.push_manifest(repo, "v1", subject_bytes)[0] == 201
    empty = registry.push_blob(repo, b"{}")
    artifact = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                "layers": [], "annotations": {"org.example": "yes"},
                "subject": {"mediaType": OCI_MANIFEST, "digest": sha(subject_bytes), "size": len(subject_bytes)}}
    artifact_bytes = json.dumps(artifact).encode()
    status, headers, _ = registry.push_manifest(repo, sha(artifact_bytes), artifact_bytes)
    assert status == 201 and headers["oci-subject"] == sha(subject_bytes)
    status, headers, body = registry.request("GET", f"/v2/{repo}/referrers/{sha(subject_bytes)}")
    assert status == 200 and headers["content-type"] == OCI_INDEX
    assert json.loads(body)["manifests"] == [{
        "mediaType": OCI_MANIFEST, "digest": sha(artifact_bytes), "size": len(artifact_bytes),
        "artifactType": "application/vnd.example.sig", "annotations": {"org.example": "yes"}}]
    status, headers, body = registry.request("GET", f"/v2/{repo}/referrers/{sha(subject_bytes)}"
                                                    "?artifactType=application/other")
    assert json.loads(body)["manifests"] == [] and headers["oci-filters-applied"] == "artifactType"


def test_tags_and_catalog_paginate(registry):
    repo = "paged/repo"
    manifest = json.dumps(image_manifest(registry, repo, [b"paged layer"])).encode()
    tags = ["v10", "v2", "a", "latest", "v1", "Z"]
    for tag in tags:
        assert registry.push_manifest(repo, tag, manifest)[0] == 201
    status, _, body = registry.request("GET", f"/v2/{repo}/tags/list")
    assert json.loads(body) == {"name": repo, "tags": sorted(tags)}
    seen, path = [], f"/v2/{repo}/tags/list?n=4"
    while path:
        status, headers, body = registry.request("GET", path)
        assert status == 200
        seen += json.loads(body)["tags"]
        link = headers.get("link")
        path = link[1:link.index(">")] if link else None
    assert seen == sorted(tags)
    status, _, body = registry.request("GET", f"/v2/{repo}/tags/list?n=2&last=latest")
    assert json.loads(body)["tags"] == ["v1", "v10"]
    status, _, body = registry.request("GET", f"/v2/{repo}/tags/list?n=x")
    assert status == 400 and error_code(body) == "PAGINATION_NUMBER_INVALID"

    status, _, body = registry.request("GET", "/v2/_catalog")
    everything = json.loads(body)["repositories"]
    assert repo in everything and everything == sorted(everything)
    status, headers, body = registry.request("GET", "/v2/_catalog?n=1")
    assert json.loads(body)["repositories"] == everything[:1]
    assert headers["link"] == f'</v2/_catalog?n=1&last={everything[0].replace("/", "%2F")}>; rel="next"'


@pytest.mark.parametrize("path,code", [
    ("/v2/../etc/tags/list", "NAME_INVALID"),
    ("/v2/a/../../b/manifests/latest", "NAME_INVALID"),
    ("/v2/%2e%2e/x/blobs/uploads/", "NAME_INVALID"),
    ("/v2/a/%2e%2e%2fb/tags/list", "NAME_INVALID"),
    ("/v2/UPPER/tags/list", "NAME_INVALID"),
    ("/v2/a//b/tags/list", "NAME_INVALID"),
    ("/v2/-a/tags/list", "NAME_INVALID"),
    ("/v2/" + "a" * 256 + "/tags/list", "NAME_INVALID"),
    ("/v2/ok/manifests/-bad-tag", "TAG_INVALID"),
    ("/v2/ok/blobs/sha256:abc", "DIGEST_INVALID"),
    ("/v2/ok/blobs/uploads/../../etc", "UNSUPPORTED"),  # names no endpoint at all
    ("/v2/ok/blobs/uploads/..%2f..%2fetc", "UNSUPPORTED"),
    ("/v2/ok/manifests/..", "TAG_INVALID"),
    ("/v2/ok/blobs/uploads/notanid", "BLOB_UPLOAD_UNKNOWN"),
])
def test_bad_names_are_refused(registry, path, code):
    status, _, body = registry.request("POST" if path.endswith("uploads/") else "GET", path)
    assert error_code(body) == code, body
    assert status in (400, 404)
    # Nothing named by the path was created anywhere under the root.
    assert not os.path.exists(os.path.join(registry.root, "etc"))


def test_wrong_method_and_unknown_endpoint(registry):
    status, headers, body = registry.request("DELETE", "/v2/_catalog")
    assert status == 405 and error_code(body) == "UNSUPPORTED" and headers["allow"] == "GET"
    status, _, body = registry.request("GET", "/v3/")
    assert status == 404 and error_code(body) == "UNSUPPORTED"


# --- auth, TLS, the command ------------------------------------------------------------------------


@pytest.fixture
def htpasswd_registry(tmp_path):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5)).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"# accounts\nalice:$2y${hashed[4:]}\n")  # as `htpasswd -B` writes it
    reg = Registry(str(tmp_path), "--htpasswd", str(path), "--realm", "Test Realm").start()
    yield reg
    assert reg.stop() == 0, reg.log()


def test_htpasswd(htpasswd_registry, layout, skopeo):
    reg = htpasswd_registry
    status, headers, body = reg.request("GET", "/v2/")
    assert status == 401 and error_code(body) == "UNAUTHORIZED"
    assert headers["www-authenticate"] == 'Basic realm="Test Realm"'
    status, headers, body = reg.request("GET", "/v2/", auth=("alice", "wrong"))
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="Test Realm"'
    assert reg.request("GET", "/v2/", auth=("mallory", "s3cret"))[0] == 401
    assert reg.request("GET", "/v2/", auth=("alice", "s3cret"))[0] == 200
    # Every endpoint, not just the base: a push without credentials is refused before its body is read.
    status, _, body = reg.request("POST", "/v2/auth/x/blobs/uploads/?digest=" + sha(b"abc"), b"abc")
    assert status == 401 and error_code(body) == "UNAUTHORIZED"

    dest = f"docker://{reg.addr}/auth/bb:1"
    run(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret", f"oci:{layout}:1", dest)
    proc = run(skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", "alice:nope", f"oci:{layout}:1",
               f"docker://{reg.addr}/auth/bb:2", check=False)
    assert proc.returncode != 0 and ("401" in proc.stderr or "unauthorized" in proc.stderr.lower())
    proc = run(skopeo, "inspect", "--tls-verify=false", dest, check=False)
    assert proc.returncode != 0
    info = json.loads(run(skopeo, "inspect", "--tls-verify=false", "--creds", "alice:s3cret", dest).stdout)
    assert info["RepoTags"] == ["1"]
    assert reg.request("GET", "/v2/auth/bb/tags/list", auth=("alice", "s3cret"))[0] == 200


def test_docker_login_push_pull_with_htpasswd(htpasswd_registry, peer_docker, tmp_path):  # noqa: F811
    reg = htpasswd_registry
    env = dict(peer_docker.env, DOCKER_CONFIG=str(tmp_path / "docker-config"))  # not the host's credentials

    def docker(*args, stdin=None, check=True):
        proc = subprocess.run(["docker", *args], input=stdin, env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode:
            raise AssertionError(f"docker {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    ref = f"{reg.addr}/auth/bb:docker"
    docker("tag", "bb:latest", ref)
    try:
        proc = docker("push", ref, check=False)
        assert proc.returncode != 0 and "no basic auth credentials" in proc.stderr
        proc = docker("login", "-u", "alice", "--password-stdin", reg.addr, stdin="wrong\n", check=False)
        assert proc.returncode != 0 and ("401" in proc.stderr or "unauthorized" in proc.stderr.lower())
        docker("login", "-u", "alice", "--password-stdin", reg.addr, stdin="s3cret\n")
        docker("push", ref)
        docker("rmi", ref)
        docker("pull", ref)
    finally:
        docker("rmi", "-f", ref, check=False)


def test_tls(tmp_path, layout, skopeo):
    need_tool("openssl", "openssl")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    reg = Registry(str(tmp_path), tls=(cert, key)).start()
    try:
        assert reg.request("GET", "/v2/")[0] == 200  # verified against the certificate
        certs = tmp_path / "certs"
        certs.mkdir()
        shutil.copy(cert, certs / "ca.crt")
        dest = f"docker://{reg.addr}/tls/bb:1"
        run(skopeo, "copy", "--dest-cert-dir", str(certs), f"oci:{layout}:1", dest)
        assert json.loads(run(skopeo, "inspect", "--cert-dir", str(certs), dest).stdout)["RepoTags"] == ["1"]
    finally:
        assert reg.stop() == 0, reg.log()


def test_refuses_plain_http_off_loopback(tmp_path):
    proc = subprocess.run([*command(), "serve", "--addr", "0.0.0.0:0", "--root", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=30, cwd=REPO_ROOT)
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr and "--insecure" in proc.stderr
    proc = subprocess.run([*command(), "serve", "--addr", "127.0.0.1:0", "--root", str(tmp_path / "r"),
                           "--tls-cert", str(tmp_path / "missing.pem")],
                          capture_output=True, text=True, timeout=30, cwd=REPO_ROOT)
    assert proc.returncode == 2 and "--tls-cert and --tls-key go together" in proc.stderr
    bad = tmp_path / "htpasswd"
    bad.write_text("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    proc = subprocess.run([*command(), "serve", "--addr", "127.0.0.1:0", "--root", str(tmp_path / "r"),
                           "--htpasswd", str(bad)], capture_output=True, text=True, timeout=30, cwd=REPO_ROOT)
    assert proc.returncode == 2 and "not bcrypt" in proc.stderr


def test_module_entry_point_and_help():
    proc = subprocess.run([sys.executable, "-m", "dockyard.registry", "serve", "--help"], capture_output=True,
                          text=True, timeout=30, cwd=REPO_ROOT)
    assert proc.returncode == 0 and "--htpasswd" in proc.stdout and "--insecure" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "dockyard.registry"], capture_output=True, text=True,
                          timeout=30, cwd=REPO_ROOT)
    assert proc.returncode == 2 and "serve" in proc.stderr


def test_a_crash_mid_chunk_leaves_only_what_was_committed(tmp_path):
    reg = Registry(str(tmp_path)).start()
    try:
        status, headers, _ = reg.request("POST", "/v2/crash/repo/blobs/uploads/")
        location = headers["location"]
        staged = os.path.join(reg.root, "uploads", location.rsplit("/", 1)[1])
        committed = os.urandom(1000)
        assert reg.request("PATCH", location, committed)[0] == 202
        # A second chunk that the server is still receiving when it dies.
        sock = socket.create_connection(("127.0.0.1", reg.port))
        sock.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n".encode())
        sock.sendall(b"z" * (3 << 20))
        deadline = time.monotonic() + 10
        while os.path.getsize(staged) <= len(committed) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.path.getsize(staged) > len(committed), "the server wrote none of the chunk"
        reg.proc.kill()
        reg.proc.wait()
        sock.close()
    finally:
        reg.stop()
    reg = Registry(str(tmp_path)).start()
    try:
        status, headers, _ = reg.request("GET", location)
        assert status == 204 and headers["range"] == "0-999"
        rest = os.urandom(500)
        assert reg.request("PATCH", location, rest, {"Content-Range": "1000-1499"})[0] == 202
        digest = sha(committed + rest)
        status, _, body = reg.request("PUT", f"{location}?digest={digest}")
        assert status == 201, body
        assert reg.request("GET", f"/v2/crash/repo/blobs/{digest}")[2] == committed + rest
    finally:
        assert reg.stop() == 0, reg.log()


def test_state_survives_a_restart_and_the_root_is_locked(tmp_path):
    reg = Registry(str(tmp_path)).start()
    try:
        manifest = json.dumps(image_manifest(reg, "restart/repo", [b"restart layer"])).encode()
        assert reg.push_manifest("restart/repo", "v1", manifest)[0] == 201
        status, headers, _ = reg.request("POST", "/v2/restart/repo/blobs/uploads/")
        location = headers["location"]
        assert reg.request("PATCH", location, b"first half ")[0] == 202
        # A second server on the same root is refused.
        second = subprocess.run([*command(), "serve", "--addr", "127.0.0.1:0", "--root", reg.root],
                                capture_output=True, text=True, timeout=30, cwd=REPO_ROOT)
        assert second.returncode == 2 and "another registry server" in second.stderr
    finally:
        assert reg.stop() == 0, reg.log()
    reg = Registry(str(tmp_path)).start()
    try:
        status, headers, body = reg.request("GET", "/v2/restart/repo/manifests/v1")
        assert status == 200 and body == manifest
        status, headers, _ = reg.request("GET", location)
        assert status == 204 and headers["range"] == "0-10"
        assert reg.request("PATCH", location, b"second half")[0] == 202
        digest = sha(b"first half second half")
        status, _, body = reg.request("PUT", f"{location}?digest={digest}")
        assert status == 201, body
        assert reg.request("GET", f"/v2/restart/repo/blobs/{digest}")[2] == b"first half second half"
    finally:
        assert reg.stop() == 0, reg.log()
