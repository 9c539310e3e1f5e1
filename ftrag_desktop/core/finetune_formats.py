"""What each fine-tuning tool accepts: the export's file names and a validator per format.

Every format is chat-messages JSONL, one example per line: ``{"messages": [system, user,
assistant]}``.  The tools agree on that shape and differ in details, which the validators check
so that an export is never written in a shape its tool would refuse:

- ``chat``: TRL's ``SFTTrainer`` (and Unsloth, which trains through it) reads a
  "conversational language modeling" dataset: a ``messages`` list of ``{"role", "content"}``.
- ``axolotl``: the ``chat_template`` dataset type reads ``messages`` by default
  (``field_messages``) and trains on the assistant turns (``roles_to_train``).
- ``mlx``: ``mlx_lm.lora --data DIR`` wants ``train.jsonl`` and ``valid.jsonl`` in ``DIR``, one
  whole example per line; with ``--mask-prompt`` the last message is the completion.
- ``openai``: each line holds ``messages`` (message keys limited to role, content, name, weight,
  function_call), every conversation has an assistant message, and a training file has at
  least 10 examples.

The sources behind these rules are cited in the export's README (`finetune_readme`).
"""

from __future__ import annotations

import itertools
import json
from enum import StrEnum
from typing import Any

TRAIN_FILE = "train.jsonl"
VALID_FILE = "valid.jsonl"
METADATA_FILE = "metadata.jsonl"
README_FILE = "README.md"
MANIFEST_FILE = "export.json"

ROLES = ("system", "user", "assistant")
OPENAI_MIN_EXAMPLES = 10
_OPENAI_LINE_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
_OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight", "function_call"}


class Format(StrEnum):
    CHAT = "chat"  # Unsloth / TRL SFTTrainer
    OPENAI = "openai"
    MLX = "mlx"
    AXOLOTL = "axolotl"


FORMAT_TOOL = {
    Format.CHAT: "Unsloth / TRL SFTTrainer",
    Format.OPENAI: "OpenAI fine-tuning",
    Format.MLX: "MLX-LM (mlx_lm.lora)",
    Format.AXOLOTL: "Axolotl (chat_template)",
}


def _message_problems(i: int, msg: Any, fmt: Format) -> list[str]:
    if not isinstance(msg, dict):
        return [f"message {i} is not an object"]
    problems: list[str] = []
    if msg.get("role") not in ROLES:
        problems.append(f"message {i} has role {msg.get('role')!r}, not one of {ROLES}")
    content = msg.get("content")
    if not isinstance(content, str) or not content.strip():
        problems.append(f"message {i} has no text content")
    if fmt is Format.OPENAI:
        extra = sorted(set(msg) - _OPENAI_MESSAGE_KEYS)
        if extra:
            problems.append(f"message {i} has keys OpenAI does not accept: {extra}")
    elif set(msg) != {"role", "content"}:
        problems.append(f"message {i} must hold exactly role and content")
    return problems


def line_problems(line: str, fmt: Format) -> list[str]:
    """Why one JSONL line would be refused by `fmt`'s tool ([] when it is fine)."""
    if "\n" in line or "\r" in line:
        return ["an example must sit on one line"]
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return [f"not JSON: {exc.msg}"]
    if not isinstance(obj, dict):
        return ["a line must be a JSON object"]
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["no 'messages' list"]
    problems: list[str] = []
    if fmt is Format.OPENAI:
        extra = sorted(set(obj) - _OPENAI_LINE_KEYS)
        if extra:
            problems.append(f"keys OpenAI does not accept: {extra}")
    elif set(obj) != {"messages"}:
        problems.append("a line must hold only 'messages'")
    for i, msg in enumerate(messages):
        problems.extend(_message_problems(i, msg, fmt))
    if problems:
        return problems
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        problems.append("a system message may only come first")
    turns = roles[1:] if roles[0] == "system" else roles
    if not turns or turns[0] != "user":
        problems.append("the conversation must start with a user message")
    if any(a == b for a, b in itertools.pairwise(turns)):
        problems.append("user and assistant messages must alternate")
    if roles[-1] != "assistant":
        # MLX's --mask-prompt and Axolotl's default train on the last (assistant) turn.
        problems.append("the last message must be the assistant's answer")
    return problems


def dataset_problems(train_lines: int, valid_lines: int, fmt: Format) -> list[str]:
    """Problems of the export as a whole that `fmt`'s tool would refuse or trip over."""
    problems: list[str] = []
    if train_lines == 0:
        problems.append("the training file is empty")
    if fmt is Format.OPENAI and 0 < train_lines < OPENAI_MIN_EXAMPLES:
        problems.append(
            f"OpenAI fine-tuning needs at least {OPENAI_MIN_EXAMPLES} training examples; "
            f"there are {train_lines}"
        )
    if fmt is Format.MLX and valid_lines == 0:
        problems.append("mlx_lm.lora --train also reads valid.jsonl, which is empty")
    return problems
