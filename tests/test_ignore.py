"""The ignore rules and the candidate-file walk, on real files in a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ftrag_desktop.core.ignore import (
    REASON_BROKEN_LINK,
    REASON_PERMISSION,
    REASON_VANISHED,
    is_ignored,
    is_ignored_dir,
    iter_candidate_files,
)

IGNORED_NAMES = [
    "~$report.docx",
    "download.tmp",
    "x.TMP",
    "data.temp",
    "movie.part",
    "movie.partial",
    "setup.exe.crdownload",
    "file.download",
    ".~lock.report.odt#",
    ".notes.md.swp",
    "notes.md.swo",
    "notes.md.swx",
    "notes.md~",
    "#notes.md#",
    ".#notes.md",
    ".DS_Store",
    "Thumbs.db",
    "thumbs.db",
    "desktop.ini",
    "Desktop.ini",
    ".hidden.md",
]
KEPT_NAMES = [
    "notes.md",
    "report.pdf",
    "a~b.txt",
    "#notes.md",
    "notes#",
    "template.tmpl",
    "partial.md",
    "tmp.txt",
    "~report.docx",
    "download.md",
    "lock.txt",
    "Thumbs.db.md",
]


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def walk(root: Path, **kwargs: object) -> tuple[list[Path], list[tuple[Path, str]]]:
    errors: list[tuple[Path, str]] = []
    found = [
        p
        for p, _ in iter_candidate_files(
            root,
            on_error=lambda p, r: errors.append((p, r)),
            **kwargs,  # type: ignore[arg-type]
        )
    ]
    return found, errors


@pytest.mark.parametrize("name", IGNORED_NAMES)
def test_temp_and_litter_names_are_ignored(tmp_path: Path, name: str) -> None:
    assert is_ignored(tmp_path / name, tmp_path)
    assert is_ignored(tmp_path / "sub" / name, tmp_path)


@pytest.mark.parametrize("name", KEPT_NAMES)
def test_ordinary_names_are_kept(tmp_path: Path, name: str) -> None:
    assert not is_ignored(tmp_path / name, tmp_path)
    assert not is_ignored(tmp_path / "sub" / "deeper" / name, tmp_path)


@pytest.mark.parametrize("folder", [".git", ".hidden", "__pycache__", "node_modules", ".venv"])
def test_anything_inside_hidden_or_tool_folders_is_ignored(tmp_path: Path, folder: str) -> None:
    assert is_ignored(tmp_path / folder / "notes.md", tmp_path)
    assert is_ignored(tmp_path / "a" / folder / "b" / "notes.md", tmp_path)
    assert is_ignored(tmp_path / "a" / folder, tmp_path)
    assert is_ignored_dir(tmp_path / "a" / folder / "b", tmp_path)
    assert not is_ignored_dir(tmp_path / "a" / "b", tmp_path)


def test_a_hidden_root_only_judges_components_below_it(tmp_path: Path) -> None:
    root = tmp_path / ".cache" / "node_modules" / ".root"
    assert not is_ignored(root / "notes.md", root)
    assert not is_ignored(root / "sub" / "notes.md", root)
    assert not is_ignored(root, root)
    assert is_ignored(root / ".sub" / "notes.md", root)
    # The walk agrees: a hidden root is walked.
    write(root / "sub" / "notes.md")
    found, errors = walk(root)
    assert found == [root / "sub" / "notes.md"]
    assert errors == []


def test_a_temp_name_on_a_folder_does_not_hide_its_files(tmp_path: Path) -> None:
    # Temp-name rules are for files; a folder called `x.tmp` is walked.
    assert not is_ignored(tmp_path / "x.tmp" / "notes.md", tmp_path)
    assert not is_ignored_dir(tmp_path / "x.tmp", tmp_path)
    write(tmp_path / "x.tmp" / "notes.md")
    assert walk(tmp_path)[0] == [tmp_path / "x.tmp" / "notes.md"]


def test_walk_yields_regular_files_in_order_with_their_stat(tmp_path: Path) -> None:
    files = [
        write(tmp_path / "b.md", "bb"),
        write(tmp_path / "a.txt", "a"),
        write(tmp_path / "z" / "deep" / "c.pdf", "ccc"),
        write(tmp_path / "m" / "d.html", "dddd"),
        write(tmp_path / "m" / "no_extension", "e"),
    ]
    result = list(iter_candidate_files(tmp_path))
    paths = [p for p, _ in result]
    # Files of a folder first (by name), then its subfolders (by name).
    assert paths == [
        tmp_path / "a.txt",
        tmp_path / "b.md",
        tmp_path / "m" / "d.html",
        tmp_path / "m" / "no_extension",
        tmp_path / "z" / "deep" / "c.pdf",
    ]
    assert sorted(paths) == sorted(files)
    for path, st in result:
        real = path.stat()
        assert (st.st_size, st.st_mtime_ns, st.st_ino) == (
            real.st_size,
            real.st_mtime_ns,
            real.st_ino,
        )


def test_walk_skips_hidden_temp_and_tool_files(tmp_path: Path) -> None:
    keep = write(tmp_path / "docs" / "keep.md")
    for name in IGNORED_NAMES:
        write(tmp_path / "docs" / name)
    for folder in (".git", ".hidden", "__pycache__", "node_modules"):
        write(tmp_path / folder / "inside.md")
        write(tmp_path / "docs" / folder / "inside.md")
    found, errors = walk(tmp_path)
    assert found == [keep]
    assert errors == []
    # The walk and is_ignored agree on every file on disk.
    on_disk = [Path(d) / f for d, _, fs in os.walk(tmp_path) for f in fs]
    assert len(on_disk) == len(IGNORED_NAMES) + 9
    assert [p for p in on_disk if not is_ignored(p, tmp_path)] == [keep]


def test_symlink_loop_terminates_and_symlinked_folders_are_not_entered(tmp_path: Path) -> None:
    root = tmp_path / "root"
    doc = write(root / "sub" / "doc.md")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "self").symlink_to(root / "self")  # a link to itself: ELOOP when followed
    outside = write(tmp_path / "outside" / "other.md")
    (root / "outside_dir").symlink_to(outside.parent, target_is_directory=True)
    found, errors = walk(root)
    assert found == [doc]
    assert [p for p, _ in errors] == [root / "self"]


def test_symlinked_file_is_followed_to_its_target(tmp_path: Path) -> None:
    root = tmp_path / "root"
    target = write(tmp_path / "elsewhere" / "real.md", "twelve bytes")
    link = root / "link.md"
    root.mkdir()
    link.symlink_to(target)
    (root / "dangling.md").symlink_to(tmp_path / "missing.md")
    errors: list[tuple[Path, str]] = []
    result = list(iter_candidate_files(root, on_error=lambda p, r: errors.append((p, r))))
    assert [p for p, _ in result] == [link]
    assert result[0][1].st_size == len("twelve bytes")
    assert errors == [(root / "dangling.md", REASON_BROKEN_LINK)]


def test_depth_is_capped_with_a_report(tmp_path: Path) -> None:
    deep = tmp_path
    for i in range(6):
        deep = deep / f"d{i}"
    write(deep / "too_deep.md")
    shallow = write(tmp_path / "d0" / "d1" / "ok.md")
    found, errors = walk(tmp_path, max_depth=3)
    assert found == [shallow]
    assert len(errors) == 1
    path, reason = errors[0]
    assert path == tmp_path / "d0" / "d1" / "d2" / "d3"
    assert "3" in reason and "deep" in reason
    # Enough depth finds both.
    assert sorted(walk(tmp_path, max_depth=6)[0]) == sorted([shallow, deep / "too_deep.md"])


def test_default_depth_cap_stops_a_very_deep_tree(tmp_path: Path) -> None:
    # Even a real directory tree deeper than the default cap ends with a report, not a crash.
    deep = tmp_path
    for _ in range(70):
        deep = deep / "d"
    write(deep / "x.md")
    found, errors = walk(tmp_path)
    assert found == []
    assert len(errors) == 1 and "64" in errors[0][1]


def test_unreadable_folder_is_reported_and_the_walk_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, where chmod 000 does not deny access: refuse at the OS boundary.
    locked = tmp_path / "locked"
    write(locked / "secret.md")
    before = write(tmp_path / "a" / "before.md")
    after = write(tmp_path / "z" / "after.md")
    locked.chmod(0)
    real_scandir = os.scandir

    def scandir(path: Path) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    try:
        found, errors = walk(tmp_path)
    finally:
        locked.chmod(0o755)
    assert found == [before, after]
    assert errors == [(locked, REASON_PERMISSION)]


def test_file_vanishing_between_listing_and_stat_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = write(tmp_path / "gone.md")
    kept = write(tmp_path / "kept.md")
    real_scandir = os.scandir

    class ListThenDelete:
        """The real listing, after which the file is deleted (as another program might)."""

        def __init__(self, path: Path) -> None:
            with real_scandir(path) as it:
                self.entries = list(it)
            if Path(path) == tmp_path:
                gone.unlink()

        def __enter__(self) -> list[os.DirEntry[str]]:
            return self.entries

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(os, "scandir", ListThenDelete)
    found, errors = walk(tmp_path)
    assert found == [kept]
    assert errors == [(gone, REASON_VANISHED)]


def test_vanished_folder_and_missing_root_are_reported(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    found, errors = walk(missing)
    assert found == []
    assert errors == [(missing, REASON_VANISHED)]

    # A folder removed while the walk is paused is reported when the walk reaches it.
    write(tmp_path / "a.md")
    sub_file = write(tmp_path / "sub" / "b.md")
    errors2: list[tuple[Path, str]] = []
    it = iter_candidate_files(tmp_path, on_error=lambda p, r: errors2.append((p, r)))
    first, _ = next(it)
    assert first == tmp_path / "a.md"
    sub_file.unlink()
    sub_file.parent.rmdir()
    assert list(it) == []
    assert errors2 == [(tmp_path / "sub", REASON_VANISHED)]


def test_without_on_error_problems_are_silently_skipped(tmp_path: Path) -> None:
    (tmp_path / "dangling.md").symlink_to(tmp_path / "nowhere")
    doc = write(tmp_path / "doc.md")
    assert [p for p, _ in iter_candidate_files(tmp_path)] == [doc]
