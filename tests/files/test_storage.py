"""Both storage backends through the same tests: a folder in tmp_path, and S3 on moto's real HTTP server."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import requests
import time_machine
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from moto.server import ThreadedMotoServer

from healthcrm.files.storage import (
    MULTIPART_THRESHOLD_BYTES,
    SAFE_NAME_MAX_CHARS,
    LocalStorage,
    ObjectNotFoundError,
    S3Storage,
    Storage,
    get_storage,
    make_key,
    safe_filename,
    validate_key,
)
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
    "MOTO_DISABLE_GLOBAL_CORS": "1",
}
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
    from healthcrm.extensions import csrf

    assert "healthcrm.files.views.local_upload" in csrf._exempt_views


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
