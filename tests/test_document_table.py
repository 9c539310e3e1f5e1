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
