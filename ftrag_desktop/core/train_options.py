"""The knobs of a LoRA fine-tune: defaults that suit a small training set, checked before use.

`TrainOptions` holds the everyday settings (rank, alpha, learning rate, epochs, max length) and
the advanced ones (dropout, target modules, batch, gradient accumulation, warmup, seed, a step
cap, evaluation and checkpoint intervals, device, threads).  `problems()` says in words what is
wrong.  `identity()` is the part that decides what training computes: a run is resumed only
when its base, data and identity are the same (`run_id`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["OUT_TYPES", "TrainOptions", "run_id"]

OUT_TYPES = ("Q8_0", "F16", "BF16", "F32", "Q5_1", "Q5_0", "Q4_1", "Q4_0")
DEVICES = ("auto", "cuda", "mps", "cpu")


@dataclass(frozen=True)
class TrainOptions:
    rank: int = 8
    alpha: float = 16.0
    lr: float = 2e-4
    epochs: int = 3
    max_length: int = 1024
    # advanced
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ()  # empty: every linear layer of the blocks
    batch_size: int = 4
    grad_accum: int = 1
    warmup_ratio: float = 0.05  # share of the steps over which the learning rate rises
    seed: int = 0
    max_steps: int = 0  # 0: as many as the epochs take
    eval_every: int = 0  # steps; 0: about ten evaluations per run
    save_every: int = 0  # steps; 0: with every evaluation
    val_fraction: float = 0.1  # split off when the data has no valid.jsonl
    out_type: str = "Q8_0"
    device: str = "auto"
    threads: int = 0  # CPU threads; 0: torch's default

    def problems(self) -> list[str]:
        out: list[str] = []

        def need(ok: bool, text: str) -> None:
            if not ok:
                out.append(text)

        need(1 <= self.rank <= 1024, "the rank must be between 1 and 1024")
        need(self.alpha > 0, "alpha must be more than 0")
        need(0 < self.lr <= 1.0, "the learning rate must be more than 0 and at most 1")
        need(self.epochs >= 1, "train for at least one epoch")
        need(16 <= self.max_length <= 131072, "the max length must be 16 to 131072 tokens")
        need(0.0 <= self.dropout < 1.0, "dropout must be at least 0 and below 1")
        need(self.batch_size >= 1, "the batch size must be at least 1")
        need(self.grad_accum >= 1, "gradient accumulation must be at least 1")
        need(0.0 <= self.warmup_ratio <= 0.5, "warmup must be a share between 0 and 0.5")
        need(self.max_steps >= 0, "max steps cannot be negative")
        need(self.eval_every >= 0, "the evaluation interval cannot be negative")
        need(self.save_every >= 0, "the checkpoint interval cannot be negative")
        need(0.0 <= self.val_fraction < 0.5, "the validation share must be at least 0, below 0.5")
        need(self.out_type in OUT_TYPES, f"the output type must be one of {', '.join(OUT_TYPES)}")
        need(self.device in DEVICES, f"the device must be one of {', '.join(DEVICES)}")
        need(self.threads >= 0, "threads cannot be negative")
        bad = [m for m in self.target_modules if not re.fullmatch(r"[A-Za-z_][\w.]*", m)]
        need(not bad, f"target modules must be module names, not {bad}")
        return out

    def identity(self) -> dict[str, Any]:
        """What decides the weights training produces (not where or how fast it runs)."""
        skip = {"eval_every", "save_every", "out_type", "device", "threads"}
        doc = {k: v for k, v in asdict(self).items() if k not in skip}
        doc["target_modules"] = sorted(self.target_modules)
        return doc

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["target_modules"] = list(self.target_modules)
        return doc

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if "target_modules" in values:
            values["target_modules"] = tuple(values["target_modules"])
        return cls(**values)


def run_id(name: str, base_identity: str, data_sha256: str, options: TrainOptions) -> str:
    """`<model name>-<hash>`: the same model name, base, data and options give the same run,
    which is what lets a cancelled run resume."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "model"
    doc = json.dumps([base_identity, data_sha256, options.identity()], sort_keys=True)
    return f"{slug[:48]}-{hashlib.sha256(doc.encode()).hexdigest()[:10]}"
