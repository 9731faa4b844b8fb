"""The working folder's own catalog: the designer's shots and styles, registered by `vf3d run`.

`<VF3D_HOME>/catalog.json` has the catalog format (`vf3d.benchmark.catalog`) with absolute paths (shots live
wherever the designer keeps them) and a "shots" list of the registered (scene, style) pairs. Every `vf3d`
command and `vf3d ui` read it without any environment variable (`catalog.catalog_paths`). vf3d writes it
atomically and only ever edits its own entries; a benchmark key cannot be taken.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vf3d.common.atomic import atomic_file, owner_is_dead, owner_tag, write_text_atomic
from vf3d.common.errors import VF3DInputError, read_json_object
from vf3d.common.home import default_home

USER_CATALOG_FILE = "catalog.json"
MAX_KEY_LENGTH = 64
"""Longest scene or style key. Keys name artifact folders, `<asset>/<scene>__<style>`, and the longest name vf3d
writes is that folder's temporary `.tmp-<scene>__<style>.<host>-<pid>.xxxxxxxx` (`vf3d.common.atomic`): two
64-character keys, a 64-byte host name (HOST_NAME_MAX) and a 7-digit pid make it 217 bytes, under the 255 of
every common file system (the `.old` and `.lock` temporaries are shorter)."""


def user_catalog_path(home: Path | None = None) -> Path:
    return (home or default_home()) / USER_CATALOG_FILE


def key_from_name(name: str) -> str:
    """A catalog key from a file name: lowercase, runs of other characters as '_', a letter or digit first, at
    most `MAX_KEY_LENGTH` characters."""
    key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:MAX_KEY_LENGTH].strip("_")
    return key or "shot"


def check_key(key: str, where: str = "--key") -> str:
    """`key` if it can name a scene or style (`catalog.KEY_PATTERN`, at most `MAX_KEY_LENGTH` characters), else a
    one-line `VF3DInputError` about `where` (the argument that gave it)."""
    from vf3d.benchmark.catalog import KEY_PATTERN

    if len(key) > MAX_KEY_LENGTH:
        raise VF3DInputError(where, f"the key is {len(key)} characters long; at most {MAX_KEY_LENGTH} (keys name "
                                    "artifact folders, whose names must fit the file system's 255 bytes)")
    if not KEY_PATTERN.match(key):
        raise VF3DInputError(where, f"{key!r} is not a key: lowercase letters, digits and '_', a letter or digit "
                                    f"first (e.g. {key_from_name(key)!r})")
    return key


def _entries(data: dict, name: str, path: Path, fields: tuple[str, ...]) -> list[dict]:
    entries = data.get(name, [])
    if not isinstance(entries, list):
        raise VF3DInputError(path, f"'{name}' must be a list, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise VF3DInputError(path, f"{name}[{i}] must be an object, got {json.dumps(entry)[:60]}")
        for field in fields:
            if not isinstance(entry.get(field), str):
                raise VF3DInputError(path, f"{name}[{i}] must have a string '{field}', got "
                                           f"{json.dumps(entry.get(field))[:60]}")
    return entries


def check_catalog_structure(data: dict, path: Path) -> dict:
    """The shape every catalog file must have, checked in one place when it is read (`read_user_catalog`,
    `catalog.load_catalog`): 'scenes' and 'styles' lists of objects with a string 'key' and 'source' /
    'reference', a 'shots' list of {"scene", "style"} pairs naming entries of the same file, 'render' and
    'demo' objects. Anything else is one `VF3DInputError` naming the file."""
    scenes = _entries(data, "scenes", path, ("key", "source"))
    styles = _entries(data, "styles", path, ("key", "reference"))
    pairs = _entries(data, "shots", path, ("scene", "style"))
    for i, pair in enumerate(pairs):
        for kind, entries in (("scene", scenes), ("style", styles)):
            if not any(e["key"] == pair[kind] for e in entries):
                raise VF3DInputError(path, f"shots[{i}] names {kind} '{pair[kind]}', which is not in this file's "
                                           f"'{kind}s'")
    for name in ("render", "demo"):
        if not isinstance(data.get(name, {}), dict):
            raise VF3DInputError(path, f"'{name}' must be an object, got {json.dumps(data[name])[:60]}")
    return data


@dataclass(frozen=True)
class ShotRequest:
    """What `vf3d run` registers: a shot file (and trajectory for mesh files), a style image, optional
    post-prompt, the render size."""

    key: str
    source: Path
    reference: Path
    trajectory: Path | None = None
    post_prompt: str | tuple[str, ...] | None = None
    """One post-prompt for every anchor, or several: a style change over time (one per anchor, or spread evenly;
    `StyleEntry.post_prompt_schedule`)."""
    width: int = 720
    height: int = 480

    @property
    def style_key(self) -> str:
        """One style per (image, post-prompts): the image's name, plus the post-prompts when there are any."""
        base = key_from_name(self.reference.stem)
        if not self.post_prompt:
            return base
        prompts = (self.post_prompt,) if isinstance(self.post_prompt, str) else self.post_prompt
        variant = key_from_name("_to_".join(prompts))[:24]
        return f"{base[:MAX_KEY_LENGTH - 1 - len(variant)]}_{variant}"

    def scene_entry(self) -> dict:
        entry = {"key": self.key, "category": "user", "source": str(self.source.resolve()),
                 "description": f"registered by vf3d run from {self.source.name}",
                 "render": {"width": self.width, "height": self.height}}
        if self.trajectory is not None:
            entry["trajectory"] = str(self.trajectory.resolve())
        return entry

    def style_entry(self) -> dict:
        return {"key": self.style_key, "reference": str(self.reference.resolve()),
                "identifier": f"a scene in vf3d_{key_from_name(self.reference.stem)} style",
                "post_prompt": list(self.post_prompt) if isinstance(self.post_prompt, tuple) else self.post_prompt,
                "description": f"registered by vf3d run from {self.reference.name}"}


def read_user_catalog(path: Path) -> dict:
    """The working folder's catalog (empty lists when there is none); a file that is not valid UTF-8 JSON of the
    catalog's structure (`check_catalog_structure`) is one `VF3DInputError` naming it, and is left as it is."""
    if not path.is_file():
        return {"scenes": [], "styles": [], "shots": []}
    data = check_catalog_structure(read_json_object(path, "catalog"), path)
    return {"scenes": list(data.get("scenes", [])), "styles": list(data.get("styles", [])),
            "shots": list(data.get("shots", [])), **{k: v for k, v in data.items()
                                                     if k not in ("scenes", "styles", "shots")}}


def _upsert(entries: list[dict], entry: dict, kind: str, replace: bool, where: str | Path) -> None:
    for i, existing in enumerate(entries):
        if existing.get("key") != entry["key"]:
            continue
        if existing == entry:
            return
        if not replace:
            raise VF3DInputError(where, f"{kind} '{entry['key']}' is already registered for "
                                       f"{existing.get('source') or existing.get('reference')} (different settings); "
                                       "pass --replace to register it anew, or --key for another name")
        entries[i] = entry
        return
    entries.append(entry)


def register_shot(request: ShotRequest, benchmark_keys: set[str], replace: bool = False,
                  path: Path | None = None) -> tuple[str, str]:
    """Add (or confirm) the shot, its style and the pair; returns (scene key, style key). The same shot and
    style again is a no-op; the same key for something else needs `replace`. Nothing is written on error."""
    path = path or user_catalog_path()
    check_key(request.key)
    if request.key in benchmark_keys:
        raise VF3DInputError("--key", f"scene key '{request.key}' belongs to the benchmark catalog; choose another")
    if request.style_key in benchmark_keys:
        raise VF3DInputError(request.reference, f"style key '{request.style_key}' (from the image's name) belongs to "
                                                "the benchmark catalog; rename the image")
    data = read_user_catalog(path)
    _upsert(data["scenes"], request.scene_entry(), "shot", replace, "--key")
    _upsert(data["styles"], request.style_entry(), "style", replace, "--style")
    pair = {"scene": request.key, "style": request.style_key}
    if pair not in data["shots"]:
        data["shots"].append(pair)
    write_text_atomic(path, json.dumps(data, indent=1))
    return request.key, request.style_key


def forget_shot(key: str, path: Path | None = None) -> dict:
    """Unregister shot `key` (its pairs; its scene entry; each of its styles that no other shot uses). The
    artifacts stay. Returns what was removed; an unknown key is a `VF3DInputError` listing the known ones."""
    path = path or user_catalog_path()
    data = read_user_catalog(path)
    if not any(s.get("key") == key for s in data["scenes"]):
        known = ", ".join(s.get("key", "?") for s in data["scenes"]) or "none"
        raise VF3DInputError(path, f"no registered shot '{key}' (registered: {known})")
    pairs = [p for p in data["shots"] if p["scene"] == key]
    data["shots"] = [p for p in data["shots"] if p["scene"] != key]
    still_used = {p["style"] for p in data["shots"]}
    styles = [p["style"] for p in pairs if p["style"] not in still_used]
    data["scenes"] = [s for s in data["scenes"] if s.get("key") != key]
    data["styles"] = [s for s in data["styles"] if s.get("key") not in styles]
    write_text_atomic(path, json.dumps(data, indent=1))
    return {"scene": key, "styles": styles, "pairs": pairs}


PENDING_FOLDER = ".pending-registrations"
"""Where `vf3d run` notes, while it runs, how to undo its registration (`provisional_registration`)."""


@contextlib.contextmanager
def provisional_registration(before: bytes | None, home: Path | None = None) -> Iterator[None]:
    """Keep the registration `vf3d run` just wrote only if the block completes: on an error the catalog goes back
    to `before` (byte for byte); if the process is killed outright, a note left beside the catalog lets the next
    command put it back (`undo_abandoned_registrations`). Either way, only while the catalog still holds exactly
    what this run wrote: a later registration by another command is never undone."""
    path = user_catalog_path(home)
    after = path.read_bytes()
    note = path.parent / PENDING_FOLDER / f"{owner_tag()}.json"
    note.parent.mkdir(exist_ok=True)
    write_text_atomic(note, json.dumps({"before": None if before is None else base64.b64encode(before).decode(),
                                        "after": base64.b64encode(after).decode()}))
    try:
        yield
    except BaseException:
        _put_back(path, before, after)
        raise
    finally:
        note.unlink(missing_ok=True)


def _put_back(path: Path, before: bytes | None, after: bytes) -> bool:
    if not path.is_file() or path.read_bytes() != after:
        return False  # changed since (another registration): leave it
    if before is None:
        path.unlink()
    else:
        with atomic_file(path) as tmp:
            tmp.write_bytes(before)
    return True


def undo_abandoned_registrations(home: Path | None = None) -> list[str]:
    """Put the catalog back for every `vf3d run` of this host that died (SIGKILL) while its registration was
    provisional; returns the notes' owners whose registration was undone."""
    path = user_catalog_path(home)
    undone = []
    for note in sorted((path.parent / PENDING_FOLDER).glob("*.json")):
        if not owner_is_dead(note.stem):
            continue
        try:
            data = json.loads(note.read_text())
            before = None if data["before"] is None else base64.b64decode(data["before"])
            if _put_back(path, before, base64.b64decode(data["after"])):
                undone.append(note.stem)
        except (ValueError, KeyError, TypeError):
            pass  # a note cut by the kill itself (it is written atomically, so only a foreign file): drop it
        note.unlink(missing_ok=True)
    return undone
