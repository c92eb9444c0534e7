"""Fixtures every suite shares: a busybox rootfs, bundles, runtimes with a private root."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.support.busybox import make_rootfs
from tests.support.runtime import RUNTIME, Runtime


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> str:
    """A read-only template: copy it (make_bundle does) before a container uses it."""
    return make_rootfs(str(tmp_path_factory.mktemp("busybox") / "rootfs"))


@pytest.fixture
def rt(tmp_path):
    """dockyard-runtime with a private --root; every container left is force-deleted."""
    runtime = Runtime(RUNTIME, str(tmp_path / "rt-root"))
    yield runtime
    runtime.cleanup()


@pytest.fixture
def cid() -> str:
    return "t-" + uuid.uuid4().hex[:10]
