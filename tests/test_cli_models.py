"""`ftrag models ...`: list, show, pull, rm, import; progress lines, JSON, exit codes, Ctrl-C."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ftrag_desktop.cli import main
from tests.gguf_files import write_junk, write_lora_gguf, write_model_gguf
from tests.ollama_server import ADAPTER_REFUSED, OllamaTestServer


@pytest.fixture(autouse=True)
def ollama_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ollama-models"
    path.mkdir()
    monkeypatch.setenv("OLLAMA_MODELS", str(path))
    return path


def ftrag(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main(["--ollama-host", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_import_prints_progress_then_list_and_show_report_the_fine_tune(
    capsys: pytest.CaptureFixture[str], ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    url = ollama_server.url
    path = write_model_gguf(tmp_path / "tune.gguf")
    code, out, err = ftrag(
        capsys,
        url,
        *("models", "import", str(path), "--name", "tune", "--base", "smollm2:135m"),
        *("--num-ctx", "4096", "--system", "Be brief.", "--temperature", "0.2"),
    )
    assert code == 0, err
    assert out.startswith("Imported tune:latest (fine-tuned from smollm2:135m) in ")
    assert "Its answer to a test question: I don't know." in out
    starts = [line.split()[0] for line in err.splitlines()]
    for step in ("validating", "checked", "disk", "hashing", "uploading", "creating", "ollama"):
        assert step in starts, step
    assert starts.index("validating") < starts.index("uploading") < starts.index("verifying")
    assert "chat template from gguf (chatml)" in err and "100% of" in err

    code, out, _ = ftrag(capsys, url, "models", "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        *("NAME", "FAMILY", "PARAMS", "QUANT", "CONTEXT", "SIZE", "MODIFIED", "VARIANT")
    ]
    (tune,) = [r for r in rows if r.startswith("tune:latest")]
    assert "2048 (num_ctx 4096)" in tune and tune.endswith("fine-tuned from smollm2:135m")
    assert any(r.startswith("nomic-embed-text:latest") and r.endswith("embedding") for r in rows)

    code, out, _ = ftrag(capsys, url, "models", "list", "--json")
    models = {m["name"]: m for m in json.loads(out)["models"]}
    assert models["tune:latest"]["fine_tuned"] and models["tune:latest"]["base"] == "smollm2:135m"
    assert models["tune:latest"]["lineage"]["parameters"]["num_ctx"] == 4096
    assert models["llama3.2:latest"]["context_length"] == 131072

    code, out, _ = ftrag(capsys, url, "models", "show", "tune")
    assert code == 0 and "Variant:      fine-tuned from smollm2:135m" in out
    assert f"from {path}" in out and "Template:     gguf (chatml)" in out
    code, out, _ = ftrag(capsys, url, "models", "show", "tune", "--json")
    assert json.loads(out)["lineage"]["source"] == str(path)


def test_show_prints_what_ftrag_trained_the_model_on(
    capsys: pytest.CaptureFixture[str],
    ollama_server: OllamaTestServer,
    tmp_path: Path,
    ftrag_home: Path,
) -> None:
    """The training record `ftrag train` keeps with the model, and the adapter a merged model
    came from (`merge_import`), in `models show`."""
    from dataclasses import replace

    from ftrag_desktop.core.models import LineageStore
    from ftrag_desktop.paths import Home

    path = write_model_gguf(tmp_path / "tuned.gguf")
    code, _, err = ftrag(
        capsys, ollama_server.url, "models", "import", str(path), "--name", "tuned"
    )
    assert code == 0, err
    store = LineageStore(Home(ftrag_home).models_dir)
    lineage = store.load("tuned:latest")
    assert lineage is not None and lineage.training is None
    training = {
        "base": "smollm2:135m",
        "base_architecture": "llama",
        "dataset": str(tmp_path / "train.jsonl"),
        "dataset_sha256": "ab" * 32,
        "train_examples": 40,
        "valid_examples": 4,
        "hyperparameters": {"rank": 8, "alpha": 16, "lr": 0.0002, "epochs": 3},
        "train_loss": 0.0213,
        "val_loss": 0.5,
        "steps": 30,
        "tokens": 12345,
        "device": "cpu",
        "train_seconds": 95.0,
    }
    merged_from = {
        "adapter": str(tmp_path / "adapter"),
        "adapter_format": "peft",
        "adapter_sha256": "cd" * 32,
        "base_gguf": str(tmp_path / "base.gguf"),
        "base_ollama": "smollm2:135m",
        "rank": 8,
        "alpha": 16,
    }
    store.save(replace(lineage, training=training, merged_from=merged_from))

    code, out, _ = ftrag(capsys, ollama_server.url, "models", "show", "tuned")
    assert code == 0
    lines = out.splitlines()
    assert "Trained from: smollm2:135m (llama)" in lines
    assert f"Training data: {tmp_path / 'train.jsonl'}" in lines
    assert "Examples:     40 training, 4 validation" in lines
    assert "Hyperparameters: rank 8, alpha 16, learning rate 0.0002, epochs 3" in lines
    assert "Final loss:   training 0.0213, validation 0.5000" in lines
    assert "Training:     30 steps, 12,345 tokens on cpu in 2 min" in lines
    assert f"Merged from adapter: {tmp_path / 'adapter'} (PEFT folder)" in lines
    assert f"Merged into:  {tmp_path / 'base.gguf'} (smollm2:135m)" in lines
    code, out, _ = ftrag(capsys, ollama_server.url, "models", "show", "tuned", "--json")
    assert json.loads(out)["lineage"]["training"]["train_loss"] == 0.0213


def test_import_json_is_one_document_on_stdout(
    capsys: pytest.CaptureFixture[str], ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    path = write_model_gguf(tmp_path / "tune.gguf")
    args = ("models", "import-gguf", str(path), "--name", "tune", "--json")
    code, out, _ = ftrag(capsys, ollama_server.url, *args)
    doc = json.loads(out)
    assert code == 0 and doc["model"]["name"] == "tune:latest"
    assert doc["probe_reply"] == "I don't know."
    assert doc["uploaded_bytes"] == path.stat().st_size and doc["skipped_bytes"] == 0
    code, out, err = ftrag(capsys, ollama_server.url, *args[:-1], "--replace", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["skipped_bytes"] == path.stat().st_size
    assert "skipped    tune.gguf: Ollama already has it" in err


def test_import_errors_exit_1_with_message_and_hint(
    capsys: pytest.CaptureFixture[str], ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    url = ollama_server.url
    junk = write_junk(tmp_path / "model.gguf")
    code, out, err = ftrag(capsys, url, "models", "import", str(junk), "--name", "junk")
    assert code == 1 and out == ""
    assert "error: model.gguf is not a GGUF file" in err and "\nhint: " in err
    assert "Traceback" not in err

    lora = write_lora_gguf(tmp_path / "lora.gguf")
    args = ("models", "import-adapter", str(lora), "--base", "smollm2:135m", "--name", "ad")
    code, _, err = ftrag(capsys, url, *args)
    assert code == 1
    assert f"error: Ollama reported an error: {ADAPTER_REFUSED}\n" in err  # word for word
    assert (
        "hint: This Ollama version does not create adapter models: merge the adapter into " in err
    )
    assert "Traceback" not in err

    code, _, err = ftrag(capsys, url, "models", "import", str(lora), "--name", "ad", "--base", "x")
    assert code == 1 and "error: The base model 'x' is not installed in Ollama." in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for argv in (
        ["models", "import", str(tmp_path / "m.gguf")],  # no --name
        ["models", "import-adapter", str(tmp_path), "--name", "x"],  # no --base
        ["models", "import", str(tmp_path / "m.gguf"), "--name", "x", "--num-ctx", "0"],
        ["models"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv


def test_pull_and_rm(
    capsys: pytest.CaptureFixture[str],
    ollama_server: OllamaTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = ollama_server.url
    code, out, err = ftrag(capsys, url, "models", "pull", "qwen2.5:0.5b")
    assert code == 0 and out == "Pulled qwen2.5:0.5b.\n"
    assert "pulling manifest" in err and "100% of 397.8 MB" in err and "success" in err
    code, _, err = ftrag(capsys, url, "models", "pull", "no-such-model")
    assert code == 1 and "pull model manifest: file does not exist" in err and "hint:" in err

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: no one to ask
    code, _, err = ftrag(capsys, url, "models", "rm", "qwen2.5:0.5b")
    assert code == 2 and "pass --yes" in err
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    code, out, err = ftrag(capsys, url, "models", "rm", "qwen2.5:0.5b")
    assert code == 1 and "Delete qwen2.5:0.5b (397.8 MB) from Ollama? [y/N]" in out
    assert "Not deleted." in err and "qwen2.5:0.5b" in ollama_server.models
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    code, out, _ = ftrag(capsys, url, "models", "rm", "qwen2.5:0.5b")
    assert code == 0 and out.endswith("Deleted qwen2.5:0.5b.\n")
    assert "qwen2.5:0.5b" not in ollama_server.models
    code, out, _ = ftrag(capsys, url, "models", "rm", "smollm2:135m", "--yes", "--json")
    assert code == 0 and json.loads(out) == {"model": "smollm2:135m", "deleted": True}
    code, _, err = ftrag(capsys, url, "models", "rm", "smollm2:135m", "--yes")
    assert code == 1 and "There is no model 'smollm2:135m' to delete." in err


def test_ctrl_c_during_import_exits_130_and_leaves_no_model(
    ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    big = write_model_gguf(tmp_path / "big.gguf", padding_mb=24)
    ollama_server.upload_delay_s = 0.05  # about 1.5 s to upload: time to press Ctrl-C
    cmd = [sys.executable, "-m", "ftrag_desktop.cli", "--ollama-host", ollama_server.url]
    cmd += ["models", "import", str(big), "--name", "big"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the upload is under way
        if line.startswith("uploading") and "%" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Import cancelled: no model was created." in err and "Traceback" not in err
    assert out == ""
    assert ollama_server.wait_idle()
    assert "big:latest" not in ollama_server.models
    assert ollama_server.bodies("/api/create") == []
