"""The CLI's registry credentials: keys, the config file, and the X-Registry-Auth it sends."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from dockyard.cli import registry


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


@pytest.mark.parametrize("server, key", [
    ("127.0.0.1:5000", "127.0.0.1:5000"),
    ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
    ("registry.example:443", "registry.example:443"),
    ("docker.io", registry.HUB_KEY),
    ("https://index.docker.io/v1/", registry.HUB_KEY),
    ("", registry.HUB_KEY),
])
def test_registry_keys(server, key):
    assert registry.registry_key(server) == key


def _decode(header: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(header))


def test_auth_header_without_and_with_a_stored_login(config_dir):
    assert registry.auth_header("127.0.0.1:5000/apx/img") == "e30="
    registry._write_config({"auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"tester:s3:cret").decode()}}})
    assert _decode(registry.auth_header("127.0.0.1:5000/apx/img")) == {
        "username": "tester", "password": "s3:cret", "serveraddress": "127.0.0.1:5000"}
    assert registry.auth_header("docker.io/library/busybox") == "e30="
    path = config_dir / "config.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in os.listdir(config_dir) if p != "config.json"]  # no temp file left


def test_a_broken_config_is_a_clear_error(config_dir):
    config_dir.mkdir()
    (config_dir / "config.json").write_text("{not json")
    with pytest.raises(registry.CliError, match="loading config file"):
        registry.auth_header("127.0.0.1:5000/x")


def test_progress_lines_as_docker_prints_them_without_a_terminal():
    import io

    out = io.StringIO()
    aux = registry.print_progress(out, [
        {"status": "Pulling from apx/img", "id": "1"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "d0a9be6fdbb3"},
        {"status": "Downloading", "progressDetail": {"current": 10, "total": 100}, "id": "d0a9be6fdbb3"},
        {"status": "Pull complete", "progressDetail": {}, "id": "d0a9be6fdbb3"},
        {"aux": {"Tag": "1", "Digest": "sha256:x", "Size": 527}},
        {"status": "Digest: sha256:x"},
    ])
    assert out.getvalue() == ("1: Pulling from apx/img\nd0a9be6fdbb3: Pulling fs layer\n"
                              "d0a9be6fdbb3: Pull complete\nDigest: sha256:x\n")
    assert aux == {"Tag": "1", "Digest": "sha256:x", "Size": 527}
    with pytest.raises(ValueError, match="manifest unknown"):
        registry.print_progress(out, [{"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}])
