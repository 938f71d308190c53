"""The lifecycle rule checker: where the clinic's rule (and the uploads' Intelligent-Tiering) costs this
clinic more than it saves, with the figures, from its own attachment versions and the price table.

Four checks, each a `RuleWarning` with its figures (`figures`, for the page and the tests):
1. Small objects (under 128 KB). Intelligent-Tiering never moves them down, and an archived object carries
   40 KB of metadata (32 KB billed at the archive's price, 8 KB at STANDARD's): for small files that eats
   the saving. The tag keeps them out, so the rule adds nothing for them; the warning says what archiving
   them would cost, so nobody "fixes" the exclusion.
2. Transition request fees against the monthly saving, per object-size bucket: months to break even,
   counting both transitions (GLACIER at day G, DEEP_ARCHIVE at day D). Warned past
   BREAK_EVEN_WARN_MONTHS.
3. Minimum storage durations (GLACIER 90 days, DEEP_ARCHIVE 180): versions of this clinic that were
   replaced within that time after the day the rule would archive them. HealthCRM keeps a replaced
   version (a new version is a new object), so no charge arises from the replacement itself; the figure
   is the early-deletion charge if such versions are deleted or moved out of their class then (the worst
   case), as a monthly rate over the clinic's history. It says the archiving day catches files still in
   use.
4. Intelligent-Tiering's monitoring fee on objects from 128 KB up to the size where the fee equals the
   most the Infrequent Access tier could save on them (STANDARD_IA's price is that tier's price).

Figures are in the price table's currency, per month unless named otherwise, on 30-day months.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from ..clock import utcnow
from ..extensions import db
from ..files.models import AttachmentVersion
from ..files.storage import ARCHIVED_CLASSES
from .lifecycle import GLACIER_MINIMUM_DAYS, clinic_rule_id, lifecycle_settings
from .prices import GB, KB, PriceTable, load_prices
from .tags import MIN_ARCHIVE_BYTES, archivable, versions_query

MB = 1024 * KB
DAYS_PER_MONTH = 30
# A transition that takes longer than this to pay for itself is worth a warning.
BREAK_EVEN_WARN_MONTHS = 12
# Object sizes the transition check reports on: [low, high) in bytes (None: no upper bound).
SIZE_BUCKETS: list[tuple[int, int | None]] = [
    (128 * KB, 256 * KB),
    (256 * KB, 1 * MB),
    (1 * MB, 8 * MB),
    (8 * MB, None),
]
INTELLIGENT_TIERING = "INTELLIGENT_TIERING"
IT_RULE_ID = "uploads-intelligent-tiering"


@dataclass(frozen=True)
class RuleWarning:
    rule_id: str  # the lifecycle rule it is about
    title: str  # one line: what costs more than it saves
    detail: str  # the figures, in words a clinic admin can act on
    monthly_cost_change: float  # USD a month the rule adds (positive) for this clinic's objects
    figures: dict[str, Any] = field(default_factory=dict, compare=False)  # the numbers behind the words


def usd(amount: float) -> str:
    """Dollars and cents; a fraction of a cent (a small clinic's files) with two significant digits."""
    sign, amount = ("-" if amount < 0 else ""), abs(amount)
    if amount == 0 or amount >= 0.01:
        return f"{sign}${amount:,.2f}"
    decimals = 1 - math.floor(math.log10(amount))
    if decimals > 10:
        return "less than $0.0000000001"
    return f"{sign}${amount:.{decimals}f}"


def files(count: int) -> str:
    return "1 file" if count == 1 else f"{count:,} files"


def size_label(size: float) -> str:
    for unit, scale in (("GB", GB), ("MB", MB), ("KB", KB)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(size)} bytes"


def _months(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} months"


def _r(value: float | None) -> float | None:
    """Six significant digits: the figures are estimates, and tiny (a file's month is millionths)."""
    return None if value is None else float(f"{value:.6g}")


class _Costs:
    """Per-object monthly figures from the price table."""

    def __init__(self, prices: PriceTable):
        self.prices = prices
        self.standard = prices.price("STANDARD").gb_month
        self.glacier = prices.price("GLACIER")
        self.deep = prices.price("DEEP_ARCHIVE")

    def per_byte(self, storage_class: str) -> float:
        return self.prices.price(storage_class).gb_month / GB

    def metadata(self, price) -> float:
        """What the archive's metadata of one object costs a month."""
        return (price.overhead_bytes * price.gb_month + price.standard_overhead_bytes * self.standard) / GB

    def fee(self, price) -> float:
        return price.transition_per_1000 / 1000


def check_rules(
    tenant_id: int, *, prices: PriceTable | None = None, now: datetime | None = None
) -> list[RuleWarning]:
    """The warnings for one clinic's actual objects, under its lifecycle settings."""
    prices = prices or load_prices(current_app.config)
    costs = _Costs(prices)
    settings = lifecycle_settings(tenant_id)
    now = now or utcnow()
    rule_id = clinic_rule_id(tenant_id)
    found = [_small_objects(tenant_id, costs, rule_id)]
    found += _transition_fees(tenant_id, costs, rule_id, settings.glacier_days, settings.deep_archive_days)
    found.append(
        _minimum_durations(tenant_id, costs, rule_id, settings.glacier_days, settings.deep_archive_days, now)
    )
    found.append(_monitoring_fee(tenant_id, costs))
    return [warning for warning in found if warning is not None]


def _by_class(query) -> dict[str, tuple[int, int]]:
    return {row[0]: (int(row[1]), int(row[2] or 0)) for row in db.session.execute(query)}


def _small_objects(tenant_id: int, costs: _Costs, rule_id: str) -> RuleWarning | None:
    V = AttachmentVersion
    groups = _by_class(
        select(V.storage_class, func.count(), func.sum(V.stored_size))
        .where(V.tenant_id == tenant_id, V.stored_size < MIN_ARCHIVE_BYTES)
        .group_by(V.storage_class)
    )
    count = sum(n for n, _ in groups.values())
    if not count:
        return None
    size = sum(b for _, b in groups.values())
    now_monthly = sum(b * costs.per_byte(cls) for cls, (_, b) in groups.items())
    metadata = count * costs.metadata(costs.glacier)
    archived = size * costs.glacier.gb_month / GB + metadata
    fees = count * costs.fee(costs.glacier)
    saving = now_monthly - archived
    months = fees / saving if saving > 0 else None
    detail = (
        f"{files(count)} ({size_label(size)} in all) are under 128 KB: Intelligent-Tiering never moves them "
        f"to a cheaper tier, and the archive tag keeps them out of this rule. They cost {usd(now_monthly)} a "
        f"month now. In GLACIER they would cost {usd(archived)} a month, {usd(metadata)} of it the 40 KB of "
        f"metadata each archived file carries, plus {usd(fees)} once for the transitions: "
        + (
            f"paid back after {_months(months)}."
            if months is not None
            else "the metadata outweighs the saving, so it never pays back."
        )
    )
    return RuleWarning(
        rule_id,
        f"{files(count)} under 128 KB stay out of archiving",
        detail,
        0.0,
        {
            "objects": count,
            "bytes": size,
            "monthly_now": _r(now_monthly),
            "monthly_if_archived": _r(archived),
            "metadata_monthly": _r(metadata),
            "transition_fees": _r(fees),
            "months_to_break_even": _r(months),
        },
    )


def break_even_months(
    fee_glacier: float, fee_deep: float, saving_glacier: float, saving_deep: float, window: float
) -> float | None:
    """Months after the GLACIER transition until its fee, and the DEEP_ARCHIVE one paid `window` months
    later, are earned back by the monthly savings (against staying put); None when never."""
    at_window = -fee_glacier + saving_glacier * window - fee_deep
    if at_window >= 0:
        return fee_glacier / saving_glacier if saving_glacier > 0 else 0.0
    if saving_deep <= 0:
        return None
    return window + (-at_window) / saving_deep


def _bucket_case():
    V = AttachmentVersion
    whens = []
    for index, (low, high) in enumerate(SIZE_BUCKETS):
        condition = V.stored_size >= low if high is None else V.stored_size.between(low, high - 1)
        whens.append((condition, index))
    return case(*whens, else_=-1)


def _transition_fees(
    tenant_id: int, costs: _Costs, rule_id: str, glacier_days: int, deep_days: int
) -> list[RuleWarning]:
    V = AttachmentVersion
    bucket = _bucket_case().label("bucket")
    query = (
        versions_query(tenant_id, bucket, V.storage_class, func.count(), func.sum(V.stored_size))
        .where(*archivable(tenant_id, opened_since=None), V.storage_class.not_in(sorted(ARCHIVED_CLASSES)))
        .group_by(bucket, V.storage_class)
    )
    per_bucket: dict[int, dict[str, tuple[int, int]]] = {}
    for index, storage_class, n, size in db.session.execute(query):
        if index >= 0:
            per_bucket.setdefault(index, {})[storage_class] = (int(n), int(size or 0))
    window = (deep_days - glacier_days) / DAYS_PER_MONTH
    fee_g, fee_d = costs.fee(costs.glacier), costs.fee(costs.deep)
    warnings = []
    for index in sorted(per_bucket):
        groups = per_bucket[index]
        count = sum(n for n, _ in groups.values())
        size = sum(b for _, b in groups.values())
        now_monthly = sum(b * costs.per_byte(cls) for cls, (_, b) in groups.items())
        # Per object of the bucket's average size: linear in size, so the totals below are exact.
        saving_g = (now_monthly - size * costs.glacier.gb_month / GB) / count - costs.metadata(costs.glacier)
        saving_d = (now_monthly - size * costs.deep.gb_month / GB) / count - costs.metadata(costs.deep)
        months = break_even_months(fee_g, fee_d, saving_g, saving_d, window)
        if months is not None and months <= BREAK_EVEN_WARN_MONTHS:
            continue
        horizon = BREAK_EVEN_WARN_MONTHS
        first_year_fees = fee_g + (fee_d if window <= horizon else 0.0)
        first_year_saving = saving_g * min(window, horizon) + saving_d * max(0.0, horizon - window)
        change = count * (first_year_fees - first_year_saving) / horizon
        low, high = SIZE_BUCKETS[index]
        label = f"{size_label(low)}–{size_label(high)}" if high else f"{size_label(low)} and more"
        detail = (
            f"{files(count)} of {label} ({size_label(size)}): moving them to GLACIER costs "
            f"{usd(fee_g * count)} in transition requests, and to DEEP_ARCHIVE {usd(fee_d * count)} more "
            f"{window:.0f} months later; they save {usd(saving_g * count)} a month in GLACIER and "
            f"{usd(saving_d * count)} in DEEP_ARCHIVE (after the 40 KB of metadata each). The transitions "
            f"pay for themselves after {_months(months)}; "
            f"over the first {horizon} months the rule costs {usd(change)} a month more than it saves."
        )
        warnings.append(
            RuleWarning(
                rule_id,
                f"Files of {label} pay back their transitions only after {_months(months)}",
                detail,
                _r(change),
                {
                    "size_bucket": label,
                    "objects": count,
                    "bytes": size,
                    "transition_fees": _r(count * (fee_g + fee_d)),
                    "monthly_saving_glacier": _r(count * saving_g),
                    "monthly_saving_deep_archive": _r(count * saving_d),
                    "months_to_break_even": _r(months),
                },
            )
        )
    return warnings


def _minimum_durations(
    tenant_id: int, costs: _Costs, rule_id: str, glacier_days: int, deep_days: int, now: datetime
) -> RuleWarning | None:
    V = AttachmentVersion
    later = aliased(AttachmentVersion)
    replaced_at = (
        select(func.min(later.created_at))
        .where(later.tenant_id == tenant_id, later.attachment_id == V.attachment_id, later.number > V.number)
        .scalar_subquery()
    )
    # Only the replaced ones (a later version exists): a big clinic's other versions stay in the database.
    rows = db.session.execute(
        versions_query(tenant_id, V.stored_size, V.created_at, replaced_at.label("replaced_at")).where(
            *archivable(tenant_id, opened_since=None), replaced_at.is_not(None)
        )
    ).all()
    first = db.session.scalar(select(func.min(V.created_at)).where(V.tenant_id == tenant_id))
    replaced = [
        (size, (gone - made).total_seconds() / 86400) for size, made, gone in rows if gone is not None
    ]
    deep_minimum = costs.deep.minimum_days or 180
    glacier_minimum = costs.glacier.minimum_days or GLACIER_MINIMUM_DAYS
    early_g = [
        (size, glacier_days + glacier_minimum - age)
        for size, age in replaced
        if glacier_days <= age < glacier_days + glacier_minimum
    ]
    early_d = [
        (size, deep_days + deep_minimum - age)
        for size, age in replaced
        if deep_days <= age < deep_days + deep_minimum
    ]
    if not early_g and not early_d:
        return None

    def charge(items, price) -> float:
        return sum(
            days / DAYS_PER_MONTH * (size + price.overhead_bytes) / GB * price.gb_month
            for size, days in items
        )

    charge_g, charge_d = charge(early_g, costs.glacier), charge(early_d, costs.deep)
    history = max(1.0, (now - first).total_seconds() / 86400 / DAYS_PER_MONTH) if first else 1.0
    monthly = (charge_g + charge_d) / history
    count = len(early_g) + len(early_d)
    detail = (
        f"Of this clinic's {len(replaced)} replaced files (128 KB or more), {len(early_g)} were replaced "
        f"between day {glacier_days} and day {glacier_days + glacier_minimum} after upload, inside GLACIER's "
        f"{glacier_minimum}-day minimum after this rule would archive them, and {len(early_d)} between day "
        f"{deep_days} and day {deep_days + deep_minimum} (DEEP_ARCHIVE's {deep_minimum} days). HealthCRM "
        "keeps replaced versions, so this is charged only if such a version is deleted or moved out of its "
        f"class then: at worst {usd(charge_g + charge_d)} in early-deletion charges over {history:.0f} "
        f"months of history, {usd(monthly)} a month. Files replaced that soon were still in use: a later "
        "archiving day would leave them alone."
    )
    return RuleWarning(
        rule_id,
        f"{files(count)} {'was' if count == 1 else 'were'} replaced within the minimum storage time after "
        "the archiving day",
        detail,
        _r(monthly),
        {
            "replaced_versions": len(replaced),
            "early_glacier": len(early_g),
            "early_deep_archive": len(early_d),
            "early_deletion_charges": _r(charge_g + charge_d),
            "history_months": round(history, 4),
            "monthly": _r(monthly),
        },
    )


def _monitoring_fee(tenant_id: int, costs: _Costs) -> RuleWarning | None:
    prices = costs.prices
    fee = prices.monitoring_per_1000 / 1000
    saving_per_byte = costs.per_byte(INTELLIGENT_TIERING) - costs.per_byte("STANDARD_IA")
    if fee <= 0 or saving_per_byte <= 0:
        return None
    break_even = fee / saving_per_byte  # bytes: above this the Infrequent tier can save more than the fee
    if break_even <= MIN_ARCHIVE_BYTES:
        return None
    V = AttachmentVersion
    count, size = db.session.execute(
        select(func.count(), func.sum(V.stored_size)).where(
            V.tenant_id == tenant_id,
            V.storage_class == INTELLIGENT_TIERING,
            V.stored_size >= MIN_ARCHIVE_BYTES,
            V.stored_size < break_even,
        )
    ).one()
    size = int(size or 0)
    if not count:
        return None
    monitoring = count * fee
    best = size * saving_per_byte
    change = monitoring - best
    detail = (
        f"{files(count)} between 128 KB and {size_label(break_even)} ({size_label(size)}) are in "
        "Intelligent-Tiering, "
        f"which charges {usd(monitoring)} a month to watch them; even if none were ever opened again, its "
        f"Infrequent Access tier would save them only {usd(best)} a month. For files this small, STANDARD "
        f"costs {usd(change)} a month less."
    )
    return RuleWarning(
        IT_RULE_ID,
        f"Intelligent-Tiering's monitoring fee outweighs its saving on {files(count)} under "
        f"{size_label(break_even)}",
        detail,
        _r(change),
        {
            "objects": count,
            "bytes": size,
            "break_even_bytes": round(break_even),
            "monitoring_fee": _r(monitoring),
            "best_saving": _r(best),
        },
    )
