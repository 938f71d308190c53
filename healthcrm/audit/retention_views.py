"""Retention settings (admins)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..errors import DomainError
from ..web import render_page
from .retention import RULES, save_settings
from .services import retention_settings

bp = Blueprint("retention", __name__, url_prefix="/admin/retention")


def _page(*, errors: dict | None = None, form: dict | None = None, status: int = 200):
    settings = retention_settings(current_user.tenant_id)
    values = form or {rule.field: getattr(settings, rule.field) for rule in RULES}
    return render_page(
        "audit/retention.html",
        status=status,
        rules=RULES,
        values=values,
        errors=errors or {},
        settings=settings,
    )


@bp.get("")
@requires("audit.retention")
def index():
    return _page()


@bp.post("")
@requires("audit.retention")
def save():
    try:
        save_settings(current_actor(), request.form.to_dict())
    except DomainError as error:
        return _page(errors={error.field: error.message}, form=request.form.to_dict(), status=422)
    flash("Retention settings saved.")
    return redirect(url_for("retention.index"), code=303)
