"""Job functions of the portal: handling portal events."""

from __future__ import annotations

from ..jobs.queue import task
from . import events


@task("portal.handle_event")
def handle_event(event_id: int, *, progress) -> dict:
    """Run the event's handlers once (a second run, or a racing worker, finds it handled)."""
    return {"handled": events.handle_event(event_id, progress.tenant_id)}
