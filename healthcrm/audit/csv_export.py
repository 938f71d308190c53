"""The audit log as a CSV file, made by a job for the admin who asked (filtered like the viewer)."""

from __future__ import annotations

import codecs
import csv
import json
import tempfile
import uuid
from datetime import timedelta
from urllib.parse import parse_qsl

from flask import current_app
from sqlalchemy import func, select

from ..accounts.models import Tenant
from ..clock import clinic_day_end, clinic_day_start
from ..extensions import db
from ..files.storage import get_storage, validate_key
from ..jobs.queue import task
from .archive import load_archive, months_in_range
from .labels import action_label
from .models import ArchivedEventCopy, AuditEvent
from .search import apply_filters, parse_filter
from .services import describe_events

BATCH = 2_000
KEPT_FOR = timedelta(hours=24)
COLUMNS = [
    "time UTC",
    "event id",
    "request id",
    "actor",
    "role",
    "share link id",
    "patient",
    "action",
    "action label",
    "resource type",
    "resource id",
    "outcome",
    "fields",
    "ip",
    "user agent",
    "prev_hash",
    "hash",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    """One value, safe for a spreadsheet: no formula, no line break inside (written as \\r and \\n)."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        text = "'" + text
    return text.replace("\r", "\\r").replace("\n", "\\n")


def export_key(tenant_id: int) -> str:
    return validate_key(f"{tenant_id}/audit-exports/{uuid.uuid4().hex}.csv")


def _fields(raw: str | None) -> str:
    if not raw:
        return ""
    try:
        return ", ".join(str(name) for name in json.loads(raw))
    except (ValueError, TypeError):
        return raw


@task("audit.export_csv")
def export_csv(query_string: str, *, progress) -> dict:
    """Write the clinic's events matching the filter, oldest first, in keyset batches, then store them.

    Archived months in the filter's range are loaded first (the first part of the progress bar), then
    searched with the table: both in id order, merged batch by batch, so memory stays flat.
    """
    tenant_id = progress.tenant_id
    filters = parse_filter(dict(parse_qsl(query_string)))
    zone = db.session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))
    starts = clinic_day_start(filters.date_from, zone) if filters.date_from else None
    ends = clinic_day_end(filters.date_to, zone) if filters.date_to else None
    archived = months_in_range(tenant_id, starts, ends)
    share = 50 if archived.waiting else 0  # of the progress bar, for loading archived months
    loading, loaded = archived.waiting_events, 0
    for archive in archived.waiting:
        loaded += load_archive(archive, lambda percent: progress(percent * share // 100), loaded, loading)
    archive_ids = [a.id for a in archived.loaded + archived.waiting]
    sources = [apply_filters(select(AuditEvent).where(AuditEvent.tenant_id == tenant_id), AuditEvent, filters,
                             zone=zone)]  # fmt: skip
    if archive_ids:
        copies = select(ArchivedEventCopy).where(
            ArchivedEventCopy.tenant_id == tenant_id, ArchivedEventCopy.archive_id.in_(archive_ids)
        )
        sources.append(apply_filters(copies, ArchivedEventCopy, filters, zone=zone))
    total = sum(db.session.scalar(select(func.count()).select_from(q.subquery())) or 0 for q in sources)
    key = export_key(tenant_id)
    done, after = 0, 0
    with tempfile.TemporaryFile() as out:
        writer = csv.writer(codecs.getwriter("utf-8")(out), lineterminator="\r\n")
        writer.writerow(COLUMNS)
        while True:
            events = []
            for query in sources:
                model = query.column_descriptions[0]["entity"]
                events += db.session.scalars(query.where(model.id > after).order_by(model.id).limit(BATCH))
            events = sorted(events, key=lambda e: e.id)[:BATCH]
            if not events:
                break
            for entry in describe_events(tenant_id, events):
                e = entry.event
                writer.writerow(
                    [
                        cell(value)
                        for value in (
                            e.occurred_at.isoformat(sep=" ", timespec="seconds"),
                            e.id,
                            e.request_id,
                            entry.actor,
                            e.actor_role,
                            e.actor_share_link_id,
                            entry.patient,
                            e.action,
                            action_label(e.action),
                            e.resource_type,
                            e.resource_id,
                            e.outcome,
                            _fields(e.changed_fields),
                            e.ip,
                            e.user_agent,
                            e.prev_hash,
                            e.hash,
                        )
                    ]
                )
            done += len(events)
            after = events[-1].id
            progress(min(99, share + done * (100 - share) // total) if total else 99)
        out.seek(0)
        get_storage(current_app).put_stream(key, out, "text/csv")
    progress(100)
    return {"key": key, "rows": done}


def delete_old_exports() -> int:
    """Periodic: delete the CSV files of exports finished over 24 hours ago (the download answers 410)."""
    from ..clock import utcnow  # noqa: PLC0415
    from ..jobs.models import FINISHED, Job  # noqa: PLC0415
    from ..tenant_scope import ALL_TENANTS  # noqa: PLC0415

    storage = get_storage(current_app)
    old = db.session.scalars(
        select(Job)
        .where(Job.kind == "audit.export_csv", Job.status == FINISHED, Job.finished_at < utcnow() - KEPT_FOR)
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
