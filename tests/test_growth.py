"""Bounded growth: a thousand edit-and-resync cycles, then the index is at most twice the size
of a fresh index of the same folder.  Compaction does it: every `compact_every_commits` commits
while the edits come, and once more when the library goes quiet (the watcher's idle call),
which removes the versions kept meanwhile for readers in other processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.crash_harness import differences, growth_cycles


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_thousand_edits_leave_the_index_within_twice_a_fresh_one(
    tmp_path: Path,
    ollama_server: Any,
) -> None:
    ollama_server.embed_backend = "hash"
    # The readers' grace period is cut from 10 s to 1 s: no reader runs here, and the settling
    # compactions then come after seconds, not tens of seconds (bench/reliability.py keeps 10 s).
    g = growth_cycles(tmp_path, ollama_server.url, files=20, cycles=1000, grace_s=1.0)
    print(
        f"{g.cycles} cycles in {g.seconds:.0f} s ({1000 * g.seconds / g.cycles:.0f} ms each); "
        f"sizes (KB) {[(c, b // 1024) for c, b in g.sizes]}; before the quiet time "
        f"{g.before_quiet // 1024} KB; settled {g.final // 1024} KB after {g.compactions} "
        f"compactions; fresh {g.fresh_built // 1024} KB as built, {g.fresh // 1024} KB settled; "
        f"ratio {g.ratio:.2f}"
    )
    assert differences(g.got, g.clean) == []  # the same content as the fresh index
    assert len(g.got.docs) == 20 and g.got.chunk_rows == g.clean.chunk_rows
    assert g.final <= 2 * g.fresh, (g.final, g.fresh)
    assert g.final <= 2 * g.fresh_built
    # It is compaction that does it: before the quiet time the old versions were still there.
    assert g.before_quiet > g.final and g.compactions >= 1
    # Bounded while the edits come too: no steady climb from the first samples to the last.
    assert max(b for _c, b in g.sizes[-3:]) <= 2 * max(b for _c, b in g.sizes[:3])
