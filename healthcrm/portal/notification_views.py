"""The patient's notifications: the list (every kind, sharing's notices too), mark read, mark all read, the
unread badge htmx polls, and the choice of what is also emailed. The person always comes from the session:
another person's notification id marks nothing and opens nothing."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user

from ..access import background, current_actor, requires
from ..extensions import htmx
from ..web import render_page
from . import notifications

bp = Blueprint("portal_notifications", __name__, url_prefix="/portal/notifications")
TEMPLATE = "portal/notifications.html"

KIND_LABELS = {
    "message": "Message",
    "result": "Result",
    "refill": "Refill",
    "care_plan": "Care plan",
    "profile": "Profile",
    "share": "Sharing",
}


def _list_page(status: int = 200):
    rows, older, before = notifications.notification_page(current_actor(), request.args.get("before"))
    return render_page(
        TEMPLATE,
        block="list",
        status=status,
        items=rows,
        older=older,
        kind_labels=KIND_LABELS,
        action_labels=notifications.ACTION_LABELS,
        before=before,
    )


@bp.get("")
@requires("portal.use")
def index():
    return _list_page()


@bp.get("/badge")
@requires("portal.use")
@background  # the poll is not the patient's activity: the idle sign-out still comes
def badge():
    return render_page("portal/_notification_badge.html")


@bp.post("/<int:notification_id>/mark-read")
@requires("portal.use")
def mark_read(notification_id: int):
    actor = current_actor()
    if notifications.own_notification(actor, notification_id) is None:
        abort(404)
    notifications.mark_read(actor, notification_id)
    return _after_marking()


@bp.post("/mark-all-read")
@requires("portal.use")
def mark_all_read():
    notifications.mark_read(current_actor())
    if request.form.get("back") != "home":
        flash("All notifications marked as read.", "success")
    return _after_marking()


def _after_marking():
    """The page the marking came from (the list, or the portal home's card), or its fragment for htmx."""
    if request.form.get("back") == "home":
        if not htmx:
            return redirect(url_for("portal.home"), code=303)
        return render_page(
            "portal/home.html",
            block="notices",
            notices=notifications.unread_notifications(current_actor()),
            action_labels=notifications.ACTION_LABELS,
        )
    if htmx:
        return _list_page()
    return redirect(url_for("portal_notifications.index"), code=303)


@bp.route("/settings", methods=["GET", "POST"])
@requires("portal.use")
def settings():
    errors = {}
    status = 200
    if request.method == "POST":
        try:
            notifications.save_email_kinds(current_actor(), current_user, request.form.getlist("kinds"))
        except notifications.NotificationChoiceError as error:
            errors[error.field] = error.message
            status = 422
        else:
            flash("Your email choices are saved.", "success")
            return redirect(url_for("portal_notifications.settings"), code=303)
    return render_page(
        "portal/notification_settings.html",
        status=status,
        kinds=notifications.EMAIL_KINDS,
        chosen=notifications.email_kinds(current_user),
        errors=errors,
    )
