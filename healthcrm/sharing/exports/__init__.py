"""Exports of a share: a PDF to read and print, and its lab results as CSV.

Both are built from a `SharedContent` only, so nothing outside the share's scope can reach them, and every
PDF page carries the share's watermark (diagonally across the page and in the footer). Everything the
clinic or the patient typed goes through `_text`, which escapes it for reportlab's Paragraph markup.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache, partial
from typing import IO
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    HRFlowable,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from ...accounts.models import Tenant
from ...clock import utcnow
from ...extensions import db
from ...patients.models import SEXES
from ...records.labs import FLAG_LABELS, NORMAL
from ...records.models import (
    ALLERGY_SEVERITIES,
    ALLERGY_STATUSES,
    ASCITES,
    ENCEPHALOPATHY,
    ROUTES,
    LabResult,
    MedicalRecord,
)
from ...records.scores import LabValue, ScoreResult
from ..content import SharedContent
from ..models import RECORD_TYPES
from ..watermark import font_files

PAGE_SIZE = A4
MARGIN = 18 * mm
HEADER_GAP = 10 * mm  # from the top edge to the header's baseline
FOOTER_GAP = 9 * mm  # from the bottom edge to the footer's baseline
CHART_HEIGHT = 42 * mm
CHART_MARKERS_UP_TO = 40  # points; more and the markers only clutter the line
CHART_TICKS = 5
KEEP_TABLE_WHOLE_ROWS = 15  # a lab table this short is never split from its heading and chart
WATERMARK_FONT_SIZE = 13
WATERMARK_ALPHA = 0.13
WATERMARK_ANGLE_DEGREES = 35
WATERMARK_ROW_PT = 95
FOOTER_FONT_SIZE = 7.5
FOOTER_MIN_FONT_SIZE = 5.5
# Progress: building the story is quick, laying it out on pages is most of the work.
STORY_DONE_PERCENT = 20
LAYOUT_DONE_PERCENT = 98
# A CSV cell that starts with one of these is a formula to a spreadsheet; such text cells get a quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("code", "name", "value", "unit", "ref_low", "ref_high", "flag", "observed_at")

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

Progress = Callable[[int], None]


# --- CSV -------------------------------------------------------------------------------------------------


def labs_csv(content: SharedContent) -> str:
    """The share's lab results, oldest first, one per row under CSV_COLUMNS; times as ISO 8601 UTC.

    Text cells starting with = + - @ (or a tab or carriage return) get a leading apostrophe so a spreadsheet
    shows them instead of running them as formulas. Numbers are written by this function, never typed, so a
    negative value stays a number."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for lab in content.labs:
        value = _csv_text(lab.value_text) if lab.value_numeric is None else f"{lab.value_numeric:g}"
        writer.writerow(
            (
                _csv_text(lab.code),
                _csv_text(lab.name),
                value,
                _csv_text(lab.unit),
                "" if lab.ref_low is None else f"{lab.ref_low:g}",
                "" if lab.ref_high is None else f"{lab.ref_high:g}",
                _csv_text(lab.flag),
                lab.observed_at.replace(tzinfo=UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            )
        )
    return out.getvalue()


def _csv_text(value: str | None) -> str:
    text = value or ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


# --- PDF -------------------------------------------------------------------------------------------------


def build_pdf(
    content: SharedContent, watermark: str, out: IO[bytes], progress: Progress | None = None
) -> int:
    """Write the share as an A4 PDF to `out` and return its number of pages.

    Every page has the header "Shared health record — {patient}", the footer "{watermark} · page N of M"
    and the watermark drawn diagonally across it. Sections: a summary (patient, diagnoses, allergies,
    latest vitals, key labs, scores with their inputs, insights with their source), lab results with a
    trend chart per numeric test, visit records with their addenda, allergies, immunizations and files,
    each only when the share covers it. `progress` is called with 0 to 100 as the work goes on."""
    report = _Progress(progress)
    report(0)
    _register_fonts()
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
            onPage=partial(_draw_header, text=header),
            onPageEnd=partial(_draw_watermark, text=watermark),
        )
    )
    doc.build(story, canvasmaker=partial(_FooterCanvas, footer=watermark, pages=pages))
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


class _FooterCanvas(Canvas):
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


def _draw_header(canvas: Canvas, doc: BaseDocTemplate, *, text: str) -> None:
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
    """The watermark in staggered rows over the whole page, on top of the content, faint enough to read
    through."""
    width, height = PAGE_SIZE
    tile = pdfmetrics.stringWidth(text, FONT, WATERMARK_FONT_SIZE) + 60
    reach = (width**2 + height**2) ** 0.5 / 2 + tile
    canvas.saveState()
    canvas.setFillColor(colors.black)
    canvas.setFillAlpha(WATERMARK_ALPHA)
    canvas.setFont(FONT, WATERMARK_FONT_SIZE)
    canvas.translate(width / 2, height / 2)
    canvas.rotate(WATERMARK_ANGLE_DEGREES)
    row = 0
    y = -reach
    while y < reach:
        x = -reach - (row % 2) * tile / 2
        while x < reach:
            canvas.drawString(x, y, text)
            x += tile
        y += WATERMARK_ROW_PT
        row += 1
    canvas.restoreState()


def _clip(text: str, room: float, size: float, font: str = FONT) -> str:
    """The text cut with an ellipsis to fit `room` points at this size."""
    if pdfmetrics.stringWidth(text, font, size) <= room:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > room:
        text = text[:-1]
    return text + "…"


@cache
def _register_fonts() -> None:
    regular, bold = font_files()
    pdfmetrics.registerFont(TTFont(FONT, regular))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, bold))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)


def _clinic_zone(content: SharedContent) -> str:
    tenant = db.session.get(Tenant, content.share.tenant_id)
    return (tenant.timezone if tenant else None) or "UTC"


class _Styles:
    def __init__(self) -> None:
        base = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12, textColor=INK, alignment=TA_LEFT)
        self.body = base
        self.title = ParagraphStyle("title", base, fontName=FONT_BOLD, fontSize=17, leading=21, spaceAfter=4)
        # Headings, labels and the line under a section title stay with what follows them.
        self.section = ParagraphStyle(
            "section",
            base,
            fontName=FONT_BOLD,
            fontSize=13,
            leading=16,
            spaceBefore=12,
            spaceAfter=5,
            keepWithNext=1,
        )
        self.subsection = ParagraphStyle(
            "subsection",
            base,
            fontName=FONT_BOLD,
            fontSize=10,
            leading=13,
            spaceBefore=8,
            spaceAfter=3,
            keepWithNext=1,
        )
        self.label = ParagraphStyle(
            "label", base, fontName=FONT_BOLD, fontSize=8.5, leading=11, spaceBefore=4, keepWithNext=1
        )
        self.small = ParagraphStyle("small", base, fontSize=7.5, leading=9.5, textColor=MUTED)
        self.intro = ParagraphStyle("intro", self.small, keepWithNext=1)
        self.cell = ParagraphStyle("cell", base, fontSize=8, leading=10)
        self.head = ParagraphStyle("head", base, fontName=FONT_BOLD, fontSize=8, leading=10)
        self.item = ParagraphStyle("item", base, leftIndent=9, bulletIndent=0, spaceBefore=1)
        self.note = ParagraphStyle("note", base, leftIndent=9, fontSize=7.5, leading=9.5, textColor=MUTED)


def _text(value: object) -> str:
    """Text for Paragraph markup: escaped, control characters dropped, line breaks kept."""
    raw = "" if value is None else str(value)
    kept = "".join(ch for ch in raw if ch in "\n\t" or ch.isprintable())
    return escape(kept).replace("\n", "<br/>")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _flag_markup(flag: str | None) -> str:
    if not flag or flag == NORMAL:
        return _text(FLAG_LABELS.get(flag, flag or ""))
    return f'<font color="{ALERT.hexval()}"><b>{_text(FLAG_LABELS.get(flag, flag))}</b></font>'


class _Writer:
    """Turns the shared content into the PDF's story, section by section."""

    def __init__(self, content: SharedContent, styles: _Styles, zone: str) -> None:
        self.content = content
        self.styles = styles
        self.zone = ZoneInfo(zone)
        self.zone_name = zone
        self.width = PAGE_SIZE[0] - 2 * MARGIN

    def story(self) -> list[Flowable]:
        content, story = self.content, []
        story += self.cover()
        story += self.summary()
        if content.shows("labs"):
            story += self.labs()
        if content.shows("visits") or content.shows("prescriptions"):
            story += self.records()
        if content.shows("allergies"):
            story += self.allergies()
        if content.shows("vaccinations"):
            story += self.immunizations()
        if content.shows("attachments") or content.shows("imaging"):
            story += self.files()
        return story

    # Times: the database's naive UTC, shown in the clinic's zone.
    def when(self, moment: datetime, fmt: str = "%d %b %Y %H:%M") -> str:
        return moment.replace(tzinfo=UTC).astimezone(self.zone).strftime(fmt)

    def day(self, moment: datetime | date | None) -> str:
        if moment is None:
            return ""
        if isinstance(moment, datetime):
            return self.when(moment, "%d %b %Y")
        return moment.strftime("%d %b %Y")

    def para(self, markup: str, style: ParagraphStyle | None = None, *, bullet: bool = False) -> Paragraph:
        return Paragraph(markup, style or self.styles.body, bulletText="•" if bullet else None)

    def section(self, title: str) -> list[Flowable]:
        return [self.para(_text(title), self.styles.section)]

    def table(
        self,
        header: Sequence[str],
        rows: list[list[str]],
        widths: Sequence[float],
        *,
        repeat_header: bool = True,
    ) -> Table:
        """A table of markup cells whose header row repeats on every page it spans."""
        cells = [[self.para(_text(h), self.styles.head) for h in header]]
        cells += [[self.para(cell, self.styles.cell) for cell in row] for row in rows]
        table = Table(
            cells,
            colWidths=[self.width * w for w in widths],
            repeatRows=1 if repeat_header else 0,
            hAlign="LEFT",
        )
        style = [
            ("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL),
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, MUTED),
            ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 2.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ("LEFTPADDING", (0, 0), (-1, -1), 4),
            ("RIGHTPADDING", (0, 0), (-1, -1), 4),
        ]
        style += [("BACKGROUND", (0, i), (-1, i), STRIPE_FILL) for i in range(2, len(cells), 2)]
        table.setStyle(TableStyle(style))
        return table

    # --- cover and summary ---

    def cover(self) -> list[Flowable]:
        content, patient, s = self.content, self.content.patient, self.styles
        born = f"{self.day(patient.date_of_birth)}" if patient.date_of_birth else "not recorded"
        if content.age is not None:
            born += f" (age {content.age})"
        covers = ", ".join(label for kind, label in RECORD_TYPES.items() if content.shows(kind))
        rows = [
            ("Patient", _text(patient.full_name)),
            ("Date of birth", _text(born)),
            ("Sex", _text(SEXES.get(patient.sex, patient.sex or ""))),
            ("Clinic record number", _text(patient.mrn)),
            ("This share covers", _text(covers or "nothing")),
            ("Prepared", _text(self.when(utcnow()) + f" ({self.zone_name})")),
        ]
        table = Table(
            [[self.para(_text(k), s.label), self.para(v)] for k, v in rows],
            colWidths=[42 * mm, self.width - 42 * mm],
            hAlign="LEFT",
        )
        table.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("TOPPADDING", (0, 0), (-1, -1), 1),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ]
            )
        )
        intro = (
            "Shared by the patient or their clinic for your care. It shows the records as they are now; "
            "corrections added after the link was created are marked."
        )
        return [self.para("Shared health record", s.title), table, Spacer(1, 3), self.para(intro, s.small)]

    def summary(self) -> list[Flowable]:
        content, s = self.content, self.styles
        story = self.section("Summary")
        patient = content.patient
        facts = [patient.full_name]
        if content.age is not None:
            facts.append(f"{content.age} years")
        if patient.sex and patient.sex != "unknown":
            facts.append(SEXES.get(patient.sex, patient.sex).lower())
        story.append(self.para(f"<b>{_text(', '.join(facts))}</b>"))
        if content.shows("visits"):
            story.append(self.para("Active diagnoses", s.label))
            if content.diagnoses:
                story += [
                    self.para(f"<b>{_text(d.code)}</b> {_text(d.name)}", s.item, bullet=True)
                    for d in content.diagnoses
                ]
            else:
                story.append(self.para("None recorded.", s.item))
        if content.shows("allergies"):
            story.append(self.para("Allergies", s.label))
            active = [a for a in content.allergies if a.status == "active"]
            if active:
                story += [self.para(self.allergy_line(a), s.item, bullet=True) for a in active]
            else:
                story.append(self.para("No active allergies recorded.", s.item))
        if content.shows("visits"):
            story.append(self.para("Latest vitals", s.label))
            record = content.vitals_record
            vitals = self.vitals(record) if record else ""
            story.append(
                self.para(
                    f"{_text(vitals)} <font color='{MUTED.hexval()}'>({self.day(record.visit_at)})</font>"
                )
                if vitals
                else self.para("None recorded.", s.item)
            )
        if content.shows("labs"):
            story.append(self.para("Latest key lab results", s.label))
            if content.latest_labs:
                rows = [
                    [
                        _text(lab.name),
                        _text(_result(lab)),
                        _text(_range(lab)),
                        _flag_markup(lab.flag),
                        _text(self.day(lab.observed_at)),
                    ]
                    for lab in content.latest_labs
                ]
                story.append(
                    self.table(
                        ("Test", "Latest result", "Range", "Flag", "Date"), rows, (0.34, 0.2, 0.18, 0.1, 0.18)
                    )
                )
            else:
                story.append(self.para("No lab results shared.", s.item))
        # Liver scores only for a patient with liver labs: four "not calculated" lines would say nothing.
        if any(score.value is not None or _lab_inputs(score) for score in content.scores):
            story.append(self.para("Liver scores", s.label))
            for score in content.scores:
                story += self.score(score)
        if content.insights:
            story.append(self.para("Findings", s.label))
            for insight in content.insights:
                mark = (
                    f"<font color='{ALERT.hexval()}'><b>!</b></font> " if insight.severity == "warn" else ""
                )
                story.append(self.para(f"{mark}{_text(insight.text)}", s.item, bullet=True))
                story.append(self.para(f"Source: {_text(insight.source)}", s.note))
        return story

    def allergy_line(self, allergy) -> str:
        severity = ALLERGY_SEVERITIES.get(allergy.severity, allergy.severity)
        reaction = f": {allergy.reaction}" if allergy.reaction else ""
        return f"<b>{_text(allergy.substance)}</b> ({_text(severity.lower() + reaction)})"

    def vitals(self, record: MedicalRecord) -> str:
        parts = []
        if record.bp_systolic and record.bp_diastolic:
            parts.append(f"BP {record.bp_systolic}/{record.bp_diastolic} mmHg")
        if record.pulse:
            parts.append(f"pulse {record.pulse}/min")
        if record.temperature_c is not None:
            parts.append(f"temperature {record.temperature_c:g} °C")
        if record.respiratory_rate:
            parts.append(f"respiratory rate {record.respiratory_rate}/min")
        if record.spo2:
            parts.append(f"SpO₂ {record.spo2}%")
        if record.weight_kg:
            parts.append(f"weight {record.weight_kg:g} kg")
        if record.height_cm:
            parts.append(f"height {record.height_cm:g} cm")
        if record.bmi:
            parts.append(f"BMI {record.bmi:g}")
        return " · ".join(parts)

    def score(self, score: ScoreResult) -> list[Flowable]:
        s = self.styles
        if score.value is None:
            value = "not calculated"
            if score.missing:
                value += " — missing " + ", ".join(score.missing)
        else:
            value = str(score.value) + (f" (class {score.category})" if score.category else "")
        story = [self.para(f"<b>{_text(score.name)}</b>: {_text(value)}", s.item, bullet=True)]
        used = [self.score_input(name, given) for name, given in score.inputs]
        if used:
            story.append(self.para("From " + _text("; ".join(used)), s.note))
        if score.notes:
            story.append(self.para(_text("; ".join(score.notes)), s.note))
        return story

    def score_input(self, name: str, given: LabValue | str | bool) -> str:
        if isinstance(given, LabValue):
            return f"{name} {given.value:g} {given.unit}".rstrip() + f" ({self.day(given.observed_at)})"
        if isinstance(given, bool):
            return f"{name}: {'yes' if given else 'no'}"
        labels = {"ascites": ASCITES, "encephalopathy": ENCEPHALOPATHY}.get(name, {})
        return f"{name}: {labels.get(given, given).lower()}"

    # --- labs ---

    def labs(self) -> list[Flowable]:
        s = self.styles
        story = self.section("Lab results")
        if not self.content.labs:
            return [*story, self.para("No lab results shared.")]
        story.append(self.para(f"Oldest first; times in {_text(self.zone_name)}.", s.intro))
        groups = sorted(
            self.content.labs_by_test.items(), key=lambda item: (item[1][-1].name.lower(), item[0])
        )
        for code, tests in groups:
            heading = self.para(
                f"{_text(tests[-1].name)} <font color='{MUTED.hexval()}'>{_text(code)}</font>", s.subsection
            )
            numeric = [
                lab for lab in tests if lab.value_numeric is not None and math.isfinite(lab.value_numeric)
            ]
            # One unit per chart: values reported in another unit would sit on the wrong scale.
            units = Counter(lab.unit for lab in numeric)
            latest_unit = numeric[-1].unit if numeric else None
            unit = max(units, key=lambda u: (units[u], u == latest_unit), default=None)
            charted = [lab for lab in numeric if lab.unit == unit]
            top: list[Flowable] = [heading]
            if len({lab.observed_at for lab in charted}) >= 2:
                top += [self.chart(charted), Spacer(1, 4)]
                if len(charted) < len(numeric):
                    top.append(self.para(f"The chart shows the results in {_text(unit)} only.", s.small))
            rows = [
                [
                    _text(self.when(lab.observed_at)),
                    _text(_result(lab)),
                    _text(_range(lab)),
                    _flag_markup(lab.flag),
                ]
                for lab in tests
            ]
            table = self.table(
                ("Observed", "Result", "Reference range", "Flag"), rows, (0.28, 0.32, 0.26, 0.14)
            )
            # A short table stays with its heading and chart; a long one starts under them and runs on.
            story += (
                [KeepTogether([*top, table])]
                if len(rows) <= KEEP_TABLE_WHOLE_ROWS
                else [KeepTogether(top), table]
            )
        return story

    def chart(self, labs: list[LabResult]) -> Drawing:
        """The test's values over time, with its reference range shaded and dates on the x axis."""
        width, height = self.width, CHART_HEIGHT
        drawing = Drawing(width, height)
        epoch = labs[0].observed_at
        xs = [(lab.observed_at - epoch).total_seconds() / 86400 for lab in labs]
        ys = [lab.value_numeric for lab in labs]
        latest = labs[-1]
        bounds = [v for v in (latest.ref_low, latest.ref_high) if v is not None]
        low, high = min(ys + bounds), max(ys + bounds)
        pad = (high - low) * 0.12 or abs(high) * 0.1 or 1.0
        y_min, y_max = low - pad, high + pad
        if low >= 0 > y_min:
            y_min = 0.0  # no negative axis for values that cannot be negative
        x_min, x_max = xs[0], xs[-1]
        if x_max - x_min < 1 / 24:
            x_min, x_max = x_min - 1, x_max + 1
        plot = LinePlot()
        plot.x, plot.y = 38, 16
        plot.width, plot.height = width - plot.x - 22, height - plot.y - 6
        plot.data = [list(zip(xs, ys, strict=True))]
        plot.joinedLines = 1
        plot.lines[0].strokeColor = LINE
        plot.lines[0].strokeWidth = 1.2
        if len(labs) <= CHART_MARKERS_UP_TO:
            plot.lines[0].symbol = makeMarker("FilledCircle", size=3.2, fillColor=LINE, strokeColor=LINE)
        plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = x_min, x_max
        span = x_max - x_min
        plot.xValueAxis.valueSteps = [x_min + span * i / (CHART_TICKS - 1) for i in range(CHART_TICKS)]
        fmt = "%d %b %Y" if span > 45 else "%d %b %H:%M" if span < 3 else "%d %b"
        plot.xValueAxis.labelTextFormat = lambda days: self.when(epoch + timedelta(days=days), fmt)
        plot.xValueAxis.labels.fontName = FONT
        plot.xValueAxis.labels.fontSize = 6.5
        plot.xValueAxis.labels.fillColor = MUTED
        plot.xValueAxis.strokeColor = RULE
        plot.yValueAxis.valueMin, plot.yValueAxis.valueMax = y_min, y_max
        plot.yValueAxis.labels.fontName = FONT
        plot.yValueAxis.labels.fontSize = 6.5
        plot.yValueAxis.labels.fillColor = MUTED
        plot.yValueAxis.labelTextFormat = "%g"
        plot.yValueAxis.strokeColor = RULE
        plot.yValueAxis.visibleGrid = 1
        plot.yValueAxis.gridStrokeColor = colors.HexColor("#eef1f4")
        plot.yValueAxis.gridStrokeWidth = 0.4
        if bounds:

            def y_at(value: float) -> float:
                return plot.y + (value - y_min) / (y_max - y_min) * plot.height

            band_low = y_at(latest.ref_low) if latest.ref_low is not None else plot.y
            band_high = y_at(latest.ref_high) if latest.ref_high is not None else plot.y + plot.height
            drawing.add(
                Rect(
                    plot.x, band_low, plot.width, band_high - band_low, fillColor=RANGE_FILL, strokeColor=None
                )
            )
        drawing.add(plot)
        unit = latest.unit or ""
        if unit:
            drawing.add(String(2, height - 8, unit, fontName=FONT, fontSize=6.5, fillColor=MUTED))
        return drawing

    # --- records ---

    def records(self) -> list[Flowable]:
        content, s = self.content, self.styles
        visits = content.shows("visits")
        story = self.section("Visit records" if visits else "Prescriptions")
        if not content.records:
            return [*story, self.para("None shared.")]
        story.append(
            self.para(f"Finalized records, newest first; times in {_text(self.zone_name)}.", s.intro)
        )
        for record in content.records:
            story += self.record(record, visits)
        return story

    def record(self, record: MedicalRecord, visits: bool) -> list[Flowable]:
        content, s = self.content, self.styles
        doctor = record.doctor.full_name if record.doctor else ""
        title = f"{_text(self.when(record.visit_at))}" + (f" — {_text(doctor)}" if doctor else "")
        if content.amended_after_sharing(record):
            title += f" <font color='{ALERT.hexval()}'>· amended after sharing</font>"
        heading = self.para(title, s.subsection)
        story: list[Flowable] = [HRFlowable(width="100%", thickness=0.4, color=RULE, spaceBefore=6), heading]
        if visits:
            story.append(self.para(f"<b>Chief complaint:</b> {_text(record.chief_complaint)}"))
            if record.diagnoses:
                story.append(self.para("Diagnoses", s.label))
                for diagnosis in record.diagnoses:
                    primary = " (primary)" if diagnosis.is_primary else ""
                    line = f"<b>{_text(diagnosis.code)}</b> {_text(diagnosis.name)}{primary}"
                    story.append(self.para(line, s.item, bullet=True))
                    if diagnosis.notes:
                        story.append(self.para(_text(diagnosis.notes), s.note))
            vitals = self.vitals(record)
            if vitals:
                story.append(self.para(f"<b>Vitals:</b> {_text(vitals)}"))
            assessment = self.assessment(record)
            if assessment:
                story.append(self.para(f"<b>Liver assessment:</b> {_text(assessment)}"))
            for label, text in (("Notes", record.notes), ("Treatment plan", record.treatment_plan)):
                if text:
                    story += [self.para(label, s.label), self.para(_text(text))]
        if content.shows("prescriptions") and record.prescriptions:
            story.append(self.para("Prescriptions", s.label))
            rows = [
                [
                    _text(p.drug),
                    _text(p.dose),
                    _text(ROUTES.get(p.route, p.route)),
                    _text(p.frequency),
                    _text(p.duration or ""),
                    str(p.refills),
                ]
                for p in record.prescriptions
            ]
            story.append(
                self.table(
                    ("Drug", "Dose", "Route", "Frequency", "Duration", "Refills"),
                    rows,
                    (0.26, 0.14, 0.14, 0.18, 0.16, 0.12),
                )
            )
        elif not visits:
            story.append(self.para("No prescriptions.", s.item))
        if visits:
            for addendum in record.addenda:
                author = addendum.author.full_name if addendum.author else "unknown"
                after = addendum.created_at > content.share.created_at
                mark = f" <font color='{ALERT.hexval()}'>· added after sharing</font>" if after else ""
                story.append(
                    self.para(
                        f"Addendum, {_text(self.when(addendum.created_at))}, {_text(author)}{mark}", s.label
                    )
                )
                story.append(self.para(_text(addendum.text)))
        return story

    def assessment(self, record: MedicalRecord) -> str:
        parts = []
        if record.ascites:
            parts.append(f"ascites {ASCITES.get(record.ascites, record.ascites).lower()}")
        if record.encephalopathy:
            parts.append(
                f"encephalopathy {ENCEPHALOPATHY.get(record.encephalopathy, record.encephalopathy).lower()}"
            )
        if record.on_dialysis:
            parts.append("on dialysis")
        return " · ".join(parts)

    # --- allergies, immunizations, files ---

    def allergies(self) -> list[Flowable]:
        story = self.section("Allergies")
        if not self.content.allergies:
            return [*story, self.para("None recorded.")]
        rows = [
            [
                f"<b>{_text(a.substance)}</b>",
                _text(a.reaction or ""),
                _text(ALLERGY_SEVERITIES.get(a.severity, a.severity)),
                _text(ALLERGY_STATUSES.get(a.status, a.status)),
                _text(self.day(a.recorded_at)),
            ]
            for a in self.content.allergies
        ]
        return [
            *story,
            self.table(
                ("Substance", "Reaction", "Severity", "Status", "Recorded"),
                rows,
                (0.26, 0.3, 0.14, 0.14, 0.16),
            ),
        ]

    def immunizations(self) -> list[Flowable]:
        story = self.section("Immunizations")
        if not self.content.immunizations:
            return [*story, self.para("None recorded.")]
        rows = [
            [
                f"<b>{_text(i.vaccine)}</b>",
                _text(self.day(i.given_on)),
                _text(i.dose_number or ""),
                _text(i.lot or ""),
                _text(i.site or ""),
                _text(i.given_by or ""),
            ]
            for i in self.content.immunizations
        ]
        return [
            *story,
            self.table(
                ("Vaccine", "Given", "Dose", "Lot", "Site", "Given by"),
                rows,
                (0.27, 0.15, 0.08, 0.14, 0.14, 0.22),
            ),
        ]

    def files(self) -> list[Flowable]:
        story = self.section("Files")
        if not self.content.attachments:
            return [*story, self.para("None shared.")]
        story.append(self.para("Open them from the share's page.", self.styles.intro))
        rows = [
            [
                _text(a.filename),
                _text(a.current_version.kind.upper()),
                _text(_size(a.current_version.size)),
                _text(self.day(a.updated_at)),
            ]
            for a in self.content.attachments
        ]
        return [*story, self.table(("File", "Kind", "Size", "Updated"), rows, (0.55, 0.13, 0.14, 0.18))]


def _lab_inputs(score: ScoreResult) -> list[LabValue]:
    return [given for _, given in score.inputs if isinstance(given, LabValue)]


def _result(lab: LabResult) -> str:
    if lab.value_numeric is None:
        return lab.value_text or ""
    return f"{lab.value_numeric:g} {lab.unit or ''}".strip()


def _range(lab: LabResult) -> str:
    text = lab.reference_range
    return f"{text} {lab.unit}".strip() if text and lab.unit else text


def _size(size: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
