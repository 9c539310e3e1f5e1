"""The Evaluate tab's Report page: past runs, and the report of the one chosen.

A run picker (every stored run, newest first: `RunStore`); the table of figures per
configuration (`ConfigRow`); below it the "which approach?" summary with the evidence behind it
and its caveats (`EvalReport.recommendation`) beside the charts (`eval_charts`); and Export CSV /
Export HTML (the core's `report_csv` / `report_html`).  An incomplete run offers Resume.
Reports are read and files written on workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.eval_charts import ChartView, latency_chart, rates_chart
from ftrag_desktop.app.formatting import escape
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.eval_report import (
    ConfigRow,
    EvalReport,
    format_cell,
    report_csv,
    report_html,
)
from ftrag_desktop.core.evaluate import RunInfo, RunStore

__all__ = ["COLUMNS", "ReportPage", "summary_html"]

# (heading, ConfigRow field, kind); the judge's heading names its model.
COLUMNS = [
    ("hit@k", "hit_at_k", "pct"),
    ("MRR", "mrr", "num"),
    ("token\nF1", "f1", "num"),
    ("key\nfacts", "containment", "pct"),
    ("correct", "correct", "pct"),
    ("LLM\njudge", "judge_correct", "pct"),
    ("citations\nsupported", "citation_support", "pct"),
    ("declines\nunanswerable", "abstention", "pct"),
    ("declines\nanswerable", "false_abstention", "pct"),
    ("first\ntoken", "first_token_s", "s"),
    ("tokens/s", "tokens_per_s", "rate"),
    ("per\nanswer", "answer_s", "s"),
]
TIPS = {
    "hit_at_k": "Share of answerable questions whose source passage was among the retrieved",
    "mrr": "Mean reciprocal rank of the source passage (1: always first)",
    "f1": "Word overlap of answer and reference (SQuAD token F1)",
    "containment": "Share of the reference's key words found in the answer",
    "correct": "Answers holding at least half of the reference's key words (and not declining)",
    "judge_correct": "A different local model's verdict: an opinion, not a measurement",
    "citation_support": "Citations [n] whose source holds the claim that cites it",
    "abstention": "Unanswerable questions the answer declined (higher is better)",
    "false_abstention": "Answerable questions the answer declined (lower is better)",
    "first_token_s": "Median time to the first token of the answer",
    "tokens_per_s": "Median generation speed as Ollama reported it",
    "answer_s": "Median time per answer, retrieval included",
}


def summary_html(report: EvalReport) -> str:
    """The recommendation: headline, the evidence behind it, and what it cannot show."""
    rec = report.recommendation
    evidence = "".join(f"<li>{escape(x)}</li>" for x in rec.evidence)
    caveats = "".join(f"<li>{escape(x)}</li>" for x in rec.caveats)
    incomplete = (
        "<p style='color:#b0463c'>This run is incomplete: resume it for the full picture.</p>"
        if not report.complete
        else ""
    )
    return (
        f"<h3 style='margin:0'>Which approach?</h3><p><b>{escape(rec.headline)}</b></p>"
        f"{incomplete}<p style='margin-bottom:0'><b>Evidence</b></p><ul>{evidence}</ul>"
        f"<p style='margin-bottom:0'><b>Keep in mind</b></p><ul>{caveats}</ul>"
    )


def _run_label(info: RunInfo) -> tuple[str, str]:
    when = time.strftime("%d %b %Y, %H:%M", time.localtime(info.created_at))
    text = f"{when} · {info.set_name} v{info.set_version} · {len(info.configs)} configurations"
    tip = "\n".join(f"#{i}: {c.title()}" for i, c in enumerate(info.configs, 1))
    return text, f"Run {info.id}\n\n{tip}"


class ReportPage(QWidget):
    """See the module docstring."""

    report_shown = Signal(object)  # core.eval_report.EvalReport
    runs_listed = Signal(object)  # list[str] of run ids, newest first
    exported = Signal(str)  # a file written
    resume_requested = Signal(str)  # run id

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self._report: EvalReport | None = None
        self._request = 0
        self._build()

    def _build(self) -> None:
        self.runs = QComboBox()
        self.runs.setMinimumContentsLength(34)
        self.runs.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.runs.setToolTip("Every stored run, newest first")
        self.runs.currentIndexChanged.connect(self._on_runs_current_index_changed)
        self.resume_button = QPushButton("Resume run")
        self.resume_button.setToolTip("This run stopped part-way: answer the rest")
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.clicked.connect(lambda: self._ask_export("csv"))
        self.html_button = QPushButton("Export HTML…")
        self.html_button.clicked.connect(lambda: self._ask_export("html"))
        head = QHBoxLayout()
        head.addWidget(QLabel("<b>Run:</b>"))
        head.addWidget(self.runs)
        head.addStretch(1)
        for button in (self.resume_button, self.csv_button, self.html_button):
            head.addWidget(button)
        self.title = QLabel("No evaluation run yet: start one on the Run page.")
        self.title.setWordWrap(True)

        self.table = QTableWidget(0, len(COLUMNS) + 1)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        self.summary = QTextBrowser()
        self.summary.setOpenLinks(False)
        self.rates = ChartView()
        self.latency = ChartView()
        bottom = QSplitter(Qt.Orientation.Horizontal)
        for widget, stretch in ((self.summary, 5), (self.rates, 4), (self.latency, 3)):
            bottom.addWidget(widget)
            bottom.setStretchFactor(bottom.indexOf(widget), stretch)
        bottom.setChildrenCollapsible(False)
        bottom.setSizes([460, 440, 340])
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(self.title)
        layout.addWidget(self.table)
        layout.addWidget(bottom, 1)
        layout.addWidget(self.status)
        self._show(None)

    # ---- public API ------------------------------------------------------------------------

    def report(self) -> EvalReport | None:
        return self._report

    def reload(self, select: str = "") -> None:
        """List the stored runs again (on a worker); then show `select`, or the newest."""
        engine = self._controller.engine
        if engine is None:
            return
        store = RunStore.for_home(engine.home)

        def op() -> list[RunInfo]:
            infos = []
            for run_id in store.ids():
                try:
                    infos.append(store.info(run_id))
                except Exception:  # a damaged run is left out of the list
                    continue
            return infos

        self._background(op, lambda infos: self._on_runs(infos, select))

    def show_run(self, run_id: str) -> None:
        """Read and show the report of `run_id`; `report_shown` follows."""
        engine = self._controller.engine
        if engine is None:
            return
        store = RunStore.for_home(engine.home)
        self._request += 1
        request = self._request
        self._background(
            lambda: store.report(run_id), lambda report: self._on_report(report, request)
        )

    def export_csv(self, path: str) -> None:
        self._export(path, report_csv)

    def export_html(self, path: str) -> None:
        self._export(path, report_html)

    # ---- workers ---------------------------------------------------------------------------

    def _background(self, op: Callable[[], Any], done: Callable[[Any], None]) -> None:
        run_in_background(
            op, on_done=done, on_error=lambda m: self.status.setText(m.replace("\n", " ")),
            owner=self,
        )  # fmt: skip

    def _export(self, path: str, render: Callable[[EvalReport], str]) -> None:
        report = self._report
        if report is None:
            return

        def done(_: object) -> None:
            self.status.setText(f"Wrote {path}.")
            self.exported.emit(path)

        self._background(lambda: Path(path).write_text(render(report), encoding="utf-8"), done)

    def _on_runs(self, infos: object, select: str) -> None:
        assert isinstance(infos, list)
        wanted = select or str(self.runs.currentData() or "")
        self.runs.blockSignals(True)
        self.runs.clear()
        for info in infos:
            text, tip = _run_label(info)
            self.runs.addItem(text, info.id)
            self.runs.setItemData(self.runs.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        index = max(self.runs.findData(wanted), 0) if infos else -1
        self.runs.setCurrentIndex(index)
        self.runs.blockSignals(False)
        self.runs_listed.emit([i.id for i in infos])
        if index >= 0:
            self.show_run(str(self.runs.itemData(index)))

    def _on_report(self, report: object, request: int) -> None:
        if request == self._request and isinstance(report, EvalReport):
            self._show(report)
            self.report_shown.emit(report)

    # ---- showing ---------------------------------------------------------------------------

    def _show(self, report: EvalReport | None) -> None:
        self._report = report
        for button in (self.csv_button, self.html_button):
            button.setEnabled(report is not None)
        self.resume_button.setVisible(report is not None and not report.complete)
        if report is None:
            self.summary.setHtml("<p>The report of a run appears here.</p>")
            self.table.setRowCount(0)
            self._fit_table()
            self.rates.set_chart(rates_chart([]))
            self.latency.set_chart(latency_chart([]))
            return
        state = "complete" if report.complete else "incomplete"
        judge = f" · judged by {report.judge_model}" if report.judge_model else ""
        self.title.setText(
            f"<b>Set '{escape(report.set_name)}' v{report.set_version}</b> · "
            f"{report.answerable} answerable + {report.unanswerable} unanswerable questions · "
            f"run {escape(report.run_id)} · {state}{escape(judge)}"
        )
        self.summary.setHtml(summary_html(report))
        self._fill_table(report)
        self.rates.set_chart(rates_chart(report.rows))
        self.latency.set_chart(latency_chart(report.rows))

    def _fill_table(self, report: EvalReport) -> None:
        judge = f"LLM judge\n({report.judge_model})" if report.judge_model else "LLM\njudge"
        heads = ["configuration"] + [
            judge if name == "judge_correct" else h for h, name, _ in COLUMNS
        ]
        self.table.setHorizontalHeaderLabels(heads)
        for col, (_h, name, _k) in enumerate(COLUMNS, 1):
            head = self.table.horizontalHeaderItem(col)
            if head is not None:
                head.setToolTip(TIPS[name])
        self.table.setRowCount(len(report.rows))
        for r, row in enumerate(report.rows):
            self.table.setItem(r, 0, self._title_item(r, row))
            for c, (_h, name, kind) in enumerate(COLUMNS, 1):
                item = QTableWidgetItem(format_cell(getattr(row, name), kind))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(r, c, item)
        self.table.resizeRowsToContents()
        self._fit_table()

    def _fit_table(self) -> None:
        """As tall as its rows: the charts and the summary get the rest."""
        t = self.table
        height = t.horizontalHeader().sizeHint().height() + 2 * t.frameWidth()
        height += sum(t.rowHeight(r) for r in range(t.rowCount()))
        if t.horizontalScrollBar().isVisible():
            height += t.horizontalScrollBar().sizeHint().height()
        t.setFixedHeight(height)

    def _title_item(self, index: int, row: ConfigRow) -> QTableWidgetItem:
        kind = {True: "fine-tuned", False: "base", None: "base?"}[row.fine_tuned]
        failed = f", {row.errors} failed" if row.errors else ""
        item = QTableWidgetItem(f"#{index + 1} {row.title}  ({kind}{failed})")
        tip = f"{row.answered} answers"
        if row.first_error:
            tip += f"\nFirst failure: {row.first_error}"
        item.setToolTip(tip)
        return item

    # ---- user actions ----------------------------------------------------------------------

    def _on_runs_current_index_changed(self, index: int) -> None:
        if index >= 0:
            self.show_run(str(self.runs.itemData(index)))

    def _on_resume_button_clicked(self) -> None:
        if self._report is not None:
            self.resume_requested.emit(self._report.run_id)

    def _ask_export(self, kind: str) -> None:
        report = self._report
        if report is None:
            return
        label = "CSV (*.csv)" if kind == "csv" else "HTML (*.html)"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the report", f"evaluation-{report.run_id}.{kind}", label
        )
        if path:
            (self.export_csv if kind == "csv" else self.export_html)(path)
