"""Storage cost job functions. Thin: they take ids and call the area's services."""

from __future__ import annotations

from ..jobs.registry import task
from . import alerts, metrics


@task("storage.alert_email")
def email_alert(alert_id: int, *, progress) -> dict:
    """Email a storage alert to the clinic's admins (once, however often the job runs)."""
    return {"sent": alerts.email_alert(alert_id, progress.tenant_id)}


@task("storage.record_metrics")
def record_metrics(*, progress) -> dict:
    """Record the clinic's figures for today now (an admin asked), then check its thresholds."""
    row = metrics.record_clinic(progress.tenant_id)
    return {"day": row.day.isoformat(), "objects": row.objects}
