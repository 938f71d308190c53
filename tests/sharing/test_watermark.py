"""The watermark is readable over what it marks: few, light copies where the picture is plainest, and the
same text in a band under every image and along the margins of every exported page."""

from __future__ import annotations

import io

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw
from pypdf import PdfReader
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from healthcrm.sharing.watermark import (
    BAND_COLOUR,
    draw_pdf_watermark,
    font_files,
    pdf_page_count,
    pdf_page_image,
    watermark_image,
)

TEXT = "Shared with Dr. Jane Example · share #123 · 2026-12-02T09:15-05:00"
# The most of a page or image (outside its band) the watermark may ink.
MAX_INK_SHARE = 0.03


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _split(marked: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The marked picture's pixels above the band, and the band's."""
    pixels = np.asarray(Image.open(io.BytesIO(marked)).convert("RGB")).astype(int)
    band_rows = (np.abs(pixels - np.array(BAND_COLOUR)).max(axis=2) < 3).mean(axis=1) > 0.5
    first_band_row = int(np.argmax(band_rows))
    assert band_rows[first_band_row] and band_rows[-1], "the band is at the bottom"
    return pixels[:first_band_row], pixels[first_band_row:]


def _ink_share(picture: np.ndarray, background: tuple[int, int, int]) -> float:
    return float((np.abs(picture - np.array(background)).max(axis=2) > 8).mean())


@pytest.mark.parametrize(
    ("size", "background"),
    [((910, 1286), (255, 255, 255)), ((1024, 768), (0, 0, 0)), ((640, 480), (128, 128, 128))],
    ids=["pdf-page", "ultrasound", "grey-photo"],
)
def test_alone_on_a_blank_picture_the_watermark_inks_little_yet_is_there(size, background):
    # Before: a diagonal pattern inked 9.1 % of a white A4 page and 5.3 % of a black 1024 × 768 image.
    marked = watermark_image(_png(Image.new("RGB", size, background)), TEXT)
    picture, band = _split(marked)
    share = _ink_share(picture, background)
    assert 0.002 < share < MAX_INK_SHARE, f"{share:.2%} of the picture is watermark"
    assert _ink_share(band, BAND_COLOUR) > 0.01  # the text in the band


def test_the_band_carries_exactly_this_watermark_text():
    blank = _png(Image.new("RGB", (800, 600), "white"))
    _, band = _split(watermark_image(blank, TEXT))
    _, same = _split(watermark_image(_png(Image.new("RGB", (800, 600), "black")), TEXT))
    _, other = _split(watermark_image(blank, TEXT.replace("#123", "#124")))
    assert np.array_equal(band, same)
    assert not np.array_equal(band, other)


def _report_pdf(pages: int) -> bytes:
    """A report with lines of findings on each page, as clinics scan or print them."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4)
    height = A4[1]
    for number in range(pages):
        canvas.setFont("Helvetica-Bold", 16)
        canvas.drawString(25 * mm, height - 30 * mm, f"Abdominal ultrasound, page {number + 1}")
        canvas.setFont("Helvetica", 10)
        y = height - 45 * mm
        for paragraph in range(7):
            for _line in range(4):
                canvas.drawString(25 * mm, y, "FINDINGS: the liver is enlarged with a coarse echotexture.")
                y -= 13
            y -= 22 if paragraph % 2 else 14
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def test_on_a_report_every_page_carries_it_and_no_copy_covers_a_line_of_text():
    report = _report_pdf(3)
    assert pdf_page_count(io.BytesIO(report)) == 3
    for number in range(3):
        page = pdf_page_image(io.BytesIO(report), number)
        original = np.asarray(Image.open(io.BytesIO(page)).convert("L")).astype(int)
        marked, band = _split(watermark_image(page, TEXT))
        assert _ink_share(band, BAND_COLOUR) > 0.01
        marked_grey = marked.mean(axis=2)
        assert marked_grey.shape == original.shape
        changed_rows = np.flatnonzero((np.abs(marked_grey - original) > 8).any(axis=1))
        assert changed_rows.size, f"page {number + 1} has copies over it"
        text_rows = np.flatnonzero((original < 128).any(axis=1))
        assert not np.intersect1d(changed_rows, text_rows).size, "a copy lies over a line of the report"


def test_on_a_busy_image_the_copies_take_its_plain_parts():
    # An ultrasound: speckle in a cone, black around it; the top copy goes into the black.
    rng = np.random.default_rng(7)
    pixels = np.zeros((768, 1024), np.uint8)
    ys, xs = np.mgrid[0:768, 0:1024]
    cone = (np.abs(np.arctan2(xs - 512, ys + 50)) < 0.6) & (ys > 70)
    pixels[cone] = rng.integers(40, 220, cone.sum())
    image = Image.fromarray(pixels).convert("RGB")
    ImageDraw.Draw(image).text((12, 12), "LIVER RT", fill="white")
    marked, _ = _split(watermark_image(_png(image), TEXT))
    changed = np.abs(marked.mean(axis=2) - pixels) > 8
    assert changed.mean() < MAX_INK_SHARE
    assert not (changed & cone).any(axis=1)[:60].any() and changed[:60].any()


def _pdf_with_margin_watermark(pages: int) -> bytes:
    pdfmetrics.registerFont(TTFont("WatermarkTestSans", font_files()[0]))
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4)
    for _ in range(pages):
        draw_pdf_watermark(canvas, *A4, 18 * mm, TEXT, "WatermarkTestSans")
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def test_the_exports_margin_watermark_is_on_every_page_and_inks_little():
    data = _pdf_with_margin_watermark(3)
    texts = [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]
    assert len(texts) == 3
    for text in texts:
        assert text.count("share #123") == 2
    document = pdfium.PdfDocument(data)
    try:
        bitmap = document[0].render(scale=110 / 72)
        grey = np.asarray(bitmap.to_pil().convert("L")).astype(int)
    finally:
        document.close()
    inked = grey < 247
    assert 0 < inked.mean() < MAX_INK_SHARE
    margin_px = round(18 * mm * 110 / 72)
    assert not inked[:, margin_px:-margin_px].any(), "nothing is drawn over the page's body"
