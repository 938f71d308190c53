"""The storage primitives of the cost area, the same on both backends: listings with class and size, open
multipart uploads, object tags, the bucket's lifecycle rules, and restores of archived objects."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
import time_machine

from healthcrm.files.storage import (
    RESTORE_ONGOING,
    RESTORED,
    LocalStorage,
    ObjectArchivedError,
    ObjectNotFoundError,
    S3Storage,
    Storage,
)
from tests.files.conftest import moto_url as moto_url  # the S3 server fixture, shared

SECRET = "tiers-test-secret"


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "storage", secret_key=SECRET, restore_seconds=0)
    store = S3Storage(
        bucket=f"tiers-{uuid.uuid4().hex[:12]}", endpoint_url=request.getfixturevalue("moto_url")
    )
    store.ensure_bucket()
    return store


def _put(storage: Storage, key: str, body: bytes = b"x" * 10, storage_class: str | None = None) -> None:
    storage.put_stream(key, io.BytesIO(body), "application/pdf", storage_class=storage_class)


def test_objects_are_listed_with_size_and_class_under_a_prefix(storage):
    _put(storage, "1/attachments/a.pdf", b"a" * 300)
    _put(storage, "1/attachments/b.pdf", b"b" * 20, "GLACIER")
    _put(storage, "2/attachments/c.pdf")
    listed = list(storage.iter_objects("1/"))
    assert [(o.key, o.size, o.storage_class) for o in listed] == [
        ("1/attachments/a.pdf", 300, "STANDARD"),
        ("1/attachments/b.pdf", 20, "GLACIER"),
    ]
    assert all(o.last_modified.tzinfo is not None for o in listed)
    assert storage.list_keys("1/") == ["1/attachments/a.pdf", "1/attachments/b.pdf"]


def test_open_multipart_uploads_are_listed_until_aborted(storage):
    upload_id = storage.create_multipart_upload("1/uploads/big.pdf", "application/pdf")
    storage.create_multipart_upload("2/uploads/other.pdf", "application/pdf")
    assert [(u.key, u.upload_id) for u in storage.list_open_uploads("1/")] == [
        ("1/uploads/big.pdf", upload_id)
    ]
    storage.abort_multipart_upload("1/uploads/big.pdf", upload_id)
    assert storage.list_open_uploads("1/") == []


def test_tags_are_replaced_whole_and_checked(storage):
    _put(storage, "1/attachments/t.pdf")
    assert storage.get_tags("1/attachments/t.pdf") == {}
    storage.set_tags("1/attachments/t.pdf", {"archive": "allowed", "clinic": "1"})
    storage.set_tags("1/attachments/t.pdf", {"archive": "held"})
    assert storage.get_tags("1/attachments/t.pdf") == {"archive": "held"}
    with pytest.raises(ValueError):
        storage.set_tags("1/attachments/t.pdf", {f"k{i}": "v" for i in range(11)})
    with pytest.raises(ObjectNotFoundError):
        storage.get_tags("1/attachments/none.pdf")


def test_the_lifecycle_configuration_is_stored_and_removed(storage):
    assert storage.get_lifecycle() == []
    rules = [
        {
            "ID": "clinic-1-archive",
            "Status": "Enabled",
            "Filter": {"And": {"Prefix": "1/", "Tags": [{"Key": "archive", "Value": "allowed"}]}},
            "Transitions": [{"Days": 90, "StorageClass": "GLACIER"}],
        },
        {"ID": "abort", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
    ]  # fmt: skip
    storage.put_lifecycle(rules)
    assert storage.get_lifecycle() == rules
    storage.put_lifecycle([])
    assert storage.get_lifecycle() == []


def test_an_archived_object_is_read_only_after_a_restore(storage):
    key = "1/attachments/old.pdf"
    _put(storage, key, b"old scan", "GLACIER")
    stored = storage.head(key)
    assert stored.archived and not stored.readable and stored.restore is None
    with pytest.raises(ObjectArchivedError):
        storage.open_stream(key)
    with pytest.raises(ValueError):
        storage.request_restore(key, days=0, tier="Bulk")
    assert storage.request_restore(key, days=2, tier="Bulk") is True
    restored = storage.head(key)
    assert restored.restore == RESTORED and restored.readable and restored.restore_expires is not None
    with storage.open_stream(key) as stream:
        assert stream.read() == b"old scan"


def test_only_archived_objects_restore_and_deep_archive_has_no_expedited_tier(storage):
    _put(storage, "1/attachments/new.pdf")
    with pytest.raises(ValueError, match="needs no restore"):
        storage.request_restore("1/attachments/new.pdf", days=1, tier="Standard")
    _put(storage, "1/attachments/deep.pdf", storage_class="DEEP_ARCHIVE")
    with pytest.raises(ValueError, match="Expedited"):
        storage.request_restore("1/attachments/deep.pdf", days=1, tier="Expedited")
    with pytest.raises(ObjectNotFoundError):
        storage.request_restore("1/attachments/none.pdf", days=1, tier="Bulk")


def test_a_local_restore_takes_its_time_and_its_copy_expires(tmp_path):
    storage = LocalStorage(tmp_path / "storage", secret_key=SECRET, restore_seconds=3600)
    key = "1/attachments/old.pdf"
    with time_machine.travel("2031-05-01 10:00Z", tick=False) as clock:
        _put(storage, key, b"scan", "DEEP_ARCHIVE")
        assert storage.request_restore(key, days=1, tier="Bulk") is True
        assert storage.head(key).restore == RESTORE_ONGOING
        assert storage.request_restore(key, days=1, tier="Bulk") is False  # already running
        with pytest.raises(ObjectArchivedError):
            storage.open_stream(key)
        clock.shift(3601)
        assert storage.head(key).restore == RESTORED
        storage.open_stream(key).close()
        clock.shift(86400)
        assert storage.head(key).restore is None and not storage.head(key).readable
