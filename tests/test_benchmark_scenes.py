"""The shipped benchmark data: 16 procedural scenes x 3 styles (paper Sec. 4.2).

Every recipe is built in bpy and its camera is checked on every frame: it sees geometry (ray grid
through the frustum), it is never inside a mesh, never closer than the near-clip margin to a
surface and never moves through geometry between two frames.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Vector
from PIL import Image

from vf3d.benchmark.scenes import SCENES, SEGMENT_FRAMES, build_scene

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "benchmark" / "catalog.json"
GRID = 5
MIN_HIT_FRACTION = 0.2
MIN_CLEARANCE = 0.25  # metres between the camera centre and any surface
AXES = [Vector(v) for v in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))]
DIAGONALS = [Vector((x, y, z)).normalized() for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]


def _catalog() -> dict:
    return json.loads(CATALOG.read_text())


def _frustum_directions(scene: bpy.types.Scene, cam: bpy.types.Object) -> list[Vector]:
    """World directions through the centres of a GRID x GRID cell grid over the image."""
    _, br, bl, tl = [Vector(c) for c in cam.data.view_frame(scene=scene)]
    rot = cam.matrix_world.to_3x3().normalized()
    dirs = []
    for i in range(GRID):
        for j in range(GRID):
            u, v = (i + 0.5) / GRID, (j + 0.5) / GRID
            local = bl + (br - bl) * u + (tl - bl) * v
            dirs.append((rot @ local).normalized())
    return dirs


def camera_report(key: str) -> dict[str, object]:
    """Build scene `key` and measure it (plain data only: bpy references die at the next reset)."""
    build_scene(key)
    scene = bpy.context.scene
    cam = scene.camera
    depsgraph = bpy.context.evaluated_depsgraph_get()
    hit_fractions, clearances, inside, crossings, forwards = [], [], [], [], []
    prev = None
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        origin = cam.matrix_world.translation.copy()
        dirs = _frustum_directions(scene, cam)
        hits = sum(scene.ray_cast(depsgraph, origin, d)[0] for d in dirs)
        hit_fractions.append(hits / len(dirs))
        back = 0
        nearest = math.inf
        for d in AXES + DIAGONALS:
            ok, loc, normal, *_ = scene.ray_cast(depsgraph, origin, d)
            if ok:
                nearest = min(nearest, (loc - origin).length)
                back += d in AXES and normal.dot(d) > 0
        inside.append(back == len(AXES))
        clearances.append(nearest)
        if prev is not None and (origin - prev).length > 1e-6:
            step = origin - prev
            crossings.append(scene.ray_cast(depsgraph, prev, step.normalized(),
                                            distance=step.length)[0])
        prev = origin
        forwards.append((cam.matrix_world.to_3x3() @ Vector((0, 0, -1))).normalized())
    turns = []
    for s in range(len(forwards) // SEGMENT_FRAMES):
        a, b = forwards[s * SEGMENT_FRAMES], forwards[(s + 1) * SEGMENT_FRAMES]
        turns.append(math.degrees(a.angle(b)))
    meshes = [o for o in scene.objects if o.type == "MESH"]
    return {
        "frames": scene.frame_end - scene.frame_start + 1, "frame_start": scene.frame_start,
        "camera": {"name": cam.name, "type": cam.type, "projection": cam.data.type,
                   "lens": cam.data.lens, "sensor_width": cam.data.sensor_width,
                   "scale": tuple(cam.scale), "constraints": len(cam.constraints),
                   "animated": cam.animation_data is not None and cam.animation_data.action is not None},
        "resolution": (scene.render.resolution_x, scene.render.resolution_y,
                       scene.render.resolution_percentage),
        "meshes": len(meshes), "faces": [len(o.data.polygons) for o in meshes],
        "triangles": sum(sum(len(p.vertices) - 2 for p in o.data.polygons) for o in meshes),
        "materials": {o.active_material.name for o in meshes if o.active_material},
        "hit_fractions": hit_fractions, "clearances": clearances, "inside": inside,
        "crossings": crossings, "turns": turns,
    }


@pytest.fixture(scope="module")
def reports() -> dict[str, dict[str, object]]:
    return {key: camera_report(key) for key in SCENES}


def test_recipe_counts_match_paper() -> None:
    assert len(SCENES) == 16
    counts = Counter(r.category for r in SCENES.values())
    assert counts == {"object-centric": 4, "indoor": 2, "outdoor": 8, "transition": 2}
    segs = Counter(r.segments for r in SCENES.values())
    assert segs[2] >= 3 and segs[3] >= 3
    for key, r in SCENES.items():
        assert re.fullmatch(r"[a-z0-9_]+", key) and r.key == key
        assert r.description and r.motion
    motions = {r.motion for r in SCENES.values()}
    assert {"orbit", "dolly", "pan", "fly-through", "room-to-hall", "door-transition"} <= motions


@pytest.mark.parametrize("key", list(SCENES))
def test_scene_builds(key: str, reports: dict) -> None:
    rep = reports[key]
    recipe = SCENES[key]
    assert rep["frame_start"] == 1
    assert rep["frames"] == 1 + SEGMENT_FRAMES * recipe.segments
    cam = rep["camera"]
    assert cam["name"] == "Camera" and cam["type"] == "CAMERA" and cam["projection"] == "PERSP"
    assert 24.0 <= cam["lens"] <= 35.0 and cam["sensor_width"] == 36.0
    assert cam["scale"] == (1.0, 1.0, 1.0) and cam["constraints"] == 0 and cam["animated"]
    assert rep["resolution"] == (720, 480, 100)
    assert max(rep["faces"]) > 0
    assert rep["meshes"] <= 300 and rep["triangles"] <= 20000
    assert len(rep["materials"]) >= 3


@pytest.mark.parametrize("key", list(SCENES))
def test_camera_sees_geometry_and_stays_in_free_space(key: str, reports: dict) -> None:
    rep = reports[key]
    worst = min(rep["hit_fractions"])
    assert worst > MIN_HIT_FRACTION, f"{key}: frame {rep['hit_fractions'].index(worst) + 1} sees sky"
    assert not any(rep["inside"]), f"{key}: camera inside a mesh"
    assert min(rep["clearances"]) > MIN_CLEARANCE, f"{key}: camera touches geometry"
    assert not any(rep["crossings"]), f"{key}: camera moves through geometry"


def test_some_segment_turns_strongly(reports: dict) -> None:
    turns = {key: max(rep["turns"]) for key, rep in reports.items()}
    assert max(turns.values()) > 55.0, turns


def test_catalog_matches_recipes() -> None:
    cat = _catalog()
    assert cat["version"] == 1 and cat["render"] == {"width": 720, "height": 480}
    keys = [s["key"] for s in cat["scenes"]]
    assert sorted(keys) == sorted(SCENES) and len(keys) == len(set(keys))
    for entry in cat["scenes"]:
        recipe = SCENES[entry["key"]]
        assert entry["category"] == recipe.category and entry["segments"] == recipe.segments
        assert entry["motion"] == recipe.motion and entry["description"]
        assert (CATALOG.parent / entry["source"]).is_file()
    style_keys = [s["key"] for s in cat["styles"]]
    assert len(style_keys) == 3 == len(set(style_keys))
    for style in cat["styles"]:
        assert re.fullmatch(r"[a-z0-9_]+", style["key"])
        img = np.asarray(Image.open(CATALOG.parent / style["reference"]).convert("RGB"))
        assert img.shape[0] >= 256 and img.shape[1] >= 256 and img.std() > 10
        assert style["identifier"] and "post_prompt" in style
    assert cat["demo"]["scene"] in keys and cat["demo"]["style"] in style_keys


def test_shipped_blends_match_recipes() -> None:
    """The .blend files are the recipes' current output (same camera path and object count)."""
    cat = _catalog()
    for entry in cat["scenes"]:
        build_scene(entry["key"])
        scene = bpy.context.scene
        expect = []
        for f in (1, scene.frame_end // 2, scene.frame_end):
            scene.frame_set(f)
            expect.append(np.array(scene.camera.matrix_world))
        n_objects = len(scene.objects)
        bpy.ops.wm.open_mainfile(filepath=str(CATALOG.parent / entry["source"]))
        scene = bpy.context.scene
        assert scene.camera is not None and scene.camera.name == "Camera"
        assert scene.frame_start == 1 and scene.frame_end == 1 + SEGMENT_FRAMES * entry["segments"]
        assert len(scene.objects) == n_objects, entry["key"]
        for f, m in zip((1, scene.frame_end // 2, scene.frame_end), expect):
            scene.frame_set(f)
            np.testing.assert_allclose(np.array(scene.camera.matrix_world), m, atol=1e-4)
