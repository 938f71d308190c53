"""The patient's timeline: every registered source (portal/feed.py) merged, newest first, a page at a time.

Pages are keyset pages: a page ends at a position (at, kind, key) and the next page asks every source for
its items after that position, so a page costs one query per source however long the history. The position
travels in the URL as an opaque cursor, signed and bound to the patient it was made for: a cursor only says
where to continue, and the sources always read the patient of the session, so a cursor from another
patient's page (or one made up) is refused, never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from ..accounts.models import User
from ..audit.services import Actor, record_event
from ..errors import NotFound
from ..extensions import db
from ..permissions import require
from ..tenancy import get_scoped
from . import feed

PAGE_SIZE = 20
CURSOR_SALT = "portal-timeline-cursor"
# Keys are row ids (positive); these bound them on either side when a position is translated for a source
# of another kind (see `_source_before`). They fit a 32-bit INTEGER column: PostgreSQL refuses a larger
# bound for one ("integer out of range"), and serial ids stop below 2**31 - 1.
KEY_ABOVE_ALL = 2**31 - 1
KEY_BELOW_ALL = -(2**31)


class BadCursor(ValueError):
    """A cursor that was not made by this app for this patient (answered 400)."""


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last item's time, kind and key. Items sort by (at, kind, key), newest first."""

    at: datetime
    kind: str
    key: int


@dataclass(frozen=True)
class TimelinePage:
    items: list[feed.TimelineItem]
    kinds: list[str]  # the kinds shown (all registered kinds when not filtered)
    next_position: Position | None  # None on the last page


def kinds() -> dict[str, str]:
    """The registered kinds and their labels, in the order the filter lists them."""
    by_label = sorted(feed.TIMELINE_SOURCES.items(), key=lambda entry: (entry[1][0], entry[0]))
    return {kind: label for kind, (label, _source) in by_label}


def chosen_kinds(asked: list[str]) -> list[str]:
    """The registered kinds among those asked for (all of them when none, or none known, were asked)."""
    known = [kind for kind in asked if kind in feed.TIMELINE_SOURCES]
    return sorted(set(known)) or sorted(feed.TIMELINE_SOURCES)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=CURSOR_SALT)


def encode_cursor(position: Position, patient_id: int) -> str:
    """The opaque URL form of `position` on `patient_id`'s timeline."""
    return _serializer().dumps([position.at.isoformat(), position.kind, position.key, patient_id])


def decode_cursor(cursor: str, patient_id: int) -> Position:
    """The position a cursor names; BadCursor unless this app made it for this very patient."""
    try:
        at, kind, key, owner = _serializer().loads(cursor)
        position = Position(datetime.fromisoformat(at), str(kind), int(key))
    except (BadSignature, ValueError, TypeError) as error:
        raise BadCursor("not a timeline cursor") from error
    if owner != patient_id:
        raise BadCursor("a cursor of another timeline")
    return position


def _source_before(position: Position | None, kind: str) -> feed.Cursor:
    """`position` as a source of `kind` reads it: its (at, key) bound, exclusive.

    Items after the position are those with (at, kind, key) < (position.at, position.kind, position.key).
    For the position's own kind that is (at, key) < (position.at, position.key); a kind sorting before it
    still has its items at exactly that time to give, one sorting after it only older ones."""
    if position is None:
        return None
    if kind == position.kind:
        return (position.at, position.key)
    if kind < position.kind:
        return (position.at, KEY_ABOVE_ALL)
    return (position.at, KEY_BELOW_ALL)


def _sort_key(item: feed.TimelineItem) -> tuple[datetime, str, int]:
    return (item.at, item.kind, item.key)


def check_own_patient(actor: Actor, patient_id: int) -> None:
    require(actor, "portal.use")
    user = get_scoped(User, actor.user_id, actor.tenant_id) if actor.user_id else None
    if user is None or user.patient_id != patient_id:
        raise NotFound("patient")


def read_items(
    tenant_id: int,
    patient_id: int,
    *,
    kinds_shown: list[str],
    after: Position | None = None,
    limit: int = PAGE_SIZE,
) -> tuple[list[feed.TimelineItem], Position | None]:
    """Up to `limit` items after `after`, newest first, and the position to continue from (None when
    nothing is left). One query per source: each gives one more item than asked, which tells whether
    anything is left beyond the page."""
    merged: list[feed.TimelineItem] = []
    for kind in kinds_shown:
        _label, source = feed.TIMELINE_SOURCES[kind]
        merged.extend(source(tenant_id, patient_id, _source_before(after, kind), limit + 1))
    if after is not None:
        # A source must give only items after its bound; keep the merge right even if one gives more.
        bound = (after.at, after.kind, after.key)
        merged = [item for item in merged if _sort_key(item) < bound]
    merged.sort(key=_sort_key, reverse=True)
    page = merged[:limit]
    if len(merged) <= limit or not page:
        return page, None
    last = page[-1]
    return page, Position(last.at, last.kind, last.key)


def timeline_page(
    actor: Actor,
    patient_id: int,
    *,
    asked_kinds: list[str] | None = None,
    after: Position | None = None,
    limit: int = PAGE_SIZE,
) -> TimelinePage:
    """A page of the patient's own timeline (`patient_id` is the session's patient), audited as a read."""
    check_own_patient(actor, patient_id)
    shown = chosen_kinds(asked_kinds or [])
    items, next_position = read_items(
        actor.tenant_id, patient_id, kinds_shown=shown, after=after, limit=limit
    )
    record_event(
        actor,
        "portal.timeline.view",
        resource_type="patient",
        resource_id=patient_id,
        patient_id=patient_id,
    )
    db.session.commit()
    return TimelinePage(items=items, kinds=shown, next_position=next_position)
