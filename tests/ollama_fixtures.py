"""Pytest fixtures for the Ollama-protocol test server (exposed to every test by conftest).

One server runs for the whole session (starting it per test would reload MiniLM and waste
ports); `ollama_server` resets it before and after each test, so every test starts from the
default models, no fault, no recorded requests and zeroed counters.  Nothing global is set:
tests hand `ollama_server.url` to the code under test explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ollama_server import OllamaTestServer


@pytest.fixture(scope="session")
def ollama_server_session() -> Iterator[OllamaTestServer]:
    server = OllamaTestServer().start()
    yield server
    server.stop()


@pytest.fixture
def ollama_server(ollama_server_session: OllamaTestServer) -> Iterator[OllamaTestServer]:
    server = ollama_server_session
    server.reset()
    yield server
    server.reset()
