"""What an attachment really is, whether it may be attached, and whether it is worth storing gzip-compressed.

Pure functions over bytes and streams: no request, no database. The type of a file is decided by its
content alone (the first `HEAD_BYTES`), never by its name or by what the browser claimed; the name only
chooses between plain text and CSV, and makes a rejection clearer ("named .pdf but is really a web page
(HTML)").

Rejections raise `ContentRejected` whose `reason` is a lower-case clause for the person who uploaded the file,
meant to follow the file's name: f"{filename}: {rejected.reason}".
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import itertools
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import IO

import filetype

# How much of the start of a file `sniff` and `should_compress` look at.
HEAD_BYTES = 8192
# Streams move in chunks of this size, so compressing or hashing a 50 MB file holds one chunk, not the file.
STREAM_CHUNK_BYTES = 1024 * 1024
# zlib's default: within a few per cent of level 9 on text, several times faster on large files.
GZIP_LEVEL = 6
# A compressed copy replaces the original only when it saves at least a tenth: below that, the CPU spent
# decompressing on every download buys too little.
KEEP_COMPRESSED_RATIO = 0.9
# Text may hold a few stray control characters (a form feed, a DOS end-of-file mark); more than this share
# means a binary format.
TEXT_MAX_CONTROL_SHARE = 0.01
# CSV is recognised when this many first rows agree on the number of columns.
CSV_SAMPLE_ROWS = 20
CSV_DELIMITERS = (",", ";", "\t", "|")
# Markup is looked for this far into a text file: browsers sniff HTML from the first bytes.
MARKUP_WINDOW_CHARS = 1024


class Kind(StrEnum):
    """The kinds of attachment a medical record accepts; the value is what the database stores."""

    PDF = "pdf"
    JPEG = "jpeg"
    PNG = "png"
    HEIC = "heic"
    TIFF = "tiff"
    DICOM = "dicom"
    TEXT = "text"
    CSV = "csv"


@dataclass(frozen=True)
class AllowedType:
    kind: Kind
    content_type: str
    label: str
    extensions: tuple[str, ...]


ALLOWED_TYPES: Mapping[Kind, AllowedType] = MappingProxyType(
    {
        Kind.PDF: AllowedType(Kind.PDF, "application/pdf", "PDF", (".pdf",)),
        Kind.JPEG: AllowedType(Kind.JPEG, "image/jpeg", "JPEG", (".jpg", ".jpeg", ".jpe", ".jfif")),
        Kind.PNG: AllowedType(Kind.PNG, "image/png", "PNG", (".png",)),
        Kind.HEIC: AllowedType(Kind.HEIC, "image/heic", "HEIC", (".heic", ".heif")),
        Kind.TIFF: AllowedType(Kind.TIFF, "image/tiff", "TIFF", (".tif", ".tiff")),
        Kind.DICOM: AllowedType(Kind.DICOM, "application/dicom", "DICOM", (".dcm", ".dicom")),
        Kind.TEXT: AllowedType(Kind.TEXT, "text/plain", "plain text", (".txt", ".text")),
        Kind.CSV: AllowedType(Kind.CSV, "text/csv", "CSV", (".csv",)),
    }
)

_labels = [allowed.label for allowed in ALLOWED_TYPES.values()]
ALLOWED_SUMMARY = f"only {', '.join(_labels[:-1])} and {_labels[-1]} files can be attached"


class ContentRejected(ValueError):
    """The file may not be attached; `reason` says why, in words for the person who uploaded it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Sniffed:
    kind: Kind
    content_type: str
    label: str


def sniff(head: bytes, filename: str) -> Sniffed:
    """The allowed type of a file from its first bytes (`HEAD_BYTES` of them, or the whole file if shorter).

    Raises ContentRejected for an empty file, a type outside `ALLOWED_TYPES`, and for text that a browser
    could run or render as markup (HTML, SVG, XML, scripts), whatever the file is called.
    """
    if not head:
        raise ContentRejected("the file is empty.")
    extension = _extension(filename)
    # DICOM first: its 128-byte preamble is free-form, and dual-personality files put a TIFF header there.
    if head[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)] == DICOM_MAGIC:
        return _sniffed(Kind.DICOM)
    if _is_heic(head):
        return _sniffed(Kind.HEIC)
    guess = filetype.guess(head)
    if guess is not None and guess.mime in _FILETYPE_KINDS:
        return _sniffed(_FILETYPE_KINDS[guess.mime])
    text = _as_text(head)
    # Some signatures are two or three letters ("BM" for BMP, "ID3" for MP3) that a note may start with
    # ("BMI 31"); a real file of those formats is not clean UTF-8 text, so text wins unless the format
    # itself is text-based.
    if guess is not None and (text is None or guess.extension in _TEXT_BASED_FORMATS):
        raise _rejected(_describe_filetype(guess), extension)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ContentRejected("the file is text saved as UTF-16; save it as UTF-8 and attach it again.")
    if text is None:
        if _looks_like_other_encoding(head):
            raise ContentRejected(
                "the file is text in an encoding other than UTF-8; save it as UTF-8 and attach it again."
            )
        raise _rejected(None, extension)
    markup = _markup(text)
    if markup is not None:
        raise _rejected(markup, extension)
    if extension == ".csv" and _looks_like_csv(text, truncated=len(head) >= HEAD_BYTES):
        return _sniffed(Kind.CSV)
    return _sniffed(Kind.TEXT)


def human_size(n: int) -> str:
    """A size for people: "812 bytes", "4.2 KB", "61.2 MB" (binary units, as file managers show them)."""
    if n < 1024:
        return "1 byte" if n == 1 else f"{n} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if round(value, 1) < 1024 or unit == "TB":
            break
    text = f"{value:.1f}"
    return f"{text.removesuffix('.0')} {unit}"


def check_size(size: int, limit: int) -> None:
    """Raise ContentRejected when a file of `size` bytes is empty or over `limit`."""
    if size <= 0:
        raise ContentRejected("the file is empty.")
    if size <= limit:
        return
    shown, allowed = human_size(size), human_size(limit)
    if shown == allowed:
        # Just over the limit: rounded sizes would read "is 50 MB; the limit is 50 MB".
        shown, allowed = f"{size:,} bytes", f"{limit:,} bytes ({allowed})"
    raise ContentRejected(f"the file is {shown}; the limit is {allowed}.")


def should_compress(kind: str, head: bytes) -> bool:
    """Whether gzip is likely to shrink a file of this kind: text, uncompressed TIFF and uncompressed DICOM.

    PDF, JPEG, PNG and HEIC are compressed already. For TIFF the first IFD must lie inside `head` (writers
    that put it at the end of the file get False: unknown is treated as compressed).
    """
    if kind in (Kind.TEXT, Kind.CSV):
        return True
    if kind == Kind.TIFF:
        return tiff_compression(head) == TIFF_UNCOMPRESSED
    if kind == Kind.DICOM:
        return dicom_transfer_syntax(head) in DICOM_UNCOMPRESSED_SYNTAXES
    return False


def worth_keeping(original: int, compressed: int) -> bool:
    """Whether a compressed copy saves enough space to be stored instead of the original."""
    return original > 0 and compressed < original * KEEP_COMPRESSED_RATIO


def hashing_copy(src: IO[bytes], dst: IO[bytes]) -> tuple[int, str]:
    """Copy src to dst in chunks; return (size, sha256 hex digest) of what was copied."""
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(STREAM_CHUNK_BYTES):
        digest.update(chunk)
        dst.write(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def gzip_stream(src: IO[bytes], dst: IO[bytes]) -> tuple[int, int, str, str]:
    """Write src to dst gzip-compressed, a chunk at a time.

    Returns (original size, compressed size, sha256 of the original, sha256 of the compressed bytes). The
    output is reproducible: no file name and a zero timestamp in the gzip header.
    """
    sink = _HashingSink(dst)
    original = hashlib.sha256()
    size = 0
    with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=sink, mtime=0) as packer:
        while chunk := src.read(STREAM_CHUNK_BYTES):
            original.update(chunk)
            packer.write(chunk)
            size += len(chunk)
    return size, sink.size, original.hexdigest(), sink.digest.hexdigest()


def gunzip_stream(src: IO[bytes]) -> IO[bytes]:
    """A reader that decompresses src on the fly; closing it leaves src open."""
    return gzip.GzipFile(fileobj=src, mode="rb")


class _HashingSink:
    """Forwards writes to `dst`, counting and hashing them on the way."""

    def __init__(self, dst: IO[bytes]) -> None:
        self.dst = dst
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.dst.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.dst.flush()


# --- binary formats -------------------------------------------------------------------------------------

DICOM_MAGIC_OFFSET = 128
DICOM_MAGIC = b"DICM"
DICOM_UNCOMPRESSED_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2",  # Implicit VR Little Endian
        "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
        "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still found in archives)
        "1.2.840.10008.1.2.1.98",  # Encapsulated Uncompressed Explicit VR Little Endian
    }
)
# Explicit-VR elements with these VRs have a 4-byte length after two reserved bytes (PS3.5 7.1.2).
_DICOM_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_DICOM_VR = re.compile(rb"[A-Z]{2}")

TIFF_UNCOMPRESSED = 1
_TIFF_COMPRESSION_TAG = 259
_TIFF_SHORT, _TIFF_LONG = 3, 4

# ISO-BMFF brands of HEVC-coded HEIF images (ISO/IEC 23008-12 annex B); "mif1" alone may also be AVIF.
_HEIC_BRANDS = frozenset({"heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs"})
# Formats written as text that are documents or programs rather than plain text.
_TEXT_BASED_FORMATS = frozenset({"ps", "rtf"})
_FILETYPE_KINDS = {
    "application/pdf": Kind.PDF,
    "image/jpeg": Kind.JPEG,
    "image/png": Kind.PNG,
    # An animated PNG is a PNG: viewers that know nothing of animation show its first frame.
    "image/apng": Kind.PNG,
    "image/tiff": Kind.TIFF,
    "image/heic": Kind.HEIC,
}


def _is_heic(head: bytes) -> bool:
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    box_size = struct.unpack_from(">I", head, 0)[0]
    major = head[8:12].decode("latin-1")
    if major in _HEIC_BRANDS:
        return True
    end = min(box_size, len(head))
    compatible = {head[i : i + 4].decode("latin-1") for i in range(16, end - 3, 4)}
    return major in ("mif1", "msf1") and bool(compatible & _HEIC_BRANDS)


def dicom_transfer_syntax(head: bytes) -> str | None:
    """The Transfer Syntax UID (0002,0010) from a DICOM file's meta group, or None when not within `head`.

    Reads the group-2 elements directly, so a head cut anywhere after them is enough.
    """
    if head[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)] != DICOM_MAGIC:
        return None
    position = DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)
    while position + 8 <= len(head):
        group, element = struct.unpack_from("<HH", head, position)
        if group != 0x0002:
            return None
        vr = head[position + 4 : position + 6]
        if not _DICOM_VR.fullmatch(vr):
            # Some writers put the meta group in implicit VR, against the standard.
            length, start = struct.unpack_from("<I", head, position + 4)[0], position + 8
        elif vr in _DICOM_LONG_VRS:
            if position + 12 > len(head):
                return None
            length, start = struct.unpack_from("<I", head, position + 8)[0], position + 12
        else:
            length, start = struct.unpack_from("<H", head, position + 6)[0], position + 8
        if element == 0x0010:
            value = head[start : start + length]
            if len(value) < length:
                return None
            return value.decode("ascii", "replace").strip("\x00 ")
        if length == 0xFFFFFFFF:
            return None
        position = start + length
    return None


def tiff_compression(head: bytes) -> int | None:
    """The Compression tag of a TIFF's first IFD (1 when absent, as TIFF 6.0 says), or None if not in head."""
    if head[:4] == b"II*\x00":
        order = "<"
    elif head[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    (ifd,) = struct.unpack_from(f"{order}I", head, 4)
    if ifd + 2 > len(head):
        return None
    (count,) = struct.unpack_from(f"{order}H", head, ifd)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(head):
            return None
        tag, value_type = struct.unpack_from(f"{order}HH", head, entry)
        if tag != _TIFF_COMPRESSION_TAG:
            continue
        if value_type == _TIFF_SHORT:
            return struct.unpack_from(f"{order}H", head, entry + 8)[0]
        if value_type == _TIFF_LONG:
            return struct.unpack_from(f"{order}I", head, entry + 8)[0]
        return None
    return TIFF_UNCOMPRESSED


# --- text -----------------------------------------------------------------------------------------------

_ALLOWED_CONTROLS = frozenset("\t\n\r\f\x1a")
_MARKUP = (
    # SVG before XML: an SVG file usually starts with an XML declaration.
    (re.compile(r"<svg[\s/>]"), "an SVG image"),
    (re.compile(r"<script[\s/>]"), "a web page with a script (HTML)"),
    (
        re.compile(r"<!doctype\s+html|<(?:html|head|body|iframe|frameset|title|meta|object|embed)[\s/>]"),
        "a web page (HTML)",
    ),
    (re.compile(r"<\?xml[\s?]"), "an XML document"),
)


def _as_text(head: bytes) -> str | None:
    """The head decoded as UTF-8 text, or None when it is binary."""
    if b"\x00" in head:
        return None
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        # Not final: a multi-byte character cut by the end of the head stays in the decoder, unjudged.
        text = decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return text if _few_controls(text) else None


def _few_controls(text: str) -> bool:
    controls = sum(
        1 for char in text if (ord(char) < 32 or 0x7F <= ord(char) < 0xA0) and char not in _ALLOWED_CONTROLS
    )
    return controls <= len(text) * TEXT_MAX_CONTROL_SHARE


def _looks_like_other_encoding(head: bytes) -> bool:
    # Latin-1 maps every byte, so this only asks whether the bytes read like text: no NUL, few controls.
    return b"\x00" not in head and _few_controls(head.decode("latin-1"))


def _markup(text: str) -> str | None:
    start = text.lstrip()
    if start.startswith("#!"):
        return "a script"
    window = start[:MARKUP_WINDOW_CHARS].lower()
    for pattern, description in _MARKUP:
        if pattern.search(window):
            return description
    return None


def _looks_like_csv(text: str, *, truncated: bool) -> bool:
    for delimiter in CSV_DELIMITERS:
        if delimiter not in text:
            continue
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            rows = [row for row in itertools.islice(reader, CSV_SAMPLE_ROWS + 1) if row]
        except csv.Error:
            continue
        if truncated and len(rows) > 1:
            rows.pop()  # the last row may be cut short by the end of the head
        widths = {len(row) for row in rows[:CSV_SAMPLE_ROWS]}
        if len(widths) == 1 and widths.pop() > 1:
            return True
    return False


# --- reasons --------------------------------------------------------------------------------------------

_FILETYPE_DESCRIPTIONS = {
    "zip": "a ZIP archive",
    "rar": "a RAR archive",
    "7z": "a 7-Zip archive",
    "gz": "a gzip archive",
    "bz2": "a bzip2 archive",
    "xz": "an xz archive",
    "tar": "a TAR archive",
    "exe": "a Windows program (EXE)",
    "elf": "a Linux program (ELF)",
    "doc": "a Word document (DOC)",
    "docx": "a Word document (DOCX)",
    "xls": "an Excel workbook (XLS)",
    "xlsx": "an Excel workbook (XLSX)",
    "ppt": "a PowerPoint presentation (PPT)",
    "pptx": "a PowerPoint presentation (PPTX)",
    "odt": "an OpenDocument text (ODT)",
    "ods": "an OpenDocument spreadsheet (ODS)",
    "odp": "an OpenDocument presentation (ODP)",
    "rtf": "a Rich Text document (RTF)",
    "ps": "a PostScript file",
    "epub": "an e-book (EPUB)",
    "sqlite": "an SQLite database",
    "swf": "a Flash file (SWF)",
    "gif": "a GIF image",
    "webp": "a WebP image",
    "bmp": "a BMP image",
    "avif": "an AVIF image",
    "jpx": "a JPEG 2000 image",
    "jxr": "a JPEG XR image",
    "psd": "a Photoshop image (PSD)",
    "ico": "an icon (ICO)",
    "cr2": "a camera raw image (CR2)",
}


def _describe_filetype(guess: filetype.Type) -> str:
    extension = guess.extension.lower()
    if extension in _FILETYPE_DESCRIPTIONS:
        return _FILETYPE_DESCRIPTIONS[extension]
    name = extension.upper()
    # Acronyms are read letter by letter: "an MP4", "an XCF", "a WAV".
    article = "an" if name[:1] in set("AEFHILMNORSX") else "a"
    major = guess.mime.split("/", 1)[0]
    noun = {"image": "image", "video": "video", "audio": "audio file", "font": "font"}.get(major, "file")
    return f"{article} {name} {noun}"


def _rejected(description: str | None, extension: str) -> ContentRejected:
    claimed = _claimed_type(extension)
    if description is None:
        if claimed is not None:
            return ContentRejected(
                f"the file is named {extension} but its content is not {claimed.label}: {ALLOWED_SUMMARY}."
            )
        return ContentRejected(f"the file's type could not be recognised: {ALLOWED_SUMMARY}.")
    if claimed is not None:
        return ContentRejected(
            f"the file is named {extension} but is really {description}: {ALLOWED_SUMMARY}."
        )
    return ContentRejected(f"the file looks like {description}: {ALLOWED_SUMMARY}.")


def _claimed_type(extension: str) -> AllowedType | None:
    return next((allowed for allowed in ALLOWED_TYPES.values() if extension in allowed.extensions), None)


def _extension(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    stem, dot, extension = name.rpartition(".")
    return f".{extension}" if dot and stem and extension else ""


def _sniffed(kind: Kind) -> Sniffed:
    allowed = ALLOWED_TYPES[kind]
    return Sniffed(kind=kind, content_type=allowed.content_type, label=allowed.label)
