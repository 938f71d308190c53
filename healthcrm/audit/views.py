"""The audit log viewer for clinic admins."""

from flask import Blueprint, request
from flask_login import current_user

from ..access import requires
from ..web import render_page
from .services import describe_events, find_events, verify_chain

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 50


def _number(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


@bp.get("")
@requires("audit.read")
def index():
    action = request.args.get("action", "").strip()[:60]
    patient = request.args.get("patient", "").strip()[:12]
    events = find_events(
        current_user.tenant_id,
        action_prefix=action,
        patient_id=_number("patient"),
        before_id=_number("before"),
        limit=PAGE_SIZE,
    )
    report = verify_chain(current_user.tenant_id, all_chains=False) if request.args.get("verify") else None
    return render_page(
        "audit/index.html",
        block="events",
        entries=describe_events(current_user.tenant_id, events),
        action=action,
        patient=patient,
        report=report,
        next_before=events[-1].id if len(events) == PAGE_SIZE else None,
    )
