"""Self-registration with a clinic-issued code.

Staff issue a short code on paper (only its SHA-256 is stored). The patient types it with their date of
birth and email on /register; a right answer emails a single-use link (bound to the code and the email)
that opens "choose your password". Completing it claims the code with a guarded UPDATE, so one code makes
at most one account even when several requests race.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import DateTime, ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..audit.services import FAILURE, Actor, record_event
from ..clock import utcnow
from ..extensions import db
from ..jobs.queue import enqueue
from ..patients.models import Patient
from ..portal import events
from ..tenancy import TenantScoped, get_scoped, scoped
from ..tenant_scope import ALL_TENANTS
from .models import PATIENT, User
from .secrets import hash_password, new_token, password_problem, token_digest
from .services import AccountError, find_user_by_email, normalise_email

CODE_DAYS = 14  # how long a registration code works
VERIFY_HOURS = 24  # how long the emailed "choose your password" link works
# Crockford base32: no I, L, O or U, so nothing reads as 1, 0 or another letter.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
# One answer for a wrong, expired, used or revoked code and a wrong date of birth: it tells nothing.
REFUSED = "We could not match that code and date of birth. Check them, or ask your clinic for a new code."
ALREADY_USED = "This code was already used. Sign in, or ask your clinic for a new code."


class RegistrationCode(TenantScoped, db.Model):
    __tablename__ = "registration_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The emailed link: its SHA-256, the email it was sent to, and until when it works.
    verify_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    verify_email: Mapped[str | None] = mapped_column(String(254))
    verify_expires_at: Mapped[datetime | None] = mapped_column(DateTime)

    patient: Mapped[Patient] = relationship()

    @property
    def is_open(self) -> bool:
        return self.used_at is None and self.revoked_at is None and self.expires_at > utcnow()


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str:
    """Upper case, no spaces or dashes; the letters people mix up read as the digits they look like."""
    cleaned = "".join(ch for ch in (raw or "").upper() if ch not in " -\t")
    return cleaned.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))


def format_code(code: str) -> str:
    return f"{code[:4]}-{code[4:8]}-{code[8:]}"


def code_digest(raw: str) -> str:
    return hashlib.sha256(normalise_code(raw).encode()).hexdigest()


@dataclass(frozen=True)
class IssuedCode:
    row: RegistrationCode
    code: str  # shown once, formatted XXXX-XXXX-XX

    @property
    def register_url(self) -> str:
        return f"{current_app.config['PUBLIC_URL']}/register"


def open_code(tenant_id: int, patient_id: int) -> RegistrationCode | None:
    return db.session.scalar(
        scoped(RegistrationCode, tenant_id)
        .where(
            RegistrationCode.patient_id == patient_id,
            RegistrationCode.used_at.is_(None),
            RegistrationCode.revoked_at.is_(None),
            RegistrationCode.expires_at > utcnow(),
        )
        .order_by(RegistrationCode.id.desc())
    )


def _patient(actor: Actor, patient_id: int) -> Patient:
    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise LookupError(patient_id)
    return patient


def _revoke_unused(tenant_id: int, patient_id: int, now: datetime) -> list[int]:
    rows = list(
        db.session.scalars(
            scoped(RegistrationCode, tenant_id).where(
                RegistrationCode.patient_id == patient_id,
                RegistrationCode.used_at.is_(None),
                RegistrationCode.revoked_at.is_(None),
            )
        )
    )
    for row in rows:
        row.revoked_at = now
    return [row.id for row in rows]


def issue_code(actor: Actor, patient_id: int, *, days: int = CODE_DAYS) -> IssuedCode:
    """Issue a code for a patient without a portal account; an earlier unused code stops working."""
    patient = _patient(actor, patient_id)
    user = patient.portal_user
    if user is not None and user.has_password:
        raise AccountError("This patient already has a portal account, so they do not need a code.")
    now = utcnow()
    for old_id in _revoke_unused(patient.tenant_id, patient.id, now):
        record_event(
            actor,
            "patient.registration_code_revoked",
            resource_type="registration_code",
            resource_id=old_id,
            patient_id=patient.id,
        )
    raw = new_code()
    row = RegistrationCode(
        tenant_id=patient.tenant_id,
        patient_id=patient.id,
        code_hash=code_digest(raw),
        created_by=actor.user_id,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.session.add(row)
    db.session.flush()
    record_event(
        actor,
        "patient.registration_code_issued",
        resource_type="registration_code",
        resource_id=row.id,
        patient_id=patient.id,
    )
    db.session.commit()
    return IssuedCode(row, format_code(raw))


def revoke_code(actor: Actor, patient_id: int) -> int:
    """Revoke the patient's unused codes; return how many."""
    patient = _patient(actor, patient_id)
    ids = _revoke_unused(patient.tenant_id, patient.id, utcnow())
    for row_id in ids:
        record_event(
            actor,
            "patient.registration_code_revoked",
            resource_type="registration_code",
            resource_id=row_id,
            patient_id=patient.id,
        )
    db.session.commit()
    return len(ids)


# --- the patient's side ------------------------------------------------------------------------------


def _failed_attempt(actor: Actor, row: RegistrationCode | None) -> None:
    record_event(
        Actor(
            tenant_id=row.tenant_id if row else None,
            ip=actor.ip,
            user_agent=actor.user_agent,
            request_id=actor.request_id,
        ),
        "patient.registration_failed",
        resource_type="registration_code",
        resource_id=row.id if row else None,
        patient_id=row.patient_id if row else None,
        outcome=FAILURE,
    )
    db.session.commit()


def start_registration(code: str, date_of_birth: date | None, email: str, actor: Actor) -> None:
    """Check the code and date of birth; if right, queue the email with the "choose your password" link.

    Anything wrong raises AccountError(REFUSED) (audited), or, for a taken email, a clear message."""
    cleaned = normalise_code(code)
    row = None
    if 6 <= len(cleaned) <= 20:
        row = db.session.scalar(
            select(RegistrationCode)
            .where(RegistrationCode.code_hash == code_digest(cleaned))
            .execution_options(**ALL_TENANTS)  # the secret code finds its clinic
        )
    if row is None or not row.is_open or date_of_birth is None or row.patient.date_of_birth != date_of_birth:
        _failed_attempt(actor, row)
        raise AccountError(REFUSED)
    email = normalise_email(email)
    owner = find_user_by_email(email)
    if owner is not None and owner.patient_id != row.patient_id:
        raise AccountError(
            "Someone already has an account with this email. Sign in, or use another email.", "email"
        )
    record_event(
        Actor(tenant_id=row.tenant_id, ip=actor.ip, user_agent=actor.user_agent, request_id=actor.request_id),
        "patient.registration_started",
        resource_type="registration_code",
        resource_id=row.id,
        patient_id=row.patient_id,
    )
    db.session.commit()
    enqueue("accounts.email_registration", row.id, email, tenant_id=row.tenant_id, label="Registration email")


def prepare_registration_link(
    code_id: int, email: str, tenant_id: int
) -> tuple[RegistrationCode, str] | None:
    """In the job: bind a fresh single-use link to the code and this email (an older link stops working)."""
    row = get_scoped(RegistrationCode, code_id, tenant_id)
    if row is None or not row.is_open:
        return None
    raw = new_token()
    row.verify_token_hash = token_digest(raw)
    row.verify_email = normalise_email(email)
    row.verify_expires_at = utcnow() + timedelta(hours=VERIFY_HOURS)
    db.session.commit()
    return row, f"{current_app.config['PUBLIC_URL']}/register/{raw}"


def find_registration(token: str) -> RegistrationCode | None:
    if not token or len(token) > 100:
        return None
    row = db.session.scalar(
        select(RegistrationCode)
        .where(RegistrationCode.verify_token_hash == token_digest(token))
        .execution_options(**ALL_TENANTS)  # the secret link finds its clinic
    )
    if row is None or not row.is_open or row.verify_expires_at is None or row.verify_expires_at < utcnow():
        return None
    return row


def complete_registration(token: str, password: str, actor: Actor) -> User:
    """Create the patient's portal account with `password`, claiming the code exactly once."""
    row = find_registration(token)
    if row is None:
        raise AccountError("This link has expired or has already been used. Register again with your code.")
    patient = row.patient
    email = row.verify_email
    problem = password_problem(password, email, patient.full_name)
    if problem:
        raise AccountError(problem, "password")
    password_hash = hash_password(password)
    now = utcnow()
    claimed = db.session.execute(
        update(RegistrationCode)
        .where(
            RegistrationCode.id == row.id,
            RegistrationCode.used_at.is_(None),
            RegistrationCode.revoked_at.is_(None),
            RegistrationCode.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False, **ALL_TENANTS)
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        raise AccountError(ALREADY_USED)
    user = patient.portal_user
    owner = find_user_by_email(email)
    if (user is not None and user.has_password) or (owner is not None and owner is not user):
        db.session.rollback()
        raise AccountError("Someone already has an account with this email. Sign in instead.")
    if user is None:
        user = User(
            tenant_id=patient.tenant_id,
            email=email,
            full_name=patient.full_name,
            role=PATIENT,
            patient_id=patient.id,
        )
        db.session.add(user)
    else:  # invited earlier but never set a password: this account, with this email
        user.email = email
    user.password_hash = password_hash
    user.password_changed_at = now
    db.session.flush()
    who = Actor(
        tenant_id=user.tenant_id,
        user_id=user.id,
        role=user.role,
        ip=actor.ip,
        user_agent=actor.user_agent,
        request_id=actor.request_id,
    )
    record_event(
        who,
        "patient.registered",
        resource_type="user",
        resource_id=user.id,
        patient_id=patient.id,
        changed_fields=["email", "password"],
    )
    events.raise_event(who, "account.registered", patient_id=patient.id, subject=("user", user.id))
    events.commit()
    return user


def ensure_demo_code(tenant_id: int, code: str) -> RegistrationCode | None:
    """`flask demo` only: keep `code` (a known value) open for the first patient of the clinic without a
    portal account. A run reopens it when it has expired or was revoked; once someone registered with it,
    it stays used and None comes back. Does not commit (the demo commits once)."""
    digest = code_digest(code)
    row = db.session.scalar(select(RegistrationCode).where(RegistrationCode.code_hash == digest))
    now = utcnow()
    if row is not None:
        if row.used_at is not None:
            return None
        if not row.is_open:  # expired or revoked since: open again (an open one is left as it is)
            row.revoked_at = None
            row.expires_at = now + timedelta(days=CODE_DAYS)
        return row
    with_account = select(User.patient_id).where(User.tenant_id == tenant_id, User.patient_id.is_not(None))
    patient = db.session.scalar(
        scoped(Patient, tenant_id).where(Patient.id.not_in(with_account)).order_by(Patient.id)
    )
    if patient is None:
        return None
    row = RegistrationCode(
        tenant_id=tenant_id,
        patient_id=patient.id,
        code_hash=digest,
        created_at=now,
        expires_at=now + timedelta(days=CODE_DAYS),
    )
    db.session.add(row)
    db.session.flush()
    record_event(
        Actor.system(tenant_id),
        "patient.registration_code_issued",
        resource_type="registration_code",
        resource_id=row.id,
        patient_id=patient.id,
    )
    return row
