"""The clinic's sharing at a glance, for its admins: shares created, opened, expired and revoked per ISO
week (in the clinic's time zone), and the shares someone has open right now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from ..accounts.models import Tenant
from ..audit.services import Actor, record_event
from ..clock import utc_to_local, utcnow
from ..extensions import db
from ..permissions import require
from ..tenancy import scoped
from .models import ShareLink, ShareVisit

OVERVIEW_WEEKS = 12
# A share counts as open now while a provider's admitted visit lasts, or for this long after its last use.
OPEN_NOW_WINDOW = timedelta(minutes=15)


@dataclass
class WeekCounts:
    monday: date
    created: int = 0
    opened: int = 0  # first opens
    expired: int = 0
    revoked: int = 0

    @property
    def label(self) -> str:
        year, week, _ = self.monday.isocalendar()
        return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class SharingOverview:
    weeks: list[WeekCounts]  # oldest first, the current week last
    open_now: list[ShareLink]  # most recently used first


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def sharing_overview(
    actor: Actor, *, now: datetime | None = None, weeks: int = OVERVIEW_WEEKS
) -> SharingOverview:
    """The last `weeks` ISO weeks (this one included) of the actor's clinic, and its shares open now."""
    require(actor, "share.overview")
    now = now or utcnow()
    record_event(actor, "share.overview", resource_type="share")
    db.session.commit()
    zone = db.session.get(Tenant, actor.tenant_id).timezone
    first_monday = _monday(utc_to_local(now, zone).date()) - timedelta(weeks=weeks - 1)
    rows = {
        first_monday + timedelta(weeks=n): WeekCounts(first_monday + timedelta(weeks=n)) for n in range(weeks)
    }
    # A day of margin before the first Monday covers any time zone; the buckets below are exact.
    since = datetime.combine(first_monday - timedelta(days=1), datetime.min.time())

    def count(moment: datetime | None, name: str) -> None:
        if moment is None or moment > now:
            return
        row = rows.get(_monday(utc_to_local(moment, zone).date()))
        if row is not None:
            setattr(row, name, getattr(row, name) + 1)

    moments = db.session.execute(
        scoped(ShareLink, actor.tenant_id)
        .with_only_columns(
            ShareLink.created_at, ShareLink.first_opened_at, ShareLink.expires_at, ShareLink.revoked_at
        )
        .where(
            or_(
                ShareLink.created_at >= since,
                ShareLink.first_opened_at >= since,
                ShareLink.expires_at >= since,
                ShareLink.revoked_at >= since,
            )
        )
    )
    for created_at, first_opened_at, expires_at, revoked_at in moments:
        count(created_at, "created")
        count(first_opened_at, "opened")
        count(revoked_at, "revoked")
        # A link revoked before its end date never expired.
        if revoked_at is None or revoked_at > expires_at:
            count(expires_at, "expired")

    visiting = (
        select(ShareVisit.share_id)
        .where(
            ShareVisit.tenant_id == actor.tenant_id,
            ShareVisit.opened.is_(True),
            ShareVisit.expires_at > now,
        )
        .scalar_subquery()
    )
    open_now = list(
        db.session.scalars(
            scoped(ShareLink, actor.tenant_id)
            .where(
                ShareLink.revoked_at.is_(None),
                ShareLink.expires_at > now,
                or_(ShareLink.id.in_(visiting), ShareLink.last_access_at >= now - OPEN_NOW_WINDOW),
            )
            .options(selectinload(ShareLink.patient))
            .order_by(ShareLink.last_access_at.desc().nulls_last(), ShareLink.id.desc())
        )
    )
    return SharingOverview(weeks=list(rows.values()), open_now=open_now)
