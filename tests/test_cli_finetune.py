"""`ftrag export-finetune`: JSON preview, dry runs, the index as corpus, refusals, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.cli import main
from ftrag_desktop.core.answer import parse_citations
from ftrag_desktop.core.store import Store

NO_SERVER = "http://127.0.0.1:9"  # nothing listens: the export needs no Ollama


def ftrag(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main(["--ollama-host", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def _record(n: int, doc: str, text: str, chunk_id: str, page: int | None = None) -> dict[str, Any]:
    return {
        "id": f"q{n}",
        "question": f"What is said in passage {n}?",
        "answer": f"Fact {n}.",
        "answerable": True,
        "source_chunk_id": chunk_id,
        "source_doc": doc,
        "source_page": page,
        "source_text": text,
        "origin": "generated",
        "edited": False,
    }


def _set(tmp_path: Path, docs: int = 4, per_doc: int = 3) -> Path:
    records = [
        _record(d * 10 + j, f"/docs/d{d}.md", f"Doc {d} passage {j} text.", f"d{d}:{j:05d}")
        for d in range(docs)
        for j in range(per_doc)
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_dry_run_json_previews_exactly_what_a_real_run_writes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ftrag_home: Path
) -> None:
    sets = str(_set(tmp_path))
    args = ["export-finetune", "--from", sets, "--kind", "both", "--val-fraction", "0.25"]
    code, out, _ = ftrag(capsys, NO_SERVER, *args, "--dry-run", "--json")
    dry = json.loads(out)
    assert code == 0 and dry["dry_run"] and dry["out"] is None
    assert not (ftrag_home / "finetune").exists()
    assert dry["train"]["examples"] + dry["valid"]["examples"] == 24  # 12 questions, 2 kinds
    assert "characters" in dry["token_rule"] and dry["leak_free"]

    code, out, _ = ftrag(capsys, NO_SERVER, *args, "--json")
    real = json.loads(out)
    out_dir = Path(real["out"])
    assert code == 0 and out_dir.parent == (ftrag_home / "finetune").resolve()
    for split in ("train", "valid"):
        assert real[split] == dry[split]
        assert (out_dir / f"{split}.jsonl").stat().st_size == real[split]["bytes"]
    assert (out_dir / "README.md").is_file()


def test_human_output_and_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sets = str(_set(tmp_path))
    code, out, _ = ftrag(capsys, NO_SERVER, "export-finetune", "--from", sets, "--dry-run")
    assert code == 0 and "train.jsonl" in out and "Dry run" in out
    with pytest.raises(SystemExit) as info:
        main(["export-finetune", "--from", sets, "--val-fraction", "1.5"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["export-finetune"])  # --from is required
    capsys.readouterr()


def test_bad_set_lines_are_reported_with_numbers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    good = _record(1, "/docs/a.md", "text", "a:00000")
    path.write_text(json.dumps(good) + "\n{oops\n" + json.dumps({"id": "x"}) + "\n")
    code, out, err = ftrag(capsys, NO_SERVER, "export-finetune", "--from", str(path), "--json")
    assert code == 1 and out == ""
    assert "line 2: not JSON" in err and "line 3: missing 'question'" in err
    assert "hint:" in err and "Traceback" not in err


def test_openai_export_too_small_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ftrag_home: Path
) -> None:
    sets = str(_set(tmp_path, docs=2, per_doc=2))
    code, _, err = ftrag(
        capsys, NO_SERVER, "export-finetune", "--from", sets, "--format", "openai", "--kind", "qa"
    )
    assert code == 1 and "at least 10" in err
    assert not list((ftrag_home / "finetune").glob("*/train.jsonl"))


def test_corpus_export_labels_sources_from_the_index_and_never_writes_beside_documents(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ftrag_home: Path, ollama_server: Any
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    topics = {
        "tea.md": "Green tea is steeped at 80 degrees for two minutes.",
        "coffee.md": "Espresso needs finely ground coffee and 9 bar of pressure.",
        "bread.md": "Sourdough rises overnight in a cool kitchen.",
        "cheese.md": "Cheddar is aged for at least nine months.",
        "rice.md": "Risotto rice is toasted before the stock goes in.",
    }
    for name, text in topics.items():
        (folder / name).write_text(f"# {name}\n\n{text}\n", encoding="utf-8")
    assert ftrag(capsys, ollama_server.url, "index", str(folder), "-q")[0] == 0

    with Store(ftrag_home / "index", read_only=True) as store:
        chunks = store.all_chunks()
    assert len(chunks) >= 5 and all(c.chunk_id and c.text for c in chunks)
    records = [
        _record(n, c.path, c.text, c.chunk_id, c.page) for n, c in enumerate(chunks, start=1)
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    base = ["export-finetune", "--from", str(path), "--corpus", "--kind", "raft"]
    code, _, err = ftrag(capsys, ollama_server.url, *base, "--out", str(folder / "training"))
    assert code == 1 and "indexed documents" in err
    assert not (folder / "training").exists()

    out_dir = tmp_path / "export"
    code, out, _ = ftrag(
        capsys,
        ollama_server.url,
        *base,
        "--out",
        str(out_dir),
        "--distractors",
        "2",
        "--no-oracle-fraction",
        "0",
        "--val-fraction",
        "0",
        "--json",
    )
    doc = json.loads(out)
    assert code == 0 and doc["train"]["kinds"] == {"raft": len(records)}
    meta = [json.loads(line) for line in (out_dir / "metadata.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in (out_dir / "train.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in records}
    for m, row in zip(meta, rows, strict=True):
        user, answer = row["messages"][1]["content"], row["messages"][2]["content"]
        assert user.count("<<<\n") == 3 == m["sources"]
        oracle_doc = Path(by_id[m["id"]]["source_doc"]).name
        # The index's own label for the oracle, once; the distractors come from other files.
        assert user.count(f"({oracle_doc}") == 1
        assert f"[{m['oracle_number']}] ({oracle_doc}" in user
        assert parse_citations(answer, 3) == [m["oracle_number"]]
