"""The job that makes a share's watermarked PDF for the provider who asked (see provider_views)."""

from __future__ import annotations

import tempfile
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from ..accounts.models import Tenant
from ..clock import utcnow
from ..extensions import db
from ..files.storage import get_storage, validate_key
from ..jobs.models import FINISHED, Job
from ..jobs.queue import task
from ..tenancy import get_scoped
from ..tenant_scope import ALL_TENANTS
from .content import shared_content
from .exports import build_pdf
from .models import ShareLink, ShareVisit
from .watermark import watermark_text

EXPORT_KEPT_FOR = timedelta(days=1)


def export_key(tenant_id: int) -> str:
    """A new object key for an export: under the tenant's prefix, like every object of the clinic."""
    return validate_key(f"{tenant_id}/share-exports/{uuid.uuid4().hex}.pdf")


@task("sharing.export_pdf")
def export_pdf(share_id: int, visit_id: int, *, progress) -> dict:
    """Write the PDF of what the share shows now, watermarked for its recipient and this time, into
    storage; the provider's download route checks the job is theirs and counts the export."""
    share = get_scoped(ShareLink, share_id, progress.tenant_id)
    visit = get_scoped(ShareVisit, visit_id, progress.tenant_id)
    now = utcnow()
    if (
        share is None
        or visit is None
        or visit.share_id != share.id
        or not visit.opened
        or not share.allow_download
        or share.revoked_at is not None
        or share.expires_at <= now
    ):
        return {"made": False}
    zone = db.session.get(Tenant, share.tenant_id).timezone
    key = export_key(share.tenant_id)
    with tempfile.TemporaryFile() as out:
        watermark = watermark_text(share, now, zone)
        # The layout reports up to 90%; storing the file is the rest.
        pages = build_pdf(shared_content(share), watermark, out, _scaled(progress, 0.9))
        out.seek(0)
        get_storage(current_app).put_stream(key, out, "application/pdf")
    return {"made": True, "key": key, "pages": pages}


def delete_old_exports(keep_for: timedelta = EXPORT_KEPT_FOR) -> int:
    """Delete the stored PDFs of exports finished longer ago than `keep_for` (the provider downloads one
    at once; nothing else reads it). Periodic (healthcrm.jobs.periodic)."""
    storage = get_storage(current_app)
    old = db.session.scalars(
        select(Job)
        .where(
            Job.kind == "sharing.export_pdf",
            Job.status == FINISHED,
            Job.finished_at < utcnow() - keep_for,
        )
        .execution_options(**ALL_TENANTS)  # periodic, for every clinic
    )
    deleted = 0
    for job in old:
        result = dict(job.result or {})
        if result.get("key") and not result.get("deleted"):
            storage.delete(result["key"])
            job.result = {**result, "deleted": True}
            deleted += 1
    db.session.commit()
    return deleted


def _scaled(progress, share_of_total: float):
    return lambda percent: progress(int(percent * share_of_total))
