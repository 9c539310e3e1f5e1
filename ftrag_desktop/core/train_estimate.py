"""Before a fine-tune starts: how many parameters, tokens and steps, how long, how much memory.

Everything is worked out from the GGUF's tensor table (read without its vocabulary), the
training data's size and the options, so the estimate is shown, and a run that cannot fit is
refused (`TrainTooLarge`), before a model is loaded:

- trainable LoRA parameters: rank x (inputs + outputs) of every targeted projection;
- tokens: characters / 4 per example plus the chat template's markers, cut at the max
  length;
- time: a LoRA step costs about 4 x parameters FLOPs per token (forward, plus the backward
  pass through the frozen weights) plus attention, divided by the device's measured matrix
  throughput times an efficiency calibrated on this project's CPU benchmark (bench/train.py);
  the measurement is the device's best, so a machine busy with other work trains slower;
- memory: the weights (float32 on a CPU, bfloat16 on a CUDA GPU), the adapter with its
  gradients and Adam state, activations (Korthikanti et al. 2022: about 34 x hidden bytes per
  token and layer in 16-bit, plus 5 x heads x length for attention), the logits, the
  dequantization peak while loading, and the runtime itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ftrag_desktop.core.gguf_info import _MetadataReader
from ftrag_desktop.core.train_base import BaseModel
from ftrag_desktop.core.train_data import TrainingData
from ftrag_desktop.core.train_env import Device
from ftrag_desktop.core.train_options import TrainOptions
from ftrag_desktop.errors import UserError

__all__ = [
    "TrainEstimate",
    "TrainTooLarge",
    "check_fits",
    "estimate",
    "lora_shapes",
    "plan_steps",
]

CHARS_PER_TOKEN = 4.0
TEMPLATE_TOKENS_PER_MESSAGE = 6
RUNTIME_BYTES = 800 << 20  # Python, torch, transformers and peft loaded
HEADROOM = 0.9  # use at most this share of the free memory
# Achieved / matrix-product FLOP rate of a LoRA step.  CPU: bench/train.py, SmolLM2-135M on
# 2 idle cores, 0.5 (Q/A, 74 tokens) to 0.65 (RAFT, 512); far less while other work shares
# the cores.  GPUs: assumed.
EFFICIENCY = {"cpu": 0.5, "cuda": 0.35, "mps": 0.3}
ASSUMED_FLOPS = {"cpu": 2e10, "cuda": 2e13, "mps": 3e12}  # when no measurement is possible
# Hugging Face module names -> llama.cpp tensor names (the blocks' projections).
HF_TO_GGUF = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
    "qkv_proj": "attn_qkv",
    "query_key_value": "attn_qkv",
    "dense": "attn_output",
    "dense_h_to_4h": "ffn_up",
    "dense_4h_to_h": "ffn_down",
    "c_attn": "attn_qkv",
    "c_proj": "attn_output",
    "c_fc": "ffn_up",
}
_BLOCK_TENSOR = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.weight$")


class TrainTooLarge(UserError):
    """The fine-tune needs more memory than the machine has free."""


@dataclass(frozen=True)
class TrainEstimate:
    parameters: int
    trainable_parameters: int
    examples: int
    valid_examples: int
    tokens_per_epoch: int
    steps_per_epoch: int
    steps: int
    epochs: float  # passes over the data the steps amount to
    tokens_total: int
    tokens_per_s: float
    seconds: float
    peak_memory_bytes: int
    available_memory_bytes: int | None
    device: str
    throughput_source: str  # "measured" (a matrix product on this device) or "assumed"

    @property
    def fits(self) -> bool:
        avail = self.available_memory_bytes
        return avail is None or self.peak_memory_bytes <= avail * HEADROOM

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["fits"] = self.fits
        return doc


def lora_shapes(path: Path) -> tuple[dict[str, list[tuple[int, int]]], int, int]:
    """({projection: [(inputs, outputs) per block]}, vocabulary size, hidden size) of a GGUF,
    from its tensor table (the vocabulary's strings are stepped over, not read)."""
    reader = _MetadataReader(path)
    try:
        shapes: dict[str, list[tuple[int, int]]] = {}
        vocab = hidden = 0
        for t in reader.tensors:
            dims = [int(d) for d in t.shape]
            if t.name == "token_embd.weight" and len(dims) == 2:
                hidden, vocab = dims[0], dims[1]
            m = _BLOCK_TENSOR.match(t.name)
            if m and len(dims) == 2:
                shapes.setdefault(m.group(2), []).append((dims[0], dims[1]))
        return shapes, vocab, hidden
    finally:
        del reader


def _trainable(shapes: dict[str, list[tuple[int, int]]], options: TrainOptions) -> int:
    if options.target_modules:
        wanted = {HF_TO_GGUF.get(m.rsplit(".", 1)[-1], m) for m in options.target_modules}
        chosen = [s for name, dims in shapes.items() if name in wanted for s in dims]
    else:  # every linear layer of the blocks (what peft's "all-linear" picks)
        chosen = [s for dims in shapes.values() for s in dims]
    return sum(options.rank * (i + o) for i, o in chosen)


def plan_steps(examples: int, options: TrainOptions) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps)."""
    per_epoch = max(1, math.ceil(math.ceil(examples / options.batch_size) / options.grad_accum))
    total = options.max_steps if options.max_steps > 0 else per_epoch * options.epochs
    return per_epoch, total


def _approx_tokens(messages: list[dict[str, str]]) -> int:
    """Tokens of one example with its chat template: text / 4, plus the template's markers
    (about 6 per message) and a default system prompt some templates add."""
    text = sum(len(m["content"]) for m in messages)
    return math.ceil(text / CHARS_PER_TOKEN) + TEMPLATE_TOKENS_PER_MESSAGE * len(messages) + 16


def estimate(
    base: BaseModel,
    data: TrainingData,
    options: TrainOptions,
    device: Device,
    flops_per_s: float | None = None,
) -> TrainEstimate:
    info = base.info
    shapes, vocab, hidden = lora_shapes(base.path)
    hidden = hidden or info.embedding_length or 0
    layers = info.block_count or len(shapes.get("attn_q", shapes.get("attn_qkv", [])))
    params = info.parameter_count
    trainable = _trainable(shapes, options)

    lengths = [min(options.max_length, _approx_tokens(e)) for e in data.train]
    tokens_per_epoch = sum(lengths)
    per_epoch, steps = plan_steps(len(lengths), options)
    epochs = steps / per_epoch
    seq = max(lengths, default=16)
    valid_tokens = sum(min(options.max_length, _approx_tokens(e)) for e in data.valid)
    evals = max(1, steps // options.eval_every) if options.eval_every else 10
    tokens_total = int(tokens_per_epoch * epochs)

    flops_token = 4.0 * params + 8.0 * layers * seq * hidden
    source = "measured" if flops_per_s else "assumed"
    rate = (flops_per_s or ASSUMED_FLOPS.get(device.kind, 2e10)) * EFFICIENCY.get(device.kind, 0.3)
    tokens_per_s = rate / flops_token if flops_token > 0 else 0.0
    # Validation passes cost a forward pass only (a third of a step's work per token).
    work = tokens_total + (valid_tokens * min(evals, steps) / 3.0 if data.valid else 0.0)
    seconds = work / tokens_per_s if tokens_per_s > 0 else 0.0

    wbytes = 2 if device.kind == "cuda" else 4
    heads = max(1, hidden // 64)
    tokens_step = options.batch_size * seq
    activations = layers * tokens_step * (34 * hidden + 5 * heads * seq) * wbytes // 2
    logits = 3 * tokens_step * vocab * 4
    adapter = trainable * 16  # float32 weights, gradients, Adam's two moments
    weights = params * wbytes
    train_peak = weights + adapter + activations + logits
    load_peak = weights + max(params // max(layers, 1), 1) * 4 * 8  # plus tensors in flight
    peak = RUNTIME_BYTES + max(train_peak, load_peak)
    return TrainEstimate(
        parameters=params,
        trainable_parameters=trainable,
        examples=len(data.train),
        valid_examples=len(data.valid),
        tokens_per_epoch=tokens_per_epoch,
        steps_per_epoch=per_epoch,
        steps=steps,
        epochs=round(epochs, 3),
        tokens_total=tokens_total,
        tokens_per_s=round(tokens_per_s, 1),
        seconds=round(seconds, 1),
        peak_memory_bytes=int(peak),
        available_memory_bytes=device.memory_bytes,
        device=device.label,
        throughput_source=source,
    )


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def check_fits(est: TrainEstimate, options: TrainOptions) -> None:
    """Refuse, in words, a run that would not fit in the free memory."""
    if est.fits:
        return
    assert est.available_memory_bytes is not None
    where = "GPU memory" if est.device.startswith(("cuda", "mps")) else "memory (RAM)"
    raise TrainTooLarge(
        f"This fine-tune needs about {_size(est.peak_memory_bytes)} of {where}, but only "
        f"{_size(est.available_memory_bytes)} is free on {est.device}.",
        f"Lower the max length (now {options.max_length} tokens) or the batch size (now "
        f"{options.batch_size}; raise gradient accumulation to keep the same effective batch), "
        "close other programs, or choose a smaller base model.",
    )
