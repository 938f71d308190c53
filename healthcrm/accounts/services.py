"""Accounts: sign-in, sessions, passwords, invitations, MFA and user management.

Functions take plain values and an `Actor`, write their audit events in the same transaction, and
commit once. They never read the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import func, select

from ..audit.services import FAILURE, Actor, record_event
from ..clock import utcnow
from ..config import INVITATION_DAYS, PASSWORD_RESET_MINUTES
from ..errors import DomainError
from ..extensions import db
from ..jobs.queue import enqueue
from ..patients.models import Patient
from ..tenancy import get_scoped, scoped
from ..tenant_scope import ALL_TENANTS
from .api_tokens import revoke_user_tokens
from .models import ADMIN, PATIENT, STAFF_ROLES, AccountToken, Tenant, User, UserSession
from .secrets import hash_password, new_token, password_problem, token_digest, verify_password
from .sessions import open_session, revoke_sessions

RESET = "reset"
INVITE = "invite"
TOKEN_LIFETIMES = {RESET: timedelta(minutes=PASSWORD_RESET_MINUTES), INVITE: timedelta(days=INVITATION_DAYS)}
# How long the code step of a two-step sign-in waits after the password step.
PENDING_MFA_MINUTES = 5
PENDING_MFA_LIFETIME = timedelta(minutes=PENDING_MFA_MINUTES)
# One sentence for every failed sign-in, so the answer never tells whether an email has an account.
LOGIN_REFUSED = "That email and password do not match an active account."


class AccountError(DomainError):
    """A problem the person can fix; `field` names the form field it belongs to."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    # Across clinics on purpose: signing in, the clinic is not known yet (emails are unique across clinics).
    found = select(User).where(User.email == normalise_email(email)).execution_options(**ALL_TENANTS)
    return db.session.scalar(found)


def pending_mfa_user(user_id: int | None, password_step_at: datetime | None) -> User | None:
    """The user who passed the password step at `password_step_at` and now owes a second factor.

    The step is good for PENDING_MFA_MINUTES, and not at all once the password has changed since: the
    browser keeps it in a signed cookie, which would otherwise let whoever once knew the password try
    codes later, even after the owner reset it.
    """
    if not user_id or password_step_at is None or utcnow() - password_step_at > PENDING_MFA_LIFETIME:
        return None
    # Halfway through signing in the clinic is not known yet: the id comes from the signed cookie.
    user = db.session.get(User, user_id, execution_options=ALL_TENANTS)
    if user is None or not user.active or not user.mfa_enabled:
        return None
    if user.password_changed_at is not None and user.password_changed_at > password_step_at:
        return None
    return user


# --- sign-in -------------------------------------------------------------------------------------


def check_password_login(email: str, password: str, actor: Actor) -> User:
    """Return the user whose password matches, or raise AccountError with one generic sentence.

    Unknown emails cost the same argon2 verification as known ones. Failures are audited (on the
    clinic's chain when the email is known, on the system chain otherwise) and committed.
    """
    user = find_user_by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        record_event(
            Actor(
                tenant_id=user.tenant_id if user else None,
                user_id=user.id if user else None,
                role=user.role if user else None,
                ip=actor.ip,
                user_agent=actor.user_agent,
                request_id=actor.request_id,
            ),
            "auth.login_failed",
            resource_type="user",
            resource_id=user.id if user else None,
            outcome=FAILURE,
        )
        db.session.commit()
        raise AccountError(LOGIN_REFUSED)
    return user


def sign_in(user: User, actor: Actor, *, method: str = "password") -> str:
    """Open a new session for a user who has proven who they are; return the raw cookie value."""
    row, raw = open_session(user, actor.ip, actor.user_agent)
    user.last_login_at = utcnow()
    db.session.flush()
    record_event(
        actor_for_user(user, actor),
        "auth.login",
        resource_type="session",
        resource_id=row.id,
        changed_fields=[method],
    )
    db.session.commit()
    return raw


def sign_out(session_row: UserSession, actor: Actor) -> None:
    session_row.revoked_at = utcnow()
    session_row.revoked_reason = "logout"
    record_event(actor, "auth.logout", resource_type="session", resource_id=session_row.id)
    db.session.commit()


def sign_out_everywhere(user: User, actor: Actor) -> int:
    count = revoke_sessions(user.id, "signed_out_everywhere")
    record_event(actor, "auth.logout_everywhere", resource_type="user", resource_id=user.id)
    db.session.commit()
    return count


def revoke_one_session(user: User, session_id: int, actor: Actor) -> None:
    row = db.session.scalar(
        scoped(UserSession, user.tenant_id).where(
            UserSession.id == session_id, UserSession.user_id == user.id
        )
    )
    if row is None:
        raise LookupError(session_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.revoked_reason = "revoked_by_user"
    record_event(actor, "auth.session_revoked", resource_type="session", resource_id=row.id)
    db.session.commit()


def actor_for_user(user: User, actor: Actor) -> Actor:
    """The actor for events about a user proving who they are (before a session exists)."""
    return Actor(
        tenant_id=user.tenant_id,
        user_id=user.id,
        role=user.role,
        ip=actor.ip,
        user_agent=actor.user_agent,
        request_id=actor.request_id,
    )


# --- passwords -----------------------------------------------------------------------------------


def _set_password(user: User, password: str) -> None:
    problem = password_problem(password, user.email, user.full_name)
    if problem:
        raise AccountError(problem, "password")
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()


def change_password(user: User, current: str, new: str, actor: Actor, *, keep_session_id: int) -> None:
    """Change a password after checking the current one; every other session ends."""
    if not verify_password(user.password_hash, current):
        record_event(
            actor, "auth.password_change_failed", resource_type="user", resource_id=user.id, outcome=FAILURE
        )
        db.session.commit()
        raise AccountError("Your current password is not correct.", "current_password")
    _set_password(user, new)
    revoke_sessions(user.id, "password_changed", keep_id=keep_session_id)
    record_event(actor, "auth.password_changed", resource_type="user", resource_id=user.id)
    db.session.commit()


def request_password_reset(email: str, actor: Actor) -> None:
    """Queue the reset email job for whatever address was typed; say nothing either way.

    The request does the same work for a known and an unknown email (one job row, one queue push), so
    neither its answer nor its timing tells whether the address has an account: the job decides
    (`prepare_requested_reset`) and audits.
    """

    enqueue(
        "accounts.email_password_reset",
        normalise_email(email),
        actor.ip or "",
        actor.user_agent or "",
        actor.request_id or "",
        tenant_id=None,
        label="Password reset email",
    )


def prepare_requested_reset(email: str, actor: Actor) -> OutgoingLink | None:
    """In the job: audit the request, and if `email` has an active account with a password, issue a
    reset link (committed). None when there is nobody to email."""
    user = find_user_by_email(email)
    if user is None or not user.active or not user.has_password:
        record_event(actor, "auth.password_reset_requested", outcome=FAILURE)
        db.session.commit()
        return None
    record_event(
        actor_for_user(user, actor),
        "auth.password_reset_requested",
        resource_type="user",
        resource_id=user.id,
    )
    raw = issue_token(user, RESET)
    db.session.commit()
    return OutgoingLink(user, f"{current_app.config['PUBLIC_URL']}/reset/{raw}")


def issue_token(user: User, purpose: str) -> str:
    """Create a single-use token (older unused ones of the same purpose stop working); return it raw."""
    now = utcnow()
    for old in db.session.scalars(
        select(AccountToken).where(
            AccountToken.tenant_id == user.tenant_id,
            AccountToken.user_id == user.id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
    ):
        old.used_at = now
    raw = new_token()
    db.session.add(
        AccountToken(
            tenant_id=user.tenant_id,
            user_id=user.id,
            purpose=purpose,
            token_hash=token_digest(raw),
            expires_at=now + TOKEN_LIFETIMES[purpose],
        )
    )
    return raw


def find_usable_token(raw: str, purpose: str) -> AccountToken | None:
    if not raw or len(raw) > 100:
        return None
    token = db.session.scalar(
        select(AccountToken)
        .where(AccountToken.token_hash == token_digest(raw), AccountToken.purpose == purpose)
        .execution_options(**ALL_TENANTS)  # the secret token finds its clinic
    )
    if token is None or token.used_at is not None or token.expires_at < utcnow() or not token.user.active:
        return None
    return token


def complete_password_token(raw: str, purpose: str, password: str, actor: Actor) -> User:
    """Use a reset or invitation token to set a password. Every existing session of the user ends."""
    token = find_usable_token(raw, purpose)
    if token is None:
        raise AccountError("This link has expired or has already been used. Ask for a new one.")
    user = token.user
    _set_password(user, password)
    token.used_at = utcnow()
    revoke_sessions(user.id, "password_reset")
    action = "auth.password_reset" if purpose == RESET else "auth.invitation_accepted"
    record_event(
        actor_for_user(user, actor),
        action,
        resource_type="user",
        resource_id=user.id,
        patient_id=user.patient_id,
    )
    db.session.commit()
    return user


# --- new clinics --------------------------------------------------------------------------------------

# A new clinic asks its staff for two-step sign-in from the start; an administrator may turn it off on the
# users page. (The demo clinics keep it off so `make run` stays one command: healthcrm/demo/data.py.)
NEW_CLINIC_REQUIRES_MFA = True


def create_clinic(
    name: str, slug: str, admin_email: str, admin_name: str, *, timezone: str = "UTC"
) -> tuple[Tenant, User]:
    """Create a clinic and its first administrator, and email them an invitation to set a password.

    The clinic requires two-step sign-in for staff (`NEW_CLINIC_REQUIRES_MFA`), so the first admin sets
    it up at first sign-in. Raises AccountError for a taken slug or email, or an unknown time zone."""
    name, slug = name.strip(), slug.strip().lower()
    if not name or not slug:
        raise AccountError("Give the clinic a name and a short name (slug).", "name")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise AccountError(
            f"Unknown time zone {timezone!r} (use a name like America/Chicago).", "timezone"
        ) from None
    if db.session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise AccountError(f"A clinic with the short name {slug!r} already exists.", "slug")
    email = normalise_email(admin_email)
    if find_user_by_email(email):
        raise AccountError("Someone already has an account with this email.", "email")
    tenant = Tenant(name=name, slug=slug, timezone=timezone, mfa_required_for_staff=NEW_CLINIC_REQUIRES_MFA)
    db.session.add(tenant)
    db.session.flush()
    admin = User(tenant_id=tenant.id, email=email, full_name=admin_name.strip(), role=ADMIN)
    db.session.add(admin)
    db.session.flush()
    record_event(
        Actor.system(tenant.id),
        "clinic.created",
        resource_type="tenant",
        resource_id=tenant.id,
        changed_fields=["name", "slug", "timezone", "mfa_required_for_staff"],
    )
    record_event(
        Actor.system(tenant.id),
        "user.invited",
        resource_type="user",
        resource_id=admin.id,
        changed_fields=["email", "full_name", "role"],
    )
    db.session.commit()
    _send_invitation(admin)
    return tenant, admin


# --- invitations and user management -------------------------------------------------------------


def invite_staff(actor: Actor, email: str, full_name: str, role: str) -> User:
    if role not in STAFF_ROLES:
        raise AccountError("Choose one of the staff roles.", "role")
    email = normalise_email(email)
    if find_user_by_email(email):
        raise AccountError("Someone already has an account with this email.", "email")
    user = User(tenant_id=actor.tenant_id, email=email, full_name=full_name.strip(), role=role)
    db.session.add(user)
    db.session.flush()
    record_event(
        actor,
        "user.invited",
        resource_type="user",
        resource_id=user.id,
        changed_fields=["email", "full_name", "role"],
    )
    db.session.commit()
    _send_invitation(user)
    return user


def invite_patient(actor: Actor, patient_id: int, email: str) -> User:
    """Give a patient a portal account and email them a link to set their password."""

    patient = get_scoped(Patient, patient_id, actor.tenant_id)
    if patient is None:
        raise LookupError(patient_id)
    email = normalise_email(email)
    user = patient.portal_user
    if user is not None and user.has_password:
        raise AccountError("This patient already uses the portal.", "email")
    owner = find_user_by_email(email)
    if owner is not None and owner is not user:
        raise AccountError("Someone already has an account with this email.", "email")
    if user is None:
        user = User(
            tenant_id=patient.tenant_id,
            email=email,
            full_name=patient.full_name,
            role=PATIENT,
            patient_id=patient.id,
        )
        db.session.add(user)
    else:
        user.email = email
    db.session.flush()
    record_event(
        actor,
        "patient.portal_invited",
        resource_type="user",
        resource_id=user.id,
        patient_id=patient.id,
        changed_fields=["email"],
    )
    db.session.commit()
    _send_invitation(user)
    return user


def _send_invitation(user: User) -> None:

    enqueue(
        "accounts.email_invitation", user.id, tenant_id=user.tenant_id, label=f"Invitation for {user.email}"
    )


def clinic_users(tenant_id: int, *, include_patients: bool = False) -> list[User]:
    query = select(User).where(User.tenant_id == tenant_id)
    if not include_patients:
        query = query.where(User.role != PATIENT)
    return list(db.session.scalars(query.order_by(User.active.desc(), User.full_name)))


def _active_admins(tenant_id: int) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.tenant_id == tenant_id, User.role == ADMIN, User.active.is_(True))
        )
        or 0
    )


def change_role(actor: Actor, user_id: int, role: str) -> User:
    user = _staff_user(actor, user_id)
    if role not in STAFF_ROLES:
        raise AccountError("Choose one of the staff roles.", "role")
    if user.role == ADMIN and role != ADMIN and user.active and _active_admins(user.tenant_id) <= 1:
        raise AccountError("The clinic needs at least one active administrator.", "role")
    if role != user.role:
        user.role = role
        # A new role means new permissions: open sessions and API tokens end so nobody keeps the old ones.
        revoke_sessions(user.id, "role_changed")
        revoke_user_tokens(user.id, user.tenant_id, "role_changed")
        record_event(
            actor, "user.role_changed", resource_type="user", resource_id=user.id, changed_fields=["role"]
        )
        db.session.commit()
    return user


def set_active(actor: Actor, user_id: int, active: bool) -> User:
    user = _staff_user(actor, user_id)
    if not active and user.id == actor.user_id:
        raise AccountError("You cannot deactivate your own account.")
    if not active and user.role == ADMIN and _active_admins(user.tenant_id) <= 1:
        raise AccountError("The clinic needs at least one active administrator.")
    if user.active != active:
        user.active = active
        if not active:
            revoke_sessions(user.id, "deactivated")
            revoke_user_tokens(user.id, user.tenant_id, "deactivated")
        record_event(
            actor,
            "user.activated" if active else "user.deactivated",
            resource_type="user",
            resource_id=user.id,
            changed_fields=["active"],
        )
        db.session.commit()
    return user


def resend_invitation(actor: Actor, user_id: int) -> User:
    user = get_scoped(User, user_id, actor.tenant_id)
    if user is None:
        raise LookupError(user_id)
    if user.has_password:
        raise AccountError("This person has already set a password.")
    record_event(
        actor, "user.invitation_resent", resource_type="user", resource_id=user.id, patient_id=user.patient_id
    )
    db.session.commit()
    _send_invitation(user)
    return user


def _staff_user(actor: Actor, user_id: int) -> User:
    user = get_scoped(User, user_id, actor.tenant_id)
    if user is None or user.role == PATIENT:
        raise LookupError(user_id)
    return user


# --- emails (run inside jobs; the raw token exists only in the worker's memory and the email) -----


@dataclass(frozen=True)
class OutgoingLink:
    user: User
    url: str


def prepare_invitation_link(user_id: int, tenant_id: int) -> OutgoingLink | None:
    user = get_scoped(User, user_id, tenant_id)
    if user is None or not user.active or user.has_password:
        return None
    raw = issue_token(user, INVITE)
    db.session.commit()
    return OutgoingLink(user, f"{current_app.config['PUBLIC_URL']}/invitation/{raw}")


def set_mfa_required(actor: Actor, required: bool) -> None:
    """Clinic setting: staff must use two-step sign-in (those without it enrol at their next page)."""

    tenant = db.session.get(Tenant, actor.tenant_id)
    if tenant.mfa_required_for_staff != required:
        tenant.mfa_required_for_staff = required
        record_event(
            actor,
            "clinic.mfa_requirement_changed",
            resource_type="tenant",
            resource_id=tenant.id,
            changed_fields=["mfa_required_for_staff"],
        )
        db.session.commit()
