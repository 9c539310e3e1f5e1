"""The live loss chart of a training run (QtCharts): training and validation loss per step.

`LossChart.reset(total_steps)` clears it and fixes the step axis to the run's length; each
`add_train` / `add_valid` appends a point as the child reports it (`step` and `validation`
events), and the loss axis grows to fit.  `set_history` redraws what a resumed run had before
it stopped (from its checkpoint).  `points()` returns what is drawn (for tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCharts import QChart, QChartView, QLineSeries, QValueAxis
from PySide6.QtCore import QMargins, QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

__all__ = ["LossChart"]

TRAIN_COLOUR = "#3b6ea5"
VALID_COLOUR = "#e08a2e"


def _step_interval(total: int) -> int:
    """A round tick interval (1, 2, 5, 10, 20, ...) that gives at most about 8 ticks."""
    magnitude = 1
    while True:
        for unit in (1, 2, 5):
            if total / (unit * magnitude) <= 8:
                return unit * magnitude
        magnitude *= 10


def _loss_interval(top: float) -> float:
    """A round tick interval (..., 0.5, 1, 2, 2.5, 5, ...) that gives 3 to 6 ticks up to `top`."""
    if top <= 0:
        return 0.25
    magnitude = 10.0 ** math.floor(math.log10(top / 5))
    for unit in (1, 2, 2.5, 5, 10):
        if top / (unit * magnitude) <= 5:
            return unit * magnitude
    return 10 * magnitude


class LossChart(QChartView):
    """See the module docstring."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(220)
        chart = QChart()
        chart.setTitle("Loss (lower is better)")
        chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.setBackgroundRoundness(0)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.train = QLineSeries()
        self.train.setName("Training")
        self.train.setPen(QPen(QColor(TRAIN_COLOUR), 2))
        self.valid = QLineSeries()
        self.valid.setName("Validation")
        self.valid.setPen(QPen(QColor(VALID_COLOUR), 2))
        self.valid.setPointsVisible(True)
        self.valid.setMarkerSize(7)
        for series in (self.train, self.valid):
            chart.addSeries(series)
        self.steps = QValueAxis()
        self.steps.setTitleText("Step")
        self.steps.setLabelFormat("%d")
        self.loss = QValueAxis()
        self.loss.setTitleText("Loss")
        self.loss.setLabelFormat("%.2f")
        chart.addAxis(self.steps, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.loss, Qt.AlignmentFlag.AlignLeft)
        for series in (self.train, self.valid):
            series.attachAxis(self.steps)
            series.attachAxis(self.loss)
        self.setChart(chart)
        self._total = 1
        self._top = 0.0
        self.reset(1)

    def reset(self, total_steps: int) -> None:
        self.train.clear()
        self.valid.clear()
        self._top = 0.0
        self.set_total(total_steps)
        self.loss.setRange(0.0, 1.0)

    def set_total(self, total_steps: int) -> None:
        self._total = max(1, int(total_steps))
        self.steps.setRange(0, self._total)
        self.steps.setTickType(QValueAxis.TickType.TicksDynamic)
        self.steps.setTickAnchor(0)
        self.steps.setTickInterval(_step_interval(self._total))

    def add_train(self, step: int, loss: float) -> None:
        self._add(self.train, step, loss)

    def add_valid(self, step: int, loss: float) -> None:
        self._add(self.valid, step, loss)

    def set_history(
        self, train: Sequence[tuple[int, float]], valid: Sequence[tuple[int, float]], upto: int
    ) -> None:
        """Points up to step `upto` from a checkpoint; points already drawn after it stay."""
        for series, saved in ((self.train, train), (self.valid, valid)):
            later = [p for p in series.points() if p.x() > upto]
            series.replace([QPointF(s, v) for s, v in saved if s <= upto] + later)
        self._top = max([self._top, *(v for _s, v in train), *(v for _s, v in valid)])
        self._fit()

    def truncate(self, step: int) -> None:
        """Forget the points after `step` (a run resumed from an earlier checkpoint)."""
        for series in (self.train, self.valid):
            series.replace([p for p in series.points() if p.x() <= step])

    def _add(self, series: QLineSeries, step: int, loss: float) -> None:
        if step > self._total:
            self.set_total(step)
        series.append(float(step), float(loss))
        self._top = max(self._top, float(loss))
        self._fit()

    def _fit(self) -> None:
        interval = _loss_interval(self._top * 1.05)
        top = max(1, math.ceil(self._top * 1.05 / interval)) * interval
        self.loss.setRange(0.0, top)
        self.loss.setTickType(QValueAxis.TickType.TicksDynamic)
        self.loss.setTickAnchor(0.0)
        self.loss.setTickInterval(interval)

    def points(self) -> dict[str, list[tuple[float, float]]]:
        """What is drawn: {"train": [(step, loss)], "valid": [...]} (for tests)."""
        return {
            "train": [(p.x(), p.y()) for p in self.train.points()],
            "valid": [(p.x(), p.y()) for p in self.valid.points()],
        }
