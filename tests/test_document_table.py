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
    assert model.set_rows(list(rows.values()), {d["path"] for d in done}) is False

    assert resets == [] and moves == []
    assert paths(model) == before
    statuses = {model.document(r)["path"]: model.document(r)["status"] for r in range(300)}
    assert [statuses[d["path"]] for d in done] == ["indexed"] * 3
    assert sum(1 for s in statuses.values() if s == "indexed") == 3
    rows_changed = sorted(before.index(d["path"]) for d in done)
    assert changed_at == [(rows_changed[0], rows_changed[-1])]
    del tester
