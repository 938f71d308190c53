"""The staff's message inbox (blueprint `care_inbox`): threads by status in a scope (mine, my pools, all),
a thread with reply, reassign and close, messaging on or off for the patient, and (for admins) the
clinic's topics and the notice patients read before sending."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, request, url_for

from ..access import current_actor, requires
from ..accounts.roles import ROLE_LABELS, STAFF_ROLES
from ..errors import NotFound
from ..extensions import htmx
from ..portal.messages import handlers as _handlers  # noqa: F401 - registers the event handlers
from ..portal.messages import services
from ..portal.messages.attachments import attachment_response, uploads_from
from ..web import render_page

bp = Blueprint("care_inbox", __name__, url_prefix="/care/inbox")
INVALID = 422
inbox_users = requires("care.inbox")
settings_users = requires("care.settings")


@bp.get("")
@inbox_users
def index():
    try:
        cursor = services.parse_cursor(request.args.get("before"))
    except ValueError:
        abort(400)
    page = services.inbox(
        current_actor(),
        status=request.args.get("status", services.NEW),
        scope=request.args.get("scope", "all"),
        cursor=cursor,
    )
    return render_page(
        "care/inbox/index.html",
        block="rows" if request.args.get("before") else None,
        page=page,
        statuses=services.THREAD_STATUSES,
        scopes=services.SCOPES,
    )


def _thread_page(
    thread_id: int, *, body: str = "", errors: dict | None = None, status: int = 200
) -> Response:
    actor = current_actor()
    try:
        view = services.staff_thread(actor, thread_id)
    except NotFound:
        abort(404)
    return render_page(
        "care/inbox/show.html",
        block="conversation" if request.method == "POST" and htmx else None,
        view=view,
        thread=view.thread,
        colleagues=services.colleagues(actor),
        body=body,
        errors=errors or {},
        max_files=services.MAX_ATTACHMENTS,
        status=status,
    )


@bp.get("/<int:thread_id>")
@inbox_users
def show(thread_id: int):
    return _thread_page(thread_id)


@bp.post("/<int:thread_id>/reply")
@inbox_users
def reply(thread_id: int):
    body = request.form.get("body", "")
    try:
        services.staff_reply(current_actor(), thread_id, body, uploads_from(request.files))
    except NotFound:
        abort(404)
    except services.MessageError as error:
        return _thread_page(
            thread_id, body=body, errors={error.field or "form": error.message}, status=INVALID
        )
    if not htmx:
        return redirect(url_for("care_inbox.show", thread_id=thread_id), code=303)
    return _thread_page(thread_id)


@bp.post("/<int:thread_id>/reassign")
@inbox_users
def reassign(thread_id: int):
    target = request.form.get("to", "")
    kind, _, raw_id = target.partition(":")
    try:
        chosen = int(raw_id)
    except ValueError:
        chosen = None
    try:
        services.reassign(
            current_actor(),
            thread_id,
            assignee_id=chosen if kind == "user" else None,
            topic_id=chosen if kind == "topic" else None,
        )
    except NotFound:
        abort(404)
    except services.MessageError as error:
        return _thread_page(thread_id, errors={"assignee": error.message}, status=INVALID)
    flash("The thread was reassigned.", "success")
    return redirect(url_for("care_inbox.show", thread_id=thread_id), code=303)


@bp.post("/<int:thread_id>/close")
@inbox_users
def close(thread_id: int):
    try:
        services.close_thread(current_actor(), thread_id)
    except NotFound:
        abort(404)
    flash("The thread was closed.", "success")
    return redirect(url_for("care_inbox.show", thread_id=thread_id), code=303)


@bp.post("/patients/<int:patient_id>/messaging")
@inbox_users
def messaging(patient_id: int):
    enabled = request.form.get("enabled") == "on"
    try:
        services.set_messaging(current_actor(), patient_id, enabled)
    except NotFound:
        abort(404)
    flash("Messages are on for this patient." if enabled else "Messages are off for this patient.", "success")
    back = request.form.get("thread_id", type=int)
    if back:
        return redirect(url_for("care_inbox.show", thread_id=back), code=303)
    return redirect(url_for("patients.show", patient_id=patient_id), code=303)


@bp.get("/<int:thread_id>/files/<int:attachment_id>")
@inbox_users
def attachment(thread_id: int, attachment_id: int):
    return attachment_response(lambda: services.open_attachment(current_actor(), thread_id, attachment_id))


# --- topics and the notice (admins) ------------------------------------------------------------------------


def _topics_page(*, errors: dict | None = None, form: dict | None = None, status: int = 200) -> Response:
    actor = current_actor()
    settings = services.settings_of(actor.tenant_id)
    return render_page(
        "care/inbox/topics.html",
        topics=services.topics(actor.tenant_id),
        settings=settings,
        defaults={
            "emergency_notice": services.DEFAULT_EMERGENCY_NOTICE,
            "reply_time": services.DEFAULT_REPLY_TIME,
        },
        roles=[(role, ROLE_LABELS[role]) for role in STAFF_ROLES],
        errors=errors or {},
        form=form or {},
        status=status,
    )


@bp.route("/topics", methods=["GET", "POST"])
@settings_users
def topics():
    if request.method == "GET":
        return _topics_page()
    form = {"name": request.form.get("name", ""), "roles": request.form.getlist("roles")}
    try:
        services.create_topic(current_actor(), form["name"], form["roles"])
    except services.MessageError as error:
        return _topics_page(errors={f"new_{error.field}": error.message}, form=form, status=INVALID)
    flash("Topic added.", "success")
    return redirect(url_for("care_inbox.topics"), code=303)


@bp.post("/topics/<int:topic_id>")
@settings_users
def topic_update(topic_id: int):
    try:
        services.update_topic(
            current_actor(),
            topic_id,
            request.form.get("name", ""),
            request.form.getlist("roles"),
            request.form.get("active") == "on",
        )
    except NotFound:
        abort(404)
    except services.MessageError as error:
        return _topics_page(errors={f"topic_{topic_id}": error.message}, status=INVALID)
    flash("Topic saved.", "success")
    return redirect(url_for("care_inbox.topics"), code=303)


@bp.post("/notice")
@settings_users
def notice():
    form = {key: request.form.get(key, "") for key in ("emergency_notice", "reply_time")}
    try:
        services.save_settings(
            current_actor(),
            emergency_notice=form["emergency_notice"],
            reply_time=form["reply_time"],
            show_hours=request.form.get("show_hours") == "on",
        )
    except services.MessageError as error:
        return _topics_page(
            errors={error.field or "emergency_notice": error.message}, form=form, status=INVALID
        )
    flash("The notice was saved.", "success")
    return redirect(url_for("care_inbox.topics"), code=303)


@bp.app_template_global("patient_message_threads")
def patient_message_threads(patient_id: int) -> list:
    """The patient's latest threads, for the staff patient page's Messages section."""
    return services.patient_summary(current_actor(), patient_id)
