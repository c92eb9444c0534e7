"""The content store: verified, atomic, shared, safe under concurrent writers."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import threading

import pytest

from dockyard.content import Descriptor, LocalContentStore, check_digest, digest_of, short_id
from dockyard.errors import InvalidArgument, NotFound


@pytest.fixture
def store(tmp_path):
    return LocalContentStore(str(tmp_path))


def _listing(store):
    return sorted(os.listdir(store.blobs_dir)), sorted(os.listdir(store.ingest_dir))


def test_layout_and_put(store, tmp_path):
    digest = store.put(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    path = tmp_path / "content" / "blobs" / "sha256" / digest[7:]
    assert path.read_bytes() == b"hello"
    assert oct(path.stat().st_mode & 0o777) == oct(0o444)
    assert store.exists(digest) and store.size(digest) == 5 and store.read(digest) == b"hello"
    assert list(store.walk()) == [(digest, 5)]
    assert os.listdir(store.ingest_dir) == []


def test_ingest_verifies_digest_and_size(store):
    data = os.urandom(3 << 20)
    good = digest_of(data)
    assert store.ingest(io.BytesIO(data), good, len(data)) == (good, len(data))
    bad = "sha256:" + "0" * 64
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.ingest(io.BytesIO(b"other bytes"), bad, 11)
    with pytest.raises(InvalidArgument, match="unexpected end of data"):
        store.ingest(io.BytesIO(b"short"), None, 10)
    with pytest.raises(InvalidArgument, match="larger than its declared size"):
        with store.writer(None, 3) as w:
            w.write(b"four")
    # Nothing but the good blob; no ingest leftovers.
    assert _listing(store) == ([good[7:]], [])


def test_ingest_of_a_present_blob_still_consumes_the_stream(store):
    digest = store.put(b"abc")
    stream = io.BytesIO(b"abcREST")
    assert store.ingest(stream, digest, 3) == (digest, 3)
    assert stream.read() == b"REST"


def test_writer_leaves_nothing_when_abandoned(store):
    with store.writer() as w:
        w.write(b"partial")
    assert _listing(store) == ([], [])


def test_delete_and_missing(store):
    digest = store.put(b"x")
    assert store.delete(digest) == 1
    assert store.delete(digest) == 0
    with pytest.raises(NotFound, match="not found"):
        store.open(digest)
    with pytest.raises(NotFound):
        store.size(digest)


def test_bad_digests_are_refused():
    with pytest.raises(InvalidArgument, match="only sha256"):
        check_digest("md5:" + "0" * 32)
    with pytest.raises(InvalidArgument, match="invalid digest"):
        check_digest("sha256:XYZ")
    with pytest.raises(InvalidArgument):
        check_digest(None)
    assert short_id("sha256:" + "ab" * 32) == "ab" * 6


def test_descriptor_json_round_trip():
    d = Descriptor("application/x", "sha256:" + "0" * 64, 3, {"k": "v"}, {"os": "linux"})
    assert Descriptor.from_json(d.to_json()) == d
    with pytest.raises(InvalidArgument, match="size"):
        Descriptor.from_json({"mediaType": "x", "digest": "sha256:" + "0" * 64, "size": -1})
    with pytest.raises(InvalidArgument, match="digest"):
        Descriptor.from_json({"mediaType": "x", "digest": "nope", "size": 1})


def test_concurrent_writers_of_one_blob_in_threads(store):
    data = os.urandom(1 << 20)
    digest = digest_of(data)
    errors = []

    def write():
        try:
            assert store.ingest(io.BytesIO(data), digest, len(data))[0] == digest
        except Exception as err:  # collected for the assertion below
            errors.append(err)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.read(digest) == data
    assert _listing(store) == ([digest[7:]], [])


def _write_in_process(root: str, data: bytes, barrier) -> str:
    store = LocalContentStore(root)
    barrier.wait()
    with store.writer() as w:
        for i in range(0, len(data), 4096):
            w.write(data[i:i + 4096])
        return w.commit()


def test_concurrent_writers_of_one_blob_in_processes(tmp_path):
    data = os.urandom(2 << 20)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(4)
    with ctx.Pool(4) as pool:
        digests = pool.starmap(_write_in_process, [(str(tmp_path), data, barrier)] * 4)
    store = LocalContentStore(str(tmp_path))
    assert set(digests) == {digest_of(data)}
    assert store.read(digest_of(data)) == data
    assert os.listdir(store.ingest_dir) == []


def test_stale_ingest_files_are_cleared(tmp_path):
    store = LocalContentStore(str(tmp_path))
    old = os.path.join(store.ingest_dir, "crashed.tmp")
    young = os.path.join(store.ingest_dir, "live.tmp")
    for p in (old, young):
        with open(p, "wb") as f:
            f.write(b"x")
    os.utime(old, (1, 1))
    LocalContentStore(str(tmp_path))
    assert os.listdir(store.ingest_dir) == ["live.tmp"]
