"""Evaluation runs against the Ollama-protocol test server: scores, the judge, custom prompts,
failures, cancel and resume; the transparent metrics; the report, its CSV/HTML and summary."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.config import Settings
from ftrag_desktop.core import eval_metrics as em
from ftrag_desktop.core.compare import AnswerMetrics, CompareAnswer
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.eval_report import (
    CSV_COLUMNS,
    ConfigRow,
    recommend,
    report_csv,
    report_html,
)
from ftrag_desktop.core.evalset import EvalItem, EvalSet
from ftrag_desktop.core.evalset_build import corpus_chunks
from ftrag_desktop.core.evaluate import (
    EvalConfig,
    EvalError,
    EvalEvent,
    ItemScored,
    RunFinished,
    RunStarted,
    RunStore,
    parse_eval_config,
    resume_evaluation,
    run_evaluation,
    score_answer,
)
from ftrag_desktop.paths import Home
from tests.test_evalset import DOCS, ScriptedModel, docs, system_text

__all__ = ["docs"]

RAG = EvalConfig("llama3.2", rag=True, top_k=3)
PLAIN = EvalConfig("llama3.2", rag=False)


@pytest.fixture
def engine(ftrag_home: Path, ollama_server: Any, docs: Path) -> Iterator[Engine]:
    ollama_server.embed_backend = "hash"
    ollama_server.reply = ScriptedModel()
    eng = Engine(Home(ftrag_home), Settings(ollama_host=ollama_server.url, top_k=3))
    list(eng.sync(docs))
    yield eng
    eng.close()


@pytest.fixture
def evalset(engine: Engine) -> EvalSet:
    """Two answerable questions with their ground-truth chunks, one unanswerable."""
    by_file = {Path(c.path).name: c for c in corpus_chunks(engine.store)}
    items = []
    for index in (0, 1):
        name, _text, question, answer = DOCS[index]
        c = by_file[name]
        items.append(
            EvalItem(f"a{index}", question, answer, True, c.chunk_id, c.path, None, c.text,
                     "generated")
        )  # fmt: skip
    items.append(EvalItem("u0", "Who invented the bicycle?", "", False, origin="unanswerable"))
    return EvalSet("demo", items, version=3)


def last(events: list[EvalEvent]) -> RunFinished:
    assert isinstance(events[-1], RunFinished)
    return events[-1]


def test_a_run_scores_rag_against_the_model_alone(
    engine: Engine, evalset: EvalSet, ollama_server: Any, ftrag_home: Path
) -> None:
    events = list(run_evaluation(engine, evalset, [RAG, PLAIN], judge_model="smollm2:135m"))
    started = events[0]
    assert isinstance(started, RunStarted) and (started.total, started.done) == (6, 0)
    scored = [e for e in events if isinstance(e, ItemScored)]
    assert [e.done for e in scored] == [1, 2, 3, 4, 5, 6]
    # Configuration by configuration, so Ollama loads each model once.
    assert [e.config_index for e in scored] == [0, 0, 0, 1, 1, 1]
    done = last(events)
    assert not done.cancelled and (done.done, done.total) == (6, 6)
    report = done.report
    assert report.complete and (report.answerable, report.unanswerable) == (2, 1)
    assert report.set_name == "demo" and report.set_version == 3
    rag, plain = report.rows
    assert rag.fine_tuned is False  # asked Ollama: llama3.2 is a base model
    assert (rag.answered, rag.errors) == (3, 0)
    assert rag.hit_at_k == 1.0 and rag.mrr is not None and 0 < rag.mrr <= 1.0
    assert rag.correct == 1.0 and rag.containment == 1.0 and rag.f1 is not None
    assert rag.citation_support == 1.0 and rag.cited_answers == 1.0
    assert rag.abstention == 1.0 and rag.false_abstention == 0.0
    assert rag.judge_correct == 1.0 and rag.judged == 2
    assert plain.hit_at_k is None and plain.mrr is None and plain.citation_support is None
    assert plain.correct == 0.0 and plain.judge_correct == 0.0
    assert plain.abstention == 1.0  # "I am not sure." declines
    for row in (rag, plain):
        assert row.first_token_s is not None and row.answer_s is not None
        assert row.tokens_per_s is not None and row.tokens_per_s > 0
    rec = report.recommendation
    assert rec.approach == "rag"
    assert "100% correct against 0% without" in rec.headline
    assert any("found the source passage in the top 3 for 100%" in e for e in rec.evidence)
    assert any("No fine-tuned model was evaluated" in c for c in rec.caveats)

    # The judge is a different model, asked with JSON output; the answers used llama3.2.
    bodies = ollama_server.bodies("/api/chat")
    judged = [b for b in bodies if "You grade answers" in system_text(b["messages"])]
    assert len(judged) == 4 and all(b["model"] == "smollm2:135m" for b in judged)
    assert all(b["format"]["required"] == ["verdict"] for b in judged)

    # Stored: the run's questions, and one line per answer.
    folder = Path(ftrag_home) / "evalruns" / done.run_id
    assert len((folder / "items.jsonl").read_text().splitlines()) == 3
    lines = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {x["config_key"] for x in lines} == {RAG.key, PLAIN.key}
    again = RunStore.for_home(Home(ftrag_home)).report("last")
    assert again.rows == report.rows


def test_the_judge_skips_its_own_model(engine: Engine, evalset: EvalSet) -> None:
    done = last(list(run_evaluation(engine, evalset, [RAG], judge_model="llama3.2:latest")))
    results = RunStore.for_home(engine.home).results(done.run_id)
    assert all(r.judge is None for r in results)
    assert all(
        "the judge is this configuration's model" in r.judge_note for r in results if r.answerable
    )
    assert done.report.rows[0].judge_correct is None


def test_a_configuration_with_its_own_prompt(
    engine: Engine, evalset: EvalSet, ollama_server: Any
) -> None:
    own = EvalConfig("llama3.2", rag=False, system_prompt="Answer like a pirate.")
    done = last(list(run_evaluation(engine, evalset, [own])))
    prompts = [system_text(m) for m in ollama_server.chat_messages()]
    assert prompts == ["Answer like a pirate."] * 3
    assert engine.settings.system_prompt == ""  # the user's settings are untouched
    assert done.report.rows[0].own_prompt and "own prompt" in done.report.rows[0].title


def test_a_missing_model_is_recorded_and_retried_on_resume(
    engine: Engine, evalset: EvalSet, ollama_server: Any
) -> None:
    ghost = EvalConfig("ghost-model", rag=False)
    done = last(list(run_evaluation(engine, evalset, [ghost, PLAIN])))
    ghost_row, plain_row = done.report.rows
    assert (ghost_row.answered, ghost_row.errors) == (
        0,
        3,
    ) and "ghost-model" in ghost_row.first_error
    assert plain_row.answered == 3 and not done.report.complete
    ollama_server.reset()
    ollama_server.reply = ScriptedModel()
    again = list(resume_evaluation(engine, done.run_id))
    assert isinstance(again[0], RunStarted) and again[0].done == 3  # only the failures again
    assert sum(isinstance(e, ItemScored) for e in again) == 3
    assert last(again).report.rows[0].errors == 3  # still missing: recorded again


def test_cancel_then_resume_skips_what_was_answered(
    engine: Engine, evalset: EvalSet, ollama_server: Any
) -> None:
    cancel = threading.Event()
    events: list[EvalEvent] = []
    for ev in run_evaluation(engine, evalset, [RAG, PLAIN], cancel=cancel):
        events.append(ev)
        if isinstance(ev, ItemScored) and ev.done == 2:
            cancel.set()
    done = last(events)
    assert done.cancelled and done.done == 2 and not done.report.complete
    asked = len(ollama_server.bodies("/api/chat"))
    assert asked == 2

    resumed = list(resume_evaluation(engine, "last"))
    start = resumed[0]
    assert isinstance(start, RunStarted) and (start.done, start.total) == (2, 6)
    assert len(ollama_server.bodies("/api/chat")) == asked + 4
    final = last(resumed)
    assert not final.cancelled and final.report.complete and final.done == 6
    assert len(RunStore.for_home(engine.home).results(final.run_id)) == 6


def test_runs_that_cannot_start(engine: Engine, evalset: EvalSet) -> None:
    with pytest.raises(EvalError, match="no questions"):
        run_evaluation(engine, EvalSet("empty"), [RAG])
    with pytest.raises(EvalError, match="nothing to evaluate"):
        run_evaluation(engine, evalset, [])
    with pytest.raises(EvalError, match="the same"):
        run_evaluation(engine, evalset, [RAG, replace(RAG, label="again")])
    with pytest.raises(EvalError, match="no evaluation run 'nope'"):
        resume_evaluation(engine, "nope")


def test_parse_eval_config() -> None:
    c = parse_eval_config("llama3.2:3b:norag", top_k=4, system_prompt="Be brief.")
    assert (c.model, c.rag, c.top_k, c.system_prompt) == ("llama3.2:3b", False, 0, "Be brief.")
    assert parse_eval_config("m", top_k=4).top_k == 4
    assert EvalConfig.from_dict(c.to_dict()) == c and c.key != parse_eval_config("m").key


# ---- scoring rules --------------------------------------------------------------------------


def source(n: int, text: str, chunk: str) -> dict[str, Any]:
    return {"number": n, "text": text, "chunk_id": chunk, "cited": False}


def test_score_answer_finds_the_ground_truth_by_id_or_by_text() -> None:
    item = EvalItem("i", "Q?", "47 seconds", True, "doc:00003", None, None, "The kettle: 47 s.")
    answer = CompareAnswer(
        "m",
        text="After 47 seconds [2].",
        sources=[source(1, "Other text.", "x:1"), source(2, "The kettle:  47 s.", "new:9")],
        metrics=AnswerMetrics(first_token_s=0.1, total_s=0.5, tokens_per_s=20.0),
    )
    r = score_answer(item, RAG, answer, 3)
    assert r.rank == 2 and r.retrieved == ["x:1", "new:9"]  # same text under a new id
    assert r.correct and r.containment == 1.0 and r.citations == 1
    assert r.citations_supported == 0  # "after 47 seconds": "seconds" is not in the source
    failed = score_answer(item, RAG, CompareAnswer("m", error="Ollama down"), 3)
    assert failed.error and failed.correct is None and not failed.ok


def test_token_f1_and_containment() -> None:
    assert em.token_f1("The answer is 80 degrees", "80 degrees") == pytest.approx(2 * 0.5 / 1.5)
    assert em.token_f1("", "") == 1.0 and em.token_f1("x", "") == 0.0
    assert em.containment("Brew it at 80 degrees, for two minutes.", "80 degrees") == 1.0
    assert em.containment("Brew it hot.", "80 degrees") == 0.0
    assert em.containment("Yes, it is.", "it is") == 1.0  # only function words: all count


def test_citation_support_rule() -> None:
    sources = {1: "Green tea is steeped at 80 degrees.", 2: "Coffee needs 9 bar."}
    check = em.citation_support("Green tea is steeped at 80 degrees [1]. See also [2].", sources)
    # "See also [2]" is too short to be a claim: it is checked with the previous sentence.
    assert (check.total, check.supported, check.unsupported) == (2, 1, (2,))
    assert em.citation_support("Coffee needs 9 bar [2][7].", sources).unsupported == (7,)
    assert em.citation_support("No citations here.", sources).rate is None


@pytest.mark.parametrize(
    ("text", "abstains"),
    [
        ("The documents do not say.", True),
        ("I don't know.", True),
        ("That is not in the sources.", True),
        ("There is no information about that.", True),
        ("I cannot answer that from the context.", True),
        ("", True),
        ("Green tea is steeped at 80 degrees [1].", False),
        ("It is 47 seconds [1]. " + "More detail. " * 30 + "The colour is not mentioned.", False),
    ],
)
def test_abstention_rule(text: str, abstains: bool) -> None:
    assert em.is_abstention(text) is abstains


def test_near_duplicates() -> None:
    assert em.near_duplicate("What is the capital of Peru?", "what is capital of peru")
    assert not em.near_duplicate("What is the capital of Peru?", "What is the capital of Chile?")


# ---- report and summary -------------------------------------------------------------------


def row(title: str, *, rag: bool, correct: float, tuned: bool = False, secs: float = 2.0,
        n: int = 40) -> ConfigRow:  # fmt: skip
    return ConfigRow(
        key=title, title=title, model=title, rag=rag, top_k=4 if rag else 0, fine_tuned=tuned,
        own_prompt=False, answered=n + 5, errors=0, answerable=n, unanswerable=5,
        correct=correct, hit_at_k=0.9 if rag else None, mrr=0.7 if rag else None,
        citation_support=0.8 if rag else None, abstention=0.6, answer_s=secs, first_token_s=0.3,
    )  # fmt: skip


def test_recommendation_follows_the_criteria_with_numbers() -> None:
    base_rag = row("base+RAG", rag=True, correct=0.70, secs=3.0)
    base = row("base", rag=False, correct=0.20, secs=1.0)
    tuned = row("tuned", rag=False, correct=0.68, tuned=True, secs=1.0)
    tuned_rag = row("tuned+RAG", rag=True, correct=0.95, tuned=True, secs=3.2)

    rag = recommend([base_rag, base])
    assert rag.approach == "rag" and "70% correct against 20% without" in rag.headline
    assert any("top 4 for 90%" in e and "80% of its citations" in e for e in rag.evidence)

    fine = recommend([base_rag, tuned])
    assert fine.approach == "fine-tuning" and fine.headline.startswith("Fine-tuning")
    assert "1.00 s against 3.00 s" in fine.headline

    hybrid = recommend([base_rag, tuned, tuned_rag])
    assert hybrid.approach == "hybrid" and "95%" in hybrid.headline and "70%" in hybrid.headline

    tie = recommend([base_rag, replace(base, correct=0.66, answer_s=2.9)])
    assert tie.approach == "no clear winner" and "noise margin" in tie.headline
    few = recommend([replace(base_rag, answerable=5), replace(base, answerable=5)])
    assert any(c.startswith("Only 5 answerable questions") for c in few.caveats)
    nothing = recommend([replace(base, answered=0, correct=None, errors=3, first_error="x")])
    assert nothing.approach == "no clear winner" and "nothing to compare" in nothing.headline
    for r in (rag, fine, hybrid, tie):
        assert r.evidence and any("%" in e for e in r.evidence)  # never a bare verdict


def test_csv_and_html_exports(engine: Engine, evalset: EvalSet) -> None:
    labelled = replace(RAG, label="<b>mine</b> & co")
    done = last(list(run_evaluation(engine, evalset, [labelled, PLAIN])))
    text = report_csv(done.report)
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == CSV_COLUMNS and len(table) == 2
    assert table[0]["title"] == "<b>mine</b> & co" and table[0]["hit_at_k"] == "1.0000"
    assert table[1]["hit_at_k"] == "" and table[1]["rag"] == "False"
    page = report_html(done.report)
    assert page.startswith("<!doctype html>") and "<svg" in page and "</html>" in page
    assert "&lt;b&gt;mine&lt;/b&gt; &amp; co" in page and "<b>mine</b>" not in page
    assert done.report.recommendation.headline.split(":")[0] in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


# ---- the real small model -----------------------------------------------------------------


@pytest.mark.slow
def test_real_model_builds_a_set_runs_two_configurations_and_reports(
    ftrag_home: Path, ollama_server: Any, tmp_path: Path
) -> None:
    """SmolLM2-135M through llama-cpp-python behind the test server: weak answers, real work."""
    from ftrag_desktop.core.evalset import EvalSetStore
    from ftrag_desktop.core.evalset_build import BuildFinished, BuildOptions, build_evalset

    ollama_server.chat_backend = "llama"
    ollama_server.embed_backend = "hash"
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "tea.md").write_text(
        "# Tea\n\nGreen tea is steeped at 80 degrees Celsius for two minutes.\n"
    )
    (folder / "kettle.md").write_text(
        "# Kettle\n\nThe Vellum kettle switches itself off after 47 seconds of boiling.\n"
    )
    settings = Settings(ollama_host=ollama_server.url, chat_model="smollm2:135m", top_k=2)
    with Engine(Home(ftrag_home), settings) as eng:
        list(eng.sync(folder))
        options = BuildOptions(questions=2, unanswerable=1, min_chunk_chars=20, num_predict=48)
        built = [e for e in build_evalset(eng, "real", options) if isinstance(e, BuildFinished)]
        evalset = EvalSetStore.for_home(eng.home).save(built[0].evalset)
        assert evalset.version == 1 and evalset.unanswerable  # off-topic ones always come
        for item in evalset.answerable:
            assert item.source_chunk_id and item.source_text and item.answer
        configs = [
            EvalConfig("smollm2:135m", rag=True, top_k=2),
            EvalConfig("smollm2:135m", rag=False),
        ]
        done = last(list(run_evaluation(eng, evalset, configs, num_predict=16)))
        corpus = eng.store.all_chunks()
    report = done.report
    assert report.complete and done.done == 2 * len(evalset.items)
    rag, plain = report.rows
    assert (rag.errors, plain.errors) == (0, 0)
    assert rag.first_token_s is not None and rag.tokens_per_s is not None
    assert (rag.hit_at_k is not None) == bool(evalset.answerable)
    assert plain.hit_at_k is None and plain.citation_support is None
    assert report.recommendation.evidence
    assert "<svg" in report_html(report) and len(report_csv(report).splitlines()) == 3

    # The training set for the user's own fine-tune: RAFT examples from this set, in the
    # chat-messages format the common tools read.
    from ftrag_desktop.core.evalset import write_jsonl
    from ftrag_desktop.core.finetune_export import ExportOptions, Kind, build_dataset, write_export
    from ftrag_desktop.core.finetune_input import read_eval_set
    from tests.test_finetune_export import validate_trl

    exported_set = tmp_path / "set.jsonl"  # as `ftrag eval export` writes it
    write_jsonl(evalset, exported_set)
    raft = ExportOptions(kind=Kind.RAFT, val_fraction=0.0, distractors=1)
    data = build_dataset(read_eval_set(exported_set), corpus, raft)
    out = tmp_path / "finetune"
    write_export(data, out, raft, document_roots=[folder])
    lines = (out / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(evalset.items)
    assert validate_trl(lines) == []
    oracles = {item.source_text for item in evalset.answerable}
    users = [json.loads(line)["messages"][1]["content"] for line in lines]
    assert sum(1 for u in users if any(o and o in u for o in oracles)) >= 1
