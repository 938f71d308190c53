"""Share links: create them, find them by token, let a provider through their checks, count every use.

The rules a share keeps:
- Its token has 256 bits from `secrets`; only the SHA-256 is stored (in `ShareToken`). The token shown to
  the creator and the one emailed (made inside the email job) are two tokens of the same share.
- Expired, revoked, used-up and unknown links look the same to the provider: `resolve` returns None.
- A wrong passcode counts up `failed_passcodes` in one UPDATE; the tenth in a row pauses the link for 15
  minutes (and tells the patient); a right one resets the count. The link itself stays valid.
- An open is counted by one UPDATE guarded by `max_opens`, so N parallel opens of a link limited to N all
  pass and the N+1st does not. Downloads are counted and limited the same way, separately.
- Every step is in the share's access log and in the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from redis import RedisError
from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import selectinload

from ..accounts.models import PATIENT, Tenant, User
from ..accounts.secrets import hash_password, verify_password
from ..audit.services import Actor, record_event
from ..clock import clinic_day_end, clinic_today, format_clinic_time, to_clinic_time, utcnow
from ..errors import DomainError, NotAllowed
from ..extensions import db
from ..jobs.queue import enqueue
from ..patients.models import Patient
from ..permissions import can
from ..records.models import FINALIZED, MedicalRecord
from ..tenancy import get_scoped, scoped
from ..tenant_scope import ALL_TENANTS
from .models import (
    EVENT_CODE_FAILED,
    EVENT_CODE_SENT,
    EVENT_CODE_VERIFIED,
    EVENT_OPEN,
    EVENT_PASSCODE_FAILED,
    EVENT_PASSCODE_OK,
    EVENT_PAUSED,
    EVENT_VIEW,
    RECORD_TYPES,
    SCOPE_ALL,
    SCOPE_RECORDS,
    SCOPE_TYPES,
    Notification,
    ShareCode,
    ShareEvent,
    ShareLink,
    ShareToken,
    ShareVisit,
)

TOKEN_BYTES = 32  # 256 bits
DURATION_PRESETS = (7, 30, 90)
MAX_DAYS = 365
PASSCODE_MIN_CHARS = 6
PASSCODE_MAX_CHARS = 128
MAX_RECIPIENTS = 10
MAX_MESSAGE_CHARS = 2000
PAUSE_AFTER_FAILURES = 10
PAUSE_FOR = timedelta(minutes=15)
CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
CODE_MAX_ATTEMPTS = 5
CODES_PER_HOUR = 5
VISIT_LIFETIME = timedelta(hours=4)
# How a share's times are shown everywhere (pages, emails): to the minute, with the clinic's zone, so
# "until 31 Dec 2026, 15:46 EST" is what the link does.
TIME_WITH_ZONE = "%d %b %Y, %H:%M %Z"


class ShareError(DomainError):
    """Input the person can fix; `field` names the form field."""


class ShareErrors(ShareError):
    """Several inputs the person can fix, each a ShareError with its field (`errors`), to show at once."""

    def __init__(self, errors: list[ShareError]) -> None:
        super().__init__(" ".join(error.message for error in errors), errors[0].field)
        self.errors = errors


@dataclass
class ShareRequest:
    recipients: list[tuple[str, str]]  # (name, email)
    scope: str = SCOPE_ALL
    scope_types: list[str] = field(default_factory=list)
    scope_record_ids: list[int] = field(default_factory=list)
    days: int | None = 30  # a preset, or None when `until` is given
    until: date | None = None
    allow_download: bool = False
    passcode: str = ""
    verify_email: bool = False
    max_opens: int | None = None
    max_downloads: int | None = None
    message: str = ""


@dataclass(frozen=True)
class CreatedShare:
    share: ShareLink
    token: str  # shown once, never stored
    emailed: bool  # the recipient's email (with its own link) is queued


def end_of_clinic_day(tenant_id: int, day: date) -> datetime:
    """The last second of `day` in the clinic's time, as naive UTC (how times are stored)."""
    return clinic_day_end(day, _zone(tenant_id)) - timedelta(seconds=1)


def _zone(tenant_id: int) -> str:
    return db.session.get(Tenant, tenant_id).timezone


def share_time(share: ShareLink, value: datetime | None) -> str:
    """A time of the share (its end, a pause, an access) in its clinic's zone, with the hour and zone."""
    return format_clinic_time(value, _zone(share.tenant_id), TIME_WITH_ZONE)


def share_time_span(share: ShareLink, start: datetime, end: datetime) -> str:
    """From `start` to `end` in the share's clinic zone: "02 Dec 2026, 09:15 – 09:40 CST", the day written
    again only when it changes."""
    zone = _zone(share.tenant_id)
    if to_clinic_time(start, zone).date() != to_clinic_time(end, zone).date():
        return f"{share_time(share, start)} – {share_time(share, end)}"
    if format_clinic_time(start, zone, "%H:%M") == format_clinic_time(end, zone, "%H:%M"):
        return share_time(share, start)
    begins = format_clinic_time(start, zone, "%d %b %Y, %H:%M")
    return f"{begins} – {format_clinic_time(end, zone, '%H:%M %Z')}"


def share_today(tenant_id: int) -> date:
    """Today in the clinic's zone: the day a share's end date is counted from (not the UTC date)."""
    return clinic_today(_zone(tenant_id))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def share_url(token: str) -> str:
    return f"{current_app.config['PUBLIC_URL']}/s/{token}"


# --- who may ---------------------------------------------------------------------------------------------


def _patient_for(actor: Actor, patient_id: int) -> Patient:
    """The patient whose shares the actor manages: patients their own, staff any of the clinic's."""
    for_anyone = can(actor, "share.manage_for_patient")
    if not (for_anyone or can(actor, "share.manage_own")):
        raise NotAllowed("share.manage_own", actor.role)
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise LookupError(patient_id)
    if not for_anyone:
        user = db.session.get(User, actor.user_id)
        if user is None or user.patient_id != patient.id:
            raise LookupError(patient_id)
    return patient


def get_share(actor: Actor, share_id: int) -> ShareLink:
    share = get_scoped(ShareLink, share_id, actor.tenant_id)
    if share is None:
        raise LookupError(share_id)
    _patient_for(actor, share.patient_id)
    return share


def list_shares(actor: Actor, patient_id: int) -> list[ShareLink]:
    patient = _patient_for(actor, patient_id)
    record_event(actor, "share.list", resource_type="patient", resource_id=patient.id, patient_id=patient.id)
    db.session.commit()
    return list(
        db.session.scalars(
            scoped(ShareLink, actor.tenant_id)
            .where(ShareLink.patient_id == patient.id)
            .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
        )
    )


# --- creating --------------------------------------------------------------------------------------------


def check_request(actor: Actor, patient_id: int, request: ShareRequest) -> list[ShareError]:
    """Everything wrong with a request to share, all at once (each with its field), for a form to show
    together; empty when `create_shares` would make the links."""
    return _problems(actor, _patient_for(actor, patient_id), request, utcnow())[1]


def _validate(actor: Actor, patient: Patient, request: ShareRequest, now: datetime) -> tuple[list, datetime]:
    (recipients, expires), problems = _problems(actor, patient, request, now)
    if problems:
        raise ShareErrors(problems)
    return recipients, expires


def _problems(
    actor: Actor, patient: Patient, request: ShareRequest, now: datetime
) -> tuple[tuple[list, datetime], list[ShareError]]:
    """The recipients (cleaned) and the end time of a request, with every problem found in it."""
    problems: list[ShareError] = []

    def problem(message: str, field: str) -> None:
        if not any(p.message == message and p.field == field for p in problems):
            problems.append(ShareError(message, field))

    recipients = []
    if not request.recipients:
        problem("Enter at least one recipient.", "recipients")
    if len(request.recipients) > MAX_RECIPIENTS:
        problem(f"At most {MAX_RECIPIENTS} recipients at once.", "recipients")
    for name, email in request.recipients[:MAX_RECIPIENTS]:
        name = (name or "").strip()
        if not name:
            problem("Enter each recipient's name.", "recipients")
        try:
            email = validate_email((email or "").strip(), check_deliverability=False).normalized
        except EmailNotValidError:
            problem(f"{email or 'An email'} is not an email address.", "recipients")
            continue
        recipients.append((name[:200], email))
    if request.scope not in (SCOPE_ALL, SCOPE_TYPES, SCOPE_RECORDS):
        problem("Choose what to share.", "scope")
    if request.scope == SCOPE_TYPES and (
        not request.scope_types or any(t not in RECORD_TYPES for t in request.scope_types)
    ):
        problem("Choose at least one kind of record.", "scope_types")
    if request.scope == SCOPE_RECORDS:
        ids = {int(i) for i in request.scope_record_ids}
        found = set(
            db.session.scalars(
                scoped(MedicalRecord, actor.tenant_id)
                .with_only_columns(MedicalRecord.id)
                .where(
                    MedicalRecord.patient_id == patient.id,
                    MedicalRecord.status == FINALIZED,
                    MedicalRecord.id.in_(ids),
                )
            )
        )
        if not ids or found != ids:
            problem("Choose one or more of the patient's finalized records.", "scope_record_ids")
    expires = now
    if request.until is not None:
        expires = end_of_clinic_day(actor.tenant_id, request.until)
        today = share_today(actor.tenant_id)
        if request.until <= today:
            problem("Choose a date after today.", "until")
        elif request.until > today + timedelta(days=MAX_DAYS):
            problem(f"A link can last at most {MAX_DAYS} days.", "until")
    elif request.days not in DURATION_PRESETS:
        problem("Choose how long the link works.", "days")
    else:
        expires = now + timedelta(days=request.days)
    if request.passcode and not (PASSCODE_MIN_CHARS <= len(request.passcode) <= PASSCODE_MAX_CHARS):
        problem(f"A passcode has at least {PASSCODE_MIN_CHARS} characters.", "passcode")
    if request.passcode and request.passcode.strip() != request.passcode:
        problem("A passcode cannot start or end with a space.", "passcode")
    for name in ("max_opens", "max_downloads"):
        value = getattr(request, name)
        if value is not None and not 1 <= value <= 1000:
            problem("A limit is between 1 and 1,000.", name)
    if len(request.message or "") > MAX_MESSAGE_CHARS:
        problem(f"The message is longer than {MAX_MESSAGE_CHARS} characters.", "message")
    return (recipients, expires), problems


def create_shares(actor: Actor, patient_id: int, request: ShareRequest) -> list[CreatedShare]:
    """One share per recipient, each with its own token, limits and log, and each recipient's email queued
    (the `email_share` job makes the emailed link). Nothing is created when any input is refused."""
    patient = _patient_for(actor, patient_id)
    now = utcnow()
    recipients, expires = _validate(actor, patient, request, now)
    passcode_hash = hash_password(request.passcode) if request.passcode else None
    created = []
    for name, email in recipients:
        token = new_token()
        share = ShareLink(
            tenant_id=actor.tenant_id,
            patient_id=patient.id,
            created_by_id=actor.user_id,
            created_by_staff=actor.role != PATIENT,
            recipient_name=name,
            recipient_email=email,
            message=(request.message or "").strip() or None,
            scope=request.scope,
            scope_types=sorted(set(request.scope_types)) if request.scope == SCOPE_TYPES else None,
            scope_record_ids=sorted({int(i) for i in request.scope_record_ids})
            if request.scope == SCOPE_RECORDS
            else None,
            allow_download=request.allow_download,
            passcode_hash=passcode_hash,
            verify_email=request.verify_email,
            max_opens=request.max_opens,
            max_downloads=request.max_downloads,
            expires_at=expires,
        )
        db.session.add(share)
        db.session.flush()
        db.session.add(ShareToken(tenant_id=actor.tenant_id, share_id=share.id, token_hash=token_hash(token)))
        record_event(
            actor, "share.create", resource_type="share", resource_id=share.id, patient_id=patient.id
        )
        created.append((share, token))
    db.session.commit()
    return [CreatedShare(share, token, _queue_share_email(share, actor.user_id)) for share, token in created]


def _queue_share_email(share: ShareLink, user_id: int | None) -> bool:
    """Queue the recipient's email (its own fresh token). False when the queue cannot take it now: the
    share stands, and "Send again" can mail it later."""
    try:
        enqueue(
            "sharing.email_share", share.id, tenant_id=share.tenant_id, user_id=user_id,
            label="Share link email",
        )  # fmt: skip
    except RedisError:
        return False
    return True


def new_email_token(share_id: int, tenant_id: int) -> tuple[ShareLink, str] | None:
    """For the email job: a fresh token for the share's email (earlier emailed tokens stop working)."""
    share = get_scoped(ShareLink, share_id, tenant_id)
    if share is None or share.revoked_at or share.expires_at <= utcnow():
        return None
    db.session.execute(
        ShareToken.__table__.delete().where(ShareToken.share_id == share.id, ShareToken.emailed.is_(True))
    )
    token = new_token()
    db.session.add(
        ShareToken(tenant_id=share.tenant_id, share_id=share.id, token_hash=token_hash(token), emailed=True)
    )
    db.session.commit()
    return share, token


# --- managing --------------------------------------------------------------------------------------------


def revoke(actor: Actor, share_id: int) -> ShareLink:
    share = get_share(actor, share_id)
    if share.revoked_at is None:
        share.revoked_at = utcnow()
        db.session.execute(ShareVisit.__table__.delete().where(ShareVisit.share_id == share.id))
        record_event(
            actor, "share.revoke", resource_type="share", resource_id=share.id, patient_id=share.patient_id
        )
    db.session.commit()
    return share


def extend(actor: Actor, share_id: int, until: date) -> ShareLink:
    share = get_share(actor, share_id)
    now = utcnow()
    if share.revoked_at:
        raise ShareError("A revoked link cannot be extended; share again instead.", "until")
    if share.expires_at <= now:
        # Its tokens are deleted when it expires (the sweep), so no date would make it open again.
        raise ShareError("This link has expired and can no longer open; share again instead.", "until")
    created_day = to_clinic_time(share.created_at, _zone(share.tenant_id)).date()
    if until <= share_today(share.tenant_id) or until > created_day + timedelta(days=MAX_DAYS):
        raise ShareError(f"Choose a date after today and within {MAX_DAYS} days of sharing.", "until")
    share.expires_at = end_of_clinic_day(share.tenant_id, until)
    share.expired_marked_at = None  # the sweep marks it again when the new date passes
    record_event(
        actor, "share.extend", resource_type="share", resource_id=share.id, patient_id=share.patient_id,
        changed_fields=["expires_at"],
    )  # fmt: skip
    db.session.commit()
    return share


def change_passcode(actor: Actor, share_id: int, passcode: str) -> ShareLink:
    """A new passcode (or none) for the same link; a pause ends."""
    share = get_share(actor, share_id)
    if passcode and not (PASSCODE_MIN_CHARS <= len(passcode) <= PASSCODE_MAX_CHARS):
        raise ShareError(f"A passcode has at least {PASSCODE_MIN_CHARS} characters.", "passcode")
    share.passcode_hash = hash_password(passcode) if passcode else None
    share.failed_passcodes, share.paused_until = 0, None
    record_event(
        actor, "share.passcode", resource_type="share", resource_id=share.id, patient_id=share.patient_id,
        changed_fields=["passcode"],
    )  # fmt: skip
    db.session.commit()
    return share


def send_again(actor: Actor, share_id: int) -> ShareLink:
    """Mail the recipient a fresh link (the `email_share` job makes its token); the link emailed before
    stops working. The link shown at creation keeps working."""
    share = get_share(actor, share_id)
    if share.revoked_at or share.expires_at <= utcnow():
        raise ShareError("This link no longer works; extend it or share again instead.", "send")
    record_event(
        actor, "share.resend", resource_type="share", resource_id=share.id, patient_id=share.patient_id
    )
    db.session.commit()
    if not _queue_share_email(share, actor.user_id):
        raise ShareError("The email cannot be sent just now. Try again in a few minutes.", "send")
    return share


@dataclass
class AccessVisit:
    """One browser's visit in a share's access log: its events in the order they happened."""

    ip: str | None
    user_agent: str | None
    events: list[ShareEvent]

    @property
    def started_at(self) -> datetime:
        return self.events[0].occurred_at

    @property
    def ended_at(self) -> datetime:
        return self.events[-1].occurred_at

    @property
    def opened(self) -> bool:
        return any(event.kind == EVENT_OPEN for event in self.events)

    @property
    def lines(self) -> list[tuple[ShareEvent, int]]:
        """The events with runs of the same thing (five views of one tab) as one line and its count."""
        merged: list[tuple[ShareEvent, int]] = []
        for event in self.events:
            if merged and (merged[-1][0].kind, merged[-1][0].detail) == (event.kind, event.detail):
                merged[-1] = (merged[-1][0], merged[-1][1] + 1)
            else:
                merged.append((event, 1))
        return merged


def access_visits(share: ShareLink) -> list[AccessVisit]:
    """The share's access log by visit, newest visit first. A visit is one browser (the same IP address
    and User-Agent) until it has been quiet for VISIT_LIFETIME, as long as its visit cookie lasts; the
    log keeps no cookie, so this is how the patient's "who looked, when" reads."""
    visits: list[AccessVisit] = []
    current: dict[tuple[str | None, str | None], AccessVisit] = {}
    for event in sorted(share.events, key=lambda e: (e.occurred_at, e.id)):
        key = (event.ip, event.user_agent)
        visit = current.get(key)
        if visit is None or event.occurred_at - visit.ended_at > VISIT_LIFETIME:
            visit = AccessVisit(event.ip, event.user_agent, [])
            visits.append(visit)
            current[key] = visit
        visit.events.append(event)
    return sorted(visits, key=lambda visit: visit.started_at, reverse=True)


def access_log(actor: Actor, share_id: int) -> tuple[ShareLink, list[AccessVisit]]:
    """The share with its access log by visit (`access_visits`), audited as a read."""
    share = get_share(actor, share_id)
    record_event(actor, "share.log", resource_type="share", resource_id=share.id, patient_id=share.patient_id)
    db.session.commit()
    return share, access_visits(share)


def shareable_records(actor: Actor, patient_id: int) -> list[MedicalRecord]:
    """The patient's finalized records, newest visit first: what a share by records can choose from."""
    patient = _patient_for(actor, patient_id)
    record_event(actor, "record.list", resource_type="record", patient_id=patient.id)
    db.session.commit()
    return list(
        db.session.scalars(
            scoped(MedicalRecord, actor.tenant_id)
            .where(MedicalRecord.patient_id == patient.id, MedicalRecord.status == FINALIZED)
            .options(selectinload(MedicalRecord.diagnoses))
            .order_by(MedicalRecord.visit_at.desc(), MedicalRecord.id.desc())
        )
    )


# --- the provider's side ---------------------------------------------------------------------------------


def resolve(token: str, *, allow_used_up: bool = False) -> ShareLink | None:
    """The share a token opens, or None (unknown, expired, revoked or used up all look the same).

    `allow_used_up` is for the browsers a share already admitted: a link whose opens are all used keeps
    serving them (the caller checks the visit), it only admits no one new."""
    if not token or len(token) > 100:
        return None
    share = db.session.scalar(
        select(ShareLink)
        .join(ShareToken, ShareToken.share_id == ShareLink.id)
        .where(ShareToken.token_hash == token_hash(token))
        .execution_options(**ALL_TENANTS)  # the provider's secret token finds its clinic
    )
    if share is None:
        return None
    now = utcnow()
    if share.revoked_at or share.expires_at <= now:
        return None
    if not allow_used_up and share.max_opens is not None and share.opens >= share.max_opens:
        return None
    return share


def log(
    share: ShareLink,
    kind: str,
    *,
    ip: str | None,
    user_agent: str | None,
    detail: str | None = None,
    request_id: str | None = None,
):
    """Add to the share's access log and the audit log (in the caller's transaction)."""
    db.session.add(
        ShareEvent(
            tenant_id=share.tenant_id, share_id=share.id, kind=kind, detail=(detail or None) and detail[:300],
            ip=ip, user_agent=(user_agent or "")[:300] or None,
        )
    )  # fmt: skip
    record_event(
        _provider(share, ip, user_agent, request_id),
        f"share.{kind}",
        resource_type="share",
        resource_id=share.id,
        patient_id=share.patient_id,
        outcome="failure" if kind in (EVENT_PASSCODE_FAILED, EVENT_CODE_FAILED) else "success",
    )


def _provider(share: ShareLink, ip: str | None, user_agent: str | None, request_id: str | None) -> Actor:
    """The audit actor of an outside provider on a link."""
    return Actor(
        tenant_id=share.tenant_id,
        role="provider",
        share_link_id=share.id,
        ip=ip,
        user_agent=user_agent,
        request_id=request_id,
    )


def log_view(
    share: ShareLink, what: str, *, ip: str | None, user_agent: str | None, request_id: str | None = None
) -> None:
    """An admitted provider looked at part of the share (a tab, a file, the print view)."""
    db.session.execute(update(ShareLink).where(ShareLink.id == share.id).values(last_access_at=utcnow()))
    log(share, EVENT_VIEW, ip=ip, user_agent=user_agent, request_id=request_id, detail=what)
    db.session.commit()


def audit_file_preview(
    share: ShareLink, *, ip: str | None, user_agent: str | None, request_id: str | None = None
) -> None:
    """A watermarked page image of a shared file was sent: audited (committed), though not added to the
    link's access log, which lists the file's page once, not each of its images."""
    record_event(
        _provider(share, ip, user_agent, request_id),
        "share.file_preview",
        resource_type="share",
        resource_id=share.id,
        patient_id=share.patient_id,
    )
    db.session.commit()


def start_visit(share: ShareLink) -> tuple[ShareVisit, str]:
    """A provider's browser starts through the checks; returns the visit and its cookie value."""
    cookie = secrets.token_urlsafe(32)
    visit = ShareVisit(
        tenant_id=share.tenant_id,
        share_id=share.id,
        cookie_hash=token_hash(cookie),
        passcode_ok=share.passcode_hash is None,
        email_ok=not share.verify_email,
        expires_at=utcnow() + VISIT_LIFETIME,
    )
    db.session.add(visit)
    db.session.commit()
    return visit, cookie


def find_visit(share: ShareLink, cookie: str | None) -> ShareVisit | None:
    if not cookie:
        return None
    visit = db.session.scalar(
        scoped(ShareVisit, share.tenant_id).where(ShareVisit.cookie_hash == token_hash(cookie))
    )
    if visit is None or visit.share_id != share.id or visit.expires_at <= utcnow():
        return None
    return visit


def is_paused(share: ShareLink) -> bool:
    return bool(share.paused_until and share.paused_until > utcnow())


@dataclass(frozen=True)
class PasscodeCheck:
    """The answer to one passcode try: right or not, the tries left before the link pauses, and until when
    it is paused (naive UTC) when it is. Truthy when the passcode was right."""

    ok: bool
    tries_left: int
    paused_until: datetime | None = None

    def __bool__(self) -> bool:
        return self.ok


def _claim_passcode_try(share_id: int, now: datetime) -> int | None:
    """Take one passcode try before the (slow) hash is checked: the number of this try in the current run
    of wrong ones, or None when the link is paused.

    One guarded UPDATE, so parallel requests can never take more than PAUSE_AFTER_FAILURES tries per pause:
    the try that reaches the limit pauses the link in the same statement (before its own hash is checked),
    and the first try after a pause has ended starts the count again.
    """
    after_pause = ShareLink.paused_until.is_not(None)
    number = case((after_pause, 1), else_=ShareLink.failed_passcodes + 1)
    return db.session.execute(
        update(ShareLink)
        .where(
            ShareLink.id == share_id,
            or_(ShareLink.paused_until.is_(None), ShareLink.paused_until <= now),
            or_(after_pause, ShareLink.failed_passcodes < PAUSE_AFTER_FAILURES),
        )
        .values(
            failed_passcodes=number,
            paused_until=case((number >= PAUSE_AFTER_FAILURES, now + PAUSE_FOR), else_=None),
        )
        .returning(ShareLink.failed_passcodes)
        .execution_options(synchronize_session=False)
    ).scalar()


def check_passcode(
    share: ShareLink, visit: ShareVisit, passcode: str, *, ip, user_agent, request_id: str | None = None
) -> PasscodeCheck:
    """Check one passcode try; at most PAUSE_AFTER_FAILURES tries are checked per pause, however many
    arrive at once. The tenth wrong one in a row pauses the link for PAUSE_FOR and tells the patient."""
    now = utcnow()
    number = _claim_passcode_try(share.id, now)
    db.session.commit()  # the try is taken before the hash is checked, whatever happens next
    if number is None:
        db.session.refresh(share)
        return PasscodeCheck(False, 0, share.paused_until)
    if share.passcode_hash and verify_password(share.passcode_hash, passcode or ""):
        db.session.execute(
            update(ShareLink).where(ShareLink.id == share.id).values(failed_passcodes=0, paused_until=None)
        )
        visit.passcode_ok = True
        log(share, EVENT_PASSCODE_OK, ip=ip, user_agent=user_agent, request_id=request_id)
        db.session.commit()
        return PasscodeCheck(True, PAUSE_AFTER_FAILURES)
    log(
        share,
        EVENT_PASSCODE_FAILED,
        ip=ip,
        user_agent=user_agent,
        request_id=request_id,
        detail=f"{number} in a row",
    )
    if number < PAUSE_AFTER_FAILURES:
        db.session.commit()
        return PasscodeCheck(False, PAUSE_AFTER_FAILURES - number)
    log(share, EVENT_PAUSED, ip=ip, user_agent=user_agent, request_id=request_id)
    notify = _notify_patient(
        share,
        f"The link you shared with {share.recipient_name} was paused for 15 minutes after "
        f"{PAUSE_AFTER_FAILURES} wrong passcodes in a row. "
        "Change its passcode if you did not expect this.",
    )
    db.session.commit()
    if notify:
        _email_patient(share, "paused")
    return PasscodeCheck(False, 0, now + PAUSE_FOR)


def _code_digest(share: ShareLink, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{share.id}:{code}".encode(), hashlib.sha256).hexdigest()


def issue_code(share: ShareLink, *, ip, user_agent, request_id: str | None = None) -> str | None:
    """A new one-time code for the recipient's email (the job sends it), or None when too many were asked
    for in the last hour."""
    now = utcnow()
    recent = db.session.scalar(
        select(db.func.count())
        .select_from(ShareCode)
        .where(
            ShareCode.tenant_id == share.tenant_id,
            ShareCode.share_id == share.id,
            ShareCode.created_at > now - timedelta(hours=1),
        )
    )
    if recent >= CODES_PER_HOUR:
        return None
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    db.session.add(
        ShareCode(
            tenant_id=share.tenant_id, share_id=share.id, code_hash=_code_digest(share, code),
            expires_at=now + CODE_LIFETIME,
        )
    )  # fmt: skip
    log(
        share,
        EVENT_CODE_SENT,
        ip=ip,
        user_agent=user_agent,
        request_id=request_id,
        detail=_masked(share.recipient_email),
    )
    db.session.commit()
    return code


def send_code(share: ShareLink, *, ip: str | None, user_agent: str | None) -> None:
    """Queue the email with a one-time code to the address the patient entered (the job makes the code and
    counts it against CODES_PER_HOUR)."""
    enqueue(
        "sharing.email_code", share.id, ip or "", (user_agent or "")[:300], tenant_id=share.tenant_id,
        label="Share code email",
    )  # fmt: skip


def _masked(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}…@{domain}"


def verify_code(
    share: ShareLink, visit: ShareVisit, code: str, *, ip, user_agent, request_id: str | None = None
) -> bool:
    """The latest unused, unexpired code; each code allows CODE_MAX_ATTEMPTS tries and works once."""
    now = utcnow()
    latest = db.session.scalar(
        scoped(ShareCode, share.tenant_id)
        .where(ShareCode.share_id == share.id, ShareCode.used_at.is_(None), ShareCode.expires_at > now)
        .order_by(ShareCode.id.desc())
        .limit(1)
    )
    code = (code or "").strip().replace(" ", "")
    if latest is None or latest.attempts >= CODE_MAX_ATTEMPTS:
        log(
            share,
            EVENT_CODE_FAILED,
            ip=ip,
            user_agent=user_agent,
            request_id=request_id,
            detail="no valid code",
        )
        db.session.commit()
        return False
    # The attempt is counted first, in one statement, so parallel guesses cannot share one attempt.
    attempts = db.session.execute(
        update(ShareCode)
        .where(ShareCode.id == latest.id, ShareCode.used_at.is_(None))
        .values(attempts=ShareCode.attempts + 1)
        .returning(ShareCode.attempts)
    ).scalar_one_or_none()
    if (
        attempts is None
        or attempts > CODE_MAX_ATTEMPTS
        or not hmac.compare_digest(_code_digest(share, code), latest.code_hash)
    ):
        log(share, EVENT_CODE_FAILED, ip=ip, user_agent=user_agent, request_id=request_id)
        db.session.commit()
        return False
    used = db.session.execute(
        update(ShareCode).where(ShareCode.id == latest.id, ShareCode.used_at.is_(None)).values(used_at=now)
    ).rowcount
    if not used:
        db.session.commit()
        return False
    visit.email_ok = True
    log(share, EVENT_CODE_VERIFIED, ip=ip, user_agent=user_agent, request_id=request_id)
    db.session.commit()
    return True


def admit(share: ShareLink, visit: ShareVisit, *, ip, user_agent, request_id: str | None = None) -> bool:
    """Once a visit has passed every check, count it as one open (at most `max_opens` in all, however many
    arrive at once). True when the visit may see the share."""
    if not (visit.passcode_ok and visit.email_ok):
        return False
    if visit.opened:
        return True
    now = utcnow()
    limit_ok = ShareLink.opens < ShareLink.max_opens
    counted = db.session.execute(
        update(ShareLink)
        .where(ShareLink.id == share.id, (ShareLink.max_opens.is_(None)) | limit_ok)
        .values(opens=ShareLink.opens + 1, last_access_at=now)
    ).rowcount
    if not counted:
        db.session.rollback()
        return False
    first = db.session.execute(
        update(ShareLink)
        .where(ShareLink.id == share.id, ShareLink.first_opened_at.is_(None))
        .values(first_opened_at=now)
    ).rowcount
    visit.opened = True
    log(share, EVENT_OPEN, ip=ip, user_agent=user_agent, request_id=request_id)
    notify = first and _notify_patient(share, f"{share.recipient_name} opened the records you shared.")
    db.session.commit()
    if notify:
        _email_patient(share, "opened")
    return True


def count_download(
    share: ShareLink, kind: str, *, ip, user_agent, detail: str | None = None, request_id: str | None = None
) -> bool:
    """Count one download or export against `max_downloads` (one guarded UPDATE). False when not allowed."""
    if not share.allow_download:
        return False
    counted = db.session.execute(
        update(ShareLink)
        .where(
            ShareLink.id == share.id,
            (ShareLink.max_downloads.is_(None)) | (ShareLink.downloads < ShareLink.max_downloads),
        )
        .values(downloads=ShareLink.downloads + 1, last_access_at=utcnow())
    ).rowcount
    if not counted:
        db.session.rollback()
        return False
    log(share, kind, ip=ip, user_agent=user_agent, request_id=request_id, detail=detail)
    db.session.commit()
    return True


def sweep_expired() -> int:
    """Mark links that have expired since the last sweep and delete what could still open them (tokens,
    provider visits, codes). The shares and their access logs stay for the patient's history."""
    now = utcnow()
    expired = list(
        db.session.scalars(
            select(ShareLink)
            .where(ShareLink.expires_at <= now, ShareLink.expired_marked_at.is_(None))
            .execution_options(**ALL_TENANTS)  # a periodic sweep of every clinic
        )
    )
    for share in expired:
        share.expired_marked_at = now
        for model in (ShareToken, ShareVisit, ShareCode):
            db.session.execute(model.__table__.delete().where(model.share_id == share.id))
        record_event(
            Actor.system(share.tenant_id), "share.expire", resource_type="share", resource_id=share.id,
            patient_id=share.patient_id,
        )  # fmt: skip
    db.session.commit()
    return len(expired)


def _notify_patient(share: ShareLink, text: str) -> bool:
    """An in-app notice for the patient's portal account (in the caller's transaction). True when the
    patient has an account (and should get the email too)."""
    patient = get_scoped(Patient, share.patient_id, share.tenant_id)
    user = patient.portal_user if patient else None
    if user is None:
        return False
    db.session.add(Notification(tenant_id=share.tenant_id, user_id=user.id, text=text[:500]))
    return True


def _email_patient(share: ShareLink, kind: str) -> None:

    enqueue("sharing.email_patient", share.id, kind, tenant_id=share.tenant_id, label="Share notice")
