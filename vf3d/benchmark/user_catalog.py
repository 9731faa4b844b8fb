"""The working folder's own catalog: the designer's shots and styles, registered by `vf3d run`.

`<VF3D_HOME>/catalog.json` has the catalog format (`vf3d.benchmark.catalog`) with absolute paths (shots live
wherever the designer keeps them) and a "shots" list of the registered (scene, style) pairs. Every `vf3d`
command and `vf3d ui` read it without any environment variable (`catalog.catalog_paths`). vf3d writes it
atomically and only ever edits its own entries; a benchmark key cannot be taken.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from vf3d.common.atomic import write_text_atomic
from vf3d.common.errors import VF3DInputError, read_json_object
from vf3d.common.home import default_home

USER_CATALOG_FILE = "catalog.json"


def user_catalog_path(home: Path | None = None) -> Path:
    return (home or default_home()) / USER_CATALOG_FILE


def key_from_name(name: str) -> str:
    """A catalog key from a file name: lowercase, runs of other characters as '_', a letter or digit first."""
    key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return key or "shot"


@dataclass(frozen=True)
class ShotRequest:
    """What `vf3d run` registers: a shot file (and trajectory for mesh files), a style image, optional
    post-prompt, the render size."""

    key: str
    source: Path
    reference: Path
    trajectory: Path | None = None
    post_prompt: str | None = None
    width: int = 720
    height: int = 480

    @property
    def style_key(self) -> str:
        """One style per (image, post-prompt): the image's name, plus the post-prompt when there is one."""
        base = key_from_name(self.reference.stem)
        return base if not self.post_prompt else f"{base}_{key_from_name(self.post_prompt)[:24]}"

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
                "post_prompt": self.post_prompt, "description": f"registered by vf3d run from {self.reference.name}"}


def read_user_catalog(path: Path) -> dict:
    if not path.is_file():
        return {"scenes": [], "styles": [], "shots": []}
    data = read_json_object(path, "catalog")
    return {"scenes": list(data.get("scenes", [])), "styles": list(data.get("styles", [])),
            "shots": list(data.get("shots", [])), **{k: v for k, v in data.items()
                                                     if k not in ("scenes", "styles", "shots")}}


def _upsert(entries: list[dict], entry: dict, kind: str, replace: bool, path: Path) -> None:
    for i, existing in enumerate(entries):
        if existing.get("key") != entry["key"]:
            continue
        if existing == entry:
            return
        if not replace:
            raise VF3DInputError(path, f"{kind} '{entry['key']}' is already registered for "
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
    for key, kind in ((request.key, "scene"), (request.style_key, "style")):
        if key in benchmark_keys:
            raise VF3DInputError(path, f"{kind} key '{key}' belongs to the benchmark catalog; choose another (--key)")
    data = read_user_catalog(path)
    _upsert(data["scenes"], request.scene_entry(), "shot", replace, path)
    _upsert(data["styles"], request.style_entry(), "style", replace, path)
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
