"""Crash consistency: SIGKILL the indexer mid-sync; the next run repairs and completes the index."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftrag_desktop.config import Settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.paths import Home
from tests.conftest import PDF_DIR


def _corpus(root: Path, n_text: int) -> None:
    rng = random.Random(7)
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "river",
        "stone",
        "copper",
        "ledger",
        "orbit",
        "violet",
        "maple",
        "signal",
    ]
    for i in range(n_text):
        sub = root / f"group{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        paras = [" ".join(rng.choices(words, k=rng.randint(40, 160))) for _ in range(3)]
        (sub / f"note{i:04d}.txt").write_text(f"Note {i}.\n\n" + "\n\n".join(paras))
    pdfs = root / "pdfs"
    pdfs.mkdir()
    for pdf in sorted(PDF_DIR.rglob("*.pdf"))[:25]:
        (pdfs / f"{pdf.parent.name}-{pdf.name}").write_bytes(pdf.read_bytes())


def _cli(home: Path, url: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ftrag_desktop.cli",
        "--home",
        str(home),
        "--ollama-host",
        url,
        *args,
    ]


def _snapshot(home: Path, url: str) -> dict[str, object]:
    eng = Engine(Home(home), Settings(ollama_host=url))
    try:
        docs = eng.store.documents()
        return {
            "docs": {
                Path(d.path).relative_to(home.parent / "corpus").as_posix(): (
                    d.status.value,
                    d.chunks,
                )
                for d in docs
            },
            "actual_chunks": {d.path: eng.store.doc_chunk_count(d.doc_id) for d in docs},
            "declared_chunks": {d.path: d.chunks for d in docs},
            "health": eng.store.check_health(),
            "total": eng.status()["chunks"],
        }
    finally:
        eng.close()


@pytest.mark.slow
def test_sigkill_during_sync_then_restart_matches_a_clean_build(
    tmp_path: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    ollama_server.embed_backend = "hash"
    corpus = tmp_path / "corpus"
    _corpus(corpus, 400)
    url = ollama_server.url

    clean_home = tmp_path / "clean"
    subprocess.run(_cli(clean_home, url, "index", str(corpus), "-q"), check=True, timeout=600)

    home = tmp_path / "crashy"
    rng = random.Random(11)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen(
            _cli(home, url, "index", str(corpus)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.8, 4.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    # A deletion and an edit after the crashes: the repair must not resurrect or duplicate.
    (corpus / "group0" / "note0000.txt").unlink()
    (corpus / "group1" / "note0001.txt").write_text("Rewritten after the crashes.\n")
    subprocess.run(_cli(home, url, "index", str(corpus), "-q"), check=True, timeout=600)
    subprocess.run(_cli(clean_home, url, "index", str(corpus), "-q"), check=True, timeout=600)
    assert kills >= 3, "the indexer finished too fast to be killed; grow the corpus"

    after, clean = _snapshot(home, url), _snapshot(clean_home, url)
    assert after["health"] == [] and clean["health"] == []
    assert after["docs"] == clean["docs"]
    assert all(status != "pending" for status, _ in after["docs"].values())  # type: ignore[attr-defined]
    assert after["actual_chunks"] == after["declared_chunks"]
    assert after["total"] == clean["total"]
