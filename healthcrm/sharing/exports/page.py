"""What every page of the share's PDF carries: size and margins, fonts and colours, the header, the
watermark across the page and the "page N of M" footer."""

from __future__ import annotations

from functools import cache

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate

from ..watermark import draw_pdf_watermark, font_files

PAGE_SIZE = A4
MARGIN = 18 * mm
HEADER_GAP = 10 * mm  # from the top edge to the header's baseline
FOOTER_GAP = 9 * mm  # from the bottom edge to the footer's baseline
FOOTER_FONT_SIZE = 7.5
FOOTER_MIN_FONT_SIZE = 5.5

FONT = "ShareSans"
FONT_BOLD = "ShareSans-Bold"
INK = colors.HexColor("#1f2933")
MUTED = colors.HexColor("#52606d")
RULE = colors.HexColor("#cbd2d9")
HEAD_FILL = colors.HexColor("#e4e7eb")
STRIPE_FILL = colors.HexColor("#f5f7fa")
ALERT = colors.HexColor("#b42318")
LINE = colors.HexColor("#1d4ed8")
RANGE_FILL = colors.HexColor("#dcfce7")


class FooterCanvas(Canvas):
    """Keeps every page until the end, so each footer can say "page N of M"."""

    def __init__(self, *args, footer: str, pages: list[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._footer = footer
        self._pages_out = pages
        self._held: list[dict] = []

    def showPage(self) -> None:
        self._held.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._held)
        for state in self._held:
            self.__dict__.update(state)
            self._draw_footer(total)
            super().showPage()
        self._pages_out.append(total)
        super().save()

    def _draw_footer(self, total: int) -> None:
        width, _ = PAGE_SIZE
        room = width - 2 * MARGIN
        suffix = f" · page {self._pageNumber} of {total}"
        text, size = self._footer + suffix, FOOTER_FONT_SIZE
        while size > FOOTER_MIN_FONT_SIZE and pdfmetrics.stringWidth(text, FONT, size) > room:
            size -= 0.5
        if pdfmetrics.stringWidth(text, FONT, size) > room:
            text = _clip(self._footer, room - pdfmetrics.stringWidth(suffix, FONT, size), size) + suffix
        self.saveState()
        self.setStrokeColor(RULE)
        self.setLineWidth(0.5)
        self.line(MARGIN, FOOTER_GAP + 9, width - MARGIN, FOOTER_GAP + 9)
        self.setFont(FONT, size)
        self.setFillColor(MUTED)
        self.drawCentredString(width / 2, FOOTER_GAP, text)
        self.restoreState()


def draw_header(canvas: Canvas, doc: BaseDocTemplate, *, text: str) -> None:
    width, height = PAGE_SIZE
    canvas.saveState()
    canvas.setFont(FONT_BOLD, 9.5)
    canvas.setFillColor(INK)
    canvas.drawString(MARGIN, height - HEADER_GAP, _clip(text, width - 2 * MARGIN, 9.5, FONT_BOLD))
    canvas.setStrokeColor(RULE)
    canvas.setLineWidth(0.5)
    canvas.line(MARGIN, height - HEADER_GAP - 4, width - MARGIN, height - HEADER_GAP - 4)
    canvas.restoreState()


def _draw_watermark(canvas: Canvas, doc: BaseDocTemplate, *, text: str) -> None:
    """The watermark in the page's side margins, where it hides nothing (the footer carries it too)."""
    draw_pdf_watermark(canvas, *PAGE_SIZE, MARGIN, text, FONT)


def _clip(text: str, room: float, size: float, font: str = FONT) -> str:
    """The text cut with an ellipsis to fit `room` points at this size."""
    if pdfmetrics.stringWidth(text, font, size) <= room:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > room:
        text = text[:-1]
    return text + "…"


@cache
def register_fonts() -> None:
    regular, bold = font_files()
    pdfmetrics.registerFont(TTFont(FONT, regular))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, bold))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)
