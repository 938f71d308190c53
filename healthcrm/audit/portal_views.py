"""The patient's "Who has seen my record" page."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user

from ..access import current_actor, requires
from ..extensions import db
from ..web import render_page
from .patient_access import PAGE_SIZE, WHO, accesses

bp = Blueprint("portal_access", __name__, url_prefix="/portal/access")


@bp.get("")
@requires("portal.use")
def index():
    raw = request.args.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) < 12 else None
    who = request.args.get("who", "")
    who = who if who in WHO else ""
    rows = accesses(current_actor(), current_user.patient_id, who=who, before=before)
    db.session.commit()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_page(
        "portal/access.html",
        block="list",
        rows=rows,
        who=who,
        choices=WHO,
        before=before,
        older=rows[-1].event_id if more and rows else None,
    )
