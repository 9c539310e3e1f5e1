"""Fine-tuning export: reading evaluation sets, RAFT examples, the split, dedup, every format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.core.answer import NO_ANSWER, SYSTEM_PROMPT, parse_citations
from ftrag_desktop.core.finetune_export import (
    Dataset,
    EvalItem,
    EvalSetInvalid,
    ExportLocationError,
    ExportOptions,
    Format,
    Kind,
    build_dataset,
    cite,
    preview,
    read_eval_set,
    write_export,
)
from ftrag_desktop.core.types import Hit

DOCS = ["tea.md", "coffee.md", "bread.md", "cheese.md", "wine.md", "rice.md"]


def _item(n: int, doc: str, **kw: Any) -> dict[str, Any]:
    base = {
        "id": f"q{n}",
        "question": f"What does passage {n} of {doc} say?",
        "answer": f"It says fact number {n}.",
        "answerable": True,
        "source_chunk_id": f"{doc}:{n:05d}",
        "source_doc": f"/docs/{doc}",
        "source_page": None,
        "source_text": f"Passage {n} of {doc} states fact number {n} in plain words.",
        "origin": "generated",
        "edited": False,
    }
    base.update(kw)
    return base


def _unanswerable(n: int) -> dict[str, Any]:
    return _item(
        n,
        "-",
        id=f"u{n}",
        question=f"Who won the chess olympiad number {n}?",
        answer="",
        answerable=False,
        source_chunk_id=None,
        source_doc=None,
        source_text=None,
        origin="unanswerable",
    )


def _records(
    per_doc: int = 4, docs: list[str] = DOCS, unanswerable: int = 3
) -> list[dict[str, Any]]:
    out = [_item(i * 10 + j, doc) for i, doc in enumerate(docs) for j in range(per_doc)]
    return out + [_unanswerable(900 + k) for k in range(unanswerable)]


def _items(records: list[dict[str, Any]]) -> list[EvalItem]:
    return [EvalItem(**r) for r in records]


def _write_set(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- the tools' requirements
# Written from each tool's documentation, independently of the exporter's own guard.


def _messages_ok(ex: Any, allowed_keys: set[str]) -> bool:
    msgs = ex.get("messages") if isinstance(ex, dict) else None
    return (
        isinstance(msgs, list)
        and len(msgs) > 0
        and all(
            isinstance(m, dict)
            and set(m) <= allowed_keys
            and m.get("role") in ("system", "user", "assistant")
            and isinstance(m.get("content"), str)
            and m["content"].strip() != ""
            for m in msgs
        )
    )


def validate_trl(lines: list[str]) -> list[str]:
    """TRL conversational language modeling: {"messages": [{"role", "content"}, ...]}."""
    bad = []
    for n, line in enumerate(lines, 1):
        ex = json.loads(line)
        if set(ex) != {"messages"} or not _messages_ok(ex, {"role", "content"}):
            bad.append(f"line {n}")
    return bad


def validate_axolotl(lines: list[str]) -> list[str]:
    """chat_template: `messages` (the default field_messages), assistant turns to train on."""
    bad = []
    for n, line in enumerate(lines, 1):
        ex = json.loads(line)
        ok = _messages_ok(ex, {"role", "content"})
        if not ok or not any(m["role"] == "assistant" for m in ex["messages"]):
            bad.append(f"line {n}")
    return bad


def validate_mlx(folder: Path) -> list[str]:
    """train.jsonl + valid.jsonl by name, one whole chat example per line, answer last."""
    bad = []
    for name in ("train.jsonl", "valid.jsonl"):
        path = folder / name
        if not path.is_file() or not path.read_text(encoding="utf-8").strip():
            bad.append(f"{name} missing or empty")
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").split("\n")[:-1], 1):
            ex = json.loads(line)
            if not _messages_ok(ex, {"role", "content"}) or ex["messages"][-1]["role"] != (
                "assistant"
            ):
                bad.append(f"{name} line {n}")
    return bad


def validate_openai(lines: list[str]) -> list[str]:
    """The cookbook's checks: keys, roles, string content, an assistant message; >= 10 lines."""
    bad = [] if len(lines) >= 10 else ["fewer than 10 examples"]
    for n, line in enumerate(lines, 1):
        ex = json.loads(line)
        keys = {"role", "content", "name", "function_call", "weight"}
        if not isinstance(ex, dict) or not _messages_ok(ex, keys):
            bad.append(f"line {n}")
        elif not any(m["role"] == "assistant" for m in ex["messages"]):
            bad.append(f"line {n}: no assistant message")
    return bad


def test_the_test_validators_reject_what_the_tools_reject() -> None:
    good = json.dumps(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    )
    no_assistant = json.dumps({"messages": [{"role": "user", "content": "q"}]})
    bad_role = json.dumps(
        {"messages": [{"role": "human", "content": "q"}, {"role": "assistant", "content": "a"}]}
    )
    extra_key = json.dumps({"messages": json.loads(good)["messages"], "id": "x"})
    assert validate_trl([good]) == [] and validate_trl([extra_key]) == ["line 1"]
    assert validate_axolotl([no_assistant]) == ["line 1"]
    assert validate_trl([bad_role]) == ["line 1"]
    assert validate_openai([good] * 10) == []
    assert validate_openai([good] * 9) == ["fewer than 10 examples"]


# ---------------------------------------------------------------- reading sets


def test_read_eval_set_reports_every_bad_line_with_its_number(tmp_path: Path) -> None:
    good = _item(1, "tea.md")
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({k: v for k, v in _item(2, "tea.md").items() if k != "answerable"}),
        json.dumps(_item(3, "tea.md", source_page="7")),
        json.dumps(_item(4, "tea.md", answer="  ")),
        "",
        json.dumps(_item(1, "tea.md", question="Another question with a reused id?")),
        json.dumps(_item(6, "tea.md", origin="made-up")),
        json.dumps(["a list"]),
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(EvalSetInvalid) as info:
        read_eval_set(path)
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "line 2",
        "line 3",
        "line 4",
        "line 5",
        "line 7",
        "line 8",
        "line 9",
    ]
    assert "missing 'answerable'" in problems[1]
    assert "'source_page' must be int or null" in problems[2]
    assert "needs an answer" in problems[3]
    assert "already used on line 1" in problems[4]
    assert "line 2" in str(info.value) and info.value.hint


def test_read_eval_set_reads_the_schema(tmp_path: Path) -> None:
    records = [_item(1, "tea.md", source_page=3), _unanswerable(2)]
    items = read_eval_set(_write_set(tmp_path / "s.jsonl", records))
    assert items[0].source_page == 3 and items[0].answerable
    assert items[1].answer == "" and items[1].origin == "unanswerable"


# ---------------------------------------------------------------- building


def test_dedup_on_normalised_question_text() -> None:
    records = _records(per_doc=2, docs=DOCS[:3], unanswerable=0)
    records.append(_item(500, "tea.md", question="  what DOES passage 0 of tea.md say "))
    records.append(_item(501, "tea.md", question="What does passage 0, of tea.md, say??"))
    data = build_dataset(_items(records), None, ExportOptions(kind=Kind.QA, val_fraction=0.0))
    assert data.duplicates == 2
    questions = [e.messages[1][1] for e in data.train]
    assert len(questions) == 6 and "  what DOES passage 0 of tea.md say " not in questions
    assert preview(data, Format.CHAT).duplicates == 2


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_split_keeps_each_document_and_its_passages_on_one_side(seed: int) -> None:
    records = _records()
    data = build_dataset(
        _items(records), None, ExportOptions(kind=Kind.BOTH, val_fraction=0.3, seed=seed)
    )
    assert data.leak_free and data.valid and data.train
    train_docs = {e.source_doc for e in data.train if e.source_doc}
    valid_docs = {e.source_doc for e in data.valid if e.source_doc}
    assert train_docs and valid_docs and not train_docs & valid_docs
    # No passage of a validation document is quoted in training (as oracle or distractor).
    valid_texts = [r["source_text"] for r in records if r["source_doc"] in valid_docs]
    train_prompts = "\n".join(e.messages[1][1] for e in data.train)
    assert not any(text in train_prompts for text in valid_texts)
    # Both kinds of a question stay on the same side.
    assert {e.item_id for e in data.train}.isdisjoint({e.item_id for e in data.valid})


def test_split_is_seeded() -> None:
    items = _items(_records())
    a = build_dataset(items, None, ExportOptions(val_fraction=0.3, seed=7))
    b = build_dataset(items, None, ExportOptions(val_fraction=0.3, seed=7))
    c = build_dataset(items, None, ExportOptions(val_fraction=0.3, seed=8))
    assert a.train == b.train and a.valid == b.valid
    assert [e.messages for e in a.train] != [e.messages for e in c.train]


def test_one_document_falls_back_to_a_question_split_and_says_so() -> None:
    records = _records(per_doc=10, docs=["only.md"], unanswerable=0)
    data = build_dataset(_items(records), None, ExportOptions(kind=Kind.QA, val_fraction=0.2))
    assert not data.leak_free and len(data.valid) == 2 and len(data.train) == 8
    assert any("one document" in w for w in data.warnings)
    assert not preview(data, Format.CHAT).leak_free


def _raft(data: Dataset) -> list[Any]:
    return [e for e in [*data.train, *data.valid] if e.kind.startswith("raft")]


def test_raft_examples_quote_the_oracle_once_and_cite_its_number() -> None:
    records = _records(per_doc=5)
    by_id = {r["id"]: r for r in records}
    data = build_dataset(
        _items(records), None, ExportOptions(kind=Kind.RAFT, val_fraction=0.2, distractors=3)
    )
    examples = _raft(data)
    assert {e.kind for e in examples} == {"raft", "raft-no-oracle", "raft-abstain"}
    for e in examples:
        system, user, answer = (content for _role, content in e.messages)
        assert system == SYSTEM_PROMPT
        oracle = by_id[e.item_id]["source_text"]
        n_sources = user.count("\n<<<\n")
        assert n_sources == e.sources
        if e.kind == "raft":
            assert user.count(oracle) == 1
            assert parse_citations(answer, n_sources) == [e.oracle_number]
            block = user.split(f"[{e.oracle_number}] (", 1)[1].split(">>>", 1)[0]
            assert oracle in block  # the cited number is the oracle's
            assert answer.startswith(by_id[e.item_id]["answer"].rstrip("."))
        elif e.kind == "raft-no-oracle":
            assert oracle not in user and answer == NO_ANSWER
        else:
            assert answer == NO_ANSWER and e.item_id.startswith("u")
        # Distractors never come from the oracle's own document.
        doc = by_id[e.item_id]["source_doc"]
        if doc:
            names_in_prompt = [line for line in user.splitlines() if line.startswith("[")]
            own = [n for n in names_in_prompt if Path(doc).name in n]
            assert len(own) == (1 if e.kind == "raft" else 0)


def test_no_oracle_fraction_is_exact_per_split() -> None:
    data = build_dataset(
        _items(_records(per_doc=5, unanswerable=0)),
        None,
        ExportOptions(kind=Kind.RAFT, val_fraction=0.0, no_oracle_fraction=0.2),
    )
    kinds = [e.kind for e in data.train]
    assert kinds.count("raft-no-oracle") == round(0.2 * 30) == 6
    papers = build_dataset(
        _items(_records(per_doc=5, unanswerable=0)),
        None,
        ExportOptions(kind=Kind.RAFT, val_fraction=0.0, no_oracle_answer="answer"),
    )
    no_oracle = [e for e in papers.train if e.kind == "raft-no-oracle"]
    assert no_oracle and all(e.messages[-1][1].startswith("It says fact") for e in no_oracle)


def test_qa_examples_mirror_the_plain_prompt_and_abstain_when_unanswerable() -> None:
    options = ExportOptions(kind=Kind.QA, val_fraction=0.0, system_prompt="Be a pirate.")
    data = build_dataset(_items(_records(per_doc=1, docs=DOCS[:2], unanswerable=1)), None, options)
    roles = [[r for r, _c in e.messages] for e in data.train]
    assert roles == [["system", "user", "assistant"]] * 3
    assert all(e.messages[0][1] == "Be a pirate." for e in data.train)
    assert data.train[-1].messages[-1][1] == NO_ANSWER and data.train[-1].kind == "qa-abstain"


def test_corpus_labels_oracles_and_supplies_distractors() -> None:
    records = _records(per_doc=2, docs=DOCS[:2], unanswerable=0)
    corpus = [
        Hit(r["source_chunk_id"], "d", r["source_doc"], r["source_text"], 0.0, page=4)
        for r in records
    ] + [Hit(f"other:{i}", "o", "/docs/other.md", f"Unrelated passage {i}.", 0.0) for i in range(6)]
    data = build_dataset(
        _items(records), corpus, ExportOptions(kind=Kind.RAFT, val_fraction=0.0, distractors=4)
    )
    raft = [e for e in data.train if e.kind == "raft"]
    assert raft and all(e.sources == 5 for e in raft)
    assert all(f"[{e.oracle_number}] (" in e.messages[1][1] for e in raft)
    assert any(", p. 4)" in e.messages[1][1] for e in raft)  # the index's label, with its page


def test_cite_puts_the_marker_before_the_final_stop_and_drops_old_ones() -> None:
    assert cite("Green tea wants 80 degrees.", 2) == "Green tea wants 80 degrees [2]."
    assert cite("It is blue [4]", 1) == "It is blue [1]"
    assert cite("Index arr[0] is first!", 3) == "Index arr[0] is first [3]!"


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_is_written_in_a_shape_its_tool_accepts(tmp_path: Path, fmt: Format) -> None:
    options = ExportOptions(kind=Kind.BOTH, format=fmt, val_fraction=0.2, seed=3)
    data = build_dataset(_items(_records()), None, options)
    out = tmp_path / "export"
    result = write_export(data, out, options, inputs=["set.jsonl"])
    assert result.problems == []
    train = (out / "train.jsonl").read_text(encoding="utf-8").splitlines()
    valid = (out / "valid.jsonl").read_text(encoding="utf-8").splitlines()
    validator = {
        Format.CHAT: validate_trl,
        Format.AXOLOTL: validate_axolotl,
        Format.OPENAI: validate_openai,
    }.get(fmt)
    if validator is not None:
        assert validator(train) == [] and validator(valid) == []
    else:
        assert validate_mlx(out) == []
    readme = (out / "README.md").read_text(encoding="utf-8")
    first_tool = readme.split("\n## ")[2]  # after the title and "What the examples teach"
    expected = {
        Format.CHAT: "Unsloth",
        Format.AXOLOTL: "Axolotl",
        Format.MLX: "MLX",
        Format.OPENAI: "OpenAI",
    }
    assert first_tool.startswith(expected[fmt])
    for needle in ("mlx_lm.lora", "type: chat_template", "SFTTrainer", 'purpose="fine-tune"'):
        assert needle in readme
    assert "https://" in readme.split("## Sources for these instructions")[1]


def test_preview_matches_the_files_written(tmp_path: Path) -> None:
    options = ExportOptions(kind=Kind.BOTH, val_fraction=0.25)
    data = build_dataset(_items(_records()), None, options)
    dry = preview(data, options.format)
    written = write_export(data, tmp_path / "x", options)
    assert dry == written
    for split, name in ((dry.train, "train.jsonl"), (dry.valid, "valid.jsonl")):
        path = tmp_path / "x" / name
        assert path.stat().st_size == split.bytes
        rows = _lines(path)
        assert len(rows) == split.examples == sum(split.kinds.values())
        text = "".join(m["content"] for r in rows for m in r["messages"])
        assert split.chars == len(text)
        assert split.approx_tokens >= len(text) // 4 and split.max_example_tokens > 0
    meta = _lines(tmp_path / "x" / "metadata.jsonl")
    assert len(meta) == dry.train.examples + dry.valid.examples
    manifest = json.loads((tmp_path / "x" / "export.json").read_text(encoding="utf-8"))
    assert manifest["preview"]["train"]["bytes"] == dry.train.bytes


def test_export_refuses_unsafe_folders_and_bad_datasets(tmp_path: Path) -> None:
    options = ExportOptions(kind=Kind.QA, val_fraction=0.2)
    data = build_dataset(_items(_records()), None, options)
    docs = tmp_path / "docs"
    docs.mkdir()
    with pytest.raises(ExportLocationError, match="indexed documents"):
        write_export(data, docs / "training", options, document_roots=[docs])
    assert not (docs / "training").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ExportLocationError, match="not an earlier export"):
        write_export(data, busy, options)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    # An earlier export folder is replaced.
    write_export(data, tmp_path / "again", options)
    write_export(data, tmp_path / "again", options)
    # Too few examples for OpenAI: nothing written.
    small = build_dataset(
        _items(_records(per_doc=1, docs=DOCS[:3], unanswerable=0)),
        None,
        ExportOptions(format=Format.OPENAI, kind=Kind.QA, val_fraction=0.0),
    )
    with pytest.raises(Exception, match="at least 10"):
        write_export(small, tmp_path / "small", ExportOptions(format=Format.OPENAI))
    assert not (tmp_path / "small").exists()
