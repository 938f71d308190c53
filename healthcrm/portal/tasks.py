"""Job functions of the portal: handling portal events, emailing notifications."""

from __future__ import annotations

from ..jobs.queue import task
from . import events, notifications


@task("portal.handle_event")
def handle_event(event_id: int, *, progress) -> dict:
    """Run the event's handlers once (a second run, or a racing worker, finds it handled)."""
    return {"handled": events.handle_event(event_id, progress.tenant_id)}


@task("portal.email_notification")
def email_notification(notification_id: int, *, progress) -> dict:
    """Email the patient that something is waiting (once, however often the job runs)."""
    return {"sent": notifications.email_notification(notification_id, progress.tenant_id)}
