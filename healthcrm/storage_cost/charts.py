"""The dashboard charts' data, as static/js/storage-charts.js reads it: the very figures the tables beside
the charts show (GB to 3 decimals, USD to 6), so a chart never says what its table does not."""

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


def gb(byte_count: int | Fraction) -> float:
    return round(float(Fraction(byte_count) / GB), 3)


def dollars(amount: Fraction) -> float:
    return round(float(amount), 6)


def class_chart(current) -> dict:
    """Bytes stored and month cost per storage class."""
    from .dashboard import CLASS_LABELS  # noqa: PLC0415 - dashboard imports this module's callers

    return {
        "labels": [CLASS_LABELS.get(row.storage_class, row.storage_class) for row in current.classes],
        "colours": [CLASS_COLOURS.get(row.storage_class, "#777777") for row in current.classes],
        "gb": [gb(row.bytes_stored) for row in current.classes],
        "usd": [dollars(row.cost) for row in current.classes],
    }


def trend_chart(points: Sequence) -> dict:
    """GB stored per class (stacked) and the month cost, per day."""
    from .dashboard import CLASS_LABELS  # noqa: PLC0415

    names = sorted({name for point in points for name in point.by_class})
    return {
        "days": [point.day.isoformat() for point in points],
        "classes": [
            {
                "label": CLASS_LABELS.get(name, name),
                "colour": CLASS_COLOURS.get(name, "#777777"),
                "gb": [gb(point.by_class.get(name, 0)) for point in points],
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
