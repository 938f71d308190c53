"""The clinic's response targets (clinic hours per task kind) and the due times they give."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..clock import zone_info
from ..errors import DomainError
from ..extensions import db
from ..portal.clinic import opening_hours
from ..tenancy import scoped
from . import hours
from .models import DEFAULT_KIND, DEFAULT_RESPONSE_HOURS, TARGET_KINDS, ResponseTarget

MAX_TARGET_HOURS = 24 * 14


class TargetError(DomainError):
    pass


def response_targets(tenant_id: int) -> dict[str, int]:
    """Hours per kind: the clinic's own, else the defaults (message 8, refill 16, everything else 24)."""
    targets = dict(DEFAULT_RESPONSE_HOURS)
    rows = db.session.execute(
        select(ResponseTarget.kind, ResponseTarget.hours).where(ResponseTarget.tenant_id == tenant_id)
    )
    targets.update({kind: value for kind, value in rows})
    return targets


def target_hours(tenant_id: int, kind: str) -> int:
    targets = response_targets(tenant_id)
    return targets.get(kind, targets[DEFAULT_KIND])


def add_clinic_hours(tenant: Tenant, start: datetime, minutes: int) -> datetime:
    return hours.add_clinic_minutes(opening_hours(tenant), zone_info(tenant.timezone), start, minutes)


def clinic_minutes_between(tenant: Tenant, start: datetime, end: datetime) -> int:
    return hours.clinic_minutes_between(opening_hours(tenant), zone_info(tenant.timezone), start, end)


def due_time(tenant: Tenant, kind: str, start: datetime) -> datetime:
    """When a task of `kind` made at `start` is due: the kind's target counted in the clinic's hours."""
    return add_clinic_hours(tenant, start, target_hours(tenant.id, kind) * 60)


def save_targets(actor: Actor, values: dict[str, str]) -> dict[str, int]:
    """Set the clinic's targets from the settings form ({kind: "8", …}); a bad value changes nothing."""
    parsed: dict[str, int] = {}
    for kind in TARGET_KINDS:
        raw = (values.get(kind) or "").strip()
        if not raw:
            if kind == DEFAULT_KIND:
                raise TargetError("Give the target for everything else.", f"target_{kind}")
            continue
        try:
            number = int(raw)
        except ValueError:
            raise TargetError("Enter a whole number of clinic hours.", f"target_{kind}") from None
        if not 1 <= number <= MAX_TARGET_HOURS:
            raise TargetError(f"Choose between 1 and {MAX_TARGET_HOURS} clinic hours.", f"target_{kind}")
        parsed[kind] = number
    db.session.execute(
        delete(ResponseTarget)
        .where(ResponseTarget.tenant_id == actor.tenant_id)
        .execution_options(synchronize_session=False)
    )
    db.session.add_all(
        ResponseTarget(tenant_id=actor.tenant_id, kind=kind, hours=value) for kind, value in parsed.items()
    )
    record_event(
        actor,
        "care.targets_changed",
        resource_type="tenant",
        resource_id=actor.tenant_id,
        changed_fields=parsed.keys(),
    )
    db.session.commit()
    return response_targets(actor.tenant_id)


def clinic_targets(tenant_id: int) -> list[tuple[str, str, int | None]]:
    """(kind, label, hours or None when the clinic has not set it) for the settings form."""
    own = dict(
        db.session.execute(
            scoped(ResponseTarget, tenant_id).with_only_columns(ResponseTarget.kind, ResponseTarget.hours)
        ).all()
    )
    return [
        (kind, label, own.get(kind, DEFAULT_RESPONSE_HOURS.get(kind))) for kind, label in TARGET_KINDS.items()
    ]
