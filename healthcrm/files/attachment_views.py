"""Attachment pages and the upload API.

Pages: a record's files (a block of the record page, refreshed by htmx after uploads and bulk actions), one
attachment with its versions, two versions compared, the zip of chosen files with its progress. File
bytes: download, view (inline only for kinds a browser shows safely), thumbnails and DICOM images. JSON:
the upload API that healthcrm/static/js/uploader.js drives (start, part URLs, parts sent, complete, abort).

Views only parse the request and call one service of healthcrm/files/services.py or uploads.py; the
domain errors they raise are answered app-wide (healthcrm/web.py), except the upload API's JSON and the
errors only files have (the blueprint's handlers below).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from ..access import current_actor, requires
from ..errors import NotAllowed, NotFound
from ..extensions import htmx
from ..jobs.models import FINISHED, Job
from ..jobs.services import visible_job
from ..jobs.views import STOP_POLLING
from ..permissions import can
from ..records import services as records
from ..records.models import MedicalRecord
from ..storage_cost import restores
from ..web import audit_refusal, domain_error_page, render_page
from . import checks, services, uploads
from .listing import record_files
from .models import Attachment
from .previews import thumbnail_content_type
from .responses import file_response
from .storage import LocalStorage, attachment_disposition, get_storage

bp = Blueprint("attachments", __name__)

can_read = requires("attachment.read")
can_write = requires("attachment.write")

INVALID = 422
TEXT_PREVIEW_BYTES = 64 * 1024
ZIP_URL_SECONDS = 300
API_ENDPOINTS = frozenset(
    {
        "attachments.start_upload",
        "attachments.part_urls",
        "attachments.upload_status",
        "attachments.complete_upload",
        "attachments.abort_upload",
    }
)


class MalformedRequest(Exception):
    """The JSON body is not what the upload API expects (a script error, not a user's)."""


# --- answers to domain errors -----------------------------------------------------------------------------


def _api_error(status: int, reason: str, state: str = "error") -> Response:
    response = jsonify(status=state, reason=reason)
    response.status_code = status
    return response


def _error_page(status: int, title: str, text: str) -> Response:
    return current_app.make_response(
        (render_template("error.html", code=status, title=title, text=text), status)
    )


# Pages get the app-wide answer to domain errors (healthcrm/web.py); the upload API answers in JSON, which
# healthcrm/static/js/uploader.js reads.
@bp.errorhandler(NotAllowed)
def _not_allowed(error):
    if request.endpoint in API_ENDPOINTS:
        audit_refusal(error)
        return _api_error(403, "Your account cannot upload files.")
    return domain_error_page(error)


@bp.errorhandler(NotFound)
def _not_found(error):
    if request.endpoint in API_ENDPOINTS:
        audit_refusal(error)
        return _api_error(404, "There is no such record, file or upload.")
    return domain_error_page(error)


@bp.errorhandler(MalformedRequest)
def _malformed(error):
    return _api_error(400, str(error))


@bp.errorhandler(uploads.UploadBusy)
def _busy(error):
    return _api_error(409, error.reason, state="completing")


@bp.errorhandler(uploads.UploadRejected)
def _rejected(error):
    return _api_error(INVALID, error.reason, state="rejected")


@bp.errorhandler(services.ChecksumMismatch)
def checksum_mismatch_page(_error):
    return _error_page(
        502,
        "This file was not sent",
        "The stored file no longer matches the checksum taken when it was uploaded, so it was not sent. "
        "This is recorded in the clinic's audit log; an earlier version may still open.",
    )


@bp.errorhandler(services.FileArchived)
def archived_page(error):
    """An archived version asked for as bytes (view, download, compare): its page, with the retrieval."""
    version = error.version
    page = url_for(
        "storage_restores.staff_archived", attachment_id=version.attachment_id, version_id=version.id
    )
    return redirect(page, code=303)


# --- the record's files -----------------------------------------------------------------------------------


def _record(record_id: int) -> MedicalRecord:
    record = records.get_record(current_actor(), record_id, audit=False)
    if record is None:
        abort(404)
    return record


def _files_block(record: MedicalRecord, *, status: int = 200, files=None, **extra) -> Response:
    return render_page(
        "records/show.html",
        block="files",
        record=record,
        files=files or record_files(current_actor(), record),
        status=status,
        **extra,
    )


@bp.get("/records/<int:record_id>/files")
@can_read
def record_files_fragment(record_id: int):
    """The files block of the record page for htmx; without JavaScript, the same list on a page of its own."""
    record = _record(record_id)
    files = record_files(current_actor(), record, audited=True)
    if not htmx or htmx.boosted:
        return render_page("files/record_files.html", record=record, files=files)
    return _files_block(record, files=files)


def _chosen_ids() -> list[int]:
    raw = request.form.getlist("ids")
    if not all(value.isdigit() and len(value) < 10 for value in raw):
        abort(400)
    return [int(value) for value in raw]


@bp.post("/records/<int:record_id>/files/bulk")
@can_read
def bulk(record_id: int):
    """Zip, delete or move the chosen files. htmx gets the files block again with what happened; a plain
    form post goes to the files page with a message (or to the zip's progress page)."""
    record = _record(record_id)
    action = request.form.get("action", "")
    ids = _chosen_ids()
    actor = current_actor()
    target = request.form.get("target", "")
    try:
        if action == "zip":
            job_id = services.start_zip(actor, record.id, ids)
            if not htmx:
                return redirect(
                    url_for("attachments.zip_progress", record_id=record.id, job_id=job_id), code=303
                )
            return _files_block(record, zip_job=_own_zip_job(job_id, record.id))
        if action == "delete":
            count = services.delete_files(actor, record.id, ids)
            done = f"{count} file{'s' if count != 1 else ''} deleted."
        elif action == "move":
            if not target.isdigit():
                raise services.FileActionError("Choose the record to move the files to.")
            count = services.move_files(actor, record.id, ids, int(target))
            done = f"{count} file{'s' if count != 1 else ''} moved."
        else:
            abort(400)
    except services.FileActionError as error:
        return _bulk_answer(record, error.message, "error")
    return _bulk_answer(record, done, "success")


def _bulk_answer(record: MedicalRecord, message: str, kind: str) -> Response:
    if htmx:
        return _files_block(
            record, notice=message, notice_kind=kind, status=INVALID if kind == "error" else 200
        )
    flash(message, kind)
    return redirect(url_for("attachments.record_files_fragment", record_id=record.id), code=303)


# --- zips -------------------------------------------------------------------------------------------------


def _own_zip_job(job_id: str, record_id: int | None = None) -> Job:
    """The signed-in person's own zip job (of this record): an admin's view of others' jobs does not
    extend to their zips of patient files."""
    job = visible_job(current_user.tenant_id, current_user.id, current_user.role, job_id)
    if job is None or job.kind != services.ZIP_JOB or job.user_id != current_user.id:
        abort(404)
    if record_id is not None and (len(job.args) < 2 or job.args[1] != record_id):
        abort(404)
    return job


@bp.get("/records/<int:record_id>/files/zips/<job_id>")
@can_read
def zip_progress(record_id: int, job_id: str):
    """The zip's progress (htmx polls it every second and stops at 286), then its download link."""
    record = _record(record_id)
    job = _own_zip_job(job_id, record.id)
    response = render_page("files/zip.html", block="zip_progress", record=record, job=job)
    if job.is_done and htmx and not htmx.boosted:
        response.status_code = STOP_POLLING
    return response


@bp.get("/files/zips/<job_id>/download")
@can_read
def zip_download(job_id: str):
    job = _own_zip_job(job_id)
    if job.status != FINISHED or not job.result or not job.result.get("key"):
        abort(404)
    services.audit_zip_download(current_actor(), job.args[1])
    storage = get_storage(current_app)
    key, name = job.result["key"], job.result.get("name") or "files.zip"
    if not isinstance(storage, LocalStorage):
        return redirect(storage.presigned_get(key, ZIP_URL_SECONDS, download_name=name), code=302)
    stored = storage.head(key)
    if stored is None:
        abort(404)
    stream = storage.open_stream(key)
    return file_response(_read_all(stream), "application/zip", attachment_disposition(name), size=stored.size)


def _read_all(stream):
    with stream:
        while chunk := stream.read(services.CHUNK_BYTES):
            yield chunk


# --- one attachment ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What the attachment page shows of the current version."""

    blocked: str = ""  # why it cannot be shown (pending scan, infected, checksum)
    archived: bool = False  # in the archive with no readable copy: the page offers its retrieval
    text: str | None = None
    truncated: bool = False


def _preview(attachment: Attachment) -> Preview:
    version = attachment.current_version
    if version is None:
        return Preview(blocked="This file has no version yet.")
    if not version.openable:
        return Preview(blocked=f"{version.scan_label}: the file cannot be opened until it is scanned clean.")
    state = restores.archive_state(version)
    if state is not None and not state.openable:
        return Preview(archived=True)
    if version.kind not in ("text", "csv"):
        return Preview()
    try:
        delivery = services.open_version(current_actor(), attachment.id, version.id, inline=True)
    except services.ChecksumMismatch:
        return Preview(blocked="The stored file no longer matches its checksum, so it is not shown.")
    except services.FileArchived:
        restores.refresh_state(version)  # a lifecycle rule archived it since the last refresh
        return Preview(archived=True)
    chunks = delivery.chunks if delivery.chunks is not None else services.read_version(version)
    data = b""
    for chunk in chunks:
        data += chunk
        if len(data) > TEXT_PREVIEW_BYTES:
            break
    chunks.close()
    return Preview(
        text=data[:TEXT_PREVIEW_BYTES].decode("utf-8", "replace"), truncated=len(data) > TEXT_PREVIEW_BYTES
    )


@bp.get("/files/<int:attachment_id>")
@can_read
def show(attachment_id: int):
    actor = current_actor()
    attachment = services.show_attachment(actor, attachment_id)
    if attachment.record_id is None:
        # A patient document: it lives in the documents section of the patient page.
        return redirect(url_for("patient_documents.staff_index", patient_id=attachment.patient_id), code=303)
    return render_page(
        "files/attachment.html",
        block="attachment",
        attachment=attachment,
        record=attachment.record,
        preview=_preview(attachment),
        can_write=can(actor, "attachment.write"),
        inline_kinds=services.INLINE_TYPES,
    )


@bp.get("/files/<int:attachment_id>/compare")
@can_read
def compare(attachment_id: int):
    left, right = request.args.get("left", ""), request.args.get("right", "")
    if not (left.isdigit() and right.isdigit()):
        flash("Choose two versions to compare.", "error")
        return redirect(url_for("attachments.show", attachment_id=attachment_id), code=303)
    comparison = services.compare_versions(current_actor(), attachment_id, int(left), int(right))
    return render_page("files/compare.html", comparison=comparison, attachment=comparison.left.attachment)


@bp.post("/files/<int:attachment_id>/versions/<int:version_id>/restore")
@can_write
def restore(attachment_id: int, version_id: int):
    try:
        version = services.restore_version(current_actor(), attachment_id, version_id)
    except services.FileNotOpenable as error:
        flash(error.reason, "error")
    else:
        restored = version.restored_from.number if version.restored_from else "?"
        flash(f"Version {restored} restored as version {version.number}.", "success")
    return redirect(url_for("attachments.show", attachment_id=attachment_id), code=303)


# --- file bytes -------------------------------------------------------------------------------------------


def _deliver(attachment_id: int, version_id: int, *, inline: bool) -> Response:
    delivery = services.open_version(current_actor(), attachment_id, version_id, inline=inline)
    if delivery.redirect_url:
        return redirect(delivery.redirect_url, code=302)
    disposition = attachment_disposition(delivery.filename)
    if delivery.inline:
        disposition = "inline" + disposition.removeprefix("attachment")
    return file_response(delivery.chunks, delivery.content_type, disposition, size=delivery.size)


@bp.get("/files/<int:attachment_id>/versions/<int:version_id>/download")
@can_read
def download(attachment_id: int, version_id: int):
    return _deliver(attachment_id, version_id, inline=False)


@bp.get("/files/<int:attachment_id>/versions/<int:version_id>/view")
@can_read
def view(attachment_id: int, version_id: int):
    """The file in the browser: PDF, JPEG, PNG and text only (text as text/plain); anything else is a
    download."""
    version = services.get_version(current_actor(), attachment_id, version_id)
    if version.kind not in services.INLINE_TYPES:
        return redirect(url_for("attachments.download", attachment_id=attachment_id, version_id=version_id))
    return _deliver(attachment_id, version_id, inline=True)


def _preview_image(attachment_id: int, version_id: int, which: str, content_type: str) -> Response:
    data = services.preview_bytes(current_actor(), attachment_id, version_id, which)
    if data is None:
        abort(404)
    return file_response(iter([data]), content_type, "inline", size=len(data))


@bp.get("/files/<int:attachment_id>/versions/<int:version_id>/thumb")
@can_read
def thumb(attachment_id: int, version_id: int):
    """The thumbnail: JPEG for photos, PNG for the other images (see files/previews.py)."""
    version = services.get_version(current_actor(), attachment_id, version_id)
    return _preview_image(attachment_id, version_id, "thumb", thumbnail_content_type(version.kind))


@bp.get("/files/<int:attachment_id>/versions/<int:version_id>/image")
@can_read
def image(attachment_id: int, version_id: int):
    """A DICOM study's first frame as PNG."""
    return _preview_image(attachment_id, version_id, "image", "image/png")


# --- the upload API (JSON) --------------------------------------------------------------------------------


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise MalformedRequest("Send a JSON object.")
    return body


def _int_field(body: dict, name: str, *, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise MalformedRequest(f"'{name}' must be a whole number.")
    return int(value)


@bp.post("/records/<int:record_id>/uploads")
@can_write
def start_upload(record_id: int):
    """Start (or resume) an upload: answers the plan uploader.js follows."""
    body = _json_body()
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedRequest("'name' must be the file's name.")
    plan = uploads.start_upload(
        current_actor(),
        record_id,
        name,
        _int_field(body, "size"),
        str(body.get("type") or "")[:100] or None,
        str(body.get("fingerprint") or "")[:300],
        replace_attachment_id=_int_field(body, "replace", required=False),
        # A finalized record's upload area names the addendum in its start URL (records/show.html).
        addendum_id=request.args.get("addendum", type=int),
    )
    return jsonify(plan.as_json()), 200 if plan.uploaded_parts else 201


@bp.post("/uploads/<public_id>/parts")
@can_write
def part_urls(public_id: str):
    numbers = _json_body().get("part_numbers")
    if not isinstance(numbers, list) or not numbers or not all(type(n) is int for n in numbers):
        raise MalformedRequest("'part_numbers' must be a list of part numbers.")
    urls = uploads.part_urls(current_actor(), public_id, numbers)
    return jsonify(urls={str(n): url for n, url in urls.items()})


@bp.get("/uploads/<public_id>")
@can_write
def upload_status(public_id: str):
    """The parts the store already has (to resume)."""
    return jsonify(id=public_id, uploaded_parts=uploads.uploaded_parts(current_actor(), public_id))


def _parts(body: dict) -> list[tuple[int, str]]:
    """`parts` as [[n, etag], …] or [{"part_number": n, "etag": etag}, …]."""
    raw = body.get("parts") or []
    if not isinstance(raw, list):
        raise MalformedRequest("'parts' must be a list.")
    parts = []
    for part in raw:
        if isinstance(part, dict):
            part = [part.get("part_number"), part.get("etag")]
        if not (
            isinstance(part, list) and len(part) == 2 and type(part[0]) is int and isinstance(part[1], str)
        ):
            raise MalformedRequest("Each part is [part number, ETag].")
        parts.append((part[0], part[1]))
    return parts


@bp.post("/uploads/<public_id>/complete")
@can_write
def complete_upload(public_id: str):
    """Check what arrived and keep it as a version; 422 with the reason when the file is refused."""
    version = uploads.complete_upload(current_actor(), public_id, _parts(_json_body()))
    return jsonify(
        status="ok",
        attachment_id=version.attachment_id,
        version=version.number,
        name=version.original_name,
        url=url_for("attachments.show", attachment_id=version.attachment_id),
    )


@bp.delete("/uploads/<public_id>")
@can_write
def abort_upload(public_id: str):
    """Cancel: the store drops what it has. htmx (the "discard" button of an interrupted upload) gets an
    empty answer that removes the row."""
    uploads.abort_upload(current_actor(), public_id)
    return ("", 200) if htmx else ("", 204)


@bp.app_template_filter("filesize")
def filesize(value: int | None) -> str:
    return checks.human_size(value) if value is not None else ""
