"""`bench/vs_llamaindex.py --quick` runs ours and the LlamaIndex peer end to end.

The peer lives in its own virtualenv, which the setup creates with the Makefile target (`make
.venv-peer`, pinned in requirements/peer-llamaindex.txt): if it cannot be built or the peer
cannot run, this test fails; it is never skipped.  It checks behaviour, not speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def peer_venv() -> Path:
    """`make .venv-peer`: about 2 minutes the first time, nothing once its stamp is there."""
    made = subprocess.run(
        ["make", "--no-print-directory", ".venv-peer"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert made.returncode == 0, f"make .venv-peer failed:\n{made.stdout}\n{made.stderr}"
    python = REPO / ".venv-peer" / "bin" / "python"
    assert python.exists()
    return python


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the setup may build the peer's virtualenv; the run itself ~40-90 s
def test_quick_side_by_side_reports_both_pipelines(peer_venv: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "bench/vs_llamaindex.py", "--quick", "--no-write", "--json"),
            *("--work", str(tmp_path / "work"), "--peer-python", str(peer_venv)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,  # about 40 s on a quiet machine; minutes when other suites share the cores
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["peer_versions"]["llama-index-core"] != "not installed"

    [case] = out["cases"]
    assert case["corpus"] == "mixed" and case["embedder"] == "hash"
    files = case["files"]
    assert files == 22  # 2 PDFs and 20 abstracts
    ours, peer = case["ours"], case["peer"]

    # Both read every file of the same folder and embedded through the one test server.
    assert ours["indexed"] + ours["failed"] == files and ours["indexed"] >= 20
    assert peer["files"] == files and peer["indexed"] + peer["failed"] == files
    assert ours["chunks"] > 0 and peer["chunks"] > 0
    assert ours["embedded_at_server"] >= ours["chunks"]
    assert peer["embedded_at_server"] == peer["chunks"]  # one vector per node, nothing cached

    # Our resync parses and embeds nothing; the peer's re-run does it all again, and appends.
    resync, rerun = ours["resync"], peer["rerun"]
    assert resync["indexed"] == 0 and resync["unchanged"] == files
    assert resync["embedded_at_server"] <= 1 and case["resync_clean"] is True
    assert rerun["embedded_at_server"] == peer["chunks"]
    assert rerun["rows_in_table"] == 2 * peer["chunks"]

    for r in (ours, peer, resync, rerun):
        assert r["seconds"] > 0 and r["files_per_s"] > 0
        assert r["peak_rss_tree_mb"] > 0
    assert case["full_speedup"] == pytest.approx(peer["seconds"] / ours["seconds"], rel=0.01)
    assert case["resync_speedup"] == pytest.approx(rerun["seconds"] / resync["seconds"], rel=0.1)
    assert isinstance(case["full_ok"], bool) and isinstance(case["resync_ok"], bool)
