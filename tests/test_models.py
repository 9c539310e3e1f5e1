"""The models manager against the Ollama-protocol test server over real HTTP, with real files.

Covers listing with lineage, pull (with cancel), delete, and imports of GGUF models and LoRA
adapters: the exact /api/create bodies, blob digests and skips, progress, cancel, validation,
the server's errors word for word, and the verification that only reports success for a model
that exists and answers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from ftrag_desktop.core.llm import OllamaClient
from ftrag_desktop.core.model_import import (
    STEPS,
    BlobSkipped,
    ImportEvent,
    ImportFinished,
    ImportNotice,
    ImportProgress,
    ImportRequest,
    ImportServerStatus,
    ImportStep,
    ImportValidated,
)
from ftrag_desktop.core.models import ModelManager
from ftrag_desktop.errors import (
    AdaptersUnsupported,
    Cancelled,
    ModelFileError,
    ModelImportFailed,
    ModelNotFound,
    OllamaServerError,
    OllamaUnavailable,
)
from ftrag_desktop.paths import Home
from tests.gguf_files import (
    ODD_JINJA,
    write_junk,
    write_lora_gguf,
    write_model_gguf,
    write_peft_adapter,
)
from tests.ollama_server import (
    ADAPTER_REFUSED,
    ADAPTERS_UNSUPPORTED,
    ModelEntry,
    OllamaTestServer,
    smollm2_path,
    unknown_architecture,
)

CHATML_GO = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)


@pytest.fixture(autouse=True)
def ollama_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a local Ollama would keep its blobs: the disk check looks here."""
    path = tmp_path / "ollama-models"
    path.mkdir()
    monkeypatch.setenv("OLLAMA_MODELS", str(path))
    return path


@pytest.fixture
def client(ollama_server: OllamaTestServer) -> Iterator[OllamaClient]:
    with OllamaClient(ollama_server.url, timeout_s=60.0) as c:
        yield c


@pytest.fixture
def manager(client: OllamaClient, ftrag_home: Path) -> ModelManager:
    return ModelManager(client, Home(ftrag_home))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_model_gguf(tmp_path / "tiny-tune.gguf")


def run(
    manager: ModelManager, request: ImportRequest, cancel: threading.Event | None = None
) -> list[ImportEvent]:
    return list(manager.import_model(request, cancel))


def finished(events: list[ImportEvent]) -> ImportFinished:
    last = events[-1]
    assert isinstance(last, ImportFinished)
    return last


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def uploads(server: OllamaTestServer) -> list[str]:
    return [r.path for r in server.requests if r.method == "POST" and "/api/blobs/" in r.path]


def model_names(client: OllamaClient) -> set[str]:
    return {m.name for m in client.list_models()}


# --- import a GGUF ------------------------------------------------------------------------------


def test_import_gguf_creates_verifies_and_records_lineage(
    manager: ModelManager, ollama_server: OllamaTestServer, tiny: Path, ftrag_home: Path
) -> None:
    request = ImportRequest(
        tiny, "tiny-tune", system="Answer briefly.", num_ctx=2048, temperature=0.3
    )
    events = run(manager, request)

    steps = [e.step for e in events if isinstance(e, ImportStep)]
    assert steps == list(STEPS)  # validating, hashing, uploading, creating, verifying
    (validated,) = [e for e in events if isinstance(e, ImportValidated)]
    plan = validated.plan
    assert (plan.kind, plan.architecture, plan.template_source) == (
        "gguf",
        "llama",
        "gguf (chatml)",
    )
    assert plan.disk.checked and plan.disk.needed_bytes == tiny.stat().st_size
    uploaded = [e for e in events if isinstance(e, ImportProgress) and e.step == "uploading"]
    assert [e.done for e in uploaded] == sorted(e.done for e in uploaded)
    assert uploaded[-1].done == uploaded[-1].total == tiny.stat().st_size
    assert [e.text for e in events if isinstance(e, ImportServerStatus)][-1] == "success"

    # the server saw exactly one upload, of the file's real digest, and this create body
    digest = sha256(tiny)
    assert uploads(ollama_server) == [f"/api/blobs/{digest}"]
    assert ollama_server.blobs[digest].read_bytes() == tiny.read_bytes()
    assert ollama_server.bodies("/api/create") == [
        {
            "model": "tiny-tune:latest",
            "stream": True,
            "files": {"tiny-tune.gguf": digest},
            "template": CHATML_GO,
            "system": "Answer briefly.",
            "parameters": {"num_ctx": 2048, "temperature": 0.3, "stop": ["<|im_end|>"]},
        }
    ]
    # the probe asked the new model a question, and the answer is reported
    probes = [b for b in ollama_server.bodies("/api/chat") if b["model"] == "tiny-tune:latest"]
    assert len(probes) == 1
    done = finished(events)
    assert done.probe_reply == "I don't know."  # the scripted backend's answer
    assert (done.uploaded_bytes, done.skipped_bytes) == (tiny.stat().st_size, 0)

    record = done.model
    assert (record.name, record.family, record.context_length, record.num_ctx) == (
        "tiny-tune:latest",
        "llama",
        2048,
        2048,
    )
    assert record.imported and not record.adapter and not record.fine_tuned  # no base given
    lineage_file = ftrag_home / "models" / "tiny-tune%3Alatest.json"
    saved = json.loads(lineage_file.read_text())
    assert saved["source"] == str(tiny) and saved["source_sha256"] == digest[7:]
    assert saved["kind"] == "gguf" and saved["template"] == "gguf (chatml)"
    assert saved["parameters"] == {"num_ctx": 2048, "temperature": 0.3, "stop": ["<|im_end|>"]}
    assert saved["model_digest"] == record.digest and saved["ollama_version"] == "0.34.1"
    listed = {r.name: r for r in manager.list_models()}
    assert listed["tiny-tune:latest"].lineage == done.lineage


def test_a_gguf_with_a_base_is_listed_as_fine_tuned_from_it(
    manager: ModelManager, tmp_path: Path
) -> None:
    path = write_model_gguf(tmp_path / "smol-tune.gguf", width=576)
    done = finished(run(manager, ImportRequest(path, "smol-tune", base="smollm2:135m")))
    assert done.lineage.base == "smollm2:135m"
    listed = {r.name: r for r in manager.list_models()}
    tune = listed["smol-tune:latest"]
    assert tune.fine_tuned and tune.base == "smollm2:135m" and tune.imported
    assert not listed["smollm2:135m"].fine_tuned and listed["smollm2:135m"].base == ""
    assert manager.get("smol-tune").lineage == done.lineage


def test_second_import_skips_the_blob_the_server_has(
    manager: ModelManager, ollama_server: OllamaTestServer, tiny: Path
) -> None:
    finished(run(manager, ImportRequest(tiny, "first")))
    events = run(manager, ImportRequest(tiny, "second"))
    digest = sha256(tiny)
    assert uploads(ollama_server) == [f"/api/blobs/{digest}"]  # uploaded once, not twice
    heads = [r for r in ollama_server.requests if r.method == "HEAD"]
    assert len(heads) == 2
    skipped = [e for e in events if isinstance(e, BlobSkipped)]
    assert [(s.file, s.digest) for s in skipped] == [("tiny-tune.gguf", digest)]
    assert not [e for e in events if isinstance(e, ImportProgress) and e.step == "uploading"]
    done = finished(events)
    assert (done.uploaded_bytes, done.skipped_bytes) == (0, tiny.stat().st_size)
    assert {"first:latest", "second:latest"} <= {r.name for r in manager.list_models()}


def test_a_changed_file_is_hashed_again(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    path = write_model_gguf(tmp_path / "m.gguf", width=64)
    finished(run(manager, ImportRequest(path, "one")))
    write_model_gguf(path, width=128)  # same name, new content
    finished(run(manager, ImportRequest(path, "two")))
    assert len(uploads(ollama_server)) == 2
    assert uploads(ollama_server)[-1] == f"/api/blobs/{sha256(path)}"


def test_cancel_mid_upload_leaves_no_model(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path, ftrag_home: Path
) -> None:
    big = write_model_gguf(tmp_path / "big.gguf", padding_mb=24)
    ollama_server.upload_delay_s = 0.05  # the server reads 1 MiB per 50 ms
    cancel = threading.Event()
    seen: list[ImportEvent] = []
    with pytest.raises(Cancelled):
        for ev in manager.import_model(ImportRequest(big, "big-tune"), cancel):
            seen.append(ev)
            if isinstance(ev, ImportProgress) and ev.step == "uploading":
                cancel.set()
    sent = [e for e in seen if isinstance(e, ImportProgress) and e.step == "uploading"]
    assert sent and sent[-1].done < big.stat().st_size  # stopped part-way
    assert ollama_server.wait_idle()
    assert "big-tune:latest" not in model_names(manager.client)
    assert sha256(big) not in ollama_server.blobs
    assert ollama_server.bodies("/api/create") == []
    assert not (ftrag_home / "models" / "big-tune%3Alatest.json").exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("ftrag-upload")]


def test_a_network_drop_during_upload_is_reported_and_leaves_nothing(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    path = write_model_gguf(tmp_path / "drop.gguf", padding_mb=4)
    ollama_server.fault = "upload_drop"
    with pytest.raises(OllamaUnavailable) as err:
        run(manager, ImportRequest(path, "dropped"))
    assert "The upload of drop.gguf stopped at" in err.value.message
    assert "import again" in err.value.hint
    ollama_server.fault = None
    assert sha256(path) not in ollama_server.blobs
    assert "dropped:latest" not in model_names(manager.client)
    # and once the network is back, the same import goes through
    assert finished(run(manager, ImportRequest(path, "dropped"))).model.name == "dropped:latest"


# --- validation: nothing is uploaded when the input is wrong ------------------------------------


def test_validation_errors_are_clear_and_upload_nothing(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path, tiny: Path
) -> None:
    junk = write_junk(tmp_path / "model.gguf")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        run(manager, ImportRequest(junk, "junk"))
    unknown = write_model_gguf(tmp_path / "frob.gguf", arch="frobnicator")
    with pytest.raises(ModelFileError, match=r"'frobnicator', which neither llama\.cpp"):
        run(manager, ImportRequest(unknown, "frob"))
    projector = write_model_gguf(tmp_path / "mmproj.gguf", general_type="mmproj")
    with pytest.raises(ModelFileError, match="of type 'mmproj'"):
        run(manager, ImportRequest(projector, "proj"))
    with pytest.raises(ModelImportFailed, match="not a valid Ollama model name"):
        run(manager, ImportRequest(tiny, "bad name!"))
    with pytest.raises(ModelImportFailed, match="already exists") as exists:
        run(manager, ImportRequest(tiny, "llama3.2"))
    assert "--replace" in exists.value.hint
    with pytest.raises(ModelNotFound, match="'no-such-base' is not installed") as missing:
        run(manager, ImportRequest(tiny, "x", base="no-such-base"))
    assert "ftrag models pull no-such-base" in missing.value.hint
    with pytest.raises(ModelFileError, match=r"hidden size 576, but llama3\.2:latest has"):
        run(manager, ImportRequest(tiny, "x", base="llama3.2"))  # a wrong base
    with pytest.raises(ModelFileError, match="is a whole model"):
        run(manager, ImportRequest(tiny, "x", base="smollm2:135m", kind="adapter"))
    with pytest.raises(ModelImportFailed, match="num_ctx must be a positive"):
        run(manager, ImportRequest(tiny, "x", num_ctx=0))
    assert uploads(ollama_server) == [] and ollama_server.bodies("/api/create") == []


def test_adapter_checks_base_presence_architecture_and_width(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    lora = write_lora_gguf(tmp_path / "lora.gguf", width=576)
    with pytest.raises(ModelImportFailed, match="needs the base model") as no_base:
        run(manager, ImportRequest(lora, "tuned"))
    assert "--base" in no_base.value.hint
    with pytest.raises(ModelFileError, match="is a LoRA adapter, not a whole model"):
        run(manager, ImportRequest(lora, "tuned", base="smollm2:135m", kind="gguf"))
    with pytest.raises(ModelFileError, match=r"hidden size 576, but llama3\.2:latest has .* 3072"):
        run(manager, ImportRequest(lora, "tuned", base="llama3.2"))
    qwen_lora = write_lora_gguf(tmp_path / "qwen-lora.gguf", arch="qwen2")
    with pytest.raises(ModelFileError, match="only to gemma2 and llama models") as arch:
        run(manager, ImportRequest(qwen_lora, "tuned", base="smollm2:135m"))
    assert "Merge the adapter" in arch.value.hint
    ollama_server.add_model(ModelEntry("qwen-base:latest", "qwen2", "494M", "Q4_K_M", 1000))
    folder = write_peft_adapter(tmp_path / "peft")
    with pytest.raises(ModelFileError, match="the base qwen-base:latest is 'qwen2'"):
        run(manager, ImportRequest(folder, "tuned", base="qwen-base"))
    assert uploads(ollama_server) == []


def test_not_enough_disk_space_stops_before_upload(
    client: OllamaClient, ollama_server: OllamaTestServer, tiny: Path, ftrag_home: Path
) -> None:
    greedy = ModelManager(client, Home(ftrag_home), keep_free_bytes=1 << 62)
    with pytest.raises(ModelImportFailed, match="Not enough disk space") as err:
        run(greedy, ImportRequest(tiny, "tiny"))
    assert "OLLAMA_MODELS" in err.value.hint
    assert uploads(ollama_server) == []


def test_a_remote_ollama_disk_is_not_checked_and_the_plan_says_so() -> None:
    from ftrag_desktop.core.model_import import check_disk

    remote = check_disk("http://gpu-box.lan:11434", 5_000_000_000, 1 << 62)
    assert not remote.checked and "another machine (gpu-box.lan)" in remote.note
    assert "5.0 GB" in remote.note
    local = check_disk("http://127.0.0.1:11434", 1000, 0)
    assert local.checked and local.free_bytes is not None and local.free_bytes > 1000


# --- adapters -----------------------------------------------------------------------------------


def test_adapter_refused_by_current_ollama_passes_its_words_and_the_merge_advice(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    lora = write_lora_gguf(tmp_path / "lora.gguf")
    for server_text in (ADAPTER_REFUSED, ADAPTERS_UNSUPPORTED):
        ollama_server.adapter_error = server_text
        with pytest.raises(AdaptersUnsupported) as err:
            run(manager, ImportRequest(lora, "smol-lora", base="smollm2:135m"))
        assert err.value.server_message == server_text  # word for word
        assert server_text in str(err.value)
        assert err.value.hint.startswith(
            "This Ollama version does not create adapter models: merge the adapter into its "
            "base and import the merged GGUF: `ftrag merge-adapter --base BASE.gguf"
        )
    (body, _) = ollama_server.bodies("/api/create")
    assert body == {
        "model": "smol-lora:latest",
        "stream": True,
        "from": "smollm2:135m",
        "adapters": {"lora.gguf": sha256(lora)},
    }
    assert "smol-lora:latest" not in model_names(manager.client)


def test_adapter_on_an_older_ollama_is_created_and_listed_with_its_base(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    ollama_server.allow_adapters = True
    lora = write_lora_gguf(tmp_path / "lora.gguf")
    done = finished(run(manager, ImportRequest(lora, "smol-lora", base="smollm2:135m")))
    record = done.model
    assert record.adapter and record.fine_tuned and record.base == "smollm2:135m"
    assert done.lineage.kind == "adapter" and done.lineage.template == "base"
    show = ollama.Client(ollama_server.url).show("smol-lora")
    assert show.modelfile is not None and "ADAPTER " in show.modelfile


def test_a_peft_folder_uploads_weights_and_config_as_adapters(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    ollama_server.allow_adapters = True
    folder = write_peft_adapter(tmp_path / "peft", base="HuggingFaceTB/SmolLM2-135M-Instruct")
    events = run(manager, ImportRequest(folder, "peft-tune", base="smollm2:135m"))
    notes = [e.text for e in events if isinstance(e, ImportNotice)]
    assert any("trained on HuggingFaceTB/SmolLM2-135M-Instruct" in n for n in notes)
    (body,) = ollama_server.bodies("/api/create")
    assert body["from"] == "smollm2:135m"
    assert body["adapters"] == {
        "adapter_model.safetensors": sha256(folder / "adapter_model.safetensors"),
        "adapter_config.json": sha256(folder / "adapter_config.json"),
    }
    lineage = finished(events).lineage
    assert lineage.reported_base == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert lineage.source_sha256 == sha256(folder / "adapter_model.safetensors")[7:]


def test_an_adapter_ollama_silently_drops_is_not_a_success(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    ollama_server.allow_adapters = True
    lora = write_lora_gguf(tmp_path / "lora.gguf")
    stream = manager.import_model(ImportRequest(lora, "smol-lora", base="smollm2:135m"))
    with pytest.raises(ModelImportFailed, match="without the adapter"):
        for ev in stream:
            if isinstance(ev, ImportServerStatus) and ev.text == "success":
                # what an Ollama that ignores ADAPTER leaves: the base under the new name
                entry = ollama_server.models["smol-lora:latest"]
                entry.adapters = ()
    assert "smol-lora:latest" not in model_names(manager.client)


# --- server errors and verification -------------------------------------------------------------


def test_a_create_error_reaches_the_user_word_for_word(
    manager: ModelManager, ollama_server: OllamaTestServer, tiny: Path
) -> None:
    text = "open /var/lib/ollama/blobs/sha256-1234: no space left on device"
    ollama_server.error_text = text
    with pytest.raises(OllamaServerError) as err:
        for ev in manager.import_model(ImportRequest(tiny, "tiny")):
            if isinstance(ev, ImportStep) and ev.step == "creating":
                ollama_server.fault = "500"  # the create itself fails
    assert err.value.server_message == text and err.value.status_code == 500
    assert err.value.message == f"Ollama reported an error: {text}"
    assert err.value.hint == "Free disk space on the machine Ollama runs on, then import again."
    ollama_server.fault = None
    assert "tiny:latest" not in model_names(manager.client)


def test_a_model_ollama_cannot_run_fails_the_probe_and_is_removed(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path, ftrag_home: Path
) -> None:
    ollama_server.runnable_architectures = frozenset({"qwen2"})  # an Ollama without llama
    path = write_model_gguf(tmp_path / "m.gguf")
    with pytest.raises(ModelImportFailed) as err:
        run(manager, ImportRequest(path, "cannot-run"))
    assert unknown_architecture("llama") in err.value.message  # the server's words, intact
    assert "cannot run 'llama' models: update Ollama" in err.value.hint
    assert "removed again" in err.value.hint
    assert "cannot-run:latest" not in model_names(manager.client)
    assert not (ftrag_home / "models" / "cannot-run%3Alatest.json").exists()


def test_an_empty_probe_answer_is_not_a_success(
    manager: ModelManager, ollama_server: OllamaTestServer, tiny: Path
) -> None:
    ollama_server.reply = ""
    with pytest.raises(ModelImportFailed, match="answered a test question with nothing") as err:
        run(manager, ImportRequest(tiny, "silent"))
    assert "chat template is probably wrong" in err.value.hint
    assert "silent:latest" not in model_names(manager.client)


def test_a_num_ctx_ollama_ignores_is_caught(
    manager: ModelManager, ollama_server: OllamaTestServer, tiny: Path
) -> None:
    ollama_server.ignored_parameters = frozenset({"num_ctx"})
    with pytest.raises(ModelImportFailed, match="did not keep num_ctx 4096"):
        run(manager, ImportRequest(tiny, "ctx", num_ctx=4096))
    assert "ctx:latest" not in model_names(manager.client)


def test_replace_overwrites_an_existing_model(manager: ModelManager, tiny: Path) -> None:
    finished(run(manager, ImportRequest(tiny, "tiny")))
    with pytest.raises(ModelImportFailed, match="already exists"):
        run(manager, ImportRequest(tiny, "tiny"))
    done = finished(run(manager, ImportRequest(tiny, "tiny", system="New prompt.", replace=True)))
    assert done.lineage.system == "New prompt."


# --- templates ----------------------------------------------------------------------------------


def test_an_unconvertible_template_inherits_the_base_and_says_so(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    base = ollama_server.add_model(
        ModelEntry(
            "small-llama:latest",
            "llama",
            "135M",
            "Q8_0",
            1000,
            embedding_length=576,
            template="<|start_header_id|>user<|end_header_id|>{{ .Prompt }}<|eot_id|>",
            parameters={"stop": '"<|eot_id|>"'},
        )
    )
    path = write_model_gguf(tmp_path / "odd.gguf", chat_template=ODD_JINJA)
    events = run(manager, ImportRequest(path, "odd", base="small-llama", temperature=0.1))
    notes = [e.text for e in events if isinstance(e, ImportNotice)]
    assert any("using the template of small-llama:latest" in n for n in notes)
    (body,) = ollama_server.bodies("/api/create")
    assert body["template"] == base.template
    assert body["parameters"] == {"temperature": 0.1, "stop": ["<|eot_id|>"]}
    assert finished(events).lineage.template == "base"


def test_without_template_or_base_ollama_chooses_and_the_user_is_told(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path
) -> None:
    odd = write_model_gguf(tmp_path / "odd.gguf", chat_template=ODD_JINJA)
    events = run(manager, ImportRequest(odd, "odd"))
    assert any(
        "Ollama will pick a template" in e.text for e in events if isinstance(e, ImportNotice)
    )
    bare = write_model_gguf(tmp_path / "bare.gguf", chat_template=None, width=64)
    events = run(manager, ImportRequest(bare, "bare"))
    assert any("no chat template" in e.text for e in events if isinstance(e, ImportNotice))
    assert [("template" in b) for b in ollama_server.bodies("/api/create")] == [False, False]


# --- listing, pull, delete ----------------------------------------------------------------------


def test_list_models_reports_details_and_lineage_sources(
    manager: ModelManager, ollama_server: OllamaTestServer, tmp_path: Path, client: OllamaClient
) -> None:
    raw = ollama.Client(ollama_server.url)
    # a fine-tune imported by some other tool: its GGUF names its base
    gguf = write_model_gguf(tmp_path / "other.gguf", base_model="SmolLM2 135M Instruct")
    raw.create("other-tune", files={"other.gguf": raw.create_blob(gguf)})
    # a variant: same weights, another system prompt
    raw.create("terse", from_="llama3.2", system="Be terse.")
    records = {r.name: r for r in manager.list_models()}
    llama = records["llama3.2:latest"]
    assert (llama.family, llama.parameter_size, llama.quantization) == ("llama", "3.2B", "Q4_K_M")
    assert (llama.context_length, llama.size) == (131072, 2_019_393_189)
    assert llama.modified_at and not llama.fine_tuned and llama.base == ""
    assert records["nomic-embed-text:latest"].is_embedding
    other = records["other-tune:latest"]
    assert other.fine_tuned and other.base == "SmolLM2 135M Instruct" and not other.imported
    terse = records["terse:latest"]
    assert terse.base == "llama3.2:latest" and not terse.fine_tuned
    assert list(records) == sorted(records)


def test_a_lineage_record_of_a_model_recreated_elsewhere_is_ignored(
    manager: ModelManager, ollama_server: OllamaTestServer, tiny: Path
) -> None:
    finished(run(manager, ImportRequest(tiny, "tiny", base="smollm2:135m")))
    assert manager.get("tiny").imported
    ollama.Client(ollama_server.url).create("tiny", from_="llama3.2")  # same name, new model
    record = manager.get("tiny")
    assert not record.imported and record.lineage is None and record.base == "llama3.2:latest"


def test_pull_yields_progress_and_installs(manager: ModelManager, client: OllamaClient) -> None:
    steps = list(manager.pull("qwen2.5:0.5b"))
    assert steps[0].status == "pulling manifest" and steps[-1].status == "success"
    sized = [p for p in steps if p.total]
    assert sized[-1].completed == sized[-1].total == 397_821_319
    assert "qwen2.5:0.5b" in model_names(client)


def test_cancel_during_pull_installs_nothing(
    manager: ModelManager, ollama_server: OllamaTestServer, client: OllamaClient
) -> None:
    ollama_server.token_delay_s = 0.2
    cancel = threading.Event()
    seen = []
    with pytest.raises(Cancelled):
        for p in manager.pull("qwen2.5:0.5b", cancel):
            seen.append(p)
            if p.total:
                cancel.set()
    assert seen[-1].completed < seen[-1].total
    assert ollama_server.wait_idle()  # the server's pull has ended (it could not write on)
    assert "qwen2.5:0.5b" not in model_names(client)


def test_pull_of_an_unknown_model_keeps_ollamas_words(manager: ModelManager) -> None:
    with pytest.raises(OllamaServerError) as err:
        list(manager.pull("no-such-model"))
    assert err.value.server_message == "pull model manifest: file does not exist"
    assert "Check the name" in err.value.hint


def test_delete_removes_the_model_and_its_lineage(
    manager: ModelManager, tiny: Path, ftrag_home: Path, client: OllamaClient
) -> None:
    finished(run(manager, ImportRequest(tiny, "tiny")))
    lineage_file = ftrag_home / "models" / "tiny%3Alatest.json"
    assert lineage_file.exists()
    manager.delete("tiny")
    assert "tiny:latest" not in model_names(client) and not lineage_file.exists()
    with pytest.raises(ModelNotFound, match="There is no model 'tiny' to delete"):
        manager.delete("tiny")


# --- the real model -----------------------------------------------------------------------------


@pytest.mark.slow
def test_import_the_real_smollm2_gguf_and_chat_with_it(
    manager: ModelManager, ollama_server: OllamaTestServer, client: OllamaClient
) -> None:
    ollama_server.chat_backend = "llama"  # SmolLM2 through llama-cpp-python: real answers
    path = smollm2_path()
    events = run(
        manager,
        ImportRequest(path, "my-smol", base="smollm2:135m", num_ctx=4096, system="Be brief."),
    )
    done = finished(events)
    digest = sha256(path)  # 98 MB of real bytes, hashed independently here
    assert uploads(ollama_server) == [f"/api/blobs/{digest}"]
    assert ollama_server.blobs[digest].stat().st_size == 98_362_432
    (body,) = ollama_server.bodies("/api/create")
    assert body["files"] == {"SmolLM2-135M-Instruct.Q4_1.gguf": digest}
    assert body["template"] == CHATML_GO and body["system"] == "Be brief."
    assert body["parameters"] == {"num_ctx": 4096, "stop": ["<|im_end|>"]}
    assert done.probe_reply.strip()  # a real, if weak, answer from the real model
    record = done.model
    assert (record.family, record.context_length, record.num_ctx) == ("llama", 8192, 4096)
    assert record.fine_tuned and record.base == "smollm2:135m"
    assert done.lineage.source_sha256 == digest[7:]
    answer = "".join(
        d.content
        for d in client.chat_stream(
            "my-smol",
            [{"role": "user", "content": "Say hello."}],
            options={"num_predict": 8, "temperature": 0.0},
        )
    )
    assert answer.strip()
