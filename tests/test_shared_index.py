"""A team's shared index in an object store (`core/index_location.py`): one machine indexes into
an `s3://` URI, other desktops search and answer from it read-only.

The S3-compatible server is moto in server mode, started on loopback for the session from its
own virtualenv (`.venv-s3`, made by `make install-test`: its botocore cannot share .venv's
pins).  Everything else is the product's own code path: LanceDB reads and writes the bucket
over HTTP, the Ollama test server embeds and answers.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ftrag_desktop.cli import main
from ftrag_desktop.config import Settings, index_uri_problem, load_settings, save_settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.index_location import SHARED_DIR, locate
from ftrag_desktop.errors import UserError
from ftrag_desktop.paths import Home
from tests.test_parse import make_pdf

MOTO = Path(__file__).resolve().parent.parent / ".venv-s3" / "bin" / "moto_server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    assert MOTO.exists(), f"{MOTO} is missing: run `make install-test` (it builds .venv-s3)"
    port = _free_port()
    proc = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, "moto_server exited at start"
                assert time.monotonic() < deadline, "moto_server did not answer in 30 s"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    assert httpx.put(f"{s3_endpoint}/{name}").status_code == 200
    return name


def _options(endpoint: str) -> dict[str, str]:
    return {
        "aws_endpoint": endpoint,
        "aws_region": "us-east-1",
        "allow_http": "true",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing-secret",
    }


def _home(root: Path, ollama_url: str, uri: str, endpoint: str, *, read_only: bool) -> Home:
    home = Home(root)
    save_settings(
        home.settings_file,
        Settings(
            ollama_host=ollama_url,
            index_uri=uri,
            index_storage_options=_options(endpoint),
            index_read_only=read_only,
        ),
    )
    return home


def _keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    reply = httpx.get(f"{endpoint}/{bucket}", params={"list-type": "2", "prefix": prefix})
    assert reply.status_code == 200
    return re.findall(r"<Key>([^<]+)</Key>", reply.text)


def _cli(capsys: pytest.CaptureFixture[str], home: Home, *argv: str) -> tuple[int, Any, str]:
    code = main(["--home", str(home.root), *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip().startswith("{") else out, err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "team-docs"
    root.mkdir()
    (root / "contract.md").write_text(
        "# Supply contract\n\nThe supplier delivers the quartz lanterns within thirty days.\n"
    )
    (root / "notes.txt").write_text("Meeting notes: the kestrel survey starts in spring.\n")
    (root / "manual.pdf").write_bytes(
        make_pdf(["Chapter one covers installation.", "Page two: the velvet compass resets."])
    )
    return root


def test_one_machine_indexes_into_s3_and_another_searches_and_answers(
    tmp_path: Path,
    folder: Path,
    bucket: str,
    s3_endpoint: str,
    ollama_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = f"s3://{bucket}/team-index"
    writer = _home(tmp_path / "indexer", ollama_server.url, uri, s3_endpoint, read_only=False)
    reader = _home(tmp_path / "desktop", ollama_server.url, uri, s3_endpoint, read_only=True)

    code, doc, err = _cli(capsys, writer, "index", str(folder), "--json")
    assert code == 0, err
    assert doc["indexed"] == 3 and doc["failed"] == 0

    # The index is in the bucket, not on either machine's disk.
    keys = _keys(s3_endpoint, bucket, "team-index/")
    assert any(".lance/" in k for k in keys), keys
    for home in (writer, reader):
        assert not list(home.root.rglob("*.lance")), f"index files on {home.root}'s disk"

    code, found, err = _cli(capsys, reader, "search", "velvet compass", "--json")
    assert code == 0, err
    top = found["hits"][0]
    assert top["path"].endswith("manual.pdf") and top["page"] == 2
    assert found["mode"] == "hybrid"

    # The test server's scripted model quotes source [1] and cites it.
    code, answer, err = _cli(capsys, reader, "ask", "How does the velvet compass reset?", "--json")
    assert code == 0, err
    assert "velvet compass resets" in answer["answer"] and "[1]" in answer["answer"]
    assert answer["cited"][0]["path"].endswith("manual.pdf")
    assert answer["cited"][0]["page"] == 2

    code, status, err = _cli(capsys, reader, "status")
    assert code == 0, err
    assert f"Index:     {uri} (shared, read-only" in status
    assert "testing-secret" not in status and "aws_access_key_id" not in status


def test_a_read_only_desktop_refuses_to_index_and_writes_nothing(
    tmp_path: Path,
    folder: Path,
    bucket: str,
    s3_endpoint: str,
    ollama_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = f"s3://{bucket}/team-index"
    reader = _home(tmp_path / "desktop", ollama_server.url, uri, s3_endpoint, read_only=True)
    code, _out, err = _cli(capsys, reader, "index", str(folder))
    assert code == 1
    assert f"only reads the shared index {uri}" in err
    assert "index_read_only" in err  # the hint says how to make it the indexer
    assert _keys(s3_endpoint, bucket, "team-index/") == []  # not even an empty table
    # Before the indexer's first run the shared index is empty: searching finds nothing.
    code, found, err = _cli(capsys, reader, "search", "quartz", "--json")
    assert code == 0, err
    assert found["hits"] == []


def test_readers_see_the_indexers_edits_and_deletions_without_reopening(
    tmp_path: Path, folder: Path, bucket: str, s3_endpoint: str, ollama_server: Any
) -> None:
    uri = f"s3://{bucket}/team-index"
    writer = _home(tmp_path / "indexer", ollama_server.url, uri, s3_endpoint, read_only=False)
    reader = _home(tmp_path / "desktop", ollama_server.url, uri, s3_endpoint, read_only=True)
    with (
        Engine(writer, load_settings(writer.settings_file)) as indexer,
        Engine(reader, load_settings(reader.settings_file)) as desktop,
    ):
        list(indexer.sync(folder))
        assert desktop.search("kestrel survey", mode="keyword").hits[0].path.endswith("notes.txt")

        (folder / "notes.txt").write_text("Meeting notes: the heron census moved to autumn.\n")
        (folder / "contract.md").unlink()
        list(indexer.sync(folder))

        hits = desktop.search("heron census", mode="keyword").hits
        assert hits and hits[0].path.endswith("notes.txt")
        assert desktop.search("kestrel survey", mode="keyword").hits == []
        assert desktop.search("quartz lanterns", mode="keyword").hits == []
        paths = {d.path for d in desktop.store.documents()}
        assert paths == {str(folder / "notes.txt"), str(folder / "manual.pdf")}

        with pytest.raises(UserError, match="only reads the shared index"):
            list(desktop.sync(folder))


def test_the_location_comes_from_the_settings(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    local = locate(home, Settings())
    assert not local.remote and local.local_dir == home.index_dir
    assert local.uri == str(home.index_dir)

    shared = locate(
        home,
        Settings(index_uri="s3://team/idx/", index_storage_options={"aws_secret_access_key": "x"}),
    )
    assert shared.remote and shared.uri == "s3://team/idx"
    assert shared.local_dir.parent == home.root / SHARED_DIR
    assert "x" not in shared.describe().replace("idx", "")
    other = locate(home, Settings(index_uri="s3://team/other"))
    assert other.local_dir != shared.local_dir  # each shared index has its own records


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("", None),
        ("s3://bucket/folder", None),
        ("gs://bucket", None),
        ("/srv/index", "not an object-store address"),
        ("ftp://bucket/x", "not a supported index location"),
        ("s3://", "names no bucket"),
    ],
)
def test_index_uri_problems(uri: str, problem: str | None) -> None:
    found = index_uri_problem(uri)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_storage_options_round_trip_and_a_wrong_type_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(path, Settings(index_storage_options={"aws_region": "eu-west-1"}))
    assert load_settings(path).index_storage_options == {"aws_region": "eu-west-1"}
    doc = json.loads(path.read_text())
    doc["index_storage_options"] = {"aws_region": 3}
    doc["chunk_size"] = 900
    path.write_text(json.dumps(doc))
    loaded = load_settings(path)
    assert loaded.index_storage_options == {} and loaded.chunk_size == 900
