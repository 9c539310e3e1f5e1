"""PEFT LoRA adapter folders for SmolLM2-135M, written with numpy (no torch, no peft).

The safetensors file is written by hand: an 8-byte little-endian header length, a JSON header
(dtype, shape, data_offsets per tensor), then the raw little-endian data.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

# SmolLM2-135M: 30 layers, hidden 576, 9 query heads and 3 key/value heads of 64, MLP 1536.
HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 576, 1536, 30, 9, 3, 64
MODULES = {  # PEFT module -> (in, out)
    "self_attn.q_proj": (HIDDEN, HEADS * HEAD_DIM),
    "self_attn.k_proj": (HIDDEN, KV_HEADS * HEAD_DIM),
    "self_attn.v_proj": (HIDDEN, KV_HEADS * HEAD_DIM),
    "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.gate_proj": (HIDDEN, FFN),
    "mlp.up_proj": (HIDDEN, FFN),
    "mlp.down_proj": (FFN, HIDDEN),
}
GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def peft_name(layer: int, module: str, part: str) -> str:
    return f"base_model.model.model.layers.{layer}.{module}.lora_{part}.weight"


def write_safetensors(path: Path, tensors: Mapping[str, npt.NDArray[np.generic]]) -> Path:
    """A safetensors file; arrays of dtype uint16 are stored as BF16."""
    names = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<u2"): "BF16"}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": names[np.dtype(array.dtype).newbyteorder("<")],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    return path


def to_bf16(x: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:
    """float32 -> bfloat16 bits, rounded to nearest even (as torch does)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


def write_config(folder: Path, **config: object) -> None:
    base = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "r": 8,
        "lora_alpha": 16,
        "use_rslora": False,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    }
    base.update(config)
    (folder / "adapter_config.json").write_text(json.dumps(base, indent=2))


def random_adapter(
    folder: Path,
    *,
    seed: int = 0,
    rank: int = 8,
    alpha: float = 16.0,
    modules: Iterable[str] = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"),
    layers: Iterable[int] = range(LAYERS),
    std: float = 0.05,
    dtype: str = "F32",
    use_rslora: bool = False,
) -> Path:
    """A seeded random LoRA for SmolLM2 whose deltas change the logits clearly."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    wanted = list(modules)
    tensors: dict[str, npt.NDArray[np.generic]] = {}
    for layer in layers:
        for module, (n_in, n_out) in MODULES.items():
            if module.split(".")[1] not in wanted:
                continue
            a = rng.normal(0.0, std, (rank, n_in)).astype(np.float32)
            b = rng.normal(0.0, std, (n_out, rank)).astype(np.float32)
            for part, m in (("A", a), ("B", b)):
                key = peft_name(layer, module, part)
                if dtype == "BF16":
                    tensors[key] = to_bf16(m)
                elif dtype == "F16":
                    tensors[key] = m.astype(np.float16)
                else:
                    tensors[key] = m
    write_safetensors(folder / "adapter_model.safetensors", tensors)
    write_config(folder, r=rank, lora_alpha=alpha, target_modules=wanted, use_rslora=use_rslora)
    return folder


def rope_rotation(head_dim: int, angles: npt.NDArray[np.float64], *, pairs: str) -> np.ndarray:
    """A rotation of one head's rows, turning each rotary plane by its angle.

    pairs="hf": Hugging Face's planes (row i with row i + d/2, rotate_half); pairs="adjacent":
    rows 2i and 2i + 1, which in Hugging Face's order are not rotary planes.
    """
    r = np.eye(head_dim)
    half = head_dim // 2
    for i in range(half):
        p, q = (i, i + half) if pairs == "hf" else (2 * i, 2 * i + 1)
        c, s = np.cos(angles[i]), np.sin(angles[i])
        r[p, p], r[p, q], r[q, p], r[q, q] = c, -s, s, c
    return r
