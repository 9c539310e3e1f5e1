"""Merging a LoRA into SmolLM2's GGUF: the weights, the metadata, refusals, cancel, the CLI.

Small adapters (a handful of tensors) keep each merge around a second; the logits of a whole
merged model are compared in test_gguf_merge_logits.py (slow).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import numpy.typing as npt
import pytest

from ftrag_desktop.cli import main
from ftrag_desktop.core.gguf_lora import convert_peft_to_gguf, open_gguf
from ftrag_desktop.core.gguf_merge import _check_space, merge_adapter, verify_gguf
from ftrag_desktop.errors import Cancelled, ModelFileError, ModelImportFailed
from tests.gguf_files import write_lora_gguf, write_model_gguf, write_peft_adapter
from tests.lora_adapters import (
    HEAD_DIM,
    HEADS,
    KV_HEADS,
    peft_name,
    random_adapter,
    write_config,
    write_safetensors,
)
from tests.ollama_server import smollm2_path

NO_SERVER = "http://127.0.0.1:9"  # merging needs no Ollama
MODULES = ("q_proj", "k_proj", "v_proj", "down_proj")
LAYERS = (0, 1)
CHANGED = {
    f"blk.{i}.{kind}.weight" for i in LAYERS for kind in ("attn_q", "attn_k", "attn_v", "ffn_down")
}


def tensors(path: Path) -> dict[str, Any]:
    return {t.name: t for t in open_gguf(path).tensors}


def weight(tensor: Any) -> npt.NDArray[np.float32]:
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
    return np.asarray(gguf.dequantize(tensor.data, tensor.tensor_type)).reshape(shape)


def hf_to_gguf_rows(n_head: int) -> list[int]:
    """The GGUF row holding each Hugging Face Q/K row: within a head, HF keeps the halves of a
    rotary pair apart (i, i + d/2), llama.cpp's GGUF puts them side by side (2i, 2i + 1)."""
    half = HEAD_DIM // 2
    return [
        h * HEAD_DIM + 2 * i + part for h in range(n_head) for part in (0, 1) for i in range(half)
    ]


def expected_delta(folder: Path, layer: int, module: str, scale: float) -> npt.NDArray[np.float32]:
    """scale * B @ A from the safetensors file, rows moved to GGUF order for Q and K."""
    arrays = read_safetensors(folder / "adapter_model.safetensors")
    full = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj"}.get(module)
    full = full or {"v_proj": "self_attn.v_proj", "down_proj": "mlp.down_proj"}[module]
    a = arrays[peft_name(layer, full, "A")].astype(np.float32)
    b = arrays[peft_name(layer, full, "B")].astype(np.float32)
    delta = scale * (b @ a)
    if module in ("q_proj", "k_proj"):
        gguf_delta = np.empty_like(delta)
        gguf_delta[hf_to_gguf_rows(HEADS if module == "q_proj" else KV_HEADS)] = delta
        return gguf_delta
    return delta


def read_safetensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": "<f4", "F16": "<f2"}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        data = np.frombuffer(raw[8 + n + begin : 8 + n + end], dtype=dtypes[meta["dtype"]])
        out[name] = data.reshape(meta["shape"])
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The module's model files (hundreds of MB): removed when its tests are done."""
    folder = tmp_path_factory.mktemp("merge")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def adapter(work: Path) -> Path:
    return random_adapter(work / "adapter", seed=3, modules=MODULES, layers=LAYERS)


@pytest.fixture(scope="module")
def merged_q8(work: Path, adapter: Path) -> tuple[Path, Any]:
    out = work / "merged-q8.gguf"
    return out, merge_adapter(smollm2_path(), adapter, out, out_type="Q8_0")


@pytest.fixture(scope="module")
def merged_f32(work: Path, adapter: Path) -> tuple[Path, Any]:
    out = work / "merged-f32.gguf"
    return out, merge_adapter(smollm2_path(), adapter, out, out_type="F32")


# ---- the weights ------------------------------------------------------------------------------


def test_merged_tensors_are_base_plus_scaled_lora_with_qk_rows_in_gguf_order(
    merged_f32: tuple[Path, Any], adapter: Path
) -> None:
    out, result = merged_f32
    assert set(result.merged) == CHANGED and result.tensors_merged == len(CHANGED)
    base, new = tensors(smollm2_path()), tensors(out)
    for name in sorted(CHANGED):
        layer, kind = int(name.split(".")[1]), name.split(".")[2]
        module = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj"}.get(kind, "down_proj")
        assert new[name].tensor_type == gguf.GGMLQuantizationType.F32
        want = weight(base[name]) + expected_delta(adapter, layer, module, 16 / 8)
        np.testing.assert_allclose(weight(new[name]), want, rtol=0, atol=1e-6)
        # The delta is far from negligible: the test would notice a missing or misplaced one.
        assert np.abs(want - weight(base[name])).max() > 0.01


def test_q8_0_merge_quantizes_only_the_merged_tensors_and_sets_the_file_type(
    merged_q8: tuple[Path, Any], merged_f32: tuple[Path, Any]
) -> None:
    out, result = merged_q8
    assert result.out_type == "Q8_0" and result.file_type == "Q4_1"  # most weights stay Q4_1
    exact, q8 = tensors(merged_f32[0]), tensors(out)
    for name in CHANGED:
        assert q8[name].tensor_type == gguf.GGMLQuantizationType.Q8_0
        ref = weight(exact[name])
        error = np.abs(weight(q8[name]) - ref).max()
        assert error <= np.abs(ref).max() / 127 + 1e-6  # one Q8_0 step at most
    meta = open_gguf(out)
    assert meta.fields["general.file_type"].contents() == int(gguf.LlamaFileType.MOSTLY_Q4_1)


def test_untouched_tensors_are_copied_byte_for_byte_in_order(merged_q8: tuple[Path, Any]) -> None:
    out, _ = merged_q8
    base, new = open_gguf(smollm2_path()), open_gguf(out)
    assert [t.name for t in new.tensors] == [t.name for t in base.tensors]
    assert new.alignment == base.alignment
    copied = 0
    for b, n in zip(base.tensors, new.tensors, strict=True):
        if b.name in CHANGED:
            continue
        assert n.tensor_type == b.tensor_type and list(n.shape) == list(b.shape)
        assert n.data_offset % new.alignment == 0
        assert np.array_equal(np.asarray(n.data), np.asarray(b.data)), b.name
        copied += 1
    assert copied == len(base.tensors) - len(CHANGED) == 264


def test_metadata_tokenizer_and_chat_template_are_kept_with_provenance(
    merged_q8: tuple[Path, Any], adapter: Path
) -> None:
    out, _ = merged_q8
    base, new = open_gguf(smollm2_path()), open_gguf(out)
    replaced = {"general.file_type"}
    for key in base.fields:
        if key.startswith("GGUF.") or key in replaced:
            continue
        assert raw_field(new, key) == raw_field(base, key), key  # tokens, merges, template, ...
    assert new.fields["ftrag.merge.tensors"].contents() == len(CHANGED)
    assert new.fields["ftrag.merge.adapter_format"].contents() == "peft"
    sha = hashlib.sha256((adapter / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert new.fields["ftrag.merge.adapter_sha256"].contents() == sha
    assert new.fields["general.base_model.count"].contents() == 1
    base_name = base.fields["general.name"].contents()
    assert new.fields["general.base_model.0.name"].contents() == base_name
    # llama.cpp reads the same vocabulary, tokenizer and template from both files.
    a, b = (
        llama_cpp.Llama(model_path=str(p), vocab_only=True, verbose=False)
        for p in (smollm2_path(), out)
    )
    try:
        assert a.n_vocab() == b.n_vocab() == 49152
        text = "Merged models keep their <|im_start|>tokenizer, naïvely: 12345!".encode()
        assert a.tokenize(text, special=True) == b.tokenize(text, special=True)
        assert b.metadata["tokenizer.chat_template"] == a.metadata["tokenizer.chat_template"]
        assert b.metadata["general.architecture"] == "llama"
    finally:
        a.close()
        b.close()


def test_a_merged_model_can_be_the_base_of_another_merge(
    merged_q8: tuple[Path, Any], tmp_path: Path
) -> None:
    second = random_adapter(tmp_path / "second", seed=9, modules=("o_proj",), layers=(5,))
    out = tmp_path / "twice.gguf"
    result = merge_adapter(merged_q8[0], second, out, out_type="F16", name="tuned twice")
    assert result.merged == ("blk.5.attn_output.weight",)
    fields = open_gguf(out).fields  # the reader refuses files with a key twice
    assert fields["general.name"].contents() == "tuned twice"
    assert fields["ftrag.merge.adapter"].contents() == "second"
    assert fields["ftrag.merge.tensors"].contents() == 1
    assert fields["general.base_model.0.name"].contents() == "Smollm2 135M 8k Lc100K Mix1 Ep2"
    first = tensors(merged_q8[0])["blk.0.attn_q.weight"]
    again = tensors(out)["blk.0.attn_q.weight"]  # the first merge's weights are kept as they are
    assert again.tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert np.array_equal(np.asarray(again.data), np.asarray(first.data))


def raw_field(reader: Any, key: str) -> bytes:
    """The bytes of one metadata entry (key, type and value) as they sit in the file."""
    fields = [f for f in reader.fields.values() if not f.name.startswith("GGUF.")]
    ends = [f.offset for f in fields[1:]] + [reader.tensors[0].field.offset]
    for field, end in zip(fields, ends, strict=True):
        if field.name == key:
            return bytes(reader.data[field.offset : end])
    raise KeyError(key)


def test_gguf_lora_file_is_written_as_llama_cpp_expects_and_merges_identically(
    work: Path, adapter: Path, merged_f32: tuple[Path, Any]
) -> None:
    lora = convert_peft_to_gguf(adapter, smollm2_path(), work / "adapter.gguf")
    reader = gguf.GGUFReader(lora)
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 16.0
    assert reader.fields["general.architecture"].contents() == "llama"
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}  # GGUF: ne0 first
    assert shapes["blk.0.attn_k.weight.lora_a"] == [576, 8]
    assert shapes["blk.0.attn_k.weight.lora_b"] == [8, 192]
    assert shapes["blk.0.ffn_down.weight.lora_a"] == [1536, 8]
    assert len(shapes) == 2 * len(CHANGED)
    out = work / "from-gguf.gguf"
    result = merge_adapter(smollm2_path(), lora, out, out_type="F32")
    assert result.adapter_format == "gguf" and set(result.merged) == CHANGED
    peft_merged, gguf_merged = tensors(merged_f32[0]), tensors(out)
    for name in CHANGED:
        np.testing.assert_allclose(
            weight(gguf_merged[name]), weight(peft_merged[name]), rtol=0, atol=1e-6
        )


def test_bf16_and_rslora_adapters_merge_with_the_right_scale(work: Path) -> None:
    folder = random_adapter(
        work / "bf16", seed=5, modules=("v_proj",), layers=(4,), dtype="BF16", use_rslora=True
    )
    out = work / "bf16.gguf"
    result = merge_adapter(smollm2_path(), folder, out, out_type="F32")
    assert result.merged == ("blk.4.attn_v.weight",)
    raw = (folder / "adapter_model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    parts = {}
    for part in ("A", "B"):
        meta = header[peft_name(4, "self_attn.v_proj", part)]
        begin, end = meta["data_offsets"]
        bits = np.frombuffer(raw[8 + n + begin : 8 + n + end], dtype="<u2").astype(np.uint32)
        parts[part] = (bits << 16).view(np.float32).reshape(meta["shape"])
    scale = 16 / math.sqrt(8)  # rsLoRA: alpha / sqrt(r)
    base = tensors(smollm2_path())["blk.4.attn_v.weight"]
    want = weight(base) + scale * (parts["B"] @ parts["A"])
    got = weight(tensors(out)["blk.4.attn_v.weight"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("out_type", "steps"), [("BF16", 256), ("Q5_1", 31), ("Q4_0", 15)])
def test_other_out_types_round_to_their_own_precision(
    work: Path, adapter: Path, merged_f32: tuple[Path, Any], out_type: str, steps: int
) -> None:
    out = work / f"merged-{out_type}.gguf"
    result = merge_adapter(smollm2_path(), adapter, out, out_type=out_type.lower())
    assert result.out_type == out_type and not result.fallback_f16
    exact, new = tensors(merged_f32[0]), tensors(out)
    for name in CHANGED:
        assert new[name].tensor_type.name == out_type
        ref = weight(exact[name])
        # A block's values lie within one quantization step of the exact ones.
        assert np.abs(weight(new[name]) - ref).max() <= 2 * np.abs(ref).max() / steps


def test_rows_that_do_not_fit_the_blocks_are_written_as_f16(tmp_path: Path) -> None:
    base = write_model_gguf(tmp_path / "narrow.gguf", width=40, layers=2)  # 40 % 32 != 0
    lora = write_lora_gguf(tmp_path / "lora.gguf", width=40, layers=2)
    result = merge_adapter(base, lora, tmp_path / "out.gguf", out_type="Q8_0")
    assert result.fallback_f16 == ("blk.0.attn_q.weight", "blk.1.attn_q.weight")
    new = tensors(tmp_path / "out.gguf")
    assert new["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert new["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert result.file_type == "F16"  # the file's weights are now mostly F16


# ---- refusals ---------------------------------------------------------------------------------


def refused(adapter: Path, out: Path, *, base: Path | None = None) -> str:
    with pytest.raises(ModelFileError) as info:
        merge_adapter(base or smollm2_path(), adapter, out)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".partial")]
    assert info.value.hint
    return info.value.message


def test_an_adapter_for_another_model_is_refused_by_name(tmp_path: Path) -> None:
    wide = write_peft_adapter(tmp_path / "wide", width=2048, layers=2)
    message = refused(wide, tmp_path / "out.gguf")
    assert "does not fit the base model" in message
    assert "maps 2048 inputs to 2048 outputs" in message and "maps 576 to 576" in message

    deep = random_adapter(tmp_path / "deep", modules=("q_proj",), layers=(0, 31))
    message = refused(deep, tmp_path / "out.gguf")
    assert "trained for a model with at least 32 layers" in message and "has 30" in message

    qwen = write_lora_gguf(tmp_path / "qwen.gguf", arch="qwen2", width=576)
    assert "adapter for a qwen2 model" in refused(qwen, tmp_path / "out.gguf")


def test_unknown_modules_and_unsupported_adapters_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    a, b = np.ones((4, 576), np.float32), np.ones((576, 4), np.float32)
    write_safetensors(
        folder / "adapter_model.safetensors",
        {
            "base_model.model.model.layers.0.mlp.mystery_proj.lora_A.weight": a,
            "base_model.model.model.layers.0.mlp.mystery_proj.lora_B.weight": b,
        },
    )
    write_config(folder, r=4)
    message = refused(folder, tmp_path / "out.gguf")
    assert "layers.0.mlp.mystery_proj has no counterpart in a llama GGUF" in message

    write_safetensors(
        folder / "adapter_model.safetensors",
        {
            "base_model.model.lm_head.lora_A.weight": a,
            "base_model.model.lm_head.lora_B.weight": np.ones((49152, 4), np.float32),
        },
    )
    message = refused(folder, tmp_path / "out.gguf")
    assert "lm_head adapts output.weight, which Smollm2 135M" in message
    assert "shares the token embeddings" in message

    write_config(folder, r=4, use_dora=True)
    assert "DoRA" in refused(folder, tmp_path / "out.gguf")

    model = write_model_gguf(tmp_path / "model.gguf")
    assert "is a GGUF model, not a LoRA adapter" in refused(model, tmp_path / "out.gguf")
    lora = write_lora_gguf(tmp_path / "lora.gguf")
    message = refused(random_adapter(tmp_path / "x", layers=(0,)), tmp_path / "o.gguf", base=lora)
    assert "is a GGUF adapter, not a whole model" in message


def test_damaged_adapters_are_refused(tmp_path: Path) -> None:
    folder = random_adapter(tmp_path / "cut", modules=("q_proj",), layers=(0, 1))
    weights = folder / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])  # an interrupted copy
    message = refused(folder, tmp_path / "out.gguf")
    assert "is damaged" in message and "lora_B" in message

    nan = random_adapter(tmp_path / "nan", modules=("q_proj",), layers=(0,))
    arrays = read_safetensors(nan / "adapter_model.safetensors")
    arrays = {k: np.array(v) for k, v in arrays.items()}
    arrays[peft_name(0, "self_attn.q_proj", "B")][3, 1] = np.nan
    write_safetensors(nan / "adapter_model.safetensors", arrays)
    assert "invalid numbers (NaN or infinity)" in refused(nan, tmp_path / "out.gguf")

    (tmp_path / "empty").mkdir()
    assert "no adapter_config.json" in refused(tmp_path / "empty", tmp_path / "out.gguf")

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(64))
    assert "cannot be read" in refused(junk, tmp_path / "out.gguf")


def test_bad_output_choices_are_refused_before_any_work(tmp_path: Path, adapter: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot be written as Q3_K"):
        merge_adapter(smollm2_path(), adapter, tmp_path / "o.gguf", out_type="Q3_K")
    with pytest.raises(ModelFileError, match="is the base model itself"):
        merge_adapter(smollm2_path(), adapter, smollm2_path())
    with pytest.raises(ModelImportFailed, match="Not enough disk space") as info:
        _check_space(tmp_path, 10**18)  # an exabyte: more than any disk here
    assert "another disk" in info.value.hint


def test_cancel_stops_the_merge_and_leaves_no_file(tmp_path: Path, adapter: Path) -> None:
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done > total // 3:
            cancel.set()

    out = tmp_path / "out.gguf"
    with pytest.raises(Cancelled):
        merge_adapter(smollm2_path(), adapter, out, progress=progress, cancel=cancel)
    assert seen and seen[-1][0] < seen[-1][1]
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file


def test_progress_reaches_the_total(tmp_path: Path) -> None:
    folder = random_adapter(tmp_path / "a", modules=("v_proj",), layers=(0,))
    seen: list[tuple[int, int]] = []
    merge_adapter(
        smollm2_path(), folder, tmp_path / "o.gguf", progress=lambda d, t: seen.append((d, t))
    )
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and seen[-1][0] == seen[-1][1] > 90_000_000


# ---- checking and the CLI ------------------------------------------------------------------------


def test_verify_reports_files_that_do_not_load(tmp_path: Path) -> None:
    broken = write_model_gguf(tmp_path / "tiny.gguf")  # a real GGUF, but no usable model
    with pytest.raises(ModelFileError, match=r"does not load in llama\.cpp"):
        verify_gguf(broken)


def test_cli_merges_verifies_and_reports_json_events(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, adapter: Path
) -> None:
    out = tmp_path / "tuned.gguf"
    args = ["merge-adapter", "--base", str(smollm2_path()), "--adapter", str(adapter)]
    code = main(["--ollama-host", NO_SERVER, *args, "--out", str(out), "--json", "--verify"])
    stdout, _ = capsys.readouterr()
    events = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0
    assert [e["event"] for e in events][:2] == ["started", "progress"]
    assert [e["event"] for e in events][-2:] == ["merged", "verified"]
    merged = events[-2]
    assert merged["out"] == str(out) and merged["out_type"] == "Q8_0"
    assert set(merged["merged"]) == CHANGED and merged["tensors_merged"] == len(CHANGED)
    assert merged["bytes"] == out.stat().st_size
    assert isinstance(events[-1]["reply"], str)

    code = main(["--ollama-host", NO_SERVER, *args, "--out", str(out), "--json"])
    _, stderr = capsys.readouterr()
    assert code == 1 and "already exists" in stderr and "--force" in stderr

    wide = write_peft_adapter(tmp_path / "wide", width=2048, layers=2)
    bad = ["merge-adapter", "--base", str(smollm2_path()), "--adapter", str(wide)]
    code = main(["--ollama-host", NO_SERVER, *bad, "--out", str(tmp_path / "x.gguf")])
    stdout, stderr = capsys.readouterr()
    assert code == 1 and "error: wide does not fit the base model" in stderr
    assert "hint: Choose the base model" in stderr
    assert not (tmp_path / "x.gguf").exists()


def test_cli_prints_progress_and_the_merged_tensors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, adapter: Path
) -> None:
    out = tmp_path / "tuned.gguf"
    code = main(
        [
            "--ollama-host",
            NO_SERVER,
            *("merge-adapter", "--base", str(smollm2_path()), "--adapter", str(adapter)),
            *("--out", str(out), "--out-type", "f16", "--no-verify"),
        ]
    )
    stdout, stderr = capsys.readouterr()
    assert code == 0
    assert "merging 100%" in stderr and "Checking" not in stderr
    assert f"Merged 8 tensors into {out}" in stdout
    assert "merged (F16): ffn_down x2, attn_k x2, attn_q x2, attn_v x2" in stdout
