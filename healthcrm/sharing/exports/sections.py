"""The PDF's sections, built from the shared content: cover, summary, labs, visit records, allergies,
immunizations and files. Everything the clinic or the patient typed goes through `_text`."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib.enums import TA_LEFT
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    HRFlowable,
    KeepTogether,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from ...accounts.models import Tenant
from ...clock import utcnow
from ...extensions import db
from ...patients.models import SEXES
from ...records.labs import FLAG_LABELS, NORMAL, display_unit
from ...records.models import (
    ALLERGY_SEVERITIES,
    ALLERGY_STATUSES,
    ASCITES,
    ENCEPHALOPATHY,
    ROUTES,
    LabResult,
    MedicalRecord,
)
from ...records.scores import Assessment, LabValue, ScoreResult
from ...records.vitals import record_vital
from ..content import SharedContent, lab_value
from ..models import RECORD_TYPES
from .charts import lab_chart
from .page import ALERT, FONT, FONT_BOLD, HEAD_FILL, INK, MARGIN, MUTED, PAGE_SIZE, RULE, STRIPE_FILL

KEEP_TABLE_WHOLE_ROWS = 15  # a lab table this short is never split from its heading and chart


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


def paragraph_text(value: object) -> str:
    """Text for Paragraph markup: escaped, control characters dropped, line breaks kept."""
    raw = "" if value is None else str(value)
    kept = "".join(ch for ch in raw if ch in "\n\t" or ch.isprintable())
    return escape(kept).replace("\n", "<br/>")


_text = paragraph_text  # the short name the sections below use


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
                        _text(lab_value(lab)),
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
            parts.append(f"temperature {record_vital(record, 'temperature')}")
        if record.respiratory_rate:
            parts.append(f"respiratory rate {record.respiratory_rate}/min")
        if record.spo2:
            parts.append(f"SpO₂ {record.spo2}%")
        if record.weight_kg:
            parts.append(f"weight {record_vital(record, 'weight')}")
        if record.height_cm:
            parts.append(f"height {record_vital(record, 'height')}")
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

    def score_input(self, name: str, given: LabValue | Assessment | str | bool) -> str:
        if isinstance(given, LabValue):
            value = f"{given.value:g} {display_unit(given.unit)}".rstrip()
            return f"{name} {value} ({self.day(given.observed_at)})"
        if isinstance(given, bool):
            return f"{name}: {'yes' if given else 'no'}"
        labels = {"ascites": ASCITES, "encephalopathy": ENCEPHALOPATHY}.get(name, {})
        if isinstance(given, Assessment):
            return f"{name}: {labels.get(given.value, given.value).lower()} ({self.day(given.observed_at)})"
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
                top += [lab_chart(charted, self.width, self.when), Spacer(1, 4)]
                if len(charted) < len(numeric):
                    top.append(self.para(f"The chart shows the results in {_text(unit)} only.", s.small))
            rows = [
                [
                    _text(self.when(lab.observed_at)),
                    _text(lab_value(lab)),
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


def _range(lab: LabResult) -> str:
    text = lab.reference_range
    return f"{text} {display_unit(lab.unit)}".strip() if text and lab.unit else text


def _size(size: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
