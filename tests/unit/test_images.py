"""Images: formats, --change, GC logic, and the image service over the native snapshotter."""

from __future__ import annotations

import io
import json
import os

import pytest

from dockyard.daemon.images import ImageService, normalize_filters, parse_timestamp
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.images import gc
from dockyard.images.changes import apply_changes, process_word
from dockyard.images.formats import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    Index,
    Manifest,
    Platform,
    parse_config,
    parse_manifest_or_index,
    select_manifest,
    to_oci_manifest,
)
from dockyard.images.views import (
    Deletion,
    HistoryEntry,
    ImageSummary,
    PruneReport,
    deletions_json,
    history_json,
    prune_json,
    summary_json,
)
from dockyard.snapshots import chain_id, chain_ids
from tests.support.images import Img, layer_tar, legacy_archive, oci_archive, sha, store_state

# -- formats -----------------------------------------------------------------------------------

DIGEST = "sha256:" + "1" * 64


def _entry(arch, variant=None, os_="linux", digest=DIGEST):
    platform = {"os": os_, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest, "size": 10,
            "platform": platform}


def test_manifest_list_selects_the_host_platform():
    index = parse_manifest_or_index(json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [_entry("arm", "v7", digest="sha256:" + "2" * 64), _entry("amd64"),
                      _entry("arm64", "v8", digest="sha256:" + "3" * 64)]}).encode())
    assert isinstance(index, Index)
    assert select_manifest(index, Platform("linux", "amd64")).digest == DIGEST
    assert select_manifest(index, Platform("linux", "arm64", "v8")).digest == "sha256:" + "3" * 64
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        select_manifest(index, Platform("linux", "s390x"))


def test_oci_manifest_parses_and_converts():
    m = parse_manifest_or_index(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": DIGEST, "size": 3},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": DIGEST,
                    "size": 4}]}).encode())
    assert isinstance(m, Manifest) and len(m.layers) == 1
    oci = json.loads(to_oci_manifest(m))
    assert oci["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert oci["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert oci["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.mark.parametrize("doc, message", [
    (b"not json", "not valid JSON"),
    (b"[]", "expected a JSON object"),
    (json.dumps({"schemaVersion": 1}).encode(), "schema version"),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {}}).encode(), "must be a list"),
    (json.dumps({"schemaVersion": 2, "config": {"digest": DIGEST, "size": 1}, "layers": [
        {"mediaType": "text/plain", "digest": DIGEST, "size": 1}]}).encode(), "unsupported layer media type"),
    (json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:x", "size": 1}, "layers": []}).encode(),
     "invalid config descriptor digest"),
])
def test_bad_manifests_are_refused_clearly(doc, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_manifest_or_index(doc)


def test_config_checks():
    with pytest.raises(InvalidArgument, match="rootfs.type"):
        parse_config(b'{"rootfs": {"type": "other"}}')
    with pytest.raises(InvalidArgument, match="diff id"):
        parse_config(b'{"rootfs": {"type": "layers", "diff_ids": ["md5:1"]}}')
    cfg = parse_config(b'{"rootfs": {"type": "layers", "diff_ids": []}, "config": {"Labels": {"a": "b"}}}')
    assert cfg.labels == {"a": "b"} and cfg.diff_ids == ()


def test_chain_ids_follow_the_oci_spec():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert chain_ids([a, b]) == [a, sha(f"{a} {b}".encode())]
    assert chain_id(None, a) == a


# -- --change -----------------------------------------------------------------------------------

def test_changes_json_and_shell_forms():
    cfg = apply_changes({}, ['CMD ["/bin/sh", "-c", "echo hi"]', "ENTRYPOINT /bin/init --flag",
                             'ENV A=1 B="two words" C=$A', "ENV D x y", "WORKDIR /srv", "WORKDIR app",
                             "EXPOSE 80 53/udp 90-91", "LABEL k=v 'q k'=\"w v\"", "USER nobody",
                             'VOLUME ["/data"]', "VOLUME /a /b", "STOPSIGNAL SIGINT"])
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/bin/init --flag"]
    assert cfg["Env"] == ["A=1", "B=two words", "C=1", "D=x y"]
    assert cfg["WorkingDir"] == "/srv/app"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "90/tcp": {}, "91/tcp": {}}
    assert cfg["Labels"] == {"k": "v", "q k": "w v"}
    assert cfg["User"] == "nobody" and cfg["StopSignal"] == "SIGINT"
    assert cfg["Volumes"] == {"/data": {}, "/a": {}, "/b": {}}


def test_env_replaces_and_expands():
    cfg = apply_changes({"Env": ["PATH=/bin"]}, ["ENV PATH=/x:$PATH", "ENV E=${PATH}-${NOPE:-dflt}"])
    assert cfg["Env"] == ["PATH=/x:/bin", "E=/x:/bin-dflt"]


@pytest.mark.parametrize("change, message", [
    ("RUN echo hi", "RUN is not a valid change command"),
    ("FROM scratch", "FROM is not a valid change command"),
    ("EXPOSE 99999", "invalid containerPort"),
    ("EXPOSE 80/xyz", "invalid proto"),
    ("ENV", "requires at least one argument"),
    ('ENV A="open', "unmatched"),
])
def test_bad_changes(change, message):
    with pytest.raises(InvalidArgument, match=message):
        apply_changes({}, [change])


def test_process_word_quotes():
    assert process_word(r'"a \"b\" $X" \$Y \z', {"X": "x"}) == 'a "b" x $Y z'
    assert process_word("'$X'", {"X": "x"}) == "$X"


# -- GC logic -------------------------------------------------------------------------------------

def test_dead_blobs():
    assert gc.dead_blobs(["a", "b", "c"], {"a"}, {"c"}) == {"b"}


def test_dead_snapshots_removes_children_first_and_keeps_what_is_used():
    N = gc.SnapshotNode
    nodes = [N("base", None, True), N("mid", "base", True), N("top", "mid", True), N("other", "base", True),
             N("ctr", "other", False), N("lone", None, True)]
    # Nothing referenced: everything committed goes except the ancestors of the active container.
    assert gc.dead_snapshots(nodes, set()) == ["top", "mid", "lone"]
    # An image uses top: its chain stays.
    assert gc.dead_snapshots(nodes, {"top"}) == ["lone"]
    # A claim (an import in progress) protects like a reference.
    assert gc.dead_snapshots(nodes, set(), {"lone"}) == ["top", "mid"]


# -- filters and JSON shapes ----------------------------------------------------------------------

def test_filters_accept_both_shapes():
    assert normalize_filters({"label": {"a=1": True, "b": False}, "dangling": ["true"]}) == {
        "label": ["a=1"], "dangling": ["true"]}


def test_timestamps():
    assert parse_timestamp("10m", now=1000.0) == 400.0
    assert parse_timestamp("1h30m", now=10000.0) == 10000.0 - 5400
    assert parse_timestamp("1700000000") == 1_700_000_000
    assert parse_timestamp("2026-01-02T03:04:05.123456789Z") == pytest.approx(1767323045.123456)
    with pytest.raises(InvalidArgument, match="invalid timestamp"):
        parse_timestamp("yesterday")


def test_json_shapes():
    s = ImageSummary("sha256:x", "", (), (), 5, 10)
    assert summary_json(s) == {"Containers": -1, "Created": 5, "Id": "sha256:x", "Labels": None, "ParentId": "",
                               "RepoDigests": ["<none>@<none>"], "RepoTags": ["<none>:<none>"],
                               "SharedSize": -1, "Size": 10, "VirtualSize": 10}
    assert deletions_json([Deletion("Untagged", "a:1"), Deletion("Deleted", "sha256:x")]) == [
        {"Untagged": "a:1"}, {"Deleted": "sha256:x"}]
    assert prune_json(PruneReport((), 0)) == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    assert history_json([HistoryEntry("<missing>", 1, "sh", (), 2, "")]) == [
        {"Comment": "", "Created": 1, "CreatedBy": "sh", "Id": "<missing>", "Size": 2, "Tags": None}]


# -- the service --------------------------------------------------------------------------------

BASE = layer_tar({"bin": None, "bin/sh": b"#!" + b"x" * 5000, "etc": None, "etc/os": b"base\n"})
APP = layer_tar({"app": None, "app/main": b"print(1)\n"})


@pytest.fixture
def svc(tmp_path):
    events = []
    service = ImageService(str(tmp_path / "root"), emit=lambda *a: events.append(a), snapshotter="native")
    service.events = events
    return service


def load(svc, data: bytes, quiet=True):
    return list(svc.load(io.BytesIO(data), quiet=quiet))


@pytest.mark.parametrize("make", [legacy_archive, oci_archive])
def test_load_both_layouts(svc, make):
    img = Img([BASE, APP], ["app:1", "127.0.0.1:5002/apx/img:v1"], cmd=["/app/main"], labels={"l": "1"})
    msgs = load(svc, make([img]))
    assert msgs == [{"stream": "Loaded image: app:1\n"}, {"stream": "Loaded image: 127.0.0.1:5002/apx/img:v1\n"}]
    assert svc.resolve("app:1") == img.id == svc.resolve("127.0.0.1:5002/apx/img:v1")
    assert svc.resolve(img.id[7:19]) == img.id and svc.resolve(img.id) == img.id
    details = svc.inspect("app:1")
    assert details.config["Cmd"] == ["/app/main"] and details.layers == (sha(BASE), sha(APP))
    [summary] = svc.list()
    assert summary.repo_tags == ("app:1", "127.0.0.1:5002/apx/img:v1") and summary.labels == {"l": "1"}
    assert ("image", "load", img.id, {"name": "app:1"}) in svc.events
    snap = svc.snapshotter
    top = snap.stat(chain_ids([sha(BASE), sha(APP)])[-1])
    assert open(os.path.join(snap.dir_of(top.id), "app/main"), "rb").read() == b"print(1)\n"
    assert open(os.path.join(snap.dir_of(top.id), "etc/os"), "rb").read() == b"base\n"


def test_load_gzip_layers_and_untagged_images(svc):
    img = Img([BASE], compress=True)
    assert load(svc, oci_archive([img], with_docker_manifest=False)) == [
        {"stream": f"Loaded image ID: {img.id}\n"}]
    assert svc.list()[0].repo_tags == ()
    assert svc.list(filters={"dangling": ["true"]})[0].id == img.id


def test_load_progress_messages(svc):
    msgs = load(svc, legacy_archive([Img([BASE], ["p:1"])]), quiet=False)
    assert msgs[0]["status"] == "Loading layer" and msgs[-1] == {"stream": "Loaded image: p:1\n"}


def test_resolution_and_not_found_wording(svc):
    load(svc, legacy_archive([Img([BASE], ["bb:latest"])]))
    assert svc.resolve("bb") == svc.resolve("docker.io/library/bb:latest")
    with pytest.raises(NotFound, match="^No such image: nope:latest$"):
        svc.inspect("nope")
    with pytest.raises(NotFound, match="No such image: sha256:0000"):
        svc.inspect("sha256:0000")
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        svc.inspect("Bad:Name")


def test_tag_untag_and_remove_rules(svc):
    base, app = Img([BASE], ["base:1"]), Img([BASE, APP], ["app:1"])
    load(svc, legacy_archive([base, app]))
    assert svc.tag("app:1", "docker.io/library/apxlast", "1") == "apxlast:1"
    assert svc.resolve("apxlast:1") == app.id
    with pytest.raises(Conflict, match=r"unable to delete [0-9a-f]{12} \(must be forced\) - image is referenced"
                                       r" in multiple repositories"):
        svc.remove(app.id)
    assert svc.remove("apxlast:1") == [Deletion("Untagged", "apxlast:1")]
    records = svc.remove("app:1")
    assert records[:2] == [Deletion("Untagged", "app:1"), Deletion("Deleted", app.id)]
    # The app layer's snapshot went; the base layer (still used by base:1) stayed, as did its blob.
    assert [r.value for r in records[2:]] == [chain_ids([sha(BASE), sha(APP)])[-1]]
    assert svc.snapshotter.exists(sha(BASE)) and svc.content.exists(sha(BASE))
    assert not svc.content.exists(sha(APP)) and not svc.content.exists(app.id)
    svc.remove("base:1")
    assert store_state(svc) == ([], [], [], [], [])


def test_remove_with_a_container_using_the_image(svc):
    img = Img([BASE], ["bb:1"])
    load(svc, legacy_archive([img]))
    mounts = svc.mounts_for_container("bb:1", "ctr1")
    assert mounts[0].type == "bind"
    with pytest.raises(Conflict, match=r'unable to remove repository reference "bb:1" \(must force\) - container '
                                       r"ctr1 is using its referenced image"):
        svc.remove("bb:1")
    with pytest.raises(Conflict, match="being used by stopped container"):
        svc.remove(img.id)
    svc.container_running = lambda holder: True
    with pytest.raises(Conflict, match="cannot be forced"):
        svc.remove("bb:1", force=True)
    svc.container_running = lambda holder: False
    assert svc.disk_usage().images[0].containers == 1
    svc.remove("bb:1", force=True)
    # The container's snapshot and its parent layer stay until the container is released.
    assert svc.snapshotter.exists("ctr1") and svc.snapshotter.exists(sha(BASE))
    svc.release_container("ctr1")
    assert store_state(svc) == ([], [], [], [], [])


def test_prune_filters(svc):
    old = Img([BASE], [], labels={"keep": "no"}, created="2020-01-01T00:00:00Z")
    tagged = Img([BASE, APP], ["t:1"], labels={"keep": "yes"})
    load(svc, legacy_archive([old, tagged]))
    assert svc.prune({"label": ["keep=yes"]}).deleted == ()
    report = svc.prune({"until": ["2021-01-01T00:00:00Z"]})
    assert [d.value for d in report.deleted] == [old.id]
    assert svc.prune({"dangling": ["false"], "label!=": ["keep=yes"]}).deleted == ()
    report = svc.prune({"dangling": ["false"]})
    assert report.deleted[0] == Deletion("Untagged", "t:1") and report.space_reclaimed > 5000
    assert store_state(svc) == ([], [], [], [], [])
    with pytest.raises(InvalidArgument, match="Invalid filter 'bogus'"):
        svc.prune({"bogus": ["1"]})


def test_list_filters(svc):
    a = Img([BASE], ["a:1"], labels={"x": "1"}, created="2021-01-01T00:00:00Z")
    b = Img([BASE, APP], ["b:1", "b:2"], created="2022-01-01T00:00:00Z")
    load(svc, legacy_archive([a, b]))
    ids = lambda **kw: [s.id for s in svc.list(**kw)]  # noqa: E731
    assert ids() == [b.id, a.id]
    assert ids(filters={"reference": ["a"]}) == [a.id]
    assert ids(filters={"reference": {"b:*": True}}) == [b.id]
    assert ids(filters={"label": ["x=1"]}) == [a.id]
    assert ids(filters={"before": ["b:1"]}) == [a.id]
    assert ids(filters={"since": ["a:1"]}) == [b.id]
    assert ids(filters={"dangling": ["true"]}) == []
    with pytest.raises(InvalidArgument):
        svc.list(filters={"dangling": ["maybe"]})


def test_history(svc):
    img = Img([BASE, APP], ["h:1"])
    load(svc, legacy_archive([img]))
    hist = svc.history("h:1")
    assert [h.created_by for h in hist] == ["layer 1", "layer 0"]
    assert hist[0].id == img.id and hist[0].tags == ("h:1",) and hist[1].id == "<missing>"
    assert hist[1].size > 5000


def test_import_rootfs_with_changes(svc):
    rootfs = layer_tar({"bin": None, "bin/tool": b"t"})
    image_id = svc.import_rootfs(io.BytesIO(rootfs), "imp", "1", ['CMD ["/bin/tool"]', "ENV A=1", "WORKDIR /w"],
                                 "my message")
    d = svc.inspect("imp:1")
    assert d.id == image_id and d.config["Cmd"] == ["/bin/tool"] and d.config["Env"] == ["A=1"]
    assert d.config["WorkingDir"] == "/w" and d.comment == "my message" and d.layers == (sha(rootfs),)
    assert ("image", "import", image_id, {"name": "imp:1"}) in svc.events


def test_save_and_load_round_trip(svc, tmp_path):
    img = Img([BASE, APP], ["round:1"])
    load(svc, legacy_archive([img]))
    for layout in ("oci", "legacy"):
        out = io.BytesIO()
        svc.save(["round:1"], out, layout=layout)
        other = ImageService(str(tmp_path / f"other-{layout}"), snapshotter="native")
        assert list(other.load(io.BytesIO(out.getvalue()), quiet=True)) == [{"stream": "Loaded image: round:1\n"}]
        assert other.resolve("round:1") == img.id
    with pytest.raises(NotFound):
        svc.save(["round:1", "missing"], io.BytesIO())


def test_oci_layout_export_and_import(svc, tmp_path):
    img = Img([BASE], ["lay:v2"])
    load(svc, legacy_archive([img]))
    layout = str(tmp_path / "layout")
    assert svc.export_oci_layout("lay:v2", layout) == "v2"
    index = json.load(open(os.path.join(layout, "index.json")))
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v2"
    other = ImageService(str(tmp_path / "other"), snapshotter="native")
    assert other.import_oci_layout(layout, "copied:1", ref="v2") == [img.id]
    assert other.resolve("copied:1") == img.id
    with pytest.raises(NotFound, match="no image named 'nope'"):
        other.import_oci_layout(layout, ref="nope")


def test_multi_platform_index_picks_the_host_platform(svc, tmp_path):
    from tests.support.images import oci_manifest, sha
    amd, arm = Img([BASE], ["multi:1"]), Img([APP], ["multi:1"])
    nested = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(oci_manifest(arm)),
         "size": len(oci_manifest(arm)), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(oci_manifest(amd)),
         "size": len(oci_manifest(amd)), "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode()
    from tests.support.images import oci_layout_files
    files = oci_layout_files([amd, arm], index_entries=[
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(nested), "size": len(nested),
         "annotations": {"io.containerd.image.name": "docker.io/library/multi:1",
                         "org.opencontainers.image.ref.name": "1"}}])
    files["blobs/sha256/" + sha(nested)[7:]] = nested
    layout = tmp_path / "layout"
    for path, data in files.items():
        (layout / os.path.dirname(path)).mkdir(parents=True, exist_ok=True)
        (layout / path).write_bytes(data)
    from dockyard.images.formats import host_platform
    want = arm if host_platform().architecture == "arm64" else amd
    assert svc.import_oci_layout(str(layout)) == [want.id]
    assert svc.resolve("multi:1") == want.id
