"""The cost arithmetic on a fixed price table, exact to the last digit; the forecast on synthetic series."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction as F

from healthcrm.storage_cost.alerts import format_usd
from healthcrm.storage_cost.costs import (
    Usage,
    fit_line,
    forecast,
    month_cost,
    move_saving,
    usage_of,
    usd,
)
from healthcrm.storage_cost.prices import DEFAULT_PRICES, ClassPrice, PriceTable

KB, MB, GB = 1024, 1024**2, 1024**3

PRICES = PriceTable(
    classes={
        "STANDARD": ClassPrice(gb_month=0.02),
        "INTELLIGENT_TIERING": ClassPrice(gb_month=0.02, transition_per_1000=0.01),
        "STANDARD_IA": ClassPrice(gb_month=0.01, minimum_object_bytes=128 * KB),
        "GLACIER": ClassPrice(
            gb_month=0.004, transition_per_1000=0.03, overhead_bytes=32 * KB, standard_overhead_bytes=8 * KB,
            retrieval_per_gb={"Standard": 0.01}, retrieval_requests_per_1000={"Standard": 0.05},
        ),
        "DEEP_ARCHIVE": ClassPrice(
            gb_month=0.001, transition_per_1000=0.05, overhead_bytes=32 * KB, standard_overhead_bytes=8 * KB,
        ),
    },
    monitoring_per_1000=0.0025,
    put_per_1000=0.005,
    get_per_1000=0.0004,
    source="test prices",
    taken="2031-01-01",
)  # fmt: skip

USAGE = Usage(
    breakdown={
        "STANDARD": {"1m_10m": [1000, GB, 2 * GB]},
        "STANDARD_IA": {"lt_128k": [1000, 1000 * KB, 1000 * KB], "ge_100m": [1, GB, GB]},
        "INTELLIGENT_TIERING": {"lt_128k": [500, 500 * KB, 500 * KB], "128k_1m": [2000, GB, GB]},
        "GLACIER": {"10m_100m": [100, 2 * GB, 2 * GB]},
    },
    bytes_original=2 * GB + 1000 * KB + GB + 500 * KB + GB + 2 * GB,
    bytes_stored=GB + 1000 * KB + GB + 500 * KB + GB + 2 * GB,
    puts=F(20_000),
    gets=F(100_000),
    restores_by_class={"GLACIER": [10, GB // 2]},
)


def test_each_class_costs_what_s3_bills_exactly():
    estimate = month_cost(USAGE, PRICES)
    by_class = {c.storage_class: c for c in estimate.classes}

    assert by_class["STANDARD"].storage == F("0.02")
    assert by_class["STANDARD"].total == F("0.02")
    # 1,000 objects of 1 KB are billed as 128 KB each: 125 MB, plus the 1 GB object as it is.
    ia = by_class["STANDARD_IA"]
    assert ia.billable_bytes == 1000 * 128 * KB + GB
    assert ia.storage == (F(125, 1024) + 1) * F("0.01")
    # Intelligent-Tiering: monitoring only for the 2,000 objects of 128 KB or more.
    it = by_class["INTELLIGENT_TIERING"]
    assert it.storage == F(500 * KB + GB, GB) * F("0.02")
    assert it.monitoring == 2 * F("0.0025")
    # Glacier: 2 GB, 40 KB per object of overhead (32 KB at its price, 8 KB at Standard's), and retrievals.
    glacier = by_class["GLACIER"]
    assert glacier.storage == 2 * F("0.004")
    assert glacier.overhead == 100 * (F(32 * KB, GB) * F("0.004") + F(8 * KB, GB) * F("0.02"))
    assert glacier.retrieval == F(10, 1000) * F("0.05") + F(1, 2) * F("0.01")
    assert (estimate.puts, estimate.gets) == (20 * F("0.005"), 100 * F("0.0004"))

    expected = (
        F("0.02") + ia.storage + it.storage + it.monitoring
        + glacier.storage + glacier.overhead + glacier.retrieval + F("0.1") + F("0.04")
    )  # fmt: skip
    assert estimate.total == expected


def test_the_savings_are_against_everything_in_standard_uncompressed():
    estimate = month_cost(USAGE, PRICES)
    requests = F("0.1") + F("0.04")
    assert estimate.baseline == F(USAGE.bytes_original, GB) * F("0.02") + requests
    assert estimate.standard_compressed == F(USAGE.bytes_stored, GB) * F("0.02") + requests
    assert estimate.saving_compression == F(GB, GB) * F("0.02")  # the 1 GB compression saved, at Standard
    assert estimate.saving_tiering == estimate.standard_compressed - estimate.total
    assert estimate.saving_total == estimate.saving_compression + estimate.saving_tiering


def test_small_objects_can_make_a_cheaper_class_cost_more():
    tiny = {"lt_128k": [10_000, 10_000 * 4 * KB, 10_000 * 4 * KB]}
    standard = month_cost(Usage(breakdown={"STANDARD": tiny}), PRICES).total
    ia = month_cost(Usage(breakdown={"STANDARD_IA": tiny}), PRICES).total
    assert standard == F(40_000 * KB, GB) * F("0.02")
    assert ia == F(10_000 * 128 * KB, GB) * F("0.01")
    assert ia > standard


def test_the_default_prices_and_their_date():
    terabyte = Usage(breakdown={"STANDARD": {"ge_100m": [1024, 1024 * GB, 1024 * GB]}})
    assert month_cost(terabyte, DEFAULT_PRICES).total == F("23.552")
    assert DEFAULT_PRICES.taken and "us-east-1" in DEFAULT_PRICES.source


@dataclass
class Row:
    day: date
    puts: int = 0
    views: int = 0
    downloads: int = 0
    bytes_original: int = 0
    bytes_stored: int = 0
    breakdown: dict = field(default_factory=dict)
    restores_by_class: dict = field(default_factory=dict)


def test_a_months_requests_are_scaled_from_the_days_recorded():
    days = [Row(date(2031, 1, 1) + timedelta(days=n), puts=100, views=7, downloads=3,
                restores_by_class={"GLACIER": [1, MB]}) for n in range(10)]  # fmt: skip
    usage = usage_of(days[-1], days)
    assert (usage.puts, usage.gets) == (F(3000), F(300))
    assert usage.restores_by_class == {"GLACIER": [F(30), F(30 * MB)]}


def test_a_least_squares_line_is_exact():
    line = fit_line([(date(2031, 1, 1), 1), (date(2031, 1, 2), 3), (date(2031, 1, 3), 2)])
    assert (line.slope, line.intercept) == (F(1, 2), F(3, 2))
    assert fit_line([(date(2031, 1, 1), 5)]) is None


def test_the_forecast_follows_the_last_90_days():
    start = date(2031, 1, 1)
    # 30 days flat at 100, then 90 days rising by 1/2 a day: only the rise is fitted.
    costs = [(start + timedelta(days=n), F(100)) for n in range(30)]
    costs += [(start + timedelta(days=30 + n), F(100) + F(n, 2)) for n in range(90)]
    stored = [(day, int(value * 1000)) for day, value in costs]
    found = forecast(costs, stored)
    last = start + timedelta(days=119)
    assert (found.based_on_days, found.first_day, found.last_day) == (90, start + timedelta(days=30), last)
    assert found.cost_per_day == F(1, 2)
    assert [(m.day, m.month_cost) for m in found.months] == [
        (last + timedelta(days=30), F(100) + F(89 + 30, 2)),
        (last + timedelta(days=60), F(100) + F(89 + 60, 2)),
        (last + timedelta(days=90), F(100) + F(89 + 90, 2)),
    ]
    assert found.months[0].bytes_stored == (F(100) + F(89 + 30, 2)) * 1000


def test_a_falling_trend_stops_at_zero_and_one_day_is_no_trend():
    start = date(2031, 1, 1)
    falling = [(start + timedelta(days=n), F(10 - n)) for n in range(10)]
    found = forecast(falling, [(d, 0) for d, _ in falling])
    assert [m.month_cost for m in found.months] == [0, 0, 0]
    assert forecast([(start, F(1))], [(start, 1)]) is None


def test_moving_cold_files_saves_with_the_overhead_and_a_one_time_fee():
    cold = {"STANDARD": {"1m_10m": [1000, 10 * GB, 10 * GB]}, "GLACIER": {"1m_10m": [10, GB, GB]}}
    moved = move_saving(cold, "GLACIER", PRICES)
    glacier_per_object = F(32 * KB, GB) * F("0.004") + F(8 * KB, GB) * F("0.02")
    already = F("0.004") + 10 * glacier_per_object
    assert moved.objects == 1000
    assert moved.now == 10 * F("0.02") + already
    assert moved.after == already + 10 * F("0.004") + 1000 * glacier_per_object
    assert moved.saving == moved.now - moved.after
    assert moved.transition == F(1000, 1000) * F("0.03")


def test_amounts_are_rounded_only_for_showing():
    assert usd(F(1, 3), 4) == Decimal("0.3333")
    assert usd(F(5, 1000)) == Decimal("0.00")  # half to even
    assert format_usd(F("1234.567")) == "$1,234.57"
    assert format_usd(F("0.000123")) == "$0.000123"
    assert format_usd(F("0.0203654")) == "$0.020365"
    assert format_usd(F("0.5")) == "$0.50"
    assert format_usd(F(0)) == "$0.00"
    assert format_usd(F("-0.000028")) == "−$0.000028"
