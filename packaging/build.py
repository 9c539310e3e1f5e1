"""Build the installers: the PyInstaller folder, then what this OS ships (`make package`).

    .venv/bin/python packaging/build.py [--skip-pyinstaller] [--no-tarball]

- every OS: `dist/ftrag-desktop/` (PyInstaller, from `packaging/ftrag_desktop.spec`);
- Linux: `dist/ftrag-desktop_<version>_<arch>.deb` (zstd; installs under /opt/ftrag-desktop,
  with /usr/bin launchers, a .desktop entry and hicolor icons; Depends computed from the
  libraries the bundle links against) and `dist/ftrag-desktop-<version>-linux-<arch>.tar.gz`;
- Windows: `dist/ftrag-desktop-<version>-windows-setup.exe` through Inno Setup's ISCC
  (`packaging/windows/ftrag-desktop.iss`), when ISCC is installed;
- macOS: `dist/ftrag-desktop-<version>-macos-<arch>.dmg` (`packaging/macos/make_dmg.sh`).

Sizes are printed at the end.  Build-time options: FTRAG_CONSOLE=1 gives the app's executable
a console (Windows, macOS), FTRAG_CODESIGN_IDENTITY signs the macOS build.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import app_meta  # noqa: E402
import elfdeps  # noqa: E402

REPO = app_meta.REPO
DIST = REPO / "dist"
WORK = REPO / "build"
SPEC = HERE / "ftrag_desktop.spec"
ICONS = REPO / "resources" / "icons"
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)
INSTALL_DIR = Path("/opt") / app_meta.NAME
DEB_COMPRESSION = ["-Zzstd", "-z9"]  # level 9: about 15 % smaller than the default 3
TAR_GZIP_LEVEL = 6
# Libraries loaded at run time without being linked (so invisible to DT_NEEDED), and data the
# bundled libraries read from the system: the packages that provide them.
EXTRA_DEPENDS = [
    "fontconfig-config",  # fontconfig's configuration and, through it, at least one font
    "xkb-data",  # keyboard layouts for the bundled libxkbcommon
    "libx11-data",  # compose tables for dead keys
]
# Packages of libraries the build machine may not have installed (optional Wayland support).
KNOWN_PACKAGES = {
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
}


def log(message: str) -> None:
    print(message, flush=True)


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def tree_bytes(root: Path) -> tuple[int, int]:
    """(total bytes of regular files, number of files) under `root`; symlinks not followed."""
    total = count = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                count += 1
    return total, count


# ---- PyInstaller -------------------------------------------------------------------------------


def run_pyinstaller() -> Path:
    log(f"PyInstaller: {SPEC.relative_to(REPO)} -> {DIST.relative_to(REPO)}/")
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(DIST),
            "--workpath",
            str(WORK / "pyinstaller"),
            str(SPEC),
        ],
        cwd=REPO,
        check=True,
    )
    bundle = DIST / app_meta.NAME
    size, files = tree_bytes(bundle)
    log(f"  bundle: {mib(size)} in {files} files ({time.monotonic() - started:.0f} s)")
    return bundle


# ---- Linux: .deb and .tar.gz -----------------------------------------------------------------


def deb_arch() -> str:
    out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    return out.stdout.strip() or {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]


def system_library_dirs() -> list[Path]:
    triplet = f"{platform.machine()}-linux-gnu"
    names = [f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    return [Path(d) for d in names if Path(d).is_dir()]


def is_optional(path: Path) -> bool:
    """Qt plugins the app runs without (Wayland, input methods, desktop portal themes): the
    libraries only they need are Recommends, not Depends.  Qt falls back to xcb without them."""
    parts = path.parts
    if path.name.startswith(("libQt6Wayland", "libQt6WlShell")):
        return True
    if "plugins" not in parts[:-2]:
        return False
    kind = parts[parts.index("plugins") + 1]
    return (
        kind.startswith("wayland")
        or kind in ("platforminputcontexts", "platformthemes")
        or (kind == "platforms" and "wayland" in path.name)
    )


def external_libraries(bundle: Path) -> tuple[set[str], set[str], str]:
    """Libraries the bundle links against but does not contain, (needed, optional), and the
    newest GLIBC symbol version it uses."""
    inside = {p.name for p in bundle.rglob("*") if p.is_file() or p.is_symlink()}
    needed: set[str] = set()
    optional: set[str] = set()
    glibc = (2, 17)
    for path in bundle.rglob("*"):
        if path.is_symlink() or not path.is_file() or not elfdeps.is_elf(path):
            continue
        outside = {n for n in elfdeps.needed(path) if n not in inside}
        (optional if is_optional(path.relative_to(bundle)) else needed).update(outside)
        for major, minor in re.findall(rb"GLIBC_(\d+)\.(\d+)", path.read_bytes()):
            glibc = max(glibc, (int(major), int(minor)))
    return needed, optional - needed, f"{glibc[0]}.{glibc[1]}"


def owning_packages(libraries: set[str]) -> tuple[set[str], set[str]]:
    """Debian packages that provide `libraries` on this machine; and names no package has."""
    dirs = system_library_dirs()
    paths: dict[str, str] = {}
    for name in sorted(libraries):
        for d in dirs:
            candidate = d / name
            if candidate.exists():
                paths[name] = str(candidate)
                break
    queries = sorted(set(paths.values()) | {str(Path(p).resolve()) for p in paths.values()})
    out = subprocess.run(["dpkg", "-S", *queries], capture_output=True, text=True)
    owner_of: dict[str, str] = {}
    for line in out.stdout.splitlines():
        pkgs, _, path = line.partition(": ")
        owner_of[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    packages: set[str] = set()
    unknown: set[str] = set()
    for name in libraries:
        path = paths.get(name, "")
        owner = owner_of.get(path) or owner_of.get(str(Path(path).resolve()) if path else "")
        owner = owner or KNOWN_PACKAGES.get(name)
        if owner:
            packages.add(owner)
        else:
            unknown.add(name)
    return packages, unknown


def deb_relations(bundle: Path) -> tuple[str, str]:
    """The control file's Depends and Recommends, from what the bundle's ELF files link."""
    needed, optional, glibc = external_libraries(bundle)
    depends, unknown = owning_packages(needed)
    recommends, unknown_optional = owning_packages(optional)
    if unknown | unknown_optional:
        names = ", ".join(sorted(unknown | unknown_optional))
        log(f"  warning: no package provides {names} here (left out of the control file)")
    depends.discard("libc6")
    depends_line = ", ".join([f"libc6 (>= {glibc})", *sorted(depends | set(EXTRA_DEPENDS))])
    return depends_line, ", ".join(sorted(recommends - depends))


def _normalise_modes(root: Path) -> None:
    """Directories 0755, files 0644 or 0755 (executables and libraries): no group/other write."""
    for dirpath, dirs, files in os.walk(root):
        for name in dirs:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            executable = os.stat(path).st_mode & 0o111
            os.chmod(path, 0o755 if executable else 0o644)


def stage_deb(bundle: Path, root: Path) -> None:
    """The .deb's file tree under `root` (without DEBIAN/)."""
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(bundle, root / INSTALL_DIR.relative_to("/"), symlinks=True)
    bindir = root / "usr" / "bin"
    bindir.mkdir(parents=True)
    for exe in (app_meta.NAME, app_meta.CLI_NAME):
        (bindir / exe).symlink_to(INSTALL_DIR / exe)
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    shutil.copy(HERE / "linux" / f"{app_meta.NAME}.desktop", apps / f"{app_meta.NAME}.desktop")
    hicolor = root / "usr" / "share" / "icons" / "hicolor"
    for size in ICON_SIZES:
        target = hicolor / f"{size}x{size}" / "apps"
        target.mkdir(parents=True)
        shutil.copy(ICONS / f"ftrag-{size}.png", target / f"{app_meta.NAME}.png")
    (hicolor / "scalable" / "apps").mkdir(parents=True)
    shutil.copy(ICONS / "ftrag.svg", hicolor / "scalable" / "apps" / f"{app_meta.NAME}.svg")
    doc = root / "usr" / "share" / "doc" / app_meta.NAME
    doc.mkdir(parents=True)
    shutil.copy(HERE / "linux" / "copyright", doc / "copyright")
    _normalise_modes(root)


def installed_size_kib(root: Path) -> int:
    """What dpkg reports as Installed-Size: file sizes rounded up to KiB, one per directory."""
    total = 0
    for dirpath, dirs, files in os.walk(root):
        total += len(dirs)
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            total += (st.st_size + 1023) // 1024 if stat.S_ISREG(st.st_mode) else 1
    return total


def build_deb(bundle: Path, version: str) -> Path:
    started = time.monotonic()
    arch = deb_arch()
    root = WORK / "deb" / "root"
    stage_deb(bundle, root)
    control = root / "DEBIAN" / "control"
    control.parent.mkdir(mode=0o755)
    depends, recommends = deb_relations(bundle)
    description = textwrap.fill(
        app_meta.DESCRIPTION, width=72, initial_indent=" ", subsequent_indent=" "
    )
    control.write_text(
        f"Package: {app_meta.NAME}\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        f"Maintainer: {app_meta.MAINTAINER}\n"
        f"Installed-Size: {installed_size_kib(root)}\n"
        f"Depends: {depends}\n"
        + (f"Recommends: {recommends}\n" if recommends else "")
        + "Section: utils\n"
        "Priority: optional\n"
        f"Description: {app_meta.SUMMARY.lower()}\n"
        f"{description}\n"
        " .\n"
        " Installs the app (ftrag-desktop) and its command line (ftrag) under\n"
        f" {INSTALL_DIR}; user data lives in ~/.local/share/{app_meta.NAME}.\n",
        encoding="utf-8",
    )
    control.chmod(0o644)
    out = DIST / f"{app_meta.NAME}_{version}_{arch}.deb"
    subprocess.run(
        [
            "dpkg-deb",
            "--root-owner-group",
            *DEB_COMPRESSION,
            f"--threads-max={os.cpu_count()}",
            "-b",
            str(root),
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log(f"  .deb: {out.relative_to(REPO)} ({time.monotonic() - started:.0f} s)")
    return out


def build_tarball(bundle: Path, version: str) -> Path:
    started = time.monotonic()
    out = DIST / f"{app_meta.NAME}-{version}-linux-{platform.machine()}.tar.gz"
    top = f"{app_meta.NAME}-{version}"

    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(out, "w:gz", compresslevel=TAR_GZIP_LEVEL) as tar:
        tar.add(bundle, arcname=top, filter=owned_by_root)
        for extra in (HERE / "linux" / f"{app_meta.NAME}.desktop", ICONS / "ftrag-256.png"):
            name = f"{app_meta.NAME}.png" if extra.suffix == ".png" else extra.name
            tar.add(extra, arcname=f"{top}/share/{name}", filter=owned_by_root)
    log(f"  tarball: {out.relative_to(REPO)} ({time.monotonic() - started:.0f} s)")
    return out


# ---- Windows and macOS ------------------------------------------------------------------------


def find_iscc() -> str | None:
    found = shutil.which("iscc") or shutil.which("ISCC")
    if found:
        return found
    for base in (os.environ.get("PROGRAMFILES(X86)"), os.environ.get("PROGRAMFILES")):
        if base and (Path(base) / "Inno Setup 6" / "ISCC.exe").is_file():
            return str(Path(base) / "Inno Setup 6" / "ISCC.exe")
    return None


def build_windows_installer(bundle: Path, version: str) -> Path | None:
    iscc = find_iscc()
    if iscc is None:
        log("  Inno Setup (ISCC.exe) not found: install it from https://jrsoftware.org/isdl.php")
        return None
    subprocess.run(
        [
            iscc,
            f"/DAppVersion={version}",
            f"/DSourceDir={bundle}",
            f"/O{DIST}",
            str(HERE / "windows" / f"{app_meta.NAME}.iss"),
        ],
        check=True,
    )
    return DIST / f"{app_meta.NAME}-{version}-windows-setup.exe"


def build_dmg(version: str) -> Path:
    out = DIST / f"{app_meta.NAME}-{version}-macos-{platform.machine()}.dmg"
    subprocess.run(
        ["bash", str(HERE / "macos" / "make_dmg.sh"), str(DIST / f"{app_meta.NAME}.app"), str(out)],
        check=True,
    )
    return out


# ---- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--skip-pyinstaller", action="store_true", help="package the existing dist/ftrag-desktop"
    )
    parser.add_argument("--no-tarball", action="store_true", help="Linux: only the .deb")
    args = parser.parse_args(argv)
    started = time.monotonic()
    version = app_meta.version()
    bundle = DIST / app_meta.NAME if args.skip_pyinstaller else run_pyinstaller()
    if not (bundle / app_meta.NAME).exists() and not (bundle / f"{app_meta.NAME}.exe").exists():
        raise SystemExit(f"no bundle at {bundle}: run without --skip-pyinstaller")
    outputs: list[Path] = []
    if sys.platform.startswith("linux"):
        if shutil.which("dpkg-deb") is None:
            raise SystemExit("dpkg-deb is missing: install dpkg (Debian/Ubuntu) to build the .deb")
        tarball: list[Path] = []
        # gzip and zstd each keep one core busy: make the tarball while the .deb compresses.
        worker = threading.Thread(target=lambda: tarball.append(build_tarball(bundle, version)))
        if not args.no_tarball:
            worker.start()
        outputs.append(build_deb(bundle, version))
        if not args.no_tarball:
            worker.join()
            if not tarball:
                raise SystemExit("the tarball was not made (see the error above)")
            outputs.extend(tarball)
    elif sys.platform == "win32":
        setup = build_windows_installer(bundle, version)
        outputs.extend([setup] if setup else [])
    elif sys.platform == "darwin":
        outputs.append(build_dmg(version))
    size, files = tree_bytes(bundle)
    log(f"\nftrag-desktop {version}: built in {time.monotonic() - started:.0f} s")
    log(f"  {bundle.relative_to(REPO)}/: {mib(size)}, {files} files")
    for out in outputs:
        log(f"  {out.relative_to(REPO)}: {mib(out.stat().st_size)}")
    if sys.platform.startswith("linux"):
        log(f"  installed size: {mib(installed_size_kib(WORK / 'deb' / 'root') * 1024)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
