"""The share as an A4 PDF: lays out the sections' story on pages and reports progress as it goes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import IO

from reportlab.platypus import BaseDocTemplate, Flowable, Frame, PageTemplate

from ..content import SharedContent
from .page import MARGIN, PAGE_SIZE, FooterCanvas, _draw_watermark, draw_header, register_fonts
from .sections import _clinic_zone, _Styles, _Writer

STORY_DONE_PERCENT = 20
LAYOUT_DONE_PERCENT = 98

Progress = Callable[[int], None]


def build_pdf(
    content: SharedContent, watermark: str, out: IO[bytes], progress: Progress | None = None
) -> int:
    """Write the share as an A4 PDF to `out` and return its number of pages.

    Every page has the header "Shared health record — {patient}", the footer "{watermark} · page N of M"
    and the watermark upright in both side margins. Sections: a summary (patient, diagnoses, allergies,
    latest vitals, key labs, scores with their inputs, insights with their source), lab results with a
    trend chart per numeric test, visit records with their addenda, allergies, immunizations and files,
    each only when the share covers it. `progress` is called with 0 to 100 as the work goes on."""
    report = _Progress(progress)
    report(0)
    register_fonts()
    styles = _Styles()
    writer = _Writer(content, styles, _clinic_zone(content))
    story = writer.story()
    report(STORY_DONE_PERCENT)
    pages: list[int] = []
    header = f"Shared health record — {content.patient.full_name}"
    doc = _ShareDocument(out, story_length=len(story), progress=report)
    frame = Frame(MARGIN, MARGIN, doc.width, doc.height, id="body", leftPadding=0, rightPadding=0)
    doc.addPageTemplates(
        PageTemplate(
            id="page",
            frames=[frame],
            onPage=partial(draw_header, text=header),
            onPageEnd=partial(_draw_watermark, text=watermark),
        )
    )
    doc.build(story, canvasmaker=partial(FooterCanvas, footer=watermark, pages=pages))
    report(100)
    return pages[0]


class _Progress:
    """Calls the caller's progress function with whole percents, only when the number goes up."""

    def __init__(self, report: Progress | None) -> None:
        self.report = report
        self.last = -1

    def __call__(self, percent: float) -> None:
        value = max(0, min(100, int(percent)))
        if self.report is not None and value > self.last:
            self.last = value
            self.report(value)


class _ShareDocument(BaseDocTemplate):
    """A4 with room for the header and footer; reports progress as the story's flowables are laid out."""

    def __init__(self, out: IO[bytes], *, story_length: int, progress: _Progress) -> None:
        super().__init__(
            out,
            pagesize=PAGE_SIZE,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN,
            bottomMargin=MARGIN,
            title="Shared health record",
            author="",
            creator="HealthCRM",
            # Same content, same bytes: no creation time or random document id in the file.
            invariant=True,
        )
        self._story_length = max(1, story_length)
        self._laid_out = 0
        self._progress = progress

    def afterFlowable(self, flowable: Flowable) -> None:
        self._laid_out += 1
        share = min(1.0, self._laid_out / self._story_length)
        self._progress(STORY_DONE_PERCENT + (LAYOUT_DONE_PERCENT - STORY_DONE_PERCENT) * share)
