"""The S3 backend: one bucket on S3 or an S3-compatible store, SSE-S3 on every write."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from .base import (
    DEFAULT_CONTENT_TYPE,
    DEFAULT_STORAGE_CLASS,
    RESTORE_ONGOING,
    RESTORED,
    ListedObject,
    ObjectArchivedError,
    ObjectNotFoundError,
    OpenUpload,
    Storage,
    StoredObject,
    UploadedPart,
    UploadNotFoundError,
    _check_completion_parts,
    _check_download_expiry,
    _check_expiry,
    _check_header_value,
    _check_max_bytes,
    _check_part_number,
    _check_storage_class,
    _check_tags,
    check_restore,
)
from .keys import _CONTROL_CHARS, attachment_disposition, inline_disposition, validate_key

# Below this size S3 gets one PUT; above it boto3 sends a multipart upload of MULTIPART_CHUNK_BYTES parts.
MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024
MULTIPART_CHUNK_BYTES = 8 * 1024 * 1024
# Parts uploaded at once; with MULTIPART_CHUNK_BYTES this caps the memory one upload may hold (~32 MiB).
MULTIPART_CONCURRENCY = 4
# S3 lists at most this many parts per request.
LIST_PARTS_PAGE_SIZE = 1000
# How long browsers may cache a CORS preflight answer for the bucket.
CORS_MAX_AGE_SECONDS = 3000

SSE_ALGORITHM = "AES256"


# --- S3 -----------------------------------------------------------------------------------------------------


class S3Storage(Storage):
    """Objects in one S3 bucket (or an S3-compatible store at `endpoint_url`), SSE-S3 (AES256) on every write.

    Credentials come from boto3's usual chain (environment, shared config, instance role), never from here.
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3Storage needs a bucket name")
        self.bucket = bucket
        self.region = region
        self.client = client or boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=self.client_config(endpoint_url)
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD_BYTES,
            multipart_chunksize=MULTIPART_CHUNK_BYTES,
            max_concurrency=MULTIPART_CONCURRENCY,
            # The CRT client ignores the limits below; stay on the classic one whatever is installed.
            preferred_transfer_client="classic",
        )
        # Each part is read into memory before it is sent; this bounds how many are held at once (boto3's
        # TransferConfig does not take it as an argument, s3transfer reads the attribute).
        self.transfer_config.max_in_memory_upload_chunks = MULTIPART_CONCURRENCY

    @staticmethod
    def client_config(endpoint_url: str | None) -> Config:
        """botocore settings: SigV4 always (boto3 would presign with SigV2 in us-east-1 otherwise)."""
        options: dict[str, Any] = {"signature_version": "s3v4"}
        if endpoint_url:
            # S3-compatible stores are usually reached by a host name without wildcard DNS, and several reject
            # the CRC checksums newer botocore sends on every request by default.
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        return Config(**options)

    def ensure_bucket(
        self,
        default_encryption: bool = True,
        cors_origins: list[str] | None = None,
        object_lock: bool = False,
    ) -> None:
        """Create the bucket if it does not exist (tests and the demo; production buckets are provisioned).

        A bucket created here also gets SSE-S3 as its default encryption, so even an object written by
        another tool is encrypted; an existing bucket keeps its encryption. With `cors_origins` the bucket's
        CORS configuration is (re)set, new bucket or not, so browsers on those origins can upload to
        presigned URLs and read the ETag of each part.
        """
        if isinstance(cors_origins, str):
            raise ValueError("cors_origins is a list of origins, not one string")
        created = self._create_bucket(object_lock=object_lock)
        if created and default_encryption:
            self.client.put_bucket_encryption(
                Bucket=self.bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": SSE_ALGORITHM}}]
                },
            )
        if cors_origins:
            self.client.put_bucket_cors(
                Bucket=self.bucket,
                CORSConfiguration={
                    "CORSRules": [
                        {
                            "AllowedOrigins": list(cors_origins),
                            "AllowedMethods": ["GET", "PUT", "POST", "HEAD"],
                            "AllowedHeaders": ["*"],
                            # Without it the browser hides each part's ETag, which completion needs.
                            "ExposeHeaders": ["ETag"],
                            "MaxAgeSeconds": CORS_MAX_AGE_SECONDS,
                        }
                    ]
                },
            )

    def _create_bucket(self, object_lock: bool = False) -> bool:
        """Create the bucket unless it exists; True when this call created it."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as error:
            if _error_code(error) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if object_lock:  # only possible when the bucket is made (it also turns versioning on)
            kwargs["ObjectLockEnabledForBucket"] = True
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as error:
            if _error_code(error) != "BucketAlreadyOwnedByYou":
                raise
            return False
        return True

    def put_stream(
        self,
        key: str,
        fileobj: IO[bytes],
        content_type: str,
        storage_class: str | None = None,
        content_encoding: str | None = None,
    ) -> StoredObject:
        validate_key(key)
        # ExtraArgs reach PutObject and CreateMultipartUpload alike, so multipart objects are encrypted too.
        extra: dict[str, str] = {"ContentType": content_type, "ServerSideEncryption": SSE_ALGORITHM}
        if storage_class:
            extra["StorageClass"] = _check_storage_class(storage_class)
        if _check_header_value("content_encoding", content_encoding):
            extra["ContentEncoding"] = content_encoding
        self.client.upload_fileobj(fileobj, self.bucket, key, ExtraArgs=extra, Config=self.transfer_config)
        stored = self.head(key)
        if stored is None:  # deleted by someone else in between
            raise ObjectNotFoundError(key)
        return stored

    def open_stream(self, key: str) -> IO[bytes]:
        validate_key(key)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise ObjectNotFoundError(key) from None
            if _error_code(error) == "InvalidObjectState":
                raise ObjectArchivedError(key) from None
            raise

    def head(self, key: str) -> StoredObject | None:
        validate_key(key)
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _error_code(error) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        last_modified = answer["LastModified"]
        restore, restore_expires = _parse_restore(answer.get("Restore"))
        return StoredObject(
            key=key,
            size=answer["ContentLength"],
            content_type=answer.get("ContentType") or DEFAULT_CONTENT_TYPE,
            etag=answer.get("ETag", "").strip('"'),
            # S3 omits the header for STANDARD objects.
            storage_class=answer.get("StorageClass") or DEFAULT_STORAGE_CLASS,
            last_modified=last_modified.astimezone(UTC),
            content_encoding=answer.get("ContentEncoding") or None,
            restore=restore,
            restore_expires=restore_expires,
        )

    def delete(self, key: str) -> None:
        validate_key(key)
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def list_keys(self, prefix: str) -> list[str]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)

    def object_lock_enabled(self) -> bool:
        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as error:
            if _error_code(error) in {"ObjectLockConfigurationNotFoundError", "404", "NoSuchBucket"}:
                return False
            raise
        return answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def put_retained(self, key: str, data: bytes, content_type: str, retain_until: datetime) -> bool:
        validate_key(key)
        extra: dict[str, Any] = {}
        locked = self.object_lock_enabled()
        if locked:
            # Compliance mode: nobody, the account's root user included, can delete or overwrite the
            # version before the date. S3 wants a checksum on such a put.
            extra = {
                "ObjectLockMode": "COMPLIANCE",
                "ObjectLockRetainUntilDate": retain_until.replace(tzinfo=UTC),
                "ChecksumAlgorithm": "SHA256",
            }
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ServerSideEncryption=SSE_ALGORITHM,
            **extra,
        )
        return locked

    def presigned_get(
        self,
        key: str,
        expires_seconds: int,
        download_name: str | None = None,
        *,
        inline: bool = False,
        content_type: str | None = None,
    ) -> str:
        validate_key(key)
        expires_seconds = _check_download_expiry(expires_seconds)
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key, "ResponseCacheControl": "no-store"}
        if download_name:
            disposition = inline_disposition if inline else attachment_disposition
            params["ResponseContentDisposition"] = disposition(download_name)
        elif inline:
            params["ResponseContentDisposition"] = "inline"
        if _check_header_value("content_type", content_type):
            params["ResponseContentType"] = content_type
        # A gzip-stored object answers with its own Content-Encoding, so the browser decompresses it.
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_seconds)

    def presigned_post(
        self,
        key: str,
        content_type: str,
        max_bytes: int,
        expires_seconds: int,
        storage_class: str | None = None,
    ) -> dict[str, Any]:
        validate_key(key)
        fields = {"Content-Type": content_type, "x-amz-server-side-encryption": SSE_ALGORITHM}
        # S3 enforces these at upload time; botocore adds the bucket and key conditions itself.
        conditions: list[Any] = [
            ["content-length-range", 1, _check_max_bytes(max_bytes)],
            {"Content-Type": content_type},
            {"x-amz-server-side-encryption": SSE_ALGORITHM},
        ]
        if storage_class:
            fields["x-amz-storage-class"] = _check_storage_class(storage_class)
            conditions.append({"x-amz-storage-class": storage_class})
        answer = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=_check_expiry(expires_seconds),
        )
        return {"url": answer["url"], "fields": dict(answer["fields"])}

    def set_storage_class(self, key: str, storage_class: str) -> None:
        _check_storage_class(storage_class)
        if self.storage_class(key) == storage_class:
            # S3 refuses a copy onto itself that changes nothing.
            return
        # Copying an object onto itself is how S3 changes its class; SSE must be asked for again or the new
        # copy gets the bucket default. copy_object handles up to 5 GiB, far above the upload limit.
        self.client.copy_object(
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key},
            StorageClass=storage_class,
            ServerSideEncryption=SSE_ALGORITHM,
            MetadataDirective="COPY",
        )

    # multipart uploads

    def create_multipart_upload(
        self,
        key: str,
        content_type: str,
        storage_class: str | None = None,
        content_encoding: str | None = None,
    ) -> str:
        validate_key(key)
        kwargs: dict[str, str] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            # Asked for here, SSE covers the whole object: parts need no encryption header of their own.
            "ServerSideEncryption": SSE_ALGORITHM,
        }
        if storage_class:
            kwargs["StorageClass"] = _check_storage_class(storage_class)
        if _check_header_value("content_encoding", content_encoding):
            kwargs["ContentEncoding"] = content_encoding
        return self.client.create_multipart_upload(**kwargs)["UploadId"]

    def presigned_upload_part(self, key: str, upload_id: str, part_number: int, expires_seconds: int) -> str:
        validate_key(key)
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": _check_upload_id(upload_id),
            "PartNumber": _check_part_number(part_number),
        }
        return self.client.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=_check_expiry(expires_seconds)
        )

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        validate_key(key)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": _check_upload_id(upload_id),
            "MaxParts": LIST_PARTS_PAGE_SIZE,
        }
        parts: list[UploadedPart] = []
        while True:
            try:
                answer = self.client.list_parts(**kwargs)
            except ClientError as error:
                if _error_code(error) in {"NoSuchUpload", "404"}:
                    raise UploadNotFoundError(upload_id) from None
                raise
            parts.extend(
                UploadedPart(
                    part_number=part["PartNumber"], size=part["Size"], etag=part.get("ETag", "").strip('"')
                )
                for part in answer.get("Parts", [])
            )
            if not answer.get("IsTruncated"):
                break
            kwargs["PartNumberMarker"] = answer["NextPartNumberMarker"]
        return sorted(parts, key=lambda part: part.part_number)

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> StoredObject:
        validate_key(key)
        wanted = _check_completion_parts(parts)
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=_check_upload_id(upload_id),
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in wanted]},
            )
        except ClientError as error:
            code = _error_code(error)
            if code in {"NoSuchUpload", "404"}:
                raise UploadNotFoundError(upload_id) from None
            if code in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}:
                raise ValueError(error.response.get("Error", {}).get("Message") or code) from None
            raise
        stored = self.head(key)
        if stored is None:  # deleted by someone else in between
            raise ObjectNotFoundError(key)
        return stored

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        validate_key(key)
        try:
            upload_id = _check_upload_id(upload_id)
        except UploadNotFoundError:
            return
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            if _error_code(error) not in {"NoSuchUpload", "404"}:
                raise

    # lifecycle, tags, restores, listings

    def iter_objects(self, prefix: str) -> Iterator[ListedObject]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield ListedObject(
                    key=item["Key"],
                    size=item["Size"],
                    storage_class=item.get("StorageClass") or DEFAULT_STORAGE_CLASS,
                    last_modified=item["LastModified"].astimezone(UTC),
                )

    def list_open_uploads(self, prefix: str) -> list[OpenUpload]:
        uploads = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            uploads += [
                OpenUpload(item["Key"], item["UploadId"], item["Initiated"].astimezone(UTC))
                for item in page.get("Uploads", [])
            ]
        return uploads

    def get_tags(self, key: str) -> dict[str, str]:
        validate_key(key)
        try:
            answer = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise ObjectNotFoundError(key) from None
            raise
        return {tag["Key"]: tag["Value"] for tag in answer.get("TagSet", [])}

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        validate_key(key)
        tag_set = [{"Key": k, "Value": v} for k, v in sorted(_check_tags(tags).items())]
        try:
            if tag_set:
                self.client.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": tag_set})
            else:
                # The same on S3; moto answers an empty TagSet with a 500.
                self.client.delete_object_tagging(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise ObjectNotFoundError(key) from None
            raise

    def get_lifecycle(self) -> list[dict[str, Any]]:
        try:
            return self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket).get("Rules", [])
        except ClientError as error:
            if _error_code(error) == "NoSuchLifecycleConfiguration":
                return []
            raise

    def put_lifecycle(self, rules: list[dict[str, Any]]) -> None:
        if not rules:
            self.client.delete_bucket_lifecycle(Bucket=self.bucket)
            return
        self.client.put_bucket_lifecycle_configuration(
            Bucket=self.bucket, LifecycleConfiguration={"Rules": rules}
        )

    def request_restore(self, key: str, *, days: int, tier: str) -> bool:
        check_restore(self.head(key), key, days, tier)
        try:
            self.client.restore_object(
                Bucket=self.bucket,
                Key=key,
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
            )
        except ClientError as error:
            if _error_code(error) == "RestoreAlreadyInProgress":
                return False
            raise
        return True


_RESTORE_HEADER = re.compile(
    r'ongoing-request="(?P<ongoing>true|false)"(?:,\s*expiry-date="(?P<expiry>[^"]+)")?'
)


def _parse_restore(header: str | None) -> tuple[str | None, datetime | None]:
    """S3's `x-amz-restore` header: ongoing-request="true", or "false" with the copy's expiry date."""
    match = _RESTORE_HEADER.match(header or "")
    if not match:
        return None, None
    if match["ongoing"] == "true":
        return RESTORE_ONGOING, None
    expires = parsedate_to_datetime(match["expiry"]).astimezone(UTC) if match["expiry"] else None
    return RESTORED, expires


def _check_upload_id(upload_id: str) -> str:
    # S3's ids are opaque; an empty one would turn an upload call into another operation on the key.
    if not isinstance(upload_id, str) or not upload_id or _CONTROL_CHARS.search(upload_id):
        raise UploadNotFoundError(upload_id)
    return upload_id


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
