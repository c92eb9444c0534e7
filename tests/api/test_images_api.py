"""Image endpoints of a real dockyardd, driven by our client and by the docker SDK.

Every image is made here from the host's busybox-static (no registry).
"""

from __future__ import annotations

import io
import tarfile

import docker
import pytest

from dockyard.client.api import ApiError

pytestmark = pytest.mark.root


def import_tar(engine, tar_path, name: str | None, changes: list[str] | None = None, message: str = "") -> str:
    with open(tar_path, "rb") as f:  # a file body goes up chunked, as the docker CLI sends it
        messages = list(engine.client().image_import(f, "-", name or "", message=message, changes=changes))
    assert len(messages) == 1 and messages[0]["status"].startswith("sha256:")
    return messages[0]["status"]


def test_list_and_inspect_with_both_clients(engine, busybox_image):
    sdk = engine.docker_sdk()
    listed = {image.id: image for image in sdk.images.list()}
    assert busybox_image in listed
    assert "busybox:latest" in listed[busybox_image].tags
    row = next(r for r in engine.client().images() if r["Id"] == busybox_image)
    assert row["RepoTags"] == ["busybox:latest"]
    assert isinstance(row["Created"], int) and row["Size"] > 1_000_000
    assert set(row) >= {"Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests", "RepoTags",
                        "SharedSize", "Size", "VirtualSize"}
    inspected = engine.client().image_inspect("busybox")
    assert inspected["Id"] == busybox_image
    assert inspected["RootFS"]["Type"] == "layers" and len(inspected["RootFS"]["Layers"]) == 1
    assert inspected["Os"] == "linux" and inspected["Config"]["Tty"] is False
    for name in (busybox_image, busybox_image[7:19], busybox_image[:19], "busybox:latest",
                 "docker.io/library/busybox:latest"):
        assert sdk.images.get(name).id == busybox_image, name


def test_missing_images_are_404_no_such_image(engine):
    with pytest.raises(docker.errors.ImageNotFound):
        engine.docker_sdk().images.get("nosuch:tag")
    with pytest.raises(ApiError) as exc:
        engine.client().image_inspect("nosuch")
    assert exc.value.status == 404 and "No such image" in exc.value.message
    with pytest.raises(ApiError) as exc:
        engine.client().image_history("nosuch")
    assert exc.value.status == 404


def test_list_filters(engine, busybox_image):
    client = engine.client()
    assert [r["Id"] for r in client.images(filters={"reference": ["busybox"]})] == [busybox_image]
    assert client.images(filters={"reference": ["nomatch*"]}) == []
    assert busybox_image not in [r["Id"] for r in client.images(filters={"dangling": ["true"]})]
    sdk_filtered = engine.docker_sdk().images.list(filters={"reference": ["busy*"]})  # docker-py's list shape
    assert [i.id for i in sdk_filtered] == [busybox_image]
    with pytest.raises(ApiError, match="Invalid filter 'bogus'") as exc:
        client.images(filters={"bogus": ["1"]})
    assert exc.value.status == 400


def test_tag_untag_with_registry_names_and_hub_normalisation(engine, busybox_image):
    sdk = engine.docker_sdk()
    client = engine.client()
    image = sdk.images.get(busybox_image)
    assert image.tag("127.0.0.1:5002/apx/img", "v1")
    client.image_tag("busybox", "docker.io/library/apxlast", "1")  # what the CLI sends for `tag bb apxlast:1`
    tags = sdk.images.get(busybox_image).tags
    assert {"busybox:latest", "127.0.0.1:5002/apx/img:v1", "apxlast:1"} <= set(tags)
    assert sdk.images.get("apxlast:1").id == busybox_image
    assert client.image_inspect("127.0.0.1:5002/apx/img:v1")["Id"] == busybox_image
    assert client.image_remove("127.0.0.1:5002/apx/img:v1") == [{"Untagged": "127.0.0.1:5002/apx/img:v1"}]
    sdk.images.remove("apxlast:1")
    assert sdk.images.get(busybox_image).tags == ["busybox:latest"]
    with pytest.raises(ApiError) as exc:
        client.image_tag("busybox", "BAD NAME", "x")
    assert exc.value.status == 400
    with pytest.raises(ApiError) as exc:
        client.image_tag("nosuch", "x", "y")
    assert exc.value.status == 404


def test_history(engine, busybox_image):
    history = engine.docker_sdk().images.get(busybox_image).history()
    assert history[0]["Id"] == busybox_image
    assert history[0]["Tags"] == ["busybox:latest"]
    assert history[0]["Size"] > 1_000_000
    assert history[0]["Comment"] == "Imported from -"


def test_import_with_changes_and_message(engine, busybox_tar):
    changes = ['CMD ["/bin/sh", "-c", "echo hi"]', "ENV GREETING=hello", "WORKDIR /srv",
               'ENTRYPOINT ["/bin/busybox"]', "LABEL org.example.k=v"]
    image_id = import_tar(engine, busybox_tar, "imported:changes", changes, message="from the test")
    config = engine.client().image_inspect("imported:changes")
    assert config["Id"] == image_id
    assert config["Config"]["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert "GREETING=hello" in config["Config"]["Env"]
    assert config["Config"]["WorkingDir"] == "/srv"
    assert config["Config"]["Entrypoint"] == ["/bin/busybox"]
    assert config["Config"]["Labels"] == {"org.example.k": "v"}
    assert config["Comment"] == "from the test"
    # docker-py sends the tarball with Content-Length; the same bytes give the same layer.
    sdk = engine.docker_sdk()
    sdk.api.import_image_from_data(busybox_tar.read_bytes(), repository="imported", tag="sdk")
    assert sdk.images.get("imported:sdk").attrs["RootFS"] == config["RootFS"]
    engine.client().image_remove("imported:changes")
    sdk.images.remove("imported:sdk")


def test_import_refuses_bad_input_and_stores_nothing(engine):
    before = {r["Id"] for r in engine.client().images(all=True)}
    with pytest.raises(ApiError) as exc:
        list(engine.client().image_import(io.BytesIO(b"this is not a tarball" * 100), "-", "broken:1"))
    assert 400 <= exc.value.status < 600
    with pytest.raises(ApiError) as exc:
        list(engine.client().image_import(io.BytesIO(b""), "-", "Bad Name"))
    assert exc.value.status == 400
    assert {r["Id"] for r in engine.client().images(all=True)} == before


def test_save_and_load_round_trip(engine, busybox_image, tmp_path):
    sdk = engine.docker_sdk()
    sdk.images.get(busybox_image).tag("roundtrip", "a")
    archive = b"".join(sdk.images.get("roundtrip:a").save(named=True))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert "manifest.json" in names
    both = engine.client().image_save(["roundtrip:a", "busybox:latest"]).read()
    engine.client().image_remove("roundtrip:a")
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.images.get("roundtrip:a")
    path = tmp_path / "both.tar"
    path.write_bytes(both)
    with open(path, "rb") as f:
        messages = list(engine.client().image_load(f, quiet=True))
    assert {"stream": "Loaded image: roundtrip:a\n"} in messages
    assert sdk.images.get("roundtrip:a").id == busybox_image
    loaded = sdk.images.load(archive)  # docker-py: Content-Length body, reads the stream
    assert [i.id for i in loaded] == [busybox_image]
    engine.client().image_remove("roundtrip:a")


def test_save_of_a_missing_image_is_404_before_any_byte(engine):
    with pytest.raises(ApiError) as exc:
        engine.client().image_save(["busybox:latest", "nosuch:1"]).read()
    assert exc.value.status == 404
    assert "No such image" in exc.value.message


def test_load_refuses_a_corrupt_archive(engine, busybox_image, tmp_path):
    before = {r["Id"] for r in engine.client().images(all=True)}
    archive = engine.client().image_save(["busybox:latest"]).read()
    for what, body in (("truncated", archive[: len(archive) // 2]), ("garbage", b"\0" * 4096 + b"junk")):
        with pytest.raises(ApiError) as exc:
            list(engine.client().image_load(io.BytesIO(body), quiet=True))
        assert 400 <= exc.value.status < 600, what
    assert {r["Id"] for r in engine.client().images(all=True)} == before


def test_remove_and_prune(engine, busybox_tar):
    client = engine.client()
    image_id = import_tar(engine, busybox_tar, None, ["ENV DANGLING=1"])
    row = next(r for r in client.images(all=True) if r["Id"] == image_id)
    assert row["RepoTags"] == ["<none>:<none>"]
    assert image_id in [r["Id"] for r in client.images(filters={"dangling": ["true"]})]
    report = client.image_prune({"dangling": ["true"]})
    assert {"Deleted": image_id} in report["ImagesDeleted"]
    assert image_id not in [r["Id"] for r in client.images(all=True)]
    second = import_tar(engine, busybox_tar, "removeme:1", ["ENV REMOVE=1"])
    deleted = client.image_remove("removeme:1")
    assert deleted[0] == {"Untagged": "removeme:1"}
    assert {"Deleted": second} in deleted
    with pytest.raises(ApiError) as exc:
        client.image_remove("removeme:1")
    assert exc.value.status == 404 and exc.value.message == "No such image: removeme:1"


def test_image_events(engine, busybox_tar):
    import time

    since = f"{time.time():.9f}"
    image_id = import_tar(engine, busybox_tar, "evimg:1", ["ENV EV=1"])
    engine.client().image_tag("evimg:1", "evimg", "2")
    engine.client().image_remove("evimg:2")
    engine.client().image_remove("evimg:1")
    until = f"{time.time() + 0.2:.9f}"
    events = list(engine.client().events({"type": ["image"]}, since=since, until=until))
    actions = [(e["Action"], e["Actor"]["Attributes"].get("name")) for e in events if e["id"] == image_id]
    assert ("import", "evimg:1") in actions
    assert ("tag", "evimg:2") in actions and ("untag", "evimg:2") in actions and ("untag", "evimg:1") in actions
    assert actions[-1][0] == "delete"
