"""Archived files on the web: the page that says a file is archived, offers the retrieval speeds with
their price and wait, and starts the restore (staff, and the patient for their documents); and the admins'
lists of restores and of the sweeper's reports.

The version is loaded exactly as opening it would load it (staff: the attachment routes' service; the
patient: their own documents), so whoever may open a file may ask for it back, and an id that is not theirs
answers 404. The restore button posts a plain form (htmx swaps the panel in place).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, flash, redirect, request, url_for
from flask_login import current_user

from ..access import current_actor, requires
from ..audit.services import record_event
from ..extensions import db, htmx, limiter
from ..files import patient_files
from ..files import services as files
from ..files.models import Attachment, AttachmentVersion
from ..tenancy import get_scoped
from ..web import render_page
from . import restores, sweeper
from .prices import load_prices
from .restore_models import VIA_PORTAL, VIA_STAFF, StorageSweep

bp = Blueprint("storage_restores", __name__)

INVALID = 422
STAFF_PAGE = "storage_cost/archived.html"
PORTAL_PAGE = "storage_cost/portal_archived.html"
# Per person: a restore is one row per version anyway; this stops a script from walking every file.
RESTORE_LIMIT = "30 per hour"


def _per_person() -> str:
    return f"user-{current_user.id}" if current_user.is_authenticated else request.remote_addr or ""


restore_limit = limiter.limit(
    lambda: current_app.config.get("STORAGE_RESTORE_LIMIT", RESTORE_LIMIT),
    key_func=_per_person,
    methods=["POST"],
    scope="file-restore",
)


@bp.app_template_global("file_archive")
def file_archive(version: AttachmentVersion | None) -> restores.ArchiveState | None:
    """The archive state of a version for the pages (from the database; None when not archived)."""
    return restores.archive_state(version)


@bp.app_template_global("restore_choices")
def restore_choices(version: AttachmentVersion) -> list[restores.TierChoice]:
    return restores.tier_choices(version)


@bp.app_template_global("restore_days")
def restore_days() -> int:
    return restores.restore_days()


@bp.app_template_global("storage_prices")
def storage_prices():
    return load_prices(current_app.config)


@bp.app_template_filter("money")
def money(amount: float) -> str:
    return restores.money(amount)


def _panel(template: str, version: AttachmentVersion, *, status: int = 200, error: str = "", **context):
    return render_page(
        template,
        block="restore",
        status=status,
        version=version,
        attachment=version.attachment,
        state=restores.archive_state(version),
        error=error,
        **context,
    )


def _ask(version: AttachmentVersion, via: str, page: str, done_url: str, **context) -> Response:
    """The POST of the archived page: start the restore at the chosen tier, say when it will be ready."""
    tier = request.form.get("tier", "")
    try:
        _restore, started = restores.request_restore(current_actor(), version, tier, via=via)
    except restores.RestoreError as error:
        return _panel(page, version, status=INVALID, error=error.message, **context)
    if htmx and not htmx.boosted:
        return _panel(page, version, started=started, **context)
    if started:
        flash("The file is being retrieved from the archive. You will be told when it is ready.", "success")
    else:
        flash("This file is already being retrieved; you can open it once it is ready.", "info")
    return redirect(done_url, code=303)


# --- staff --------------------------------------------------------------------------------------------------


def _staff_version(attachment_id: int, version_id: int) -> AttachmentVersion:
    return files.get_version(current_actor(), attachment_id, version_id)


def _staff_back(attachment: Attachment) -> str:
    if attachment.record_id is None:
        return url_for("patient_documents.staff_index", patient_id=attachment.patient_id)
    return url_for("attachments.show", attachment_id=attachment.id)


@bp.get("/files/<int:attachment_id>/versions/<int:version_id>/archived")
@requires("attachment.read")
def staff_archived(attachment_id: int, version_id: int):
    """The version's archive state after asking the store: retrieval speeds and prices, the restore under
    way and when it will be ready, or the file's links once it opens."""
    version = _staff_version(attachment_id, version_id)
    restores.show_archived(current_actor(), version)
    return _panel(STAFF_PAGE, version, back=_staff_back(version.attachment))


@bp.post("/files/<int:attachment_id>/versions/<int:version_id>/archived")
@requires("attachment.read")
@restore_limit
def staff_restore(attachment_id: int, version_id: int):
    version = _staff_version(attachment_id, version_id)
    back = _staff_back(version.attachment)
    url = url_for(".staff_archived", attachment_id=attachment_id, version_id=version_id)
    return _ask(version, VIA_STAFF, STAFF_PAGE, url, back=back)


# --- the patient --------------------------------------------------------------------------------------------


def _own_document_version(attachment_id: int) -> AttachmentVersion:
    patient_id = current_user.patient_id
    if patient_id is None:
        abort(404)
    document = patient_files.get_patient_document(current_actor(), patient_id, attachment_id)
    if document.current_version is None:
        abort(404)
    return document.current_version


@bp.get("/portal/documents/<int:attachment_id>/archived")
@requires("portal.use")
def portal_archived(attachment_id: int):
    version = _own_document_version(attachment_id)
    restores.show_archived(current_actor(), version)
    return _panel(PORTAL_PAGE, version)


@bp.post("/portal/documents/<int:attachment_id>/archived")
@requires("portal.use")
@restore_limit
def portal_restore(attachment_id: int):
    version = _own_document_version(attachment_id)
    return _ask(version, VIA_PORTAL, PORTAL_PAGE, url_for(".portal_archived", attachment_id=attachment_id))


# --- admins -------------------------------------------------------------------------------------------------


@bp.get("/admin/storage/restores")
@requires("storage.view")
def restore_list():
    """The clinic's restores, newest first: who asked (or which share link), the tier, when ready, until
    when."""
    actor = current_actor()
    found = restores.restores_of(actor.tenant_id)
    record_event(actor, "storage.restores_viewed", resource_type="file_restores")
    db.session.commit()
    return render_page("storage_cost/restores.html", restores=found)


@bp.get("/admin/storage/sweeps")
@requires("storage.view")
def sweeps():
    """The sweeper's reports, newest first, the latest in full."""
    actor = current_actor()
    found = sweeper.sweeps_of(actor.tenant_id)
    return _sweep_page(found[0] if found else None, found)


@bp.get("/admin/storage/sweeps/<int:sweep_id>")
@requires("storage.view")
def sweep(sweep_id: int):
    actor = current_actor()
    found = get_scoped(StorageSweep, sweep_id, actor.tenant_id)
    if found is None:
        abort(404)
    return _sweep_page(found, sweeper.sweeps_of(actor.tenant_id))


def _sweep_page(shown: StorageSweep | None, runs: list[StorageSweep]) -> Response:
    actor = current_actor()
    if shown is not None:
        # The report names stored keys, and keys carry file names: reading it is on record.
        record_event(actor, "storage.sweep_viewed", resource_type="storage_sweep", resource_id=shown.id)
        db.session.commit()
    return render_page(
        "storage_cost/sweeps.html",
        shown=shown,
        runs=runs,
        area_label=sweeper.area_label,
        judged_areas=sweeper.JUDGED_AREAS,
        grace_hours=sweeper.grace().total_seconds() / 3600,
    )
