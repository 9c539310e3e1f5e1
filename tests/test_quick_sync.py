"""`ftrag index` with nothing changed answers without opening the index, and any change, to
the folder, the index or the settings, takes the full sync again (`core.quick_sync`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ftrag_desktop.cli import main
from ftrag_desktop.config import load_settings, save_settings
from ftrag_desktop.core import engine as engine_module
from ftrag_desktop.core.quick_sync import RECORD_DIR
from ftrag_desktop.paths import Home

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    for n in range(12):
        (root / f"note{n:02}.md").write_text(f"# Note {n}\n\nNote {n} is about heron{n}.\n")
    (root / "sub" / "deep.txt").write_text("A deep file about kestrels.\n")
    return root


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every Engine the CLI opens: none means the shortcut answered."""
    opened: list[object] = []
    real = engine_module.Engine

    class Counting(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            opened.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(engine_module, "Engine", Counting)
    return opened


def index(capsys: pytest.CaptureFixture[str], url: str, root: Path) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    code = main(["--ollama-host", url, "index", str(root), "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]), err


def _without_seconds(doc: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in doc.items() if k != "seconds"}


def test_nothing_changed_is_answered_without_opening_the_index(
    capsys: pytest.CaptureFixture[str],
    folder: Path,
    ftrag_home: Path,
    engines: list[object],
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    url = ollama_server.url
    code, first, _ = index(capsys, url, folder)
    assert code == 0 and first["indexed"] == 13 and len(engines) == 1
    # The same question answered the long way (no record): what the shortcut must print.
    for record in (ftrag_home / "index" / RECORD_DIR).iterdir():
        record.unlink()
    code, full, _ = index(capsys, url, folder)
    assert code == 0 and full["unchanged"] == 13 and len(engines) == 2
    embedded = ollama_server.embed_count
    for _ in range(2):
        code, quick, _ = index(capsys, url, folder)
        assert code == 0 and len(engines) == 2, "the shortcut opened the index"
        assert _without_seconds(quick) == _without_seconds(full)
    assert ollama_server.embed_count == embedded


def _edit(root: Path) -> None:
    path = root / "note03.md"
    text = path.read_text().replace("heron3", "egret3")  # same size, new content
    st = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _touch(root: Path) -> None:
    path = root / "note04.md"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _add(root: Path) -> None:
    (root / "sub" / "new.md").write_text("# New\n\nAbout ospreys.\n")


def _delete(root: Path) -> None:
    (root / "note05.md").unlink()


def _rename(root: Path) -> None:
    (root / "note06.md").rename(root / "sub" / "moved.md")


CHANGES: dict[str, tuple[Callable[[Path], object], dict[str, int]]] = {
    "edited, same size": (_edit, {"indexed": 1}),
    "touched only": (_touch, {"touched": 1}),
    "added": (_add, {"indexed": 1}),
    "deleted": (_delete, {"removed": 1}),
    "renamed": (_rename, {"renamed": 1}),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_to_the_folder_takes_the_full_sync(
    change: str,
    capsys: pytest.CaptureFixture[str],
    folder: Path,
    engines: list[object],
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    url = ollama_server.url
    assert index(capsys, url, folder)[0] == 0
    make, expected = CHANGES[change]
    make(folder)
    code, doc, _ = index(capsys, url, folder)
    assert code == 0 and len(engines) == 2
    assert {k: doc[k] for k in expected} == expected, doc
    code, doc, _ = index(capsys, url, folder)  # recorded again: the shortcut once more
    assert code == 0 and len(engines) == 2 and doc["indexed"] == doc["removed"] == 0


def _another_folder_indexed(home: Path, url: str, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.md").write_text("# X\n\nAbout plovers.\n")
    assert main(["--ollama-host", url, "index", str(other)]) == 0


def _settings_changed(home: Path, url: str, tmp_path: Path) -> None:
    settings = load_settings(Home(home).settings_file)
    settings.chunk_size = 400
    save_settings(Home(home).settings_file, settings)


def _index_damaged(home: Path, url: str, tmp_path: Path) -> None:
    table = next((home / "index").glob("chunks_*.lance"))
    data = max((table / "data").iterdir(), key=lambda p: p.stat().st_size)
    os.truncate(data, data.stat().st_size // 2)


@pytest.mark.parametrize(
    "change", [_another_folder_indexed, _settings_changed, _index_damaged], ids=lambda f: f.__name__
)
def test_a_change_to_the_index_or_settings_takes_the_full_sync(
    change: Callable[[Path, str, Path], None],
    capsys: pytest.CaptureFixture[str],
    folder: Path,
    ftrag_home: Path,
    tmp_path: Path,
    engines: list[object],
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    url = ollama_server.url
    assert index(capsys, url, folder)[0] == 0
    change(ftrag_home, url, tmp_path)
    capsys.readouterr()
    opened = len(engines)
    code, doc, err = index(capsys, url, folder)
    assert code == 0 and len(engines) == opened + 1, "the shortcut answered after a change"
    if change is _index_damaged:
        assert "The index was damaged" in err and doc["indexed"] == 13
    main(["--ollama-host", url, "search", "heron7", "--json"])
    hits = json.loads(capsys.readouterr()[0])["hits"]
    assert hits and hits[0]["path"] == str(folder / "note07.md")


def test_a_problem_in_the_walk_takes_the_full_sync_which_reports_it(
    capsys: pytest.CaptureFixture[str],
    folder: Path,
    engines: list[object],
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    url = ollama_server.url
    assert index(capsys, url, folder)[0] == 0
    bad = os.path.join(os.fsencode(folder), b"bad-\xff-name.md")  # not valid UTF-8
    with open(bad, "wb") as f:
        f.write(b"# Bad name\n")
    for opened in (2, 3):  # and again: a walk with problems is never cut short
        _code, doc, _ = index(capsys, url, folder)
        assert len(engines) == opened and doc["unchanged"] == 13, doc
        assert [f["reason"] for f in doc["failures"]] == [
            "file name is not valid UTF-8; rename it to index it"
        ]


def test_while_another_process_writes_the_index_the_full_sync_says_so(
    capsys: pytest.CaptureFixture[str],
    folder: Path,
    ftrag_home: Path,
    engines: list[object],
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    url = ollama_server.url
    assert index(capsys, url, folder)[0] == 0
    holder = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from ftrag_desktop.core.store_lock import WriterLock
        lock = WriterLock(Path({str(ftrag_home / "index" / "writer.lock")!r}))
        lock.acquire()
        print("held", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        code = main(["--ollama-host", url, "index", str(folder), "--json"])
        _, err = capsys.readouterr()
        assert code == 1 and len(engines) == 2 and "Another ftrag process" in err
    finally:
        proc.communicate("", timeout=30)


@pytest.fixture
def indexed_home(tmp_path: Path, folder: Path, ollama_server) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    home = tmp_path / "sub-home"
    cmd = [sys.executable, "-m", "ftrag_desktop.cli", "--home", str(home)]
    cmd += ["--ollama-host", ollama_server.url, "index", str(folder)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    yield home


def test_the_shortcut_imports_neither_lancedb_nor_pyarrow(
    indexed_home: Path,
    folder: Path,
    ollama_server,  # type: ignore[no-untyped-def]
) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from ftrag_desktop.cli import main
        code = main(["--home", {str(indexed_home)!r}, "--ollama-host", {ollama_server.url!r},
                     "index", {str(folder)!r}, "--json"])
        heavy = sorted(m for m in ("lancedb", "pyarrow", "numpy", "ollama") if m in sys.modules)
        print("HEAVY", heavy)
        sys.exit(code)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout
    assert json.loads(done.stdout.splitlines()[0])["unchanged"] == 13
