"""Reference parsing and normalisation, checked against Docker's rules case by case."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.images.reference import (
    Reference,
    is_full_id,
    is_id_prefix,
    parse,
    parse_repository_tag,
    parse_tagged,
    split_domain,
)

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, domain, path, tag, digest", [
    ("busybox", "docker.io", "library/busybox", None, None),
    ("busybox:latest", "docker.io", "library/busybox", "latest", None),
    ("busybox:1.36.1-musl", "docker.io", "library/busybox", "1.36.1-musl", None),
    ("user/app", "docker.io", "user/app", None, None),
    ("user/app:v2", "docker.io", "user/app", "v2", None),
    ("docker.io/busybox", "docker.io", "library/busybox", None, None),
    ("docker.io/library/busybox:1", "docker.io", "library/busybox", "1", None),
    ("index.docker.io/user/app", "docker.io", "user/app", None, None),
    ("127.0.0.1:5002/apx/img:v1", "127.0.0.1:5002", "apx/img", "v1", None),
    ("127.0.0.1:5002/apx/img", "127.0.0.1:5002", "apx/img", None, None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", None),
    ("registry.example.com/team/app", "registry.example.com", "team/app", None, None),
    ("Registry.Example.com/app", "Registry.Example.com", "app", None, None),
    ("example.com:443/app@" + D, "example.com:443", "app", None, D),
    ("app:tag@" + D, "docker.io", "library/app", "tag", D),
    ("[::1]:5000/app:1", "[::1]:5000", "app", "1", None),
    ("a.b-c__d/e.f", "a.b-c__d", "e.f", None, None),
    ("foo:5000", "docker.io", "library/foo", "5000", None),  # no slash: a tag, not a port
    ("x/y/z", "docker.io", "x/y/z", None, None),
    ("a-b---c", "docker.io", "library/a-b---c", None, None),
    ("a__b", "docker.io", "library/a__b", None, None),
    ("app:Tag_With.Dots-1", "docker.io", "library/app", "Tag_With.Dots-1", None),
    ("app:_x", "docker.io", "library/app", "_x", None),
])
def test_parse_valid(text, domain, path, tag, digest):
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)


@pytest.mark.parametrize("text, message", [
    ("", "repository name must have at least one component"),
    ("Busybox", "must be lowercase"),
    ("user/App", "must be lowercase"),
    ("a..b", "invalid reference format"),
    ("a/-b", "invalid reference format"),
    ("a_", "invalid reference format"),
    ("-a", "invalid reference format"),
    ("a:", "invalid reference format"),
    ("a:-tag", "invalid reference format"),
    ("a:" + "t" * 129, "invalid reference format"),
    ("a@sha256:abc", "invalid reference format"),
    ("a@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("a@sha512:" + "a" * 128, "unsupported digest algorithm"),
    ("localhost:5000/", "invalid reference format"),
    ("/a", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("a b", "invalid reference format"),
    ("a/" + "b" * 250, "must not be more than 255 characters"),
    ("ab" * 32, "cannot specify 64-byte hexadecimal strings"),
    ("a:b:c", "invalid reference format"),
    ("http://host/app", "invalid reference format"),
])
def test_parse_invalid(text, message):
    with pytest.raises(InvalidArgument) as err:
        parse(text)
    assert message in str(err.value)


def test_invalid_reference_messages_start_like_dockers():
    for bad in ("Busybox", "a..b", "a:"):
        with pytest.raises(InvalidArgument) as err:
            parse(bad)
        assert str(err.value).startswith("invalid reference format")


@pytest.mark.parametrize("text, familiar, full", [
    ("busybox", "busybox", "docker.io/library/busybox"),
    ("docker.io/library/busybox:1", "busybox:1", "docker.io/library/busybox:1"),
    ("docker.io/user/app:v", "user/app:v", "docker.io/user/app:v"),
    ("docker.io/library/a/b", "library/a/b", "docker.io/library/a/b"),
    ("127.0.0.1:5002/apx/img:v1", "127.0.0.1:5002/apx/img:v1", "127.0.0.1:5002/apx/img:v1"),
    ("app@" + D, "app@" + D, "docker.io/library/app@" + D),
])
def test_familiar_and_full_forms(text, familiar, full):
    ref = parse(text)
    assert ref.familiar() == familiar
    assert str(ref) == full


def test_default_tag_only_when_neither_tag_nor_digest():
    assert parse_tagged("bb").tag == "latest"
    assert parse_tagged("bb:1").tag == "1"
    assert parse_tagged("bb@" + D).tag is None
    assert parse("bb").with_default_tag().familiar() == "bb:latest"


def test_the_tag_is_what_follows_the_last_colon_after_the_last_slash():
    ref = parse("127.0.0.1:5002/apx/img:v1")
    assert ref.name == "127.0.0.1:5002/apx/img" and ref.tag == "v1"
    assert parse("host:1/x").tag is None


def test_split_domain_follows_dockers_rules():
    assert split_domain("busybox") == ("docker.io", "library/busybox")
    assert split_domain("user/app") == ("docker.io", "user/app")
    assert split_domain("Host/app") == ("Host", "app")       # upper case: must be a host
    assert split_domain("localhost/app") == ("localhost", "app")
    assert split_domain("a.b/app") == ("a.b", "app")
    assert split_domain("a:1/app") == ("a:1", "app")
    assert split_domain("index.docker.io/app") == ("docker.io", "library/app")


def test_repository_tag_for_the_tag_api():
    assert parse_repository_tag("docker.io/library/apxlast", "1").familiar() == "apxlast:1"
    assert parse_repository_tag("apxfull:latest").familiar() == "apxfull:latest"
    assert parse_repository_tag("apx").familiar() == "apx:latest"
    assert parse_repository_tag("apx:old", "new").familiar() == "apx:new"
    assert parse_repository_tag("127.0.0.1:5002/apx/img", "v1").familiar() == "127.0.0.1:5002/apx/img:v1"
    with pytest.raises(InvalidArgument, match="digest"):
        parse_repository_tag("apx@" + D)
    with pytest.raises(InvalidArgument):
        parse_repository_tag("apx", "bad tag")
    with pytest.raises(InvalidArgument):
        parse_repository_tag("apx", D)


def test_ids_and_prefixes():
    assert is_full_id("ab" * 32) and is_full_id("sha256:" + "ab" * 32)
    assert not is_full_id("ab" * 31)
    assert is_id_prefix("bc2a8a7a10dd") and is_id_prefix("a")
    assert not is_id_prefix("xyz") and not is_id_prefix("") and not is_id_prefix("A1")


def test_references_are_values():
    assert parse("bb") == Reference("docker.io", "library/bb")
    assert hash(parse("bb:1")) == hash(Reference("docker.io", "library/bb", "1"))
    assert parse("bb:1").repository() == parse("bb")
    assert parse("bb").with_digest(D).familiar() == "bb@" + D
