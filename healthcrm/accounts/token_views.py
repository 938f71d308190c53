"""Personal API tokens: the page where staff make, list and revoke theirs (/account/tokens), and /api/me,
the smallest endpoint that takes a token (a script's first check that its token works)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, jsonify, redirect, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..clock import utcnow
from ..errors import NotFound
from ..extensions import limiter
from ..web import render_page
from . import api_tokens
from .forms import ApiTokenForm

bp = Blueprint("api_tokens", __name__, url_prefix="/account/tokens")
api_bp = Blueprint("api_account", __name__, url_prefix="/api")
TEMPLATE = "accounts/api_tokens.html"
INVALID = 422
# Wrong passwords (and other refused forms) per person: the form must not become a password oracle for
# whoever finds a signed-in browser.
CREATE_LIMIT = "10 per 15 minutes"


def _page(form: ApiTokenForm | None = None, *, secret: str | None = None, created=None, status: int = 200):
    return render_page(
        TEMPLATE,
        status=status,
        form=form or ApiTokenForm(formdata=None),
        tokens=api_tokens.list_tokens(current_user),
        now=utcnow(),
        secret=secret,
        created=created,
        max_live=api_tokens.LIVE_TOKENS_PER_USER,
    )


@bp.get("")
@requires(api_tokens.PERMISSION)
def index():
    return _page()


@bp.post("")
@requires(api_tokens.PERMISSION)
@limiter.limit(
    CREATE_LIMIT,
    key_func=lambda: f"api-token-create:{current_user.id}",
    methods=["POST"],
    deduct_when=lambda response: response.status_code == INVALID,
    scope="api-token-create",
)
def create():
    form = ApiTokenForm()
    if form.validate_on_submit():
        try:
            token, secret = api_tokens.create_token(
                current_actor(), current_user, form.name.data, int(form.days.data), form.password.data
            )
        except api_tokens.TokenError as error:
            getattr(form, error.field or "name").errors.append(error.message)
        else:
            # Shown in this answer only (never flashed: the flash lives in a cookie), and never again.
            return _page(secret=secret, created=token)
    return _page(form, status=INVALID)


@bp.post("/<int:token_id>/revoke")
@requires(api_tokens.PERMISSION)
def revoke(token_id: int):
    try:
        token = api_tokens.revoke_token(current_actor(), current_user, token_id)
    except NotFound:
        abort(404)
    flash(f"The token “{token.name}” is revoked; it stops working at once.", "success")
    return redirect(url_for("api_tokens.index"), code=303)


@api_bp.get("/me")
@requires(api_tokens.PERMISSION, tokens=True)
def me():
    """Who the request is: the person, their role and clinic, and the token when one was used."""
    token = g.get("api_token")
    return jsonify(
        user={"id": current_user.id, "name": current_user.full_name, "email": current_user.email},
        role=current_user.role,
        clinic={"id": current_user.tenant_id, "name": current_user.tenant.name},
        token=None
        if token is None
        else {"id": token.id, "name": token.name, "expires_at": token.expires_at.isoformat() + "Z"},
        authenticated_by="token" if token is not None else "session",
        request_id=g.get("request_id"),
    )
