"""A share's files as the provider sees them: checked copies and watermarked renderings, never more.

The bytes of a version are checked against the SHA-256 taken at upload before anything is made of them
(as `files.services.open_version` does for staff). Without download permission the provider only ever
gets PNG renderings with the watermark drawn in.
"""

from __future__ import annotations

import hashlib
import tempfile
from typing import IO

from flask import current_app

from ..files import services as files
from ..files.models import AttachmentVersion
from ..files.storage import ObjectArchivedError, ObjectNotFoundError, get_storage
from ..storage_cost import restores
from .watermark import (
    PDF_MAX_PAGES,
    UnreadableImage,
    UnreadablePdf,
    pdf_page_count,
    pdf_page_image,
    watermark_image,
)

# Images up to this size are previewed from the file itself; larger ones from the stored thumbnail.
IMAGE_PREVIEW_MAX_BYTES = 64 * 1024 * 1024
IMAGE_KINDS = frozenset({"jpeg", "png", "tiff"})


def previewable(version: AttachmentVersion) -> bool:
    """Whether the provider gets a watermarked preview: never before a clean scan (no decoder runs on a
    file clamd has not passed)."""
    if not version.openable:
        return False
    state = restores.archive_state(version)
    if state is not None and not state.openable:
        return False  # nothing to draw until it is retrieved
    if version.kind == "pdf" or version.kind in IMAGE_KINDS:
        return True
    return bool(version.image_key or version.preview_key)


def verified_copy(version: AttachmentVersion) -> IO[bytes]:
    """The file's own bytes in a temporary file, checked against its SHA-256. The caller closes it.
    Raises files.ChecksumMismatch."""
    digest = hashlib.sha256()
    copy = tempfile.TemporaryFile()  # noqa: SIM115 - handed on to the caller, who closes it
    try:
        for chunk in files.read_version(version):
            digest.update(chunk)
            copy.write(chunk)
        if digest.hexdigest() != version.sha256:
            raise files.ChecksumMismatch(version.id)
        copy.seek(0)
    except BaseException:
        copy.close()
        raise
    return copy


def _stored(key: str | None) -> bytes | None:
    """A derived image (thumbnail, DICOM frame) the preview job stored."""
    if not key:
        return None
    try:
        with get_storage(current_app).open_stream(key) as stored:
            return stored.read()
    except (ObjectNotFoundError, ObjectArchivedError):
        return None


def _image_source(version: AttachmentVersion) -> bytes | None:
    """The picture a preview is drawn from: the image itself when it is small enough and Pillow reads its
    kind, else the DICOM frame or the thumbnail the preview job stored."""
    if version.kind in IMAGE_KINDS and version.size <= IMAGE_PREVIEW_MAX_BYTES:
        with verified_copy(version) as copy:
            return copy.read()
    return _stored(version.image_key) or _stored(version.preview_key)


def preview_png(version: AttachmentVersion, page: int, text: str) -> bytes | None:
    """Page `page` (from 1) of the file as a watermarked PNG; None when there is no such page or it
    cannot be drawn."""
    try:
        if version.kind == "pdf":
            if not 1 <= page <= PDF_MAX_PAGES:
                return None
            with verified_copy(version) as copy:
                image = pdf_page_image(copy, page - 1)
            return watermark_image(image, text) if image else None
        if page != 1:
            return None
        source = _image_source(version)
        return watermark_image(source, text) if source else None
    except (UnreadableImage, UnreadablePdf, files.ChecksumMismatch, files.FileArchived, ObjectNotFoundError):
        # An archived file has no preview until it is retrieved: its page says "being retrieved".
        return None


def page_count(version: AttachmentVersion) -> tuple[int, bool]:
    """How many pages a preview shows, and whether the file has more than that."""
    if version.kind != "pdf":
        return (1 if previewable(version) else 0), False
    try:
        with verified_copy(version) as copy:
            pages = pdf_page_count(copy)
    except (UnreadablePdf, files.ChecksumMismatch, files.FileArchived, ObjectNotFoundError):
        return 0, False
    return min(pages, PDF_MAX_PAGES), pages > PDF_MAX_PAGES
