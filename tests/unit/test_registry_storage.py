"""RegistryStorage without a server: uploads that are cut off or crash, verification, visibility, the lock."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from dockyard.registry.errors import RegistryError
from dockyard.registry.storage import RegistryStorage, RootInUse

OCI = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def storage(tmp_path):
    s = RegistryStorage(str(tmp_path / "root"))
    yield s
    s.close()


def push(storage: RegistryStorage, repo: str, data: bytes) -> str:
    upload = storage.start_upload(repo)
    with storage.append(repo, upload) as w:
        w.write(data)
        w.commit()
    storage.complete_upload(repo, upload, sha(data))
    return sha(data)


def code_of(fn, *args) -> str:
    with pytest.raises(RegistryError) as info:
        fn(*args)
    return info.value.code


def test_chunks_that_do_not_commit_are_cut_off(storage):
    upload = storage.start_upload("r")
    with storage.append("r", upload) as w:
        w.write(b"hello ")
        assert w.commit() == 6
    with storage.append("r", upload) as w:
        w.write(b"XXXX")  # the request dies before its end: no commit
    assert storage.upload_size("r", upload) == 6
    # As a crash would leave it: bytes in the file past the committed size.
    with open(storage.upload_path(upload), "ab") as f:
        f.write(b"garbage")
    with storage.append("r", upload, start=6) as w:
        w.write(b"world")
        w.commit()
    assert storage.complete_upload("r", upload, sha(b"hello world")) == 11
    f, size = storage.open_blob("r", sha(b"hello world"))
    with f:
        assert f.read() == b"hello world" and size == 11


def test_out_of_order_chunk_and_one_writer_at_a_time(storage):
    upload = storage.start_upload("r")
    with pytest.raises(RegistryError) as info:
        storage.append("r", upload, start=5)
    assert info.value.status == 416 and ("Range", "0-0") in info.value.headers
    with storage.append("r", upload):
        assert code_of(storage.append, "r", upload) == "BLOB_UPLOAD_INVALID"
        assert code_of(storage.complete_upload, "r", upload, sha(b"")) == "BLOB_UPLOAD_INVALID"
    with storage.append("r", upload) as w:  # free again
        w.commit()


def test_the_hash_is_found_again_after_a_restart(tmp_path):
    root = str(tmp_path / "root")
    first = RegistryStorage(root)
    upload = first.start_upload("r")
    with first.append("r", upload) as w:
        w.write(b"part one, ")
        w.commit()
    with pytest.raises(RootInUse):
        RegistryStorage(root)
    first.close()
    second = RegistryStorage(root)
    try:
        assert second.upload_size("r", upload) == 10
        with second.append("r", upload, start=10) as w:
            w.write(b"part two")
            w.commit()
        assert second.complete_upload("r", upload, sha(b"part one, part two")) == 18
    finally:
        second.close()


def test_a_digest_mismatch_leaves_nothing(storage):
    upload = storage.start_upload("r")
    with storage.append("r", upload) as w:
        w.write(b"payload")
        w.commit()
    wrong = sha(b"other")
    with pytest.raises(RegistryError) as info:
        storage.complete_upload("r", upload, wrong)
    assert info.value.code == "DIGEST_INVALID" and info.value.detail["received"] == sha(b"payload")
    assert list(storage.content.walk()) == []
    assert os.listdir(storage.uploads_dir) == []
    assert code_of(storage.upload_size, "r", upload) == "BLOB_UPLOAD_UNKNOWN"
    assert not storage.repository_exists("r")


def test_blobs_are_visible_per_repository(storage):
    digest = push(storage, "a", b"layer")
    assert storage.blob_size("a", digest) == 5
    assert code_of(storage.blob_size, "b", digest) == "BLOB_UNKNOWN"
    assert not storage.mount("b", digest, "c")
    assert storage.mount("b", digest, "a") and storage.blob_size("b", digest) == 5
    storage.delete_blob("b", digest)
    assert code_of(storage.blob_size, "b", digest) == "BLOB_UNKNOWN"
    assert storage.blob_size("a", digest) == 5  # the bytes are shared and stay
    assert code_of(storage.delete_blob, "b", digest) == "BLOB_UNKNOWN"
    # Pushing bytes the store has already still gives this repository the blob.
    assert push(storage, "d", b"layer") == digest and storage.blob_size("d", digest) == 5


def test_manifests_tags_and_referrers(storage):
    config, layer = push(storage, "r", b"{}"), push(storage, "r", b"layer")
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                                  "size": 2},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer,
                                   "size": 5}]}).encode()
    digest, _ = storage.put_manifest("r", "v1", False, body, OCI, ("extra",))
    assert storage.tags("r", None, "") == ["extra", "v1"]
    record = storage.manifest("r", "v1", False)
    assert (record.digest, record.media_type, record.size) == (digest, OCI, len(body))
    assert storage.read_manifest(record) == body
    assert storage.blob_size("r", digest) == len(body)  # a manifest reads as a blob too
    assert code_of(storage.manifest, "other", "v1", False) == "MANIFEST_UNKNOWN"
    assert code_of(storage.put_manifest, "other", "v1", False, body, OCI) == "MANIFEST_BLOB_UNKNOWN"

    referrer = json.loads(body)
    referrer["subject"] = {"mediaType": OCI, "digest": digest, "size": len(body)}
    referrer["artifactType"] = "application/x.sig"
    raw = json.dumps(referrer).encode()
    storage.put_manifest("r", sha(raw), True, raw, OCI)
    assert [d["digest"] for d in storage.referrers("r", digest, None)] == [sha(raw)]
    assert storage.referrers("r", digest, "application/other") == []
    assert storage.referrers("other", digest, None) == []

    storage.delete_manifest("r", digest, True)
    assert storage.tags("r", None, "") == []
    assert code_of(storage.tags, "nope", None, "") == "NAME_UNKNOWN"
    assert storage.catalog(None, "") == ["r"]


def test_stale_uploads_are_purged(storage):
    old, new = storage.start_upload("r"), storage.start_upload("r")
    with storage.db.transaction() as conn:
        conn.execute("UPDATE uploads SET touched = ? WHERE id = ?", (time.time() - 2 * 86400, old))
    orphan = os.path.join(storage.uploads_dir, "f" * 32)
    open(orphan, "w").close()
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    assert storage.purge_uploads() == 2
    assert sorted(os.listdir(storage.uploads_dir)) == [new]
    assert code_of(storage.upload_size, "r", old) == "BLOB_UPLOAD_UNKNOWN"
