"""System endpoints of a real dockyardd: _ping, version, info, events, system/df, unknown routes.

Driven by our client and by the docker SDK (PyPI docker) as an outside client.
"""

from __future__ import annotations

import socket
import threading
import time

import docker
import pytest

from dockyard.client.api import ApiError
from dockyard.client.http import UnixHttpConnection

pytestmark = pytest.mark.root


def raw(engine, request: bytes) -> bytes:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(engine.socket))
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    sock.close()
    return data


def test_ping_head_and_get_carry_the_negotiation_headers(engine):
    head = raw(engine, b"HEAD /_ping HTTP/1.1\r\nHost: api.moby.localhost\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    for header in (b"Api-Version: 1.41", b"Ostype: linux", b"Docker-Experimental: false",
                   b"Cache-Control: no-cache, no-store, must-revalidate", b"Content-Length: 0"):
        assert header in head
    conn = UnixHttpConnection(str(engine.socket))
    response = conn.request("GET", "/v1.41/_ping")
    assert response.read() == b"OK"
    assert response.headers["api-version"] == "1.41"
    assert engine.docker_sdk().ping() is True


def test_version_unversioned_and_versioned(engine):
    sdk = engine.docker_sdk()
    version = sdk.version()  # docker-py asks GET /version without a prefix
    assert version["ApiVersion"] == "1.41"
    assert version["MinAPIVersion"] == "1.24"
    assert version["Os"] == "linux"
    assert version["Components"][0]["Name"] == "Engine"
    assert engine.client().version()["ApiVersion"] == "1.41"


def test_info(engine, busybox_image):
    info = engine.docker_sdk().info()
    assert info["Images"] >= 1
    assert info["OSType"] == "linux"
    assert info["DockerRootDir"] == str(engine.data_root)
    assert info["LoggingDriver"] == "json-file"
    assert info["Driver"] in ("overlay2", "vfs")
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert engine.client().info()["ID"] == info["ID"]


def test_system_df(engine, busybox_image):
    df = engine.docker_sdk().df()
    assert df["LayersSize"] > 1_000_000
    ids = [image["Id"] for image in df["Images"]]
    assert busybox_image in ids
    image = df["Images"][ids.index(busybox_image)]
    assert image["Containers"] == 0
    assert df["Containers"] == [] and df["Volumes"] == []


def test_unknown_endpoints_are_404_json(engine):
    client = engine.client()
    for path in ("/nowhere", "/images/busybox/nosuchverb", "/swarm"):
        with pytest.raises(ApiError) as exc:
            client.request("POST", path).read()
        assert exc.value.status == 404
        assert exc.value.message == "page not found"


def test_pull_from_a_registry_nobody_serves_says_so(engine):
    with pytest.raises(docker.errors.APIError) as exc:
        engine.docker_sdk().images.pull("127.0.0.1:5999/nothing", tag="x")
    assert exc.value.status_code == 500
    assert 'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused' in str(exc.value)


def test_events_stream_live_with_filters_and_history(engine, busybox_image):
    sdk = engine.docker_sdk()
    start = int(time.time()) - 1
    stream = sdk.events(decode=True, filters={"type": "image", "event": ["tag", "untag"]})
    received = []

    def read():
        for event in stream:
            received.append(event)
            if len(received) == 2:
                break

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.3)
    image = sdk.images.get(busybox_image)
    image.tag("evtest", "one")
    sdk.images.remove("evtest:one")
    reader.join(10)
    stream.close()
    assert [e["Action"] for e in received] == ["tag", "untag"]
    tag = received[0]
    assert tag["Type"] == "image" and tag["status"] == "tag" and tag["id"] == busybox_image
    assert tag["Actor"] == {"ID": busybox_image, "Attributes": {"name": "evtest:one"}}
    assert tag["scope"] == "local" and tag["timeNano"] // 1_000_000_000 == tag["time"]
    # The same events again from history, through our client, bounded by until.
    until = f"{time.time() + 0.5:.9f}"
    history = list(engine.client().events({"event": ["tag", "untag"]}, since=str(start), until=until))
    assert [e["Actor"]["Attributes"]["name"] for e in history][-2:] == ["evtest:one", "evtest:one"]


def test_events_reject_bad_filters_and_bounds(engine):
    client = engine.client()
    with pytest.raises(ApiError, match="Invalid filter 'bogus'") as exc:
        list(client.events({"bogus": ["1"]}))
    assert exc.value.status == 400
    with pytest.raises(ApiError, match="not a Unix timestamp"):
        list(client.events(since="yesterday"))


def test_a_streaming_events_client_does_not_block_others(engine):
    client = engine.client()
    response = client.request("GET", "/events")
    assert response.status == 200  # headers arrive before any event exists
    for _ in range(5):
        assert engine.client().ping()
    response.close()
