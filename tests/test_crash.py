"""Crash consistency: SIGKILL the real `ftrag index` at random moments, dozens of times, while it
indexes, compacts and switches embedding models; after one more run the index must equal a
clean build of the same folder (same documents, same chunks per document, no duplicates, no
chunks of deleted files, nothing pending, `check_health()` empty, and no crash mistaken for
damage).  The runs are forked from a warm process (tests/crash_harness.py), one for the whole
module, so that 30 restarts cost seconds, not minutes; each is still a process of its own,
killed with SIGKILL.  In the big campaign the clean build runs meanwhile, from a copy of the
folder given the same changes.  bench/reliability.py runs the same campaigns and reports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.config import Settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.store import Store
from ftrag_desktop.paths import Home
from tests.conftest import PDF_DIR
from tests.crash_harness import (
    Outcome,
    Zygote,
    compaction_campaign,
    differences,
    indexing_campaign,
    switch_campaign,
)


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    with Zygote() as z:
        yield z


def _report(name: str, out: Outcome) -> None:
    c = out.campaigns[0]
    print(
        f"{name}: kills {out.kills}, mid-run {out.mid_run}, at named points "
        f"{[x.at_pause for x in out.campaigns]}, churn {out.churn}, campaign {c.seconds:.0f} s, "
        f"final run {c.final_seconds:.0f} s; {len(out.got.docs)} documents, "
        f"{out.got.chunk_rows} chunks"
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_thirty_sigkills_while_indexing_then_the_index_equals_a_clean_build(
    tmp_path: Path,
    ollama_server: Any,
    zygote: Zygote,
) -> None:
    ollama_server.embed_backend = "hash"
    out = indexing_campaign(
        tmp_path, ollama_server.url, text_files=2000, kills=32, pdf_dir=PDF_DIR, zygote=zygote
    )
    _report("indexing", out)
    assert differences(out.got, out.clean) == []
    assert set(out.clean.docs) == out.on_disk  # every file seen, deleted ones gone
    assert sum(1 for p in out.on_disk if p.endswith(".pdf")) == 150
    assert sum(1 for s, _c, _e in out.clean.docs.values() if s == "indexed") > 2000
    assert out.kills >= 30
    assert out.mid_run >= 28, out.campaigns[0].outcomes
    assert out.at_pause("commit") >= 5, out.campaigns[0].outcomes
    assert out.churn["deleted"] >= 8 and out.churn["renamed"] >= 4


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_during_compaction_leaves_an_index_equal_to_a_clean_build(
    tmp_path: Path,
    ollama_server: Any,
    zygote: Zygote,
) -> None:
    ollama_server.embed_backend = "hash"
    out = compaction_campaign(tmp_path, ollama_server.url, kills=8, zygote=zygote)
    _report("compaction", out)
    assert differences(out.got, out.clean) == []
    assert set(out.clean.docs) == out.on_disk
    # Half the kills wait at a pause point; the others die within 50 ms of compaction starting,
    # which on a fast machine can be after it ended: allow for two of those.
    assert out.at_pause("compaction") >= 6, out.campaigns[0].outcomes
    store = Store(tmp_path / "crashy" / "index", read_only=True)
    try:  # the full-text index survived too
        hits = store.keyword_search("copper lantern", 5)
        assert len(hits) == 5 and all(Path(h.path).exists() for h in hits)
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_during_an_embedding_model_switch_resumes_or_keeps_the_old_model(
    tmp_path: Path,
    ollama_server: Any,
    zygote: Zygote,
) -> None:
    ollama_server.embed_backend = "hash"
    url = ollama_server.url
    out = switch_campaign(tmp_path, url, zygote=zygote)
    _report("switch", out)
    old, new = "nomic-embed-text", "all-minilm"
    assert out.notes["before"] == (old, None)
    # Until the swap, the old model's table stays the one searches use.
    assert all(active == old for active, _b in out.notes["during"])
    assert out.notes["during"][-1][1] is not None  # the killed switch is still half-built
    # Going back to the old model dropped the half-built table and kept the old index.
    assert out.notes["reverted"] == (old, None) and out.notes["reverted_health"] == []
    # Forward again, killed again, then finished: equal to a clean build with the new model.
    assert differences(out.got, out.clean) == []
    assert out.got.embed_model == new and out.got.building is None
    assert out.kills == 6 and out.at_pause("switch") >= 5

    ollama_server.requests.clear()
    with Engine(Home(tmp_path / "crashy"), Settings(ollama_host=url, embed_model=new)) as eng:
        result = eng.search("copper lantern", k=5, mode="vector")
    assert len(result.hits) == 5
    embeds = [r for r in ollama_server.requests if r.path == "/api/embed"]
    assert embeds and all(r.body.get("model") == new for r in embeds)
