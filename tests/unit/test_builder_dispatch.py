"""The dispatcher with a recording fake worker: scoping of ARG and ENV, stages, the cache, messages."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os

import pytest

from dockyard.builder.cache import BuildCache
from dockyard.builder.context import BuildContext
from dockyard.builder.dispatch import Builder, BuildFailed, BuildOptions
from dockyard.errors import InvalidArgument

BASE = {"config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": ["sha256:l0"]},
        "history": [{"created_by": "base"}]}


class FakeWorker:
    def __init__(self, tmp):
        self.tmp = tmp
        self.images = {"sha256:" + "b" * 64: copy.deepcopy(BASE)}
        self.names = {"busybox": "sha256:" + "b" * 64}
        self.runs: list[dict] = []
        self.exit_code = 0
        self.tags = []

    def _new(self, doc: dict) -> str:
        image_id = "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        self.images[image_id] = copy.deepcopy(doc)
        return image_id

    def image(self, name, pull):
        image_id = self.names.get(name, name)
        if image_id not in self.images:
            raise InvalidArgument(f"pull access denied for {name}")
        return image_id, copy.deepcopy(self.images[image_id])

    def exists(self, image_id):
        return image_id in self.images

    def store_config(self, parent_id, doc):
        return self._new(doc)

    def run(self, parent_id, run_config, host_config, started, output):
        self.runs.append(run_config)
        started("c" * 64)
        output(b"out:" + " ".join(run_config["Cmd"]).encode() + b"\n")
        return "c" * 64, self.exit_code

    def commit_container(self, container_id, parent_id, doc):
        doc = copy.deepcopy(doc)
        doc["rootfs"]["diff_ids"].append("sha256:run")
        return self._new(doc)

    def remove_container(self, container_id):
        pass

    def keep_container(self, container_id):
        pass

    def add_layer(self, parent_id, doc, fill):
        root = os.path.join(self.tmp, "layer")
        os.makedirs(root, exist_ok=True)
        fill(root)
        doc = copy.deepcopy(doc)
        doc["rootfs"]["diff_ids"].append("sha256:copy")
        return self._new(doc)

    @contextlib.contextmanager
    def mounted(self, image_id):
        yield self.tmp

    def tag(self, image_id, names):
        self.tags.append((image_id, names))


def build(tmp_path, dockerfile: str, worker=None, files=None, **options):
    ctx_dir = tmp_path / "ctx"
    ctx_dir.mkdir(exist_ok=True)
    (ctx_dir / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        (ctx_dir / name).write_text(data)
    worker = worker or FakeWorker(str(tmp_path))
    messages = []
    builder = Builder(worker, BuildCache(str(tmp_path / "cache")), BuildContext(str(ctx_dir)),
                      BuildOptions(**options), messages.append)
    image_id = builder.build()
    return worker, image_id, messages


def text(messages):
    return "".join(m.get("stream", "") for m in messages)


def test_arg_and_env_scoping(tmp_path):
    worker, image_id, messages = build(tmp_path, (
        "ARG TAG=busybox\nFROM $TAG AS one\nARG TAG\nARG WHO=nobody\nENV E=$WHO-$TAG\nRUN echo $WHO\n"
        "FROM busybox\nRUN echo ${WHO:-unset} ${TAG:-none}\n"), build_args={"WHO": "me"})
    first, second = worker.runs
    assert "WHO=me" in first["Env"] and "TAG=busybox" in first["Env"] and "E=me-busybox" in first["Env"]
    assert not any(e.startswith("WHO=") for e in second["Env"])  # ARGs do not cross stages
    assert worker.images[image_id]["config"]["Env"] == ["PATH=/bin"]
    history = [h["created_by"] for h in worker.images[image_id]["history"]]
    assert history[-1] == "/bin/sh -c echo ${WHO:-unset} ${TAG:-none}"
    assert "Step 1/8 : ARG TAG=busybox" in text(messages)
    assert messages[-1]["stream"].startswith("Successfully built ")
    assert messages[-2] == {"aux": {"ID": image_id}}


def test_env_pairs_see_the_environment_before_the_instruction(tmp_path):
    worker, image_id, _ = build(tmp_path, "FROM busybox\nENV A=1\nENV A=2 B=$A\n")
    assert worker.images[image_id]["config"]["Env"] == ["PATH=/bin", "A=2", "B=1"]
    assert worker.images[image_id]["history"][-1] == {
        "created": worker.images[image_id]["history"][-1]["created"],
        "created_by": "/bin/sh -c #(nop)  ENV A=2 B=1", "empty_layer": True}


def test_cache_hits_and_misses(tmp_path):
    worker, first, _ = build(tmp_path, "FROM busybox\nRUN echo a\nCOPY f /f\n", files={"f": "1"})
    _, again, messages = build(tmp_path, "FROM busybox\nRUN echo a\nCOPY f /f\n", worker=worker, files={"f": "1"})
    assert again == first and text(messages).count("Using cache") == 2 and len(worker.runs) == 1
    _, changed, messages = build(tmp_path, "FROM busybox\nRUN echo a\nCOPY f /f\n", worker=worker,
                                 files={"f": "2"})
    assert changed != first and text(messages).count("Using cache") == 1
    _, _, messages = build(tmp_path, "FROM busybox\nRUN echo a\nCOPY f /f\n", worker=worker, files={"f": "2"},
                           no_cache=True)
    assert "Using cache" not in text(messages) and len(worker.runs) == 2


def test_failing_run_and_messages(tmp_path):
    worker = FakeWorker(str(tmp_path))
    worker.exit_code = 7
    with pytest.raises(BuildFailed) as info:
        build(tmp_path, "FROM busybox\nRUN exit 7\n", worker=worker)
    assert info.value.code == 7
    assert info.value.message == "The command '/bin/sh -c exit 7' returned a non-zero code: 7"


def test_stages_targets_and_from(tmp_path):
    worker, image_id, messages = build(tmp_path, "FROM busybox AS a\nENV S=a\nFROM a\nENV T=b\n", target="a",
                                       tags=("x:1",))
    assert "Step 2/2 : ENV S=a" in text(messages) and "T=b" not in text(messages)
    assert worker.tags == [(image_id, ("x:1",))]
    assert text(messages).endswith("Successfully tagged x:1\n")
    with pytest.raises(BuildFailed, match="refers to current or later build stage"):
        build(tmp_path, "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n")
    with pytest.raises(BuildFailed, match="pull access denied for nothere"):
        build(tmp_path, "FROM nothere\n")


def test_quiet_only_the_id(tmp_path):
    _, image_id, messages = build(tmp_path, "FROM busybox\nRUN echo hi\n", quiet=True)
    assert messages == [{"stream": image_id + "\n"}]


def test_onbuild_triggers_run_first_and_are_not_inherited(tmp_path):
    worker, parent, _ = build(tmp_path, "FROM busybox\nONBUILD ENV FROM_TRIGGER=1\n")
    worker.names["parent"] = parent
    _, child, messages = build(tmp_path, "FROM parent\nENV OWN=1\n", worker=worker)
    assert "# Executing 1 build trigger" in text(messages)
    config = worker.images[child]["config"]
    assert "FROM_TRIGGER=1" in config["Env"] and not config["OnBuild"]


def test_copy_chown_and_destination(tmp_path):
    worker, image_id, _ = build(tmp_path, "FROM busybox\nWORKDIR /app\nCOPY f ./\n", files={"f": "x"})
    layer = tmp_path / "layer"
    assert (layer / "app" / "f").read_text() == "x"
    history = worker.images[image_id]["history"][-1]["created_by"]
    assert history.startswith("/bin/sh -c #(nop) COPY file:") and history.endswith(" in /app/ ")
    with pytest.raises(BuildFailed, match="the destination must be a directory and end with a /"):
        build(tmp_path, "FROM busybox\nCOPY f Dockerfile /dest\n", files={"f": "x"})


def test_wildcards_count_what_they_match(tmp_path):
    build(tmp_path, "FROM busybox\nCOPY f* /dest\n", files={"f1": "one"})
    assert (tmp_path / "layer" / "dest").read_text() == "one"
    with pytest.raises(BuildFailed, match="must be a directory and end with a /"):
        build(tmp_path, "FROM busybox\nCOPY f* /dest2\n", files={"f1": "one", "f2": "two"})
    build(tmp_path, "FROM busybox\nCOPY f* /many/\n", files={"f1": "one", "f2": "two"})
    assert sorted(os.listdir(tmp_path / "layer" / "many")) == ["f1", "f2"]
