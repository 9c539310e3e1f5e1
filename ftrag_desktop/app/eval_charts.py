"""The report's charts (QtCharts): answer quality and speed per configuration.

`rates_chart`: grouped bars of the share of correct answers, of supported citations and of
declined unanswerable questions, one bar per configuration.  `latency_chart`: the median time
to the first token and per answer, per configuration.  A figure that does not apply (no
citations without documents) has no bar; hovering a bar shows its exact value, or "n/a".
Configurations are named "#1", "#2", ... as in the report's table (long titles would not fit in
a legend).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCharts import (
    QBarCategoryAxis,
    QBarSeries,
    QBarSet,
    QChart,
    QChartView,
    QValueAxis,
)
from PySide6.QtCore import QMargins, Qt
from PySide6.QtGui import QColor, QCursor, QPainter
from PySide6.QtWidgets import QToolTip, QWidget

from ftrag_desktop.core.eval_report import ConfigRow

__all__ = ["COLOURS", "RATES", "ChartView", "latency_chart", "rates_chart"]

COLOURS = ["#3b6ea5", "#e08a2e", "#4c9a5b", "#b0463c", "#7a5aa6", "#6b6b6b"]
RATES = [
    ("Correct", "correct"),
    ("Citations<br>supported", "citation_support"),
    ("Declines<br>off-topic", "abstention"),  # the unanswerable questions
]
TIMES = [("First token", "first_token_s", "#8fb3d9"), ("Per answer", "answer_s", "#3b6ea5")]


def _chart(title: str) -> QChart:
    chart = QChart()
    chart.setTitle(title)
    chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
    chart.setMargins(QMargins(4, 4, 4, 4))
    chart.setBackgroundRoundness(0)
    chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
    return chart


def _show_value(texts: dict[str, list[str]]) -> object:
    def hovered(status: bool, index: int, barset: QBarSet) -> None:
        if status:
            values = texts.get(barset.label(), [])
            text = values[index] if 0 <= index < len(values) else ""
            QToolTip.showText(QCursor.pos(), f"{barset.label()}: {text}")
        else:
            QToolTip.hideText()

    return hovered


def rates_chart(rows: Sequence[ConfigRow]) -> QChart:
    """Grouped bars: per rate, one bar per configuration (0 to 100 %)."""
    chart = _chart("Answers (higher is better)")
    series = QBarSeries()
    texts: dict[str, list[str]] = {}
    for i, row in enumerate(rows):
        bars = QBarSet(f"#{i + 1}")  # the table above names each configuration
        bars.setColor(QColor(COLOURS[i % len(COLOURS)]))
        shown: list[str] = []
        for _label, name in RATES:
            value = getattr(row, name)
            bars.append(0.0 if value is None else round(100 * value, 1))
            shown.append(f"{row.title}: " + ("n/a" if value is None else f"{100 * value:.0f}%"))
        texts[bars.label()] = shown
        series.append(bars)
    series.hovered.connect(_show_value(texts))
    chart.addSeries(series)
    axis_x = QBarCategoryAxis()
    axis_x.append([label for label, _ in RATES])
    font = axis_x.labelsFont()
    font.setPointSizeF(font.pointSizeF() * 0.9)
    axis_x.setLabelsFont(font)
    chart.addAxis(axis_x, Qt.AlignmentFlag.AlignBottom)
    series.attachAxis(axis_x)
    axis_y = QValueAxis()
    axis_y.setRange(0, 100)
    axis_y.setTickCount(6)
    axis_y.setLabelFormat("%d%%")
    chart.addAxis(axis_y, Qt.AlignmentFlag.AlignLeft)
    series.attachAxis(axis_y)
    return chart


def latency_chart(rows: Sequence[ConfigRow]) -> QChart:
    """Per configuration, the median seconds to the first token and per answer."""
    chart = _chart("Speed: median seconds (lower is better)")
    series = QBarSeries()
    texts: dict[str, list[str]] = {}
    top = 0.0
    for label, name, colour in TIMES:
        bars = QBarSet(label)
        bars.setColor(QColor(colour))
        shown: list[str] = []
        for row in rows:
            value = getattr(row, name)
            bars.append(0.0 if value is None else float(value))
            shown.append(
                f"#{len(shown) + 1} {row.title}: " + ("n/a" if value is None else f"{value:.2f} s")
            )
            top = max(top, value or 0.0)
        texts[bars.label()] = shown
        series.append(bars)
    series.hovered.connect(_show_value(texts))
    chart.addSeries(series)
    axis_x = QBarCategoryAxis()
    axis_x.append([f"#{i + 1}" for i in range(len(rows))])
    chart.addAxis(axis_x, Qt.AlignmentFlag.AlignBottom)
    series.attachAxis(axis_x)
    axis_y = QValueAxis()
    axis_y.setRange(0, top * 1.1 if top > 0 else 1.0)
    axis_y.setTickCount(5)
    axis_y.applyNiceNumbers()  # ticks on round values, so the labels are not rounded
    axis_y.setLabelFormat("%.2g s")
    chart.addAxis(axis_y, Qt.AlignmentFlag.AlignLeft)
    series.attachAxis(axis_y)
    return chart


class ChartView(QChartView):
    """A chart view that replaces its chart (and frees the old one) on `set_chart`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(240)

    def set_chart(self, chart: QChart) -> None:
        old = self.chart()
        self.setChart(chart)
        if old is not None:
            old.deleteLater()

    def bar_values(self) -> list[list[float]]:
        """The values of every bar set shown (for tests)."""
        out: list[list[float]] = []
        for series in self.chart().series():
            if isinstance(series, QBarSeries):
                for bars in series.barSets():
                    out.append([bars.at(i) for i in range(bars.count())])
        return out
