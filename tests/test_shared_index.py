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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from ftrag_desktop.cli import main
from ftrag_desktop.config import Settings, index_uri_problem, load_settings, save_settings
from ftrag_desktop.core.engine import Engine
from ftrag_desktop.core.index_location import SHARED_DIR, locate
from ftrag_desktop.errors import UserError
from ftrag_desktop.paths import Home
from tests.s3_server import MotoServer
from tests.test_parse import make_pdf


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = MotoServer().start()
    try:
        yield server.url
    finally:
        server.stop()


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


def _cli(capsys: pytest.CaptureFixture[str], home: Home, *argv: str) -> tuple[int, Any, str]:
    code = main(["--home", str(home.root), *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip().startswith("{") else out, err


class Team(NamedTuple):
    """One shared index, the home of the machine that writes it and of a read-only desktop."""

    uri: str
    endpoint: str
    bucket: str
    writer: Home
    reader: Home

    def keys(self) -> list[str]:
        """The objects the index has in its bucket."""
        reply = httpx.get(
            f"{self.endpoint}/{self.bucket}", params={"list-type": "2", "prefix": "team-index/"}
        )
        assert reply.status_code == 200
        return re.findall(r"<Key>([^<]+)</Key>", reply.text)


@pytest.fixture
def team(tmp_path: Path, bucket: str, s3_endpoint: str, ollama_server: Any) -> Team:
    uri = f"s3://{bucket}/team-index"
    return Team(
        uri,
        s3_endpoint,
        bucket,
        _home(tmp_path / "indexer", ollama_server.url, uri, s3_endpoint, read_only=False),
        _home(tmp_path / "desktop", ollama_server.url, uri, s3_endpoint, read_only=True),
    )


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
    team: Team, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, writer, reader = team.uri, team.writer, team.reader

    code, doc, err = _cli(capsys, writer, "index", str(folder), "--json")
    assert code == 0, err
    assert doc["indexed"] == 3 and doc["failed"] == 0

    # The index is in the bucket, not on either machine's disk.
    keys = team.keys()
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
    team: Team, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = _cli(capsys, team.reader, "index", str(folder))
    assert code == 1
    assert f"only reads the shared index {team.uri}" in err
    assert "index_read_only" in err  # the hint says how to make it the indexer
    assert team.keys() == []  # not even an empty table
    # Before the indexer's first run the shared index is empty: searching finds nothing.
    code, found, err = _cli(capsys, team.reader, "search", "quartz", "--json")
    assert code == 0, err
    assert found["hits"] == []


def test_readers_see_the_indexers_edits_and_deletions_without_reopening(
    team: Team, folder: Path
) -> None:
    writer, reader = team.writer, team.reader
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

    options = {"aws_secret_access_key": "s3cr3t", "aws_region": "eu-west-1"}
    shared = locate(home, Settings(index_uri="s3://team/idx/", index_storage_options=options))
    assert shared.remote and shared.uri == "s3://team/idx"
    assert shared.local_dir.parent == home.root / SHARED_DIR
    assert shared.describe() == "s3://team/idx (shared, read-write; aws_region=eu-west-1)"
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
