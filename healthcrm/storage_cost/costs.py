"""What a clinic's storage costs a month, from its metrics and a price table: pure functions, exact.

Every figure is a `Fraction` (prices are read as the decimals they are written as, `Fraction("0.023")`,
never as binary floats), so a test can state a cost to the last digit and two pages that add the same
things up agree; `usd()` rounds only for showing.

A month's cost, per storage class (S3's rules, with the price table's figures):
- storage: the class's GB-months of its *billable* bytes: in a class with a minimum object size (the IA
  classes and Glacier Instant Retrieval bill an object under 128 KB as 128 KB) every smaller object counts
  at the minimum. The metrics keep objects per size bucket, so this is exact whenever the minimum is a
  bucket boundary (S3's 128 KB is one); in a bucket that straddles another minimum, its objects count at
  max(their bytes, count × minimum);
- archive overhead: GLACIER and DEEP_ARCHIVE keep 32 KB of index per object at their own price and 8 KB
  of metadata at STANDARD's;
- Intelligent-Tiering's monitoring fee, per 1,000 objects of 128 KB or more (smaller ones are not
  monitored, and stay in the frequent tier);
- retrievals: each restore request, and each GB restored, at the class's Standard-tier price.
Plus the month's requests: PUTs and GETs per 1,000.

"Everything in STANDARD, uncompressed" is the files' own bytes at STANDARD's price with the same requests
and no retrievals; the saving from compression is what storing the compressed bytes in STANDARD saves
against it, and the saving from tiering is what the real classes save against those compressed bytes in
STANDARD (it can be negative: minimums, overhead and fees can cost more than a cheaper class saves).
Minimum storage durations are not a monthly cost (they bill early deletions, which the app never makes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from .prices import GB, KB, PriceTable

MONTH_DAYS = 30  # a billing month, for the requests of the last days and the forecast's steps
FORECAST_DAYS = 90  # the trend the forecast is fitted to
FORECAST_MONTHS = 3
IT_MONITORED_FROM_BYTES = 128 * KB  # Intelligent-Tiering monitors (and charges for) objects this size or more
INTELLIGENT_TIERING = "INTELLIGENT_TIERING"
STANDARD = "STANDARD"
RETRIEVAL_TIER = "Standard"  # what a restore costs by default: the tier most restores use
# Size buckets by stored size (kept in step with metrics.SIZE_BUCKETS): key -> (from, to or None).
BUCKET_BOUNDS: dict[str, tuple[int, int | None]] = {
    "lt_128k": (0, 128 * KB),
    "128k_1m": (128 * KB, 1024 * KB),
    "1m_10m": (1024 * KB, 10 * 1024 * KB),
    "10m_100m": (10 * 1024 * KB, 100 * 1024 * KB),
    "ge_100m": (100 * 1024 * KB, None),
}
ZERO = Fraction(0)

Breakdown = Mapping[str, Mapping[str, Sequence[int]]]  # class -> bucket -> [objects, stored, original]


def exact(price: float | int | str | Fraction) -> Fraction:
    """A price as the decimal it is written as (0.023 is 23/1000, not the float nearest to it)."""
    return price if isinstance(price, Fraction) else Fraction(str(price))


def usd(amount: Fraction, places: int = 2) -> Decimal:
    """An amount rounded for showing (half to even)."""
    quantum = Decimal(1).scaleb(-places)
    return (Decimal(amount.numerator) / Decimal(amount.denominator)).quantize(quantum, ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Usage:
    """What a month's cost is computed from: the store's contents (one day's breakdown) and a month of
    requests."""

    breakdown: Breakdown
    bytes_original: int = 0
    bytes_stored: int = 0
    puts: Fraction = ZERO  # a month's
    gets: Fraction = ZERO
    restores_by_class: Mapping[str, Sequence[Fraction | int]] = field(
        default_factory=dict
    )  # [requests, bytes]


@dataclass(frozen=True)
class ClassCost:
    storage_class: str
    objects: int
    stored_bytes: int
    billable_bytes: Fraction
    storage: Fraction
    overhead: Fraction
    monitoring: Fraction
    retrieval: Fraction

    @property
    def total(self) -> Fraction:
        return self.storage + self.overhead + self.monitoring + self.retrieval


@dataclass(frozen=True)
class CostEstimate:
    classes: list[ClassCost]
    puts: Fraction  # cost of the month's PUT requests
    gets: Fraction
    baseline: Fraction  # everything in STANDARD, uncompressed
    standard_compressed: Fraction  # the stored (compressed) bytes in STANDARD

    @property
    def requests(self) -> Fraction:
        return self.puts + self.gets

    @property
    def total(self) -> Fraction:
        return sum((c.total for c in self.classes), ZERO) + self.requests

    @property
    def saving_compression(self) -> Fraction:
        return self.baseline - self.standard_compressed

    @property
    def saving_tiering(self) -> Fraction:
        return self.standard_compressed - self.total

    @property
    def saving_total(self) -> Fraction:
        return self.baseline - self.total


def _per_gb(byte_count: Fraction | int, price: float) -> Fraction:
    return Fraction(byte_count) / GB * exact(price)


def _per_1000(count: Fraction | int, price: float) -> Fraction:
    return Fraction(count) / 1000 * exact(price)


def billable_bytes(buckets: Mapping[str, Sequence[int]], minimum: int) -> Fraction:
    """The bytes a class bills for these objects, each counted at `minimum` at least."""
    total = ZERO
    for key, (objects, stored, *_rest) in buckets.items():
        low, high = BUCKET_BOUNDS[key]
        if not minimum or low >= minimum:
            total += stored
        elif high is not None and high <= minimum:
            total += objects * minimum
        else:
            total += max(stored, objects * minimum)
    return Fraction(total)


def monitored_objects(buckets: Mapping[str, Sequence[int]]) -> int:
    """Objects Intelligent-Tiering monitors: those of 128 KB or more."""
    return sum(
        values[0] for key, values in buckets.items() if BUCKET_BOUNDS[key][0] >= IT_MONITORED_FROM_BYTES
    )


def class_cost(
    storage_class: str,
    buckets: Mapping[str, Sequence[int]],
    prices: PriceTable,
    restores: Sequence[Fraction | int] = (0, 0),
) -> ClassCost:
    """A month of one class's objects (and of its restores: [requests, bytes])."""
    price = prices.price(storage_class)
    standard = prices.price(STANDARD)
    objects = sum(values[0] for values in buckets.values())
    billable = billable_bytes(buckets, price.minimum_object_bytes)
    overhead = objects * (
        _per_gb(price.overhead_bytes, price.gb_month)
        + _per_gb(price.standard_overhead_bytes, standard.gb_month)
    )
    monitoring = ZERO
    if storage_class == INTELLIGENT_TIERING:
        monitoring = _per_1000(monitored_objects(buckets), prices.monitoring_per_1000)
    requests, restored = restores
    retrieval = _per_1000(requests, price.retrieval_requests_per_1000.get(RETRIEVAL_TIER, 0)) + _per_gb(
        restored, price.retrieval_per_gb.get(RETRIEVAL_TIER, 0)
    )
    return ClassCost(
        storage_class=storage_class,
        objects=objects,
        stored_bytes=sum(values[1] for values in buckets.values()),
        billable_bytes=billable,
        storage=_per_gb(billable, price.gb_month),
        overhead=overhead,
        monitoring=monitoring,
        retrieval=retrieval,
    )


def month_cost(usage: Usage, prices: PriceTable) -> CostEstimate:
    """The month's estimated cost of `usage`, per class, with the savings against plain STANDARD."""
    names = sorted(set(usage.breakdown) | set(usage.restores_by_class))
    classes = [
        class_cost(name, usage.breakdown.get(name, {}), prices, usage.restores_by_class.get(name, (0, 0)))
        for name in names
    ]
    puts = _per_1000(usage.puts, prices.put_per_1000)
    gets = _per_1000(usage.gets, prices.get_per_1000)
    standard = prices.price(STANDARD).gb_month
    return CostEstimate(
        classes=classes,
        puts=puts,
        gets=gets,
        baseline=_per_gb(usage.bytes_original, standard) + puts + gets,
        standard_compressed=_per_gb(usage.bytes_stored, standard) + puts + gets,
    )


def usage_of(day_row, month_rows: Iterable) -> Usage:
    """The usage of a metrics row (the store's contents) with the requests of `month_rows` (the rows of the
    month up to it), scaled to a whole month when fewer days have figures yet."""
    rows = list(month_rows)
    days = max(len(rows), 1)
    scale = Fraction(MONTH_DAYS, days)
    restores: dict[str, list[Fraction]] = {}
    for row in rows:
        for name, (count, restored) in (row.restores_by_class or {}).items():
            entry = restores.setdefault(name, [ZERO, ZERO])
            entry[0] += count * scale
            entry[1] += restored * scale
    return Usage(
        breakdown=day_row.breakdown or {},
        bytes_original=day_row.bytes_original,
        bytes_stored=day_row.bytes_stored,
        puts=sum((Fraction(row.puts) for row in rows), ZERO) * scale,
        gets=sum((Fraction(row.views + row.downloads) for row in rows), ZERO) * scale,
        restores_by_class=restores,
    )


def daily_costs(rows: Sequence, prices: PriceTable) -> list[tuple[date, Fraction]]:
    """Each row's month cost (its contents, and the requests of the MONTH_DAYS up to it), oldest first."""
    ordered = sorted(rows, key=lambda row: row.day)
    found = []
    for index, row in enumerate(ordered):
        window_start = row.day - timedelta(days=MONTH_DAYS - 1)
        month = [r for r in ordered[max(0, index - MONTH_DAYS) : index + 1] if r.day >= window_start]
        found.append((row.day, month_cost(usage_of(row, month), prices).total))
    return found


# --- the forecast ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """y = intercept + slope × (days after `origin`), fitted by least squares."""

    origin: date
    slope: Fraction  # per day
    intercept: Fraction

    def at(self, day: date) -> Fraction:
        return self.intercept + self.slope * (day - self.origin).days


def fit_line(points: Sequence[tuple[date, Fraction | int]]) -> Line | None:
    """The least-squares line through (day, value) points; None with fewer than two days."""
    if len({day for day, _ in points}) < 2:
        return None
    origin = min(day for day, _ in points)
    xs = [Fraction((day - origin).days) for day, _ in points]
    ys = [Fraction(value) for _, value in points]
    n = len(points)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return Line(origin=origin, slope=slope, intercept=mean_y - slope * mean_x)


@dataclass(frozen=True)
class ForecastMonth:
    day: date  # the end of the month ahead
    month_cost: Fraction
    bytes_stored: Fraction


@dataclass(frozen=True)
class Forecast:
    based_on_days: int  # the days with figures the lines were fitted to
    first_day: date
    last_day: date
    cost_per_day: Fraction  # the month cost's change per day
    bytes_per_day: Fraction
    months: list[ForecastMonth]


def forecast(
    costs: Sequence[tuple[date, Fraction]],
    stored: Sequence[tuple[date, int]],
    *,
    months: int = FORECAST_MONTHS,
    fitted_days: int = FORECAST_DAYS,
) -> Forecast | None:
    """The month cost and the bytes stored 30, 60 and 90 days after the last day, from least-squares lines
    through the last `fitted_days` days of the series (never below zero). None with under two days."""
    if not costs:
        return None
    last = max(day for day, _ in costs)
    first = last - timedelta(days=fitted_days - 1)
    cost_points = [(day, value) for day, value in costs if day >= first]
    byte_points = [(day, value) for day, value in stored if day >= first]
    cost_line, byte_line = fit_line(cost_points), fit_line(byte_points)
    if cost_line is None or byte_line is None:
        return None
    ahead = []
    for month in range(1, months + 1):
        day = last + timedelta(days=MONTH_DAYS * month)
        ahead.append(ForecastMonth(day, max(cost_line.at(day), ZERO), max(byte_line.at(day), ZERO)))
    return Forecast(
        based_on_days=len(cost_points),
        first_day=min(day for day, _ in cost_points),
        last_day=last,
        cost_per_day=cost_line.slope,
        bytes_per_day=byte_line.slope,
        months=ahead,
    )


# --- moving cold files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoveSaving:
    target_class: str
    objects: int
    now: Fraction  # their month cost where they are
    after: Fraction  # their month cost in the target class
    transition: Fraction  # once: the transition requests

    @property
    def saving(self) -> Fraction:
        return self.now - self.after


def move_saving(breakdown: Breakdown, target_class: str, prices: PriceTable) -> MoveSaving:
    """What moving these objects (class -> bucket -> [objects, stored, original]) to `target_class` saves a
    month, and the one-time transition fee. Objects already in the target class stay as they are."""
    now = after = ZERO
    moved = 0
    target: dict[str, list[int]] = {}
    for name, buckets in breakdown.items():
        cost = class_cost(name, buckets, prices).total
        now += cost
        if name == target_class:
            after += cost
            continue
        for key, (objects, stored, *_rest) in buckets.items():
            entry = target.setdefault(key, [0, 0])
            entry[0] += objects
            entry[1] += stored
            moved += objects
    if target:
        after += class_cost(target_class, target, prices).total
    return MoveSaving(
        target_class=target_class,
        objects=moved,
        now=now,
        after=after,
        transition=_per_1000(moved, prices.price(target_class).transition_per_1000),
    )
