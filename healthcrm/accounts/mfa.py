"""TOTP multi-factor sign-in: enrolment by QR code, verification, recovery codes."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC

import pyotp
import segno
from sqlalchemy import delete, or_, update
from sqlalchemy.orm.attributes import set_committed_value

from ..audit.services import FAILURE, Actor, record_event
from ..clock import utcnow
from ..extensions import db
from ..tenancy import scoped
from .models import RecoveryCode, User
from .secrets import seal, token_digest, unseal, verify_password
from .services import AccountError

ISSUER = "HealthCRM"
RECOVERY_CODE_COUNT = 10
TOTP_DIGITS = 6


def is_required(user: User) -> bool:
    return user.is_staff and user.tenant.mfa_required_for_staff


def start_enrolment(user: User) -> str:
    """Give the user a fresh secret (kept sealed, not yet active) and return it for the QR code."""
    if user.mfa_enabled:
        raise AccountError("Two-step sign-in is already on.")
    secret = pyotp.random_base32()
    user.totp_secret_encrypted = seal(secret)
    user.mfa_last_timestep = None
    db.session.commit()
    return secret


def pending_secret(user: User) -> str | None:
    return unseal(user.totp_secret_encrypted) if user.totp_secret_encrypted else None


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=f"{ISSUER} ({user.tenant.name})")


def qr_svg_data_uri(uri: str) -> str:
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _accept_totp(user: User, secret: str, code: str) -> bool:
    """Accept a code of the current 30-second step or its neighbours, once: a code (or an older one)
    that was already used is refused, so a code seen over a shoulder cannot be replayed.

    The step is claimed with one guarded UPDATE (`… WHERE last step < this step`) in the caller's
    transaction: of two requests with the same code at once, the database lets exactly one through.
    """
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == TOTP_DIGITS):
        return False
    totp = pyotp.TOTP(secret)
    now = utcnow().replace(tzinfo=UTC)
    current_step = totp.timecode(now)
    for step in (current_step - 1, current_step, current_step + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return _claim_timestep(user, step)
    return False


def _claim_timestep(user: User, step: int) -> bool:
    claimed = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.mfa_last_timestep.is_(None), User.mfa_last_timestep < step),
        )
        .values(mfa_last_timestep=step)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return False
    # The loaded row keeps what the database now holds (set without marking it changed again).
    set_committed_value(user, "mfa_last_timestep", step)
    return True


def confirm_enrolment(user: User, code: str, actor: Actor) -> list[str]:
    """Turn MFA on once the user proves the authenticator works; return new recovery codes (shown once)."""
    secret = pending_secret(user)
    if secret is None:
        raise AccountError("Start again: scan a new QR code.", "code")
    if not _accept_totp(user, secret, code):
        raise AccountError(
            "That code does not match. Check the time on your phone and try the newest code.", "code"
        )
    user.mfa_enabled_at = utcnow()
    codes = _replace_recovery_codes(user)
    record_event(actor, "auth.mfa_enabled", resource_type="user", resource_id=user.id)
    db.session.commit()
    return codes


def regenerate_recovery_codes(user: User, actor: Actor) -> list[str]:
    codes = _replace_recovery_codes(user)
    record_event(actor, "auth.mfa_recovery_codes_regenerated", resource_type="user", resource_id=user.id)
    db.session.commit()
    return codes


def _replace_recovery_codes(user: User) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODE_COUNT)]
    for code in codes:
        db.session.add(RecoveryCode(tenant_id=user.tenant_id, user_id=user.id, code_hash=token_digest(code)))
    return codes


def unused_recovery_codes(user: User) -> int:
    return len(
        db.session.scalars(
            scoped(RecoveryCode, user.tenant_id)
            .with_only_columns(RecoveryCode.id)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        ).all()
    )


def check_second_factor(user: User, code: str, actor: Actor) -> bool:
    """Accept a current TOTP code or an unused recovery code; audit and commit the outcome."""
    secret = pending_secret(user) if user.mfa_enabled else None
    ok = bool(secret and _accept_totp(user, secret, code))
    method = "totp"
    if not ok:
        recovery = db.session.scalar(
            scoped(RecoveryCode, user.tenant_id).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == token_digest(code.strip().lower()),
                RecoveryCode.used_at.is_(None),
            )
        )
        if recovery is not None:
            recovery.used_at = utcnow()
            ok, method = True, "recovery_code"
    record_event(
        actor,
        "auth.mfa_verified" if ok else "auth.mfa_failed",
        resource_type="user",
        resource_id=user.id,
        outcome="success" if ok else FAILURE,
        changed_fields=[method] if ok else None,
    )
    db.session.commit()
    return ok


def disable(user: User, password: str, actor: Actor) -> None:
    if is_required(user):
        raise AccountError("Your clinic requires two-step sign-in for staff.")
    if not verify_password(user.password_hash, password):
        raise AccountError("Your password is not correct.", "password")
    user.mfa_enabled_at = None
    user.totp_secret_encrypted = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    record_event(actor, "auth.mfa_disabled", resource_type="user", resource_id=user.id)
    db.session.commit()
