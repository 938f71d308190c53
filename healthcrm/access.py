"""Who may open which page, declared on each view and enforced in one place before the view runs.

Every endpoint must carry a policy: `@public`, `@requires("record.finalize")` (the roles holding a named
permission of healthcrm/permissions.py), `@staff_only`, `@patient_only` or `@roles(...)`. A request for an
endpoint without one is refused (fail closed), and a test walks `app.url_map` to prove none is missing.

API tokens: an endpoint opts in with `requires(..., tokens=True)` (or `roles(..., tokens=True)`). A request
with `Authorization: Bearer <token>` is then that token's person for this request only (no cookie is read or
set; CSRF does not apply: a browser never adds the header to a cross-site request by itself), and the
policy's roles apply as to a browser. A token sent to any endpoint that has not opted in, public ones
included, is refused (401), never ignored. Endpoints that accept tokens answer in JSON: 401 without usable
credentials, 403 for a role the policy does not name. Refused tokens are limited per client
(BEARER_FAILURE_LIMIT).

`@background` marks a view the page calls by itself (the notification badge's poll): it does not count as
the person's activity, so the idle sign-out still comes while a page sits open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import abort, current_app, g, redirect, request, url_for
from flask_login import current_user
from limits import parse as parse_limit
from werkzeug.exceptions import TooManyRequests, Unauthorized

from . import permissions
from .accounts import api_tokens
from .accounts.models import ADMIN, ALL_ROLES, PATIENT, STAFF_ROLES
from .audit.services import Actor
from .extensions import client_bucket, limiter

# Flask's own static route is public by nature.
BUILTIN_PUBLIC_ENDPOINTS = frozenset({"static"})
# Refused tokens per client (IPv4 address or IPv6 /64) before every token from it is refused for a while;
# config API_BEARER_FAILURE_LIMIT overrides it. A guess at 256 random bits never succeeds anyway: the limit
# keeps a broken script or a scanner from filling the audit log and the database with refusals.
BEARER_FAILURE_LIMIT = "10 per 15 minutes"
BEARER_FAILURE_SCOPE = "api-token-failures"
BEARER_NOT_ACCEPTED = "This address does not accept API tokens. Open it in a browser, signed in."
BEARER_INVALID = "The API token is not valid: unknown, expired or revoked, or its account is deactivated."
BEARER_MISSING = "Sign in, or send an API token as 'Authorization: Bearer <token>'."


class TokenRefused(Unauthorized):
    """401 for an API request: no usable credentials, or a token this endpoint does not take."""

    def __init__(self, description: str, error: str | None = "invalid_token"):
        super().__init__(description)
        # RFC 6750's error code for the WWW-Authenticate header (none when no credentials were sent).
        self.error = error


class TooManyTokenFailures(TooManyRequests):
    """429: this client sent too many refused tokens lately."""


@dataclass(frozen=True)
class Policy:
    public: bool = False
    roles: frozenset[str] = frozenset()
    # Pages that a user must reach before MFA enrolment is complete (enrolment itself, logout).
    allow_mfa_pending: bool = False
    # The named permissions the roles come from, when the policy was declared with `requires`.
    permissions: tuple[str, ...] = ()
    # The endpoint also takes personal API tokens (`Authorization: Bearer …`) and answers in JSON.
    tokens: bool = False

    def allows(self, role: str | None) -> bool:
        return self.public or (role is not None and role in self.roles)


def _declare(policy: Policy) -> Callable:
    def decorator(view: Callable) -> Callable:
        view.access_policy = policy  # type: ignore[attr-defined]
        return view

    return decorator


def public(view: Callable) -> Callable:
    return _declare(Policy(public=True))(view)


def roles(*names: str, allow_mfa_pending: bool = False, tokens: bool = False) -> Callable:
    unknown = set(names) - set(ALL_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")
    return _declare(Policy(roles=frozenset(names), allow_mfa_pending=allow_mfa_pending, tokens=tokens))


def requires(*names: str, allow_mfa_pending: bool = False, tokens: bool = False) -> Callable:
    """Open the view to the roles holding any of the named permissions (healthcrm/permissions.py); with
    `tokens=True` also to their API tokens."""
    if not names:
        raise ValueError("name at least one permission")
    allowed = frozenset().union(*(permissions.roles_for(name) for name in names))
    return _declare(
        Policy(roles=allowed, allow_mfa_pending=allow_mfa_pending, permissions=names, tokens=tokens)
    )


def background(view: Callable) -> Callable:
    """Mark a view the page polls by itself: its requests do not keep the session from idling out."""
    view.background_request = True  # type: ignore[attr-defined]
    return view


def is_background(endpoint: str | None) -> bool:
    view = current_app.view_functions.get(endpoint or "")
    return bool(getattr(view, "background_request", False))


staff_only = roles(*STAFF_ROLES)
admin_only = roles(ADMIN)
patient_only = roles(PATIENT)
any_signed_in = roles(*ALL_ROLES)
any_signed_in_mfa_pending = roles(*ALL_ROLES, allow_mfa_pending=True)


def policy_for(endpoint: str | None) -> Policy | None:
    if endpoint is None:
        return None
    if endpoint in BUILTIN_PUBLIC_ENDPOINTS:
        return Policy(public=True)
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "access_policy", None)


def presents_token() -> bool:
    """Whether the request presents a token (`Authorization: Bearer …`). Other schemes are not ours (a
    proxy's Basic sign-in in front of a staging site) and change nothing."""
    scheme, _, _ = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer"


def is_api_request() -> bool:
    """Whether the answer, errors included, is JSON: the request presents a token, or its endpoint takes
    tokens."""
    if presents_token():
        return True
    policy = policy_for(request.endpoint)
    return policy is not None and policy.tokens


def _bearer_secret() -> str:
    return request.headers.get("Authorization", "").strip().partition(" ")[2].strip()


def _failure_limit():
    return parse_limit(current_app.config.get("API_BEARER_FAILURE_LIMIT", BEARER_FAILURE_LIMIT))


def authenticate_token():
    """before_request, ahead of the CSRF check and `enforce_access`: a request presenting a token is its
    token's person (`g.api_token`), or is refused here."""
    if not presents_token() or request.endpoint is None:  # 404 / 405 are answered by Flask itself
        return None
    policy = policy_for(request.endpoint)
    if policy is None:
        return None  # refused by enforce_access (fail closed)
    if not policy.tokens:
        # Not silently ignored: the client would believe it acted with the token's rights.
        raise TokenRefused(BEARER_NOT_ACCEPTED, error="invalid_request")
    limit, bucket = _failure_limit(), client_bucket()
    # Checked before the token is looked up, so a client past the limit learns nothing from its guesses.
    if limiter.enabled and not limiter.limiter.test(limit, BEARER_FAILURE_SCOPE, bucket):
        raise TooManyTokenFailures()
    # Where the request comes from; not current_actor(): asking current_user now would settle "nobody".
    origin = Actor(
        tenant_id=None,
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
        request_id=g.get("request_id"),
    )
    token = api_tokens.authenticate(_bearer_secret(), origin)
    if token is None:
        if limiter.enabled:
            limiter.limiter.hit(limit, BEARER_FAILURE_SCOPE, bucket)
        raise TokenRefused(BEARER_INVALID)
    g.api_token = token
    # Flask-Login keeps the person it loaded for the rest of the request (in `g._login_user`); should
    # anything have asked before this hook, it asks the request loader (token_user) again.
    g.pop("_login_user", None)
    return None


def token_user():
    """The request loader's answer for a request presenting a token: the token's person, or nobody (its
    cookie is not looked at)."""
    token = g.get("api_token")
    return token.user if token is not None else None


def enforce_access():
    """before_request: check the endpoint's policy against the signed-in user."""
    if request.endpoint is None:  # 404 / 405 are answered by Flask itself
        return None
    policy = policy_for(request.endpoint)
    if policy is None:
        current_app.logger.error("endpoint %s has no access policy; refusing", request.endpoint)
        abort(404)
    if policy.public:
        return None
    if not current_user.is_authenticated:
        if policy.tokens:
            raise TokenRefused(BEARER_MISSING, error=None)
        if request.headers.get("HX-Request"):
            abort(401)
        return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
    if g.get("mfa_enrolment_required") and not policy.allow_mfa_pending:
        return redirect(url_for("accounts.mfa_setup"))
    if not policy.allows(current_user.role):
        abort(403)
    return None


def current_actor() -> Actor:
    """The audit actor for this request (signed-in user or anonymous)."""
    user = current_user if current_user.is_authenticated else None
    return Actor(
        tenant_id=user.tenant_id if user else None,
        user_id=user.id if user else None,
        role=user.role if user else None,
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
        request_id=g.get("request_id"),
    )


def current_tenant_id() -> int:
    return current_user.tenant_id
