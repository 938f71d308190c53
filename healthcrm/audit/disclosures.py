"""The patient's accounting of disclosures (HIPAA, 45 CFR 164.528): each time the clinic let the patient's
health information go outside it in the last six years, as a list and as a PDF to download.

What counts as a disclosure here:
- a share link made for the patient (by the patient, or by staff on their behalf): its date, the recipient's
  name and email, what it covered and why;
- each time the recipient opened that link, viewed a part of it, downloaded a file or exported it, from the
  share's access log (kept at least six years, like the audit log);
- a copy of the whole record exported by clinic staff (the audit log's `patient.export` by a staff member).

Not listed: uses inside the clinic for treatment, payment and operations (the "Who has seen my record" page
lists every access by staff), the patient's own downloads, and a recipient's failed attempts (a wrong
passcode or a code being sent disclosed nothing).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

from reportlab.lib.enums import TA_LEFT
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph, Spacer, Table, TableStyle
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..accounts.models import PATIENT, Tenant, User
from ..clock import add_years, clinic_day_start, clinic_today, format_clinic_time, utcnow
from ..errors import NotFound
from ..extensions import db
from ..patients.models import Patient
from ..permissions import require
from ..sharing.exports.page import (
    FONT,
    FONT_BOLD,
    HEAD_FILL,
    INK,
    MARGIN,
    MUTED,
    PAGE_SIZE,
    RULE,
    STRIPE_FILL,
    FooterCanvas,
    draw_header,
    register_fonts,
)
from ..sharing.exports.sections import paragraph_text
from ..sharing.models import EVENT_DOWNLOAD, EVENT_EXPORT, EVENT_OPEN, EVENT_VIEW, ShareEvent, ShareLink
from ..sharing.tasks import describe_scope
from ..tenancy import get_scoped, scoped
from .labels import role_label
from .models import AuditEvent
from .services import Actor, describe_events, record_event

ACCOUNTING_YEARS = 6  # 45 CFR 164.528(a): the six years before the request
SHARE = "share"
ACCESS = "access"
EXPORT = "export"
# What a recipient did that showed them the patient's information (not the failed passcodes, codes sent).
ACCESS_KINDS = (EVENT_OPEN, EVENT_VIEW, EVENT_DOWNLOAD, EVENT_EXPORT)
STAFF_EXPORT_ACTION = "patient.export"
NOT_STAFF = (PATIENT, "system", "provider")
DAY_FORMAT = "%d %b %Y"
TIME_FORMAT = "%H:%M"
# Within one instant, newest first still reads in order: an access above the share it came through.
_ORDER = {ACCESS: 2, EXPORT: 1, SHARE: 0}
# The table's columns, as fractions of the text width.
COLUMN_WIDTHS = (0.14, 0.3, 0.34, 0.22)
CELL_PADDING = 4  # points, left and right
CELL_FONT_SIZE = 8


@dataclass(frozen=True)
class Disclosure:
    """One disclosure as the patient reads it; times are the database's naive UTC."""

    occurred_at: datetime
    kind: str  # share | access | export
    recipient_name: str
    recipient_email: str
    what: str
    purpose: str
    share_id: int | None = None
    note: str = ""  # a share's validity ("Link valid until …", "Revoked on …")


def _patient_for(actor: Actor, patient_id: int) -> Patient:
    """The patient's own record for a patient; any of the clinic's for staff who may export records."""
    if actor.role == PATIENT:
        require(actor, "portal.use")
        user = db.session.get(User, actor.user_id) if actor.user_id else None
        if user is None or user.tenant_id != actor.tenant_id or user.patient_id != patient_id:
            raise NotFound(patient_id)
    else:
        require(actor, "patient.export")
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise NotFound(patient_id)
    return patient


def _zone(tenant_id: int) -> str:
    tenant = db.session.get(Tenant, tenant_id)
    return (tenant.timezone if tenant else None) or "UTC"


def period_start(zone: str) -> datetime:
    """The first instant the accounting covers: the start of the clinic's day six years ago (naive UTC)."""
    return clinic_day_start(add_years(clinic_today(zone), -ACCOUNTING_YEARS), zone)


def disclosures(actor: Actor, patient_id: int, since: datetime | None = None) -> list[Disclosure]:
    """The patient's disclosures since `since` (naive UTC; six years of the clinic's days by default),
    newest first. Not audited by itself: the caller records the read (`disclosures_pdf` does)."""
    patient = _patient_for(actor, patient_id)
    zone = _zone(actor.tenant_id)
    return _disclosures(patient, since or period_start(zone), zone)


def _disclosures(patient: Patient, since: datetime, zone: str) -> list[Disclosure]:
    rows = (
        _shares(patient, since, zone) + _share_accesses(patient, since, zone) + _staff_exports(patient, since)
    )
    return sorted(rows, key=lambda row: (row.occurred_at, _ORDER[row.kind]), reverse=True)


def _share_purpose(share: ShareLink) -> str:
    # Share links carry no purpose of their own: the patient chose to share, or staff did so for them.
    if share.created_by_staff:
        by = share.created_by.full_name if share.created_by else "clinic staff"
        return f"Shared at your request by {by} (clinic staff)"
    return "Shared at your request"


def _shares(patient: Patient, since: datetime, zone: str) -> list[Disclosure]:
    shares = db.session.scalars(
        scoped(ShareLink, patient.tenant_id)
        .where(ShareLink.patient_id == patient.id, ShareLink.created_at >= since)
        .options(selectinload(ShareLink.created_by))
    )
    rows = []
    for share in shares:
        what = describe_scope(share)
        what = what[:1].upper() + what[1:]
        if share.allow_download:
            what += " (downloads allowed)"
        if share.revoked_at:
            note = f"Link revoked on {format_clinic_time(share.revoked_at, zone, DAY_FORMAT)}"
        else:
            note = f"Link valid until {format_clinic_time(share.expires_at, zone, DAY_FORMAT)}"
        rows.append(
            Disclosure(
                share.created_at,
                SHARE,
                share.recipient_name,
                share.recipient_email,
                what,
                _share_purpose(share),
                share.id,
                note,
            )
        )
    return rows


def _access_text(event: ShareEvent) -> str:
    detail = (event.detail or "").strip()
    if event.kind == EVENT_OPEN:
        return "Opened the link"
    if event.kind == EVENT_VIEW:
        return f"Viewed {detail}" if detail else "Viewed the shared records"
    if event.kind == EVENT_DOWNLOAD:
        return f"Downloaded {detail}" if detail else "Downloaded a file"
    return f"Exported the shared records ({detail})" if detail else "Exported the shared records"


def _share_accesses(patient: Patient, since: datetime, zone: str) -> list[Disclosure]:
    found = db.session.execute(
        select(ShareEvent, ShareLink)
        .join(ShareLink, ShareLink.id == ShareEvent.share_id)
        .where(
            ShareEvent.tenant_id == patient.tenant_id,
            ShareLink.tenant_id == patient.tenant_id,
            ShareLink.patient_id == patient.id,
            ShareEvent.kind.in_(ACCESS_KINDS),
            ShareEvent.occurred_at >= since,
        )
    )
    return [
        Disclosure(
            event.occurred_at,
            ACCESS,
            share.recipient_name,
            share.recipient_email,
            _access_text(event),
            f"Through the link shared on {format_clinic_time(share.created_at, zone, DAY_FORMAT)}",
            share.id,
        )
        for event, share in found
    ]


def _staff_exports(patient: Patient, since: datetime) -> list[Disclosure]:
    events = list(
        db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.tenant_id == patient.tenant_id,
                AuditEvent.patient_id == patient.id,
                AuditEvent.action == STAFF_EXPORT_ACTION,
                AuditEvent.actor_role.is_not(None),
                AuditEvent.actor_role.not_in(NOT_STAFF),
                AuditEvent.occurred_at >= since,
            )
        )
    )
    rows = []
    for entry in describe_events(patient.tenant_id, events):
        who = entry.actor if "(" in entry.actor else f"{entry.actor} ({role_label(entry.event.actor_role)})"
        rows.append(
            Disclosure(
                entry.event.occurred_at,
                EXPORT,
                who,
                "",
                "A copy of your whole record (a PDF, FHIR data and your files)",
                "Exported by clinic staff",
            )
        )
    return rows


def file_name(actor: Actor, patient_id: int) -> str:
    """The PDF's download name: the patient's id and the clinic's date."""
    return f"accounting-of-disclosures-{patient_id}-{clinic_today(_zone(actor.tenant_id)):%Y%m%d}.pdf"


def disclosures_pdf(actor: Actor, patient_id: int) -> bytes:
    """The accounting of disclosures of the last six years as an A4 PDF, newest first; producing it is
    audited (`portal.disclosures_pdf` for the patient, `patient.disclosures_pdf` for staff) and committed."""
    patient = _patient_for(actor, patient_id)
    tenant = db.session.get(Tenant, actor.tenant_id)
    zone = (tenant.timezone if tenant else None) or "UTC"
    since = period_start(zone)
    rows = _disclosures(patient, since, zone)
    action = "portal.disclosures_pdf" if actor.role == PATIENT else "patient.disclosures_pdf"
    record_event(actor, action, resource_type="patient", resource_id=patient.id, patient_id=patient.id)
    pdf = _render(tenant.name if tenant else "", patient, rows, since, zone)
    db.session.commit()
    return pdf


# --- the PDF ---------------------------------------------------------------------------------------------


class _Styles:
    def __init__(self) -> None:
        base = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12, textColor=INK, alignment=TA_LEFT)
        self.body = ParagraphStyle("text", base, spaceAfter=4)
        self.title = ParagraphStyle("title", base, fontName=FONT_BOLD, fontSize=17, leading=21, spaceAfter=6)
        self.section = ParagraphStyle(
            "section", base, fontName=FONT_BOLD, fontSize=12, leading=15, spaceBefore=10, spaceAfter=5
        )
        self.label = ParagraphStyle("label", base, fontName=FONT_BOLD, fontSize=8.5, leading=11)
        self.cell = ParagraphStyle("cell", base, fontSize=CELL_FONT_SIZE, leading=10)
        self.muted = ParagraphStyle("muted", self.cell, textColor=MUTED)
        self.head = ParagraphStyle("head", base, fontName=FONT_BOLD, fontSize=8, leading=10)


def _render(clinic: str, patient: Patient, rows: list[Disclosure], since: datetime, zone: str) -> bytes:
    register_fonts()
    styles = _Styles()
    width = PAGE_SIZE[0] - 2 * MARGIN
    now = utcnow()
    story = _story(clinic, patient, rows, since, zone, styles, width, now)
    out = io.BytesIO()
    doc = BaseDocTemplate(
        out,
        pagesize=PAGE_SIZE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title="Accounting of disclosures",
        author=clinic,
        creator="HealthCRM",
        invariant=True,
    )
    frame = Frame(MARGIN, MARGIN, doc.width, doc.height, id="body", leftPadding=0, rightPadding=0)
    doc.addPageTemplates(
        PageTemplate(
            id="page",
            frames=[frame],
            onPage=partial(draw_header, text=f"{clinic} — accounting of disclosures"),
        )
    )
    footer = f"{patient.full_name} · MRN {patient.mrn} · produced {format_clinic_time(now, zone, DAY_FORMAT)}"
    doc.build(story, canvasmaker=partial(FooterCanvas, footer=footer, pages=[]))
    return out.getvalue()


def _day(value: date | None) -> str:
    return value.strftime(DAY_FORMAT) if value else "not recorded"


def _story(
    clinic: str,
    patient: Patient,
    rows: list[Disclosure],
    since: datetime,
    zone: str,
    s: _Styles,
    width: float,
    now: datetime,
) -> list:
    def para(text: str, style: ParagraphStyle = s.body) -> Paragraph:
        return Paragraph(paragraph_text(text), style)

    facts = [
        ("Clinic", clinic),
        ("Patient", patient.full_name),
        ("Date of birth", _day(patient.date_of_birth)),
        ("Clinic record number (MRN)", patient.mrn),
        (
            "Period covered",
            f"{format_clinic_time(since, zone, DAY_FORMAT)} to {format_clinic_time(now, zone, DAY_FORMAT)}",
        ),
        ("Produced", format_clinic_time(now, zone, "%d %b %Y, %H:%M")),
        ("Times shown in", f"the clinic's time zone, {zone}"),
    ]
    header = Table(
        [[para(key, s.label), para(value)] for key, value in facts],
        colWidths=[width * 0.3, width * 0.7],
        hAlign="LEFT",
    )
    header.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
    )
    story = [para("Accounting of disclosures", s.title), header, Spacer(1, 5 * mm)]
    story += [
        para("What this lists", s.section),
        para(
            "Each time the clinic disclosed your health information to someone outside the clinic in the "
            "period above: every share link made for you (who received it, what it covered and why), each "
            "time the recipient opened it, viewed part of it or downloaded from it, and every copy of your "
            "whole record exported by clinic staff. Newest first."
        ),
        para(
            "What it does not list: the use of your information inside the clinic for your treatment, for "
            "payment and for the clinic's operations. Those accesses are listed, person by person, on the "
            '"Who has seen my record" page of the patient portal. Your own downloads are not listed either.'
        ),
    ]
    shares = sum(1 for row in rows if row.kind == SHARE)
    accesses = sum(1 for row in rows if row.kind == ACCESS)
    exports = sum(1 for row in rows if row.kind == EXPORT)
    story.append(para("Disclosures", s.section))
    if not rows:
        story.append(para("No disclosures of your health information were made in this period."))
        return story
    story.append(
        para(
            f"{_count(shares, 'share link')}, {_count(accesses, 'access')} by recipients, "
            f"{_count(exports, 'record export')} by staff.",
            s.muted,
        )
    )
    story.append(Spacer(1, 2 * mm))
    story.append(_table(rows, zone, s, width))
    return story


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else ('es' if noun.endswith('s') else 's')}"


def _table(rows: list[Disclosure], zone: str, s: _Styles, width: float) -> Table:
    def cell(markup: str, style: ParagraphStyle = s.cell) -> Paragraph:
        return Paragraph(markup, style)

    head = ["When", "Recipient", "What was disclosed", "Purpose"]
    cells = [[cell(paragraph_text(text), s.head) for text in head]]
    for row in rows:
        day = paragraph_text(format_clinic_time(row.occurred_at, zone, DAY_FORMAT))
        clock = paragraph_text(format_clinic_time(row.occurred_at, zone, TIME_FORMAT))
        when = f'{day}<br/><font color="{MUTED.hexval()}">{clock}</font>'
        who = f"<b>{paragraph_text(row.recipient_name)}</b>"
        if row.recipient_email:
            who += f"<br/>{_email_markup(row.recipient_email, width * COLUMN_WIDTHS[1] - CELL_PADDING * 2)}"
        what = paragraph_text(row.what)
        if row.kind == SHARE:
            what = f"<b>Share link sent.</b> {what}"
        if row.note:
            what += f'<br/><font color="{MUTED.hexval()}">{paragraph_text(row.note)}</font>'
        cells.append([cell(when), cell(who), cell(what), cell(paragraph_text(row.purpose))])
    table = Table(cells, colWidths=[width * w for w in COLUMN_WIDTHS], repeatRows=1, hAlign="LEFT")
    style = [
        ("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, MUTED),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
    ]
    style += [("BACKGROUND", (0, i), (-1, i), STRIPE_FILL) for i in range(2, len(cells), 2)]
    table.setStyle(TableStyle(style))
    return table


def _email_markup(email: str, room: float) -> str:
    """An address too long for its cell breaks after the @, not in the middle of a word."""
    local, at, domain = email.partition("@")
    if not at or stringWidth(email, FONT, CELL_FONT_SIZE) <= room:
        return paragraph_text(email)
    return f"{paragraph_text(local + at)}<br/>{paragraph_text(domain)}"
