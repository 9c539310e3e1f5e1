"""What the Train tab asks `ftrag train` to do: the form's values as a checked job and its argv.

`TrainJob` holds the base (an Ollama model name or a .gguf path), the training data (an export
folder or a .jsonl file), the new model's name and the `core.train_options.TrainOptions`;
`problems()` says in words what keeps it from running (the same checks the CLI makes before it
loads anything, so the form can say them at once), and `cli_args()` is the `train ...` part of
the command line.  `cli_command()` is the whole child process: this Python running
``-m ftrag_desktop.cli --home … --ollama-host … train … --json``, as the CLI tests start it.
Nothing here touches Qt.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ftrag_desktop.core.import_plan import _NAME_RE
from ftrag_desktop.core.llm import normalize_model_name
from ftrag_desktop.core.train_options import TrainOptions

__all__ = ["TrainJob", "cli_command", "name_problem"]


def name_problem(name: str, installed: Iterable[str] = (), *, replace: bool = False) -> str:
    """Why `name` cannot be the new model's name ("" when it can)."""
    name = name.strip()
    if not name:
        return "Give the new model a name."
    if not _NAME_RE.match(name):
        return (
            f"'{name}' is not a valid Ollama model name: use letters, digits, '.', '-' and '_' "
            "(for example my-model or my-model:v2)."
        )
    if not replace and normalize_model_name(name) in {normalize_model_name(n) for n in installed}:
        return (
            f"A model named {normalize_model_name(name)} already exists in Ollama: choose "
            'another name, or tick "Replace a model of the same name" under Advanced.'
        )
    return ""


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass(frozen=True)
class TrainJob:
    base: str  # an Ollama model name, or the path of a .gguf file
    data: str  # an export folder (train.jsonl, valid.jsonl), or a .jsonl file
    name: str  # the new Ollama model
    options: TrainOptions = field(default_factory=TrainOptions)
    replace: bool = False  # replace an Ollama model of the same name
    resume: bool = True  # continue from the same run's last checkpoint, if there is one

    def problems(self, installed: Iterable[str] = ()) -> list[str]:
        out: list[str] = []
        if not self.base.strip():
            out.append("Choose the base model: a model in Ollama or a GGUF file.")
        if not self.data.strip():
            out.append("Choose the training data: a set exported from the Evaluate tab.")
        problem = name_problem(self.name, installed, replace=self.replace)
        if problem:
            out.append(problem)
        out += [p[0].upper() + p[1:] + "." for p in self.options.problems()]
        return out

    def cli_args(self, *, estimate_only: bool = False) -> list[str]:
        """`train --base … --json`: every option spelled out, so the run is what the form says."""
        o = self.options
        args = ["train", "--base", self.base, "--data", self.data, "--name", self.name.strip()]
        args += ["--rank", str(o.rank), "--alpha", _number(o.alpha), "--lr", repr(float(o.lr))]
        args += ["--epochs", str(o.epochs), "--max-length", str(o.max_length)]
        args += ["--max-steps", str(o.max_steps), "--out-type", o.out_type]
        args += ["--dropout", repr(float(o.dropout)), "--batch-size", str(o.batch_size)]
        args += ["--grad-accum", str(o.grad_accum), "--warmup", repr(float(o.warmup_ratio))]
        args += ["--seed", str(o.seed), "--eval-every", str(o.eval_every)]
        args += ["--save-every", str(o.save_every), "--val-fraction", repr(float(o.val_fraction))]
        args += ["--device", o.device, "--threads", str(o.threads)]
        if o.target_modules:
            args += ["--target-modules", ",".join(o.target_modules)]
        if self.replace:
            args.append("--replace")
        if not self.resume:
            args.append("--no-resume")
        if estimate_only:
            args.append("--estimate-only")
        return [*args, "--json"]


def cli_command(home: Path, ollama_host: str, args: list[str]) -> tuple[str, list[str]]:
    """(program, arguments) of `ftrag` run by this very Python, on the app's data home and
    Ollama server."""
    return sys.executable, [
        "-m",
        "ftrag_desktop.cli",
        "--home",
        str(home),
        "--ollama-host",
        ollama_host,
        *args,
    ]
