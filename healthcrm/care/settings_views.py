"""The portal settings page for admins: the clinic's phone, address and hours, the response targets, and
the care-stage rules (add, edit, turn off and on). Plain forms; a bad value answers 422 with the page and
its message, and changes nothing."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..errors import DomainError, NotFound
from ..patients.models import CARE_STAGES
from ..portal.clinic import WEEKDAYS
from ..tenancy import get_scoped
from ..web import render_page
from . import clinic_settings, stages, targets
from .models import ANY_STAGE, CareStageRule

bp = Blueprint("care_settings", __name__, url_prefix="/care/settings")
INVALID = 422


def _page(
    *,
    errors: dict | None = None,
    form: dict | None = None,
    editing: CareStageRule | None = None,
    status: int = 200,
):
    tenant_id = current_user.tenant_id
    tenant = current_user.tenant
    return render_page(
        "care/settings.html",
        status=status,
        tenant=tenant,
        weekdays=WEEKDAYS,
        hours=clinic_settings.hours_form_values(tenant),
        targets=targets.clinic_targets(tenant_id),
        rules=stages.clinic_rules(tenant_id),
        describe_rule=stages.describe_rule,
        event_kinds=stages.EVENT_KINDS,
        care_stages=CARE_STAGES,
        any_stage=ANY_STAGE,
        editing=editing,
        errors=errors or {},
        form=form or {},
    )


def _refused(error: DomainError, **extra):
    return _page(
        errors={error.field or "form": error.message}, form=request.form.to_dict(), status=INVALID, **extra
    )


@bp.get("")
@requires("care.settings")
def index():
    editing = None
    rule_id = request.args.get("edit", type=int)
    if rule_id:
        editing = get_scoped(CareStageRule, rule_id, current_user.tenant_id)
    return _page(editing=editing)


@bp.post("/clinic")
@requires("care.settings")
def clinic():
    try:
        clinic_settings.save_clinic_details(current_actor(), request.form.to_dict())
    except DomainError as error:
        return _refused(error)
    flash("Clinic details saved.", "success")
    return redirect(url_for("care_settings.index"), code=303)


@bp.post("/targets")
@requires("care.settings")
def save_targets():
    values = {kind: request.form.get(f"target_{kind}", "") for kind in targets.TARGET_KINDS}
    try:
        targets.save_targets(current_actor(), values)
    except DomainError as error:
        return _refused(error)
    flash("Response targets saved.", "success")
    return redirect(url_for("care_settings.index"), code=303)


@bp.post("/rules")
@requires("care.settings")
def add_rule():
    try:
        stages.save_rule(current_actor(), request.form.to_dict())
    except DomainError as error:
        return _refused(error)
    flash("Rule added.", "success")
    return redirect(url_for("care_settings.index", _anchor="rules"), code=303)


@bp.post("/rules/<int:rule_id>")
@requires("care.settings")
def edit_rule(rule_id: int):
    rule = get_scoped(CareStageRule, rule_id, current_user.tenant_id)
    if rule is None:
        raise NotFound()
    try:
        stages.save_rule(current_actor(), request.form.to_dict(), rule_id)
    except DomainError as error:
        return _refused(error, editing=rule)
    flash("Rule saved.", "success")
    return redirect(url_for("care_settings.index", _anchor="rules"), code=303)


@bp.post("/rules/<int:rule_id>/enabled")
@requires("care.settings")
def toggle_rule(rule_id: int):
    enabled = request.form.get("enabled") == "1"
    stages.set_rule_enabled(current_actor(), rule_id, enabled)
    flash("Rule turned on." if enabled else "Rule turned off.", "success")
    return redirect(url_for("care_settings.index", _anchor="rules"), code=303)
