"""The audit log viewer for clinic admins."""

from flask import Blueprint, request
from flask_login import current_user
from sqlalchemy import select

from ..access import admin_only
from ..extensions import db
from ..web import render_page
from .models import AuditEvent
from .services import verify_chain

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 50


@bp.get("")
@admin_only
def index():
    query = select(AuditEvent).where(AuditEvent.tenant_id == current_user.tenant_id)
    action = request.args.get("action", "").strip()[:60]
    patient = request.args.get("patient", "").strip()
    before = request.args.get("before", "")
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    if patient.isdigit():
        query = query.where(AuditEvent.patient_id == int(patient))
    if before.isdigit():
        query = query.where(AuditEvent.id < int(before))
    events = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE)))
    report = verify_chain(current_user.tenant_id, all_chains=False) if request.args.get("verify") else None
    return render_page(
        "audit/index.html",
        block="events",
        events=events,
        action=action,
        patient=patient,
        report=report,
        next_before=events[-1].id if len(events) == PAGE_SIZE else None,
    )
