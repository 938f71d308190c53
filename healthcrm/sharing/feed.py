"""The patient's shares on their portal timeline: each link made (by them, or by staff for them) and each
link revoked, one query per page (portal/feed.py)."""

from __future__ import annotations

from flask import url_for
from sqlalchemy import and_, literal, or_, select, true, union_all

from ..extensions import db
from ..portal.feed import Cursor, TimelineItem, timeline_source
from .models import ShareLink

# A link gives two items, made and revoked, told apart in the key: 2 × id and 2 × id + 1.
MADE, REVOKED = 0, 1


def _older_than(at, key, before: Cursor):
    if before is None:
        return true()
    before_at, before_key = before
    return or_(at < before_at, and_(at == before_at, key < before_key))


@timeline_source("share", "Shares")
def share_items(tenant_id: int, patient_id: int, before: Cursor, limit: int) -> list[TimelineItem]:
    mine = and_(ShareLink.tenant_id == tenant_id, ShareLink.patient_id == patient_id)
    made_key = ShareLink.id * 2 + MADE
    revoked_key = ShareLink.id * 2 + REVOKED
    made = select(
        ShareLink.created_at.label("at"),
        made_key.label("key"),
        ShareLink.id.label("share_id"),
        ShareLink.recipient_name.label("recipient"),
        ShareLink.created_by_staff.label("by_staff"),
        literal(False).label("revoked"),
    ).where(mine, _older_than(ShareLink.created_at, made_key, before))
    revoked = select(
        ShareLink.revoked_at.label("at"),
        revoked_key.label("key"),
        ShareLink.id.label("share_id"),
        ShareLink.recipient_name.label("recipient"),
        ShareLink.created_by_staff.label("by_staff"),
        literal(True).label("revoked"),
    ).where(mine, ShareLink.revoked_at.is_not(None), _older_than(ShareLink.revoked_at, revoked_key, before))
    both = union_all(made, revoked).subquery()
    rows = db.session.execute(select(both).order_by(both.c.at.desc(), both.c.key.desc()).limit(limit)).all()
    return [_item(row) for row in rows]


def _item(row) -> TimelineItem:
    if row.revoked:
        title = f"Stopped sharing your records with {row.recipient}"
        detail = "The link no longer opens."
    else:
        title = f"Shared your records with {row.recipient}"
        detail = "Made by the clinic for you." if row.by_staff else None
    return TimelineItem(
        kind="share",
        at=row.at,
        key=row.key,
        title=title,
        detail=detail,
        link=url_for("sharing.log", share_id=row.share_id),
    )
