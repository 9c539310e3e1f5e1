"""Training data for a fine-tune: the workbench's export read, checked, split and tokenized.

Input is what `ftrag export-finetune` writes (chat-messages JSONL, Q/A or RAFT examples; see
`finetune_formats`): an export folder, or its `train.jsonl`.  `valid.jsonl` beside it is the
validation set; without one (or when it is empty) a seeded share of the training examples is
split off.  Every line must be ``{"messages": [...]}`` with roles system/user/assistant and
text content, ending with the assistant's answer; a bad line is reported by file and number.

Tokenizing renders each conversation with the base model's own chat template, then trains on
the assistant's tokens only: the prompt's tokens get the label -100 (ignored by the loss).  The
answer's span is found by rendering the conversation up to each answer with and without it,
and mapping characters to tokens through the tokenizer's offsets, so no template-specific
markers are assumed.  An example longer than the max length loses the middle of its prompt
(`_shorten`: the answer, the question before it and the prompt's start are kept), and is
counted.  The tokenizer is passed in (duck-typed), so
this module never imports transformers.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftrag_desktop.core.finetune_formats import ROLES, TRAIN_FILE, VALID_FILE
from ftrag_desktop.errors import UserError

__all__ = [
    "IGNORE",
    "EncodeStats",
    "Encoded",
    "TrainDataError",
    "TrainingData",
    "encode_all",
    "encode_conversation",
    "load_training_data",
]

IGNORE = -100  # the label that the loss skips
MAX_REPORTED = 5
MIN_EXAMPLES_TO_SPLIT = 10
Messages = list[dict[str, str]]


class TrainDataError(UserError):
    """The training data cannot be used as it is."""


@dataclass(frozen=True)
class TrainingData:
    train: list[Messages]
    valid: list[Messages]
    train_file: Path
    valid_file: Path | None  # None: the validation examples were split off train
    sha256: str  # of the training file's bytes, then the validation file's
    chars: int  # message text of train and valid together

    @property
    def split_off(self) -> bool:
        return self.valid_file is None and bool(self.valid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_file": str(self.train_file),
            "valid_file": str(self.valid_file) if self.valid_file else None,
            "train_examples": len(self.train),
            "valid_examples": len(self.valid),
            "valid_split_off": self.split_off,
            "sha256": self.sha256,
        }


def _files(path: Path) -> tuple[Path, Path | None]:
    path = path.expanduser()
    if path.is_dir():
        train = path / TRAIN_FILE
        if not train.is_file():
            raise TrainDataError(
                f"{path} holds no {TRAIN_FILE}.",
                "Choose the folder `ftrag export-finetune` wrote, or its train.jsonl file.",
            )
        valid = path / VALID_FILE
        return train, valid if valid.is_file() else None
    if not path.is_file():
        raise TrainDataError(
            f"There is no file {path}.",
            "Export a training set first (`ftrag export-finetune`), then pass its folder.",
        )
    sibling = path.with_name(VALID_FILE)
    has_valid = path.name == TRAIN_FILE and sibling.is_file()
    return path, sibling if has_valid else None


def _line_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "not a JSON object"
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no 'messages' list"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"message {i} has no role among {', '.join(ROLES)}"
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return f"message {i} has no text content"
    if messages[-1]["role"] != "assistant":
        return "the last message must be the assistant's answer"
    if not any(m["role"] == "user" for m in messages):
        return "there is no user message"
    return None


def _read(path: Path) -> tuple[list[Messages], bytes]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TrainDataError(f"{path} cannot be read: {e.strerror or e}.", "Check the file.") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TrainDataError(
            f"{path} is not UTF-8 text (byte {e.start}).", "Export the training set again."
        ) from e
    examples: list[Messages] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problem: str | None = f"not JSON ({e.msg})"
        else:
            problem = _line_problem(obj)
        if problem:
            problems.append(f"line {number}: {problem}")
            continue
        examples.append([{"role": m["role"], "content": m["content"]} for m in obj["messages"]])
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:MAX_REPORTED])
        more = (
            f"\n  ... and {len(problems) - MAX_REPORTED} more"
            if len(problems) > MAX_REPORTED
            else ""
        )
        raise TrainDataError(
            f"{path.name} has {len(problems)} unusable line(s):\n{shown}{more}",
            'Each line must be {"messages": [...]} ending with the assistant\'s answer, as '
            "`ftrag export-finetune` writes it. Export the training set again.",
        )
    return examples, raw


def load_training_data(path: Path, *, val_fraction: float = 0.1, seed: int = 0) -> TrainingData:
    """Read and check the export at `path` (a folder or a train.jsonl); raises
    `TrainDataError` naming each bad line."""
    train_file, valid_file = _files(Path(path))
    train, train_raw = _read(train_file)
    if not train:
        raise TrainDataError(
            f"{train_file} holds no training examples.",
            "Add questions to the evaluation set and export the training set again.",
        )
    digest = hashlib.sha256(train_raw)
    valid: list[Messages] = []
    if valid_file is not None:
        valid, valid_raw = _read(valid_file)
        digest.update(valid_raw)
        if not valid:
            valid_file = None
    if valid_file is None and val_fraction > 0 and len(train) >= MIN_EXAMPLES_TO_SPLIT:
        order = list(range(len(train)))
        random.Random(f"{seed}:valid").shuffle(order)
        chosen = set(order[: max(1, round(val_fraction * len(train)))])
        valid = [e for i, e in enumerate(train) if i in chosen]
        train = [e for i, e in enumerate(train) if i not in chosen]
    chars = sum(len(m["content"]) for e in (*train, *valid) for m in e)
    return TrainingData(train, valid, train_file, valid_file, digest.hexdigest(), chars)


# --- tokenizing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE where the token is prompt, else the token itself

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)

    @property
    def first_trained(self) -> int:
        return next(i for i, label in enumerate(self.labels) if label != IGNORE)


@dataclass
class EncodeStats:
    examples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    truncated: int = 0
    dropped: int = 0  # no answer token at all (an empty answer)
    longest: int = 0  # tokens of the longest example before cutting
    notes: list[str] = field(default_factory=list)


def _render(tokenizer: Any, messages: Messages, *, generation_prompt: bool) -> str:
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return str(text)


def _answer_spans(tokenizer: Any, messages: Messages, full: str) -> list[tuple[int, int]]:
    """Character spans of the assistant turns in `full` (each with its end-of-turn marker)."""
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (upto.startswith(before) and full.startswith(upto)):
            spans = []
            break
        spans.append((len(before), len(upto)))
    if spans:
        return spans
    # Templates that render earlier turns differently (e.g. drop old reasoning): the last one.
    before = _render(tokenizer, messages[:-1], generation_prompt=True)
    if not full.startswith(before):
        raise TrainDataError(
            "The base model's chat template renders a conversation differently from its "
            "prompt plus answer, so the answer cannot be told apart for training.",
            "Choose another base model (one with a standard chat template).",
        )
    return [(len(before), len(full))]


def encode_conversation(tokenizer: Any, messages: Messages, max_length: int) -> Encoded | None:
    """Token ids and labels of one conversation, cut to `max_length`; None when no answer
    token is left."""
    full = _render(tokenizer, messages, generation_prompt=False)
    spans = _answer_spans(tokenizer, messages, full)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = [int(t) for t in enc["input_ids"]]
    labels = []
    for token, (start, end) in zip(ids, enc["offset_mapping"], strict=True):
        inside = end > start and any(a <= start < b for a, b in spans)
        labels.append(token if inside else IGNORE)
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE for label in labels):
        return None
    return Encoded(ids, labels)


def encode_all(
    tokenizer: Any, examples: Sequence[Messages], max_length: int
) -> tuple[list[Encoded], EncodeStats]:
    if not getattr(tokenizer, "chat_template", None):
        raise TrainDataError(
            "The base model has no chat template, so its prompts cannot be built.",
            "Choose a chat (instruct) model as the base: its GGUF carries the template.",
        )
    stats = EncodeStats()
    out: list[Encoded] = []
    for messages in examples:
        full = encode_conversation(tokenizer, messages, 1 << 30)
        if full is None:
            stats.dropped += 1
            continue
        stats.longest = max(stats.longest, len(full.input_ids))
        enc = full
        if len(full.input_ids) > max_length:
            stats.truncated += 1
            enc = _shorten(full, max_length)
        out.append(enc)
        stats.examples += 1
        stats.tokens += len(enc.input_ids)
        stats.trained_tokens += enc.trained_tokens
    if stats.truncated:
        stats.notes.append(
            f"{stats.truncated} example(s) are longer than the max length of {max_length} "
            f"tokens (the longest has {stats.longest}): the middle of their prompt was left "
            "out (the start and the question before the answer are kept). Raise the max length "
            "to train on them whole."
        )
    return out, stats


def _shorten(enc: Encoded, max_length: int) -> Encoded:
    """`enc` in `max_length` tokens.  The answers are kept whole and the prompt loses its
    middle: its start (the system prompt, the first sources) and its end (the question and the
    assistant's header) stay, so the template's structure survives; cutting the end, as is
    usual, would cut the answer, which is all that trains.  An answer part longer than
    `max_length` keeps only its start."""
    first = enc.first_trained
    answer = len(enc.input_ids) - first
    budget = max_length - answer
    if budget < 2:
        return Encoded(enc.input_ids[:max_length], enc.labels[:max_length])
    head, tail = budget // 2, budget - budget // 2
    keep = list(range(head)) + list(range(first - tail, len(enc.input_ids)))
    return Encoded([enc.input_ids[i] for i in keep], [enc.labels[i] for i in keep])
