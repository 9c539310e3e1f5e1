"""Evaluation runs: every question of a set answered by every configuration, scored, stored.

A configuration (`EvalConfig`) is a model (a base model or any imported fine-tuned one), RAG
on or off, a top-k and a system prompt.  `run_evaluation(engine, evalset, configs)` answers each
question with each configuration through the comparison runner (`compare.run_comparison`, one
configuration per call, so its figures are the comparison's: time to first token, tokens/s,
total time), scores the answer with the transparent rules of `eval_metrics`, and yields
progress events.  Configurations run one after another over all questions (so Ollama loads
each model once); the last event is `RunFinished` with the report (`eval_report`).

Scores per answer (see `eval_metrics` for each rule):

- retrieval, for answerable questions with RAG on: the rank of the ground-truth chunk among
  the retrieved passages (hit@k: it is there; MRR: 1/rank).  A passage counts as the
  ground truth when its chunk id is the item's `source_chunk_id`, or its text is the item's
  `source_text` (the same passage under a new id after the folder was re-indexed);
- correctness, for answerable questions: token F1 and key-fact containment against the
  reference; correct when containment >= `CORRECT_CONTAINMENT`;
- optionally an **LLM judge**: a *different* local model (`judge_model`) says "correct" or
  "incorrect" given the question, the reference and the answer.  It is reported in its own
  column, labelled with the judge's name; a configuration that uses the judge's own model is
  not judged;
- citation support, RAG on: the share of `[n]` citations whose source contains the claim;
- abstention: whether the answer declines (refusal patterns); the rate on unanswerable
  questions is the abstention score, on answerable ones the false-abstention rate.

**Stored and resumable.**  A run lives in ``<home>/evalruns/<run id>/``: ``run.json`` (the
configurations, the set's name and version, the judge), ``items.jsonl`` (a copy of the
questions, so the run does not depend on the set staying as it was) and ``results.jsonl``, one
line appended per answered (question, configuration) as soon as it is scored.  Cancelling
(`cancel.set()`) stops the current answer; it is not recorded, and `resume_evaluation`
continues where the run stopped, skipping every pair that has a result (failed pairs are
tried again).  Nothing here touches Qt.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ftrag_desktop.core.compare import (
    AnswerMetrics,
    CompareAnswer,
    CompareConfig,
    ConfigFinished,
    parse_config,
    run_comparison,
)
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.eval_metrics import (
    CORRECT_CONTAINMENT,
    citation_support,
    containment,
    is_abstention,
    normalise,
    token_f1,
)
from ftrag_desktop.core.eval_report import EvalReport, build_report
from ftrag_desktop.core.evalset import EvalItem, EvalSet, items_from_jsonl, items_to_jsonl
from ftrag_desktop.core.llm import normalize_model_name
from ftrag_desktop.errors import OllamaError, UserError
from ftrag_desktop.paths import Home

__all__ = [
    "EvalConfig",
    "EvalError",
    "EvalEvent",
    "ItemResult",
    "ItemScored",
    "ItemStarted",
    "RunFinished",
    "RunInfo",
    "RunStarted",
    "RunStore",
    "judge_answer",
    "parse_eval_config",
    "resume_evaluation",
    "run_evaluation",
    "score_answer",
]

DEFAULT_NUM_PREDICT = 256
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["correct", "incorrect"]}},
    "required": ["verdict"],
}
JUDGE_SYSTEM = (
    "You grade answers. Given a question, a reference answer and a candidate answer, decide "
    "whether the candidate gives the same facts as the reference. Ignore style and length. "
    'Reply with JSON only: {"verdict": "correct"} or {"verdict": "incorrect"}.'
)


class EvalError(UserError):
    """An evaluation that cannot start or resume."""


@dataclass(frozen=True)
class EvalConfig:
    """One way of answering under evaluation.

    `top_k` 0 means the settings' top_k; `system_prompt` "" means the settings' prompt (or the
    built-in one).  `fine_tuned` None means "ask Ollama when the run starts" (an imported
    fine-tuned model says so in its lineage); the report's summary uses it.
    """

    model: str
    rag: bool = True
    top_k: int = 0
    system_prompt: str = ""
    label: str = ""
    fine_tuned: bool | None = None

    @property
    def key(self) -> str:
        """A short id that names this configuration in the run's result lines."""
        raw = json.dumps([self.model, self.rag, self.top_k, self.system_prompt])
        return hashlib.sha1(raw.encode()).hexdigest()[:10]

    def title(self) -> str:
        if self.label:
            return self.label
        base = CompareConfig(self.model, self.rag, self.top_k).title()
        return f"{base}, own prompt" if self.system_prompt else base

    def compare_config(self) -> CompareConfig:
        return CompareConfig(self.model, rag=self.rag, top_k=self.top_k, label=self.label)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EvalConfig:
        ft = raw.get("fine_tuned")
        return cls(
            model=str(raw.get("model") or ""),
            rag=bool(raw.get("rag", True)),
            top_k=int(raw.get("top_k") or 0),
            system_prompt=str(raw.get("system_prompt") or ""),
            label=str(raw.get("label") or ""),
            fine_tuned=None if ft is None else bool(ft),
        )


def parse_eval_config(spec: str, *, top_k: int = 0, system_prompt: str = "") -> EvalConfig:
    """`MODEL`, `MODEL:rag` or `MODEL:norag`, as `ftrag compare --config` reads them."""
    c = parse_config(spec, top_k=top_k)
    return EvalConfig(c.model, rag=c.rag, top_k=c.top_k, system_prompt=system_prompt)


@dataclass
class ItemResult:
    """The scored answer of one configuration to one question (one line of results.jsonl).

    Scores that do not apply are None: retrieval without RAG or for unanswerable questions,
    correctness for unanswerable ones, citations without RAG, the judge when not asked.
    """

    item_id: str
    config_key: str
    answerable: bool
    answer: str = ""
    error: str = ""
    retrieved: list[str] = field(default_factory=list)  # chunk ids, best first
    rank: int | None = None  # of the ground-truth chunk among `retrieved`, 1-based
    k: int = 0
    f1: float | None = None
    containment: float | None = None
    correct: bool | None = None
    judge: bool | None = None
    judge_note: str = ""
    citations: int | None = None
    citations_supported: int | None = None
    abstained: bool = False
    first_token_s: float | None = None
    tokens_per_s: float | None = None
    total_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    retrieval_s: float = 0.0
    finished_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return not self.error

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ItemResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        return cls(**values)


@dataclass(frozen=True)
class RunInfo:
    """What a run evaluates: the run.json of its folder."""

    id: str
    set_name: str
    set_version: int
    configs: list[EvalConfig]
    judge_model: str = ""
    num_predict: int = DEFAULT_NUM_PREDICT
    items: int = 0
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["configs"] = [c.to_dict() for c in self.configs]
        return doc

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunInfo:
        return cls(
            id=str(raw["id"]),
            set_name=str(raw.get("set_name") or ""),
            set_version=int(raw.get("set_version") or 0),
            configs=[EvalConfig.from_dict(c) for c in raw["configs"]],
            judge_model=str(raw.get("judge_model") or ""),
            num_predict=int(raw.get("num_predict") or DEFAULT_NUM_PREDICT),
            items=int(raw.get("items") or 0),
            created_at=float(raw.get("created_at") or 0.0),
        )


# ---- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    total: int  # (question, configuration) pairs
    done: int  # already answered by an earlier session of this run
    configs: list[EvalConfig]


@dataclass(frozen=True)
class ItemStarted:
    run_id: str
    config_index: int
    item_id: str
    question: str
    done: int
    total: int


@dataclass(frozen=True)
class ItemScored:
    run_id: str
    config_index: int
    result: ItemResult
    done: int
    total: int


@dataclass(frozen=True)
class RunFinished:
    """Always last.  `cancelled`: stopped part-way (resume it); the report covers what was
    answered so far."""

    run_id: str
    report: EvalReport
    cancelled: bool
    done: int
    total: int
    seconds: float


EvalEvent = RunStarted | ItemStarted | ItemScored | RunFinished


# ---- storage -------------------------------------------------------------------------------


class RunStore:
    """The evaluation runs of one data home: ``<home>/evalruns/<id>/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_home(cls, home: Home) -> RunStore:
        return cls(home.root / "evalruns")

    def create(self, info: RunInfo, items: Sequence[EvalItem]) -> None:
        folder = self.root / info.id
        try:
            folder.mkdir(parents=True, exist_ok=False)
            (folder / "items.jsonl").write_text(items_to_jsonl(items), encoding="utf-8")
            tmp = folder / ".run.json.tmp"
            tmp.write_text(json.dumps(info.to_dict(), indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, folder / "run.json")
        except OSError as exc:
            raise EvalError(
                f"The evaluation run could not be stored: {exc.strerror or exc}.",
                f"Check that {self.root} is writable and the disk is not full.",
            ) from exc

    def ids(self) -> list[str]:
        """Every run with a run.json, newest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if (p / "run.json").is_file()]
        found.sort(key=lambda p: (p / "run.json").stat().st_mtime, reverse=True)
        return [p.name for p in found]

    def resolve(self, run_id: str) -> str:
        """`last` (or "") for the newest run, else the id itself, checked to exist."""
        if run_id in ("", "last"):
            ids = self.ids()
            if not ids:
                raise EvalError(
                    "There is no evaluation run yet.", "Start one with `ftrag eval run`."
                )
            return ids[0]
        if not re.fullmatch(r"[\w-]+", run_id) or not (self.root / run_id / "run.json").is_file():
            raise EvalError(
                f"There is no evaluation run '{run_id}'.",
                "Use the run id that `ftrag eval run` printed, or `last`.",
            )
        return run_id

    def info(self, run_id: str) -> RunInfo:
        run_id = self.resolve(run_id)
        try:
            raw = json.loads((self.root / run_id / "run.json").read_text(encoding="utf-8"))
            return RunInfo.from_dict(raw)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EvalError(
                f"The evaluation run '{run_id}' cannot be read ({exc}).",
                "Start a new run; this one's files are damaged.",
            ) from exc

    def items(self, run_id: str) -> list[EvalItem]:
        path = self.root / self.resolve(run_id) / "items.jsonl"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EvalError(
                f"The questions of run '{run_id}' cannot be read: {exc.strerror or exc}.",
                "Start a new run.",
            ) from exc
        return items_from_jsonl(text, origin=f"run {run_id}")

    def results(self, run_id: str) -> list[ItemResult]:
        """The stored results; for a pair answered twice (a failure tried again) the last one.
        A line cut short by a crash is skipped."""
        path = self.root / self.resolve(run_id) / "results.jsonl"
        latest: dict[tuple[str, str], ItemResult] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                result = ItemResult.from_dict(json.loads(line))
            except (ValueError, TypeError):
                continue
            latest[(result.item_id, result.config_key)] = result
        return list(latest.values())

    def append(self, run_id: str, result: ItemResult) -> None:
        path = self.root / run_id / "results.jsonl"
        try:
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
                f.flush()
        except OSError as exc:
            raise EvalError(
                f"A result could not be stored: {exc.strerror or exc}.",
                "Free some disk space, then resume the run.",
            ) from exc

    def report(self, run_id: str) -> EvalReport:
        info = self.info(run_id)
        return build_report(info, self.items(info.id), self.results(info.id))


# ---- scoring -------------------------------------------------------------------------------


def _is_ground_truth(source: Mapping[str, Any], item: EvalItem) -> bool:
    if item.source_chunk_id and source.get("chunk_id") == item.source_chunk_id:
        return True
    text = source.get("text")
    return bool(item.source_text and text and normalise(str(text)) == normalise(item.source_text))


def score_answer(item: EvalItem, config: EvalConfig, answer: CompareAnswer, k: int) -> ItemResult:
    """Score one answer with the transparent rules (see the module docstring)."""
    m: AnswerMetrics = answer.metrics
    result = ItemResult(
        item_id=item.id,
        config_key=config.key,
        answerable=item.answerable,
        answer=answer.text,
        error=answer.error,
        retrieved=[str(s.get("chunk_id") or "") for s in answer.sources],
        k=k if config.rag else 0,
        first_token_s=m.first_token_s,
        tokens_per_s=m.tokens_per_s,
        total_s=m.total_s,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        retrieval_s=m.retrieval_s,
    )
    if answer.error:
        return result
    result.abstained = is_abstention(answer.text)
    if item.answerable:
        result.f1 = token_f1(answer.text, item.answer)
        result.containment = containment(answer.text, item.answer)
        result.correct = result.containment >= CORRECT_CONTAINMENT and not result.abstained
        if config.rag and (item.source_chunk_id or item.source_text):
            result.rank = next(
                (i for i, s in enumerate(answer.sources, 1) if _is_ground_truth(s, item)), None
            )
    if config.rag:
        texts = {int(s["number"]): str(s.get("text") or "") for s in answer.sources}
        check = citation_support(answer.text, texts)
        result.citations, result.citations_supported = check.total, check.supported
    return result


def judge_answer(engine: Engine, judge_model: str, item: EvalItem, answer: str) -> tuple[bool, str]:
    """The judge's verdict (True: correct) and a note; raises `OllamaError` when it fails."""
    user = (
        f"Question: {item.question}\nReference answer: {item.answer}\n"
        f"Candidate answer: {answer.strip() or '(no answer)'}\nIs the candidate correct?"
    )
    messages = [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]
    options = {"num_predict": 32, "temperature": 0.0, "seed": 0}
    stream = engine.client.chat_stream(judge_model, messages, options=options, format=JUDGE_SCHEMA)
    try:
        reply = "".join(d.content for d in stream)
    finally:
        stream.close()
    verdict = ""
    try:
        raw = json.loads(reply)
        verdict = str(raw.get("verdict", "")).lower() if isinstance(raw, dict) else ""
    except ValueError:
        found = re.search(r"\b(incorrect|correct)\b", reply, re.IGNORECASE)
        verdict = found.group(1).lower() if found else ""
    if verdict not in ("correct", "incorrect"):
        return False, f"no verdict in the judge's reply: {reply.strip()[:80]!r}"
    return verdict == "correct", verdict


# ---- running -------------------------------------------------------------------------------


def run_evaluation(
    engine: Engine,
    evalset: EvalSet,
    configs: Sequence[EvalConfig],
    *,
    judge_model: str = "",
    num_predict: int = DEFAULT_NUM_PREDICT,
    cancel: threading.Event | None = None,
    run_id: str | None = None,
) -> Iterator[EvalEvent]:
    """Start a new run of `configs` over `evalset` (see the module docstring).

    Raises `EvalError` before anything runs when there is nothing to evaluate.  Ollama
    failures of single answers are recorded in their results and the run goes on.
    """
    if not evalset.items:
        raise EvalError(
            f"The set '{evalset.name}' has no questions.", "Build or import questions first."
        )
    if not configs:
        raise EvalError("There is nothing to evaluate.", "Add at least one configuration.")
    keys = [c.key for c in configs]
    if len(set(keys)) != len(keys):
        raise EvalError(
            "Two configurations are the same.", "Change the model, RAG, top-k or prompt of one."
        )
    resolved = [_resolved(engine, c) for c in configs]
    info = RunInfo(
        id=run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
        set_name=evalset.name,
        set_version=evalset.version,
        configs=resolved,
        judge_model=judge_model.strip(),
        num_predict=num_predict,
        items=len(evalset.items),
    )
    store = RunStore.for_home(engine.home)
    store.create(info, evalset.items)
    return _execute(engine, store, info, list(evalset.items), [], cancel or threading.Event())


def resume_evaluation(
    engine: Engine, run_id: str = "last", *, cancel: threading.Event | None = None
) -> Iterator[EvalEvent]:
    """Continue a stored run, skipping the pairs already answered."""
    store = RunStore.for_home(engine.home)
    info = store.info(run_id)
    items = store.items(info.id)
    done = [r for r in store.results(info.id) if r.ok]
    return _execute(engine, store, info, items, done, cancel or threading.Event())


def _resolved(engine: Engine, config: EvalConfig) -> EvalConfig:
    """Fill in top-k from the settings and, when unknown, whether the model is fine-tuned."""
    top_k = (config.top_k or engine.settings.top_k) if config.rag else 0
    fine_tuned = config.fine_tuned
    if fine_tuned is None:
        from ftrag_desktop.core.models import ModelManager

        try:
            fine_tuned = ModelManager(engine.client, engine.home).get(config.model).fine_tuned
        except OllamaError:
            fine_tuned = None  # not installed or Ollama down: its answers will say so
    return replace(config, top_k=top_k, fine_tuned=fine_tuned)


def _engine_for(engine: Engine, config: EvalConfig) -> Engine:
    """The engine to answer with: the same one, or for a configuration with its own system
    prompt a shallow copy whose settings carry that prompt (same client, index and stores),
    so the user's settings are never changed under a running app."""
    if not config.system_prompt:
        return engine
    clone = copy.copy(engine)
    clone.settings = replace(engine.settings, system_prompt=config.system_prompt)
    return clone


def _execute(
    engine: Engine,
    store: RunStore,
    info: RunInfo,
    items: list[EvalItem],
    done_results: list[ItemResult],
    cancel: threading.Event,
) -> Iterator[EvalEvent]:
    started = time.monotonic()
    total = len(items) * len(info.configs)
    finished = {(r.item_id, r.config_key) for r in done_results}
    done = sum((i.id, c.key) in finished for i in items for c in info.configs)
    yield RunStarted(info.id, total, done, list(info.configs))
    judge = normalize_model_name(info.judge_model) if info.judge_model else ""
    for index, config in enumerate(info.configs):
        answering = _engine_for(engine, config)
        for item in items:
            if cancel.is_set():
                break
            if (item.id, config.key) in finished:
                continue
            yield ItemStarted(info.id, index, item.id, item.question, done, total)
            answer = _answer(answering, item, config, info.num_predict, cancel)
            if answer is None:  # cancelled mid-answer: not recorded, resume asks again
                break
            result = score_answer(item, config, answer, config.top_k)
            if judge and item.answerable and result.ok:
                if normalize_model_name(config.model) == judge:
                    result.judge_note = "not judged: the judge is this configuration's model"
                else:
                    try:
                        result.judge, result.judge_note = judge_answer(
                            engine, info.judge_model, item, answer.text
                        )
                    except OllamaError as exc:
                        result.judge_note = f"the judge failed: {exc.message}"
            store.append(info.id, result)
            done += 1
            yield ItemScored(info.id, index, result, done, total)
    report = build_report(info, items, store.results(info.id))
    yield RunFinished(
        info.id, report, cancel.is_set() and done < total, done, total, time.monotonic() - started
    )


def _answer(
    engine: Engine,
    item: EvalItem,
    config: EvalConfig,
    num_predict: int,
    cancel: threading.Event,
) -> CompareAnswer | None:
    answer: CompareAnswer | None = None
    for event in run_comparison(
        engine, item.question, [config.compare_config()], cancel=cancel, num_predict=num_predict
    ):
        if isinstance(event, ConfigFinished):
            answer = event.answer
    if answer is None or answer.cancelled or not answer.ran:
        return None
    return answer
