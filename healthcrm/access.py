"""Who may open which page, declared on each view and enforced in one place before the view runs.

Every endpoint must carry a policy: `@public`, `@requires("record.finalize")` (the roles holding a named
permission of healthcrm/permissions.py), `@staff_only`, `@patient_only` or `@roles(...)`. A request for an
endpoint without one is refused (fail closed), and a test walks `app.url_map` to prove none is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from . import permissions
from .accounts.models import ADMIN, ALL_ROLES, PATIENT, STAFF_ROLES
from .audit.services import Actor

# Flask's own static route is public by nature.
BUILTIN_PUBLIC_ENDPOINTS = frozenset({"static"})


@dataclass(frozen=True)
class Policy:
    public: bool = False
    roles: frozenset[str] = frozenset()
    # Pages that a user must reach before MFA enrolment is complete (enrolment itself, logout).
    allow_mfa_pending: bool = False
    # The named permissions the roles come from, when the policy was declared with `requires`.
    permissions: tuple[str, ...] = ()

    def allows(self, role: str | None) -> bool:
        return self.public or (role is not None and role in self.roles)


def _declare(policy: Policy) -> Callable:
    def decorator(view: Callable) -> Callable:
        view.access_policy = policy  # type: ignore[attr-defined]
        return view

    return decorator


def public(view: Callable) -> Callable:
    return _declare(Policy(public=True))(view)


def roles(*names: str, allow_mfa_pending: bool = False) -> Callable:
    unknown = set(names) - set(ALL_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")
    return _declare(Policy(roles=frozenset(names), allow_mfa_pending=allow_mfa_pending))


def requires(*names: str, allow_mfa_pending: bool = False) -> Callable:
    """Open the view to the roles holding any of the named permissions (healthcrm/permissions.py)."""
    if not names:
        raise ValueError("name at least one permission")
    allowed = frozenset().union(*(permissions.roles_for(name) for name in names))
    return _declare(Policy(roles=allowed, allow_mfa_pending=allow_mfa_pending, permissions=names))


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
