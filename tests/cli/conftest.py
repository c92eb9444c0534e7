"""CLI tests run the installed `dockyard` and the real `docker` CLI against a real dockyardd (and, for the
container commands, against dockerd too: tests/support/targets.py)."""

from tests.support.engine import busybox_image, busybox_tar, engine, fresh_engine  # noqa: F401
from tests.support.targets import dockerd_target, dockyardd_target, target  # noqa: F401
