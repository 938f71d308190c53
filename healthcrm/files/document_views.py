"""Patient documents on the web: the portal's documents page (the patient's list, upload, view and
download of their own), and the staff's documents section of the patient page (list, upload for the
patient, "visible to patient", open through the attachment routes).

In the portal the patient id is always the session's (`current_user.patient_id`); a document id that is
not theirs (or not shown to them) answers 404. Uploads are plain multipart form posts (phones), so they
work without JavaScript; htmx only refreshes the list while a file waits for its virus scan.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, abort, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..extensions import htmx
from ..permissions import can
from ..web import render_page
from . import (
    attachment_views,
    document_events,  # noqa: F401 - registers the event handler and the timeline source
    patient_files,
)
from .checks import ALLOWED_TYPES
from .models import SCAN_FAILED, SCAN_INFECTED, SCAN_PENDING, Attachment
from .responses import file_response
from .services import ChecksumMismatch, Delivery, FileArchived
from .storage import attachment_disposition
from .uploads import file_limit

portal_bp = Blueprint("portal_documents", __name__, url_prefix="/portal/documents")
staff_bp = Blueprint("patient_documents", __name__, url_prefix="/care/documents")

# A stored file that no longer matches its checksum gets the same 502 page as on the attachment routes.
for _bp in (portal_bp, staff_bp):
    _bp.register_error_handler(ChecksumMismatch, attachment_views.checksum_mismatch_page)


@portal_bp.errorhandler(FileArchived)
def _archived(error):
    """The patient opened an archived document: its page, with the retrieval."""
    page = url_for("storage_restores.portal_archived", attachment_id=error.version.attachment_id)
    return redirect(page, code=303)


INVALID = 422
PORTAL_PAGE = "portal/documents.html"
STAFF_PAGE = "files/patient_documents.html"
WAITING_STATES = frozenset({SCAN_PENDING, SCAN_FAILED})


# What the file input offers (the check decides by content; this only helps the phone's picker).
DOCUMENT_ACCEPT = ",".join(ext for allowed in ALLOWED_TYPES.values() for ext in allowed.extensions)
DOCUMENT_TYPES = ", ".join(allowed.label for allowed in ALLOWED_TYPES.values())


@portal_bp.context_processor
def _upload_hints() -> dict:
    return {
        "document_accept": DOCUMENT_ACCEPT,
        "document_types": DOCUMENT_TYPES,
        "document_limit": file_limit(),
    }


def _waiting(documents: list[Attachment]) -> bool:
    return any(
        d.current_version is not None and d.current_version.scan_status in WAITING_STATES for d in documents
    )


def _answer(delivery: Delivery) -> Response:
    if delivery.redirect_url:
        return redirect(delivery.redirect_url, code=302)
    disposition = attachment_disposition(delivery.filename)
    if delivery.inline:
        disposition = "inline" + disposition.removeprefix("attachment")
    return file_response(delivery.chunks, delivery.content_type, disposition, size=delivery.size)


def _chosen_file():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return None
    return upload


# --- the portal ---------------------------------------------------------------------------------------------


def _own_patient_id() -> int:
    patient_id = current_user.patient_id
    if patient_id is None:
        abort(404)
    return patient_id


def _portal_page(*, error: str | None = None, status: int = 200) -> Response:
    documents = patient_files.patient_documents(current_actor(), _own_patient_id(), audited=True)
    return render_page(
        PORTAL_PAGE,
        block="documents",
        documents=documents,
        waiting=_waiting(documents),
        error=error,
        status=status,
        scan_infected=SCAN_INFECTED,
        waiting_states=WAITING_STATES,
    )


@portal_bp.get("")
@requires("portal.use")
def index():
    """The patient's documents (their uploads and the clinic's files shown to them) and the upload form.
    htmx polls the list block while a file waits for its scan."""
    return _portal_page()


@portal_bp.post("")
@requires("portal.use")
def upload():
    upload = _chosen_file()
    if upload is None:
        return _portal_page(error="Choose a file to upload.", status=INVALID)
    try:
        document = patient_files.store_patient_file(
            current_actor(), _own_patient_id(), upload.filename, upload.stream, source=patient_files.PORTAL
        )
    except patient_files.DocumentRejected as rejected:
        return _portal_page(error=rejected.reason, status=rejected.status)
    flash(f"{document.filename} was uploaded. Your care team can see it now.", "success")
    return redirect(url_for("portal_documents.index"), code=303)


@portal_bp.get("/<int:attachment_id>/view")
@requires("portal.use")
def view(attachment_id: int):
    """The document in the browser (PDF, JPEG, PNG, text); other kinds download."""
    delivery = patient_files.open_patient_document(
        current_actor(), _own_patient_id(), attachment_id, inline=True
    )
    return _answer(delivery)


@portal_bp.get("/<int:attachment_id>/download")
@requires("portal.use")
def download(attachment_id: int):
    delivery = patient_files.open_patient_document(
        current_actor(), _own_patient_id(), attachment_id, inline=False
    )
    return _answer(delivery)


# --- staff: the documents section of the patient page ------------------------------------------------------


@dataclass(frozen=True)
class StaffDocuments:
    """What the documents section of the patient page shows."""

    patient_id: int
    documents: list[Attachment]
    can_write: bool
    waiting: bool
    error: str | None = None


def staff_documents(
    patient_id: int, error: str | None = None, *, audited: bool = False
) -> StaffDocuments | None:
    """The section's content for the signed-in staff member; None for those who may not read files.
    `audited` when the section is a page of its own (on the patient page, the page's read is audited)."""
    actor = current_actor()
    if not can(actor, "attachment.read"):
        return None
    documents = patient_files.patient_documents(actor, patient_id, audited=audited)
    return StaffDocuments(patient_id, documents, can(actor, "attachment.write"), _waiting(documents), error)


@staff_bp.app_template_global("patient_documents_section")
def patient_documents_section(patient) -> StaffDocuments | None:
    """Read by templates/patients/_documents.html, included in the patient page."""
    return staff_documents(patient.id)


def _staff_section(patient_id: int, *, error: str | None = None, status: int = 200) -> Response:
    section = staff_documents(patient_id, error, audited=True)
    if section is None:
        abort(404)
    return render_page(STAFF_PAGE, block="documents", section=section, status=status)


def _back_to_patient(patient_id: int) -> Response:
    return redirect(url_for("patients.show", patient_id=patient_id, _anchor="documents"), code=303)


@staff_bp.get("/patients/<int:patient_id>")
@requires("attachment.read")
def staff_index(patient_id: int):
    """The patient's documents on a page of their own (htmx: the section, polled while a scan runs)."""
    return _staff_section(patient_id)


@staff_bp.post("/patients/<int:patient_id>")
@requires("attachment.write")
def staff_upload(patient_id: int):
    upload = _chosen_file()
    if upload is None:
        return _staff_section(patient_id, error="Choose a file to upload.", status=INVALID)
    try:
        document = patient_files.store_patient_file(
            current_actor(), patient_id, upload.filename, upload.stream, source=patient_files.STAFF
        )
    except patient_files.DocumentRejected as rejected:
        return _staff_section(patient_id, error=rejected.reason, status=rejected.status)
    flash(
        f"{document.filename} was added to the patient's documents (not shown to the patient yet).", "success"
    )
    return _back_to_patient(patient_id)


@staff_bp.post("/patients/<int:patient_id>/<int:attachment_id>/visibility")
@requires("attachment.write")
def visibility(patient_id: int, attachment_id: int):
    """Show the document to the patient (visible=1) or hide it (visible=0)."""
    value = request.form.get("visible", "")
    if value not in ("0", "1"):
        abort(400)
    document = patient_files.set_visible_to_patient(current_actor(), patient_id, attachment_id, value == "1")
    if htmx and not htmx.boosted:
        return _staff_section(patient_id)
    shown = "now shown to the patient" if document.visible_to_patient else "hidden from the patient"
    flash(f"{document.filename} is {shown}.", "success")
    return _back_to_patient(patient_id)
