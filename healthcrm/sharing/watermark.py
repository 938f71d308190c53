"""Watermarks for what a share shows: the text naming the recipient, the share and the time, drawn over
images, and PDFs turned into page images so a share without downloads never hands out the PDF itself.

Pure functions over bytes and streams: no request, no database. Content that does not decode raises
`UnreadableImage` or `UnreadablePdf` (both ValueError), for the caller to show "cannot be previewed".
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from typing import IO
from zoneinfo import ZoneInfo

import numpy as np
import pypdfium2 as pdfium
import reportlab
from PIL import Image, ImageDraw, ImageFont, ImageOps
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from ..files.previews import IMAGE_DECODE_ERRORS, IMAGE_MAX_PIXELS
from .models import ShareLink

WATERMARK_MAX_PX = 1600
RECIPIENT_MAX_CHARS = 80
# Only the parsers of the image kinds the clinic stores or produces (DICOM frames are stored as PNG).
IMAGE_FORMATS = ("PNG", "JPEG", "TIFF")
# Small images are placed on a canvas this wide, so the band under them can still be read.
BAND_MIN_WIDTH_PX = 480
WATERMARK_TEXT_FRACTION = 48  # the text's height is this fraction of the image's longer side
# Three copies over the picture (top, middle, bottom third) besides the band: enough that a crop keeps one,
# few enough to read what lies under them. Images shorter than this many text lines per copy get fewer.
WATERMARK_COPIES = 3
WATERMARK_MIN_ZONE_LINES = 4
WATERMARK_ALPHA = 110  # of 255: plain grey text, no outline, on the plainest part of each zone
WATERMARK_EDGE_PX = 8  # a copy at the left or right stays this far from the edge
BAND_COLOUR = (32, 32, 32)
PAD_COLOUR = (224, 224, 224)

PDF_MAX_PAGES = 20
PDF_DPI = 110
# The PDF format's own limit for a page side (200 inches); larger or degenerate pages are refused.
PDF_PAGE_MAX_PT = 14_400
PDF_PAGE_MIN_PT = 1
# A page that would render to more pixels than this (posters, plans) is rendered at a lower resolution.
PDF_RENDER_MAX_PIXELS = 25_000_000
# PDFium is not thread-safe: one rendering at a time per process.
_PDFIUM_LOCK = threading.Lock()

# (regular, bold): DejaVu Sans (Debian's fonts-dejavu-core) covers most scripts; reportlab's bundled Vera is
# always there.
_FONT_CANDIDATES = (
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        os.path.join(os.path.dirname(reportlab.__file__), "fonts", "Vera.ttf"),
        os.path.join(os.path.dirname(reportlab.__file__), "fonts", "VeraBd.ttf"),
    ),
)


class UnreadableImage(ValueError):
    """The bytes are not a PNG, JPEG or TIFF image that can be decoded within the pixel limit."""


class UnreadablePdf(ValueError):
    """The PDF cannot be opened (damaged, encrypted) or has a page of an impossible size."""


@cache
def font_files() -> tuple[str, str]:
    """The TrueType fonts (regular, bold) the watermarks and the PDF export are drawn with."""
    return next(pair for pair in _FONT_CANDIDATES if all(os.path.exists(path) for path in pair))


def watermark_text(share: ShareLink, accessed_at: datetime, zone: str | None = None) -> str:
    """The watermark line, "Shared with {recipient} · share #{id} · {time}": the time in ISO 8601 to the
    minute, in UTC, or in `zone` (the clinic's time zone) with its offset. `accessed_at` is naive UTC (as
    stored) or aware."""
    moment = accessed_at if accessed_at.tzinfo else accessed_at.replace(tzinfo=UTC)
    if zone:
        stamp = moment.astimezone(ZoneInfo(zone)).isoformat(timespec="minutes")
    else:
        stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
    return f"Shared with {_one_line(share.recipient_name)} · share #{share.id} · {stamp}"


def _one_line(text: str) -> str:
    """A name fit for one line of a watermark: no control characters, bounded length."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in text or "").split())
    if len(cleaned) > RECIPIENT_MAX_CHARS:
        cleaned = cleaned[: RECIPIENT_MAX_CHARS - 1].rstrip() + "…"
    return cleaned or "(no name)"


# --- images ----------------------------------------------------------------------------------------------


def watermark_image(image_bytes: bytes, text: str, max_px: int = WATERMARK_MAX_PX) -> bytes:
    """A PNG of the image, upright and scaled down to fit max_px × max_px with the band, with `text` in a
    solid band under it and a few faint copies over it, placed where they hide least (`watermark_layer`).
    Raises UnreadableImage."""
    image = _decode(image_bytes, max_px)
    font_px = max(12, round(min(max_px, max(image.size)) / WATERMARK_TEXT_FRACTION))
    band_font = _font(font_px)
    band_height = round(font_px * 2.2)
    image.thumbnail((max_px, max(1, max_px - band_height)), Image.Resampling.LANCZOS)
    image = Image.alpha_composite(image.convert("RGBA"), watermark_layer(image, text, font_px)).convert("RGB")
    width = max(image.width, min(max_px, BAND_MIN_WIDTH_PX))
    canvas = Image.new("RGB", (width, image.height + band_height), PAD_COLOUR)
    canvas.paste(image, ((width - image.width) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, image.height, width, image.height + band_height), fill=BAND_COLOUR)
    band_text, band_font = _fit(draw, text, band_font, width - font_px)
    draw.text(
        (width // 2, image.height + band_height // 2), band_text, font=band_font, fill="white", anchor="mm"
    )
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def _decode(image_bytes: bytes, max_px: int) -> Image.Image:
    """The first frame as RGB, upright; 16-bit and float images stretched to 8 bits."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image_bytes), formats=IMAGE_FORMATS) as opened:
                if opened.width * opened.height > IMAGE_MAX_PIXELS:
                    raise UnreadableImage(f"{opened.width} × {opened.height} pixels is over the limit")
                # JPEG decodes at 1/2, 1/4 or 1/8 scale when that is still larger than needed.
                opened.draft("RGB", (max_px, max_px))
                image = ImageOps.exif_transpose(opened)
                image.load()
    except IMAGE_DECODE_ERRORS as error:
        raise UnreadableImage(str(error) or type(error).__name__) from None
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image.convert("F"), dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent parts become white, as a viewer shows them on a page.
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def watermark_layer(image: Image.Image, text: str, font_px: int) -> Image.Image:
    """The watermark alone, as a transparent layer the size of `image`: WATERMARK_COPIES copies of the
    text (fewer on small images), one in each horizontal zone of the image so any crop keeps one, each
    where the image is plainest in its zone (a PDF page's margins and gaps between paragraphs, the dark
    surround of an ultrasound), dark on light parts and light on dark ones."""
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    text, font = _fit(draw, text, _font(font_px), image.width * 0.94)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    box_w, box_h = right - left, bottom - top
    if box_w <= 0 or box_h <= 0 or image.height < box_h:
        return layer
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    copies = max(1, min(WATERMARK_COPIES, image.height // (box_h * WATERMARK_MIN_ZONE_LINES)))
    zone_h = image.height / copies
    for zone in range(copies):
        top_row, bottom_row = round(zone * zone_h), round((zone + 1) * zone_h)
        x, y, background = _plainest_place(grey, box_w, box_h, top_row, bottom_row)
        ink = (0, 0, 0, WATERMARK_ALPHA) if background >= 128 else (255, 255, 255, WATERMARK_ALPHA)
        draw.text((x - left, y - top), text, font=font, fill=ink)
    return layer


def _plainest_place(
    grey: np.ndarray, box_w: int, box_h: int, top: int, bottom: int
) -> tuple[int, int, float]:
    """Where in rows top..bottom a box_w × box_h box covers the least detail (the lowest spread of
    grey), trying the left, centre and right at quarter-box steps; with the box's mean grey there."""
    height, width = grey.shape
    best = (float("inf"), 0, top, 255.0)
    step = max(1, box_h // 4)
    last_y = max(top, min(bottom, height) - box_h)
    xs = sorted({WATERMARK_EDGE_PX, (width - box_w) // 2, width - box_w - WATERMARK_EDGE_PX})
    for y in range(top, last_y + 1, step):
        for x in xs:
            x = max(0, min(x, width - box_w))
            patch = grey[y : y + box_h, x : x + box_w]
            spread = float(patch.std())
            if spread < best[0]:
                best = (spread, x, y, float(patch.mean()))
    return best[1], best[2], best[3]


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_files()[0], size)


def _fit(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: float
) -> tuple[str, ImageFont.FreeTypeFont]:
    """The text at a size that fits the width (down to 9 px), cut with an ellipsis if it still does not."""
    while draw.textlength(text, font=font) > width and font.size > 9:
        font = _font(font.size - 1)
    if draw.textlength(text, font=font) <= width:
        return text, font
    while len(text) > 1 and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…", font


# --- PDF pages drawn by reportlab -----------------------------------------------------------------------

PDF_WATERMARK_FONT_SIZE = 7  # points
PDF_WATERMARK_GREY = 0.45  # of black: readable, lighter than the body text


def draw_pdf_watermark(
    canvas: Canvas, page_width: float, page_height: float, margin: float, text: str, font: str
) -> None:
    """The watermark on a page the export draws: the text upright along the left and the right margin,
    where no content lies (the footer carries it once more). `margin` is the page's side margin in points;
    the text is cut with an ellipsis to the height of the page's body."""
    room = page_height - 2 * margin
    size = PDF_WATERMARK_FONT_SIZE
    while len(text) > 1 and pdfmetrics.stringWidth(text, font, size) > room:
        text = text[:-2] + "…"
    canvas.saveState()
    canvas.setFont(font, size)
    canvas.setFillGray(PDF_WATERMARK_GREY)
    for x, angle in ((margin / 2, 90), (page_width - margin / 2, -90)):
        canvas.saveState()
        canvas.translate(x, page_height / 2)
        canvas.rotate(angle)
        canvas.drawCentredString(0, -size / 3, text)
        canvas.restoreState()
    canvas.restoreState()


# --- PDFs ------------------------------------------------------------------------------------------------


def pdf_pages_as_images(src: IO[bytes], max_pages: int = PDF_MAX_PAGES, dpi: int = PDF_DPI) -> list[bytes]:
    """The first `max_pages` pages of a PDF as PNGs at `dpi` (lower for pages that would exceed
    PDF_RENDER_MAX_PIXELS), for `watermark_image`. Raises UnreadablePdf for a PDF PDFium cannot open and
    for a page larger than the PDF format allows or smaller than a point."""
    with _seekable(src) as stream, _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(stream)
        except pdfium.PdfiumError as error:
            raise UnreadablePdf(str(error)) from None
        try:
            return [_render(document, number, dpi) for number in range(min(len(document), max_pages))]
        finally:
            document.close()


def _open_pdf(stream: IO[bytes]) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(stream)
    except pdfium.PdfiumError as error:
        raise UnreadablePdf(str(error)) from None


def pdf_page_count(src: IO[bytes]) -> int:
    """How many pages a PDF has (without rendering any). Raises UnreadablePdf."""
    with _seekable(src) as stream, _PDFIUM_LOCK:
        document = _open_pdf(stream)
        try:
            return len(document)
        finally:
            document.close()


def pdf_page_image(src: IO[bytes], number: int, dpi: int = PDF_DPI) -> bytes | None:
    """Page `number` (from 0) of a PDF as a PNG, rendering only that page; None past the last page."""
    with _seekable(src) as stream, _PDFIUM_LOCK:
        document = _open_pdf(stream)
        try:
            if not 0 <= number < len(document):
                return None
            return _render(document, number, dpi)
        finally:
            document.close()


def _render(document: pdfium.PdfDocument, number: int, dpi: int) -> bytes:
    page = document[number]
    try:
        width, height = page.get_size()
        if not (PDF_PAGE_MIN_PT <= width <= PDF_PAGE_MAX_PT and PDF_PAGE_MIN_PT <= height <= PDF_PAGE_MAX_PT):
            raise UnreadablePdf(f"page {number + 1} is {width:.0f} × {height:.0f} pt")
        scale = dpi / 72
        scale = min(scale, math.sqrt(PDF_RENDER_MAX_PIXELS / (width * height)))
        bitmap = page.render(scale=scale, may_draw_forms=False)
        try:
            image = bitmap.to_pil()
            out = io.BytesIO()
            image.convert("RGB").save(out, format="PNG")
            return out.getvalue()
        finally:
            bitmap.close()
    except pdfium.PdfiumError as error:
        raise UnreadablePdf(f"page {number + 1}: {error}") from None
    finally:
        page.close()


@contextlib.contextmanager
def _seekable(src: IO[bytes]) -> Iterator[IO[bytes]]:
    """The stream itself when PDFium can read it in place, else a temporary file copy of it."""
    if getattr(src, "seekable", lambda: False)() and hasattr(src, "readinto"):
        yield src
        return
    with tempfile.TemporaryFile() as copy:
        shutil.copyfileobj(src, copy)
        copy.seek(0)
        yield copy
