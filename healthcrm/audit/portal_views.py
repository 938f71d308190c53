"""The patient's "Who has seen my record" page and its accounting of disclosures (PDF)."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user

from ..access import current_actor, requires
from ..extensions import db
from ..files.responses import file_response
from ..files.storage import attachment_disposition
from ..web import render_page
from . import disclosures
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


@bp.get("/disclosures.pdf")
@requires("portal.use")
def disclosures_pdf():
    actor, patient_id = current_actor(), current_user.patient_id
    pdf = disclosures.disclosures_pdf(actor, patient_id)
    name = disclosures.file_name(actor, patient_id)
    return file_response([pdf], "application/pdf", attachment_disposition(name), size=len(pdf))
