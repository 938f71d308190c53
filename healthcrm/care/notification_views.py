"""The staff's notifications (`notify_staff` of healthcrm/portal/notifications.py: a file restore is ready, a
storage alert, a new API token): the list, newest first, mark read and mark all read (in place with htmx, or
as plain form posts), and the unread badge in the staff bar, which htmx polls. The person always comes from
the session: another person's notification, or another clinic's, answers 404 and marks nothing."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for

from ..access import background, current_actor, staff_only
from ..extensions import htmx
from ..portal import notifications
from ..web import render_page, safe_next

bp = Blueprint("staff_notifications", __name__, url_prefix="/notifications")
TEMPLATE = "care/notifications.html"

KIND_LABELS = {
    "restore": "File restore",
    "storage_alert": "Storage alert",
    "storage": "Storage",
    "api_token": "API token",
}


def _list_page(status: int = 200):
    rows, older, before = notifications.notification_page(current_actor(), request.args.get("before"))
    return render_page(
        TEMPLATE,
        block="list",
        status=status,
        items=rows,
        # A notification's link is a path in the app; anything else is not offered as a link.
        links={row.id: safe_next(row.link, "") or None for row in rows},
        older=older,
        kind_labels=KIND_LABELS,
        before=before,
    )


@bp.get("")
@staff_only
def index():
    return _list_page()


@bp.get("/badge")
@staff_only
@background
def badge():
    return render_page("care/_notification_badge.html")


@bp.post("/<int:notification_id>/read")
@staff_only
def mark_read(notification_id: int):
    actor = current_actor()
    if notifications.own_notification(actor, notification_id) is None:
        abort(404)
    notifications.mark_read(actor, notification_id)
    return _after_marking()


@bp.post("/read-all")
@staff_only
def mark_all_read():
    changed = notifications.mark_read(current_actor())
    if not htmx:
        flash("All notifications marked as read." if changed else "Nothing was unread.", "success")
    return _after_marking()


def _after_marking():
    if htmx:
        response = _list_page()
        response.headers["HX-Trigger"] = "notifications-changed"  # the bar's badge asks for its count
        return response
    return redirect(url_for("staff_notifications.index"), code=303)
