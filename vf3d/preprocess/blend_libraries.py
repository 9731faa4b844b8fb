"""Linked libraries of a `.blend` file, read from the file itself before Blender opens it.

Blender opens every library a `.blend` links (`Library` data-blocks, code `LI`) as soon as the file is
loaded, wherever it lies on disk; a shot must not pull in geometry from outside the folders its user chose,
and every file it reads must be part of its content hash. So the library paths are read here, without
Blender, from the file's own structure description (the SDNA block, code `DNA1`):

- the header is 12 bytes (`BLENDER`, pointer size `_`/`-`, endianness `v`/`V`, 3-digit version) or, since
  Blender 5.0, 17 bytes (`BLENDER17-01v0500`: 8-byte pointers, little endian, 64-bit block lengths);
- each block is a header (code, length, old address, SDNA index, count) followed by its bytes;
- the `Library` struct's path field (`name[1024]` in files) holds the path as written (`//` = relative to
  the linking file).

Files may be zstd- or gzip-compressed as a whole (Blender's "Compress" option).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from vf3d.common.errors import VF3DInputError
from vf3d.preprocess.external_references import allowed_roots, confine

ZSTD_MAGIC, GZIP_MAGIC = b"\x28\xb5\x2f\xfd", b"\x1f\x8b"


@dataclass(frozen=True)
class LinkedLibrary:
    path: Path
    """The library file, symlinks resolved (relative `//` paths against the folder of the file that links it)."""
    stored: str
    """The path as the linking file stores it."""
    linked_from: Path


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data.startswith(ZSTD_MAGIC):
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            return reader.read()
    if data.startswith(GZIP_MAGIC):
        return gzip.decompress(data)
    return data


def _blocks(data: bytes, path: Path):
    """Yield (code, sdna_index, count, payload) per block."""
    if not data.startswith(b"BLENDER"):
        raise VF3DInputError(path, "cannot read this .blend: not a .blend file (no BLENDER header)")
    if data[7:8] in (b"_", b"-"):
        pointer_size = 4 if data[7:8] == b"_" else 8
        endian = "<" if data[8:9] == b"v" else ">"
        offset = 12
        head = struct.Struct(endian + ("4siIii" if pointer_size == 4 else "4siQii"))
        fields = (0, 1, 3, 4)  # code, len, SDNAnr, nr
    elif data[7:9] == b"17" and data[9:12] == b"-01" and data[12:13] == b"v":
        pointer_size, endian, offset = 8, "<", 17
        head = struct.Struct("<4siQqq")
        fields = (0, 3, 1, 4)
    else:
        raise VF3DInputError(path, f"cannot read this .blend: unsupported header {data[:17]!r}")
    while offset + head.size <= len(data):
        values = head.unpack_from(data, offset)
        code, length, sdna, count = (values[i] for i in fields)
        code = code.rstrip(b"\0")
        offset += head.size
        if code == b"ENDB":
            return
        yield code, sdna, count, data[offset:offset + length], pointer_size, endian
        offset += length


def _sdna(payload: bytes, pointer_size: int, endian: str) -> tuple[list[str], list[int], list[tuple]]:
    """Names, type lengths and structs ((type index, [(field type, field name)])) of an SDNA block."""
    def take_strings(at: int, n: int) -> tuple[list[str], int]:
        out = []
        for _ in range(n):
            end = payload.index(b"\0", at)
            out.append(payload[at:end].decode("latin-1"))
            at = end + 1
        return out, (at + 3) & ~3

    at = 4  # "SDNA"
    assert payload[at:at + 4] == b"NAME"
    (count,) = struct.unpack_from(endian + "i", payload, at + 4)
    names, at = take_strings(at + 8, count)
    assert payload[at:at + 4] == b"TYPE"
    (count,) = struct.unpack_from(endian + "i", payload, at + 4)
    types, at = take_strings(at + 8, count)
    assert payload[at:at + 4] == b"TLEN"
    lengths = list(struct.unpack_from(endian + f"{count}h", payload, at + 4))
    at = (at + 4 + 2 * count + 3) & ~3
    assert payload[at:at + 4] == b"STRC"
    (count,) = struct.unpack_from(endian + "i", payload, at + 4)
    at += 8
    structs = []
    for _ in range(count):
        type_index, nfields = struct.unpack_from(endian + "hh", payload, at)
        pairs = struct.unpack_from(endian + f"{2 * nfields}h", payload, at + 4)
        structs.append((type_index, list(zip(pairs[::2], pairs[1::2]))))
        at += 4 + 4 * nfields
    return names, lengths, [(types[t], [(f, names[n]) for f, n in fs]) for t, fs in structs]


def _field_size(type_length: int, name: str, pointer_size: int) -> int:
    size = pointer_size if name.startswith(("*", "(*")) else type_length
    for n in re.findall(r"\[(\d+)\]", name):
        size *= int(n)
    return size


def _filepath_field(sdna: tuple, pointer_size: int) -> tuple[int, int, int] | None:
    """(SDNA index of `Library`, byte offset and size of its path field), None if absent.

    The path is `Library.filepath` in Blender's code but keeps its DNA name `name[1024]` in files (DNA
    renames map it at load time); the ID's own name is nested inside `id`, so a top-level `name` is the path.
    """
    _, lengths, structs = sdna
    for index, (type_name, fields) in enumerate(structs):
        if type_name == "Library":
            offset = 0
            for field_type, field_name in fields:
                size = _field_size(lengths[field_type], field_name, pointer_size)
                if field_name.startswith(("filepath[", "name[")):  # files keep the DNA name `name`
                    return index, offset, size
                offset += size
    return None


def stored_library_paths(path: Path) -> list[str]:
    """The library paths a `.blend` file links, as stored in it (`//` relative to the file's folder)."""
    path = Path(path)
    try:
        data = _read_bytes(path)
    except OSError as exc:
        raise VF3DInputError(path, f"cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # corrupt compressed stream
        raise VF3DInputError(path, f"cannot read this .blend ({exc})") from None
    blocks = list(_blocks(data, path))
    dna = next(((p, ps, e) for code, _, _, p, ps, e in blocks if code == b"DNA1"), None)
    if dna is None:
        raise VF3DInputError(path, "cannot read this .blend (no structure description block)")
    try:
        field = _filepath_field(_sdna(*dna), dna[1])
    except (AssertionError, struct.error, ValueError, IndexError):
        raise VF3DInputError(path, "cannot read this .blend (corrupt structure description)") from None
    if field is None:
        return []
    library_index, offset, size = field
    found = []
    for code, sdna, count, payload, _, _ in blocks:
        if code == b"LI" and sdna == library_index:
            raw = payload[offset:offset + size].split(b"\0", 1)[0]
            found.append(raw.decode("utf-8", "replace"))
    return found


def library_file(stored: str, linking_file: Path) -> str:
    """A stored library path as a file path: `//` is the folder of the linking file as Blender opened it
    (symlinks not resolved). Blender then collapses `..` (`confine` checks both readings)."""
    if stored.startswith("//"):
        return os.path.join(os.path.dirname(os.path.abspath(linking_file)), stored[2:].replace("\\", "/"))
    return stored


def linked_libraries(source: Path, allowed: list[Path] | tuple[Path, ...] = ()) -> list[LinkedLibrary]:
    """Every library a shot links, transitively, after checking that each resolves (symlinks followed) inside
    the shot's folder or one of `allowed`; anything else is a `VF3DInputError` naming the link and the linking
    file (`vf3d.preprocess.external_references.confine`, the rule of every shot format).

    A missing library is an error too: Blender would silently drop its geometry.
    """
    source = Path(os.path.abspath(source))
    roots = allowed_roots(source, allowed)
    seen: dict[Path, LinkedLibrary] = {}
    pending = [source]  # as Blender opens each file: nested `//` paths are relative to that
    while pending:  # each library is read once (`seen`), so link cycles end
        linking = pending.pop()
        for stored in stored_library_paths(linking):
            found = confine(stored, [library_file(stored, linking)], linking, roots, "links the library")
            for opened, library in found:
                if library not in seen and library != Path(os.path.realpath(source)):
                    seen[library] = LinkedLibrary(library, stored, linking)
                    pending.append(Path(opened))
    return sorted(seen.values(), key=lambda lib: str(lib.path))
