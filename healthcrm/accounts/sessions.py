"""Server-side sign-in sessions: the browser holds a random id, the table holds its SHA-256.

Logout, password change and deactivation revoke rows, which ends those sessions at once on every web
process. Idle and absolute limits are checked on every request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from ..clock import utcnow
from ..extensions import db
from ..tenant_scope import ALL_TENANTS
from .models import User, UserSession
from .secrets import new_token, token_digest

# last_seen_at is written at most this often, so a busy page does not write on every request.
TOUCH_EVERY = timedelta(seconds=30)


def idle_limit(user: User) -> timedelta:
    key = "STAFF_IDLE_TIMEOUT" if user.is_staff else "PATIENT_IDLE_TIMEOUT"
    return current_app.config[key]


def is_live(row: UserSession, now: datetime) -> bool:
    if row.revoked_at is not None or not row.user.active:
        return False
    if now - row.created_at > current_app.config["SESSION_ABSOLUTE_TIMEOUT"]:
        return False
    return now - row.last_seen_at <= idle_limit(row.user)


def open_session(user: User, ip: str | None, user_agent: str | None) -> tuple[UserSession, str]:
    """Add a session row (the caller commits) and return it with the raw id for the cookie."""
    raw = new_token()
    row = UserSession(
        tenant_id=user.tenant_id,
        user_id=user.id,
        token_hash=token_digest(raw),
        ip=ip,
        user_agent=(user_agent or "")[:255] or None,
    )
    db.session.add(row)
    return row, raw


def load_live_session(raw: str | None, *, touch: bool = True) -> UserSession | None:
    """The live session for a cookie value, touching last_seen_at (unless `touch` is False: a request the
    page made by itself, which is not the person's activity); None when absent, expired or revoked."""
    if not raw or len(raw) > 100:
        return None
    # The secret cookie finds its clinic: across clinics on purpose.
    live = (
        select(UserSession)
        .where(UserSession.token_hash == token_digest(raw))
        .execution_options(**ALL_TENANTS)
    )
    row = db.session.scalar(live)
    now = utcnow()
    if row is None or not is_live(row, now):
        return None
    if touch and now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        db.session.commit()
    return row


def live_sessions(user: User) -> list[UserSession]:
    now = utcnow()
    rows = db.session.scalars(
        select(UserSession)
        .where(UserSession.tenant_id == user.tenant_id, UserSession.user_id == user.id)
        .where(UserSession.revoked_at.is_(None))
        .order_by(UserSession.last_seen_at.desc())
    )
    return [row for row in rows if is_live(row, now)]


def revoke_sessions(user_id: int, reason: str, *, keep_id: int | None = None) -> int:
    """Revoke every open session of a user (but `keep_id`); the caller commits."""
    query = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if keep_id is not None:
        query = query.where(UserSession.id != keep_id)
    result = db.session.execute(query.values(revoked_at=utcnow(), revoked_reason=reason))
    return result.rowcount or 0
