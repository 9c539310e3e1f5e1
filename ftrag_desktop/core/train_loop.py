"""The training loop: LoRA steps over tokenized examples, validation, checkpoints and resume.

`train_adapter` is a generator of events (`TrainStep` per optimizer step, `ValidationLoss`,
`CheckpointSaved`, `TrainResumed`) that returns the final `LoopState`.  Details that matter:

- **Loss on the answer only.**  Labels of prompt tokens are ignored, and the logits are
  computed only for the trailing positions that hold answer tokens (batches are padded on the
  left, with explicit position ids), which spares the vocabulary-sized projection of the
  prompt.  The loss of a step is the mean over all its answer tokens, also across gradient
  accumulation.
- **Schedule.**  AdamW; the learning rate rises linearly over the warmup, then follows a
  cosine down to a tenth of its peak; gradients are clipped to norm 1.
- **Order.**  Each epoch shuffles the examples with a seed of its own, so step N always sees
  the same examples; that is what lets a resumed run continue exactly where it stopped.
- **Checkpoints** go to ``<run dir>/checkpoint-<step>/``: the adapter as peft saves it, the
  optimizer's state, torch's random state and ``state.json`` (step, losses, tokens, time).
  Each is written under a temporary name and renamed, so a crash never leaves half of one;
  the last two are kept.  Cancelling (`cancel.set()`) stops between micro-batches, saves a
  checkpoint of the last finished step and raises `Cancelled`; the same run then resumes from
  it with its step count and optimizer state.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftrag_desktop.core.train_data import IGNORE, Encoded
from ftrag_desktop.core.train_env import Device
from ftrag_desktop.core.train_estimate import plan_steps
from ftrag_desktop.core.train_events import (
    CheckpointSaved,
    TrainEvent,
    TrainNotice,
    TrainResumed,
    TrainStep,
    ValidationLoss,
)
from ftrag_desktop.core.train_options import TrainOptions
from ftrag_desktop.errors import Cancelled

__all__ = [
    "CHECKPOINT_PREFIX",
    "LoopState",
    "clear_checkpoints",
    "latest_checkpoint",
    "lr_factor",
    "train_adapter",
]

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "state.json"
KEEP_CHECKPOINTS = 2
MIN_LR_SHARE = 0.1
EVALUATIONS_PER_RUN = 10


@dataclass
class LoopState:
    """Where training stands; saved with every checkpoint."""

    step: int = 0
    total_steps: int = 0
    tokens_seen: int = 0
    seconds: float = 0.0
    train_losses: list[list[float]] = field(default_factory=list)  # [step, loss]
    val_losses: list[list[float]] = field(default_factory=list)
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def train_loss(self) -> float | None:
        return self.train_losses[-1][1] if self.train_losses else None

    @property
    def val_loss(self) -> float | None:
        return self.val_losses[-1][1] if self.val_losses else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LoopState:
        return cls(
            step=int(raw["step"]),
            total_steps=int(raw.get("total_steps") or 0),
            tokens_seen=int(raw.get("tokens_seen") or 0),
            seconds=float(raw.get("seconds") or 0.0),
            train_losses=[list(map(float, p)) for p in raw.get("train_losses") or []],
            val_losses=[list(map(float, p)) for p in raw.get("val_losses") or []],
            identity=dict(raw.get("identity") or {}),
        )


def lr_factor(step: int, total: int, warmup: int) -> float:
    """The share of the peak learning rate at 0-based `step`: linear warmup, then cosine."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return MIN_LR_SHARE + (1.0 - MIN_LR_SHARE) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for p in run_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = p.name[len(CHECKPOINT_PREFIX) :]
        if suffix.isdigit() and (p / STATE_FILE).is_file():
            found.append((int(suffix), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = _checkpoints(run_dir)
    return found[-1][1] if found else None


def clear_checkpoints(run_dir: Path) -> None:
    for _step, path in _checkpoints(run_dir):
        shutil.rmtree(path, ignore_errors=True)


# --- batches --------------------------------------------------------------------------------


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = list(range(n))
    random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


@dataclass
class _Batch:
    tensors: dict[str, Any]
    labels: Any
    keep: int  # trailing positions whose logits the loss needs
    tokens: int  # real (unpadded) tokens
    trained: int  # answer tokens


def _make_batch(examples: Sequence[Encoded], pad_id: int, device: str) -> _Batch:
    import torch

    length = max(len(e.input_ids) for e in examples)
    ids, labels, mask = [], [], []
    for e in examples:
        pad = length - len(e.input_ids)
        ids.append([pad_id] * pad + e.input_ids)
        labels.append([IGNORE] * pad + e.labels)
        mask.append([0] * pad + [1] * len(e.input_ids))
    keep = min(length, max(len(e.input_ids) - e.first_trained for e in examples) + 1)
    mask_t = torch.tensor(mask, dtype=torch.long)
    positions = (mask_t.cumsum(-1) - 1).clamp(min=0)
    tensors = {
        "input_ids": torch.tensor(ids, dtype=torch.long).to(device),
        "attention_mask": mask_t.to(device),
        "position_ids": positions.to(device),
    }
    return _Batch(
        tensors,
        torch.tensor(labels, dtype=torch.long).to(device),
        keep,
        sum(len(e.input_ids) for e in examples),
        sum(e.trained_tokens for e in examples),
    )


def _nll_sum(model: Any, batch: _Batch) -> Any:
    """The summed negative log-likelihood of the batch's answer tokens (a scalar tensor)."""
    import torch.nn.functional as F

    out = model(**batch.tensors, logits_to_keep=batch.keep, use_cache=False)
    logits = out.logits[:, :-1, :].float()
    length = batch.labels.shape[1]
    targets = batch.labels[:, length - batch.keep + 1 :]
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


def evaluate_loss(
    model: Any, examples: Sequence[Encoded], batch_size: int, pad_id: int, device: str
) -> float:
    """Mean loss per answer token over `examples` (no gradients, dropout off)."""
    import torch

    was_training = bool(model.training)
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(examples), batch_size):
                batch = _make_batch(examples[i : i + batch_size], pad_id, device)
                total += float(_nll_sum(model, batch).item())
                count += batch.trained
    finally:
        if was_training:
            model.train()
    return total / max(count, 1)


# --- checkpoints ----------------------------------------------------------------------------


def _save(model: Any, optimizer: Any, state: LoopState, run_dir: Path) -> Path:
    import torch

    final = run_dir / f"{CHECKPOINT_PREFIX}{state.step}"
    tmp = run_dir / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), save_embedding_layers=False)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(torch.get_rng_state(), tmp / "rng.pt")
    (tmp / STATE_FILE).write_text(json.dumps(state.to_dict(), indent=1), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _step, old in _checkpoints(run_dir)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _restore(model: Any, optimizer: Any, checkpoint: Path) -> LoopState:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = LoopState.from_dict(json.loads((checkpoint / STATE_FILE).read_text("utf-8")))
    set_peft_model_state_dict(model, load_file(str(checkpoint / "adapter_model.safetensors")))
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    torch.set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=True))
    return state


# --- the loop -------------------------------------------------------------------------------


def train_adapter(
    model: Any,
    train: Sequence[Encoded],
    valid: Sequence[Encoded],
    options: TrainOptions,
    run_dir: Path,
    device: Device,
    cancel: threading.Event,
    *,
    pad_id: int,
    identity: dict[str, Any],
    resume: bool = True,
) -> Generator[TrainEvent, None, LoopState]:
    """Train the peft `model`'s adapter; yields events and returns the final `LoopState`
    (``state = yield from train_adapter(...)``).  Raises `Cancelled` after saving."""
    import torch

    dev = device.kind
    per_epoch_batches = math.ceil(len(train) / options.batch_size)
    _per_epoch, total = plan_steps(len(train), options)
    warmup = math.ceil(options.warmup_ratio * total)
    eval_every = options.eval_every or max(1, round(total / EVALUATIONS_PER_RUN))
    save_every = options.save_every or eval_every
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=0.0)
    run_dir.mkdir(parents=True, exist_ok=True)

    state = LoopState(total_steps=total, identity=identity)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if not resume:
        clear_checkpoints(run_dir)
    if checkpoint is not None:
        saved = json.loads((checkpoint / STATE_FILE).read_text("utf-8"))
        if saved.get("identity") == identity:
            state = _restore(model, optimizer, checkpoint)
            state.total_steps = total
            yield TrainResumed(state.step, str(checkpoint))
        else:
            yield TrainNotice(f"{checkpoint} was made with other settings: starting over.")
            clear_checkpoints(run_dir)
    else:
        torch.manual_seed(options.seed)

    model.train()
    if state.step == 0 and valid:
        loss = evaluate_loss(model, valid, options.batch_size, pad_id, dev)
        state.val_losses.append([0, loss])
        yield ValidationLoss(0, loss)

    batches: dict[int, list[list[int]]] = {}

    def micro(m: int) -> list[int]:
        epoch, index = divmod(m, per_epoch_batches)
        if epoch not in batches:
            batches.clear()
            batches[epoch] = _epoch_batches(len(train), options.batch_size, options.seed, epoch)
        return batches[epoch][index]

    saved_step = state.step
    session_started, session_steps = time.monotonic(), 0
    while state.step < total:
        started = time.perf_counter()
        chosen = [micro(state.step * options.grad_accum + k) for k in range(options.grad_accum)]
        answer_tokens = sum(train[i].trained_tokens for idxs in chosen for i in idxs)
        optimizer.zero_grad(set_to_none=True)
        loss_sum, tokens = 0.0, 0
        for idxs in chosen:
            if cancel.is_set():
                break
            batch = _make_batch([train[i] for i in idxs], pad_id, dev)
            nll = _nll_sum(model, batch)
            (nll / max(answer_tokens, 1)).backward()
            loss_sum += float(nll.item())
            tokens += batch.tokens
        if cancel.is_set():
            if state.step > saved_step:
                yield CheckpointSaved(state.step, str(_save(model, optimizer, state, run_dir)))
            raise Cancelled
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        lr = options.lr * lr_factor(state.step, total, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        elapsed = time.perf_counter() - started
        state.step += 1
        state.tokens_seen += tokens
        state.seconds += elapsed
        loss = loss_sum / max(answer_tokens, 1)
        state.train_losses.append([state.step, loss])
        session_steps += 1
        per_step = (time.monotonic() - session_started) / session_steps
        yield TrainStep(
            step=state.step,
            total_steps=total,
            epoch=round(state.step * options.grad_accum / per_epoch_batches, 3),
            loss=loss,
            lr=lr,
            tokens_per_s=round(tokens / elapsed, 1) if elapsed > 0 else 0.0,
            tokens_seen=state.tokens_seen,
            elapsed_s=round(state.seconds, 2),
            eta_s=round(per_step * (total - state.step), 1),
        )
        last = state.step == total
        if valid and (state.step % eval_every == 0 or last):
            val = evaluate_loss(model, valid, options.batch_size, pad_id, dev)
            state.val_losses.append([state.step, val])
            yield ValidationLoss(state.step, val)
        if state.step % save_every == 0 or last:
            yield CheckpointSaved(state.step, str(_save(model, optimizer, state, run_dir)))
            saved_step = state.step
    return state
