"""One question, up to four ways of answering it, side by side: the comparison runner.

`run_comparison(engine, question, configs)` answers `question` once per `CompareConfig` (a
model, with or without the user's documents, and a top-k) and yields per-configuration events
(`ConfigStarted`, `ConfigSources`, `ConfigToken`, `ConfigFinished`), then one
`ComparisonFinished` carrying the `Comparison` record that conversations store.

**One at a time, by default.**  The configurations run one after another, in order.  Ollama
serialises them anyway in the common case (current versions default `OLLAMA_NUM_PARALLEL` to 1,
one request per model at a time; two models that do not fit in memory together are swapped), and
on a laptop's CPU two generations running together split the cores, so every speed figure would
measure the contention instead of the configuration.  Sequential runs keep each answer's figures
its own: time to first token and total time count from when *that* configuration's turn began.
`parallel=True` sends them all at once (a thread each), for servers that really run requests in
parallel.  Their figures then still count from each configuration's own request, but include any
wait in Ollama's queue: when an answer's first token arrives only after another answer has
finished, it was probably queued behind it, and `AnswerMetrics.queued_behind` says so.

Tokens/s comes from Ollama's eval_count / eval_duration when the server reports them, else it is
measured from the stream.  Prompt tokens are Ollama's prompt_eval_count.

A configuration that fails (a missing model, Ollama down) records its error and the others go
on.  Setting `cancel` stops all of them: the running answers end at their next token, and the
ones whose turn had not come are recorded as not run.  Nothing here touches Qt.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ftrag_desktop.core.answer import (
    DEFAULT_NUM_PREDICT,
    AnswerCompleted,
    AnswerResult,
    AnswerToken,
    SourcesFound,
)
from ftrag_desktop.core.compare_record import (
    MAX_CONFIGS,
    AnswerMetrics,
    CompareAnswer,
    CompareConfig,
    Comparison,
)
from ftrag_desktop.core.conversations import source_to_dict
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.errors import UserError

__all__ = [
    "MAX_CONFIGS",
    "AnswerMetrics",
    "CompareAnswer",
    "CompareConfig",
    "CompareError",
    "CompareEvent",
    "Comparison",
    "ComparisonFinished",
    "ConfigFinished",
    "ConfigSources",
    "ConfigStarted",
    "ConfigToken",
    "RunTimes",
    "parse_config",
    "queued_behind",
    "run_comparison",
]

log = logging.getLogger(__name__)


class CompareError(UserError):
    """A comparison that cannot start (no question, no configuration, too many)."""


@dataclass(frozen=True)
class ConfigStarted:
    """Configuration `index` (0-based) began: its retrieval, then its request."""

    index: int
    started_s: float  # from the start of the comparison


@dataclass(frozen=True)
class ConfigSources:
    index: int
    sources: list[dict[str, Any]]  # as `conversations.source_to_dict` gives (none cited yet)
    mode: str
    note: str = ""


@dataclass(frozen=True)
class ConfigToken:
    index: int
    text: str


@dataclass(frozen=True)
class ConfigFinished:
    """Configuration `index` is done: answered, failed (`answer.error`) or stopped."""

    index: int
    answer: CompareAnswer


@dataclass(frozen=True)
class ComparisonFinished:
    """Always the last event; in parallel runs the figures now say who waited for whom."""

    comparison: Comparison


CompareEvent = ConfigStarted | ConfigSources | ConfigToken | ConfigFinished | ComparisonFinished


@dataclass
class RunTimes:
    """Monotonic instants (`time.monotonic()`) of one configuration's run."""

    start: float
    first: float | None = None
    last: float | None = None
    done: float | None = None
    pieces: int = 0


@dataclass
class _Outcome:
    answer: CompareAnswer
    clock: RunTimes
    bug: BaseException | None = field(default=None, repr=False)


def parse_config(spec: str, *, top_k: int = 0) -> CompareConfig:
    """`MODEL`, `MODEL:rag` or `MODEL:norag` (the CLI's `--config`); RAG is on by default.

    Model tags keep their colon: "llama3.2:3b:norag" is llama3.2:3b without documents.
    """
    spec = spec.strip()
    rag = True
    head, colon, tail = spec.rpartition(":")
    if colon and tail.lower() in ("rag", "norag"):
        spec, rag = head.strip(), tail.lower() == "rag"
    if not spec:
        raise CompareError(
            "A configuration needs a model name.", "Write it as MODEL, MODEL:rag or MODEL:norag."
        )
    return CompareConfig(spec, rag=rag, top_k=top_k if rag else 0)


def run_comparison(
    engine: Engine,
    question: str,
    configs: Sequence[CompareConfig],
    *,
    parallel: bool = False,
    cancel: threading.Event | None = None,
    num_predict: int = DEFAULT_NUM_PREDICT,
) -> Iterator[CompareEvent]:
    """Answer `question` with every configuration; see the module docstring.

    Raises `CompareError` before anything runs if the question is blank or there are no
    configurations or more than `MAX_CONFIGS`.  Failures of single configurations are recorded
    in their answers instead.  A top-k of 0 is resolved to the settings' top_k in the record.
    """
    if not question.strip():
        raise CompareError("There is no question to compare.", "Type a question first.")
    if not configs:
        raise CompareError("There is nothing to compare.", "Add at least one configuration.")
    if len(configs) > MAX_CONFIGS:
        raise CompareError(
            f"At most {MAX_CONFIGS} configurations can be compared at once.",
            "Remove some, or compare them in two rounds.",
        )
    resolved = [
        replace(c, top_k=(c.top_k or engine.settings.top_k) if c.rag else 0) for c in configs
    ]
    return _run(engine, question, resolved, parallel, cancel or threading.Event(), num_predict)


def _run(
    engine: Engine,
    question: str,
    configs: list[CompareConfig],
    parallel: bool,
    cancel: threading.Event,
    num_predict: int,
) -> Iterator[CompareEvent]:
    origin = time.monotonic()
    if parallel:
        outcomes = yield from _run_parallel(engine, question, configs, cancel, origin, num_predict)
    else:
        outcomes = []
        for index, config in enumerate(configs):
            outcome = yield from _answer_one(
                engine, question, index, config, cancel, origin, num_predict
            )
            outcomes.append(outcome)
    answers = [o.answer for o in outcomes]
    if parallel:
        clocks = [o.clock for o in outcomes]
        for index, answer in enumerate(answers):
            waited = queued_behind(index, clocks)
            if waited:
                answer.metrics = replace(answer.metrics, queued_behind=waited)
    comparison = Comparison(
        id=uuid.uuid4().hex, question=question, configs=configs, answers=answers, parallel=parallel
    )
    yield ComparisonFinished(comparison)


def _run_parallel(
    engine: Engine,
    question: str,
    configs: list[CompareConfig],
    cancel: threading.Event,
    origin: float,
    num_predict: int,
) -> Generator[CompareEvent, None, list[_Outcome]]:
    events: queue.Queue[CompareEvent | None] = queue.Queue()  # None: one configuration is done
    outcomes: list[_Outcome | None] = [None] * len(configs)

    def work(index: int) -> None:
        steps = _answer_one(engine, question, index, configs[index], cancel, origin, num_predict)
        try:
            while True:
                events.put(next(steps))
        except StopIteration as stop:
            outcomes[index] = stop.value
        except BaseException as exc:  # a bug: handed to the consumer, who raises it
            outcomes[index] = _Outcome(
                CompareAnswer(configs[index].model, error=f"Unexpected error: {exc}"),
                RunTimes(time.monotonic()),
                bug=exc,
            )
        finally:
            events.put(None)

    threads = [
        threading.Thread(target=work, args=(i,), name=f"ftrag-compare-{i + 1}", daemon=True)
        for i in range(len(configs))
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            event = events.get()
            if event is None:
                running -= 1
            else:
                yield event
    finally:
        if running:  # our consumer stopped listening: stop the answers too
            cancel.set()
        for thread in threads:
            thread.join()
    done = [o for o in outcomes if o is not None]
    bug = next((o.bug for o in done if o.bug is not None), None)
    if bug is not None:
        raise bug
    return done


def _answer_one(
    engine: Engine,
    question: str,
    index: int,
    config: CompareConfig,
    cancel: threading.Event,
    origin: float,
    num_predict: int,
) -> Generator[CompareEvent, None, _Outcome]:
    clock = RunTimes(time.monotonic())
    if cancel.is_set():  # stopped before its turn came: ask nothing
        answer = CompareAnswer(config.model, cancelled=True, ran=False)
        yield ConfigFinished(index, answer)
        return _Outcome(answer, clock)
    yield ConfigStarted(index, clock.start - origin)
    pieces: list[str] = []
    sources: list[dict[str, Any]] = []
    result: AnswerResult | None = None
    error = ""
    stream = engine.ask(
        question,
        model=config.model,
        rag=config.rag,
        k=config.top_k or None,
        num_predict=num_predict,
        cancel=cancel,
    )
    try:
        for event in stream:
            if isinstance(event, AnswerToken):
                now = time.monotonic()
                clock.first = now if clock.first is None else clock.first
                clock.last = now
                clock.pieces += 1
                pieces.append(event.text)
                yield ConfigToken(index, event.text)
            elif isinstance(event, SourcesFound):
                sources = [source_to_dict(s) for s in event.sources]
                yield ConfigSources(index, sources, event.mode, event.note)
            elif isinstance(event, AnswerCompleted):
                result = event.result
    except UserError as exc:
        error = str(exc)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    clock.done = time.monotonic()
    answer = _answer_record(config, result, "".join(pieces), sources, error, clock, origin)
    if error == "" and result is None:  # the stream ended without its completion
        answer.cancelled = cancel.is_set()
    yield ConfigFinished(index, answer)
    return _Outcome(answer, clock)


def _answer_record(
    config: CompareConfig,
    result: AnswerResult | None,
    text: str,
    sources: list[dict[str, Any]],
    error: str,
    clock: RunTimes,
    origin: float,
) -> CompareAnswer:
    stats = result.stats if result is not None else None
    metrics = AnswerMetrics(
        first_token_s=None if clock.first is None else clock.first - clock.start,
        total_s=(clock.done or clock.start) - clock.start,
        prompt_tokens=stats.prompt_tokens if stats is not None else None,
        completion_tokens=stats.completion_tokens if stats is not None else None,
        retrieval_s=result.retrieval_s if result is not None else 0.0,
        started_s=clock.start - origin,
    )
    speed, source = _speed(result, clock)
    metrics = replace(metrics, tokens_per_s=speed, speed_source=source)
    if result is None:
        return CompareAnswer(config.model, text=text, sources=sources, metrics=metrics, error=error)
    return CompareAnswer(
        model=result.model,
        text=result.answer,
        sources=[source_to_dict(s) for s in result.sources],  # now with the cited marks
        metrics=metrics,
        search_mode=result.search_mode,
        note=result.note,
        cancelled=result.cancelled,
    )


def _speed(result: AnswerResult | None, clock: RunTimes) -> tuple[float | None, str]:
    """Tokens per second: Ollama's own figure when it sent one, else timed from the stream."""
    stats = result.stats if result is not None else None
    if stats is not None and stats.completion_tokens > 0 and stats.eval_s > 0:
        return stats.completion_tokens / stats.eval_s, "ollama"
    if clock.first is None or clock.last is None or clock.last <= clock.first:
        return None, ""
    # n pieces arrive over n - 1 gaps; Ollama's count is better than ours when it has one.
    count = stats.completion_tokens if stats is not None and stats.completion_tokens else 0
    count = count or clock.pieces
    if count < 2:
        return None, ""
    return (count - 1) / (clock.last - clock.first), "measured"


def queued_behind(index: int, clocks: Sequence[RunTimes]) -> tuple[int, ...]:
    """The configurations that configuration `index` probably waited for in Ollama's queue.

    Sent together, a configuration whose first token arrived only after another one had
    finished (and which was already waiting when that one finished) was served after it.
    """
    mine = clocks[index]
    if mine.first is None:
        return ()
    waited: list[int] = []
    for other, clock in enumerate(clocks):
        if other == index or clock.first is None or clock.done is None:
            continue
        if clock.first < mine.first and clock.done <= mine.first and mine.start < clock.done:
            waited.append(other)
    return tuple(waited)
