"""Object keys and file names: how an attachment is named in the store and offered for download."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

MAX_KEY_CHARS = 1024
SAFE_NAME_MAX_CHARS = 100
# Longer "extensions" are more likely part of the name than a type, so they are truncated with the stem.
SAFE_EXTENSION_MAX_CHARS = 16
FALLBACK_NAME = "file"
KEY_AREA = "medical-records"

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_SEPARATOR_RUN = re.compile(r"[._-]{2,}")
_BARE_EXTENSION = re.compile(rf"^\.[A-Za-z0-9]{{1,{SAFE_EXTENSION_MAX_CHARS}}}$")
_ID_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def safe_filename(filename: str) -> str:
    """An ASCII file name of `[A-Za-z0-9._-]`, at most SAFE_NAME_MAX_CHARS long, keeping the extension.

    Accents are folded (NFKD, then ASCII), other characters become "-", runs of separators collapse to one,
    leading dots (hidden files, "..") and edge separators are dropped. Falls back to "file".
    """
    folded = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    name = _UNSAFE_NAME_CHARS.sub("-", folded)
    # Keep a dot when a run holds one so "report - final .pdf" still ends in ".pdf".
    name = _SEPARATOR_RUN.sub(lambda run: "." if "." in run.group() else run.group()[0], name)
    if _BARE_EXTENSION.match(name):
        # Nothing but an extension survived (a name in another script, or ".pdf"): keep the type visible.
        name = f"{FALLBACK_NAME}{name}"
    name = name.strip("._-")
    if not name:
        return FALLBACK_NAME
    if len(name) <= SAFE_NAME_MAX_CHARS:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > SAFE_EXTENSION_MAX_CHARS:
        return name[:SAFE_NAME_MAX_CHARS].rstrip("._-") or FALLBACK_NAME
    stem = stem[: SAFE_NAME_MAX_CHARS - len(extension) - 1].rstrip("._-")
    return f"{stem}.{extension}" if stem else extension[:SAFE_NAME_MAX_CHARS]


def make_key(tenant_id: int | str, record_id: int | str, filename: str, when: datetime | None = None) -> str:
    """A new attachment key: `{tenant}/medical-records/{yyyy}/{mm}/{record}/{uuid}-{safe name}`.

    The tenant comes first so a tenant's files can be listed, exported, measured or erased by prefix; the
    random part makes every upload a new key, so an upload never overwrites another version.
    """
    tenant, record = str(tenant_id), str(record_id)
    for label, value in (("tenant_id", tenant), ("record_id", record)):
        if not _ID_SEGMENT.match(value):
            raise ValueError(f"{label} must be letters, digits, '-' or '_': {value!r}")
    when = when or datetime.now(UTC)
    key = (
        f"{tenant}/{KEY_AREA}/{when.year:04d}/{when.month:02d}/{record}/"
        f"{uuid.uuid4().hex}-{safe_filename(filename)}"
    )
    return validate_key(key)


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative object key, else raise ValueError.

    Refused: empty keys, absolute paths, backslashes, control characters, empty segments ("a//b", trailing
    "/"), and segments starting with "." (which covers "." and ".." and keeps the local backend's own hidden
    files out of reach).
    """
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if len(key) > MAX_KEY_CHARS:
        raise ValueError(f"storage key is longer than {MAX_KEY_CHARS} characters")
    if key.startswith("/"):
        raise ValueError(f"storage key must be relative: {key!r}")
    if "\\" in key:
        raise ValueError(f"storage key must not contain a backslash: {key!r}")
    if _CONTROL_CHARS.search(key):
        raise ValueError(f"storage key must not contain control characters: {key!r}")
    for segment in key.split("/"):
        if not segment:
            raise ValueError(f"storage key has an empty segment: {key!r}")
        if segment.startswith("."):
            raise ValueError(f"storage key segment must not start with '.': {key!r}")
    return key


def _disposition(kind: str, download_name: str) -> str:
    fallback = safe_filename(download_name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(download_name, safe='')}"


def attachment_disposition(download_name: str) -> str:
    """A Content-Disposition value that offers `download_name` (any Unicode) as an attachment (RFC 6266)."""
    return _disposition("attachment", download_name)


def inline_disposition(download_name: str) -> str:
    """A Content-Disposition value that shows the file in the browser, saved as `download_name` (RFC 6266)."""
    return _disposition("inline", download_name)
