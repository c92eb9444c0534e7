"""The registry client's pure parts: auth configs, challenges, scopes, hosts and URLs, platform choice,
error wording, progress text.  Nothing here opens a connection (Docker Hub is only named, never asked)."""

from __future__ import annotations

import base64
import json

import pytest

from dockyard.content import Descriptor
from dockyard.errors import InvalidArgument, NotFound
from dockyard.images.formats import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Index, Platform, host_platform
from dockyard.images.reference import parse
from dockyard.remotes import Registry
from dockyard.remotes.auth import (
    AuthConfig,
    Challenge,
    decode_registry_auth,
    format_scopes,
    merge_scopes,
    parse_challenges,
    parse_scopes,
    repository_scope,
    scopes_cover,
    server_domain,
    token_from_answer,
    token_request,
)
from dockyard.remotes.errors import errcode_text, status_text
from dockyard.remotes.hosts import (
    blob_url,
    hostname,
    is_insecure,
    manifest_url,
    ping_url,
    registry_host,
    upload_url,
    with_query,
)
from dockyard.remotes.platforms import choose_manifest, parse_platform

# -- X-Registry-Auth and /auth bodies ------------------------------------------------------------


def _b64(obj, urlsafe=True, pad=True) -> str:
    raw = json.dumps(obj).encode()
    text = (base64.urlsafe_b64encode if urlsafe else base64.standard_b64encode)(raw).decode()
    return text if pad else text.rstrip("=")


def test_registry_auth_header_shapes_clients_send():
    assert decode_registry_auth("e30=") is None  # the CLI without a stored login: {}
    assert decode_registry_auth(None) is None and decode_registry_auth("") is None
    cli = decode_registry_auth(_b64({"username": "tester", "password": "s3cret", "serveraddress": "127.0.0.1:5012"}))
    assert cli == AuthConfig("tester", "s3cret", "127.0.0.1:5012")
    sdk = decode_registry_auth(_b64({"username": "tester", "password": "s3cret", "email": None,
                                     "serveraddress": "127.0.0.1:5012"}))
    assert sdk.username == "tester" and sdk.password == "s3cret"
    # Standard alphabet and missing padding are accepted too.
    odd = {"username": "t>>?", "password": "p???>>", "serveraddress": "x"}
    assert decode_registry_auth(_b64(odd, urlsafe=False, pad=False)).password == "p???>>"
    assert decode_registry_auth(_b64(odd, urlsafe=True, pad=False)).username == "t>>?"
    token = decode_registry_auth(_b64({"identitytoken": "tok"}))
    assert token.identitytoken == "tok" and token.has_credentials
    assert decode_registry_auth("!!!not base64!!!") is None  # dockerd ignores what it cannot decode
    assert decode_registry_auth(base64.b64encode(b"[1,2]").decode()) is None


def test_auth_config_from_json():
    combined = AuthConfig.from_json({"auth": base64.b64encode(b"tester:s3:cret").decode()})
    assert (combined.username, combined.password) == ("tester", "s3:cret")
    assert AuthConfig.from_json(None) == AuthConfig()
    assert AuthConfig.from_json({"username": 5}).username == ""
    assert "s3cret" not in repr(AuthConfig("tester", "s3cret"))


def test_server_domain():
    assert server_domain("127.0.0.1:5012") == "127.0.0.1:5012"
    assert server_domain("http://127.0.0.1:5012/") == "127.0.0.1:5012"  # docker-py with a scheme
    assert server_domain("https://localhost:5000/v2/") == "localhost:5000"
    for hub in ("", "https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"):
        assert server_domain(hub) == "docker.io", hub


# -- challenges and tokens --------------------------------------------------------------------------


def test_parse_challenges():
    assert parse_challenges('Basic realm="basic-realm"') == [Challenge("basic")]
    assert parse_challenges('Basic realm="basic-realm"')[0].realm == "basic-realm"
    hub = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
           'scope="repository:library/busybox:pull,push"')
    [bearer] = parse_challenges(hub)
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                             "scope": "repository:library/busybox:pull,push"}
    both = parse_challenges('Basic realm="a b, c", Bearer realm="https://t/x", error="insufficient_scope"')
    assert [c.scheme for c in both] == ["basic", "bearer"]
    assert both[0].realm == "a b, c" and both[1].params["error"] == "insufficient_scope"
    # Unquoted values, odd spacing and case, escapes inside quotes, several headers.
    [loose] = parse_challenges('BEARER  realm = https://t/token , service=svc')
    assert loose.scheme == "bearer" and loose.params == {"realm": "https://t/token", "service": "svc"}
    [escaped] = parse_challenges(r'Basic realm="say \"hi\""')
    assert escaped.realm == 'say "hi"'
    assert [c.scheme for c in parse_challenges(["Basic realm=x", "Bearer realm=y"])] == ["basic", "bearer"]
    assert parse_challenges("") == []


def test_token_requests():
    bearer = Challenge("bearer", {"realm": "https://auth.example/token?x=1", "service": "reg"})
    method, url, headers, body = token_request(bearer, ["repository:apx/img:pull,push", "repository:apx/o:pull"],
                                               AuthConfig("tester", "s3cret"))
    assert method == "GET" and body is None
    assert url == ("https://auth.example/token?x=1&service=reg&scope=repository%3Aapx%2Fimg%3Apull%2Cpush"
                   "&scope=repository%3Aapx%2Fo%3Apull")
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"tester:s3cret").decode()
    _, anonymous_url, anonymous_headers, _ = token_request(Challenge("bearer", {"realm": "https://t"}), [], None)
    assert anonymous_url == "https://t" and "Authorization" not in anonymous_headers
    method, url, headers, body = token_request(bearer, ["repository:a:pull"], AuthConfig(identitytoken="refresh"))
    assert method == "POST" and url == "https://auth.example/token?x=1"
    assert b"grant_type=refresh_token" in body and b"refresh_token=refresh" in body and b"service=reg" in body
    assert token_from_answer(b'{"token":"abc","expires_in":300}') == ("abc", 300)
    assert token_from_answer(b'{"access_token":"xyz"}') == ("xyz", 60)
    assert token_from_answer(b"not json") == ("", 0)


def test_scopes():
    assert repository_scope("apx/img") == "repository:apx/img:pull"
    assert repository_scope("apx/img", push=True) == "repository:apx/img:pull,push"
    granted = parse_scopes(["repository:apx/img:pull,push", "repository:apx/o:pull"])
    assert scopes_cover(granted, parse_scopes(["repository:apx/img:pull"]))
    assert scopes_cover(granted, parse_scopes(["repository:apx/img:push", "repository:apx/o:pull"]))
    assert not scopes_cover(granted, parse_scopes(["repository:apx/o:push"]))
    assert not scopes_cover(granted, parse_scopes(["repository:other:pull"]))
    assert scopes_cover(granted, {})
    merged = merge_scopes(parse_scopes(["repository:a:pull"]), parse_scopes(["repository:a:push"]))
    assert format_scopes(merged) == ["repository:a:pull,push"]
    # Space-separated scopes in one string, as a challenge may carry them.
    assert set(parse_scopes(["repository:a:pull repository:b:pull"])) == {"repository:a", "repository:b"}


# -- hosts and URLs -----------------------------------------------------------------------------------


def test_docker_hub_naming_maps_to_registry_1():
    ref = parse("busybox")
    assert (ref.domain, ref.path) == ("docker.io", "library/busybox")
    assert registry_host(ref.domain) == "registry-1.docker.io"
    assert registry_host("index.docker.io") == "registry-1.docker.io"
    base = "https://" + registry_host(ref.domain)
    assert manifest_url(base, ref.path, "latest") == "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
    user = parse("someone/app:1")
    assert manifest_url("", user.path, user.tag) == "/v2/someone/app/manifests/1"
    hub = Registry("docker.io")  # constructing it contacts nothing
    try:
        assert hub.host == "registry-1.docker.io" and not hub.insecure
        assert hub.base_url == "https://registry-1.docker.io"
    finally:
        hub.close()


def test_registry_urls():
    base = "http://127.0.0.1:5001"
    digest = "sha256:" + "ab" * 32
    assert ping_url(base) == "http://127.0.0.1:5001/v2/"
    assert manifest_url(base, "apx/img", digest) == f"http://127.0.0.1:5001/v2/apx/img/manifests/{digest}"
    assert blob_url(base, "apx/img", digest) == f"http://127.0.0.1:5001/v2/apx/img/blobs/{digest}"
    assert upload_url(base, "apx/img") == "http://127.0.0.1:5001/v2/apx/img/blobs/uploads/"
    assert upload_url(base, "apx/img", digest, "apx/other") == \
        f"http://127.0.0.1:5001/v2/apx/img/blobs/uploads/?mount={digest}&from=apx/other"
    assert with_query("http://h/v2/r/blobs/uploads/u1?_state=abc", digest=digest) == \
        f"http://h/v2/r/blobs/uploads/u1?_state=abc&digest={digest}"
    assert with_query("/v2/r/blobs/uploads/u1", digest=digest) == f"/v2/r/blobs/uploads/u1?digest={digest}"


def test_insecure_registries_are_loopback_and_localhost():
    for host in ("127.0.0.1:5001", "127.9.8.7", "localhost", "localhost:5000", "[::1]:5000", "::1", "x.localhost"):
        assert is_insecure(host), host
    for host in ("registry-1.docker.io", "10.0.0.1:5000", "192.168.1.1", "example.com:443", "[2001:db8::1]:5000"):
        assert not is_insecure(host), host
    assert hostname("[::1]:5000") == "::1" and hostname("localhost:5000") == "localhost"
    assert Registry("127.0.0.1:5001").insecure and not Registry("quay.io").insecure


# -- platforms ------------------------------------------------------------------------------------------


def test_parse_platform():
    assert parse_platform("linux/amd64") == Platform("linux", "amd64")
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64")
    assert parse_platform("linux/arm/v7") == Platform("linux", "arm", "v7")
    assert parse_platform("linux/x86_64") == Platform("linux", "amd64")
    assert parse_platform("arm64") == Platform("linux", "arm64")
    assert parse_platform("linux").architecture == host_platform().architecture
    for bad in ("", "linux/", "nosuchos/amd64", "linux/nosucharch", "a/b/c/d"):
        with pytest.raises(InvalidArgument, match="unknown operating system or architecture"):
            parse_platform(bad)


def _entry(arch: str, variant: str = "", os: str = "linux", n: int = 0) -> Descriptor:
    platform = {"os": os, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return Descriptor(OCI_MANIFEST, "sha256:" + f"{n:02x}" * 32, 100 + n, platform=platform)


def test_choose_manifest_from_an_index():
    index = Index(OCI_INDEX, (_entry("arm", "v7", n=1), _entry("arm64", "v8", n=2), _entry("amd64", n=3),
                              _entry("amd64", os="windows", n=4)), {})
    assert choose_manifest(index, Platform("linux", "amd64")).size == 103
    assert choose_manifest(index, Platform("linux", "arm64")).size == 102
    assert choose_manifest(index, parse_platform("linux/arm64/v8")).size == 102
    assert choose_manifest(index, Platform("linux", "arm", "v7")).size == 101
    host = host_platform()
    chosen = choose_manifest(index)  # the host's platform (uname -m)
    assert chosen.platform["architecture"] == host.architecture
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x in the manifest list entries"):
        choose_manifest(index, Platform("linux", "s390x"))
    # Attestation entries (unknown/unknown) and non-manifest entries are never chosen.
    attested = Index(OCI_INDEX, (_entry("unknown", os="unknown", n=5), _entry("amd64", n=6)), {})
    assert choose_manifest(attested, Platform("linux", "amd64")).size == 106
    docker_list = Index(OCI_INDEX, (Descriptor(DOCKER_MANIFEST, "sha256:" + "07" * 32, 7,
                                               platform={"os": "linux", "architecture": "amd64"}),), {})
    assert choose_manifest(docker_list, Platform("linux", "amd64")).size == 7


# -- wording ------------------------------------------------------------------------------------------------


def test_errcode_text_as_go_prints_it():
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}'
    assert errcode_text(body) == "manifest unknown: manifest unknown"
    assert errcode_text(b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}') == \
        "unauthorized: authentication required"
    two = b'{"errors":[{"code":"DENIED","message":"no"},{"code":"NAME_UNKNOWN","message":"who"}]}'
    assert errcode_text(two) == "errors:\ndenied: no\nname unknown: who\n"
    assert errcode_text(b"") == "" and errcode_text(b"<html>") == "" and errcode_text(b'{"errors":[]}') == ""
    assert status_text(401) == "401 Unauthorized" and status_text(599) == "599"


def test_progress_text_matches_dockerd():
    from dockyard.daemon.pull import human_size, progress_bar

    # Strings recorded from dockerd 20.10 pulling and pushing.
    assert progress_bar(3678, 300348) == "[>" + " " * 50 + "]  3.678kB/300.3kB"
    assert progress_bar(1807872, 1985566) == "[" + "=" * 45 + ">" + " " * 5 + "]  1.808MB/1.986MB"
    assert progress_bar(300348, 300348) == "[" + "=" * 50 + ">]  300.3kB/300.3kB"
    assert progress_bar(2129920, 1985566) == "[" + "=" * 50 + ">]   2.13MB"  # current above total
    assert progress_bar(19968, 1985566) == "[>" + " " * 50 + "]  19.97kB/1.986MB"
    assert human_size(999) == "999B" and human_size(1000) == "1kB" and human_size(1_068_904) == "1.069MB"
