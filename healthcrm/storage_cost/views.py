"""The storage cost dashboard for admins (/admin/storage): usage, cost, trend, forecast, access patterns,
alert thresholds and their history."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for

from ..access import current_actor, requires
from ..errors import NotFound
from ..files.checks import human_size
from ..jobs.queue import enqueue
from ..web import render_page
from . import access_patterns, alerts, dashboard
from .charts import class_chart, gb, month_chart, trend_chart
from .costs import usd
from .metrics import BUCKET_LABELS

bp = Blueprint("storage", __name__, url_prefix="/admin/storage")

HELPERS = {
    "size": human_size,
    "money": alerts.format_usd,
    "describe": alerts.describe,
    "class_label": lambda name: dashboard.CLASS_LABELS.get(name, name),
    "threshold_fields": alerts.FIELDS,
    "bucket_labels": BUCKET_LABELS,
    "trend_spans": dashboard.TREND_DAYS,
    "usd": usd,
    "gb": gb,
}


def _days() -> int:
    try:
        return dashboard.trend_days(request.args.get("days"))
    except dashboard.BadParameter:
        abort(400)


def _page(
    *,
    block: str | None = None,
    status: int = 200,
    error: alerts.ThresholdError | None = None,
    values: dict | None = None,
    saved: str = "",
):
    actor = current_actor()
    days = _days()
    found = dashboard.overview(actor, days)
    thresholds, history = dashboard.alert_state(actor.tenant_id)
    return render_page(
        "storage_cost/dashboard.html",
        block=block,
        status=status,
        view=found,
        class_chart=class_chart(found.current),
        trend_chart=trend_chart(found.trend),
        thresholds=thresholds,
        history=history,
        values=values if values is not None else alerts.form_values(actor.tenant_id),
        error=error,
        saved=saved,
        **HELPERS,
    )


@bp.get("")
@requires("storage.view")
def index():
    # The span switch asks for the trend alone; any other htmx request gets the page.
    return _page(block="trend" if request.headers.get("HX-Target") == "trend" else None)


@bp.post("/thresholds")
@requires("storage.manage")
def set_thresholds():
    values = {kind: request.form.get(kind, "") for kind in alerts.FIELDS}
    try:
        changed = alerts.set_thresholds(current_actor(), values)
    except alerts.ThresholdError as error:
        return _page(block="thresholds", status=422, error=error, values=values)
    message = "Alert limits saved; the next metrics run checks them." if changed else "Nothing changed."
    if request.headers.get("HX-Request"):
        return _page(block="thresholds", saved=message)
    flash(message)
    return redirect(url_for("storage.index") + "#thresholds", code=303)


@bp.post("/record")
@requires("storage.manage")
def record_now():
    actor = current_actor()
    enqueue(
        "storage.record_metrics", tenant_id=actor.tenant_id, user_id=actor.user_id, label="Storage metrics"
    )
    flash("Today's storage figures are being recorded, and the thresholds checked.")
    return redirect(url_for("storage.index"), code=303)


@bp.get("/access")
@requires("storage.view")
def access():
    raw = request.args.get("patient_id", "")
    if raw and not raw.isdigit():
        abort(400)
    try:
        found = access_patterns.patterns(current_actor(), int(raw) if raw else None)
    except NotFound:
        abort(404)
    return render_page(
        "storage_cost/access.html", view=found, month_chart=month_chart(found.months), **HELPERS
    )
