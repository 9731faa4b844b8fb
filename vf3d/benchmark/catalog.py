"""The scene/style catalog: which shots and style references exist (data, not code).

The shipped benchmark lives in `benchmark/catalog.json` (16 scenes x 3 styles). `vf3d run` registers a
designer's shots in the working folder's catalog (`vf3d.benchmark.user_catalog`); more catalog files of the
same format can be named by `VF3D_USER_CATALOG` (several paths separated by `os.pathsep`). Paths inside a
catalog are relative to the catalog file.

Scene entry: {"key", "category", "source" (.blend/.glb/.gltf/.obj), "trajectory" (JSON, mesh files only),
"description", "motion", "segments", "render": {"width", "height"} (optional override; multiples of 16),
"library_paths" (folders besides the shot's own from which the shot may read files it references: .blend
libraries, glTF buffers and images, OBJ material libraries and textures)}.
Style entry: {"key", "reference" (image), "identifier" (LoRA prompt), "post_prompt" (or null), "description"}.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from vf3d.common.errors import VF3DInputError, read_json_object
from vf3d.common.limits import RENDER_MULTIPLE, check_render_size
from vf3d.preprocess.external_references import external_references

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARK_CATALOG = REPO_ROOT / "benchmark" / "catalog.json"
USER_CATALOG_ENV = "VF3D_USER_CATALOG"
BENCHMARK_CATALOG_ENV = "VF3D_BENCHMARK_CATALOG"
CATEGORIES = ("object-centric", "indoor", "outdoor", "transition", "user", "demo")
DEMO_KEY = "demo"
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class SceneEntry:
    key: str
    category: str
    source: Path
    trajectory: Path | None = None
    description: str = ""
    motion: str = ""
    segments: int | None = None
    width: int = 720
    height: int = 480
    catalog: Path | None = None
    library_paths: tuple[Path, ...] = ()
    """Folders besides the shot's own from which the shot may read the files it references."""

    def input_files(self) -> list[Path]:
        """Files whose content defines the shot: an edit to any of them makes the scene stale.

        Every file the shot references is one of them (`vf3d.preprocess.external_references`: libraries a
        `.blend` links, glTF buffers and images, OBJ material libraries and their textures); a reference
        outside the shot's folder and `library_paths` (symlinks resolved), a missing file or a file whose
        references cannot be read raises `VF3DInputError`.
        """
        files = [self.source] + ([self.trajectory] if self.trajectory else [])
        for file in files:
            if not file.is_file():
                raise VF3DInputError(file, f"scene '{self.key}': file not found")
        return files + [ref.path for ref in external_references(self.source, self.library_paths)]


@dataclass(frozen=True)
class StyleEntry:
    key: str
    reference: Path
    identifier: str
    post_prompt: str | None = None
    description: str = ""
    catalog: Path | None = None
    post_prompt_schedule: tuple[str, ...] = ()
    """Style change over time (paper Sec. 5, Fig. 8): one post-prompt per anchor, or fewer spread evenly over the
    anchors (`anchor_post_prompts`); anchors are then sampled without SAG's replacement, as the paper does "to
    enable natural scene-style transition". Catalog: `"post_prompt": ["summer", "autumn", "winter"]`."""

    @property
    def prompt(self) -> str:
        """The identifier prompt, plus the post-prompt (paper Sec. 3.2, 'Style Variation') if any."""
        return f"{self.identifier}, {self.post_prompt}" if self.post_prompt else self.identifier

    def anchor_post_prompts(self, num_anchors: int) -> list[str | None]:
        """The post-prompt of each anchor: the schedule's k prompts spread evenly over n anchors (anchor i takes
        prompt i*k//n, so k = n is one per anchor), else the one post-prompt (or None) for every anchor."""
        schedule = self.post_prompt_schedule
        if not schedule:
            return [self.post_prompt] * num_anchors
        if len(schedule) > num_anchors:
            raise VF3DInputError(self.catalog or self.key, f"style '{self.key}': {len(schedule)} post-prompts for "
                                                           f"{num_anchors} anchors; give at most one per anchor")
        return [schedule[i * len(schedule) // num_anchors] for i in range(num_anchors)]


@dataclass(frozen=True)
class Catalog:
    scenes: dict[str, SceneEntry]
    styles: dict[str, StyleEntry]
    demo: tuple[str, str] | None = None
    files: tuple[Path, ...] = field(default_factory=tuple)

    def scene(self, key: str) -> SceneEntry:
        if key not in self.scenes:
            raise VF3DInputError(key, f"unknown scene key (known: {', '.join(sorted(self.scenes))})")
        return self.scenes[key]

    def style(self, key: str) -> StyleEntry:
        if key not in self.styles:
            raise VF3DInputError(key, f"unknown style key (known: {', '.join(sorted(self.styles))})")
        return self.styles[key]


def _key(entry: dict, path: Path, kind: str) -> str:
    key = entry.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise VF3DInputError(path, f"{kind} key {key!r} must match {KEY_PATTERN.pattern} (lowercase, digits, _)")
    from vf3d.benchmark.user_catalog import MAX_KEY_LENGTH

    if len(key) > MAX_KEY_LENGTH:
        raise VF3DInputError(path, f"{kind} key '{key[:20]}...' is {len(key)} characters long; at most "
                                   f"{MAX_KEY_LENGTH} (keys name artifact folders)")
    return key


def _size(entry: dict, defaults: dict, path: Path, key: str) -> tuple[int, int]:
    render = {**defaults, **(entry.get("render") or {})}
    try:
        return check_render_size(path, render.get("width", 720), render.get("height", 480), RENDER_MULTIPLE)
    except VF3DInputError as exc:
        raise VF3DInputError(path, f"scene '{key}': {exc.problem}") from None


def _library_paths(entry: dict, path: Path, key: str) -> tuple[Path, ...]:
    folders = entry.get("library_paths", [])
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise VF3DInputError(path, f"scene '{key}': 'library_paths' must be a list of folder paths")
    return tuple((path.parent / f).resolve() for f in folders)


def _scene(entry: dict, path: Path, defaults: dict, default_category: str) -> SceneEntry:
    key = _key(entry, path, "scene")
    category = entry.get("category", default_category)
    if category not in CATEGORIES:
        raise VF3DInputError(path, f"scene '{key}': category {category!r} is not one of {', '.join(CATEGORIES)}")
    if not isinstance(entry.get("source"), str):
        raise VF3DInputError(path, f"scene '{key}': 'source' (path to a .blend/.glb/.obj) is required")
    trajectory = entry.get("trajectory")
    width, height = _size(entry, defaults, path, key)
    return SceneEntry(
        key=key,
        category=category,
        source=(path.parent / entry["source"]).resolve(),
        trajectory=None if trajectory is None else (path.parent / trajectory).resolve(),
        description=entry.get("description", ""),
        motion=entry.get("motion", ""),
        segments=entry.get("segments"),
        width=width,
        height=height,
        catalog=path,
        library_paths=_library_paths(entry, path, key),
    )


def _style(entry: dict, path: Path) -> StyleEntry:
    key = _key(entry, path, "style")
    if not isinstance(entry.get("reference"), str):
        raise VF3DInputError(path, f"style '{key}': 'reference' (path to an image) is required")
    identifier = entry.get("identifier")
    if not isinstance(identifier, str) or not identifier.strip():
        raise VF3DInputError(path, f"style '{key}': 'identifier' (the unique LoRA prompt) is required")
    post_prompt = entry.get("post_prompt")
    schedule: tuple[str, ...] = ()
    if isinstance(post_prompt, list):  # a style change over time: one post-prompt per anchor (or spread)
        if not post_prompt or not all(isinstance(p, str) and p.strip() for p in post_prompt):
            raise VF3DInputError(path, f"style '{key}': 'post_prompt' must be a text or a non-empty list of texts")
        schedule, post_prompt = tuple(post_prompt), None
    elif post_prompt is not None and not isinstance(post_prompt, str):
        raise VF3DInputError(path, f"style '{key}': 'post_prompt' must be a text or a list of texts, "
                                   f"got {type(post_prompt).__name__}")
    return StyleEntry(key, (path.parent / entry["reference"]).resolve(), identifier, post_prompt or None,
                      entry.get("description", ""), path, schedule)


def _read(path: Path) -> dict:
    from vf3d.benchmark.user_catalog import check_catalog_structure

    data = check_catalog_structure(read_json_object(path, "catalog"), path)
    if not isinstance(data.get("scenes", []), list) or not isinstance(data.get("styles", []), list):
        raise VF3DInputError(path, "a catalog is an object with 'scenes' and 'styles' lists")
    return data


def _demo(block: dict, path: Path, scenes: dict[str, SceneEntry]) -> tuple[str, str]:
    """The demo partition. With a "render" size, the demo is its own scene `demo`: the named shot at that
    (small) size, so the tiny-profile demo stays quick on a CPU; edits to the shot's file reach both."""
    scene_key, style_key = block.get("scene"), block.get("style")
    if scene_key not in scenes:
        raise VF3DInputError(path, f"demo: scene {scene_key!r} is not in the catalog")
    if "render" not in block:
        return scene_key, style_key
    width, height = _size(block, {}, path, DEMO_KEY)
    base = scenes[scene_key]
    scenes[DEMO_KEY] = SceneEntry(DEMO_KEY, "demo", base.source, base.trajectory,
                                  f"demo: {scene_key} at {width}x{height}", base.motion, base.segments, width, height, path,
                                  base.library_paths)
    return DEMO_KEY, style_key


def load_catalog(paths: list[Path]) -> Catalog:
    """Merge catalog files in order; a key defined twice is an error naming both files."""
    scenes: dict[str, SceneEntry] = {}
    styles: dict[str, StyleEntry] = {}
    demo = None
    for path in paths:
        path = Path(path).resolve()
        data = _read(path)
        defaults = data.get("render") or {}
        for entry in data.get("scenes", []):
            scene = _scene(entry, path, defaults, "user")
            if scene.key in scenes:
                raise VF3DInputError(path, f"scene key '{scene.key}' is already defined in {scenes[scene.key].catalog}")
            scenes[scene.key] = scene
        for entry in data.get("styles", []):
            style = _style(entry, path)
            if style.key in styles:
                raise VF3DInputError(path, f"style key '{style.key}' is already defined in {styles[style.key].catalog}")
            styles[style.key] = style
        if demo is None and isinstance(data.get("demo"), dict):
            demo = _demo(data["demo"], path, scenes)
    if not scenes or not styles:
        raise VF3DInputError(", ".join(map(str, paths)), "the catalog needs at least one scene and one style")
    return Catalog(scenes, styles, demo, tuple(Path(p).resolve() for p in paths))


def catalog_paths() -> list[Path]:
    """The benchmark catalog, the working folder's own (`<VF3D_HOME>/catalog.json`, written by `vf3d run`) if
    there is one, then any user catalogs named by VF3D_USER_CATALOG."""
    from vf3d.benchmark.user_catalog import user_catalog_path

    paths = [Path(os.environ.get(BENCHMARK_CATALOG_ENV, BENCHMARK_CATALOG))]
    if user_catalog_path().is_file():
        paths.append(user_catalog_path())
    extra = os.environ.get(USER_CATALOG_ENV, "")
    paths += [Path(p) for p in extra.split(os.pathsep) if p.strip()]
    return paths


@lru_cache(maxsize=4)
def _cached(paths: tuple[Path, ...]) -> Catalog:
    return load_catalog(list(paths))


def active_catalog() -> Catalog:
    """The catalog the pipeline runs on (cached per set of paths)."""
    return _cached(tuple(catalog_paths()))
