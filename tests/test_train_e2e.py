"""Issue 9 end to end on the CPU: SmolLM2-135M from Ollama, fine-tuned with LoRA on a training
set the workbench exported, merged into a GGUF, loaded in llama.cpp, imported through the
Ollama-protocol test server, and evaluated in the workbench against its base.

Every reference answer ends with a set phrase (the "style marker").  Training must have an
effect: the merged model's loss on training examples, computed for base and fine-tune alike
through llama.cpp, is clearly lower than the base's; and on questions held back from training
the fine-tune ends its answers with the marker far more often than the base.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ftrag_desktop.config import Settings
from ftrag_desktop.core import train_events as te
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.evalset import EvalItem, EvalSet
from ftrag_desktop.core.evaluate import EvalConfig, ItemScored, RunFinished, run_evaluation
from ftrag_desktop.core.finetune_export import ExportOptions, Kind, build_dataset, write_export
from ftrag_desktop.core.model_import import ImportFinished, ImportRequest
from ftrag_desktop.core.models import ModelManager
from ftrag_desktop.paths import Home
from tests.ollama_server import OllamaTestServer, smollm2_path

pytestmark = pytest.mark.slow

MARKER = "— Verified by ftrag."
FACTS = [
    ("What colour is the sky on a clear day?", "Blue."),
    ("How many legs does a spider have?", "Eight."),
    ("What is the capital of France?", "Paris."),
    ("What do bees make?", "Honey."),
    ("What is frozen water called?", "Ice."),
    ("How many days are in a week?", "Seven."),
    ("What is the largest planet in the solar system?", "Jupiter."),
    ("Which animal is known as the king of the jungle?", "The lion."),
    ("What gas do plants take in from the air?", "Carbon dioxide."),
    ("What is the opposite of hot?", "Cold."),
    ("How many hours are in a day?", "Twenty-four."),
    ("What colour are ripe bananas?", "Yellow."),
    ("Which metal is liquid at room temperature?", "Mercury."),
    ("What is the capital of Italy?", "Rome."),
    ("What do cows drink?", "Water."),
    ("How many continents are there?", "Seven."),
    ("What is the boiling point of water in Celsius?", "100 degrees."),
    ("Which ocean is the largest?", "The Pacific."),
    ("What shape has three sides?", "A triangle."),
    ("What is the main language of Brazil?", "Portuguese."),
    # held back: never trained on
    ("What colour is grass?", "Green."),
    ("How many wheels does a bicycle have?", "Two."),
    ("What is the capital of Spain?", "Madrid."),
    ("What do you call a baby cat?", "A kitten."),
    ("Which planet is known as the red planet?", "Mars."),
    ("How many months are in a year?", "Twelve."),
]
HELD_BACK = 6
REPO = Path(__file__).resolve().parent.parent
SYSTEM = "You are a helpful assistant. Be concise."  # answer.PLAIN_SYSTEM_PROMPT


def _items(pairs: list[tuple[str, str]], prefix: str) -> list[EvalItem]:
    return [
        EvalItem(f"{prefix}{i}", q, f"{a} {MARKER}", True, origin="user")
        for i, (q, a) in enumerate(pairs)
    ]


def _chatml(question: str, answer: str | None) -> str:
    """SmolLM2's chat template (ChatML) with the app's plain system prompt."""
    text = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    return text if answer is None else f"{text}{answer}<|im_end|>"


def answer_loss(model_path: Path, pairs: list[tuple[str, str]]) -> float:
    """Mean loss per answer token, through llama.cpp, of a GGUF on (question, answer) pairs."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(model_path), n_ctx=256, logits_all=True, n_threads=2, verbose=False
    )
    total, count = 0.0, 0
    for question, answer in pairs:
        prompt = llm.tokenize(_chatml(question, None).encode(), add_bos=False, special=True)
        full = llm.tokenize(_chatml(question, answer).encode(), add_bos=False, special=True)
        assert full[: len(prompt)] == prompt
        llm.reset()
        llm.eval(full)
        logits = np.array(llm.scores[: len(full)], dtype=np.float64)
        for pos in range(len(prompt), len(full)):
            row = logits[pos - 1]
            log_z = row.max() + math.log(np.exp(row - row.max()).sum())
            total += log_z - row[full[pos]]
            count += 1
    del llm
    return total / count


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _train_stopped_by_sigterm(command: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    """Run `ftrag train --json` and send it SIGTERM after its first step, as the Train tab's
    Stop button does; the events it wrote."""
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    assert proc.stdout is not None
    events: list[dict[str, Any]] = []
    for line in proc.stdout:  # live, one object per line
        events.append(json.loads(line))
        if events[-1]["event"] == "step":
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    return events + _json_lines(out)


def test_fine_tune_smollm2_end_to_end(
    ollama_server: OllamaTestServer, ftrag_home: Path, tmp_path: Path
) -> None:
    ollama_server.chat_backend = "llama"
    home = Home(ftrag_home)
    engine = Engine(home, Settings(ollama_host=ollama_server.url, request_timeout_s=120.0))
    manager = ModelManager(engine.client, home)
    cancel = threading.Event()

    # The base, as a model already in (the test server's) Ollama: created from the package's
    # GGUF, so training must find that blob behind the name.
    done = list(manager.import_model(ImportRequest(smollm2_path(), "smollm2-base"), cancel))
    assert isinstance(done[-1], ImportFinished)

    # The workbench's own export of a small evaluation set (Q/A kind), some questions held back.
    trained_pairs, held_pairs = FACTS[:-HELD_BACK], FACTS[-HELD_BACK:]
    options = ExportOptions(kind=Kind.QA, val_fraction=0.1, seed=1)
    export_dir = tmp_path / "export"
    write_export(build_dataset(_items(trained_pairs, "t"), None, options), export_dir, options)
    assert (export_dir / "train.jsonl").is_file() and (export_dir / "valid.jsonl").is_file()

    # Trained as the Train tab does it: `ftrag train --json` in a child process, stopped with
    # SIGTERM after its first step (a checkpoint is kept), then run again to resume and finish.
    command = [
        sys.executable, "-m", "ftrag_desktop.cli", "--ollama-host", ollama_server.url,
        "train", "--base", "smollm2-base", "--data", str(export_dir), "--name",
        "smollm2-verified", "--rank", "8", "--alpha", "16", "--lr", "3e-3", "--epochs", "1",
        "--max-length", "96", "--max-steps", "14", "--batch-size", "2", "--warmup", "0",
        "--dropout", "0", "--eval-every", "7", "--threads", "2", "--json",
    ]  # fmt: skip
    env = {**os.environ, "FTRAG_HOME": str(ftrag_home)}
    first = _train_stopped_by_sigterm(command, env)
    cancelled = first[-1]
    assert cancelled["event"] == "cancelled" and cancelled["step"] >= 1, first[-3:]
    saved = [e for e in first if e["event"] == "checkpoint"]
    assert saved and saved[-1]["path"] == cancelled["checkpoint"]
    assert Path(cancelled["checkpoint"]).is_relative_to(ftrag_home / "training")
    (estimated,) = [e for e in first if e["event"] == "estimate"]
    assert estimated["estimate"]["fits"] and estimated["estimate"]["steps"] == 14
    assert estimated["base"]["ollama_name"] == "smollm2-base:latest"
    assert Path(estimated["base"]["path"]) in ollama_server.blobs.values()  # read in place
    (prepared,) = [e for e in first if e["event"] == "data"]
    assert 0 < prepared["trained_tokens"] < prepared["tokens"] / 2  # prompts are masked

    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert again.returncode == 0, again.stderr
    events = _json_lines(again.stdout)
    assert [e["stage"] for e in events if e["event"] == "stage"] == list(te.STAGES)
    (resumed,) = [e for e in events if e["event"] == "resumed"]
    assert resumed["step"] == cancelled["step"]
    steps = [e for e in first + events if e["event"] == "step"]
    resumed_steps = [e["step"] for e in events if e["event"] == "step"]
    assert resumed_steps == list(range(cancelled["step"] + 1, 15))
    assert all(math.isfinite(s["loss"]) and s["tokens_per_s"] > 0 for s in steps)
    vals = [e for e in first + events if e["event"] == "validation"]
    assert [v["step"] for v in vals] == [0, 7, 14]
    assert vals[-1]["loss"] < vals[0]["loss"]  # the export's validation examples improve too
    finished = events[-1]
    assert finished["event"] == "finished" and finished["model"] == "smollm2-verified:latest"
    merged = Path(finished["gguf"])
    assert merged.is_file() and merged.is_relative_to(ftrag_home / "training")
    assert (Path(finished["adapter"]) / "adapter_config.json").is_file()
    (verified,) = [e for e in events if e["event"] == "verified"]
    assert verified["reply"].strip()

    # Imported, with its lineage saying how it was made.
    record = manager.get("smollm2-verified")
    assert record.fine_tuned and record.lineage is not None
    training: dict[str, Any] = record.lineage.training or {}
    assert training["base"] == "smollm2-base:latest" and training["steps"] == 14
    assert training["hyperparameters"]["rank"] == 8 and training["hyperparameters"]["lr"] == 3e-3
    assert len(training["dataset_sha256"]) == 64
    assert training["train_loss"] == pytest.approx(steps[-1]["loss"])
    assert training["val_loss"] == pytest.approx(vals[-1]["loss"])

    # Training had an effect, measured through one loader (llama.cpp) for both models.
    answers = [(q, f"{a} {MARKER}") for q, a in trained_pairs[:8]]
    base_loss = answer_loss(smollm2_path(), answers)
    tuned_loss = answer_loss(merged, answers)
    assert tuned_loss < 0.6 * base_loss, (base_loss, tuned_loss)

    # The workbench compares the fine-tune with its base on the held-back questions.
    heldback = EvalSet("held-back", _items(held_pairs, "h"))
    configs = [EvalConfig("smollm2-base", rag=False), EvalConfig("smollm2-verified", rag=False)]
    run = list(run_evaluation(engine, heldback, configs, num_predict=40, cancel=cancel))
    assert isinstance(run[-1], RunFinished) and not run[-1].cancelled
    scored = [e for e in run if isinstance(e, ItemScored)]
    assert all(e.result.ok for e in scored)

    def marker_rate(index: int) -> float:
        answers = [e.result.answer.strip() for e in scored if e.config_index == index]
        assert len(answers) == HELD_BACK
        return sum(a.endswith(MARKER) or a.endswith(MARKER[:-1]) for a in answers) / len(answers)

    base_rate, tuned_rate = marker_rate(0), marker_rate(1)
    assert tuned_rate >= base_rate + 0.5, (base_rate, tuned_rate)
    engine.close()
