"""The admins' lifecycle page: the clinic's settings, the rules they ask for against the bucket's, the rule
checker's warnings, and Apply."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..web import render_page
from .checker import check_rules
from .lifecycle import (
    ABORT_AFTER_DAYS,
    FIELDS,
    GLACIER_MINIMUM_DAYS,
    NONCURRENT_GLACIER_DAYS,
    LifecycleError,
    apply_clinic,
    clinic_plan,
    clinic_prefix,
    lifecycle_settings,
    save_settings,
)

bp = Blueprint("storage_lifecycle", __name__, url_prefix="/admin/storage/lifecycle")


def _page(*, errors: dict | None = None, form: dict | None = None, status: int = 200):
    tenant_id = current_user.tenant_id
    settings = lifecycle_settings(tenant_id)
    values = form or {rule.name: getattr(settings, rule.name) for rule in FIELDS}
    if form is None:
        values["enabled"] = settings.enabled
    plan, plan_error = None, None
    try:
        plan = clinic_plan(tenant_id)
    except LifecycleError as error:
        plan_error = error.message
    return render_page(
        "storage_cost/lifecycle.html",
        status=status,
        fields=FIELDS,
        values=values,
        errors=errors or {},
        settings=settings,
        plan=plan,
        plan_error=plan_error,
        warnings=check_rules(tenant_id),
        prefix=clinic_prefix(tenant_id),
        glacier_minimum=GLACIER_MINIMUM_DAYS,
        noncurrent_days=NONCURRENT_GLACIER_DAYS,
        abort_days=ABORT_AFTER_DAYS,
    )


@bp.get("")
@requires("storage.manage")
def index():
    return _page()


@bp.post("")
@requires("storage.manage")
def save():
    try:
        _row, changed = save_settings(current_actor(), request.form.to_dict())
    except LifecycleError as error:
        form = request.form.to_dict()
        form["enabled"] = bool(form.get("enabled"))
        return _page(errors={error.field or "form": error.message}, form=form, status=422)
    flash("Lifecycle settings saved." if changed else "Nothing changed.")
    return redirect(url_for("storage_lifecycle.index"), code=303)


@bp.post("/apply")
@requires("storage.manage")
def apply():
    try:
        plan = apply_clinic(current_actor())
    except LifecycleError as error:
        return _page(errors={"apply": error.message}, status=422)
    changed = sum(1 for diff in plan.diffs if diff.status != "unchanged")
    rules = "1 rule" if changed == 1 else f"{changed} rules"
    flash(f"Applied to {plan.target}: {rules} written, read back and matched.")
    return redirect(url_for("storage_lifecycle.index"), code=303)
