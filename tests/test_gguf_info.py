"""Reading model files by their bytes: GGUF models and adapters, PEFT folders, chat templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftrag_desktop.core.chat_template import is_go_template, to_go_template
from ftrag_desktop.core.gguf_info import is_gguf, read_adapter_folder, read_gguf
from ftrag_desktop.errors import ModelFileError
from tests.gguf_files import (
    CHATML_JINJA,
    ODD_JINJA,
    write_junk,
    write_lora_gguf,
    write_model_gguf,
    write_peft_adapter,
)
from tests.ollama_server import smollm2_path


def test_a_model_gguf_reports_its_metadata(tmp_path: Path) -> None:
    path = write_model_gguf(
        tmp_path / "tuned.gguf", width=64, layers=3, context_length=4096, base_model="Base 1B"
    )
    info = read_gguf(path)
    assert (info.kind, info.architecture, info.is_adapter) == ("model", "llama", False)
    assert (info.context_length, info.embedding_length, info.block_count) == (4096, 64, 3)
    assert info.chat_template == CHATML_JINJA
    assert info.quantization == "F32" and info.size_label == "1M"
    assert info.tensor_count == 4  # token_embd + one attn_q per layer
    assert info.parameter_count == 32 * 64 + 3 * 64 * 64
    assert info.base_models == ("Base 1B",)
    assert info.file_size == path.stat().st_size and info.version == 3


def test_a_lora_gguf_is_an_adapter_with_its_width_and_layers(tmp_path: Path) -> None:
    info = read_gguf(write_lora_gguf(tmp_path / "lora.gguf", width=576, layers=5, rank=8))
    assert info.is_adapter and info.kind == "adapter" and info.architecture == "llama"
    assert (info.adapter_width, info.adapter_layers) == (576, 5)
    assert info.lora_alpha == 16.0
    assert info.chat_template is None and info.tensor_count == 10


def test_the_extension_is_never_trusted(tmp_path: Path) -> None:
    junk = write_junk(tmp_path / "model.gguf")
    assert not is_gguf(junk)
    with pytest.raises(ModelFileError, match="not a GGUF file") as err:
        read_gguf(junk)
    assert "convert" in err.value.hint
    # and a real GGUF under another name is still read as one
    renamed = write_model_gguf(tmp_path / "weights.bin")
    assert is_gguf(renamed) and read_gguf(renamed).architecture == "llama"


def test_empty_missing_and_truncated_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        read_gguf(empty)
    with pytest.raises(ModelFileError, match="does not exist"):
        read_gguf(tmp_path / "nowhere.gguf")
    with pytest.raises(ModelFileError, match="is not a file"):
        read_gguf(tmp_path)
    full = write_model_gguf(tmp_path / "full.gguf", padding_mb=1)
    data = full.read_bytes()
    with smollm2_path().open("rb") as f:
        real = f.read(3_000_000)
    cuts = [
        (data, 200),  # inside the metadata
        (data, len(data) // 2),  # inside the tensor data
        (real, 1_000_000),  # inside the tokenizer's vocabulary array
        (real, 3_000_000),  # past the metadata, the tensors missing
    ]
    for source, cut in cuts:
        broken = tmp_path / f"cut-{cut}.gguf"
        broken.write_bytes(source[:cut])
        with pytest.raises(ModelFileError, match="cannot be read") as err:
            read_gguf(broken)
        assert "truncated" in err.value.hint


def test_the_real_smollm2_gguf() -> None:
    info = read_gguf(smollm2_path())
    assert (info.architecture, info.kind, info.quantization) == ("llama", "model", "Q4_1")
    assert (info.context_length, info.embedding_length, info.block_count) == (8192, 576, 30)
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.file_size == 98_362_432
    assert 100_000_000 < info.parameter_count < 200_000_000


def test_a_peft_adapter_folder(tmp_path: Path) -> None:
    folder = write_peft_adapter(tmp_path / "adapter", width=576, layers=4, rank=8, base="Org/M")
    info = read_adapter_folder(folder)
    assert (info.peft_type, info.rank, info.alpha, info.base_model) == ("LORA", 8, 16.0, "Org/M")
    assert (info.adapter_width, info.adapter_layers, info.tensor_count) == (576, 4, 8)
    assert info.weights_file.name == "adapter_model.safetensors"
    assert info.target_modules == ("q_proj",)


def test_adapter_folders_that_are_not_lora_adapters(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"no adapter_config\.json"):
        read_adapter_folder(tmp_path)
    folder = write_peft_adapter(tmp_path / "a")
    config = folder / "adapter_config.json"
    config.write_text(json.dumps({"peft_type": "PROMPT_TUNING"}))
    with pytest.raises(ModelFileError, match="PROMPT_TUNING adapter"):
        read_adapter_folder(folder)
    config.write_text("{not json")
    with pytest.raises(ModelFileError, match="cannot be read"):
        read_adapter_folder(folder)
    config.write_text(json.dumps({"peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        read_adapter_folder(folder)
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"no adapter_model\.safetensors"):
        read_adapter_folder(folder)


# --- chat templates ----------------------------------------------------------------------------


def test_chatml_jinja_becomes_ollamas_chatml_template() -> None:
    converted = to_go_template(CHATML_JINJA)
    assert converted is not None and converted.format == "chatml"
    assert converted.stop == ("<|im_end|>",)
    assert converted.template == (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
        "{{ .Content }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n"
    )
    assert is_go_template(converted.template) and not is_go_template(CHATML_JINJA)


@pytest.mark.parametrize(
    ("jinja", "fmt", "stop"),
    [
        (
            "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
            "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}",
            "llama3",
            "<|eot_id|>",
        ),
        (
            "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
            "<end_of_turn>\n{% endfor %}<start_of_turn>model\n",
            "gemma",
            "<end_of_turn>",
        ),
        (
            "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n"
            "{% endfor %}<|user|><|assistant|>",
            "phi3",
            "<|end|>",
        ),
        (
            "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
            "mistral",
            "[INST]",
        ),
    ],
)
def test_known_formats_are_recognised_by_their_tokens(jinja: str, fmt: str, stop: str) -> None:
    converted = to_go_template(jinja)
    assert converted is not None and converted.format == fmt and stop in converted.stop
    assert "{%" not in converted.template and ".Messages" in converted.template


def test_go_templates_pass_through_and_unknown_ones_are_refused() -> None:
    go = "{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}"
    converted = to_go_template(go)
    assert converted is not None and converted.format == "go" and converted.template == go
    assert to_go_template(ODD_JINJA) is None
    assert to_go_template("   ") is None
