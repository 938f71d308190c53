"""Fixtures for the storage cost area: the app's storage on the local folder or on moto's S3 server."""

from __future__ import annotations

import uuid

import pytest

from healthcrm.files.storage import STORAGE_EXTENSION, LocalStorage, S3Storage, Storage
from tests.files.conftest import moto_url as moto_url  # the S3 server fixture, shared


@pytest.fixture(params=["local", "s3"])
def storage(request, app, tmp_path) -> Storage:
    """The app's storage backend for this test: a folder of its own (not the one a worker process shares
    between tests: the lifecycle rules are the folder's, like a bucket's), or a new bucket on moto's S3
    server. Tests that queue jobs run them inline (`inline_jobs`), so the jobs see this storage too."""
    if request.param == "local":
        root = tmp_path / "lifecycle-storage"
        app.config["STORAGE_LOCAL_ROOT"] = str(root)
        store: Storage = LocalStorage(root, secret_key=app.config["SECRET_KEY"])
    else:
        store = S3Storage(
            bucket=f"life-{uuid.uuid4().hex[:12]}", endpoint_url=request.getfixturevalue("moto_url")
        )
        store.ensure_bucket()
        app.config.update(
            STORAGE_BACKEND="s3", S3_BUCKET=store.bucket, S3_ENDPOINT_URL=store.client.meta.endpoint_url
        )
    app.extensions[STORAGE_EXTENSION] = store
    return store
