"""The user's excluded patterns (gitignore syntax) in the walk and in `is_ignored`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftrag_desktop.core.ignore import (
    ExcludeRules,
    PatternError,
    is_ignored,
    is_ignored_dir,
    iter_candidate_files,
)

TREE = [
    "notes.md",
    "debug.log",
    "Report.LOG",
    "drafts/idea.md",
    "work/drafts/plan.md",
    "work/final.md",
    "archive/2019/old.pdf",
    "archive/2019/keep.pdf",
    "work/archive/2019/not-top.pdf",
    "deep/a/b/tmp/scratch.txt",
    "deep/a/b/real.txt",
    "drafts.md",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    for rel in TREE:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    return root


def walk(root: Path, patterns: list[str]) -> set[str]:
    rules = ExcludeRules.parse(patterns)
    return {p.relative_to(root).as_posix() for p, _ in iter_candidate_files(root, rules=rules)}


@pytest.mark.parametrize(
    ("patterns", "gone"),
    [
        ([], set()),
        (["*.log"], {"debug.log", "Report.LOG"}),  # any depth, any case
        (["drafts/"], {"drafts/idea.md", "work/drafts/plan.md"}),  # folders only, any depth
        (["/drafts"], {"drafts/idea.md"}),  # anchored at the top
        (["work/drafts"], {"work/drafts/plan.md"}),  # a slash inside anchors too
        (["/archive/2019/"], {"archive/2019/old.pdf", "archive/2019/keep.pdf"}),
        (["archive/2019/*", "!archive/2019/keep.pdf"], {"archive/2019/old.pdf"}),
        (["**/tmp/**"], {"deep/a/b/tmp/scratch.txt"}),
        (["deep/**/real.txt"], {"deep/a/b/real.txt"}),
        (["# a comment", "", "   "], set()),
        (["?otes.md"], {"notes.md"}),
        (["[dr]ebug.log"], {"debug.log"}),
        (["[!d]ebug.log"], set()),
    ],
)
def test_patterns_exclude_what_git_would(tree: Path, patterns: list[str], gone: set[str]) -> None:
    assert walk(tree, patterns) == set(TREE) - gone


def test_a_file_in_an_excluded_folder_cannot_be_re_included(tree: Path) -> None:
    # As in git: "!" does not reach into a folder that is itself excluded.
    kept = walk(tree, ["drafts/", "!drafts/idea.md"])
    assert "drafts/idea.md" not in kept


def test_is_ignored_agrees_with_the_walk(tree: Path) -> None:
    patterns = ["*.log", "drafts/", "/archive/2019/*", "!archive/2019/keep.pdf", "**/tmp/**"]
    rules = ExcludeRules.parse(patterns)
    kept = walk(tree, patterns)
    for rel in TREE:
        assert is_ignored(tree / rel, tree, rules) == (rel not in kept), rel
    assert is_ignored_dir(tree / "work" / "drafts", tree, rules)
    assert not is_ignored_dir(tree / "work", tree, rules)
    assert not is_ignored(tree / "notes.md", tree)  # without rules: the built-ins only


def test_strict_parse_raises_and_lenient_parse_skips(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PatternError, match=r"'\[oops'"):
        ExcludeRules.parse(["*.log", "[oops"])
    rules = ExcludeRules.parse(["*.log", "[oops"], strict=False)
    assert rules.patterns == ("*.log",)
    assert "[oops" in caplog.text
