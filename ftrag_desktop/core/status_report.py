"""What the library holds, sent to a front end as a delta from what it was last sent.

`Engine.status()` lists every document. A front end that re-reads that list every few seconds
while a large folder is indexed spends its own CPU (and, in the GUI process, the GIL its event
loop needs) converting and comparing thousands of unchanged rows. So the library process keeps
a `StatusTracker`, which remembers what it last sent and turns each fresh status into a
`StatusReport`: the summary figures, the documents that are new or changed, the paths that are
gone, and the per-folder counts. The first report of a tracker, and any report after the
tracker was reset, is `full`: the receiver replaces everything it had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StatusReport:
    """`Engine.status()` without its document list, plus the documents that changed."""

    summary: dict[str, Any]
    changed: tuple[dict[str, Any], ...] = ()
    removed: tuple[str, ...] = ()
    full: bool = False
    folder_counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def apply_to(self, docs: dict[str, dict[str, Any]]) -> None:
        """Bring `docs` (path -> document) up to date with this report, in place."""
        if self.full:
            docs.clear()
        for path in self.removed:
            docs.pop(path, None)
        for doc in self.changed:
            docs[str(doc["path"])] = doc


def folder_counts(
    docs: Sequence[dict[str, Any]], folders: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """(documents, failed) for each watched folder."""
    prefixes = {f: (f.rstrip("/\\") + "/", f.rstrip("/\\") + "\\") for f in folders}
    counts = {f: [0, 0] for f in folders}
    for doc in docs:
        path = str(doc["path"])
        failed = doc.get("status") == "failed"
        for folder, prefix in prefixes.items():
            if path.startswith(prefix):
                counts[folder][0] += 1
                counts[folder][1] += failed
    return {f: (n, bad) for f, (n, bad) in counts.items()}


class StatusTracker:
    """Remembers the documents last reported, to send only what changed since."""

    def __init__(self) -> None:
        self._sent: dict[str, dict[str, Any]] | None = None

    def reset(self) -> None:
        """The receiver lost track (or is new): the next report is a full one."""
        self._sent = None

    def report(self, status: dict[str, Any], folders: Sequence[str]) -> StatusReport:
        docs: list[dict[str, Any]] = list(status.get("documents") or [])
        summary = {k: v for k, v in status.items() if k != "documents"}
        counts = folder_counts(docs, folders)
        current = {str(d["path"]): d for d in docs}
        sent, self._sent = self._sent, current
        if sent is None:
            return StatusReport(summary, tuple(docs), (), True, counts)
        changed = tuple(d for p, d in current.items() if sent.get(p) != d)
        removed = tuple(p for p in sent if p not in current)
        return StatusReport(summary, changed, removed, False, counts)


__all__ = ["StatusReport", "StatusTracker", "folder_counts"]
