"""The engine's SQLite databases: one connection per thread, WAL, short IMMEDIATE transactions.

Readers never block the writer under WAL, and an IMMEDIATE transaction takes
the write lock up front, so two writers queue (for up to `timeout` seconds)
instead of failing halfway with SQLITE_BUSY.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Database:
    def __init__(self, path: str, schema: str = "", timeout: float = 30.0):
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        if schema:
            self.conn.executescript(schema)

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit outside `transaction()`)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested uses join the outer one."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
