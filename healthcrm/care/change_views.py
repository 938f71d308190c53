"""The staff queue of the patients' identity change requests (name, date of birth, sex): approve (the new
values go onto the patient) or reject with a note, once; a second decider is told someone decided first."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for

from ..access import current_actor, requires
from ..errors import Conflict
from ..portal.profile import services
from ..web import render_page

bp = Blueprint("care_changes", __name__, url_prefix="/care/change-requests")
TEMPLATE = "care/change_requests.html"
INVALID = 422


def _queue(*, status: int = 200, errors: dict[int, str] | None = None, message: str | None = None):
    queue = services.change_queue(current_actor())
    return render_page(TEMPLATE, queue=queue, errors=errors or {}, message=message, status=status)


@bp.get("")
@requires("care.change_requests")
def index():
    return _queue()


@bp.post("/<int:request_id>/decide")
@requires("care.change_requests")
def decide(request_id: int):
    try:
        services.decide_change(
            current_actor(), request_id, request.form.get("decision"), request.form.get("note")
        )
    except Conflict as error:
        return _queue(status=409, message=error.message)
    except services.ProfileError as error:
        return _queue(status=INVALID, errors={request_id: error.message})
    flash("Decided; the patient is told.", "success")
    return redirect(url_for("care_changes.index"), 303)
