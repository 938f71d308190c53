"""The patient portal's home page: care stage, what needs the patient, recent activity, quick actions."""

from flask import Blueprint, current_app, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..web import render_page
from . import dashboard as dashboard_service
from . import notifications
from .timeline import kinds

bp = Blueprint("portal", __name__, url_prefix="/portal")


@bp.get("")
@requires("portal.use")
def home():
    # The patient is the session's, never one named by the request (a 404 if the account has none).
    actor = current_actor()
    board = dashboard_service.dashboard(actor, current_user.patient_id)
    return render_page(
        "portal/home.html",
        board=board,
        patient=board.patient,
        kind_labels=kinds(),
        quick_actions=_quick_actions(),
        notices=notifications.unread_notifications(actor),
        action_labels=notifications.ACTION_LABELS,
    )


def _quick_actions() -> list[tuple[str, str]]:
    """(label, link) of each quick action whose page exists: the first of its endpoints that is there."""
    found = []
    for endpoints, label in dashboard_service.QUICK_ACTIONS:
        endpoint = next((e for e in endpoints if e in current_app.view_functions), None)
        if endpoint is not None:
            found.append((label, url_for(endpoint)))
    return found
