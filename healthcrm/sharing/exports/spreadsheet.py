"""The share's lab results as CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from datetime import UTC

from ..content import SharedContent

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("code", "name", "value", "unit", "ref_low", "ref_high", "flag", "observed_at")


def labs_csv(content: SharedContent) -> str:
    """The share's lab results, oldest first, one per row under CSV_COLUMNS; times as ISO 8601 UTC.

    Text cells starting with = + - @ (or a tab or carriage return) get a leading apostrophe so a spreadsheet
    shows them instead of running them as formulas. Numbers are written by this function, never typed, so a
    negative value stays a number."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for lab in content.labs:
        value = _csv_text(lab.value_text) if lab.value_numeric is None else f"{lab.value_numeric:g}"
        writer.writerow(
            (
                _csv_text(lab.code),
                _csv_text(lab.name),
                value,
                _csv_text(lab.unit),
                "" if lab.ref_low is None else f"{lab.ref_low:g}",
                "" if lab.ref_high is None else f"{lab.ref_high:g}",
                _csv_text(lab.flag),
                lab.observed_at.replace(tzinfo=UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            )
        )
    return out.getvalue()


def _csv_text(value: str | None) -> str:
    text = value or ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
