"""The registry server's pure parts: routes and names, ranges, Accept, pushed manifests, htpasswd, --addr."""

from __future__ import annotations

import base64
import json

import bcrypt
import pytest

from dockyard.registry import protocol
from dockyard.registry.auth import Htpasswd, HtpasswdError, challenge, parse_basic, parse_htpasswd
from dockyard.registry.errors import RegistryError
from dockyard.registry.manifests import parse_pushed
from dockyard.registry.protocol import Route
from dockyard.registry.server import UsageError, is_loopback, parse_addr

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def code_of(fn, *args) -> str:
    with pytest.raises(RegistryError) as info:
        fn(*args)
    return info.value.code


# --- routes and names -----------------------------------------------------------------------------

@pytest.mark.parametrize("path,expected", [
    ("/v2/", Route("base")),
    ("/v2", Route("base")),
    ("/v2/_catalog", Route("catalog")),
    ("/v2/library/bb/tags/list", Route("tags", "library/bb")),
    ("/v2/a/manifests/latest", Route("manifest", "a", "latest")),
    ("/v2/a/b/c/manifests/" + D1, Route("manifest", "a/b/c", D1)),
    ("/v2/a/blobs/" + D1, Route("blob", "a", D1)),
    ("/v2/a/blobs/uploads/", Route("uploads", "a")),
    ("/v2/a/blobs/uploads", Route("uploads", "a")),
    ("/v2/a/blobs/uploads/" + "f" * 32, Route("upload", "a", "f" * 32)),
    ("/v2/a/referrers/" + D1, Route("referrers", "a", D1)),
    # Names may contain the words the routes use.
    ("/v2/blobs/manifests/tags/list", Route("tags", "blobs/manifests")),
    ("/v2/x/blobs/uploads/blobs/" + D1, Route("blob", "x/blobs/uploads", D1)),
    ("/v2/a/manifests/sha256%3A" + "1" * 64, Route("manifest", "a", D1)),
    ("/v2/a%2fb/tags/list", Route("tags", "a/b")),  # decoded first, then checked like any name
    ("/v3/", None),
    ("/v2/a/unknown/x", None),
    ("/v2/a/blobs/uploads/../../etc", None),
])
def test_routes(path, expected):
    assert protocol.route(path) == expected


@pytest.mark.parametrize("name", [
    "a", "library/busybox", "a0/b-c/d.e/f_g", "a__b", "a---b", "x" * 255, "t/bb",
])
def test_valid_names(name):
    assert protocol.check_name(name) == name


@pytest.mark.parametrize("name", [
    "", "A", "a/", "/a", "a//b", "..", "a/../b", "a/./b", ".a", "a.", "a-", "-a", "a___b", "a..b", "a b",
    "x" * 256, "a/B", "a:b", "a@b",
])
def test_invalid_names(name):
    assert code_of(protocol.check_name, name) == "NAME_INVALID"
    try:
        assert protocol.route(f"/v2/{name}/tags/list") is None  # names no endpoint at all
    except RegistryError as exc:
        assert exc.code == "NAME_INVALID"


def test_references():
    assert protocol.check_reference("latest") == ("latest", False)
    assert protocol.check_reference("_x.Y-1") == ("_x.Y-1", False)
    assert protocol.check_reference(D1) == (D1, True)
    assert protocol.is_tag("a" * 128) and not protocol.is_tag("a" * 129)
    assert code_of(protocol.check_reference, "-x") == "TAG_INVALID"
    assert code_of(protocol.check_reference, ".") == "TAG_INVALID"
    assert code_of(protocol.check_reference, "sha256:abc") == "DIGEST_INVALID"
    assert code_of(protocol.check_reference, "sha256:" + "A" * 64) == "DIGEST_INVALID"
    with pytest.raises(RegistryError, match="only sha256") as info:
        protocol.check_reference("sha512:" + "a" * 128)
    assert info.value.code == "DIGEST_INVALID"
    assert code_of(protocol.check_digest, None) == "DIGEST_INVALID"
    assert code_of(protocol.check_upload_id, "../x") == "BLOB_UPLOAD_UNKNOWN"


def test_pagination():
    assert protocol.page({}) == (None, "")
    assert protocol.page({"n": "3", "last": "b"}) == (3, "b")
    assert protocol.page({"n": "99999999"}) == (protocol.PAGE_MAX, "")
    for bad in ("-1", "x", "1.5"):
        assert code_of(protocol.page, {"n": bad}) == "PAGINATION_NUMBER_INVALID"
    assert protocol.next_link("/v2/a/tags/list", 2, "v1") == '</v2/a/tags/list?n=2&last=v1>; rel="next"'
    assert protocol.query_all("tag=a&tag=b&x=1", "tag") == ["a", "b"]


# --- ranges -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("header,expected", [
    (None, None), ("", None), ("bytes=0-9", (0, 9)), ("bytes=5-", (5, 99)), ("bytes=-10", (90, 99)),
    ("bytes=-500", (0, 99)), ("bytes=90-500", (90, 99)), ("bytes=9-3", None), ("items=0-1", None),
    ("bytes=0-1,5-6", None), ("bytes=-", None), ("bytes = 1 - 2", (1, 2)),
])
def test_parse_range(header, expected):
    assert protocol.parse_range(header, 100) == expected


@pytest.mark.parametrize("header,size", [("bytes=100-", 100), ("bytes=200-300", 100), ("bytes=-0", 100),
                                         ("bytes=0-", 0), ("bytes=-5", 0)])
def test_unsatisfiable_range(header, size):
    with pytest.raises(protocol.Unsatisfiable):
        protocol.parse_range(header, size)


def test_content_range():
    assert protocol.parse_content_range("0-99") == (0, 99)
    assert protocol.parse_content_range("bytes 100-199/*") == (100, 199)
    assert protocol.parse_content_range("bytes=5-5/10") == (5, 5)
    for bad in ("x", "5-4", "-1-2", "1-"):
        assert code_of(protocol.parse_content_range, bad) == "BLOB_UPLOAD_INVALID"
    assert protocol.upload_range(0) == "0-0" and protocol.upload_range(10) == "0-9"


# --- Accept --------------------------------------------------------------------------------------------

def test_accept():
    oci = "application/vnd.oci.image.manifest.v1+json"
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    assert protocol.acceptable(oci, protocol.accepted_types([]))
    assert protocol.acceptable(oci, protocol.accepted_types([f"{docker}", f"{oci}; q=0.5"]))
    assert not protocol.acceptable(oci, protocol.accepted_types([docker]))
    assert not protocol.acceptable(oci, protocol.accepted_types([f"{docker}, {oci};q=0"]))
    assert protocol.acceptable(oci, protocol.accepted_types(["*/*"]))
    assert protocol.acceptable(oci, protocol.accepted_types(["application/*"]))
    assert protocol.acceptable(oci, protocol.accepted_types([oci.upper()]))
    assert protocol.bare_media_type("application/json; charset=utf-8") == "application/json"


# --- pushed manifests ------------------------------------------------------------------------------

OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def desc(digest: str, media_type: str = "application/vnd.oci.image.layer.v1.tar", **extra) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": 1, **extra}


def manifest(media_type: str | None = OCI, **extra) -> bytes:
    obj = {"schemaVersion": 2, "config": desc(D1, "application/vnd.oci.image.config.v1+json"),
           "layers": [desc(D2), desc(D2)], **extra}
    if media_type:
        obj["mediaType"] = media_type
    return json.dumps(obj).encode()


def test_parse_image_manifest():
    pushed = parse_pushed(manifest(), OCI)
    assert pushed.media_type == OCI and pushed.blobs == (D1, D2) and pushed.manifests == ()
    assert pushed.artifact_type == "application/vnd.oci.image.config.v1+json" and pushed.subject is None
    # The type comes from the body when the header says nothing, or from the shape when neither does.
    assert parse_pushed(manifest(), "application/json").media_type == OCI
    assert parse_pushed(manifest(None), None).media_type == OCI
    assert parse_pushed(manifest(DOCKER), DOCKER).media_type == DOCKER
    # Artifacts: any layer type, an artifactType, a subject.
    art = parse_pushed(manifest(artifactType="application/x.sig", subject=desc(D3, OCI),
                                layers=[desc(D2, "application/x.anything")]), OCI)
    assert art.artifact_type == "application/x.sig" and art.subject == D3 and art.blobs == (D1, D2)


def test_foreign_layers_need_not_be_pushed():
    foreign = desc(D3, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", urls=["https://x/y"])
    pushed = parse_pushed(manifest(DOCKER, layers=[desc(D2), foreign]), DOCKER)
    assert pushed.blobs == (D1, D2)


def test_parse_index():
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST,
                       "manifests": [desc(D1, DOCKER), desc(D2, DOCKER)]}).encode()
    pushed = parse_pushed(body, DOCKER_LIST)
    assert pushed.media_type == DOCKER_LIST and pushed.manifests == (D1, D2) and pushed.blobs == ()
    shape = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert parse_pushed(shape, "").media_type == OCI_INDEX


@pytest.mark.parametrize("body,content_type,why", [
    (b"{", OCI, "not valid JSON"),
    (b"[]", OCI, "JSON object"),
    (manifest(DOCKER), OCI, "differs from its Content-Type"),
    (manifest(None), DOCKER, "must declare its mediaType"),
    (manifest(), "application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1"),
    (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "", "schema 1"),
    (manifest(schemaVersion=3), OCI, "schemaVersion must be 2"),
    (manifest(), "application/x-custom", "unsupported manifest media type"),
    (manifest(layers={}), OCI, "layers must be a list"),
    (manifest(config={"digest": D1}), OCI, "size"),
    (manifest(layers=[desc("sha256:xyz")]), OCI, "invalid layer descriptor digest"),
    (manifest(annotations=[]), OCI, "annotations must be an object"),
    (json.dumps({"schemaVersion": 2}).encode(), "", "neither an image manifest"),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {}}).encode(), OCI_INDEX, "a list"),
])
def test_invalid_manifests(body, content_type, why):
    with pytest.raises(RegistryError, match=why) as info:
        parse_pushed(body, content_type)
    assert info.value.code == "MANIFEST_INVALID"
    assert why in json.dumps(info.value.to_json())


# --- auth ----------------------------------------------------------------------------------------------

def test_htpasswd_parsing(tmp_path):
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    users = parse_htpasswd(f"# c\n\nalice:{hashed}\nbob:$2y${hashed[4:]}\n")
    assert set(users) == {"alice", "bob"}
    with pytest.raises(HtpasswdError, match="line 1|:1:"):
        parse_htpasswd("nocolon\n", "f")
    with pytest.raises(HtpasswdError, match="not bcrypt"):
        parse_htpasswd("carol:$apr1$abc$def\n")
    with pytest.raises(HtpasswdError, match="cannot read"):
        Htpasswd(str(tmp_path / "missing"))


def test_htpasswd_check_and_reload(tmp_path):
    path = tmp_path / "htpasswd"
    path.write_text("alice:$2y$" + bcrypt.hashpw(b"one", bcrypt.gensalt(4)).decode()[4:] + "\n")
    accounts = Htpasswd(str(path))
    assert accounts.check("alice", "one") and accounts.check("alice", "one")  # the second from the cache
    assert not accounts.check("alice", "two") and not accounts.check("nobody", "one")
    path.write_text("alice:" + bcrypt.hashpw(b"two", bcrypt.gensalt(4)).decode() + "\n")
    accounts._looked = 0  # skip the once-a-second wait
    assert accounts.check("alice", "two") and not accounts.check("alice", "one")


def test_basic_header():
    token = base64.b64encode(b"u:p:w").decode()
    assert parse_basic(f"Basic {token}") == ("u", "p:w")
    assert parse_basic(f"basic  {token}") == ("u", "p:w")
    assert parse_basic("Bearer x") is None and parse_basic(None) is None
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert challenge('My "Realm"') == 'Basic realm="My \\"Realm\\""'


def test_error_body():
    err = RegistryError("MANIFEST_UNKNOWN", {"tag": "x"})
    assert err.status == 404
    assert json.loads(err.body()) == {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown",
                                                  "detail": {"tag": "x"}}]}


# --- the command's address ----------------------------------------------------------------------------

def test_parse_addr():
    assert parse_addr("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert parse_addr(":5000") == ("", 5000)
    assert parse_addr("[::1]:0") == ("::1", 0)
    assert parse_addr("localhost:80") == ("localhost", 80)
    for bad in ("5000", "127.0.0.1", "::1:5000", "a:99999", "a:x", "[::1]5000"):
        with pytest.raises(UsageError):
            parse_addr(bad)


def test_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("127.3.4.5") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("::")
    assert not is_loopback("10.1.2.3") and not is_loopback("no-such-host.invalid")
