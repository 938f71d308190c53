"""The dashboard charts' data, as static/js/storage-charts.js reads it: the very figures the tables beside
the charts show (sizes to 3 decimals in one unit per chart, KB, MB or GB as the largest figure needs; USD to
6 decimals), so a chart never says what its table does not."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from .prices import GB

# Colours per class: the same class keeps its colour in every chart (the tables name every class too).
CLASS_COLOURS = {
    "STANDARD": "#0b6e75",
    "INTELLIGENT_TIERING": "#3d7cc9",
    "STANDARD_IA": "#7a5cc2",
    "ONEZONE_IA": "#a34fa0",
    "GLACIER_IR": "#8a5a00",
    "GLACIER": "#5b6b78",
    "DEEP_ARCHIVE": "#2f3b45",
}


UNITS = (("GB", GB), ("MB", 1024**2), ("KB", 1024))


def unit_for(largest: int) -> tuple[str, int]:
    """The unit a chart of sizes up to `largest` bytes is drawn in."""
    for name, size in UNITS:
        if largest >= size:
            return name, size
    return UNITS[-1]


def in_unit(byte_count: int | Fraction, unit: int) -> float:
    return round(float(Fraction(byte_count) / unit), 3)


def gb(byte_count: int | Fraction) -> float:
    return in_unit(byte_count, GB)


def dollars(amount: Fraction) -> float:
    return round(float(amount), 6)


def class_chart(current) -> dict:
    """Size stored and month cost per storage class."""
    from .dashboard import CLASS_LABELS  # noqa: PLC0415 - dashboard imports this module's callers

    unit, size = unit_for(max((row.bytes_stored for row in current.classes), default=0))
    return {
        "unit": unit,
        "labels": [CLASS_LABELS.get(row.storage_class, row.storage_class) for row in current.classes],
        "colours": [CLASS_COLOURS.get(row.storage_class, "#777777") for row in current.classes],
        "sizes": {row.storage_class: in_unit(row.bytes_stored, size) for row in current.classes},
        "values": [in_unit(row.bytes_stored, size) for row in current.classes],
        "usd": [dollars(row.cost) for row in current.classes],
    }


def trend_chart(points: Sequence) -> dict:
    """Size stored per class (stacked) and the month cost, per day."""
    from .dashboard import CLASS_LABELS  # noqa: PLC0415

    names = sorted({name for point in points for name in point.by_class})
    unit, size = unit_for(max((point.bytes_stored for point in points), default=0))
    return {
        "unit": unit,
        "days": [point.day.isoformat() for point in points],
        "classes": [
            {
                "label": CLASS_LABELS.get(name, name),
                "colour": CLASS_COLOURS.get(name, "#777777"),
                "values": [in_unit(point.by_class.get(name, 0), size) for point in points],
            }
            for name in names
        ],
        "usd": [dollars(point.month_cost) for point in points],
    }


def month_chart(months: Sequence) -> dict:
    """Views and downloads per month."""
    return {
        "months": [row.month.strftime("%b %Y") for row in months],
        "views": [row.views for row in months],
        "downloads": [row.downloads for row in months],
    }
