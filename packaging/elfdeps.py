"""Shared-library dependencies of ELF files (Linux), read straight from their DT_NEEDED entries.

Used by the spec, to drop libraries that only unused plugins needed, and by the build script,
to find which system libraries the bundle still expects from the machine (the .deb's Depends).
No `ldd`: it would resolve through the build machine's paths, and it runs the dynamic loader.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
SHT_SYMTAB = 2
SHT_DYNAMIC = 6
DT_NULL = 0
DT_NEEDED = 1


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == ELF_MAGIC
    except OSError:
        return False


def _sections(data: bytes) -> tuple[list[tuple[int, ...]], str, bool]:
    """The section headers of an ELF image, its struct byte order, and whether it is 64-bit."""
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        (shoff,) = struct.unpack_from(endian + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(endian + "HH", data, 0x3A)
        sh_fmt = endian + "IIQQQQIIQQ"
    else:
        (shoff,) = struct.unpack_from(endian + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(endian + "HH", data, 0x2E)
        sh_fmt = endian + "IIIIIIIIII"
    sections = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    return sections, endian, is64


def has_symbols(path: Path) -> bool:
    """Whether an ELF file still carries its symbol table (`strip` would shrink it)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data[:4] != ELF_MAGIC:
        return False
    sections, _endian, _is64 = _sections(data)
    return any(sec[1] == SHT_SYMTAB for sec in sections)


def needed(path: Path) -> list[str]:
    """The DT_NEEDED names of one ELF file ([] for anything else)."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    if data[:4] != ELF_MAGIC:
        return []
    sections, endian, is64 = _sections(data)
    dyn_fmt = endian + ("qQ" if is64 else "iI")
    names: list[str] = []
    for sec in sections:
        if sec[1] != SHT_DYNAMIC:
            continue
        offset, size, link = sec[4], sec[5], sec[6]
        strtab_offset = sections[link][4]
        step = struct.calcsize(dyn_fmt)
        for pos in range(offset, offset + size, step):
            tag, value = struct.unpack_from(dyn_fmt, data, pos)
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                start = strtab_offset + value
                names.append(data[start : data.index(b"\0", start)].decode())
    return names


def closure(roots: Iterable[Path], by_name: dict[str, Path]) -> set[str]:
    """Names of every library in `by_name` that the `roots` load, directly or through others."""
    seen: set[str] = set()
    todo = [p for p in roots]
    while todo:
        for name in needed(todo.pop()):
            if name in by_name and name not in seen:
                seen.add(name)
                todo.append(by_name[name])
    return seen
