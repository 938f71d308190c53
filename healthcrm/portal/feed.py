"""What the portal's timeline and dashboard are made of: each area registers its sources here.

A timeline source gives a patient's items of one kind, newest first, older than a cursor (keyset
pagination: `before` is the (at, key) of the last item shown, or None for the first page), at most
`limit` of them, in ONE query whatever the patient's history. The timeline (portal/timeline.py) merges
the sources. An attention source gives what needs the patient now (unread messages, a care plan to
acknowledge, …), for the dashboard.

Sources only ever read the patient id they are given (from the session, never from the request).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TimelineItem:
    kind: str  # the source's kind, e.g. "visit", "result", "message"
    at: datetime  # naive UTC, what the timeline sorts on (newest first)
    key: int  # unique within the kind (the row's id): the tie-breaker of equal times
    title: str  # plain words ("Visit with Dr Lee", "New message from your care team")
    detail: str | None = None  # a short line under the title, never a held result or a hidden note
    link: str | None = None  # a portal path


@dataclass(frozen=True)
class Attention:
    text: str  # "2 unread messages"
    link: str
    count: int = 1


Cursor = tuple[datetime, int] | None
TimelineSource = Callable[[int, int, Cursor, int], list[TimelineItem]]  # tenant_id, patient_id, before, limit
AttentionSource = Callable[[int, int, int], list[Attention]]  # tenant_id, patient_id, user_id

TIMELINE_SOURCES: dict[str, tuple[str, TimelineSource]] = {}  # kind: (label for the filter, source)
ATTENTION_SOURCES: list[AttentionSource] = []


def timeline_source(kind: str, label: str) -> Callable[[TimelineSource], TimelineSource]:
    """Register a source of timeline items of `kind` (`label` names it in the timeline's filter)."""

    def decorator(fn: TimelineSource) -> TimelineSource:
        TIMELINE_SOURCES[kind] = (label, fn)
        return fn

    return decorator


def attention_source(fn: AttentionSource) -> AttentionSource:
    """Register a source of "needs you" items for the dashboard."""
    ATTENTION_SOURCES.append(fn)
    return fn
