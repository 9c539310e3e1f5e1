"""The installers, end to end: build the bundle and the .deb, install it, run it, remove it.

Slow (about three minutes: the build is most of it) and it needs root for `dpkg -i`/`dpkg -r`
(CI runs as root).  The frozen app is run exactly as a user would run it, from /usr/bin; any
traceback or unexpected stderr fails the test, as qutebrowser's release smoke test does.
The only stand-in is the Ollama server (the project's protocol test server).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftrag_desktop import __version__
from tests.conftest import PDF_DIR
from tests.gguf_files import write_model_gguf
from tests.ollama_server import OllamaTestServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parent.parent
DIST = REPO / "dist"
PACKAGE = "ftrag-desktop"
INSTALL_DIR = Path("/opt/ftrag-desktop")
LAUNCHERS = [Path("/usr/bin/ftrag-desktop"), Path("/usr/bin/ftrag")]
DESKTOP_FILE = Path("/usr/share/applications/ftrag-desktop.desktop")
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)
ICONS = [Path(f"/usr/share/icons/hicolor/{s}x{s}/apps/ftrag-desktop.png") for s in ICON_SIZES]
ICONS.append(Path("/usr/share/icons/hicolor/scalable/apps/ftrag-desktop.svg"))
SAMPLE = REPO / "resources" / "samples" / "ftrag-sample.pdf"
# Real PDFs that need the bundle's optional pieces: AES-256 (cryptography), a CFF font (fontTools).
EXTRA_PDFS = [
    PDF_DIR / "pypdf-resources" / "encryption" / "r5-owner-password.pdf",
    PDF_DIR / "py-pdf-sample-files" / "021-pdfa" / "crazyones-pdfa.pdf",
]


@dataclass
class Build:
    deb: Path
    tarball: Path
    output: str


def _dpkg_status() -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", PACKAGE], capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else "not-installed"


def _remove_package() -> None:
    if _dpkg_status() != "not-installed":
        subprocess.run(["dpkg", "--purge", PACKAGE], capture_output=True, check=False)


@pytest.fixture(scope="module")
def build() -> Build:
    """`make package`'s script, from scratch: PyInstaller, the .deb and the tarball."""
    if os.geteuid() != 0:
        pytest.fail(
            "test_packaging installs the .deb with dpkg and needs root (CI runs as root). "
            "Run it as root, e.g. `sudo .venv/bin/pytest tests/test_packaging.py`."
        )
    missing = [t for t in ("dpkg-deb", "dpkg", "xvfb-run") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (run `make system-deps`)")
    _remove_package()  # a leftover from an interrupted run would hide what the build installs
    prebuilt = os.environ.get("FTRAG_PREBUILT_DIST")
    if prebuilt:  # `make test` built them as a step before the tests (see the Makefile)
        stamp = REPO / prebuilt
        assert stamp.exists(), f"FTRAG_PREBUILT_DIST names {stamp}, which is missing"
        return _built("(built by make before the tests)")
    for stale in DIST.glob(f"{PACKAGE}*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    result = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "build.py")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    return _built(result.stdout)


def _built(output: str) -> Build:
    debs = list(DIST.glob(f"{PACKAGE}_{__version__}_*.deb"))
    tarballs = list(DIST.glob(f"{PACKAGE}-{__version__}-linux-*.tar.gz"))
    assert len(debs) == 1 and len(tarballs) == 1, sorted(p.name for p in DIST.iterdir())
    return Build(debs[0], tarballs[0], output)


@pytest.fixture(scope="module")
def installed(build: Build) -> Iterator[Build]:
    result = subprocess.run(["dpkg", "-i", str(build.deb)], capture_output=True, text=True)
    assert result.returncode == 0, f"dpkg -i failed:\n{result.stdout}\n{result.stderr}"
    try:
        yield build
    finally:
        _remove_package()


def run_frozen(
    args: list[str], env: dict[str, str], *, timeout: float = 180, progress: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run an installed executable; fail on a traceback or anything on stderr (with
    `progress`, the command reports progress there: then only errors and warnings fail)."""
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, f"{args} printed a traceback:\n{output}"
    if progress:
        problems = [
            line
            for line in result.stderr.splitlines()
            if line.lower().startswith(("error", "warning", "fatal", "qt.", "[pyi"))
        ]
        assert problems == [], f"{args} reported problems:\n{result.stderr}"
    else:
        assert result.stderr == "", f"{args} wrote to stderr:\n{result.stderr}"
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{output}"
    return result


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no checkout on the path, a data home of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "QT_", "OLLAMA_", "VIRTUAL_ENV", "FTRAG_"))
    }
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env["FTRAG_HOME"] = str(home)
    env.update(extra)
    return env


def ar_members(path: Path) -> list[str]:
    """Member names of an `ar` archive (a .deb is one), read from the headers only."""
    names = []
    with path.open("rb") as fh:
        assert fh.read(8) == b"!<arch>\n"
        while len(header := fh.read(60)) == 60:
            names.append(header[:16].decode().strip().rstrip("/"))
            size = int(header[48:58].decode().strip())
            fh.seek(size + size % 2, 1)
    return names


# ---- from source (no build, no root) ----------------------------------------------------------


def test_self_test_passes_from_source(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home", QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "ftrag_desktop", "--self-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert "ok    bundle         ftrag-desktop" in result.stdout
    assert "from source" in result.stdout
    assert result.stdout.splitlines()[-1] == "self-test passed: 8 checks"


# ---- the package ------------------------------------------------------------------------------


def test_build_makes_a_deb_and_a_tarball_of_the_bundle(build: Build) -> None:
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(build.deb), "Package", "Version", "Depends", "Installed-Size"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Package: {PACKAGE}\n" in fields
    assert f"Version: {__version__}\n" in fields
    depends = fields.split("Depends: ")[1].split("\n")[0]
    for system_package in ("libc6 (>= 2.", "libxcb1", "libgl1", "fontconfig-config"):
        assert system_package in depends
    assert int(fields.split("Installed-Size: ")[1].split()[0]) > 100_000  # KiB: the whole bundle
    assert "data.tar.zst" in ar_members(build.deb)  # zstd, as the issue asks
    with tarfile.open(build.tarball) as tar:
        names = set(tar.getnames())
    top = f"{PACKAGE}-{__version__}"
    for member in ("ftrag-desktop", "ftrag", "_internal/resources/samples/ftrag-sample.pdf"):
        assert f"{top}/{member}" in names
    assert not any("/translations/" in n or n.endswith(".pyi") for n in names)


def test_deb_installs_the_app_launchers_menu_entry_and_icons(installed: Build) -> None:
    assert _dpkg_status() == "install ok installed"
    for exe in ("ftrag-desktop", "ftrag"):
        assert os.access(INSTALL_DIR / exe, os.X_OK)
    for launcher in LAUNCHERS:
        assert launcher.resolve() == INSTALL_DIR / launcher.name
    entry = DESKTOP_FILE.read_text(encoding="utf-8")
    assert "Exec=ftrag-desktop %U" in entry and "Icon=ftrag-desktop" in entry
    for icon in ICONS:
        assert icon.is_file(), icon


# ---- the installed app ------------------------------------------------------------------------


def test_installed_app_passes_its_self_test(
    installed: Build, tmp_path: Path, ollama_server: OllamaTestServer
) -> None:
    env = clean_env(tmp_path / "home", QT_QPA_PLATFORM="offscreen", OLLAMA_HOST=ollama_server.url)
    before = sorted(p.name for p in Path("/tmp").glob("ftrag-self-test-*"))
    result = run_frozen(["ftrag-desktop", "--self-test"], env)
    lines = result.stdout.splitlines()
    checks = {line.split()[1]: line.split()[0] for line in lines[1:-1] if line[:1] != " "}
    assert checks == {
        "bundle": "ok",
        "sample-pdf": "ok",
        "parse-pool": "ok",
        "index": "ok",
        "window": "ok",
        "ollama": "info",
        "install-folder": "ok",
        "log": "ok",
    }, result.stdout
    assert "frozen, at /opt/ftrag-desktop" in result.stdout
    assert f"reachable at {ollama_server.url}" in result.stdout
    assert lines[-1].startswith("self-test passed")
    # Its temporary home is gone, and it never touched the user's.
    assert sorted(p.name for p in Path("/tmp").glob("ftrag-self-test-*")) == before
    assert not (tmp_path / "home").exists()


def test_self_test_of_a_damaged_install_fails_and_says_what_failed(
    installed: Build, tmp_path: Path
) -> None:
    sample = INSTALL_DIR / "_internal" / "resources" / "samples" / "ftrag-sample.pdf"
    aside = tmp_path / "ftrag-sample.pdf"
    shutil.move(sample, aside)
    try:
        env = clean_env(tmp_path / "home", QT_QPA_PLATFORM="offscreen")
        result = subprocess.run(
            ["ftrag-desktop", "--self-test"], env=env, capture_output=True, text=True, timeout=180
        )
    finally:
        shutil.move(aside, sample)
    assert result.returncode == 1, result.stdout
    assert result.stderr == ""
    failed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAIL")}
    assert {"bundle", "sample-pdf", "parse-pool", "index"} <= failed, result.stdout
    assert "window" not in failed, result.stdout  # the rest still ran, and passed
    assert "samples/ftrag-sample.pdf" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("self-test FAILED (bundle, sample-pdf")


def test_installed_cli_indexes_and_searches_a_folder(
    installed: Build, tmp_path: Path, ollama_server: OllamaTestServer
) -> None:
    docs = tmp_path / "Documents"
    docs.mkdir()
    shutil.copy(SAMPLE, docs / "handbook.pdf")
    for pdf in EXTRA_PDFS:
        shutil.copy(pdf, docs / pdf.name)
    (docs / "notes.md").write_text(
        "# Birds\n\nHerons wait at the water's edge.\n", encoding="utf-8"
    )
    env = clean_env(tmp_path / "home")
    host = ["--ollama-host", ollama_server.url]

    index = run_frozen(["ftrag", *host, "index", str(docs), "--json"], env)
    summary = json.loads(index.stdout)
    assert summary["indexed"] == 4 and summary["failed"] == 0, summary
    assert summary["embedding"] == "semantic" and summary["embedded"] > 0, summary

    search = run_frozen(["ftrag", *host, "search", "lighthouse keepers", "--json"], env)
    hits = json.loads(search.stdout)["hits"]
    assert Path(hits[0]["path"]).name == "handbook.pdf" and hits[0]["page"] == 2, hits

    again = run_frozen(["ftrag", *host, "index", str(docs), "--json"], env)
    assert json.loads(again.stdout)["unchanged"] == 4
    assert (tmp_path / "home" / "index").is_dir()  # the data went to FTRAG_HOME


def test_installed_cli_imports_a_gguf_model(
    installed: Build, tmp_path: Path, ollama_server: OllamaTestServer
) -> None:
    # The `gguf` package reads the file's metadata inside the frozen app.
    model = write_model_gguf(tmp_path / "tiny.gguf", arch="llama")
    env = clean_env(tmp_path / "home")
    result = run_frozen(
        [
            "ftrag",
            "--ollama-host",
            ollama_server.url,
            "models",
            "import-gguf",
            str(model),
            "--name",
            "tiny-frozen",
            "--json",
        ],
        env,
        progress=True,
    )
    model_record = json.loads(result.stdout)["model"]
    assert model_record["name"] == "tiny-frozen:latest" and model_record["imported"] is True
    assert model_record["lineage"]["architecture"] == "llama", model_record
    assert model_record["lineage"]["source_bytes"] == model.stat().st_size
    assert "checked    GGUF model (llama)" in result.stderr


def test_installed_app_opens_its_window_under_xvfb(installed: Build, tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    result = run_frozen(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "ftrag-desktop", "--exit-when-shown"],
        env,
    )
    assert result.stdout.startswith("window shown "), result.stdout


# ---- removal ----------------------------------------------------------------------------------


def test_dpkg_remove_leaves_nothing_behind(installed: Build) -> None:
    contents = subprocess.run(
        ["dpkg-deb", "-c", str(installed.deb)], capture_output=True, text=True, check=True
    ).stdout
    files = [Path(line.split()[5].lstrip(".")) for line in contents.splitlines()]
    result = subprocess.run(["dpkg", "-r", PACKAGE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert _dpkg_status() == "not-installed"
    ours = [p for p in files if PACKAGE in str(p) or p in LAUNCHERS]
    assert len(ours) > 1000  # the bundle's files, the launchers, the menu entry, the icons
    left = [p for p in ours if p.exists() or p.is_symlink()]
    assert left == []
    for path in [INSTALL_DIR, *LAUNCHERS, DESKTOP_FILE, *ICONS, Path("/usr/share/doc") / PACKAGE]:
        assert not path.exists() and not path.is_symlink(), path
