"""The Library's table model under a stream of status reports: rows that come and go are
removed and inserted in place (the filter and the view keep their state), big changes reset,
and the text filter finds paths and titles.  Qt's model tester checks every signal."""

from __future__ import annotations

import random
from typing import Any

from PySide6.QtCore import QPersistentModelIndex
from PySide6.QtTest import QAbstractItemModelTester

from ftrag_desktop.app.document_table import (
    MAX_MOVES,
    PATH_ROLE,
    DocumentFilter,
    DocumentTableModel,
    prepare_rows,
)

ROOT = "/data/docs"


def docs(idents: list[int], status: str = "indexed") -> list[dict[str, Any]]:
    return [
        {
            "path": f"{ROOT}/d{i % 7}/f{i:05d}.txt",
            "status": status,
            "error": "",
            "chunks": 1,
            "size": 100 + i,
            "pages": 0,
            "title": f"Note about topic{i}",
        }
        for i in idents
    ]


def paths(model: Any) -> list[str]:
    return [model.index(r, 0).data(PATH_ROLE) for r in range(model.rowCount())]


def test_rows_that_come_and_go_move_in_place_and_keep_the_selection(qtbot: Any) -> None:
    model = DocumentTableModel()
    model.set_roots([ROOT])
    proxy = DocumentFilter()
    proxy.setSourceModel(model)
    testers = [
        QAbstractItemModelTester(m, QAbstractItemModelTester.FailureReportingMode.Fatal)
        for m in (model, proxy)
    ]
    current = list(range(0, 400, 2))
    assert model.set_rows(prepare_rows(docs(current), [ROOT])) is False  # inserted, no reset
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    keep = model.index(50, 0)
    kept = QPersistentModelIndex(keep)
    kept_path = keep.data(PATH_ROLE)

    rng = random.Random(3)
    for _ in range(15):  # small changes: a few files gone, a few new, one failed now
        for _ in range(3):
            victim = rng.choice(current)
            if f"f{victim:05d}" not in kept_path:
                current.remove(victim)
        current += [rng.randrange(400, 100_000) for _ in range(3)]
        rows = prepare_rows(docs(current), [ROOT])
        failed = prepare_rows(docs([current[0]], "failed"), [ROOT])
        rows = [r for r in rows if r.doc["path"] != failed[0].doc["path"]] + failed
        assert model.set_rows(rows, {r.doc["path"] for r in rows}) is False
        want = sorted(r.doc["path"] for r in rows)
        assert sorted(paths(model)) == want and len(paths(model)) == len(want)
        assert [r.keys[0] for r in model._rows] == sorted(r.keys[0] for r in rows)
    assert resets == []
    assert kept.isValid() and kept.data(PATH_ROLE) == kept_path  # followed its row

    # A change scattered everywhere (each old row gone, a new one between each two) is one
    # reset, and still exact.
    current = current[::2] + [i + 1 for i in current]
    rows = prepare_rows(docs(current), [ROOT])
    assert 2 * len(rows) > MAX_MOVES
    assert model.set_rows(rows) is True and resets == [1]
    assert sorted(paths(model)) == sorted(r.doc["path"] for r in rows)
    assert testers


def test_text_and_status_filters(qtbot: Any) -> None:
    model = DocumentTableModel()
    model.set_roots([ROOT])
    proxy = DocumentFilter()
    proxy.setSourceModel(model)
    rows = prepare_rows(docs([1, 2, 3]) + docs([4], "failed"), [ROOT])
    model.set_rows(rows)
    assert proxy.rowCount() == 4
    proxy.set_text("TOPIC2")  # the title, any case
    assert paths(proxy) == [f"{ROOT}/d2/f00002.txt"]
    proxy.set_text("/d4/")  # the path
    assert paths(proxy) == [f"{ROOT}/d4/f00004.txt"]
    proxy.set_text("")
    proxy.set_status("failed")
    assert paths(proxy) == [f"{ROOT}/d4/f00004.txt"]
    proxy.set_text("topic1")
    assert paths(proxy) == []
    proxy.set_status(None)
    assert paths(proxy) == [f"{ROOT}/d1/f00001.txt"]


def test_a_few_new_statuses_are_swapped_in_place_without_reordering(qtbot: Any) -> None:
    model = DocumentTableModel()
    model.set_roots([ROOT])
    tester = QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    rows = {r.doc["path"]: r for r in prepare_rows(docs(list(range(300)), "pending"), [ROOT])}
    model.set_rows(list(rows.values()))
    before = paths(model)
    resets: list[int] = []
    moves: list[int] = []
    changed_at: list[tuple[int, int]] = []
    model.modelReset.connect(lambda: resets.append(1))
    model.rowsInserted.connect(lambda *_: moves.append(1))
    model.rowsRemoved.connect(lambda *_: moves.append(1))
    model.dataChanged.connect(lambda a, b, *_: changed_at.append((a.row(), b.row())))

    done = docs([10, 11, 12], "indexed")
    for row in prepare_rows(done, [ROOT]):
        rows[row.doc["path"]] = row
    assert model.apply_changes(prepare_rows(done, [ROOT]), [], len(rows)) is True

    assert resets == [] and moves == []
    assert paths(model) == before
    statuses = {model.document(r)["path"]: model.document(r)["status"] for r in range(300)}
    assert [statuses[d["path"]] for d in done] == ["indexed"] * 3
    assert sum(1 for s in statuses.values() if s == "indexed") == 3
    rows_changed = sorted(before.index(d["path"]) for d in done)
    assert changed_at == [(rows_changed[0], rows_changed[-1])]
    del tester


def test_reports_applied_as_changes_keep_the_exact_sorted_order(qtbot: Any) -> None:
    """Status reports given as their changes (rows that came or changed, paths that went) are
    applied by binary search alone, in either sort order: the rows end exactly as a fresh
    sort of everything would put them, with no reset, and a selected row is followed."""
    from PySide6.QtCore import Qt

    from ftrag_desktop.app.document_table import COL_NAME, COL_SIZE, COL_STATUS

    for column, order in (
        (COL_NAME, Qt.SortOrder.AscendingOrder),
        (COL_STATUS, Qt.SortOrder.DescendingOrder),
        (COL_SIZE, Qt.SortOrder.DescendingOrder),
    ):
        model = DocumentTableModel()
        model.set_roots([ROOT])
        proxy = DocumentFilter()
        proxy.setSourceModel(model)
        # Qt's model tester re-checks every row on every signal: on the first order only.
        testers = [
            QAbstractItemModelTester(m, QAbstractItemModelTester.FailureReportingMode.Fatal)
            for m in ((model, proxy) if column == COL_NAME else ())
        ]
        model.sort(column, order)
        rng = random.Random(column)
        held = {r.doc["path"]: r for r in prepare_rows(docs(list(range(0, 600, 3))), [ROOT])}
        model.set_rows(list(held.values()))
        resets: list[int] = []
        inserted: list[int] = []
        model.modelReset.connect(lambda r=resets: r.append(1))
        model.rowsInserted.connect(lambda _p, a, b, n=inserted: n.append(b - a + 1))

        def whole_list(rows: list[Any]) -> bool:
            raise AssertionError("the changes alone should have been applied")

        model._move_rows = whole_list  # type: ignore[method-assign]
        kept = QPersistentModelIndex(model.index(7, 0))
        kept_path = kept.data(PATH_ROLE)

        for _ in range(12):
            others = [p for p in held if p != kept_path]
            picked = rng.sample(others, 7)
            gone = set(picked[:4])
            status = rng.choice(["failed", "pending", "indexed"])
            restatus = [held[p].doc | {"status": status} for p in picked[4:]]
            new = docs([rng.randrange(1200, 50_000) for _ in range(4)], status)
            fresh = prepare_rows(restatus + new, [ROOT])
            for path in gone:
                del held[path]
            for row in fresh:
                held[row.doc["path"]] = row
            assert model.apply_changes(fresh, gone, len(held)) is True
            want = [r.doc["path"] for r in model._sorted(list(held.values()))]
            assert paths(model) == want
        assert resets == [] and sum(inserted) >= 12 * 4
        assert kept.isValid() and kept.data(PATH_ROLE) == kept_path
        assert testers or column != COL_NAME


def test_changes_that_do_not_add_up_are_refused_unapplied(qtbot: Any) -> None:
    model = DocumentTableModel()
    model.set_roots([ROOT])
    rows = prepare_rows(docs(list(range(100))), [ROOT])
    model.set_rows(rows)
    # A report that claims one new row while the list lost three others it did not name.
    extra = prepare_rows(docs([500]), [ROOT])
    assert model.apply_changes(extra, [], 98) is False
    assert paths(model) == [r.doc["path"] for r in model._sorted(rows)]  # untouched
    rows = rows[3:] + extra
    assert model.set_rows(rows, {extra[0].doc["path"]}) is False
    assert paths(model) == [r.doc["path"] for r in model._sorted(rows)]


def test_a_status_filter_follows_reports_applied_as_changes(qtbot: Any) -> None:
    """With "Pending" chosen, rows that get indexed leave the filtered list and new pending
    ones join it, from the report's changes alone (Qt filters again just those rows)."""
    model = DocumentTableModel()
    model.set_roots([ROOT])
    proxy = DocumentFilter()
    proxy.setSourceModel(model)
    tester = QAbstractItemModelTester(proxy, QAbstractItemModelTester.FailureReportingMode.Fatal)
    held = {r.doc["path"]: r for r in prepare_rows(docs(list(range(200)), "pending"), [ROOT])}
    model.set_rows(list(held.values()))
    proxy.set_status("pending")
    assert proxy.rowCount() == 200
    asked: list[int] = []
    decide = proxy._accepts
    proxy._accepts = lambda row: asked.append(1) or decide(row)  # type: ignore[method-assign]

    done = prepare_rows(docs([5, 6, 7, 150]), [ROOT])  # indexed now
    new = prepare_rows(docs([900, 901], "pending"), [ROOT])
    for row in done + new:
        held[row.doc["path"]] = row
    assert model.apply_changes(done + new, [], len(held)) is True
    want = sorted(p for p, r in held.items() if r.doc["status"] == "pending")
    assert sorted(paths(proxy)) == want and proxy.rowCount() == 198
    assert 6 <= len(asked) <= 10  # the changed and new rows, not all 202
    del tester


def test_changes_in_too_many_runs_are_refused_before_any_is_applied(qtbot: Any) -> None:
    from ftrag_desktop.app.document_table import APPLY_MAX_RUNS

    model = DocumentTableModel()
    model.set_roots([ROOT])
    rows = prepare_rows(docs(list(range(0, 2 * (APPLY_MAX_RUNS + 50), 2))), [ROOT])
    model.set_rows(rows)
    before = paths(model)
    signals: list[int] = []
    model.rowsInserted.connect(lambda *_: signals.append(1))
    model.rowsRemoved.connect(lambda *_: signals.append(1))
    between = prepare_rows(docs(list(range(1, 2 * (APPLY_MAX_RUNS + 10), 2))), [ROOT])
    assert model.apply_changes(between, [], len(rows) + len(between)) is False
    assert paths(model) == before and signals == []
    few = between[:: (APPLY_MAX_RUNS + 10) // 5]  # five runs: applied
    assert model.apply_changes(few, [], len(rows) + len(few)) is True
    assert paths(model) == [r.doc["path"] for r in model._sorted(rows + few)]


# ---- filtering and sorting in the model: no Python call per row from Qt ----------------------

STATUSES = ("indexed", "failed", "pending", "queued")  # "queued": a status with no label
WORDS = ("report", "notes", "paper", "Memo", "draft", "résumé", "a b")


def random_docs(rng: random.Random, count: int, first: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(first, first + count):
        word = rng.choice(WORDS)
        out.append(
            {
                "path": f"{ROOT}/{rng.choice(('d1', 'D2', 'deep/er'))}/{word}-{i:05d}.md",
                "status": rng.choice(STATUSES),
                "error": "",
                "chunks": rng.randrange(3),
                "size": rng.randrange(50),  # many equal sizes: ties broken by path
                "pages": 0,
                "title": rng.choice(("", f"The {word} of {i % 13}", "Annual REPORT")),
            }
        )
    return out


def plain_rule(status: str | None, text: str) -> Any:
    """What the filter has always meant, written out: this status (None: any), and the text
    (trimmed, any case) somewhere in the path or the title."""
    text = text.strip().lower()

    def accepts(doc: dict[str, Any]) -> bool:
        if status is not None and doc.get("status") != status:
            return False
        return text in f"{doc['path']}\n{doc.get('title') or ''}".lower()

    return accepts


def shown(
    model: DocumentTableModel, status: str | None, text: str, rows: list[Any] | None = None
) -> list[str]:
    """The paths a fresh sort of `rows` (None: every row held), filtered by the plain rule,
    would show."""
    accepts = plain_rule(status, text)
    rows = list(model.rows()) if rows is None else rows
    return [r.doc["path"] for r in model._sorted(rows) if accepts(r.doc)]


def test_filters_show_what_the_plain_rule_accepts_on_5000_random_rows(qtbot: Any) -> None:
    from PySide6.QtCore import Qt

    from ftrag_desktop.app.document_table import COL_NAME, COL_SIZE, COL_STATUS

    rng = random.Random(11)
    model = DocumentTableModel()
    model.set_roots([ROOT])
    proxy = DocumentFilter()
    proxy.setSourceModel(model)
    rows = prepare_rows(random_docs(rng, 5000), [ROOT])
    # Rows made by hand without the text to search in: the filter builds it from the doc.
    rows[::50] = [r._replace(haystack="") for r in rows[::50]]
    model.set_rows(rows)
    status: str | None = None
    text = ""
    texts = ["r", "re", "rep", "report", "  REPORT ", "e", "", "/d2/", "résumé", "of 1", "zz"]
    sorts = [(COL_SIZE, Qt.SortOrder.DescendingOrder), (COL_SIZE, Qt.SortOrder.AscendingOrder)]
    sorts += [(COL_STATUS, Qt.SortOrder.DescendingOrder), (COL_NAME, Qt.SortOrder.AscendingOrder)]
    seen: set[int] = set()
    for step in range(40):
        what = rng.random()
        if what < 0.45:
            text = rng.choice(texts)
            proxy.set_text(text)
        elif what < 0.8:
            status = rng.choice((None, *STATUSES))
            proxy.set_status(status)
        else:
            proxy.sort(*rng.choice(sorts))
        want = shown(model, status, text)
        assert paths(proxy) == want, (step, status, text)
        assert proxy.rowCount() == model.rowCount() == len(want)
        seen.add(len(want))
    assert len(model.rows()) == 5000 and len(seen) > 12  # filters of many sizes were tried
    assert 0 in seen and 5000 in seen


def test_filter_and_sort_changes_make_no_python_call_per_row(qtbot: Any) -> None:
    """Changing the text, the status or the sort of 5,000 rows shown in a table view runs a
    few Python functions in all, not one (or more) per row: no `filterAcceptsRow`, `data()`
    or `lessThan` asked of each row by Qt, and no filter method called per row."""
    import sys

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QTableView

    from ftrag_desktop.app import document_table
    from ftrag_desktop.app.document_table import COL_SIZE, COL_STATUS

    model = DocumentTableModel()
    model.set_roots([ROOT])
    proxy = DocumentFilter()
    proxy.setSourceModel(model)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.setSortingEnabled(True)
    view.show()
    model.set_rows(prepare_rows(random_docs(random.Random(5), 5000), [ROOT]))
    view.selectRow(10)
    qtbot.waitExposed(view)

    here = document_table.__file__
    calls: list[str] = []

    def profile(frame: Any, event: str, _arg: Any) -> None:
        code = frame.f_code
        # Plain Python passes over the rows (a comprehension, a sort key) are what we want;
        # any other function of the module called once per row is what we must not have.
        if event == "call" and code.co_filename == here and not code.co_name.startswith("<"):
            calls.append(code.co_name)

    for change in (
        lambda: proxy.set_text("report"),
        lambda: proxy.set_text("re"),
        lambda: proxy.set_status("failed"),
        lambda: view.sortByColumn(COL_SIZE, Qt.SortOrder.DescendingOrder),
        lambda: view.sortByColumn(COL_SIZE, Qt.SortOrder.AscendingOrder),
        lambda: view.sortByColumn(COL_STATUS, Qt.SortOrder.AscendingOrder),
        lambda: proxy.set_status(None),
        lambda: proxy.set_text(""),
    ):
        calls.clear()
        sys.setprofile(profile)
        try:
            change()
        finally:
            sys.setprofile(None)
        assert 0 < len(calls) < 100, sorted(set(calls))
        assert "data" not in calls and "_accepts" not in calls
    assert proxy.rowCount() == 5000


def test_the_selection_follows_its_rows_through_filters_and_sorts(qtbot: Any) -> None:
    from PySide6.QtCore import QItemSelectionModel, Qt
    from PySide6.QtWidgets import QAbstractItemView, QTableView

    from ftrag_desktop.app.document_table import COL_NAME, COL_SIZE

    model = DocumentTableModel()
    model.set_roots([ROOT])
    proxy = DocumentFilter()
    proxy.setSourceModel(model)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.setSortingEnabled(True)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    view.show()
    model.set_rows(prepare_rows(random_docs(random.Random(8), 2000), [ROOT]))
    flags = QItemSelectionModel.SelectionFlag
    selection = view.selectionModel()
    for row in range(0, 2000, 37):
        selection.select(proxy.index(row, 0), flags.Select | flags.Rows)
    view.setCurrentIndex(proxy.index(37 * 5, 0))  # also selects that row alone
    for row in range(0, 2000, 37):
        selection.select(proxy.index(row, 0), flags.Select | flags.Rows)
    current: str | None = proxy.index(37 * 5, 0).data(PATH_ROLE)
    selected = {proxy.index(row, 0).data(PATH_ROLE) for row in range(0, 2000, 37)}
    assert len(selected) == 55

    def selected_now() -> set[str]:
        return {i.data(PATH_ROLE) for i in selection.selectedRows()}

    for change in (
        lambda: view.sortByColumn(COL_SIZE, Qt.SortOrder.DescendingOrder),
        lambda: proxy.set_text("e"),  # most rows stay
        lambda: view.sortByColumn(COL_SIZE, Qt.SortOrder.AscendingOrder),
        lambda: proxy.set_status("indexed"),  # fewer: the selected rows hidden are let go
        lambda: view.sortByColumn(COL_NAME, Qt.SortOrder.DescendingOrder),
        lambda: proxy.set_status(None),
        lambda: proxy.set_text(""),
    ):
        change()
        shown_now = set(paths(proxy))
        selected &= shown_now  # as a proxy's filter did: what is hidden leaves the selection
        assert selected_now() == selected
        assert view.verticalHeader().count() == proxy.rowCount() == len(shown_now)
        if current not in shown_now:
            current = None  # hidden once: let go, as the selection is
        if current is not None:
            assert view.currentIndex().data(PATH_ROLE) == current
        else:
            assert not view.currentIndex().isValid()
    assert 5 < len(selected) < 55  # some went with the filters, some stayed throughout


def test_status_changes_show_and_hide_rows_under_a_filter_and_every_row_stays_exact(
    qtbot: Any,
) -> None:
    """Under a status and a text filter, reports applied as changes alone: a hidden row whose
    status now matches appears, a shown one that no longer matches goes, new and removed rows
    too, with no reset; the rows held (hidden ones included) stay exactly sorted, as the
    filter cleared or another sort then shows."""
    from PySide6.QtCore import Qt

    from ftrag_desktop.app.document_table import COL_NAME, COL_SIZE

    rng = random.Random(21)
    model = DocumentTableModel()
    model.set_roots([ROOT])
    proxy = DocumentFilter()
    proxy.setSourceModel(model)
    tester = QAbstractItemModelTester(proxy, QAbstractItemModelTester.FailureReportingMode.Fatal)
    held = {r.doc["path"]: r for r in prepare_rows(random_docs(rng, 240), [ROOT])}
    model.set_rows(list(held.values()))
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    status, text = "failed", "e"
    proxy.set_status(status)
    proxy.set_text(text)
    next_id = 240
    for round_ in range(12):
        if round_ == 4:
            proxy.sort(COL_SIZE, Qt.SortOrder.DescendingOrder)
        if round_ == 8:
            status, text = "pending", ""
            proxy.set_status(status)
            proxy.set_text(text)
        hidden = [p for p in held if p not in set(paths(proxy))]
        visible = paths(proxy)
        picked = rng.sample(visible, 5)
        restatus = [held[p].doc | {"status": status} for p in rng.sample(hidden, 5)]
        restatus += [held[p].doc | {"status": "indexed"} for p in picked[:3]]
        resized = [held[p].doc | {"size": rng.randrange(50)} for p in picked[3:]]
        new = random_docs(rng, 4, next_id)
        next_id += 4
        changed_paths = {d["path"] for d in restatus + resized}
        gone = set(rng.sample([p for p in held if p not in changed_paths], 4))
        fresh = prepare_rows(restatus + resized + new, [ROOT])
        for path in gone:
            del held[path]
        for row in fresh:
            held[row.doc["path"]] = row
        assert model.apply_changes(fresh, gone, len(held)) is True
        assert paths(proxy) == shown(model, status, text, list(held.values()))
        for d in restatus[:5]:  # the hidden rows that match now are shown
            assert d["path"] in set(paths(proxy)) or text not in d["path"].lower()
        assert [r.doc for r in model.rows()] == [r.doc for r in model._sorted(list(held.values()))]
    assert resets == []
    proxy.set_status(None)
    proxy.set_text("")
    assert paths(proxy) == [r.doc["path"] for r in model._sorted(list(held.values()))]
    proxy.sort(COL_NAME, Qt.SortOrder.AscendingOrder)
    assert paths(proxy) == [r.doc["path"] for r in model._sorted(list(held.values()))]
    assert [d["status"] for d in model.documents()] == [held[p].doc["status"] for p in paths(proxy)]
    # Every row given again while filtered: the filter holds for them too.
    proxy.set_status("failed")
    again = prepare_rows([r.doc | {"status": "failed"} for r in list(held.values())[:40]], [ROOT])
    for row in again:
        held[row.doc["path"]] = row
    model.set_rows(list(held.values()))
    assert paths(proxy) == shown(model, "failed", "")
    assert len(model.rows()) == len(held)
    del tester


def test_each_way_a_filter_change_is_told_passes_qts_model_checks(qtbot: Any) -> None:
    """A few rows hidden go as rows removed; many scattered ones as one layout change and one
    run removed; rows that come (or a change both ways) as one run inserted, one layout
    change and one run removed; each checked by Qt's model tester, with exact results."""
    from PySide6.QtCore import Qt

    from ftrag_desktop.app.document_table import COL_NAME, COL_STATUS

    model = DocumentTableModel()
    model.set_roots([ROOT])
    proxy = DocumentFilter()
    proxy.setSourceModel(model)
    testers = [
        QAbstractItemModelTester(m, QAbstractItemModelTester.FailureReportingMode.Fatal)
        for m in (model, proxy)
    ]
    model.set_rows(prepare_rows(random_docs(random.Random(4), 300), [ROOT]))
    told: list[str] = []
    proxy.rowsRemoved.connect(lambda *_: told.append("removed"))
    proxy.rowsInserted.connect(lambda *_: told.append("inserted"))
    proxy.layoutChanged.connect(lambda *_: told.append("layout"))
    proxy.modelReset.connect(lambda: told.append("reset"))
    last = model.rows()[-1].doc
    model.sort(COL_STATUS, Qt.SortOrder.AscendingOrder)  # the failed rows first, together
    steps: list[tuple[str | None, str, list[str]]] = [
        ("failed", "", ["removed"]),  # all other rows go, in one run
        ("failed", "/d1/", ["layout", "removed"]),  # (sorted by name) many scattered rows go
        ("pending", "/d1/", ["inserted", "layout", "removed"]),  # some come, all others go
        ("pending", "", ["inserted", "layout", "removed"]),  # rows come only
        ("pending", "no such text", ["removed"]),  # every row goes: one run
        (None, "", ["inserted"]),  # every row comes: one run
        (None, last["path"][-12:], ["layout", "removed"]),  # one row left of many
    ]
    for status, text, signals in steps:
        if status == "failed" and text:
            model.sort(COL_NAME, Qt.SortOrder.AscendingOrder)
        told.clear()
        proxy.set_status(status)
        proxy.set_text(text)
        assert paths(proxy) == shown(model, status, text)
        assert told == signals, (status, text)
    assert paths(proxy) == [last["path"]]
    assert testers


def test_a_selection_of_the_whole_table_stays_whole_as_the_filter_narrows(qtbot: Any) -> None:
    from PySide6.QtWidgets import QAbstractItemView, QTableView

    model = DocumentTableModel()
    model.set_roots([ROOT])
    proxy = DocumentFilter()
    proxy.setSourceModel(model)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    model.set_rows(prepare_rows(random_docs(random.Random(6), 400), [ROOT]))
    view.selectAll()
    for text in ("e", "re", "rep"):
        proxy.set_text(text)
        assert 0 < proxy.rowCount() < 400
        selected = {i.data(PATH_ROLE) for i in view.selectionModel().selectedRows()}
        assert selected == set(paths(proxy))
