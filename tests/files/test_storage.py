"""Both storage backends through the same tests: a folder in tmp_path, and S3 on moto's real HTTP server."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import random
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import moto.settings
import pytest
import requests
import time_machine
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer
from moto.server import ThreadedMotoServer

from healthcrm.files.storage import (
    DOWNLOAD_URL_MAX_SECONDS,
    LOCAL_SIGNING_SALT,
    MAX_PART_BYTES,
    MULTIPART_MIN_PART_BYTES,
    MULTIPART_THRESHOLD_BYTES,
    SAFE_NAME_MAX_CHARS,
    LocalStorage,
    ObjectNotFoundError,
    S3Storage,
    Storage,
    StoredObject,
    UploadedPart,
    UploadNotFoundError,
    get_storage,
    inline_disposition,
    make_key,
    safe_filename,
    validate_key,
)
from healthcrm.files.storage import s3 as s3_module
from healthcrm.files.views import bp as files_bp

MiB = 1024 * 1024
BIG_FILE_BYTES = 20 * MiB
# A read larger than this means the backend is not streaming.
MAX_READ_BYTES = 16 * MiB
SECRET = "test-secret-key"
REGION = "us-east-1"
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    # moto reads this once, when it is imported (before any fixture runs): only tests/conftest.py can set it
    # in time. Here it reaches nothing but a moto started in another process.
    "MOTO_DISABLE_GLOBAL_CORS": "1",
}
APP_ORIGIN = "https://clinic.example"
TRAVERSALS = [
    "",
    "/etc/passwd",
    "../outside",
    "1/medical-records/../../../outside",
    "1/./x",
    "1//x",
    "1/x/",
    "1\\..\\x",
    ".meta/1/x",
    "1/.hidden",
    "1/x\x00y",
]


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 as a real HTTP server on 127.0.0.1, with fake credentials in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_AWS_ENV.items():
            patch.setenv(name, value)
        # No shared config or credentials file of the machine may leak into the tests.
        patch.setenv("AWS_CONFIG_FILE", os.devnull)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        patch.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def s3_storage(moto_endpoint: str) -> S3Storage:
    storage = S3Storage(bucket="healthcrm-test", endpoint_url=moto_endpoint, region=REGION)
    # No bucket default encryption here: objects are encrypted only if our own requests ask for it.
    storage.ensure_bucket(default_encryption=False)
    storage.ensure_bucket(default_encryption=False)  # idempotent
    return storage


@pytest.fixture(scope="module")
def raw_s3(moto_endpoint: str):
    """A plain boto3 client, to check what S3 itself reports rather than what our code says."""
    return boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name=REGION, config=S3Storage.client_config(moto_endpoint)
    )


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "storage", secret_key=SECRET)
    return request.getfixturevalue("s3_storage")


@pytest.fixture
def files_app(tmp_path: Path) -> Flask:
    """The smallest app that serves the local presigned routes."""
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY=SECRET,
        STORAGE_BACKEND="local",
        STORAGE_LOCAL_ROOT=str(tmp_path / "app-storage"),
    )
    app.register_blueprint(files_bp)
    return app


def new_key(name: str = "scan.pdf") -> str:
    return make_key(random.randint(1, 10**6), random.randint(1, 10**6), name)


def fetch(client, url: str):
    """GET through the Flask test client, buffering the body and closing the file send_file opened."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


class ChunkOnlyReader:
    """A file object that refuses whole-file reads: read() without a size or above MAX_READ_BYTES fails."""

    def __init__(self, data: bytes, seekable: bool = True) -> None:
        self._buffer = io.BytesIO(data)
        self._seekable = seekable
        self.bad_reads: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_READ_BYTES:
            self.bad_reads.append(size)
            # A plain exception (not pytest.fail) so it also surfaces from boto3's transfer threads.
            raise AssertionError(f"read({size}) would load the whole file into memory")
        return self._buffer.read(size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        return self._buffer.seek(offset, whence)

    def tell(self) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("tell")
        return self._buffer.tell()


def read_all(stream) -> bytes:
    with stream:
        return b"".join(iter(lambda: stream.read(MiB), b""))


# --- the interface, on both backends ------------------------------------------------------------------------


@pytest.mark.real_time("the local files' last-modified time is the file system's clock: --at cannot move it")
def test_round_trip(storage: Storage) -> None:
    key = new_key("Blood panel (März).pdf")
    data = b"%PDF-1.7 lab results\n" * 100

    stored = storage.put_stream(key, io.BytesIO(data), "application/pdf")

    assert stored.key == key
    assert stored.size == len(data)
    assert stored.content_type == "application/pdf"
    assert stored.etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert stored.storage_class == "STANDARD"
    assert abs(stored.last_modified - datetime.now(UTC)) < timedelta(minutes=5)
    assert storage.head(key) == stored
    assert read_all(storage.open_stream(key)) == data

    storage.delete(key)

    assert storage.head(key) is None
    with pytest.raises(ObjectNotFoundError):
        storage.open_stream(key)
    storage.delete(key)  # deleting again is not an error


def test_put_replaces_whole_object(storage: Storage) -> None:
    key = new_key()
    storage.put_stream(key, io.BytesIO(b"first version, longer"), "text/plain")
    storage.put_stream(key, io.BytesIO(b"second"), "text/csv")

    assert read_all(storage.open_stream(key)) == b"second"
    assert storage.head(key).content_type == "text/csv"


@pytest.mark.parametrize("seekable", [True, False], ids=["seekable", "stream"])
def test_put_stream_never_reads_whole_file(storage: Storage, seekable: bool) -> None:
    data = payload(BIG_FILE_BYTES)
    source = ChunkOnlyReader(data, seekable=seekable)
    key = new_key("ct-scan.dcm")

    stored = storage.put_stream(key, source, "application/dicom")

    assert source.bad_reads == []
    assert stored.size == BIG_FILE_BYTES
    digest = hashlib.sha256()
    with storage.open_stream(key) as stream:
        for chunk in iter(lambda: stream.read(MiB), b""):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    storage.delete(key)


def test_storage_class(storage: Storage) -> None:
    key = new_key()
    storage.put_stream(key, io.BytesIO(b"old x-ray"), "image/png")
    assert storage.storage_class(key) == "STANDARD"

    storage.set_storage_class(key, "STANDARD_IA")

    assert storage.storage_class(key) == "STANDARD_IA"
    assert storage.head(key).content_type == "image/png"
    assert read_all(storage.open_stream(key)) == b"old x-ray"
    storage.set_storage_class(key, "STANDARD_IA")  # already there: nothing to do
    with pytest.raises(ValueError):
        storage.set_storage_class(key, "CHEAPEST")
    with pytest.raises(ObjectNotFoundError):
        storage.storage_class(new_key())


def test_put_with_storage_class(storage: Storage) -> None:
    key = new_key()
    stored = storage.put_stream(key, io.BytesIO(b"archive"), "text/plain", storage_class="STANDARD_IA")
    assert stored.storage_class == "STANDARD_IA"


@pytest.mark.parametrize("key", TRAVERSALS)
def test_every_operation_validates_the_key(storage: Storage, key: str) -> None:
    operations = [
        lambda: storage.put_stream(key, io.BytesIO(b"x"), "text/plain"),
        lambda: storage.open_stream(key),
        lambda: storage.head(key),
        lambda: storage.delete(key),
        lambda: storage.presigned_get(key, 60),
        lambda: storage.presigned_post(key, "text/plain", 10, 60),
        lambda: storage.storage_class(key),
        lambda: storage.set_storage_class(key, "STANDARD_IA"),
        lambda: storage.create_multipart_upload(key, "text/plain"),
        lambda: storage.presigned_upload_part(key, "0" * 32, 1, 60),
        lambda: storage.list_parts(key, "0" * 32),
        lambda: storage.complete_multipart_upload(key, "0" * 32, [(1, "0" * 32)]),
        lambda: storage.abort_multipart_upload(key, "0" * 32),
    ]
    for operation in operations:
        with pytest.raises(ValueError):
            operation()


def test_presigned_limits_are_checked(storage: Storage) -> None:
    key = new_key()
    with pytest.raises(ValueError):
        storage.presigned_get(key, 0)
    with pytest.raises(ValueError):
        storage.presigned_get(key, 8 * 24 * 3600)
    with pytest.raises(ValueError):
        storage.presigned_post(key, "text/plain", 0, 60)


# --- S3 specifics -------------------------------------------------------------------------------------------


def test_s3_encrypts_single_and_multipart_objects(s3_storage: S3Storage, raw_s3) -> None:
    small_key, big_key = new_key("note.txt"), new_key("mri.dcm")
    big = payload(MULTIPART_THRESHOLD_BYTES + 3 * MiB)

    s3_storage.put_stream(small_key, io.BytesIO(b"small"), "text/plain")
    s3_storage.put_stream(big_key, io.BytesIO(big), "application/dicom")

    small_head = raw_s3.head_object(Bucket=s3_storage.bucket, Key=small_key)
    big_head = raw_s3.head_object(Bucket=s3_storage.bucket, Key=big_key)
    assert small_head["ServerSideEncryption"] == "AES256"
    assert big_head["ServerSideEncryption"] == "AES256"
    # A multipart ETag is "<md5 of part md5s>-<part count>".
    assert "-" not in small_head["ETag"]
    assert big_head["ETag"].strip('"').endswith("-2")
    assert big_head["ContentType"] == "application/dicom"
    assert big_head["ContentLength"] == len(big)


def test_s3_storage_class_change_keeps_encryption(s3_storage: S3Storage, raw_s3) -> None:
    key = new_key()
    s3_storage.put_stream(key, io.BytesIO(b"aging report"), "text/plain")

    s3_storage.set_storage_class(key, "STANDARD_IA")

    head = raw_s3.head_object(Bucket=s3_storage.bucket, Key=key)
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ServerSideEncryption"] == "AES256"


def test_s3_presigned_get_over_http(s3_storage: S3Storage) -> None:
    key = new_key()
    s3_storage.put_stream(key, io.BytesIO(b"discharge letter"), "application/pdf")

    url = s3_storage.presigned_get(key, 300, download_name="Entlassbrief Müller.pdf")

    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url) as answer:  # noqa: S310 (http to the local moto server)
        assert answer.read() == b"discharge letter"
        disposition = answer.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Entlassbrief-Muller.pdf"')
    assert "filename*=UTF-8''Entlassbrief%20M%C3%BCller.pdf" in disposition


def test_s3_presigned_post_policy_and_upload(s3_storage: S3Storage, raw_s3) -> None:
    key = new_key("insurance card.jpg")

    form = s3_storage.presigned_post(key, "image/jpeg", max_bytes=5 * MiB, expires_seconds=600)

    fields = form["fields"]
    assert fields["key"] == key
    assert fields["Content-Type"] == "image/jpeg"
    assert fields["x-amz-server-side-encryption"] == "AES256"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert "x-amz-storage-class" not in fields  # none asked for
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    # moto does not enforce the policy, so the conditions S3 would enforce are checked here.
    assert ["content-length-range", 1, 5 * MiB] in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert {"x-amz-server-side-encryption": "AES256"} in conditions
    assert {"key": key} in conditions
    assert {"bucket": s3_storage.bucket} in conditions
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert timedelta(minutes=9) < expires - datetime.now(UTC) <= timedelta(minutes=10)

    image = b"\xff\xd8\xff\xe0 fake jpeg" * 50
    answer = requests.post(
        form["url"], data=fields, files={"file": ("card.jpg", image, "image/jpeg")}, timeout=10
    )

    assert answer.status_code == 204, answer.text
    assert read_all(s3_storage.open_stream(key)) == image
    # moto ignores the form's SSE field (real S3 applies it, and the policy above demands it), so the
    # object's own encryption is not asserted here.
    assert raw_s3.head_object(Bucket=s3_storage.bucket, Key=key)["ContentLength"] == len(image)


def test_s3_ensure_bucket_sets_default_encryption(moto_endpoint: str, raw_s3) -> None:
    storage = S3Storage(bucket=f"demo-{uuid.uuid4().hex[:12]}", endpoint_url=moto_endpoint, region=REGION)

    storage.ensure_bucket()

    rules = raw_s3.get_bucket_encryption(Bucket=storage.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_get_storage_picks_s3_from_config(moto_endpoint: str) -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=SECRET,
        STORAGE_BACKEND="s3",
        S3_BUCKET="from-config",
        S3_ENDPOINT_URL=moto_endpoint,
        S3_REGION=REGION,
    )
    storage = get_storage(app)
    assert isinstance(storage, S3Storage)
    assert storage.bucket == "from-config"
    assert get_storage(app) is storage
    assert app.extensions["healthcrm_storage"] is storage

    app.register_blueprint(files_bp)
    # With S3 configured, the local stand-in routes do not exist.
    assert fetch(app.test_client(), "/files/local/anything").status_code == 404


# --- the local backend and its routes -----------------------------------------------------------------------


def test_get_storage_picks_local_and_caches(files_app: Flask) -> None:
    storage = get_storage(files_app)
    assert isinstance(storage, LocalStorage)
    assert get_storage(files_app) is storage
    assert get_storage(files_app.config) is not storage  # a bare config is not cached


def test_local_keeps_s3_key_layout(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, secret_key=SECRET)
    key = make_key(7, 42, "ECG.pdf")
    storage.put_stream(key, io.BytesIO(b"ecg"), "application/pdf")

    assert (tmp_path / key).read_bytes() == b"ecg"
    stray = [p.name for p in (tmp_path / key).parent.iterdir() if p.name != Path(key).name]
    assert stray == []  # no temp file left behind


def test_local_failed_upload_leaves_nothing_under_the_key(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    key = new_key()
    storage.put_stream(key, io.BytesIO(b"previous version"), "text/plain")

    class BrokenUpload(io.RawIOBase):
        sent = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.sent += 1
            if self.sent > 2:
                raise ConnectionResetError("client went away")
            return b"x" * size

    with pytest.raises(ConnectionResetError):
        storage.put_stream(key, BrokenUpload(), "text/plain")

    assert read_all(storage.open_stream(key)) == b"previous version"
    assert sorted(p.name for p in storage.local_path(key).parent.iterdir()) == [Path(key).name]


def test_local_symlink_cannot_leave_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    storage = LocalStorage(root)
    (root / "1").symlink_to(outside)

    with pytest.raises(ValueError):
        storage.open_stream("1/secret.txt")


def test_local_presigned_get(files_app: Flask) -> None:
    storage = get_storage(files_app)
    key = new_key()
    storage.put_stream(key, io.BytesIO(b"vaccination record"), "application/pdf")
    client = files_app.test_client()

    with files_app.test_request_context():
        inline_url = storage.presigned_get(key, 60)
    attachment_url = storage.presigned_get(key, 60, download_name="Impfpass Jörg.pdf")  # no request: a path

    assert inline_url.startswith("/files/local/")
    inline = fetch(client, inline_url)
    assert inline.status_code == 200
    assert inline.data == b"vaccination record"
    assert inline.mimetype == "application/pdf"
    assert inline.headers["Cache-Control"] == "no-store"
    assert "Content-Disposition" not in inline.headers or "inline" in inline.headers["Content-Disposition"]

    attachment = fetch(client, attachment_url)
    assert attachment.status_code == 200
    assert attachment.data == b"vaccination record"
    assert attachment.headers["Cache-Control"] == "no-store"
    disposition = attachment.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''Impfpass%20J%C3%B6rg.pdf" in disposition


def test_local_presigned_get_refusals(files_app: Flask) -> None:
    storage = get_storage(files_app)
    key = new_key()
    storage.put_stream(key, io.BytesIO(b"x"), "text/plain")
    client = files_app.test_client()
    url = storage.presigned_get(key, 60)

    assert fetch(client, url[:-2] + ("AA" if not url.endswith("AA") else "BB")).status_code == 404
    other_secret = LocalStorage(storage.root, secret_key="another-key").presigned_get(key, 60)
    assert fetch(client, other_secret).status_code == 404
    upload_token = storage.presigned_post(key, "text/plain", 10, 60)["url"].rsplit("/", 1)[1]
    assert fetch(client, f"/files/local/{upload_token}").status_code == 404
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61), tick=False):
        assert fetch(client, url).status_code == 403
    storage.delete(key)
    assert fetch(client, url).status_code == 404


def test_local_presigned_post(files_app: Flask) -> None:
    storage = get_storage(files_app)
    key = new_key("referral.pdf")
    with files_app.test_request_context():
        form = storage.presigned_post(key, "application/pdf", max_bytes=1000, expires_seconds=60)
    assert form["url"].startswith("/files/local-upload/")
    client = files_app.test_client()

    def post(data: bytes, content_type: str = "application/pdf", **extra: str):
        fields = {**form["fields"], **extra, "file": (io.BytesIO(data), "referral.pdf", content_type)}
        return client.post(form["url"], data=fields, content_type="multipart/form-data")

    assert post(b"%PDF referral", "text/plain", **{"Content-Type": "text/plain"}).status_code == 400
    assert storage.head(key) is None
    too_big = post(b"x" * 1001)
    assert too_big.status_code == 413
    assert "at most 1000 bytes" in too_big.get_json()["error"]
    assert post(b"").status_code == 400
    assert post(b"%PDF", key=new_key()).status_code == 400
    assert storage.head(key) is None

    # A body far over the signed limit is refused from its Content-Length, before the form is read (the
    # answer names the body's size, which only the header gives).
    refused = post(b"x" * (200 * 1024))  # over the limit with its form fields, small enough for memory
    assert refused.status_code == 413
    assert refused.get_json()["error"].startswith("The upload is ")
    assert "it may have at most 1000 bytes" in refused.get_json()["error"]
    assert storage.head(key) is None

    done = post(b"%PDF referral")

    assert done.status_code == 204
    stored = storage.head(key)
    assert stored.content_type == "application/pdf"
    assert done.headers["ETag"] == f'"{stored.etag}"'
    assert read_all(storage.open_stream(key)) == b"%PDF referral"


def test_local_presigned_post_refusals(files_app: Flask) -> None:
    storage = get_storage(files_app)
    key = new_key()
    url = storage.presigned_post(key, "text/plain", 10, 60)["url"]
    client = files_app.test_client()
    body = {"file": (io.BytesIO(b"hello"), "a.txt", "text/plain")}

    download_token = storage.presigned_get(key, 60).rsplit("/", 1)[1]
    assert client.post(f"/files/local-upload/{download_token}", data=body).status_code == 404
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61), tick=False):
        assert (
            client.post(url, data={"file": (io.BytesIO(b"hello"), "a.txt", "text/plain")}).status_code == 403
        )
    assert client.post(url, data={"other": "x"}).status_code == 400
    assert storage.head(key) is None


def test_local_views_declare_public_policy_and_csrf_exemption() -> None:
    from healthcrm.files import views

    assert views.local_download.access_policy.public
    assert views.local_upload.access_policy.public
    assert views.local_part.access_policy.public
    from healthcrm.extensions import csrf

    assert "healthcrm.files.views.local_upload" in csrf._exempt_views
    assert "healthcrm.files.views.local_part" in csrf._exempt_views


# --- downloads: inline, type override, one-hour cap, gzip-stored objects -----------------------------------


def test_download_links_live_at_most_an_hour(storage: Storage) -> None:
    key = new_key()
    assert DOWNLOAD_URL_MAX_SECONDS == 3600

    assert storage.presigned_get(key, DOWNLOAD_URL_MAX_SECONDS)
    with pytest.raises(ValueError):
        storage.presigned_get(key, DOWNLOAD_URL_MAX_SECONDS + 1)
    with pytest.raises(ValueError):
        storage.presigned_get(key, 60, inline=True, content_type="text/plain\r\nX-Evil: 1")


def test_inline_disposition() -> None:
    disposition = inline_disposition("Befund Müller.pdf")

    assert disposition.startswith('inline; filename="Befund-Muller.pdf"; ')
    assert disposition.endswith("filename*=UTF-8''Befund%20M%C3%BCller.pdf")


def test_s3_presigned_get_inline_with_type(s3_storage: S3Storage) -> None:
    key = new_key()
    s3_storage.put_stream(key, io.BytesIO(b"%PDF-1.7 findings"), "application/octet-stream")

    url = s3_storage.presigned_get(
        key, 600, download_name="Befund Müller.pdf", inline=True, content_type="application/pdf"
    )

    assert "X-Amz-Expires=600" in url
    with urllib.request.urlopen(url) as answer:  # noqa: S310 (http to the local moto server)
        assert answer.read() == b"%PDF-1.7 findings"
        assert answer.headers["Content-Type"] == "application/pdf"
        assert answer.headers["Content-Disposition"] == inline_disposition("Befund Müller.pdf")


def test_local_presigned_get_inline_with_type(files_app: Flask) -> None:
    storage = get_storage(files_app)
    key = new_key()
    storage.put_stream(key, io.BytesIO(b"%PDF-1.7 findings"), "application/octet-stream")
    client = files_app.test_client()

    shown = fetch(
        client,
        storage.presigned_get(key, 60, "Befund Müller.pdf", inline=True, content_type="application/pdf"),
    )
    saved = fetch(client, storage.presigned_get(key, 60, "Befund Müller.pdf"))

    assert shown.status_code == 200
    assert shown.data == b"%PDF-1.7 findings"
    assert shown.mimetype == "application/pdf"
    assert shown.headers["Content-Disposition"] == inline_disposition("Befund Müller.pdf")
    assert shown.headers["Cache-Control"] == "no-store"
    assert saved.mimetype == "application/octet-stream"
    assert saved.headers["Content-Disposition"].startswith('attachment; filename="Befund-Muller.pdf"')


def test_local_never_shows_active_content_inline(files_app: Flask) -> None:
    storage = get_storage(files_app)
    key = new_key("letter.html")
    storage.put_stream(key, io.BytesIO(b"<script>alert(document.cookie)</script>"), "text/html")
    client = files_app.test_client()

    asked_inline = fetch(client, storage.presigned_get(key, 60, "letter.html", inline=True))
    plain_link = fetch(client, storage.presigned_get(key, 60))
    as_svg = fetch(client, storage.presigned_get(key, 60, inline=True, content_type="image/svg+xml"))

    # Served from the app's own origin, a page could read the session: the browser must save it instead.
    for answer in (asked_inline, plain_link, as_svg):
        assert answer.status_code == 200
        assert answer.headers["Content-Disposition"].startswith("attachment;")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_content_encoding_round_trips(storage: Storage) -> None:
    key, plain_key = new_key("notes.txt"), new_key()
    original = b"Patient reports mild headache.\n" * 2000
    packed = gzip.compress(original)

    stored = storage.put_stream(key, io.BytesIO(packed), "text/plain", content_encoding="gzip")
    plain = storage.put_stream(plain_key, io.BytesIO(b"plain"), "text/plain")

    assert stored.content_encoding == "gzip"
    assert storage.head(key) == stored
    assert stored.size == len(packed)
    assert read_all(storage.open_stream(key)) == packed  # the stored bytes, as stored
    assert plain.content_encoding is None
    storage.set_storage_class(key, "STANDARD_IA")
    assert storage.head(key).content_encoding == "gzip"
    # Objects described the old way still compare and construct.
    assert StoredObject(key, 1, "text/plain", "e", "STANDARD", stored.last_modified).content_encoding is None


def test_s3_download_of_gzip_object_is_decompressed(s3_storage: S3Storage) -> None:
    key = new_key("notes.txt")
    original = b"Patient reports mild headache.\n" * 2000
    s3_storage.put_stream(key, io.BytesIO(gzip.compress(original)), "text/plain", content_encoding="gzip")

    # requests, like a browser, decodes a Content-Encoding it understands.
    answer = requests.get(s3_storage.presigned_get(key, 60, "notes.txt"), timeout=10)

    assert answer.status_code == 200
    assert answer.headers["Content-Encoding"] == "gzip"
    assert answer.content == original


def test_local_download_of_gzip_object_says_so(files_app: Flask) -> None:
    storage = get_storage(files_app)
    key = new_key("notes.txt")
    original = b"Patient reports mild headache.\n" * 2000
    storage.put_stream(key, io.BytesIO(gzip.compress(original)), "text/plain", content_encoding="gzip")

    answer = fetch(files_app.test_client(), storage.presigned_get(key, 60, "notes.txt"))

    assert answer.status_code == 200
    assert answer.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(answer.data) == original


# --- presigned POST with a storage class --------------------------------------------------------------------


def test_s3_presigned_post_pins_storage_class(s3_storage: S3Storage) -> None:
    key = new_key("referral.pdf")

    form = s3_storage.presigned_post(
        key, "application/pdf", max_bytes=5 * MiB, expires_seconds=600, storage_class="INTELLIGENT_TIERING"
    )

    fields = form["fields"]
    assert fields["x-amz-storage-class"] == "INTELLIGENT_TIERING"
    conditions = json.loads(base64.b64decode(fields["policy"]))["conditions"]
    # moto does not enforce the policy: S3 would, so every condition it would check is asserted here.
    assert {"key": key} in conditions
    assert ["content-length-range", 1, 5 * MiB] in conditions
    assert {"Content-Type": "application/pdf"} in conditions
    assert {"x-amz-server-side-encryption": "AES256"} in conditions
    assert {"x-amz-storage-class": "INTELLIGENT_TIERING"} in conditions
    with pytest.raises(ValueError):
        s3_storage.presigned_post(key, "application/pdf", 10, 60, storage_class="CHEAPEST")


def test_local_presigned_post_records_storage_class(files_app: Flask) -> None:
    storage = get_storage(files_app)
    key = new_key("referral.pdf")
    form = storage.presigned_post(key, "application/pdf", 1000, 60, storage_class="INTELLIGENT_TIERING")
    fields = {**form["fields"], "file": (io.BytesIO(b"%PDF referral"), "referral.pdf", "application/pdf")}

    answer = files_app.test_client().post(form["url"], data=fields, content_type="multipart/form-data")

    assert answer.status_code == 204
    assert storage.head(key).storage_class == "INTELLIGENT_TIERING"


# --- browser multipart uploads, on both backends ------------------------------------------------------------


@dataclass
class Uploads:
    """A backend, how a browser PUTs to its part URLs, and how a restarted app would open it again."""

    storage: Storage
    put: Callable[[str, bytes], Any]
    reopen: Callable[[], Storage]

    def put_part(self, key: str, upload_id: str, part_number: int, data: bytes) -> str:
        """PUT one part as the browser does; the part's ETag from the answer's header, without quotes."""
        answer = self.put(self.storage.presigned_upload_part(key, upload_id, part_number, 600), data)
        assert answer.status_code == 200
        return answer.headers["ETag"].strip('"')


@pytest.fixture(params=["local", "s3"])
def uploads(request: pytest.FixtureRequest, files_app: Flask) -> Uploads:
    if request.param == "local":
        local = get_storage(files_app)
        client = files_app.test_client()
        return Uploads(
            local,
            put=lambda url, data: client.put(url, data=data),
            reopen=lambda: LocalStorage(local.root, secret_key=SECRET),
        )
    s3 = request.getfixturevalue("s3_storage")
    endpoint = request.getfixturevalue("moto_endpoint")
    return Uploads(
        s3,
        put=lambda url, data: requests.put(url, data=data, timeout=30),
        reopen=lambda: S3Storage(bucket=s3.bucket, endpoint_url=endpoint, region=REGION),
    )


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_multipart_upload_resumes_and_completes(uploads: Uploads) -> None:
    storage, key = uploads.storage, new_key("ct-series.dcm")
    data = payload(2 * MULTIPART_MIN_PART_BYTES + 3 * MiB)
    chunks = [data[:MULTIPART_MIN_PART_BYTES], data[MULTIPART_MIN_PART_BYTES : 2 * MULTIPART_MIN_PART_BYTES]]
    chunks.append(data[2 * MULTIPART_MIN_PART_BYTES :])
    upload_id = storage.create_multipart_upload(key, "application/dicom", storage_class="INTELLIGENT_TIERING")

    etags = [uploads.put_part(key, upload_id, n, chunks[n - 1]) for n in (1, 2)]

    expected = [UploadedPart(n, len(chunks[n - 1]), md5(chunks[n - 1])) for n in (1, 2)]
    assert etags == [part.etag for part in expected]
    assert storage.list_parts(key, upload_id) == expected
    assert storage.head(key) is None  # nothing visible until completed
    # The page was reloaded, the app restarted: the upload resumes from what the store already has.
    reopened = uploads.reopen()
    assert reopened.list_parts(key, upload_id) == expected

    etags.append(uploads.put_part(key, upload_id, 3, chunks[2]))
    stored = reopened.complete_multipart_upload(
        key, upload_id, [(1, etags[0]), (2, f'"{etags[1]}"'), (3, etags[2])]
    )

    assert stored.size == len(data)
    assert stored.content_type == "application/dicom"
    assert stored.storage_class == "INTELLIGENT_TIERING"
    # Both backends give a joined object S3's multipart ETag.
    assert stored.etag == f"{md5(b''.join(bytes.fromhex(etag) for etag in etags))}-3"
    assert hashlib.sha256(read_all(storage.open_stream(key))).digest() == hashlib.sha256(data).digest()
    with pytest.raises(UploadNotFoundError):
        storage.list_parts(key, upload_id)
    storage.abort_multipart_upload(key, upload_id)  # after completion: nothing to do, not an error
    assert storage.head(key) == stored


def test_multipart_complete_refuses_parts_that_do_not_match(uploads: Uploads) -> None:
    storage, key = uploads.storage, new_key()
    first, last = payload(MULTIPART_MIN_PART_BYTES), b"the end"
    upload_id = storage.create_multipart_upload(key, "application/pdf")
    etag_1 = uploads.put_part(key, upload_id, 1, first)
    etag_2 = uploads.put_part(key, upload_id, 2, last)

    with pytest.raises(ValueError):
        storage.complete_multipart_upload(key, upload_id, [(1, etag_1), (2, md5(b"something else"))])
    with pytest.raises(ValueError):
        storage.complete_multipart_upload(key, upload_id, [(1, etag_1), (3, etag_2)])  # never uploaded
    with pytest.raises(ValueError):
        storage.complete_multipart_upload(key, upload_id, [(2, etag_2), (1, etag_1)])  # out of order
    with pytest.raises(ValueError):
        storage.complete_multipart_upload(key, upload_id, [])

    # Nothing became visible and the upload is still open: the right parts complete it.
    assert storage.head(key) is None
    assert [part.part_number for part in storage.list_parts(key, upload_id)] == [1, 2]
    stored = storage.complete_multipart_upload(key, upload_id, [(1, etag_1), (2, etag_2)])
    assert stored.size == len(first) + len(last)


def test_multipart_parts_below_the_minimum_only_last(uploads: Uploads) -> None:
    storage, key = uploads.storage, new_key()
    upload_id = storage.create_multipart_upload(key, "text/plain")
    etags = [uploads.put_part(key, upload_id, n, f"part {n}".encode()) for n in (1, 2)]

    with pytest.raises(ValueError):
        storage.complete_multipart_upload(key, upload_id, [(1, etags[0]), (2, etags[1])])

    # A single small part is also the last one.
    assert storage.complete_multipart_upload(key, upload_id, [(1, etags[0])]).size == len(b"part 1")


def test_multipart_abort(uploads: Uploads) -> None:
    storage, key = uploads.storage, new_key()
    upload_id = storage.create_multipart_upload(key, "text/plain")
    etag = uploads.put_part(key, upload_id, 1, b"half an upload")

    storage.abort_multipart_upload(key, upload_id)

    with pytest.raises(UploadNotFoundError):
        storage.list_parts(key, upload_id)
    if isinstance(storage, LocalStorage):
        # (S3 answers NoSuchUpload here too; moto 5.2.5 fails with a 500 instead.)
        with pytest.raises(UploadNotFoundError):
            storage.complete_multipart_upload(key, upload_id, [(1, etag)])
    storage.abort_multipart_upload(key, upload_id)  # idempotent
    assert storage.head(key) is None


def test_multipart_unknown_upload(uploads: Uploads) -> None:
    storage, key, other_key = uploads.storage, new_key(), new_key()
    other_upload = storage.create_multipart_upload(other_key, "text/plain")

    for upload_id in ("0" * 32, "no-such-upload", "../../etc", ""):
        with pytest.raises(UploadNotFoundError):
            storage.list_parts(key, upload_id)
        storage.abort_multipart_upload(key, upload_id)
    with pytest.raises(ValueError):
        storage.presigned_upload_part(other_key, other_upload, 0, 60)
    with pytest.raises(ValueError):
        storage.presigned_upload_part(other_key, other_upload, 10_001, 60)
    if isinstance(storage, LocalStorage):
        # An upload id belongs to its key, as on S3 (moto 5.2.5 finds and aborts an upload by id alone).
        with pytest.raises(UploadNotFoundError):
            storage.list_parts(key, other_upload)
        storage.abort_multipart_upload(key, other_upload)
    assert storage.list_parts(other_key, other_upload) == []
    storage.abort_multipart_upload(other_key, other_upload)


def test_s3_multipart_object_is_encrypted_with_class_and_encoding(s3_storage: S3Storage, raw_s3) -> None:
    key = new_key("notes.txt")
    packed = gzip.compress(b"progress notes " * 1000)
    upload_id = s3_storage.create_multipart_upload(
        key, "text/plain", storage_class="INTELLIGENT_TIERING", content_encoding="gzip"
    )
    part_url = s3_storage.presigned_upload_part(key, upload_id, 1, 600)
    assert "X-Amz-Expires=600" in part_url
    etag = requests.put(part_url, data=packed, timeout=10).headers["ETag"]

    stored = s3_storage.complete_multipart_upload(key, upload_id, [(1, etag)])

    head = raw_s3.head_object(Bucket=s3_storage.bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "INTELLIGENT_TIERING"
    assert head["ContentEncoding"] == "gzip"
    assert stored.content_encoding == "gzip"


def test_s3_list_parts_follows_pages(s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    upload_id = s3_storage.create_multipart_upload(key, "text/plain")
    for n in (5, 1, 4, 2, 3):
        s3_storage.client.upload_part(
            Bucket=s3_storage.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=f"part {n}".encode()
        )
    monkeypatch.setattr(s3_module, "LIST_PARTS_PAGE_SIZE", 2)

    parts = s3_storage.list_parts(key, upload_id)

    assert [part.part_number for part in parts] == [1, 2, 3, 4, 5]
    assert parts[2] == UploadedPart(3, len(b"part 3"), md5(b"part 3"))
    s3_storage.abort_multipart_upload(key, upload_id)


# --- the local part route -----------------------------------------------------------------------------------


def test_local_upload_state_lives_in_a_hidden_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, secret_key=SECRET)
    key = new_key()

    upload_id = storage.create_multipart_upload(key, "image/tiff", storage_class="INTELLIGENT_TIERING")

    folder = tmp_path / ".uploads" / upload_id
    state = json.loads((folder / "upload.json").read_text())
    assert (state["key"], state["content_type"], state["storage_class"]) == (
        key,
        "image/tiff",
        "INTELLIGENT_TIERING",
    )
    with pytest.raises(ValueError):
        validate_key(f".uploads/{upload_id}/upload.json")  # no key reaches it
    storage.abort_multipart_upload(key, upload_id)
    assert not folder.exists()


def test_local_part_is_streamed_to_disk(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, secret_key=SECRET)
    key, data = new_key(), payload(BIG_FILE_BYTES)
    upload_id = storage.create_multipart_upload(key, "application/dicom")
    source = ChunkOnlyReader(data, seekable=False)

    part = storage.put_part(key, upload_id, 1, source, len(data), MAX_PART_BYTES)

    assert source.bad_reads == []
    assert part == UploadedPart(1, len(data), md5(data))
    stored = storage.complete_multipart_upload(key, upload_id, [(1, part.etag)])
    assert stored.size == len(data)
    assert sorted(p.name for p in storage.local_path(key).parent.iterdir()) == [Path(key).name]


def test_local_part_retry_replaces_the_part(files_app: Flask) -> None:
    storage = get_storage(files_app)
    client = files_app.test_client()
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "text/plain")
    url = storage.presigned_upload_part(key, upload_id, 7, 60)

    client.put(url, data=b"first try, cut short")
    retried = client.put(url, data=b"second try")

    assert retried.status_code == 200
    assert retried.headers["ETag"] == f'"{md5(b"second try")}"'
    assert storage.list_parts(key, upload_id) == [UploadedPart(7, len(b"second try"), md5(b"second try"))]
    assert sorted(p.name for p in (storage.root / ".uploads" / upload_id).iterdir()) == [
        "00007.part",
        "upload.json",
    ]


def test_local_part_route_refuses_bad_links(files_app: Flask) -> None:
    storage = get_storage(files_app)
    client = files_app.test_client()
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "text/plain")
    url = storage.presigned_upload_part(key, upload_id, 1, 60)
    assert url.startswith("/files/local-part/")
    token = url.rsplit("/", 1)[1]

    def put(target: str) -> int:
        return client.put(target, data=b"part").status_code

    assert put(url[:-2] + ("AA" if not url.endswith("AA") else "BB")) == 404
    assert (
        put(LocalStorage(storage.root, secret_key="another-key").presigned_upload_part(key, upload_id, 1, 60))
        == 404
    )
    download_token = storage.presigned_get(key, 60).rsplit("/", 1)[1]
    upload_token = storage.presigned_post(key, "text/plain", 10, 60)["url"].rsplit("/", 1)[1]
    assert put(f"/files/local-part/{download_token}") == 404
    assert put(f"/files/local-part/{upload_token}") == 404
    assert fetch(client, f"/files/local/{token}").status_code == 404  # a part link does not download
    assert (
        client.post(f"/files/local-upload/{token}", data={"file": (io.BytesIO(b"x"), "a.txt")}).status_code
        == 404
    )
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61), tick=False):
        assert put(url) == 403
    assert storage.list_parts(key, upload_id) == []

    storage.abort_multipart_upload(key, upload_id)
    assert put(url) == 404
    assert not (storage.root / ".uploads" / upload_id).exists()


def test_local_part_route_size_limits(files_app: Flask) -> None:
    storage = get_storage(files_app)
    client = files_app.test_client()
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "text/plain")
    url = storage.presigned_upload_part(key, upload_id, 1, 60)

    # The body is never read: the claimed length alone is refused.
    too_big = client.put(url, data=b"x", environ_overrides={"CONTENT_LENGTH": str(MAX_PART_BYTES + 1)})
    chunked = client.put(url, data=b"no length", headers={"Transfer-Encoding": "chunked"})
    # A server that hands over the raw input (wsgi.input_terminated) could pass more than the header said.
    longer = client.put(
        url, data=b"0123456789", environ_overrides={"CONTENT_LENGTH": "4", "wsgi.input_terminated": True}
    )
    shorter = client.put(url, data=b"0123", environ_overrides={"CONTENT_LENGTH": "10"})

    assert too_big.status_code == 413
    assert str(MAX_PART_BYTES) in too_big.get_json()["error"]
    assert chunked.status_code == 411
    assert longer.status_code == 413
    assert shorter.status_code == 400
    assert storage.list_parts(key, upload_id) == []
    assert sorted(p.name for p in (storage.root / ".uploads" / upload_id).iterdir()) == ["upload.json"]


def test_local_part_route_ignores_the_form_size_limit(files_app: Flask) -> None:
    # MAX_CONTENT_LENGTH is the app's limit for forms; a part is bounded by its signed limit instead.
    files_app.config["MAX_CONTENT_LENGTH"] = 1000
    storage = get_storage(files_app)
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "text/plain")

    answer = files_app.test_client().put(
        storage.presigned_upload_part(key, upload_id, 1, 60), data=b"x" * 5000
    )

    assert answer.status_code == 200
    assert storage.list_parts(key, upload_id)[0].size == 5000


def test_local_part_route_never_leaves_the_root(files_app: Flask, tmp_path: Path) -> None:
    storage = get_storage(files_app)
    client = files_app.test_client()
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "text/plain")
    # Someone holding the secret key still cannot point a part outside the uploads folder.
    signer = URLSafeTimedSerializer(SECRET, salt=LOCAL_SIGNING_SALT)
    valid = {
        "op": "part",
        "k": key,
        "u": upload_id,
        "p": 1,
        "m": 100,
        "x": int(datetime.now(UTC).timestamp()) + 60,
    }
    forged = [
        {"k": "../../outside"},
        {"k": ".uploads/x"},
        {"u": "../../../outside"},
        {"u": upload_id.upper()},
        {"p": "../../x"},
        {"p": 0},
        {"p": 10_001},
        {"m": None},
    ]
    with pytest.raises(UploadNotFoundError):
        storage.presigned_upload_part(key, "../../outside", 1, 60)

    for change in forged:
        token = signer.dumps({**valid, **change})
        assert client.put(f"/files/local-part/{token}", data=b"escape").status_code == 404, change

    assert sorted(p.name for p in tmp_path.iterdir()) == ["app-storage"]
    assert storage.list_parts(key, upload_id) == []
    assert client.put(f"/files/local-part/{signer.dumps(valid)}", data=b"fits").status_code == 200


# --- bucket CORS for browser uploads ------------------------------------------------------------------------


def test_s3_ensure_bucket_sets_cors(moto_endpoint: str, raw_s3) -> None:
    storage = S3Storage(bucket=f"cors-{uuid.uuid4().hex[:12]}", endpoint_url=moto_endpoint, region=REGION)

    storage.ensure_bucket(cors_origins=[APP_ORIGIN])
    first = raw_s3.get_bucket_cors(Bucket=storage.bucket)["CORSRules"]
    storage.ensure_bucket(cors_origins=[APP_ORIGIN, "https://clinic2.example"])  # bucket exists: updated

    rules = raw_s3.get_bucket_cors(Bucket=storage.bucket)["CORSRules"]
    assert first[0]["AllowedOrigins"] == [APP_ORIGIN]
    assert len(rules) == 1
    assert rules[0]["AllowedOrigins"] == [APP_ORIGIN, "https://clinic2.example"]
    assert sorted(rules[0]["AllowedMethods"]) == ["GET", "HEAD", "POST", "PUT"]
    assert rules[0]["AllowedHeaders"] == ["*"]
    assert rules[0]["ExposeHeaders"] == ["ETag"]
    assert rules[0]["MaxAgeSeconds"] == 3000
    with pytest.raises(ValueError):
        storage.ensure_bucket(cors_origins=APP_ORIGIN)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cors_storage(moto_endpoint: str) -> S3Storage:
    storage = S3Storage(bucket=f"browser-{uuid.uuid4().hex[:12]}", endpoint_url=moto_endpoint, region=REGION)
    storage.ensure_bucket(cors_origins=[APP_ORIGIN])
    return storage


def test_s3_browser_can_put_parts_and_read_their_etag(cors_storage: S3Storage) -> None:
    key = new_key()  # a new key per upload: a preflight on an existing private key gets 403
    upload_id = cors_storage.create_multipart_upload(key, "text/plain")
    url = cors_storage.presigned_upload_part(key, upload_id, 1, 60)

    preflight = requests.options(
        url,
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=10,
    )
    put = requests.put(url, data=b"part", headers={"Origin": APP_ORIGIN}, timeout=10)

    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    assert put.status_code == 200
    assert put.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "ETag" in put.headers["Access-Control-Expose-Headers"]
    cors_storage.abort_multipart_upload(key, upload_id)


@pytest.mark.skipif(
    not moto.settings.DISABLE_GLOBAL_CORS,
    reason="moto answers every origin unless MOTO_DISABLE_GLOBAL_CORS=1 is set before it is imported "
    "(tests/conftest.py)",
)
def test_s3_bucket_cors_refuses_other_origins(cors_storage: S3Storage) -> None:
    preflight = requests.options(
        f"{cors_storage.client.meta.endpoint_url}/{cors_storage.bucket}/{new_key()}",
        headers={"Origin": "https://phishing.example", "Access-Control-Request-Method": "PUT"},
        timeout=10,
    )

    assert preflight.status_code == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers


# --- keys ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("Résumé Ünïcode.pdf", "Resume-Unicode.pdf"),
        ("../../etc/passwd", "etc-passwd"),
        (".htaccess", "file.htaccess"),
        ("化验单.pdf", "file.pdf"),
        ("", "file"),
        ("....", "file"),
        ("report - final .pdf", "report-final.pdf"),
        ("a" * 300 + ".jpeg", "a" * (SAFE_NAME_MAX_CHARS - 5) + ".jpeg"),
    ],
)
def test_safe_filename_examples(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_make_key_layout() -> None:
    key = make_key(12, 345, "Röntgen Thorax.png", when=datetime(2024, 3, 9, tzinfo=UTC))
    tenant, area, year, month, record, leaf = key.split("/")
    assert (tenant, area, year, month, record) == ("12", "medical-records", "2024", "03", "345")
    random_part, name = leaf.split("-", 1)
    assert uuid.UUID(hex=random_part)
    assert name == "Rontgen-Thorax.png"
    assert make_key(12, 345, "x.png") != make_key(12, 345, "x.png")
    with pytest.raises(ValueError):
        make_key("1/..", 2, "x")


@given(st.text(max_size=400))
def test_safe_filename_only_allowed_chars(name: str) -> None:
    safe = safe_filename(name)
    assert 1 <= len(safe) <= SAFE_NAME_MAX_CHARS
    assert set(safe) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    assert not safe.startswith(".")


@given(st.integers(min_value=1, max_value=2**63), st.integers(min_value=1, max_value=2**63), st.text())
def test_make_key_always_valid(tenant_id: int, record_id: int, name: str) -> None:
    key = make_key(tenant_id, record_id, name)
    assert validate_key(key) == key
    assert key.startswith(f"{tenant_id}/medical-records/")


@pytest.fixture(scope="module")
def hypothesis_root(tmp_path_factory: pytest.TempPathFactory) -> LocalStorage:
    return LocalStorage(tmp_path_factory.mktemp("hypothesis-storage"))


@given(key=st.text(alphabet=st.sampled_from(list("ab./\\\x00:~")), max_size=30))
def test_local_paths_stay_under_root(hypothesis_root: LocalStorage, key: str) -> None:
    try:
        path = hypothesis_root.local_path(key)
    except ValueError:
        return
    assert path.is_relative_to(hypothesis_root.root)
    assert ".." not in key.split("/")


@pytest.mark.parametrize("key", TRAVERSALS)
def test_validate_key_rejects_traversal(key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)
