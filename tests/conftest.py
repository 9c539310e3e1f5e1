"""Shared fixtures: every test gets a temporary data home; Qt runs offscreen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest

from tests.ollama_fixtures import ollama_server, ollama_server_session  # noqa: F401

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
PDF_DIR = SHARED / "data" / "pdfs"
SCIFACT_DIR = SHARED / "data" / "scifact"


@pytest.fixture(autouse=True)
def ftrag_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point FTRAG_HOME (all user data) at a fresh temporary directory for every test."""
    home = tmp_path / "ftrag-home"
    monkeypatch.setenv("FTRAG_HOME", str(home))
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    return home
