"""A patient's labs as a flowsheet: tests as rows grouped by panel, clinic days as columns, newest first.

Built from the tests `labs.group_by_test` gives (the staff's labs page and the provider's labs tab alike),
so both show the same rows. It knows nothing of the request: the views pass the panel, the test whose
chart is open and the columns offset they were asked for, and an unknown panel or test is NotFound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from ..clock import to_clinic_time
from ..errors import NotFound
from .labs import LabTest
from .models import LabResult

# The most recent clinic days shown at once; older days are a link away ("Older results").
FLOWSHEET_COLUMNS = 8
# A sparkline draws at most this many of the latest numeric values, in a box of this size (SVG units).
SPARKLINE_POINTS = 12
SPARKLINE_WIDTH = 96
SPARKLINE_HEIGHT = 28
SPARKLINE_MARGIN = 3


@dataclass(frozen=True)
class Panel:
    label: str
    codes: tuple[str, ...]


# Panels by LOINC code, in the order a clinician reads them. A test of no panel is under OTHER.
PANELS: dict[str, Panel] = {
    "liver": Panel("Liver", ("1975-2", "1751-7", "6301-6", "1742-6", "1920-8")),
    "kidney": Panel("Kidney and electrolytes", ("2160-0", "3094-0", "2951-2", "2823-3")),
    "blood": Panel("Blood count", ("718-7", "6690-2", "777-3")),
    "diabetes": Panel("Diabetes", ("4548-4", "2345-7")),
    "lipids": Panel("Lipids", ("2093-3", "2085-9", "13457-7", "2571-8")),
    "thyroid": Panel("Thyroid", ("3016-3",)),
}
OTHER = "other"
OTHER_LABEL = "Other tests"
_PANEL_OF = {code: key for key, panel in PANELS.items() for code in panel.codes}


def panel_of(test: LabTest) -> str:
    return _PANEL_OF.get(test.code, OTHER)


def panel_label(key: str) -> str:
    return PANELS[key].label if key in PANELS else OTHER_LABEL


def key_of(test: LabTest) -> str:
    """A test's name in URLs: its code, or its name for a test without one."""
    return test.code or f"name:{test.name.casefold()}"


@dataclass(frozen=True)
class Sparkline:
    """A small trend line in a `SPARKLINE_WIDTH` × `SPARKLINE_HEIGHT` box; the last point is marked."""

    points: str
    last_x: float
    last_y: float
    count: int


def sparkline(test: LabTest) -> Sparkline | None:
    """The latest numeric values in the latest unit, scaled into the box; None below two values."""
    values = [r.value_numeric for r in test.charted[-SPARKLINE_POINTS:]]
    if len(values) < 2:
        return None
    low, high = min(values), max(values)
    spread = (high - low) or 1.0
    inner_w = SPARKLINE_WIDTH - 2 * SPARKLINE_MARGIN
    inner_h = SPARKLINE_HEIGHT - 2 * SPARKLINE_MARGIN
    coords = [
        (
            round(SPARKLINE_MARGIN + inner_w * i / (len(values) - 1), 1),
            round(SPARKLINE_MARGIN + inner_h * (1 - (v - low) / spread), 1),
        )
        for i, v in enumerate(values)
    ]
    return Sparkline(
        points=" ".join(f"{x},{y}" for x, y in coords),
        last_x=coords[-1][0],
        last_y=coords[-1][1],
        count=len(values),
    )


@dataclass(frozen=True)
class FlowRow:
    """One test: its results on each shown day (a day can hold several), latest first within the day."""

    key: str
    index: int  # the test's place in the tests given (names its chart canvas)
    test: LabTest
    cells: list[list[LabResult]]
    sparkline: Sparkline | None

    @property
    def latest(self) -> LabResult:
        return self.test.latest


@dataclass(frozen=True)
class FlowPanel:
    key: str
    label: str
    rows: list[FlowRow]


@dataclass(frozen=True)
class Flowsheet:
    panels: list[FlowPanel]
    days: list[date]  # the shown clinic days, newest first
    available: list[tuple[str, str]]  # (key, label) of the panels the patient has results in
    panel: str | None  # the chosen panel, None for all
    chart: FlowRow | None  # the test whose chart is open
    offset: int  # how many newer days are not shown
    older: int | None  # the offset of the next older days, None when there are none
    newer: int | None  # the offset of the next newer days, None when these are the newest

    @property
    def rows(self) -> list[FlowRow]:
        return [row for panel in self.panels for row in panel.rows]


def flowsheet_args(args: Mapping[str, str]) -> dict:
    """The flowsheet's panel, open chart and columns offset, from the query its links write (`args`: the
    request's query string, or any mapping)."""
    try:
        offset = int(args.get("offset") or 0)
    except ValueError:
        offset = 0
    return {"panel": args.get("panel") or None, "chart": args.get("chart") or None, "offset": offset}


def build_flowsheet(
    tests: list[LabTest],
    zone: str | None,
    *,
    panel: str | None = None,
    chart: str | None = None,
    offset: int = 0,
) -> Flowsheet:
    """The flowsheet of `tests` (in `zone`'s days), for one panel or all, with one test's chart open.

    Raises NotFound for a panel or chart test the patient has no results in.
    """
    offset = max(offset, 0)
    day_of = {id(r): to_clinic_time(r.observed_at, zone).date() for t in tests for r in t.results}
    grouped: dict[str, list[tuple[int, LabTest]]] = {}
    for index, test in enumerate(tests):
        grouped.setdefault(panel_of(test), []).append((index, test))
    order = [*PANELS, OTHER]
    available = [(key, panel_label(key)) for key in order if key in grouped]
    if panel and panel not in grouped:
        raise NotFound(panel)
    chosen = [key for key in order if key in grouped and (not panel or key == panel)]
    all_days = sorted(
        {day_of[id(r)] for key in chosen for _, t in grouped[key] for r in t.results}, reverse=True
    )
    days = all_days[offset : offset + FLOWSHEET_COLUMNS]
    panels = []
    for key in chosen:
        position = {code: n for n, code in enumerate(PANELS[key].codes)} if key in PANELS else {}
        members = sorted(grouped[key], key=lambda it: (position.get(it[1].code, len(position)), it[1].name))
        rows = []
        for index, test in members:
            by_day: dict[date, list[LabResult]] = {}
            for result in reversed(test.results):
                by_day.setdefault(day_of[id(result)], []).append(result)
            rows.append(
                FlowRow(
                    key=key_of(test),
                    index=index,
                    test=test,
                    cells=[by_day.get(day, []) for day in days],
                    sparkline=sparkline(test),
                )
            )
        panels.append(FlowPanel(key=key, label=panel_label(key), rows=rows))
    open_row = None
    if chart:
        open_row = next((row for p in panels for row in p.rows if row.key == chart), None)
        if open_row is None:
            raise NotFound(chart)
    end = offset + FLOWSHEET_COLUMNS
    return Flowsheet(
        panels=panels,
        days=days,
        available=available,
        panel=panel or None,
        chart=open_row,
        offset=offset,
        older=end if end < len(all_days) else None,
        newer=max(offset - FLOWSHEET_COLUMNS, 0) if offset > 0 else None,
    )
