"""The storage figures as JSON for admins: /api/storage/metrics, /costs, /trends?days=30|90|365, /alerts.

The same services as the dashboard (dashboard.py), so the numbers agree: bytes as integers, money in the
price table's currency to 6 decimals, days as ISO dates. Only GETs, which change nothing (no CSRF token
needed). The actor's clinic only: the queries are tenant-scoped and take no clinic from the request.

Authentication is the session or a personal API token (`requires(..., tokens=True)`, healthcrm/access.py):
the token acts as its person, with their role's permissions. Errors are JSON too: 400 for a bad parameter,
403 / 404 as the rest of the app answers them.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from ..access import current_actor, requires
from ..web import _error_page
from . import alerts, dashboard
from .charts import dollars

bp = Blueprint("storage_api", __name__, url_prefix="/api/storage")


@bp.errorhandler(HTTPException)
def _json_error(error: HTTPException):
    # The app's own answer (JSON here, with its WWW-Authenticate for a refused token), which audits a
    # refusal (403) as every page does; a bad parameter's 400 also says which and why.
    answer = _error_page(error)
    if error.code == 400:
        answer = jsonify(error=error.name, message=error.description, detail=error.description, status=400)
        answer.status_code = 400
    return answer


@bp.errorhandler(dashboard.BadParameter)
def _bad_parameter(error: dashboard.BadParameter):
    return jsonify(error="Bad Request", detail=str(error)), 400


def _reject_unknown(*allowed: str) -> None:
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise dashboard.BadParameter(f"unknown parameter {unknown[0]!r}")


def metrics_payload(tenant_id: int) -> dict:
    current = dashboard.current(tenant_id, dashboard.prices())
    row = current.row
    if row is None:
        return {"clinic_day": dashboard.clinic_day(tenant_id).isoformat(), "recorded_day": None}
    return {
        "clinic_day": dashboard.clinic_day(tenant_id).isoformat(),
        "recorded_day": row.day.isoformat(),
        "objects": row.objects,
        "bytes_original": row.bytes_original,
        "bytes_stored": row.bytes_stored,
        "bytes_saved_by_compression": row.bytes_original - row.bytes_stored,
        "by_class": [
            {"storage_class": c.storage_class, "objects": c.objects, "bytes_stored": c.bytes_stored}
            for c in current.classes
        ],
        "by_size": [
            {"bucket": s.key, "label": s.label, "objects": s.objects, "bytes_stored": s.bytes_stored}
            for s in current.sizes
        ],
        "requests_that_day": {
            "puts": row.puts,
            "gets": row.views + row.downloads,
            "views": row.views,
            "downloads": row.downloads,
            "restores": row.restores,
            "retrieved_bytes": row.retrieved_bytes,
        },
        "requests_a_month": {name: round(float(value), 3) for name, value in current.month_requests.items()},
    }


def costs_payload(tenant_id: int) -> dict:
    table = dashboard.prices()
    current = dashboard.current(tenant_id, table)
    _, predicted = dashboard.trend_and_forecast(tenant_id, 30, table)
    found: dict = {
        "currency": table.currency,
        "prices": {"source": table.source, "taken": table.taken},
        "recorded_day": current.row.day.isoformat() if current.row else None,
    }
    estimate = current.estimate
    if estimate is not None:
        found.update(
            month_cost=dollars(estimate.total),
            by_class=[
                {
                    "storage_class": c.storage_class,
                    "objects": c.objects,
                    "bytes_stored": c.stored_bytes,
                    "billable_bytes": int(c.billable_bytes),
                    "storage": dollars(c.storage),
                    "archive_overhead": dollars(c.overhead),
                    "monitoring": dollars(c.monitoring),
                    "retrieval": dollars(c.retrieval),
                    "total": dollars(c.total),
                }
                for c in estimate.classes
            ],
            requests={"puts": dollars(estimate.puts), "gets": dollars(estimate.gets)},
            everything_standard_uncompressed=dollars(estimate.baseline),
            saving_from_compression=dollars(estimate.saving_compression),
            saving_from_tiering=dollars(estimate.saving_tiering),
            saving_total=dollars(estimate.saving_total),
        )
    found["forecast"] = None
    if predicted is not None:
        found["forecast"] = {
            "method": f"least squares over the last {dashboard.FORECAST_DAYS} days of the series",
            "fitted_days": predicted.based_on_days,
            "from": predicted.first_day.isoformat(),
            "to": predicted.last_day.isoformat(),
            "month_cost_change_per_day": dollars(predicted.cost_per_day),
            "months": [
                {
                    "day": m.day.isoformat(),
                    "month_cost": dollars(m.month_cost),
                    "bytes_stored": int(m.bytes_stored),
                }
                for m in predicted.months
            ],
        }
    return found


def trends_payload(tenant_id: int, days: int) -> dict:
    points, _ = dashboard.trend_and_forecast(tenant_id, days, dashboard.prices())
    return {
        "days": days,
        "points": [
            {
                "day": p.day.isoformat(),
                "bytes_stored": p.bytes_stored,
                "bytes_original": p.bytes_original,
                "month_cost": dollars(p.month_cost),
                "bytes_by_class": p.by_class,
            }
            for p in points
        ],
    }


def alerts_payload(tenant_id: int) -> dict:
    thresholds, history = dashboard.alert_state(tenant_id)
    units = {kind: "micro_usd" if kind == "monthly_cost" else "bytes" for kind in alerts.FIELDS}
    return {
        "thresholds": [
            {"kind": t.kind, "unit": units[t.kind], "limit": t.limit_value, "above": t.above}
            for t in thresholds
            if t.limit_value is not None
        ],
        "history": [
            {
                "id": a.id,
                "kind": a.kind,
                "unit": units[a.kind],
                "limit": a.limit_value,
                "value": a.value,
                "day": a.day.isoformat(),
                "crossed_at": a.crossed_at.isoformat() + "Z",
                "cleared_at": a.cleared_at.isoformat() + "Z" if a.cleared_at else None,
            }
            for a in history
        ],
    }


@bp.get("/metrics")
@requires("storage.view", tokens=True)
def metrics():
    _reject_unknown()
    return jsonify(metrics_payload(current_actor().tenant_id))


@bp.get("/costs")
@requires("storage.view", tokens=True)
def costs():
    _reject_unknown()
    return jsonify(costs_payload(current_actor().tenant_id))


@bp.get("/trends")
@requires("storage.view", tokens=True)
def trends():
    _reject_unknown("days")
    days = dashboard.trend_days(request.args.get("days"))
    return jsonify(trends_payload(current_actor().tenant_id, days))


@bp.get("/alerts")
@requires("storage.view", tokens=True)
def alert_list():
    _reject_unknown()
    return jsonify(alerts_payload(current_actor().tenant_id))
