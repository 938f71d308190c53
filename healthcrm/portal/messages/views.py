"""The patient's messages (blueprint `portal_messages`): the threads, a new message, a thread with its
replies (sent in place with htmx, or as a plain form post), and a message's files.

The patient id always comes from the session, never from the request; a thread id that is not the
patient's answers 404.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, request, url_for
from flask_login import current_user

from ...access import current_actor, requires
from ...errors import NotFound
from ...extensions import htmx
from ...web import render_page
from . import handlers as _handlers  # noqa: F401 - registers the event handlers and feed sources
from . import services
from .attachments import attachment_response, uploads_from

bp = Blueprint("portal_messages", __name__, url_prefix="/portal/messages")
INVALID = 422
patients_only = requires("portal.use")


def _cursor():
    try:
        return services.parse_cursor(request.args.get("before"))
    except ValueError:
        abort(400)


@bp.get("")
@patients_only
def index():
    try:
        rows, next_cursor = services.patient_threads(current_actor(), current_user.patient_id, _cursor())
    except NotFound:
        abort(404)
    return render_page("portal/messages/index.html", block="threads", rows=rows, next_cursor=next_cursor)


def _compose_page(form: dict, errors: dict, *, status: int = 200) -> Response:
    actor = current_actor()
    try:
        patient, topics = services.compose_choices(actor, current_user.patient_id)
    except NotFound:
        abort(404)
    return render_page(
        "portal/messages/new.html",
        patient=patient,
        topics=topics,
        notice=services.notice_for(current_user.tenant),
        form=form,
        errors=errors,
        max_files=services.MAX_ATTACHMENTS,
        status=status,
    )


@bp.route("/new", methods=["GET", "POST"])
@patients_only
def new():
    if request.method == "GET":
        return _compose_page({"to": "coach", "subject": "", "body": ""}, {})
    form = {key: request.form.get(key, "") for key in ("to", "subject", "body")}
    to = form["to"]
    topic_id = None
    if to.startswith("topic:"):
        try:
            topic_id = int(to.removeprefix("topic:"))
        except ValueError:
            return _compose_page(form, {"to": "Choose who to write to."}, status=INVALID)
    try:
        thread = services.start_thread(
            current_actor(),
            current_user.patient_id,
            subject=form["subject"],
            body=form["body"],
            topic_id=topic_id,
            uploads=uploads_from(request.files),
        )
    except services.MessageError as error:
        return _compose_page(form, {error.field or "form": error.message}, status=INVALID)
    return redirect(url_for("portal_messages.show", thread_id=thread.id), code=303)


def _thread_page(
    thread_id: int, *, body: str = "", errors: dict | None = None, status: int = 200
) -> Response:
    try:
        view = services.patient_thread(current_actor(), current_user.patient_id, thread_id)
    except NotFound:
        abort(404)
    return render_page(
        "portal/messages/show.html",
        block="conversation" if request.method == "POST" else None,
        view=view,
        thread=view.thread,
        body=body,
        errors=errors or {},
        messaging_enabled=current_user.patient.messaging_enabled,
        max_files=services.MAX_ATTACHMENTS,
        status=status,
    )


@bp.route("/<int:thread_id>", methods=["GET", "POST"])
@patients_only
def show(thread_id: int):
    if request.method == "GET":
        return _thread_page(thread_id)
    body = request.form.get("body", "")
    try:
        services.patient_reply(
            current_actor(), current_user.patient_id, thread_id, body, uploads_from(request.files)
        )
    except NotFound:
        abort(404)
    except services.MessageError as error:
        return _thread_page(
            thread_id, body=body, errors={error.field or "form": error.message}, status=INVALID
        )
    if not htmx:
        return redirect(url_for("portal_messages.show", thread_id=thread_id, _anchor="reply"), code=303)
    return _thread_page(thread_id)


@bp.get("/<int:thread_id>/files/<int:attachment_id>")
@patients_only
def attachment(thread_id: int, attachment_id: int):
    return attachment_response(
        lambda: services.open_attachment(
            current_actor(), thread_id, attachment_id, patient_id=current_user.patient_id
        )
    )


__all__ = ["bp"]
