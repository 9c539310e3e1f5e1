"""The Library's document table: what a filter change and a re-sort cost the GUI thread.

    .venv/bin/python bench/table_filter.py [--rows 5000 20000] [--repeat 20] [--json]

Builds the document table as the Library tab does (`DocumentTableModel` behind the
`DocumentFilter`, in a sortable `QTableView` of fixed-height rows, shown offscreen) over
generated documents (a third failed or pending, names and folders varied), with a few rows
selected, and times on the GUI thread, each the median of `--repeat` runs:

- a change of the find-in-list text (cycling through texts that match most rows, some, a
  few and none, and back to no text: longer texts, other texts and shorter ones),
- a change of the status filter (All, Failed, Pending, in turn),
- a re-sort by another column or order (as a click on a header does).

"call" is the call itself (the models and the view told); "with paint" adds the event-loop
turn that follows (layout and repaint of the viewport), which the user waits for as well.
"repaint" is that turn alone, after a mere `update()` of the viewport: the part of "with
paint" that any repaint costs, whatever the number of rows.
The GUI thread must never be held 50 ms; these should stay far below it.  Prints a table
(or, with `--json`, one JSON document) and writes it to `bench/RESULTS.md` (section
`table_filter`) with the machine, the date and the load average, unless `--no-write`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from PySide6.QtCore import QItemSelectionModel, Qt  # noqa: E402
from PySide6.QtWidgets import QAbstractItemView, QApplication, QHeaderView, QTableView  # noqa: E402

from ftrag_desktop.app import document_table  # noqa: E402

ROOT = "/home/user/Documents"
TEXTS = ("report", "d3/", "e", "annual report 2", "zzz-none", "")
STATUSES = ("failed", "pending", None)
SORTS = (
    (document_table.COL_STATUS, Qt.SortOrder.AscendingOrder),
    (document_table.COL_SIZE, Qt.SortOrder.DescendingOrder),
    (document_table.COL_FOLDER, Qt.SortOrder.AscendingOrder),
    (document_table.COL_NAME, Qt.SortOrder.DescendingOrder),
    (document_table.COL_NAME, Qt.SortOrder.AscendingOrder),
)
WORDS = ("report", "notes", "paper", "invoice", "draft", "summary", "letter", "thesis", "memo")


def make_docs(count: int, seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        status = rng.choices(("indexed", "failed", "pending"), (67, 11, 22))[0]
        word = rng.choice(WORDS)
        path = f"{ROOT}/d{rng.randrange(12)}/sub{rng.randrange(5)}/{word}-{i:06d}.pdf"
        docs.append(
            {
                "path": path,
                "status": status,
                "error": "Cannot read this PDF: it is encrypted" if status == "failed" else "",
                "chunks": rng.randrange(1, 80) if status == "indexed" else 0,
                "size": rng.randrange(1_000, 5_000_000),
                "pages": rng.randrange(1, 300),
                "title": f"Annual {word} {rng.randrange(1990, 2030)}",
            }
        )
    return docs


def build(count: int) -> tuple[QTableView, Any, Any]:
    model = document_table.DocumentTableModel()
    model.set_roots([ROOT])
    proxy = document_table.DocumentFilter()
    proxy.setSourceModel(model)
    view = QTableView()
    view.setModel(proxy)
    view.setSortingEnabled(True)
    view.sortByColumn(document_table.COL_NAME, Qt.SortOrder.AscendingOrder)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    view.setAlternatingRowColors(True)
    view.setShowGrid(False)
    view.setWordWrap(False)
    view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    view.verticalHeader().hide()
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 10)
    header = view.horizontalHeader()
    header.setStretchLastSection(True)
    for column, chars in enumerate((40, 11, 7, 8, 10, 20)):  # as the Library tab sets them
        header.resizeSection(column, view.fontMetrics().averageCharWidth() * chars + 16)
    view.resize(1100, 700)
    view.show()
    model.set_rows(document_table.prepare_rows(make_docs(count), [ROOT]))
    selection = view.selectionModel()
    for row in (3, 10, 11, 12, count // 2):
        selection.select(
            proxy.index(row, 0),
            QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
        )
    settle()
    return view, model, proxy


def settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


def timed(action: Any) -> tuple[float, float]:
    """(the call, the call and the event-loop turn after it), in milliseconds."""
    gc.collect()
    start = time.perf_counter()
    action()
    called = time.perf_counter()
    QApplication.processEvents()
    painted = time.perf_counter()
    return (called - start) * 1000, (painted - start) * 1000


def measure(count: int, repeat: int) -> dict[str, dict[str, float]]:
    view, _model, proxy = build(count)  # the model lives as long as this frame
    samples: dict[str, list[tuple[float, float]]] = {
        "repaint": [],
        "text": [],
        "status": [],
        "sort": [],
    }
    for _ in range(repeat):
        samples["repaint"].append(timed(view.viewport().update))
    for i in range(repeat):
        text = TEXTS[i % len(TEXTS)]
        samples["text"].append(timed(lambda t=text: proxy.set_text(t)))
    proxy.set_text("")
    for i in range(repeat):
        status = STATUSES[i % len(STATUSES)]
        samples["status"].append(timed(lambda s=status: proxy.set_status(s)))
    proxy.set_status(None)
    for i in range(repeat):
        column, order = SORTS[i % len(SORTS)]
        samples["sort"].append(timed(lambda c=column, o=order: view.sortByColumn(c, o)))
    view.close()
    view.deleteLater()
    settle()
    result: dict[str, dict[str, float]] = {}
    for name, pairs in samples.items():
        result[name] = {
            "call_ms": round(statistics.median(p[0] for p in pairs), 2),
            "with_paint_ms": round(statistics.median(p[1] for p in pairs), 2),
            "max_with_paint_ms": round(max(p[1] for p in pairs), 2),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    results = {str(count): measure(count, args.repeat) for count in args.rows}
    del app
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"GUI-thread cost, median of {args.repeat} (ms): call / with paint (max with paint)")
        for count, figures in results.items():
            for name in ("repaint", "text", "status", "sort"):
                f = figures[name]
                print(
                    f"{int(count):>7,} rows  {name:<7} {f['call_ms']:7.2f} / "
                    f"{f['with_paint_ms']:7.2f}  ({f['max_with_paint_ms']:.2f})"
                )
    if not args.no_write:
        write_results(results, args.repeat)
    return 0


WHAT = {
    "repaint": "a bare repaint of the viewport",
    "text": "find-in-list text changed",
    "status": "status filter changed",
    "sort": "re-sort (a header click)",
}


def write_results(results: dict[str, dict[str, dict[str, float]]], repeat: int) -> None:
    from bench.common import update_results_section
    from bench.run_all import machine

    m = machine()
    rows = [
        f"| {int(count):,} | {WHAT[name]} | {f['call_ms']} ms | {f['with_paint_ms']} ms | "
        f"{f['max_with_paint_ms']} ms |"
        for count, figures in results.items()
        for name in ("text", "status", "sort", "repaint")
        for f in [figures[name]]
    ]
    body = "\n".join(
        [
            "## The Library table: filter and sort on the GUI thread (`bench/table_filter.py`)",
            "",
            f"- Date: {m['date']}; machine: {m['cpu']}, {m['cores']} cores, RAM {m['ram']}; "
            f"load average (1 min) at the end {os.getloadavg()[0]:.1f}",
            "",
            "The Library's document table (model, proxy and a sortable `QTableView`, offscreen) "
            'over generated documents.  "call" is the change itself; "with paint" adds the '
            "event-loop turn that follows (layout and repaint).  Filtering and sorting happen in "
            "the model in one plain-Python pass: Qt makes no Python call per row.  Medians of "
            f"{repeat} changes; the last column is the worst of them.",
            "",
            "| rows | change | call | with paint | worst with paint |",
            "| ---: | --- | ---: | ---: | ---: |",
            *rows,
            "",
            "Command: `.venv/bin/python bench/table_filter.py`",
        ]
    )
    update_results_section("table_filter", body)


if __name__ == "__main__":
    sys.exit(main())
