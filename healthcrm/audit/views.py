"""The audit log viewer for clinic admins."""

from flask import Blueprint, abort, request
from flask_login import current_user
from sqlalchemy import func, select

from ..access import requires
from ..accounts.models import Tenant
from ..accounts.roles import ALL_ROLES, ROLE_LABELS
from ..extensions import db
from ..web import render_page
from .models import AuditEvent
from .search import OUTCOMES, apply_filters, parse_filter
from .services import describe_events, verify_chain

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 50


def _zone(tenant_id: int) -> str | None:
    return db.session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))


@bp.get("")
@requires("audit.read")
def index():
    tenant_id = current_user.tenant_id
    filters = parse_filter(request.args)
    query = apply_filters(
        select(AuditEvent).where(AuditEvent.tenant_id == tenant_id),
        AuditEvent,
        filters,
        zone=_zone(tenant_id),
    )
    if filters.before is not None:
        query = query.where(AuditEvent.id < filters.before)
    events = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE)))
    report = verify_chain(tenant_id, all_chains=False) if request.args.get("verify") else None
    return render_page(
        "audit/index.html",
        block="events",
        entries=describe_events(tenant_id, events),
        filters=filters,
        roles=[(r, ROLE_LABELS.get(r, r)) for r in ALL_ROLES] + [("system", "System")],
        outcomes=OUTCOMES,
        report=report,
        next_before=events[-1].id if len(events) == PAGE_SIZE else None,
    )


@bp.get("/<int:event_id>")
@requires("audit.read")
def event(event_id: int):
    tenant_id = current_user.tenant_id
    found = db.session.scalar(
        select(AuditEvent).where(AuditEvent.tenant_id == tenant_id, AuditEvent.id == event_id)
    )
    if found is None:
        abort(404)
    position = db.session.scalar(
        select(func.count()).where(AuditEvent.tenant_id == tenant_id, AuditEvent.id <= found.id)
    )
    same_request = []
    if found.request_id:
        same_request = list(
            db.session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.tenant_id == tenant_id,
                    AuditEvent.request_id == found.request_id,
                    AuditEvent.id != found.id,
                )
                .order_by(AuditEvent.id)
                .limit(200)
            )
        )
    entries = describe_events(tenant_id, [found, *same_request])
    return render_page("audit/event.html", entry=entries[0], position=position, same_request=entries[1:])
