"""The issue's acceptance test: a merged GGUF computes what the adapter applied at run time does.

SmolLM2-135M (Q4_1) with a seeded random LoRA on all seven projections of all 30 layers.
llama.cpp's Q4_1 arithmetic quantizes activations to 8 bits, so two ways of computing the same
function differ by rounding that 30 layers amplify; the strict comparison therefore runs on an
exact F32 copy of the base (every merged weight dequantized, KV cache in F32), and the literal
one on the Q4_1 base is held to the noise Q4_1 itself makes.  Measured here: merged vs run-time
LoRA on the F32 base, max |diff| about 0.002 (bound 0.02) against an adapter effect of about
7.5; on the Q4_1 base, RMS about 0.21 against a Q4_1-vs-F32 noise floor of about 0.23.

The Q/K row order (llama.cpp's `LlamaModel.permute`) is tested without trusting our own
permutation: rotating every rotary plane of Q and K by the same angles leaves attention, and so
the logits, unchanged, but only when the rotation lands on the planes RoPE really uses.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
import numpy.typing as npt
import pytest

from ftrag_desktop.core.gguf_lora import convert_peft_to_gguf, open_gguf
from ftrag_desktop.core.gguf_merge import merge_adapter
from tests.lora_adapters import (
    HEAD_DIM,
    HEADS,
    KV_HEADS,
    LAYERS,
    MODULES,
    peft_name,
    random_adapter,
    rope_rotation,
    write_config,
    write_safetensors,
)
from tests.ollama_server import smollm2_path

pytestmark = pytest.mark.slow

ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PROMPTS = ("The capital of France is", "def add(a, b):")
Logits = npt.NDArray[np.float32]


def logits(model: Path, lora: Path | None = None) -> Logits:
    """Last-token logits of each prompt (F32 KV cache: no rounding of K and V to F16)."""
    llm = llama_cpp.Llama(
        model_path=str(model),
        lora_path=str(lora) if lora else None,
        n_ctx=64,
        n_threads=1,
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
        flash_attn=False,
        verbose=False,
    )
    rows = []
    try:
        for prompt in PROMPTS:
            llm.reset()
            llm.eval(llm.tokenize(prompt.encode(), add_bos=True))
            row = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            rows.append(np.ctypeslib.as_array(row, shape=(llm.n_vocab(),)).copy())
    finally:
        llm.close()
    return np.array(rows)


def max_diff(a: Logits, b: Logits) -> float:
    return float(np.abs(a - b).max())


def rms(a: Logits, b: Logits) -> float:
    return float(np.sqrt(((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The module's model files (hundreds of MB): removed when its tests are done."""
    folder = tmp_path_factory.mktemp("logits")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def f32_base(work: Path) -> Path:
    """SmolLM2 with every projection dequantized to F32: a merge of an all-zero LoRA."""
    folder = work / "zero"
    folder.mkdir()
    arrays = {}
    for layer in range(LAYERS):
        for module, (n_in, n_out) in MODULES.items():
            arrays[peft_name(layer, module, "A")] = np.full((1, n_in), 0.01, np.float32)
            arrays[peft_name(layer, module, "B")] = np.zeros((n_out, 1), np.float32)
    write_safetensors(folder / "adapter_model.safetensors", arrays)
    write_config(folder, r=1, lora_alpha=1, target_modules=list(ALL))
    out = work / "f32-base.gguf"
    merge_adapter(smollm2_path(), folder, out, out_type="F32")
    return out


@pytest.fixture(scope="module")
def adapter(work: Path) -> Path:
    return random_adapter(work / "adapter", seed=0, modules=ALL, std=0.05)


@pytest.fixture(scope="module")
def lora_gguf(work: Path, adapter: Path) -> Path:
    return convert_peft_to_gguf(adapter, smollm2_path(), work / "adapter.gguf")


@pytest.fixture(scope="module")
def merged(work: Path, adapter: Path) -> Path:
    out = work / "merged.gguf"
    result = merge_adapter(smollm2_path(), adapter, out, out_type="F32")
    assert result.tensors_merged == LAYERS * len(ALL)
    return out


@pytest.fixture(scope="module")
def f32_logits(f32_base: Path) -> Logits:
    return logits(f32_base)


def test_merged_model_matches_the_adapter_applied_at_run_time(
    merged: Path, f32_base: Path, lora_gguf: Path, f32_logits: Logits
) -> None:
    merged_logits = logits(merged)
    runtime = logits(f32_base, lora_gguf)
    assert max_diff(merged_logits, runtime) < 0.02
    # ... while the adapter itself moves the logits by whole units, and the top token.
    assert max_diff(merged_logits, f32_logits) > 2.0
    assert rms(merged_logits, f32_logits) > 0.5


def test_merged_model_matches_run_time_lora_on_the_quantized_base_within_its_noise(
    merged: Path, lora_gguf: Path, f32_logits: Logits
) -> None:
    base = smollm2_path()
    quantized = logits(base)
    noise = rms(quantized, f32_logits)  # Q4_1 arithmetic against its own exact weights
    merged_logits = logits(merged)
    runtime = logits(base, lora_gguf)
    assert 0.01 < noise < 1.0
    assert rms(merged_logits, runtime) < 2 * noise
    assert rms(merged_logits, quantized) > 5 * noise


def rotation_adapter(folder: Path, f32_base: Path, *, pairs: str) -> Path:
    """A full-rank LoRA whose delta rotates Q and K (in Hugging Face's row order) plane by plane:
    B @ A = (R - I) W, with W the base weight un-permuted here, independently of the code
    under test (row h*64 + half*32 + i in Hugging Face's order is row h*64 + 2i + half here)."""
    folder.mkdir()
    weights = {t.name: t for t in open_gguf(f32_base).tensors}
    rng = np.random.default_rng(7)
    arrays = {}
    for layer in range(0, LAYERS, 3):
        angles = rng.uniform(0.5, 2.5, HEAD_DIM // 2)
        head_rotation = rope_rotation(HEAD_DIM, angles, pairs=pairs)
        for module, heads, kind in (("q_proj", HEADS, "attn_q"), ("k_proj", KV_HEADS, "attn_k")):
            gguf_rows = [
                h * HEAD_DIM + 2 * i + half
                for h in range(heads)
                for half in (0, 1)
                for i in range(HEAD_DIM // 2)
            ]
            w = np.asarray(weights[f"blk.{layer}.{kind}.weight"].data, dtype=np.float64)
            hf_weight = w[gguf_rows]
            rotation = np.kron(np.eye(heads), head_rotation)
            full = f"self_attn.{module}"
            arrays[peft_name(layer, full, "A")] = hf_weight.astype(np.float32)
            arrays[peft_name(layer, full, "B")] = (rotation - np.eye(len(w))).astype(np.float32)
    write_safetensors(folder / "adapter_model.safetensors", arrays)
    q_rank, k_rank = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    write_config(
        folder,
        r=q_rank,
        lora_alpha=q_rank,  # scale 1
        target_modules=["q_proj", "k_proj"],
        rank_pattern={"k_proj": k_rank},
        alpha_pattern={"k_proj": k_rank},
    )
    return folder


def test_qk_rows_follow_llamas_rotary_layout(
    work: Path, f32_base: Path, f32_logits: Logits
) -> None:
    right = rotation_adapter(work / "rotate-rope-planes", f32_base, pairs="hf")
    wrong = rotation_adapter(work / "rotate-other-planes", f32_base, pairs="adjacent")
    for folder in (right, wrong):
        result = merge_adapter(f32_base, folder, folder.with_suffix(".gguf"), out_type="F32")
        assert result.tensors_merged == 20
    rotated, misrotated = (logits(f.with_suffix(".gguf")) for f in (right, wrong))
    # Turning each rotary plane of both Q and K by the same angle cannot change q.k ...
    assert max_diff(rotated, f32_logits) < 0.02
    # ... turning pairs of rows that are not rotary planes does: the test can fail.
    assert max_diff(misrotated, f32_logits) > 0.5
