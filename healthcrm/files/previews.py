"""Previews of attachments: image thumbnails, and a summary and a viewable PNG of DICOM studies.

Pure functions over streams: no request, no database. Anything that cannot be rendered (a kind without a
preview, a compression no installed decoder reads, a decompression bomb, damaged content) gives None, so the
preview job records "no preview" instead of failing again and again. PDFs need no preview: browsers show them.

Streams should be seekable; one that is not (a network body) is spooled to a temporary file first, so a large
file never sits in memory whole.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, pixel_array
from pydicom.valuerep import PersonName

from .checks import HEAD_BYTES, STREAM_CHUNK_BYTES, Kind, dicom_transfer_syntax

try:
    import pillow_heif
except ImportError:  # not a dependency: its Linux wheels are GPL (bundled x265); HEIC then has no thumbnail
    pillow_heif = None
else:
    # No AVIF: only HEIC is an allowed kind, and every registered format is a parser that content can reach.
    pillow_heif.register_heif_opener(thumbnails=True)

THUMBNAIL_MAX_PX = 320
DICOM_PREVIEW_MAX_PX = 1024
# A single frame larger than this decoded is not rendered (memory of the preview job stays bounded).
DICOM_FRAME_MAX_BYTES = 128 * 1024 * 1024  # a 5,000 x 5,000 mammogram is 50 MB
THUMBNAIL_JPEG_QUALITY = 85
# Pillow warns above this many pixels and refuses (DecompressionBombError) above twice as many; previews
# refuse at the warning. 100 megapixels covers a 600 dpi A4 scan (35 MP) and phone photos up to 108 MP
# sensors while keeping one decoded RGB image under 300 MB.
IMAGE_MAX_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = IMAGE_MAX_PIXELS
# A DICOM frame is decimated to at most this multiple of the preview size before the lookup tables run on it,
# so a 4096 × 4096 CT costs a 2048 × 2048 float array at most.
DICOM_DECIMATE_TO = 2
# Unseekable streams are spooled in memory up to this size, then to disk.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024

# Only the parser for the kind the content was sniffed as may open it.
_PILLOW_FORMATS = {
    Kind.JPEG: ("JPEG",),
    Kind.PNG: ("PNG",),
    Kind.TIFF: ("TIFF",),
    Kind.HEIC: ("HEIF",),
}
# Photos compress far better as JPEG; scans and screenshots keep sharp edges and transparency as PNG.
_JPEG_OUTPUT = frozenset({Kind.JPEG, Kind.HEIC})
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})
_DEFLATED = "1.2.840.10008.1.2.1.99"
# pydicom warns (UserWarning) about files that bend the standard and reads them anyway; a preview should too.
_PYDICOM_WARNINGS = r"pydicom(\.|$)"
# What decoding damaged or unsupported pixel data raises in pydicom: no pixel data (AttributeError), no
# decoder for the transfer syntax (NotImplementedError, RuntimeError), truncated or inconsistent data.
_DICOM_DECODE_ERRORS = (
    AttributeError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    TypeError,
    EOFError,
    InvalidDicomError,
)
# What Pillow raises on bytes it cannot (or may not) decode; the watermark uses the same list.
IMAGE_DECODE_ERRORS = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
    OSError,
    ValueError,
    EOFError,
    SyntaxError,
)


class DicomUnreadable(ValueError):
    """The content is not a DICOM file pydicom can read."""


@dataclass(frozen=True)
class DicomSummary:
    patient_name: str
    patient_id: str
    study_date: date | None
    modality: str
    body_part: str
    study_description: str
    series_description: str
    series_number: int | None
    rows: int | None
    columns: int | None
    frames: int
    transfer_syntax: str

    def as_dict(self) -> dict[str, str | int | None]:
        """The summary as JSON-ready values (the study date as ISO 8601)."""
        values = asdict(self)
        values["study_date"] = self.study_date.isoformat() if self.study_date else None
        return values


def thumbnail_content_type(kind: str) -> str:
    """The content type of what `thumbnail` returns for a kind: JPEG for photos, PNG otherwise."""
    return "image/jpeg" if kind in _JPEG_OUTPUT else "image/png"


def thumbnail(src: IO[bytes], kind: str, max_px: int = THUMBNAIL_MAX_PX) -> bytes | None:
    """A thumbnail no larger than max_px on either side, upright as the camera meant it.

    JPEG for photos (JPEG, HEIC), PNG for PNG and TIFF (first page). None for kinds without a thumbnail,
    content that does not decode, and images over `IMAGE_MAX_PIXELS`.
    """
    formats = _PILLOW_FORMATS.get(kind)
    if formats is None or (kind == Kind.HEIC and pillow_heif is None):
        return None
    with _seekable(src) as stream:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return _thumbnail(stream, formats, kind in _JPEG_OUTPUT, max_px)
        except IMAGE_DECODE_ERRORS:
            return None


def _thumbnail(stream: IO[bytes], formats: tuple[str, ...], as_jpeg: bool, max_px: int) -> bytes:
    with Image.open(stream, formats=formats) as image:
        # JPEG decodes at 1/2, 1/4 or 1/8 scale when that is still larger than the thumbnail.
        image.draft("RGB", (max_px, max_px))
        upright = ImageOps.exif_transpose(image)
    if upright.mode == "1":
        # Faxes and bilevel scans: shrinking in grayscale keeps thin strokes that nearest-pixel drops.
        upright = upright.convert("L")
    elif upright.mode == "P":
        upright = upright.convert("RGBA" if "transparency" in upright.info else "RGB")
    upright.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    return _encode(upright, as_jpeg)


def _encode(image: Image.Image, as_jpeg: bool) -> bytes:
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        image = _stretch_to_8_bit(image)
    out = io.BytesIO()
    if as_jpeg:
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=THUMBNAIL_JPEG_QUALITY, optimize=True)
    else:
        if image.mode not in _PNG_MODES:
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            image = image.convert("RGBA" if has_alpha else "RGB")
        image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _stretch_to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit and float images (microscopy, scanners) mapped min–max onto 0–255."""
    values = np.asarray(image.convert("F"), dtype=np.float32)
    return Image.fromarray(_min_max_8_bit(values), mode="L")


def dicom_summary(src: IO[bytes]) -> DicomSummary:
    """What a DICOM file is about, from its header only (pixel data is not read).

    Missing or malformed tags give "" or None; raises DicomUnreadable when the content is not DICOM at all.
    """
    with _seekable(src) as stream, _pydicom_quiet():
        try:
            ds = dcmread(stream, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, ValueError, struct.error) as error:
            raise DicomUnreadable(str(error)) from None
        rows, columns = _integer(ds, "Rows"), _integer(ds, "Columns")
        frames = _integer(ds, "NumberOfFrames")
        file_meta = getattr(ds, "file_meta", None)
        syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
        return DicomSummary(
            patient_name=_person_name(ds),
            patient_id=_text(ds, "PatientID"),
            study_date=_date(ds, "StudyDate"),
            modality=_text(ds, "Modality"),
            body_part=_text(ds, "BodyPartExamined"),
            study_description=_text(ds, "StudyDescription"),
            series_description=_text(ds, "SeriesDescription"),
            series_number=_integer(ds, "SeriesNumber"),
            rows=rows,
            columns=columns,
            frames=frames if frames else (1 if rows and columns else 0),
            transfer_syntax=(syntax.name if syntax else ""),
        )


def dicom_png(src: IO[bytes], max_px: int = DICOM_PREVIEW_MAX_PX) -> bytes | None:
    """The first frame as an 8-bit PNG no larger than max_px on either side, windowed as the modality meant.

    Grayscale goes through the modality LUT (rescale slope/intercept), then the VOI window (Window Center and
    Width, else a VOI LUT, else min–max); MONOCHROME1 is inverted. Colour (RGB, YBR, palette) becomes RGB.
    None when there is no pixel data or no installed decoder reads its compression.
    """
    with _seekable(src) as stream, _pydicom_quiet():
        decoded = _first_frame(stream)
        if decoded is None:
            return None
        frame, ds = decoded
        try:
            pixels = _display_pixels(frame, ds, max_px)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError):
            return None  # a LUT or window that contradicts the pixel data
    if pixels is None:
        return None
    image = Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB")
    if max(image.size) > max_px:
        image.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _first_frame(stream: IO[bytes]) -> tuple[np.ndarray, Dataset] | None:
    """The first frame and the dataset's image tags (group 0028), decoding only that frame. None when one
    frame would take more than DICOM_FRAME_MAX_BYTES decoded (a whole study in one huge frame)."""
    head = stream.read(HEAD_BYTES)
    stream.seek(0)
    try:
        header = dcmread(stream, stop_before_pixels=True, force=True)
        stream.seek(0)
        rows, columns = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
        samples = int(header.get("SamplesPerPixel", 1) or 1)
        bits = int(header.get("BitsAllocated", 16) or 16)
        if rows * columns * samples * max(bits, 8) // 8 > DICOM_FRAME_MAX_BYTES:
            return None
    except _DICOM_DECODE_ERRORS:
        return None
    try:
        if dicom_transfer_syntax(head) == _DEFLATED:
            # Frames cannot be read straight from a deflated file: it is inflated whole, then decoded.
            ds = dcmread(stream)
            return pixel_array(ds, index=0), ds
        ds = Dataset()
        return pixel_array(stream, index=0, ds_out=ds), ds
    except _DICOM_DECODE_ERRORS:
        return None


def _display_pixels(frame: np.ndarray, ds: Dataset, max_px: int) -> np.ndarray | None:
    frame = _decimate(frame, max_px * DICOM_DECIMATE_TO)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric == "PALETTE COLOR":
        return _to_8_bit_colour(apply_color_lut(frame, ds))
    if frame.ndim == 3 and frame.shape[-1] in (3, 4):
        return _to_8_bit_colour(frame[..., :3], bits=_integer(ds, "BitsStored"))
    if frame.ndim != 2:
        return None
    values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float32)
    window = _window(ds)
    if window is not None:
        center, width, function = window
        pixels = _apply_window(values, center, width, function)
    elif ds.get("VOILUTSequence"):
        pixels = _min_max_8_bit(np.asarray(apply_voi(values, ds), dtype=np.float32))
    else:
        pixels = _min_max_8_bit(values)
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels
    return pixels


def _decimate(frame: np.ndarray, limit: int) -> np.ndarray:
    # Lookup tables act on each pixel alone, so dropping pixels before them equals dropping them after.
    step = math.ceil(max(frame.shape[0], frame.shape[1]) / limit)
    return frame[::step, ::step] if step > 1 else frame


def _window(ds: Dataset) -> tuple[float, float, str] | None:
    center, width = _first_number(ds, "WindowCenter"), _first_number(ds, "WindowWidth")
    if center is None or width is None or width <= 0:
        return None
    function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR"
    return center, width, function


def _apply_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """Window Center/Width onto 0–255 as PS3.3 C.11.2.1.2 defines them."""
    if function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    elif function == "LINEAR_EXACT":
        out = ((values - center) / width + 0.5) * 255.0
    else:
        if width < 1:
            return _min_max_8_bit(values)
        out = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _min_max_8_bit(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(values, nan=low, posinf=high, neginf=low) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _to_8_bit_colour(frame: np.ndarray, bits: int | None = None) -> np.ndarray:
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    if np.issubdtype(frame.dtype, np.integer) and frame.min() >= 0:
        depth = bits or frame.dtype.itemsize * 8
        if depth > 8:
            return np.ascontiguousarray(
                np.clip(frame.astype(np.uint32) >> (depth - 8), 0, 255).astype(np.uint8)
            )
    return _min_max_8_bit(frame)


@contextlib.contextmanager
def _pydicom_quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=_PYDICOM_WARNINGS)
        yield


@contextlib.contextmanager
def _seekable(src: IO[bytes]) -> Iterator[IO[bytes]]:
    """src itself when it can seek, else a spooled copy (memory, then disk); src's position is kept."""
    if _can_seek(src):
        position = src.tell()
        try:
            yield src
        finally:
            src.seek(position)
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        while chunk := src.read(STREAM_CHUNK_BYTES):
            spool.write(chunk)
        spool.seek(0)
        yield spool  # type: ignore[misc]


def _can_seek(src: IO[bytes]) -> bool:
    try:
        return bool(src.seekable())
    except (AttributeError, ValueError, OSError):
        return False


def _text(ds: Dataset, keyword: str) -> str:
    value = _value(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return ", ".join(str(item).strip() for item in value if str(item).strip())
    return str(value).strip()


def _person_name(ds: Dataset) -> str:
    value = _value(ds, "PatientName")
    if isinstance(value, PersonName):
        if value.family_name or value.given_name:
            return ", ".join(part for part in (value.family_name, value.given_name) if part)
        return str(value).replace("^", " ").strip()
    return _text(ds, "PatientName")


def _integer(ds: Dataset, keyword: str) -> int | None:
    value = _value(ds, keyword)
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if value else None
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _first_number(ds: Dataset, keyword: str) -> float | None:
    value = _value(ds, keyword)
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if value else None
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _date(ds: Dataset, keyword: str) -> date | None:
    value = _text(ds, keyword)
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()  # noqa: DTZ007 - a calendar date
    except ValueError:
        return None


def _value(ds: Dataset, keyword: str) -> Any:
    # Values are parsed when first read; a malformed one must not cost the rest of the summary.
    try:
        return ds.get(keyword)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None
