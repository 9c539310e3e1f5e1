"""StatusTracker sends the whole document list once, then only what changed."""

from __future__ import annotations

from typing import Any

from ftrag_desktop.core.status_report import StatusReport, StatusTracker, folder_counts


def doc(path: str, status: str = "indexed", chunks: int = 3) -> dict[str, Any]:
    return {"path": path, "status": status, "chunks": chunks, "error": None}


def status(*docs: dict[str, Any]) -> dict[str, Any]:
    return {"documents": list(docs), "chunks": sum(d["chunks"] for d in docs), "counts": {}}


def test_first_report_is_full_then_only_changes_are_sent() -> None:
    tracker = StatusTracker()
    folders = ["/docs"]
    first = tracker.report(status(doc("/docs/a.md"), doc("/docs/b.md")), folders)
    assert first.full and len(first.changed) == 2 and first.removed == ()
    assert "documents" not in first.summary and first.summary["chunks"] == 6

    same = tracker.report(status(doc("/docs/a.md"), doc("/docs/b.md")), folders)
    assert not same.full and same.changed == () and same.removed == ()

    later = tracker.report(status(doc("/docs/a.md", "failed", 0), doc("/docs/c.md")), folders)
    assert not later.full
    assert sorted(d["path"] for d in later.changed) == ["/docs/a.md", "/docs/c.md"]
    assert later.removed == ("/docs/b.md",)
    assert later.folder_counts == {"/docs": (2, 1)}


def test_applying_the_reports_rebuilds_the_list_and_reset_sends_everything() -> None:
    tracker = StatusTracker()
    mirror: dict[str, dict[str, Any]] = {"/stale.md": doc("/stale.md")}
    steps = [
        status(doc("/d/a"), doc("/d/b")),
        status(doc("/d/a", "pending"), doc("/d/c")),
        status(doc("/d/c", chunks=9)),
    ]
    for step in steps:
        tracker.report(step, ["/d"]).apply_to(mirror)
        assert mirror == {d["path"]: d for d in step["documents"]}
    tracker.reset()
    again = tracker.report(steps[-1], ["/d"])
    assert again.full and [d["path"] for d in again.changed] == ["/d/c"]


def test_folder_counts_match_whole_path_components() -> None:
    docs = [doc("/a/x.md"), doc("/a/y.md", "failed"), doc("/ab/z.md"), doc("/other/w.md")]
    assert folder_counts(docs, ["/a", "/ab", "/none"]) == {
        "/a": (2, 1),
        "/ab": (1, 0),
        "/none": (0, 0),
    }


def test_an_empty_report_changes_nothing() -> None:
    mirror = {"/a": doc("/a")}
    StatusReport({}).apply_to(mirror)
    assert mirror == {"/a": doc("/a")}
