"""Clinics, their people, and the secrets that let them in (stored only as hashes)."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import permissions
from ..clock import utcnow
from ..extensions import db
from ..records.units import default_unit_system
from ..tenancy import TenantScoped
from ..useragent import describe_user_agent

# The role names live in roles.py (so `permissions` can use them); they are imported from here too.
from .roles import (  # noqa: F401
    ADMIN,
    ALL_ROLES,
    COACH,
    DOCTOR,
    FRONT_DESK,
    NURSE,
    PATIENT,
    ROLE_LABELS,
    STAFF_ROLES,
)

# How old a liver score's input (a lab, an assessment) may be before the score says so; per clinic.
SCORE_INPUT_MAX_AGE_DAYS = 90
RESULT_HOLD_MAX_DAYS = 30  # a clinic's default longest hold of one result, in days


def _unit_system_for_new_clinic(context) -> str:
    return default_unit_system(context.get_current_parameters().get("timezone"))


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    mfa_required_for_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bytes of attachments the clinic may store; None means the TENANT_STORAGE_QUOTA_BYTES default.
    storage_quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Clinical settings (records/clinic_settings.py): vitals typed and shown in "metric" or "us" units
    # (stored in SI whatever this says), and the age in days past which a score calls its input old.
    unit_system: Mapped[str] = mapped_column(
        String(10), default=_unit_system_for_new_clinic, server_default="metric"
    )
    score_input_max_age_days: Mapped[int] = mapped_column(
        Integer, default=SCORE_INPUT_MAX_AGE_DAYS, server_default=str(SCORE_INPUT_MAX_AGE_DAYS)
    )
    # The longest a clinician may hold one result back from the patient (records/result_holds.py).
    result_hold_max_days: Mapped[int] = mapped_column(
        Integer, default=RESULT_HOLD_MAX_DAYS, server_default=str(RESULT_HOLD_MAX_DAYS)
    )
    # How patients reach the clinic: shown in every portal page's footer (portal/clinic.py).
    phone: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(String(300))
    # Opening hours in the clinic's zone: {"0": [["08:00", "17:00"]], …}, Monday = "0"; no day: closed.
    hours: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class User(UserMixin, TenantScoped, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Emails are unique across clinics so that login needs nothing but the email.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # use_alter: users and patients refer to each other (portal account, assigned coach).
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", use_alter=True), unique=True)
    totp_secret_encrypted: Mapped[str | None] = mapped_column(String(255))
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The last 30-second TOTP step accepted: that code and older ones cannot be used again.
    mfa_last_timestep: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The notification kinds this person also gets by email (None: the defaults, see portal/notifications).
    notify_email_kinds: Mapped[list | None] = mapped_column(JSON)

    tenant: Mapped[Tenant] = relationship(lazy="joined")
    patient = relationship("Patient", foreign_keys=[patient_id], back_populates="portal_user")

    @property
    def is_active(self) -> bool:  # Flask-Login reads this
        return self.active

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_patient(self) -> bool:
        return self.role == PATIENT

    def can(self, permission: str) -> bool:
        """Whether this person's role holds `permission` (see healthcrm/permissions.py)."""
        return permissions.can(self.role, permission)

    @property
    def mfa_enabled(self) -> bool:
        return self.mfa_enabled_at is not None

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


class UserSession(TenantScoped, db.Model):
    """A signed-in browser. The cookie holds a random id; this row holds only its SHA-256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))

    user: Mapped[User] = relationship()

    @property
    def device(self) -> str:
        """A short name for the browser, such as "Chrome on Windows", for the sessions page."""
        return describe_user_agent(self.user_agent)


class AccountToken(TenantScoped, db.Model):
    """A single-use emailed token: password reset or invitation. Only its SHA-256 is stored."""

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class RecoveryCode(TenantScoped, db.Model):
    __tablename__ = "recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class ApiToken(TenantScoped, db.Model):
    """A staff member's personal API token (healthcrm/accounts/api_tokens.py). The secret is shown once;
    this row holds only its SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    # Written by guarded UPDATEs on use: last_used_* at most once a minute (or from a new address), and
    # use_audited_at when an `api_token.used` event is written (at most hourly, or from a new address).
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_ip: Mapped[str | None] = mapped_column(String(64))
    use_audited_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))

    user: Mapped[User] = relationship()

    def status(self, now: datetime) -> str:
        """ "active", "expired" or "revoked" at `now`."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"
