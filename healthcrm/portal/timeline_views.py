"""The patient's timeline page: everything that happened in their care, newest first, filtered by kind in
the URL (`?kind=visit&kind=result`), the next page loaded as the patient scrolls to the end (htmx
`revealed` on the list's last item) or by its plain "Older" link (`?after=<cursor>`)."""

from __future__ import annotations

from flask import Blueprint, abort, request
from flask_login import current_user

from ..access import current_actor, requires
from ..web import render_page
from . import timeline as service

bp = Blueprint("portal_timeline", __name__, url_prefix="/portal/timeline")


@bp.get("")
@requires("portal.use")
def index():
    patient_id = current_user.patient_id  # the session's patient, never one named by the request
    asked = request.args.getlist("kind")
    after = None
    cursor = request.args.get("after")
    if cursor:
        try:
            after = service.decode_cursor(cursor, patient_id)
        except service.BadCursor:
            abort(400)
    page = service.timeline_page(current_actor(), patient_id, asked_kinds=asked, after=after)
    shown = page.kinds
    filtered = set(shown) != set(service.kinds())
    next_cursor = service.encode_cursor(page.next_position, patient_id) if page.next_position else None
    # The "Older" item asks for the next page's items alone (htmx), the filter form for the whole list.
    block = "items" if after is not None else "list"
    return render_page(
        "portal/timeline.html",
        block=block,
        page=page,
        kind_labels=service.kinds(),
        shown=shown,
        filtered=filtered,
        continued=after is not None,
        next_cursor=next_cursor,
        filter_args={"kind": shown} if filtered else {},
    )
