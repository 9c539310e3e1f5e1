"""`ftrag eval build|list|export|import|run|report`: JSON on stdout, progress on stderr."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.cli import main
from tests.test_evalset import ScriptedModel, docs

__all__ = ["docs"]


def ftrag(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main(["--ollama-host", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_build_run_report(
    capsys: pytest.CaptureFixture[str], docs: Path, ollama_server: Any, tmp_path: Path
) -> None:
    ollama_server.embed_backend = "hash"
    ollama_server.reply = ScriptedModel()
    url = ollama_server.url
    assert ftrag(capsys, url, "index", str(docs), "-q")[0] == 0

    code, out, err = ftrag(
        capsys, url, "eval", "build", "demo", "--questions", "5", "--unanswerable", "2",
        "--seed", "7", "--json",
    )  # fmt: skip
    assert code == 0, err
    built = json.loads(out)
    assert (built["name"], built["version"]) == ("demo", 1)
    assert (built["answerable"], built["unanswerable"]) == (2, 2)
    assert built["rejected"]["answerable without the source"] == 1
    assert "kept" in err and "dropped   not self-contained" in err  # progress on stderr

    code, out, _ = ftrag(capsys, url, "eval", "list", "--json")
    assert json.loads(out)["sets"][0]["versions"][0]["items"] == 4

    exported = tmp_path / "demo.jsonl"
    assert ftrag(capsys, url, "eval", "export", "demo", "-o", str(exported))[0] == 0
    lines = [json.loads(x) for x in exported.read_text().splitlines()]
    assert len(lines) == 4 and all(set(x) >= {"source_chunk_id", "origin"} for x in lines)
    code, out, _ = ftrag(capsys, url, "eval", "import", str(exported), "--name", "demo", "--json")
    assert code == 0 and json.loads(out) == {"name": "demo", "version": 2, "items": 4}

    code, out, err = ftrag(
        capsys, url, "eval", "run", "demo", "--config", "llama3.2", "--config",
        "llama3.2:norag", "--k", "3", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert not doc["cancelled"] and doc["report"]["set_version"] == 2
    rag, plain = doc["report"]["rows"]
    assert rag["rag"] and rag["top_k"] == 3 and rag["hit_at_k"] == 1.0 and rag["correct"] == 1.0
    assert plain["correct"] == 0.0 and plain["hit_at_k"] is None
    assert doc["report"]["recommendation"]["approach"] == "rag"
    assert "[8/8]" in err

    html_file, csv_file = tmp_path / "r.html", tmp_path / "r.csv"
    code, out, err = ftrag(
        capsys, url, "eval", "report", "--html", str(html_file), "--csv", str(csv_file)
    )
    assert code == 0
    assert "Which approach? RAG:" in out and "llama3.2 + documents (top 3)" in out
    assert "<svg" in html_file.read_text()
    table = list(csv.DictReader(io.StringIO(csv_file.read_text())))
    assert [r["rag"] for r in table] == ["True", "False"]
    assert f"wrote     {html_file}" in err

    # Resuming a finished run asks nothing more.
    before = len(ollama_server.bodies("/api/chat"))
    code, out, _ = ftrag(capsys, url, "eval", "run", "--resume", "last", "--json", "-q")
    assert code == 0 and json.loads(out)["report"]["complete"]
    assert len(ollama_server.bodies("/api/chat")) == before


def test_errors_are_messages_not_tracebacks(
    capsys: pytest.CaptureFixture[str], ollama_server: Any, tmp_path: Path
) -> None:
    url = ollama_server.url
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1"}\nnot json\n')
    code, _, err = ftrag(capsys, url, "eval", "import", str(bad), "--name", "x")
    assert code == 1 and "line 1: missing question" in err and "line 2:" in err
    assert "Traceback" not in err
    code, _, err = ftrag(capsys, url, "eval", "run", "nothing", "--config", "llama3.2")
    assert code == 1 and "no evaluation set 'nothing'" in err
    code, _, err = ftrag(capsys, url, "eval", "run")
    assert code == 1 and "needs a set name" in err
    code, _, err = ftrag(capsys, url, "eval", "report")
    assert code == 1 and "no evaluation run yet" in err
    code, _, err = ftrag(capsys, url, "eval", "build", "empty")
    assert code == 1 and "no passages" in err
