"""API tests drive a real dockyardd (see tests/support/engine.py for the fixtures)."""

from tests.support.engine import busybox_image, busybox_tar, engine, fresh_engine  # noqa: F401
