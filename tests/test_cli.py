"""The `ftrag` command: JSON documents, exit codes, errors without tracebacks, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftrag_desktop.cli import main


def ftrag(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main(["--ollama-host", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    root.mkdir()
    (root / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees for two minutes.\n")
    (root / "coffee.txt").write_text("Espresso needs finely ground coffee and 9 bar.\n")
    (root / "bad.pdf").write_bytes(b"this is not a pdf at all")
    return root


def test_index_json_and_rerun(capsys, folder: Path, ollama_server) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = ftrag(capsys, ollama_server.url, "index", str(folder), "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["indexed"], doc["failed"], doc["removed"], doc["unchanged"]) == (2, 1, 0, 0)
    assert doc["failures"][0]["path"].endswith("bad.pdf") and doc["failures"][0]["reason"]
    assert isinstance(doc["seconds"], float)
    code, out, _ = ftrag(capsys, ollama_server.url, "index", str(folder), "--json")
    doc = json.loads(out)
    assert (doc["indexed"], doc["unchanged"], doc["embedded"]) == (0, 3, 0)


def test_status_search_ask_json(capsys, folder: Path, ollama_server) -> None:  # type: ignore[no-untyped-def]
    url = ollama_server.url
    assert ftrag(capsys, url, "index", str(folder), "-q")[0] == 0
    code, out, _ = ftrag(capsys, url, "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["chunks"] >= 2
    by_name = {Path(d["path"]).name: d for d in status["documents"]}
    assert by_name["bad.pdf"]["status"] == "failed" and "PDF" in by_name["bad.pdf"]["error"]
    assert by_name["tea.md"]["status"] == "indexed" and by_name["tea.md"]["chunks"] >= 1
    assert status["embedding_model"] == "nomic-embed-text"

    code, out, _ = ftrag(capsys, url, "search", "green tea temperature", "--json", "--k", "2")
    hits = json.loads(out)["hits"]
    assert code == 0 and 1 <= len(hits) <= 2
    assert hits[0]["path"].endswith("tea.md")
    assert {"path", "page", "score", "text"} <= hits[0].keys()

    code, out, _ = ftrag(capsys, url, "ask", "How hot should green tea be?", "--json")
    ans = json.loads(out)
    assert code == 0 and ans["answer"]
    assert ans["model"] == "llama3.2"
    assert ans["retrieved"] and ans["cited"]
    assert all(c["cited"] for c in ans["cited"])
    assert {c["number"] for c in ans["cited"]} <= {r["number"] for r in ans["retrieved"]}
    chat = ollama_server.bodies("/api/chat")[-1]
    assert chat["options"]["num_ctx"] >= 2048


def test_ask_no_rag_sends_no_sources(capsys, ollama_server) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = ftrag(capsys, ollama_server.url, "ask", "Say hi", "--no-rag", "--json")
    ans = json.loads(out)
    assert code == 0 and ans["rag"] is False and ans["retrieved"] == []
    chat = ollama_server.bodies("/api/chat")[-1]
    assert "Sources:" not in chat["messages"][-1]["content"]


def test_user_errors_exit_1_without_traceback(capsys, tmp_path: Path, ollama_server) -> None:  # type: ignore[no-untyped-def]
    code, _, err = ftrag(capsys, ollama_server.url, "index", str(tmp_path / "missing"))
    assert code == 1 and "Folder not found" in err and "Traceback" not in err
    ollama_server.fault = "down"
    code, _, err = ftrag(capsys, ollama_server.url, "ask", "anything", "--no-rag")
    assert code == 1 and "Cannot reach Ollama" in err and "hint:" in err
    ollama_server.fault = None
    ollama_server.up()
    code, _, err = ftrag(capsys, ollama_server.url, "ask", "x", "--no-rag", "--model", "nope")
    assert code == 1 and "nope" in err and "ollama pull" in err


def test_usage_error_exits_2(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["search"])
    assert exc.value.code == 2


def test_doctor_reports_each_check(capsys, ollama_server) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = ftrag(capsys, ollama_server.url, "doctor")
    assert code == 0, out
    assert "ok  Ollama" in out and "ok  Embedding model" in out and "ok  Index" in out
    ollama_server.fault = "down"
    code, out, _ = ftrag(capsys, ollama_server.url, "doctor")
    assert code == 1 and "BAD Ollama" in out and "fix:" in out


def test_ctrl_c_during_index_leaves_a_completable_index(
    tmp_path: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    ollama_server.embed_backend = "hash"
    root = tmp_path / "many"
    root.mkdir()
    for i in range(1500):
        (root / f"f{i:04d}.txt").write_text(f"File {i} talks about item {i} at length. " * 20)
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "ftrag_desktop.cli", "--home", str(home)]
    cmd += ["--ollama-host", ollama_server.url, "index", str(root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until indexing is under way
        if line.startswith("indexed"):
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    done = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["failed"] == 0 and doc["indexed"] + doc["unchanged"] == 1500
    assert 0 < doc["indexed"] < 1500


def test_ctrl_c_while_ollama_is_slow_to_embed_stops_without_waiting_for_it(
    tmp_path: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    """Batches are embedded in the background; a stop does not wait for Ollama's answer."""
    ollama_server.embed_backend = "hash"
    root = tmp_path / "many"
    root.mkdir()
    (root / "first.txt").write_text("The first file, indexed before Ollama slows down.")
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "ftrag_desktop.cli", "--home", str(home)]
    cmd += ["--ollama-host", ollama_server.url, "--timeout", "300", "index", str(root)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    for i in range(300):
        (root / f"f{i:03d}.txt").write_text(f"File {i} talks about item {i}. " * 10)
    ollama_server.requests.clear()
    ollama_server.embed_count = 0
    ollama_server.delay_s = 600.0
    ollama_server.fault = "slow"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ollama_server.bodies("/api/embed") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ollama_server.bodies("/api/embed"), "no embedding request was made"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)  # not the 600 s Ollama would take
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert ollama_server.embed_count == 0  # it stopped before any vector came back
    ollama_server.fault = None
    done = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["indexed"] + doc["unchanged"] == 301 and doc["vectors_missing"] == 0


@pytest.mark.slow
def test_index_all_shared_pdfs_then_rerun_does_nothing(capsys, ollama_server) -> None:  # type: ignore[no-untyped-def]
    from ftrag_desktop.core.parse import is_supported
    from tests.conftest import PDF_DIR

    ollama_server.embed_backend = "hash"
    url = ollama_server.url
    supported = [p for p in PDF_DIR.rglob("*") if p.is_file() and is_supported(p)]
    n_pdfs = sum(p.suffix == ".pdf" for p in supported)
    code, out, _ = ftrag(capsys, url, "index", str(PDF_DIR), "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["indexed"] + doc["failed"] == len(supported) and n_pdfs == 150
    assert all(f["reason"] for f in doc["failures"])
    code, out, _ = ftrag(capsys, url, "status", "--json")
    docs = [d for d in json.loads(out)["documents"] if d["path"].endswith(".pdf")]
    assert len(docs) == n_pdfs and not [d for d in docs if d["status"] == "pending"]
    assert all(d["error"] for d in docs if d["status"] == "failed")
    assert sum(d["status"] == "indexed" for d in docs) >= 120
    embedded = ollama_server.embed_count
    code, out, _ = ftrag(capsys, url, "index", str(PDF_DIR), "--json")
    doc = json.loads(out)
    assert (doc["indexed"], doc["embedded"], doc["unchanged"]) == (0, 0, len(supported))
    assert ollama_server.embed_count == embedded


def test_index_leaves_no_passage_outside_the_keyword_index(  # type: ignore[no-untyped-def]
    tmp_path, capsys, ollama_server
) -> None:
    """`ftrag index` folds what it added into the full-text index before it exits: nothing
    runs after it, and an unfolded passage is scanned by every search."""
    from ftrag_desktop.config import load_settings
    from ftrag_desktop.core.engine import Engine
    from ftrag_desktop.paths import Home

    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(30):
        (folder / f"n{i}.txt").write_text(f"Note {i} about the heron census and quartz {i}.\n")
    assert main(["--ollama-host", ollama_server.url, "index", str(folder)]) == 0
    assert "Folded 30 new passages into the keyword index." in capsys.readouterr().err

    (folder / "n3.txt").write_text("Note 3 now covers the kestrel survey instead.\n")
    assert main(["--ollama-host", ollama_server.url, "index", str(folder)]) == 0
    assert "Folded 1 new passages" in capsys.readouterr().err

    home = Home.resolve()
    with Engine(home, load_settings(home.settings_file)) as engine:
        assert engine.store.unindexed_text_rows() == 0
        hits = engine.search("kestrel survey", mode="keyword").hits
        assert hits and hits[0].path.endswith("n3.txt")
