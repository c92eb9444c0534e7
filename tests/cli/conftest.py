"""CLI tests run the installed `dockyard` and the real `docker` CLI against a real dockyardd."""

from tests.support.engine import busybox_image, busybox_tar, engine, fresh_engine  # noqa: F401
