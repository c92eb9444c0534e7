"""Basic authentication against an htpasswd file of bcrypt entries, as Docker's registry does.

The file is Apache's format, `user:hash` a line, with bcrypt hashes
(`htpasswd -B`: `$2y$…`, `$2b$…`, `$2a$…`); entries of other kinds (MD5,
SHA1, crypt) are refused when the file is read, since the registry cannot
check them.  The file is read again when it changes.

bcrypt is slow on purpose (tens of milliseconds), and a `docker push` makes
dozens of requests with the same credentials, so a check that passed is
remembered for the entry it passed against (keyed by a SHA-256 of the
password, never the password): changing or removing the entry forgets it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
import time

import bcrypt

_BCRYPT_PREFIXES = (b"$2y$", b"$2b$", b"$2a$")
_dummy: list[bytes] = []


def _dummy_hash() -> bytes:
    """Checked when the user is unknown, so an unknown name costs what a wrong password does."""
    if not _dummy:
        _dummy.append(bcrypt.hashpw(b"dockyard", bcrypt.gensalt(rounds=10)))
    return _dummy[0]


class HtpasswdError(Exception):
    """The htpasswd file cannot be used; the message says where and why."""


def parse_htpasswd(text: str, path: str = "htpasswd") -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise HtpasswdError(f"{path}:{lineno}: expected user:hash")
        hashed_b = hashed.strip().encode()
        if not hashed_b.startswith(_BCRYPT_PREFIXES):
            raise HtpasswdError(f"{path}:{lineno}: the entry for {user!r} is not bcrypt "
                                "(make it with `htpasswd -B`)")
        users[user] = hashed_b
    return users


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic …` header; None when absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def challenge(realm: str) -> str:
    return 'Basic realm="{}"'.format(realm.replace("\\", "\\\\").replace('"', '\\"'))


class Htpasswd:
    """The accounts of an htpasswd file; `check` is slow (bcrypt): call it off the event loop."""

    RECHECK = 1.0  # seconds between looks at the file's mtime

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._users: dict[str, bytes] = {}
        self._stamp: tuple | None = None
        self._looked = 0.0
        self._passed: dict[tuple[str, bytes], bytes] = {}
        self._load()

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise HtpasswdError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        users = parse_htpasswd(text, self.path)
        self._users, self._stamp = users, (st.st_ino, st.st_size, st.st_mtime_ns)
        self._passed.clear()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._looked < self.RECHECK:
            return
        self._looked = now
        try:
            st = os.stat(self.path)
        except OSError:
            return  # keep the accounts we have rather than lock everyone out mid-edit
        if (st.st_ino, st.st_size, st.st_mtime_ns) != self._stamp:
            try:
                self._load()
            except HtpasswdError:
                pass  # a half-written file: try again on the next look

    def check(self, user: str, password: str) -> bool:
        with self._lock:
            self._refresh()
            hashed = self._users.get(user)
            key = (user, hashlib.sha256(password.encode("utf-8", "surrogateescape")).digest())
            if hashed is not None and self._passed.get(key) == hashed:
                return True
        try:
            ok = bcrypt.checkpw(password.encode("utf-8", "surrogateescape"), hashed or _dummy_hash())
        except ValueError:  # a malformed hash in the file
            ok = False
        ok = ok and hashed is not None
        if ok:
            with self._lock:
                if self._users.get(user) == hashed:
                    self._passed[key] = hashed
        return ok
