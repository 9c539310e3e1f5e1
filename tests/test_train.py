"""Fine-tuning, the fast parts: the [train] extra's detection, the estimate and its refusal,
the training data, answer-only labels, the base model behind an Ollama name, cancel and
resume of the training loop (on a tiny random llama), the JSON events, and `ftrag train`'s
exit codes.  The real model end to end is tests/test_train_e2e.py."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from ftrag_desktop.cli import main
from ftrag_desktop.core import train_env
from ftrag_desktop.core import train_events as te
from ftrag_desktop.core.models import Lineage
from ftrag_desktop.core.train_base import BaseNotFound, find_ollama_blob, resolve_base
from ftrag_desktop.core.train_data import (
    IGNORE,
    Encoded,
    TrainDataError,
    encode_all,
    load_training_data,
)
from ftrag_desktop.core.train_env import Device, TrainExtraMissing
from ftrag_desktop.core.train_estimate import TrainTooLarge, check_fits, estimate
from ftrag_desktop.core.train_loop import latest_checkpoint, lr_factor, train_adapter
from ftrag_desktop.core.train_options import TrainOptions, run_id
from ftrag_desktop.errors import Cancelled
from tests.ollama_server import OllamaTestServer, smollm2_path

REPO = Path(__file__).resolve().parent.parent


def conversation(question: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def export(folder: Path, n: int, valid: int = 0) -> Path:
    write_jsonl(folder / "train.jsonl", [conversation(f"Q{i}?", f"A{i}.") for i in range(n)])
    if valid:
        rows = [conversation(f"V{i}?", f"B{i}.") for i in range(valid)]
        write_jsonl(folder / "valid.jsonl", rows)
    return folder


# --- the extra ------------------------------------------------------------------------------


def test_the_extra_is_detected_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from ftrag_desktop.core import train_env, train_options, train_events\n"
        "extra = train_env.detect_extra()\n"
        "assert extra.installed and extra.versions['torch'].startswith('2.13.0'), extra\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_a_missing_package_is_named_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    packages = {**train_env.TRAIN_PACKAGES, "ftrag_no_such_module": "ftrag-no-such-dist"}
    monkeypatch.setattr(train_env, "TRAIN_PACKAGES", packages)
    extra = train_env.detect_extra()
    assert not extra.installed and extra.missing == ("ftrag-no-such-dist",)
    assert "peft" in extra.versions and "torch" in extra.versions
    assert 'pip install "ftrag-desktop[train]"' in extra.hint
    with pytest.raises(TrainExtraMissing) as caught:
        train_env.require_extra()
    assert "ftrag-no-such-dist is missing" in caught.value.message
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert "installed app leaves out" in train_env.install_hint(("torch",))


def test_ftrag_train_without_the_extra_exits_2_with_the_hint(
    monkeypatch: pytest.MonkeyPatch,
    ollama_server: OllamaTestServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(train_env, "TRAIN_PACKAGES", {"ftrag_no_such_module": "peft"})
    args = ["--ollama-host", ollama_server.url, "train", "--base", str(smollm2_path())]
    args += ["--data", str(export(tmp_path / "d", 3)), "--name", "tuned"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: Fine-tuning is not installed: peft is missing." in err
    assert "hint: Training needs peft" in err and "ftrag-desktop[train]" in err
    assert main([*args, "--json"]) == 2
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"event": "stage", "stage": "checking", "text": lines[0]["text"]}
    last = lines[-1]
    assert last["event"] == "error" and last["error"] == "TrainExtraMissing"
    assert last["exit_code"] == 2 and "ftrag-desktop[train]" in last["hint"]


# --- the estimate ---------------------------------------------------------------------------


def test_the_estimate_counts_lora_parameters_and_refuses_what_cannot_fit(tmp_path: Path) -> None:
    base = resolve_base(str(smollm2_path()), None)
    data = load_training_data(export(tmp_path / "d", 20, valid=2))
    roomy = Device("cpu", "test", 24 << 30, 2)
    est = estimate(base, data, TrainOptions(), roomy, 5e10)
    # What peft reports for SmolLM2-135M with rank 8 on every linear layer of its 30 blocks.
    assert est.trainable_parameters == 2_442_240
    assert est.parameters == base.info.parameter_count > 100_000_000
    assert (est.steps_per_epoch, est.steps, est.epochs) == (5, 15, 3.0)
    assert est.tokens_per_s > 0 and est.seconds > 0 and est.throughput_source == "measured"
    assert 540_000_000 < est.peak_memory_bytes < 4_000_000_000  # float32 weights and more
    assert est.fits
    check_fits(est, TrainOptions())
    qv = estimate(base, data, TrainOptions(target_modules=("q_proj", "v_proj")), roomy)
    assert qv.trainable_parameters == 8 * 30 * ((576 + 576) + (576 + 192))
    assert qv.throughput_source == "assumed"
    longer = estimate(base, data, TrainOptions(max_length=4096, batch_size=16), roomy)
    assert longer.peak_memory_bytes >= est.peak_memory_bytes

    small = estimate(base, data, TrainOptions(), Device("cpu", "test", 300 << 20, 2))
    assert not small.fits
    with pytest.raises(TrainTooLarge) as caught:
        check_fits(small, TrainOptions(max_length=512))
    assert "needs about" in caught.value.message and "only 315 MB is free" in caught.value.message
    assert "max length (now 512 tokens)" in caught.value.hint


def test_ftrag_train_estimate_only_refuses_in_json(
    monkeypatch: pytest.MonkeyPatch,
    ollama_server: OllamaTestServer,
    tmp_path: Path,
    ftrag_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ftrag_desktop.core import train_device

    data = str(export(tmp_path / "d", 4))
    args = ["--ollama-host", ollama_server.url, "train", "--base", str(smollm2_path())]
    args += ["--data", data, "--name", "tuned", "--estimate-only", "--json"]
    assert main(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    events = [line["event"] for line in lines]
    assert events == ["stage", "estimate", "notice", "estimated"]
    est = lines[1]
    assert est["estimate"]["fits"] is True and est["base"]["architecture"] == "llama"
    assert est["data"]["train_examples"] == 4 and est["options"]["rank"] == 8
    assert Path(est["run_dir"]).parent == ftrag_home / "training"  # under the data home
    assert lines[-1] == {"event": "estimated", "fits": True}

    monkeypatch.setattr(train_device, "available_memory_bytes", lambda: 100 << 20)
    assert main(args) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[1]["estimate"]["fits"] is False
    assert lines[-1]["event"] == "error" and lines[-1]["error"] == "TrainTooLarge"
    assert lines[-1]["exit_code"] == 1


# --- data -----------------------------------------------------------------------------------


def test_training_data_is_checked_line_by_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad" / "train.jsonl"
    bad.parent.mkdir()
    bad.write_text(
        json.dumps(conversation("Q?", "A.")) + "\n"
        "{not json\n"
        + json.dumps({"messages": [{"role": "user", "content": "only a question"}]})
        + "\n"
        + json.dumps({"messages": [{"role": "robot", "content": "x"}]})
        + "\n\n"
        + json.dumps({"text": "no messages"})
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(TrainDataError) as caught:
        load_training_data(bad.parent)
    text = caught.value.message
    assert "4 unusable line(s)" in text
    assert "line 2: not JSON" in text
    assert "line 3: the last message must be the assistant's answer" in text
    assert "line 4: message 0 has no role" in text
    assert "line 6: no 'messages' list" in text
    assert "export-finetune" in caught.value.hint

    empty = write_jsonl(tmp_path / "empty" / "train.jsonl", [])
    with pytest.raises(TrainDataError, match="holds no training examples"):
        load_training_data(empty)
    with pytest.raises(TrainDataError, match=r"holds no train\.jsonl"):
        load_training_data(tmp_path / "bad" / "..")
    with pytest.raises(TrainDataError, match="There is no file"):
        load_training_data(tmp_path / "missing.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"messages": "\xe9"}\n')
    with pytest.raises(TrainDataError, match="not UTF-8"):
        load_training_data(tmp_path / "latin1.jsonl")


def test_validation_comes_from_valid_jsonl_or_is_split_off(tmp_path: Path) -> None:
    with_valid = load_training_data(export(tmp_path / "a", 12, valid=3))
    assert (len(with_valid.train), len(with_valid.valid)) == (12, 3)
    assert with_valid.valid_file is not None and not with_valid.split_off
    split = load_training_data(export(tmp_path / "b", 12) / "train.jsonl", val_fraction=0.25)
    assert (len(split.train), len(split.valid)) == (9, 3) and split.split_off
    again = load_training_data(export(tmp_path / "b", 12), val_fraction=0.25)
    assert again.valid == split.valid  # seeded: the same split every time
    tiny = load_training_data(export(tmp_path / "c", 5))
    assert (len(tiny.train), len(tiny.valid)) == (5, 0)
    assert with_valid.sha256 != load_training_data(export(tmp_path / "d", 12)).sha256


class ChatMLTokenizer:
    """A character-level stand-in with a ChatML template and offsets, as a fast tokenizer has."""

    chat_template = "chatml"

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> str:
        text = "".join(f"<{m['role']}>{m['content']}</s>\n" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text: str, **kwargs: Any) -> dict[str, Any]:
        offsets = [(i, i + 1) for i in range(len(text))]
        return {"input_ids": [ord(c) for c in text], "offset_mapping": offsets}


def test_only_the_answers_are_trained_on_and_long_examples_are_cut() -> None:
    tok = ChatMLTokenizer()
    two_turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "and?"},
        {"role": "assistant", "content": "ok"},
    ]
    (enc,), stats = encode_all(tok, [two_turns], 200)
    trained = "".join(chr(t) for t, label in zip(enc.input_ids, enc.labels, strict=True)
                      if label != IGNORE)  # fmt: skip
    assert trained == "yo</s>\nok</s>\n"  # both answers with their end-of-turn, no prompt
    assert stats.trained_tokens == len(trained) and stats.truncated == 0

    long_answer = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a" * 50}]
    long_prompt = [{"role": "user", "content": "q" * 50}, {"role": "assistant", "content": "a"}]
    encoded, stats = encode_all(tok, [long_answer, long_prompt], 30)
    assert [len(e.input_ids) for e in encoded] == [30, 30]
    assert (stats.truncated, stats.dropped, stats.longest) == (2, 0, 78)
    assert "middle of their prompt" in stats.notes[0]
    text = ["".join(chr(t) for t in e.input_ids) for e in encoded]
    # An over-long prompt loses its middle: its start and the answer after it stay whole.
    assert text[1] == "<user>qqqqqq" + "\n<assistant>a</s>\n"
    assert encoded[1].trained_tokens == len("a</s>\n")
    # An answer longer than the max length keeps its start.
    assert text[0] == "<user>q</s>\n<assistant>" + "a" * 7

    class NoTemplate(ChatMLTokenizer):
        chat_template = None

    with pytest.raises(TrainDataError, match="no chat template"):
        encode_all(NoTemplate(), [long_answer], 30)


# --- the base model -------------------------------------------------------------------------


def test_the_gguf_behind_an_ollama_model_is_found_in_its_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = tmp_path / "ollama-models"
    blob = store / "blobs" / ("sha256-" + "ab" * 32)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"GGUF")
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    layers = [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "cd" * 32},
        {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + "ab" * 32},
    ]
    for parts in (("library", "smollm2", "135m"), ("someone", "tuned", "latest")):
        manifest = store.joinpath("manifests", "registry.ollama.ai", *parts)
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({"layers": layers}))
    show = {"modelfile": "FROM smollm2:135m\nTEMPLATE x\n"}
    assert find_ollama_blob("smollm2:135m", show) == blob
    assert find_ollama_blob("someone/tuned:latest", show) == blob
    # A FROM naming a file that exists (models pulled or imported here) is used directly.
    own = tmp_path / "own.gguf"
    own.write_bytes(b"GGUF")
    assert find_ollama_blob("x", {"modelfile": f"FROM {own}\n"}) == own
    with pytest.raises(BaseNotFound) as caught:
        find_ollama_blob("llama3.2:latest", show)
    assert str(store) in caught.value.message and "OLLAMA_MODELS" in caught.value.hint
    with pytest.raises(BaseNotFound, match="LoRA adapter on top"):
        find_ollama_blob("x", {"modelfile": f"FROM {own}\nADAPTER /b/sha256-1\n"})


def test_base_models_that_cannot_be_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ollama_server: OllamaTestServer
) -> None:
    from ftrag_desktop.core.llm import OllamaClient
    from ftrag_desktop.errors import ModelFileError, ModelNotFound

    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "empty-store"))
    client = OllamaClient(ollama_server.url)
    with pytest.raises(BaseNotFound, match="not readable on this machine"):
        resolve_base("smollm2:135m", client)  # the server has no file behind it
    with pytest.raises(ModelNotFound):
        resolve_base("no-such-model", client)
    with pytest.raises(BaseNotFound, match="There is no file"):
        resolve_base(str(tmp_path / "missing.gguf"), client)
    (tmp_path / "text.gguf").write_text("not a model")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        resolve_base(str(tmp_path / "text.gguf"), client)
    base = resolve_base(str(smollm2_path()), None)
    assert base.ollama_name == "" and base.info.architecture == "llama"
    client.close()


def test_an_architecture_transformers_cannot_load_is_named(tmp_path: Path) -> None:
    from dataclasses import replace

    from ftrag_desktop.core.train_model import UnsupportedArchitecture, check_architecture

    base = resolve_base(str(smollm2_path()), None)
    check_architecture(base)
    odd = replace(base, info=replace(base.info, architecture="rwkv7"))
    with pytest.raises(UnsupportedArchitecture) as caught:
        check_architecture(odd)
    assert "'rwkv7' model" in caught.value.message and "llama" in caught.value.message


# --- the loop: cancel and resume ------------------------------------------------------------


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models: a second torch thread only adds waiting (and much of it on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_peft_model(options: TrainOptions) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftrag_desktop.core.train_model import add_lora

    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    return add_lora(LlamaForCausalLM(config), options)


def tiny_examples(n: int) -> list[Encoded]:
    out = []
    for i in range(n):
        prompt = [1 + (i * 7 + k) % 60 for k in range(5 + i % 3)]
        answer = [2 + (i * 3 + k) % 50 for k in range(3 + i % 2)]
        out.append(Encoded(prompt + answer, [IGNORE] * len(prompt) + answer))
    return out


def adapter_weights(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def run_loop(
    model: Any, options: TrainOptions, run_dir: Path, cancel_after: int = 0, resume: bool = True
) -> list[te.TrainEvent]:
    cancel = threading.Event()
    events: list[te.TrainEvent] = []
    device = Device("cpu", "test", None, 1)
    data = tiny_examples(10)
    for ev in train_adapter(model, data, data[:3], options, run_dir, device, cancel,
                            pad_id=0, identity={"test": 1}, resume=resume):  # fmt: skip
        events.append(ev)
        if isinstance(ev, te.TrainStep) and ev.step == cancel_after:
            cancel.set()
    return events


def test_cancel_then_resume_continues_the_step_count_and_optimizer(
    tmp_path: Path, one_thread: None
) -> None:
    import torch

    options = TrainOptions(rank=4, alpha=8, lr=1e-2, epochs=2, batch_size=3, dropout=0.1,
                           eval_every=2, save_every=3, warmup_ratio=0.2)  # fmt: skip
    whole = tiny_peft_model(options)
    straight = run_loop(whole, options, tmp_path / "straight")
    assert [e.step for e in straight if isinstance(e, te.TrainStep)] == list(range(1, 9))

    first = tiny_peft_model(options)
    with pytest.raises(Cancelled):
        run_loop(first, options, tmp_path / "resumed", cancel_after=4)
    saved = latest_checkpoint(tmp_path / "resumed")
    assert saved is not None and saved.name == "checkpoint-4"  # the step it stopped at
    assert (saved / "adapter_model.safetensors").is_file() and (saved / "optimizer.pt").is_file()

    second = tiny_peft_model(options)  # a new process: fresh weights, state from the disk
    events = run_loop(second, options, tmp_path / "resumed")
    assert isinstance(events[0], te.TrainResumed) and events[0].step == 4
    steps = [e for e in events if isinstance(e, te.TrainStep)]
    assert [e.step for e in steps] == [5, 6, 7, 8] and steps[-1].total_steps == 8
    straight_steps = [e for e in straight if isinstance(e, te.TrainStep)]
    assert steps[0].tokens_seen == straight_steps[4].tokens_seen  # counts on from step 4
    # Resumed with its optimizer state, data order and random state, training ends exactly
    # where the uninterrupted run ended.
    for name, weight in adapter_weights(whole).items():
        torch.testing.assert_close(adapter_weights(second)[name], weight)
    assert [p.name for p in sorted((tmp_path / "resumed").glob("checkpoint-*"))] == [
        "checkpoint-6",
        "checkpoint-8",
    ]

    again = run_loop(tiny_peft_model(options), options, tmp_path / "resumed", resume=False)
    assert not any(isinstance(e, te.TrainResumed) for e in again)
    assert next(e for e in again if isinstance(e, te.TrainStep)).step == 1


def test_losses_fall_and_validation_runs_on_schedule(tmp_path: Path, one_thread: None) -> None:
    options = TrainOptions(rank=4, alpha=8, lr=2e-2, epochs=3, batch_size=5, dropout=0.0,
                           eval_every=3, grad_accum=2)  # fmt: skip
    events = run_loop(tiny_peft_model(options), options, tmp_path / "r")
    steps = [e for e in events if isinstance(e, te.TrainStep)]
    assert len(steps) == 3 and steps[-1].epoch == 3.0  # 2 batches x accumulation 2 = 1 epoch
    vals = [e for e in events if isinstance(e, te.ValidationLoss)]
    assert [v.step for v in vals] == [0, 3] and vals[-1].loss < vals[0].loss
    assert steps[-1].loss < steps[0].loss


def test_the_learning_rate_warms_up_then_decays_to_a_tenth() -> None:
    factors = [lr_factor(s, 20, 4) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(factors[3:]))
    assert factors[-1] == pytest.approx(0.1, abs=0.01)
    assert lr_factor(0, 10, 0) == 1.0


# --- options, ids, events, lineage, packaging -----------------------------------------------


def test_options_are_checked_and_name_their_run() -> None:
    bad = TrainOptions(rank=0, lr=0, out_type="Q3_K", device="tpu", target_modules=("a b",))
    problems = " | ".join(bad.problems())
    for words in ("rank", "learning rate", "output type", "device", "target modules"):
        assert words in problems
    assert TrainOptions().problems() == []
    one = run_id("My Model:v1", "base", "data", TrainOptions())
    assert re.fullmatch(r"my-model-v1-[0-9a-f]{10}", one)
    assert one == run_id("My Model:v1", "base", "data", TrainOptions(eval_every=5, threads=1))
    assert one != run_id("My Model:v1", "base", "data", TrainOptions(lr=1e-4))
    assert one != run_id("My Model:v1", "base", "other data", TrainOptions())
    assert TrainOptions.from_dict(TrainOptions(target_modules=("q_proj",)).to_dict()) == (
        TrainOptions(target_modules=("q_proj",))
    )


def test_every_event_has_a_stable_json_form() -> None:
    samples: list[te.TrainEvent] = [
        te.TrainStage("training", "x"),
        te.TrainNotice("n"),
        te.DataPrepared(1, 2, 3, 4, 5, 6, 7),
        te.TrainResumed(3, "/c"),
        te.TrainStep(1, 2, 0.5, 1.5, 1e-4, 10.0, 100, 1.0, 2.0),
        te.ValidationLoss(2, 1.25),
        te.CheckpointSaved(2, "/c"),
        te.TrainProgress("merging", 1, 2, "bytes", "w"),
        te.AdapterSaved("/a"),
        te.Merged("/m.gguf", 10, "Q8_0", 3, 1.0),
        te.Verified("/m.gguf", "hi"),
        te.TrainFinished("m:latest", "r", "/m.gguf", "/a", 2, 0.5, None, 3.0, "cpu"),
    ]
    for ev in samples:
        doc = json.loads(json.dumps(te.event_to_dict(ev)))
        assert doc["event"] == te.EVENT_NAMES[type(ev)]
        assert set(doc) == {"event", *(f.name for f in fields(ev))}
    assert set(te.EVENT_NAMES.values()) >= {"stage", "step", "validation", "finished"}


def test_lineage_keeps_what_training_did() -> None:
    base = dict(
        name="m:latest", kind="gguf", source="/m.gguf", source_sha256="0" * 64,
        source_bytes=1, base="", reported_base="", architecture="llama", template="gguf",
        system="", parameters={}, created_at="now", model_digest="d", ollama_version="0.34",
    )  # fmt: skip
    plain = Lineage.from_dict(base)
    assert plain.training is None and not plain.fine_tuned
    trained = Lineage.from_dict({**base, "training": {"steps": 3, "dataset_sha256": "f" * 64}})
    assert trained.fine_tuned and trained.training == {"steps": 3, "dataset_sha256": "f" * 64}
    assert Lineage.from_dict(trained.to_dict()) == trained


def test_the_installers_leave_the_training_stack_out() -> None:
    spec = (REPO / "packaging" / "ftrag_desktop.spec").read_text(encoding="utf-8")
    block = spec[spec.index("EXCLUDES = [") : spec.index("]\n", spec.index("EXCLUDES = ["))]
    excluded = set(re.findall(r'"([\w.]+)"', block))
    assert {"torch", "transformers", "peft", "safetensors", "accelerate"} <= excluded
