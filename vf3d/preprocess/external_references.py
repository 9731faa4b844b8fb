"""Every other file a shot's file makes Blender read, found and confined before Blender opens anything.

Each shot format can name other files, and Blender's importers read them wherever they lie: a `.blend` links
libraries, a `.gltf`/`.glb` names buffers and images by URI, an `.obj` names material libraries (`.mtl`) whose
statements name texture images. A shot must read nothing outside the folders its user chose (the shot's own
folder and below, plus `--allow-library DIR` or the catalog entry's `library_paths`), and every file it reads
is part of its content hash, so that editing one makes the scene stale. So the references are read here,
without Blender, the way Blender's importers read them:

- `.blend`: the `Library` paths stored in the file, transitively (`vf3d.preprocess.blend_libraries`);
- `.gltf`/`.glb`, told apart by content as Blender's importer does (a GLB starts with `glTF`: a 12-byte
  header, then a JSON chunk): `buffers[].uri` and `images[].uri`, percent-decoded, relative to the file's
  folder; a base64 `data:` URI is embedded and names no file;
- `.obj`: each `mtllib` line (the rest of the line names one file, or several separated by spaces) relative to
  the obj's folder, and `<name>.mtl` beside `<name>.obj`, which Blender reads unasked; in each `.mtl`, every
  texture statement (`map_*`, `bump`, `disp`, `decal`, `refl`, `norm`): its file is what follows the options
  (`-bm 1`, `-o u v w`, ...), relative to the mtl's folder.

A reference counts as inside an allowed folder only if the file it resolves to, symlinks followed, is inside
one of the resolved folders; a `..` is checked both as the OS follows it and as Blender collapses it. A
reference elsewhere, a missing file or a malformed file is a `VF3DInputError`: one line naming the referencing
file and the reference.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from vf3d.common.errors import VF3DInputError

GLB_MAGIC = b"glTF"
GLB_HEADER = struct.Struct("<4sII")  # magic, version, total length
GLB_CHUNK = struct.Struct("<I4s")  # chunk length, chunk type
MTL_TEXTURE = re.compile(r"map_\S+|bump|disp|decal|refl|norm")
MTL_OPTION_ARGUMENTS = {"-blendu": 1, "-blendv": 1, "-bm": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1,
                        "-mm": 2, "-texres": 1, "-type": 1}
MTL_VECTOR_OPTIONS = ("-o", "-s", "-t")  # u [v [w]]: one to three numbers
OUTSIDE_HINT = "allow its folder in the catalog entry's 'library_paths' or with --allow-library"


@dataclass(frozen=True)
class ExternalReference:
    path: Path
    """The referenced file, symlinks resolved: the file whose content is hashed."""
    stored: str
    """The reference as the referencing file writes it."""
    referenced_from: Path


def allowed_roots(source: Path, allowed: Iterable[str | Path] = ()) -> list[Path]:
    """The shot's own folder (as the user names it: importers resolve references against it) and the allowed
    folders, symlinks resolved."""
    shot_folder = Path(os.path.abspath(source)).parent
    return [Path(os.path.realpath(shot_folder)), *(Path(os.path.realpath(os.path.abspath(a))) for a in allowed)]


def _shown(stored: str) -> str:
    """A reference as one printable line (a URI may hold control characters)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in stored)


def _inside(stored: str, candidates: Sequence[str], referencing: Path, roots: Sequence[Path],
            what: str) -> list[tuple[str, Path]]:
    """(candidate as Blender opens it, resolved file) per form of each candidate, after checking that each
    resolves inside one of `roots` (the shot's folder first): both as the OS follows a `..` (after symlinks)
    and as Blender's path normalization collapses it (before)."""
    pairs = []
    for candidate in candidates:
        opened = os.path.normpath(candidate)
        for form in dict.fromkeys((candidate, opened)):
            try:
                real = Path(os.path.realpath(form))
            except (ValueError, OSError):  # a NUL byte
                raise VF3DInputError(referencing, f"{what} '{_shown(stored)}', not a usable file path") from None
            if not any(real.is_relative_to(root) for root in roots):
                via = "" if real == Path(os.path.abspath(opened)) else f" (it resolves to {_shown(str(real))})"
                others = " or the allowed folders" if len(roots) > 1 else ""
                raise VF3DInputError(referencing, f"{what} '{_shown(stored)}'{via}, outside the shot's folder "
                                                  f"{roots[0]}{others} ({OUTSIDE_HINT})")
            pairs.append((opened, real))
    return pairs


def _existing(stored: str, pairs: list[tuple[str, Path]], referencing: Path, what: str) -> list[tuple[str, Path]]:
    """The pairs whose file exists (each file once); none is a missing file: Blender would drop it silently."""
    existing: dict[Path, tuple[str, Path]] = {}
    for opened, real in pairs:
        if real.is_file():
            existing.setdefault(real, (opened, real))
    if not existing:
        raise VF3DInputError(referencing, f"{what} '{_shown(stored)}', which does not exist "
                                          f"({_shown(str(pairs[0][1]))})")
    return list(existing.values())


def confine(stored: str, candidates: Sequence[str], referencing: Path, roots: Sequence[Path],
            what: str) -> list[tuple[str, Path]]:
    """The existing files among `candidates` (the paths a reader may open for one reference) as (path as
    opened, file resolved), after checking that every candidate resolves inside one of `roots` and that at
    least one exists. `what` says what the reference is ("links the library", "names the buffer", ...)."""
    return _existing(stored, _inside(stored, candidates, referencing, roots, what), referencing, what)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise VF3DInputError(path, f"cannot read this {what}: {exc.strerror or exc}") from None


# --- glTF / GLB ------------------------------------------------------------------------------------------------

def gltf_json(path: Path) -> dict:
    """The JSON of a `.gltf` or `.glb`, chosen by content as Blender's importer chooses (GLB magic or not)."""
    data = _read(path, "glTF file")
    if data[:4] == GLB_MAGIC:
        if len(data) < GLB_HEADER.size + GLB_CHUNK.size:
            raise VF3DInputError(path, "malformed GLB: shorter than its header")
        _, version, _ = GLB_HEADER.unpack_from(data, 0)
        if version != 2:
            raise VF3DInputError(path, f"unsupported GLB version {version} (glTF 2.0 is supported)")
        length, kind = GLB_CHUNK.unpack_from(data, GLB_HEADER.size)
        start = GLB_HEADER.size + GLB_CHUNK.size
        if kind != b"JSON" or start + length > len(data):
            raise VF3DInputError(path, "malformed GLB: the first chunk is not a complete JSON chunk")
        text = data[start:start + length]
    else:
        text = data
    try:
        document = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise VF3DInputError(path, f"malformed glTF JSON ({exc})") from None
    if not isinstance(document, dict):
        raise VF3DInputError(path, f"malformed glTF JSON: an object is expected, got {type(document).__name__}")
    return document


def gltf_uris(path: Path) -> list[tuple[str, str]]:
    """(kind, URI) of each buffer and image that names a file (not an embedded base64 `data:` URI)."""
    document = gltf_json(path)
    found = []
    for kind in ("buffers", "images"):
        items = document.get(kind, [])
        if not isinstance(items, list):
            raise VF3DInputError(path, f"malformed glTF JSON: '{kind}' must be a list")
        for index, item in enumerate(items):
            uri = item.get("uri") if isinstance(item, dict) else None
            if uri is None:
                continue  # stored in a buffer view or the GLB's binary chunk
            if not isinstance(uri, str):
                raise VF3DInputError(path, f"malformed glTF JSON: {kind}[{index}].uri must be a string")
            # Blender decodes only base64 data URIs; any other `data:` is opened as a file name.
            if not (uri.startswith("data:") and ";base64," in uri):
                found.append((kind[:-1], uri))
    return found


def _gltf_references(source: Path, roots: Sequence[Path]) -> list[ExternalReference]:
    folder = os.path.dirname(os.path.abspath(source))
    return [ExternalReference(real, uri, source)
            for kind, uri in gltf_uris(source)
            for _, real in confine(uri, [os.path.join(folder, unquote(uri))], source, roots, f"names the {kind}")]


# --- OBJ / MTL -------------------------------------------------------------------------------------------------

WORD = re.compile(r"\s*(\S+)")
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _lines(data: bytes) -> list[str]:
    """Lines as Blender's OBJ reader sees them: a backslash before the line end continues the line."""
    data = data.replace(b"\\\r\n", b"  ").replace(b"\\\n", b" ")
    return [os.fsdecode(line).strip() for line in data.split(b"\n")]


def _keyword(line: str) -> tuple[str, str]:
    """(first word, rest of the line, trimmed)."""
    parts = line.split(None, 1)
    return (parts[0], parts[1].strip() if len(parts) > 1 else "") if parts else ("", "")


def _candidates(folder: str, name: str) -> list[str]:
    """Where Blender's OBJ importer may open `name` from `folder`: it joins the two even when `name` is absolute
    (`dir//abs`), tries an absolute texture name as it is, and retries a name without its quotes."""
    names = [n for n in dict.fromkeys((name, name.replace('"', ""))) if n]
    return [p for n in names for p in (os.path.join(folder, n.lstrip("/")), *([n] if os.path.isabs(n) else []))]


def mtl_libraries_named(obj: Path) -> list[tuple[str, list[str]]]:
    """Per `mtllib` line: the rest of the line as one file name (quotes stripped, as Blender reads it: a name
    may hold spaces), and its words (several libraries on one line, as the OBJ format allows)."""
    found = []
    for line in _lines(_read(obj, "OBJ file")):
        keyword, rest = _keyword(line)
        if keyword == "mtllib" and rest:
            whole = rest[1:-1] if len(rest) > 2 and rest[0] == rest[-1] == '"' else rest
            found.append((whole, rest.split()))
    return found


def _texture_file(rest: str) -> str:
    """What follows a texture statement's options: Blender takes it whole (spaces kept) as the file name."""
    at = 0
    while (option := WORD.match(rest, at)) and option.group(1) in (*MTL_OPTION_ARGUMENTS, *MTL_VECTOR_OPTIONS):
        at = option.end()
        name = option.group(1)
        for _ in range(3 if name in MTL_VECTOR_OPTIONS else MTL_OPTION_ARGUMENTS[name]):
            argument = WORD.match(rest, at)
            if argument is None or (name in MTL_VECTOR_OPTIONS and not NUMBER.fullmatch(argument.group(1))):
                break
            at = argument.end()
    return rest[at:].strip()


def mtl_textures_named(mtl: Path) -> list[str]:
    """The texture file names of an `.mtl`, one per texture statement."""
    found = []
    for line in _lines(_read(mtl, "material library")):
        keyword, rest = _keyword(line)
        if MTL_TEXTURE.fullmatch(keyword) and (name := _texture_file(rest)):
            found.append(name)
    return found


def _mtl_libraries(source: Path, roots: Sequence[Path]) -> list[tuple[str, str, Path]]:
    """(stored name, path as opened, resolved file) of each material library the obj makes Blender read."""
    source_abs = os.path.abspath(source)
    folder = os.path.dirname(source_abs)
    what = "names the material library"
    found = []
    for whole, words in mtl_libraries_named(source):
        pairs = _inside(whole, _candidates(folder, whole), source, roots, what)
        if any(real.is_file() for _, real in pairs) or words == [whole]:
            found += [(whole, *pair) for pair in _existing(whole, pairs, source, what)]
        else:  # not one name with spaces: each word names a library
            found += [(word, *pair) for word in words
                      for pair in confine(word, _candidates(folder, word), source, roots, what)]
    default = os.path.splitext(source_abs)[0] + ".mtl"
    if os.path.lexists(default):  # Blender reads `<name>.mtl` beside `<name>.obj` even if no line names it
        name = os.path.basename(default)
        found += [(name, *pair) for pair in confine(name, [default], source, roots, "has the material library")]
    return found


def _obj_references(source: Path, roots: Sequence[Path]) -> list[ExternalReference]:
    libraries = _mtl_libraries(source, roots)
    found = [ExternalReference(real, stored, source) for stored, _, real in libraries]
    for _, opened, real in {entry[2]: entry for entry in libraries}.values():  # each mtl file read once
        mtl_folder = os.path.dirname(opened)  # Blender resolves textures against the mtl's path as it opened it
        found += [ExternalReference(texture, name, real)
                  for name in mtl_textures_named(real)
                  for _, texture in confine(name, _candidates(mtl_folder, name), real, roots, "names the texture")]
    return found


# --- all formats ---------------------------------------------------------------------------------------------

def external_references(source: str | Path, allowed_folders: Iterable[str | Path] = ()) -> list[ExternalReference]:
    """Every file Blender reads besides `source` when it opens or imports it, each checked to lie (symlinks
    resolved) inside the shot's folder or one of `allowed_folders`, and to exist; sorted by path, each once.

    Raises `VF3DInputError` (one line naming the referencing file and the reference) for a reference elsewhere,
    a missing referenced file, or a file whose references cannot be read.
    """
    # imported here: blend_libraries applies this module's rule (`confine`), so the module-level import goes that way
    from vf3d.preprocess.blend_libraries import linked_libraries

    source = Path(source)
    allowed_folders = list(allowed_folders)
    suffix = source.suffix.lower()
    if suffix == ".blend":
        found = [ExternalReference(lib.path, lib.stored, lib.linked_from)
                 for lib in linked_libraries(source, allowed_folders)]
    elif suffix in (".gltf", ".glb"):
        found = _gltf_references(source, allowed_roots(source, allowed_folders))
    elif suffix == ".obj":
        found = _obj_references(source, allowed_roots(source, allowed_folders))
    else:
        found = []
    unique = {ref.path: ref for ref in reversed(found)}  # the first reference to a file names it
    return sorted(unique.values(), key=lambda ref: str(ref.path))
