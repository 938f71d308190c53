"""Storage alerts: admins' thresholds per clinic (monthly cost, total stored, growth per week), checked by
the metrics job after each clinic's day is recorded.

A threshold alerts once per crossing: its `above` flag is set by a guarded
`UPDATE … WHERE above = false AND limit_value = <the limit the job compared with>`, so of two jobs (or a job
run twice) one raises the alert and the other changes nothing; it is re-armed only when the figure is back
at or below the limit (the same guarded UPDATE the other way), or when an admin changes the limit. Raising
adds a `StorageAlert` row (the history), in-app notices for the clinic's active admins and, once committed,
the `storage.alert_email` job, which claims the alert's `emailed_at` before it sends: one email per alert.
Every change of a threshold, every alert raised and cleared is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction

import redis
from flask import current_app
from sqlalchemy import select, update

from ..accounts.models import ADMIN, Tenant, User
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..counters import insert_unless_exists
from ..errors import DomainError
from ..extensions import db
from ..files.checks import human_size
from ..permissions import require
from ..portal.notifications import notify_staff
from ..tenancy import get_scoped, scoped
from .costs import MONTH_DAYS, month_cost, usage_of
from .models import (
    MICRO,
    MONTHLY_COST,
    THRESHOLD_KINDS,
    TOTAL_STORED,
    WEEKLY_GROWTH,
    StorageAlert,
    StorageMetric,
    StorageThreshold,
)
from .prices import load_prices

log = logging.getLogger(__name__)
MB = 1024 * 1024
HISTORY_LIMIT = 50
# The form's fields: kind -> (label, unit shown, how many units one stored unit is).
FIELDS = {
    MONTHLY_COST: ("Monthly cost", "USD", MICRO),
    TOTAL_STORED: ("Total stored", "MB", MB),
    WEEKLY_GROWTH: ("Growth per week", "MB", MB),
}
MAX_INPUT = Decimal(10) ** 12
NOTICE_KIND = "storage_alert"


class ThresholdError(DomainError):
    """A threshold the form cannot take (not a number, negative, too precise)."""


def describe(kind: str, value: int | None) -> str:
    """A threshold or figure in words ("$12.50", "4.2 GB")."""
    if value is None:
        return "off"
    if kind == MONTHLY_COST:
        return format_usd(Fraction(value, MICRO))
    return human_size(int(value))


def format_usd(amount: Fraction | Decimal) -> str:
    """Dollars with cents; under a dollar with as many decimals as the amount needs (at most 6), so a
    small clinic's figures and the limits set for them stay apart ("$0.020365", not "$0.02")."""
    value = (
        Decimal(amount.numerator) / Decimal(amount.denominator) if isinstance(amount, Fraction) else amount
    )
    if value < 0:
        return "−" + format_usd(-value)
    if value >= 1:
        return f"${value.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"
    fine = value.quantize(Decimal("0.000001"), ROUND_HALF_UP).normalize()
    if fine.as_tuple().exponent > -2:
        fine = fine.quantize(Decimal("0.01"))
    return f"${fine:f}"


def _parse(kind: str, raw: str | None) -> int | None:
    label, unit, factor = FIELDS[kind]
    text = (raw or "").strip().replace(",", "").removeprefix("$")
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ThresholdError(f"{label}: write a number of {unit}, like 25 or 0.5.", kind) from None
    if not number.is_finite() or number <= 0:
        raise ThresholdError(f"{label}: write a number above 0, or leave it empty to turn it off.", kind)
    if number >= MAX_INPUT:
        raise ThresholdError(f"{label}: that is more than any clinic stores.", kind)
    scaled = number * factor
    if kind == MONTHLY_COST and scaled != scaled.to_integral_value():
        raise ThresholdError(f"{label}: at most 6 decimals.", kind)
    return int(scaled.to_integral_value(ROUND_HALF_UP))


def form_values(tenant_id: int) -> dict[str, str]:
    """The thresholds as the form shows them."""
    shown = {}
    for threshold in thresholds(tenant_id):
        if threshold.limit_value is not None:
            number = Decimal(threshold.limit_value) / FIELDS[threshold.kind][2]
            if threshold.kind != MONTHLY_COST:
                number = number.quantize(Decimal("0.001"), ROUND_HALF_UP)
            shown[threshold.kind] = f"{number.normalize():f}"
    return shown


def thresholds(tenant_id: int) -> list[StorageThreshold]:
    return list(db.session.scalars(scoped(StorageThreshold, tenant_id).order_by(StorageThreshold.kind)))


def set_thresholds(actor: Actor, raw: dict[str, str | None]) -> list[str]:
    """Set the clinic's thresholds from the form (an empty field turns one off); commits. A changed limit
    is re-armed. Returns the kinds changed. Raises ThresholdError (nothing changes) for bad input."""
    require(actor, "storage.manage")
    wanted = {kind: _parse(kind, raw.get(kind)) for kind in THRESHOLD_KINDS}
    changed = []
    for kind, limit in wanted.items():
        insert_unless_exists(
            StorageThreshold,
            {"tenant_id": actor.tenant_id, "kind": kind, "limit_value": None, "above": False,
             "changed_at": utcnow()},
            ["tenant_id", "kind"],
        )  # fmt: skip
        moved = db.session.execute(
            update(StorageThreshold)
            .where(
                StorageThreshold.tenant_id == actor.tenant_id,
                StorageThreshold.kind == kind,
                StorageThreshold.limit_value.is_distinct_from(limit),
            )
            .values(limit_value=limit, above=False, changed_at=utcnow(), changed_by_user_id=actor.user_id)
            .returning(StorageThreshold.id)
        ).first()
        if moved is not None:
            changed.append(kind)
            record_event(
                actor,
                "storage.threshold_changed",
                resource_type="storage_threshold",
                resource_id=moved[0],
                changed_fields=[kind],
            )
    db.session.commit()
    return changed


# --- the check --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """The clinic's figures the thresholds compare with, in their units (None: not known yet)."""

    monthly_cost: int | None
    total_stored: int | None
    weekly_growth: int | None

    def of(self, kind: str) -> int | None:
        return getattr(self, kind)


def figures_for(tenant_id: int, day: date) -> Figures:
    """Monthly cost (micro-USD, from the price table in force), bytes stored and growth over 7 days, as of
    `day`'s row."""
    rows = list(
        db.session.scalars(
            scoped(StorageMetric, tenant_id)
            .where(StorageMetric.day > day - timedelta(days=MONTH_DAYS), StorageMetric.day <= day)
            .order_by(StorageMetric.day)
        )
    )
    if not rows or rows[-1].day != day:
        return Figures(None, None, None)
    today = rows[-1]
    cost = month_cost(usage_of(today, rows), load_prices(current_app.config)).total
    week_ago = db.session.scalar(
        scoped(StorageMetric, tenant_id)
        .where(StorageMetric.day <= day - timedelta(days=7))
        .order_by(StorageMetric.day.desc())
        .limit(1)
    )
    growth = today.bytes_stored - week_ago.bytes_stored if week_ago is not None else None
    micro = int(
        (Decimal(cost.numerator) * MICRO / Decimal(cost.denominator)).to_integral_value(ROUND_HALF_UP)
    )
    return Figures(monthly_cost=micro, total_stored=today.bytes_stored, weekly_growth=growth)


def _admin_ids(tenant_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(User.id).where(User.tenant_id == tenant_id, User.role == ADMIN, User.active.is_(True))
        )
    )


def check_thresholds(tenant_id: int, day: date) -> list[int]:
    """Raise or clear each threshold of the clinic against `day`'s figures; commits. Returns the ids of the
    alerts raised (their emails are queued after the commit)."""
    figures = figures_for(tenant_id, day)
    raised = []
    system = Actor.system(tenant_id)
    for threshold in thresholds(tenant_id):
        value = figures.of(threshold.kind)
        if threshold.limit_value is None or value is None:
            continue
        limit = threshold.limit_value
        guard = (
            StorageThreshold.id == threshold.id,
            StorageThreshold.tenant_id == tenant_id,
            StorageThreshold.limit_value == limit,
        )
        if value > limit:
            won = db.session.execute(
                update(StorageThreshold).where(*guard, StorageThreshold.above.is_(False)).values(above=True)
            ).rowcount
            if won:
                alert = StorageAlert(
                    tenant_id=tenant_id, threshold_id=threshold.id, kind=threshold.kind, limit_value=limit,
                    value=value, day=day, crossed_at=utcnow(),
                )  # fmt: skip
                db.session.add(alert)
                db.session.flush()
                label = FIELDS[threshold.kind][0]
                notify_staff(
                    tenant_id,
                    _admin_ids(tenant_id),
                    NOTICE_KIND,
                    f"Storage alert: {label.lower()} is {describe(threshold.kind, value)}, above the "
                    f"{describe(threshold.kind, limit)} you set.",
                    "/admin/storage",
                )
                record_event(
                    system, "storage.alert_raised", resource_type="storage_alert", resource_id=alert.id
                )
                raised.append(alert.id)
        else:
            cleared = db.session.execute(
                update(StorageThreshold).where(*guard, StorageThreshold.above.is_(True)).values(above=False)
            ).rowcount
            if cleared:
                open_alert = db.session.scalar(
                    scoped(StorageAlert, tenant_id)
                    .where(StorageAlert.threshold_id == threshold.id, StorageAlert.cleared_at.is_(None))
                    .order_by(StorageAlert.id.desc())
                    .limit(1)
                )
                if open_alert is not None:
                    open_alert.cleared_at = utcnow()
                    record_event(
                        system,
                        "storage.alert_cleared",
                        resource_type="storage_alert",
                        resource_id=open_alert.id,
                    )
    db.session.commit()
    for alert_id in raised:
        _queue_email(alert_id, tenant_id)
    return raised


def _queue_email(alert_id: int, tenant_id: int) -> None:
    from ..jobs.queue import enqueue  # noqa: PLC0415 - jobs imports every area's tasks

    try:
        enqueue("storage.alert_email", alert_id, tenant_id=tenant_id, label="Storage alert email")
    except redis.RedisError:
        log.warning("email for storage alert %s not queued (the queue is down)", alert_id)


def email_alert(alert_id: int, tenant_id: int) -> int:
    """Email the alert to the clinic's active admins, once: the claim of `emailed_at` is held until the
    messages are handed over (a failure rolls it back for the retry). Returns how many were sent."""
    claimed = db.session.execute(
        update(StorageAlert)
        .where(
            StorageAlert.id == alert_id,
            StorageAlert.tenant_id == tenant_id,
            StorageAlert.emailed_at.is_(None),
        )
        .values(emailed_at=utcnow())
    ).rowcount
    if not claimed:
        db.session.rollback()
        return 0
    from ..mail.services import compose, deliver  # noqa: PLC0415 - mail renders app templates

    alert = get_scoped(StorageAlert, alert_id, tenant_id)
    clinic = db.session.get(Tenant, tenant_id)
    admins = db.session.scalars(scoped(User, tenant_id).where(User.role == ADMIN, User.active.is_(True)))
    url = f"{current_app.config['PUBLIC_URL']}/admin/storage"
    sent = 0
    for admin in admins:
        deliver(
            compose(
                admin.email,
                "storage_alert",
                tenant_id=tenant_id,
                user=admin,
                clinic=clinic,
                label=FIELDS[alert.kind][0],
                value=describe(alert.kind, alert.value),
                limit=describe(alert.kind, alert.limit_value),
                day=alert.day,
                url=url,
            )
        )
        sent += 1
    db.session.commit()
    return sent


def history(tenant_id: int, limit: int = HISTORY_LIMIT) -> list[StorageAlert]:
    """The clinic's alerts, newest first."""
    return list(
        db.session.scalars(scoped(StorageAlert, tenant_id).order_by(StorageAlert.id.desc()).limit(limit))
    )
