"""Personal API tokens: a staff member makes one on /account/tokens (a name, an expiry), sees its secret
once, and a script then sends it as `Authorization: Bearer hcrm_…` to the endpoints that accept tokens
(healthcrm/access.py: `requires(..., tokens=True)`), acting as that person with that person's role.

- The secret is `hcrm_` and 43 characters of `secrets.token_urlsafe(32)` (256 random bits); the prefix lets
  secret scanners and people recognise a leaked one. Only its SHA-256 is stored; a fast hash is enough for a
  random secret of that size (argon2 is for what people choose).
- A token works until it expires (90 days unless chosen, at most a year) or is revoked: by its owner, or
  with every other token of the person when an admin deactivates them or changes their role (as sessions
  end then). A deactivated person's token, or one whose clinic now requires two-step sign-in that its
  owner has not set up, is refused too, whatever the row says.
- Audited: `api_token.created`, `api_token.revoked`, `api_token.refused` (every refused token, with the
  reason; the failure limit of healthcrm/access.py bounds how many), and `api_token.used`. A script polling
  every minute would write 1,440 "used" events a day that say nothing new, so "used" is written at most
  once an hour per token, and at once when the token comes from an address it was not last used from (a
  stolen token used elsewhere shows up at its first request). What the token does is audited anyway by
  each endpoint, with its owner as the actor, like anything they do in a browser.
- The hourly claim and the last-used time are guarded UPDATEs, so requests arriving together write one
  event, not one each.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import func, or_, select, update

from .. import permissions
from ..audit.services import FAILURE, Actor, record_event
from ..clock import utcnow
from ..errors import DomainError, NotFound
from ..extensions import db
from ..tenancy import scoped
from ..tenant_scope import ALL_TENANTS
from .models import ApiToken, User
from .secrets import token_digest, verify_password

TOKEN_PREFIX = "hcrm_"  # noqa: S105 - the public prefix every token starts with, not a secret
TOKEN_RANDOM_BYTES = 32
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet.
TOKEN_FORMAT = re.compile(r"hcrm_[A-Za-z0-9_-]{43}")
TOKEN_DEFAULT_DAYS = 90
TOKEN_MAX_DAYS = 365
TOKEN_DAY_CHOICES = (7, 30, 90, 180, 365)
TOKEN_NAME_MAX_CHARS = 80
# Live (not revoked, not expired) tokens one person may hold: enough for a few scripts, not a pile.
LIVE_TOKENS_PER_USER = 10
LIST_LIMIT = 50
LAST_USED_EVERY = timedelta(minutes=1)
USE_AUDIT_EVERY = timedelta(hours=1)
PERMISSION = "account.api_tokens"

# Why a presented token was refused (the `api_token.refused` event's detail).
MALFORMED, UNKNOWN, REVOKED, EXPIRED, INACTIVE, NOT_ALLOWED, MFA_MISSING = (
    "malformed",
    "unknown",
    "revoked",
    "expired",
    "inactive_user",
    "role_not_allowed",
    "mfa_not_set_up",
)


class TokenError(DomainError):
    """A problem with the new-token form the person can fix; `field` names the field."""


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


def create_token(actor: Actor, user: User, name: str, days: int, password: str) -> tuple[ApiToken, str]:
    """Make a token for `user` (the signed-in person, who confirms with their password); return the row and
    the secret, which exists from here on only in the page that shows it once."""
    permissions.require(actor, PERMISSION)
    name = (name or "").strip()
    if not name:
        raise TokenError("Give the token a name, such as what will use it.", "name")
    if len(name) > TOKEN_NAME_MAX_CHARS:
        raise TokenError(f"Use at most {TOKEN_NAME_MAX_CHARS} characters.", "name")
    if not isinstance(days, int) or not 1 <= days <= TOKEN_MAX_DAYS:
        raise TokenError(f"Choose an expiry of at most {TOKEN_MAX_DAYS} days.", "days")
    if not verify_password(user.password_hash, password or ""):
        # A session left open on a shared computer must not be enough to make a credential that outlives it.
        record_event(
            actor, "api_token.create_refused", resource_type="user", resource_id=user.id, outcome=FAILURE
        )
        db.session.commit()
        raise TokenError("That is not your password.", "password")
    # The person's row is locked for the count and the insert, so two forms sent at once cannot both pass
    # the limit (a write lock on SQLite, a row lock on PostgreSQL).
    db.session.execute(
        update(User)
        .where(User.id == user.id, User.tenant_id == user.tenant_id)
        .values(email=User.email)
        .execution_options(synchronize_session=False)
    )
    now = utcnow()
    if _live_count(user, now) >= LIVE_TOKENS_PER_USER:
        db.session.rollback()
        raise TokenError(
            f"You already have {LIVE_TOKENS_PER_USER} tokens in use. Revoke one you no longer need first.",
            "name",
        )
    raw = new_secret()
    token = ApiToken(
        tenant_id=user.tenant_id,
        user_id=user.id,
        name=name,
        token_hash=token_digest(raw),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.session.add(token)
    db.session.flush()
    record_event(
        actor,
        "api_token.created",
        resource_type="api_token",
        resource_id=token.id,
        changed_fields=["name", "expires_at"],
    )
    # In the person's bell too: a token made from a hijacked session is then seen by its owner.
    from ..portal.notifications import notify_staff  # noqa: PLC0415 - portal imports accounts' models

    notify_staff(
        user.tenant_id,
        [user.id],
        "api_token",
        f"An API token named “{name}” was created for your account.",
        "/account/tokens",
    )
    db.session.commit()
    return token, raw


def _live_count(user: User, now) -> int:
    live = scoped(ApiToken, user.tenant_id).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > now
    )
    return db.session.scalar(select(func.count()).select_from(live.subquery())) or 0


def list_tokens(user: User) -> list[ApiToken]:
    """The person's tokens, newest first: live, expired and revoked (so an old script's failure explains
    itself)."""
    query = scoped(ApiToken, user.tenant_id).where(ApiToken.user_id == user.id)
    return list(db.session.scalars(query.order_by(ApiToken.id.desc()).limit(LIST_LIMIT)))


def revoke_token(actor: Actor, user: User, token_id: int) -> ApiToken:
    """Revoke one of the person's own tokens (another's id, or another clinic's, is NotFound)."""
    token = db.session.scalar(
        scoped(ApiToken, user.tenant_id).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    if token is None:
        raise NotFound(token_id)
    revoked = db.session.execute(
        update(ApiToken)
        .where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="revoked_by_user")
        .execution_options(synchronize_session=False)
    )
    if revoked.rowcount == 1:
        record_event(actor, "api_token.revoked", resource_type="api_token", resource_id=token.id)
    db.session.commit()
    db.session.refresh(token)
    return token


def revoke_user_tokens(user_id: int, tenant_id: int, reason: str) -> int:
    """Revoke every live token of a person (deactivated, or given another role); the caller audits and
    commits, as with their sessions."""
    result = db.session.execute(
        update(ApiToken)
        .where(ApiToken.tenant_id == tenant_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def authenticate(raw: str, actor: Actor) -> ApiToken | None:
    """The live token whose secret is `raw`, its use noted; None (and an `api_token.refused` event,
    committed) for anything else. `actor` says where the request came from (no user yet)."""
    now = utcnow()
    token = None
    if TOKEN_FORMAT.fullmatch(raw or ""):
        # The secret finds its clinic: across clinics on purpose, as a session cookie does.
        token = db.session.scalar(
            select(ApiToken).where(ApiToken.token_hash == token_digest(raw)).execution_options(**ALL_TENANTS)
        )
    reason = _refusal(token, now, raw)
    if reason is not None:
        record_event(
            _actor_for(token, actor),
            "api_token.refused",
            resource_type="api_token",
            resource_id=token.id if token else None,
            outcome=FAILURE,
            changed_fields=[reason],
        )
        db.session.commit()
        return None
    _note_use(token, _actor_for(token, actor), now)
    db.session.commit()
    return token


def _refusal(token: ApiToken | None, now, raw: str) -> str | None:
    if token is None:
        return UNKNOWN if TOKEN_FORMAT.fullmatch(raw or "") else MALFORMED
    user = token.user
    if token.revoked_at is not None:
        return REVOKED
    if token.expires_at <= now:
        return EXPIRED
    if not user.active:
        return INACTIVE
    if not permissions.can(user, PERMISSION):
        return NOT_ALLOWED
    if user.is_staff and user.tenant.mfa_required_for_staff and not user.mfa_enabled:
        return MFA_MISSING
    return None


def _actor_for(token: ApiToken | None, actor: Actor) -> Actor:
    """The token's owner as the actor (an unknown token's refusal goes on the system chain, as a failed
    sign-in for an unknown email does)."""
    user = token.user if token is not None else None
    return Actor(
        tenant_id=user.tenant_id if user else None,
        user_id=user.id if user else None,
        role=user.role if user else None,
        ip=actor.ip,
        user_agent=actor.user_agent,
        request_id=actor.request_id,
    )


def _note_use(token: ApiToken, actor: Actor, now) -> None:
    """Write `api_token.used` when this request claims the hour (or brings a new address), else move the
    last-used time on at most once a minute. Both are guarded UPDATEs: of requests that arrive together,
    the database lets one claim."""
    claimed = db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token.id,
            or_(
                ApiToken.use_audited_at.is_(None),
                ApiToken.use_audited_at <= now - USE_AUDIT_EVERY,
                ApiToken.last_used_ip.is_distinct_from(actor.ip),
            ),
        )
        .values(use_audited_at=now, last_used_at=now, last_used_ip=actor.ip)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount == 1:
        record_event(actor, "api_token.used", resource_type="api_token", resource_id=token.id)
        return
    db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token.id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
