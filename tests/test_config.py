"""Settings: migrations from a v1 file, validation messages, round trip, corrupt files."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from ollama._client import _parse_host

from ftrag_desktop.config import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SEARCH_MODES,
    Settings,
    compare_settings,
    load_settings,
    normalize_host,
    save_settings,
    validate_settings,
)
from ftrag_desktop.core.retrieve import MODES

V1_FILE = {
    "schema_version": 1,
    "ollama_host": "gpu-box:11434",
    "chat_model": "qwen2.5:7b",
    "embed_model": "all-minilm",
    "chunk_size": 800,
    "chunk_overlap": 100,
    "top_k": 4,
    "search_mode": "keyword",
    "request_timeout_s": 300,
    "watched_folders": ["/home/me/Papers"],
    "paused_folders": [],
    "retired_option": True,
}


def errors_of(s: Settings) -> dict[str, str]:
    return {e.field: e.message for e in validate_settings(s)}


def test_defaults_are_valid_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert validate_settings(Settings()) == []
    custom = Settings(
        ollama_host="http://10.0.0.5:11434",
        chat_model="mistral",
        num_ctx=8192,
        temperature=0.7,
        system_prompt="Answer in French.\nCite sources.",
        excluded_patterns=["drafts/", "*.log"],
        watched_folders=["/a", "/b"],
    )
    save_settings(path, custom)
    assert load_settings(path) == custom
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temporary file left


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "nope.json") == Settings()


def test_v1_file_is_migrated_keeping_everything_the_user_set(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(V1_FILE))
    s = load_settings(path)
    assert s.schema_version == SCHEMA_VERSION == 2
    # Kept word for word:
    assert (s.chat_model, s.embed_model, s.chunk_size, s.chunk_overlap) == (
        "qwen2.5:7b",
        "all-minilm",
        800,
        100,
    )
    assert (s.top_k, s.search_mode, s.request_timeout_s) == (4, "keyword", 300.0)
    assert s.watched_folders == ["/home/me/Papers"]
    # The address gets the scheme and the port Ollama's client assumed without one.
    assert s.ollama_host == "http://gpu-box:11434"
    # The new keys take their defaults.
    assert (s.num_ctx, s.system_prompt, s.excluded_patterns) == (0, "", [])
    assert s.temperature == Settings().temperature
    assert validate_settings(s) == []

    save_settings(path, s)
    saved = json.loads(path.read_text())
    assert saved["schema_version"] == 2 and "retired_option" not in saved
    assert {"num_ctx", "temperature", "system_prompt", "excluded_patterns"} <= saved.keys()


def test_v1_migration_is_a_numbered_function() -> None:
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION))
    out = MIGRATIONS[1]({"schema_version": 1, "ollama_host": "", "temperature": 1.1})
    assert out["ollama_host"] == ""  # empty still means "$OLLAMA_HOST, else the default"
    assert out["temperature"] == 1.1  # a value already there is never replaced
    assert out["excluded_patterns"] == [] and out["num_ctx"] == 0


def test_a_file_without_a_version_is_read_as_v1(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"ollama_host": "localhost", "top_k": 9}))
    s = load_settings(path)
    assert s.ollama_host == "http://localhost:11434" and s.top_k == 9


def test_a_file_from_a_newer_version_keeps_the_keys_it_knows(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": 7, "top_k": 12, "future_thing": "x"}))
    s = load_settings(path)
    assert s.top_k == 12


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:11434", ":11434", "10.1.2.3:8080", "example.com/ollama/", "gpu:1/"],
)
def test_migrated_addresses_mean_what_they_meant(host: str) -> None:
    normalized = normalize_host(host)
    assert normalized.startswith("http://")
    assert _parse_host(normalized) == _parse_host(host)  # the same server for Ollama's client


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("", ""),
        ("http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("https://ollama.lan/", "https://ollama.lan"),
        (" localhost ", "http://localhost:11434"),
    ],
)
def test_normalize_host(host: str, expected: str) -> None:
    assert normalize_host(host) == expected


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_corrupt_file_is_kept_aside(tmp_path: Path, content: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    assert load_settings(path) == Settings()
    assert not path.exists()
    aside = list(tmp_path.glob("settings.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == content  # nothing lost
    save_settings(path, Settings(top_k=3))  # the next save does not touch the copy
    assert aside[0].read_text() == content


def test_a_value_of_the_wrong_type_falls_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    doc = {
        "schema_version": 2,
        "top_k": "ten",
        "chunk_size": True,
        "temperature": 1,
        "excluded_patterns": "*.log",
        "chat_model": "phi3",
    }
    path.write_text(json.dumps(doc))
    s = load_settings(path)
    defaults = Settings()
    assert (s.top_k, s.chunk_size, s.excluded_patterns) == (
        defaults.top_k,
        defaults.chunk_size,
        defaults.excluded_patterns,
    )
    assert s.temperature == 1.0 and isinstance(s.temperature, float)
    assert s.chat_model == "phi3"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"ollama_host": "localhost:11434"}, "ollama_host", "Start the address with http://"),
        ({"ollama_host": "ftp://host:21"}, "ollama_host", "not ftp://"),
        ({"ollama_host": "http://host:99999"}, "ollama_host", "between 1 and 65535"),
        ({"ollama_host": "http://bad host"}, "ollama_host", "not a valid address"),
        ({"chat_model": ""}, "chat_model", "Choose a chat model"),
        ({"chat_model": "llama 3"}, "chat_model", "no spaces"),
        ({"embed_model": "nomic embed"}, "embed_model", "no spaces"),
        ({"chunk_size": 50}, "chunk_size", "between 100 and 10000, not 50"),
        ({"chunk_overlap": 600}, "chunk_overlap", "at most half the chunk size (500"),
        ({"chunk_overlap": -1}, "chunk_overlap", "cannot be negative"),
        ({"top_k": 0}, "top_k", "between 1 and 50"),
        ({"top_k": 51}, "top_k", "between 1 and 50, not 51"),
        ({"temperature": 2.5}, "temperature", "between 0 and 2, not 2.5"),
        ({"temperature": -0.1}, "temperature", "between 0 and 2"),
        ({"num_ctx": 1000}, "num_ctx", "Use 0 (automatic) or a context between 2048"),
        ({"search_mode": "fuzzy"}, "search_mode", "hybrid, vector, keyword"),
        ({"system_prompt": "x" * 20_001}, "system_prompt", "keep it under 20000"),
        ({"request_timeout_s": 0.5}, "request_timeout_s", "The answer timeout"),
    ],
)
def test_validation_names_the_field_and_says_what_to_do(
    changes: dict[str, object], field: str, words: str
) -> None:
    errors = errors_of(replace(Settings(), **changes))  # type: ignore[arg-type]
    assert list(errors) == [field]
    assert words in errors[field]


def test_valid_edge_values() -> None:
    s = Settings(
        ollama_host="https://[::1]:8443/ollama",
        embed_model="",  # keyword search only
        chunk_size=100,
        chunk_overlap=50,
        top_k=50,
        temperature=2.0,
        num_ctx=2048,
        excluded_patterns=["# a comment", "", "  *.bak  ", "!keep.bak", "**/tmp/**"],
    )
    assert validate_settings(s) == []


@pytest.mark.parametrize(
    ("patterns", "words"),
    [
        (["*.log", "[abc"], "Line 2, '[abc': it has a '[' without its closing ']'"),
        (["drafts\\old"], "separate folders with '/'"),
        (["/"], "names no file or folder"),
        (["*"], "would exclude every document"),
        (["**"], "would exclude every document"),
        (["a//b"], "empty folder name"),
        (["trailing\\"], "ends with a backslash"),
    ],
)
def test_bad_patterns_are_reported_with_their_line(patterns: list[str], words: str) -> None:
    errors = errors_of(Settings(excluded_patterns=patterns))
    assert list(errors) == ["excluded_patterns"]
    assert words in errors["excluded_patterns"]


def test_several_problems_come_in_field_order() -> None:
    s = Settings(top_k=0, ollama_host="nope", temperature=9.0)
    assert [e.field for e in validate_settings(s)] == ["ollama_host", "top_k", "temperature"]


def test_search_modes_match_the_retriever() -> None:
    assert SEARCH_MODES == MODES


def test_compare_settings_says_what_follows() -> None:
    base = Settings(excluded_patterns=["*.log"], watched_folders=["/a"])
    assert not compare_settings(base, replace(base, watched_folders=["/a", "/b"]))

    change = compare_settings(base, replace(base, chunk_size=500))
    assert change.chunking_changed and change.reindex_needed and change.sync_needed
    assert change.changed == ("chunk_size",)
    assert "split into passages again" in " ".join(change.consequences())

    change = compare_settings(base, replace(base, excluded_patterns=["*.log", "drafts/"]))
    assert change.exclusions_changed and change.reindex_needed and not change.chunking_changed

    # Comments and blank lines match nothing: no re-sync for them.
    change = compare_settings(base, replace(base, excluded_patterns=["# logs", "*.log", ""]))
    assert change and not change.reindex_needed

    change = compare_settings(base, replace(base, embed_model="all-minilm"))
    assert change.embed_model_changed and change.sync_needed and not change.reindex_needed

    change = compare_settings(base, replace(base, ollama_host="http://other:11434"))
    assert change.host_changed and not change.sync_needed
    change = compare_settings(base, replace(base, request_timeout_s=30.0))
    assert change.host_changed

    change = compare_settings(base, replace(base, temperature=0.9, system_prompt="Be brief."))
    assert change.changed == ("temperature", "system_prompt")
    assert not change.sync_needed and not change.host_changed and change.consequences() == []


def test_settings_document_has_every_field(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(path, Settings())
    assert set(json.loads(path.read_text())) == set(asdict(Settings()))
