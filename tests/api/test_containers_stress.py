"""Tight loops of short-lived containers: the record's writes and the auto-removal stay ordered.

`docker run --rm bb true` as the docker CLI sends it (create with AutoRemove,
attach, wait for removal, start), many times over, two at a time: every start
answers 204, every wait 200, and nothing is left behind.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.api.containers_support import Api, hijack

pytestmark = pytest.mark.root

RUNS = 50


@pytest.fixture(scope="module")
def api(engine, busybox_image) -> Api:
    return Api(str(engine.socket))


def _run_rm(api: Api, socket_path: str, problems: list) -> None:
    status, body = api.post("/containers/create", {
        "Image": "busybox", "Cmd": ["true"], "AttachStdout": True, "AttachStderr": True,
        "HostConfig": {"AutoRemove": True, "NetworkMode": "none"}})
    if status != 201:
        problems.append(("create", status, body))
        return
    cid = body["Id"]
    stream = hijack(socket_path, f"/containers/{cid}/attach", stream=1, stdout=1, stderr=1)
    waited: list = []
    waiter = threading.Thread(target=lambda: waited.append(api.post(f"/containers/{cid}/wait",
                                                                     condition="removed")))
    waiter.start()
    try:
        status, body = api.post(f"/containers/{cid}/start")
        if status != 204:
            problems.append(("start", status, body))
        waiter.join(30)
        if not waited or waited[0][0] != 200:
            problems.append(("wait", waited))
    finally:
        stream.close()


def test_tight_run_rm_loops_never_fail(api, engine):
    problems: list = []
    socket_path = str(engine.socket)

    def worker(count: int) -> None:
        for _ in range(count):
            _run_rm(api, socket_path, problems)

    start = time.monotonic()
    workers = [threading.Thread(target=worker, args=(RUNS // 2,)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    took = time.monotonic() - start
    assert problems == []
    assert took < 20, f"{RUNS} runs took {took:.1f}s"
    status, listed = api.get("/containers/json", all=1)
    assert (status, listed) == (200, [])
    assert os.listdir(engine.data_root / "containers") == []
    assert "config.v2.json" not in engine.log()


def test_a_start_of_a_container_removed_meanwhile_is_404_not_500(api):
    """Many starts and removals of one container at once: each start is 204, or 404/409 once it is gone."""
    status, body = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                   "HostConfig": {"NetworkMode": "none"}})
    assert status == 201
    cid = body["Id"]
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(api.post(f"/containers/{cid}/start")[0]))
               for _ in range(4)]
    threads.append(threading.Thread(target=lambda: answers.append(api.delete(f"/containers/{cid}", force=1)[0])))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 5 and all(code in (204, 304, 404, 409) for code in answers), answers
    assert api.get(f"/containers/{cid}/json")[0] == 404
