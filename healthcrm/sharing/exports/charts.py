"""The trend chart of one lab test in the share's PDF."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.units import mm

from ...records.labs import display_unit
from ...records.models import LabResult
from .page import FONT, LINE, MUTED, RANGE_FILL, RULE

CHART_HEIGHT = 42 * mm
CHART_MARKERS_UP_TO = 40  # points; more and the markers only clutter the line
CHART_TICKS = 5


def lab_chart(labs: list[LabResult], width: float, when: Callable[[datetime, str], str]) -> Drawing:
    """The test's values over time, with its reference range shaded and dates on the x axis."""
    height = CHART_HEIGHT
    drawing = Drawing(width, height)
    epoch = labs[0].observed_at
    xs = [(lab.observed_at - epoch).total_seconds() / 86400 for lab in labs]
    ys = [lab.value_numeric for lab in labs]
    latest = labs[-1]
    bounds = [v for v in (latest.ref_low, latest.ref_high) if v is not None]
    low, high = min(ys + bounds), max(ys + bounds)
    pad = (high - low) * 0.12 or abs(high) * 0.1 or 1.0
    y_min, y_max = low - pad, high + pad
    if low >= 0 > y_min:
        y_min = 0.0  # no negative axis for values that cannot be negative
    x_min, x_max = xs[0], xs[-1]
    if x_max - x_min < 1 / 24:
        x_min, x_max = x_min - 1, x_max + 1
    plot = LinePlot()
    plot.x, plot.y = 38, 16
    plot.width, plot.height = width - plot.x - 22, height - plot.y - 6
    plot.data = [list(zip(xs, ys, strict=True))]
    plot.joinedLines = 1
    plot.lines[0].strokeColor = LINE
    plot.lines[0].strokeWidth = 1.2
    if len(labs) <= CHART_MARKERS_UP_TO:
        plot.lines[0].symbol = makeMarker("FilledCircle", size=3.2, fillColor=LINE, strokeColor=LINE)
    plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = x_min, x_max
    span = x_max - x_min
    plot.xValueAxis.valueSteps = [x_min + span * i / (CHART_TICKS - 1) for i in range(CHART_TICKS)]
    fmt = "%d %b %Y" if span > 45 else "%d %b %H:%M" if span < 3 else "%d %b"
    plot.xValueAxis.labelTextFormat = lambda days: when(epoch + timedelta(days=days), fmt)
    plot.xValueAxis.labels.fontName = FONT
    plot.xValueAxis.labels.fontSize = 6.5
    plot.xValueAxis.labels.fillColor = MUTED
    plot.xValueAxis.strokeColor = RULE
    plot.yValueAxis.valueMin, plot.yValueAxis.valueMax = y_min, y_max
    plot.yValueAxis.labels.fontName = FONT
    plot.yValueAxis.labels.fontSize = 6.5
    plot.yValueAxis.labels.fillColor = MUTED
    plot.yValueAxis.labelTextFormat = "%g"
    plot.yValueAxis.strokeColor = RULE
    plot.yValueAxis.visibleGrid = 1
    plot.yValueAxis.gridStrokeColor = colors.HexColor("#eef1f4")
    plot.yValueAxis.gridStrokeWidth = 0.4
    if bounds:

        def y_at(value: float) -> float:
            return plot.y + (value - y_min) / (y_max - y_min) * plot.height

        band_low = y_at(latest.ref_low) if latest.ref_low is not None else plot.y
        band_high = y_at(latest.ref_high) if latest.ref_high is not None else plot.y + plot.height
        drawing.add(
            Rect(plot.x, band_low, plot.width, band_high - band_low, fillColor=RANGE_FILL, strokeColor=None)
        )
    drawing.add(plot)
    unit = display_unit(latest.unit)
    if unit:
        drawing.add(String(2, height - 8, unit, fontName=FONT, fontSize=6.5, fillColor=MUTED))
    return drawing
