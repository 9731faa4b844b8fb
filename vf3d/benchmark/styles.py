"""The benchmark's two style reference images, made offline.

`photo.png` is a Cycles render of a sunny cottage scene (procedural textures, sun, physical sky):
the photographic reference. `painterly.png` renders a lakeside village at golden hour and turns it
into a painting with a Kuwahara filter, a saturated palette, soft colour quantisation and a canvas
texture. No downloads; CPU Cycles, about half a minute each on two cores.

    python -m vf3d.benchmark.styles --out benchmark/styles
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import bpy  # isort: skip  (bpy must be imported before bmesh/mathutils)
import bmesh
import cv2
import numpy as np
from mathutils import Vector

from vf3d.benchmark.scenes import (
    Place,
    box,
    cone,
    cylinder,
    ground,
    house,
    material,
    prism,
    tree,
)

WIDTH, HEIGHT = 768, 512


# --------------------------------------------------------------------------------------------
# scene dressing (only for the reference renders; the benchmark scenes stay plain)


def _hill(name: str, center: Sequence[float], radius: float, height: float, mat: str) -> None:
    """A smooth flattened dome."""
    bm = bmesh.new()
    bmesh.ops.create_icosphere(bm, subdivisions=3, radius=1.0)
    for v in bm.verts:
        v.co = Vector((v.co.x * radius, v.co.y * radius, v.co.z * height))
    me = bpy.data.meshes.new(name)
    bm.to_mesh(me)
    bm.free()
    for p in me.polygons:
        p.use_smooth = True
    me.materials.append(material(mat))
    ob = bpy.data.objects.new(name, me)
    ob.location = tuple(center)
    bpy.context.scene.collection.objects.link(ob)


def _texture_materials(scale: float = 1.0) -> None:
    """Give every material a procedural colour variation (noise) and bump; roofs get tiles."""
    for mat in bpy.data.materials:
        nt = mat.node_tree
        bsdf = nt.nodes.get("Principled BSDF")
        if bsdf is None:
            continue
        rgb = Vector(bsdf.inputs["Base Color"].default_value[:3])
        coord = nt.nodes.new("ShaderNodeTexCoord")
        ramp = nt.nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color = (*(rgb * 0.65), 1.0)
        ramp.color_ramp.elements[1].color = (*(rgb * 1.25), 1.0)
        if mat.name.startswith("roof") or mat.name == "brick":
            tex = nt.nodes.new("ShaderNodeTexBrick")
            tex.inputs["Scale"].default_value = 2.5 * scale
            tex.inputs["Mortar Size"].default_value = 0.015
            tex.inputs["Color1"].default_value = (*(rgb * 0.8), 1.0)
            tex.inputs["Color2"].default_value = (*(rgb * 1.2), 1.0)
            nt.links.new(coord.outputs["Object"], tex.inputs["Vector"])
            nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
            fac = tex.outputs["Fac"]
        else:
            tex = nt.nodes.new("ShaderNodeTexNoise")
            tex.inputs["Scale"].default_value = (0.6 if mat.name in ("grass", "water") else 1.5) * scale
            tex.inputs["Detail"].default_value = 8.0
            nt.links.new(coord.outputs["Object"], tex.inputs["Vector"])
            nt.links.new(tex.outputs["Fac"], ramp.inputs["Fac"])
            nt.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
            fac = tex.outputs["Fac"]
        bump = nt.nodes.new("ShaderNodeBump")
        bump.inputs["Strength"].default_value = 0.05 if mat.name in ("water", "glass") else 0.25
        nt.links.new(fac, bump.inputs["Height"])
        nt.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])


def _world_sky(sun_elevation: float, sun_rotation: float, strength: float,
               aerosol: float = 1.0) -> None:
    """A physical sky world whose sun sits where `_sun(sun_elevation, sun_rotation)` shines from."""
    world = bpy.data.worlds.new("Sky")
    bpy.context.scene.world = world
    nt = world.node_tree
    sky = nt.nodes.new("ShaderNodeTexSky")
    sky.sky_type = "MULTIPLE_SCATTERING"
    sky.sun_elevation = sun_elevation
    sky.sun_rotation = -sun_rotation  # the sky texture turns the other way round than the lamp
    sky.sun_disc = False
    sky.aerosol_density = aerosol
    bg = nt.nodes["Background"]
    bg.inputs["Strength"].default_value = strength
    nt.links.new(sky.outputs["Color"], bg.inputs["Color"])


def _world_gradient(zenith: Sequence[float], horizon: Sequence[float], strength: float) -> None:
    """A sky-colour gradient world: `horizon` colour at and below the horizon, `zenith` above."""
    world = bpy.data.worlds.new("Sky")
    bpy.context.scene.world = world
    nt = world.node_tree
    coord = nt.nodes.new("ShaderNodeTexCoord")
    xyz = nt.nodes.new("ShaderNodeSeparateXYZ")
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].position = 0.0
    ramp.color_ramp.elements[0].color = (*horizon, 1.0)
    ramp.color_ramp.elements[1].position = 0.6
    ramp.color_ramp.elements[1].color = (*zenith, 1.0)
    nt.links.new(coord.outputs["Generated"], xyz.inputs["Vector"])
    nt.links.new(xyz.outputs["Z"], ramp.inputs["Fac"])
    bg = nt.nodes["Background"]
    bg.inputs["Strength"].default_value = strength
    nt.links.new(ramp.outputs["Color"], bg.inputs["Color"])


def _sun(elevation: float, rotation: float, energy: float, color: Sequence[float]) -> None:
    data = bpy.data.lights.new("Sun", "SUN")
    data.energy = energy
    data.angle = math.radians(1.5)
    data.color = tuple(color)
    sun = bpy.data.objects.new("Sun", data)
    # the lamp shines along its -Z: towards +Y turned by `rotation`, `elevation` downwards
    sun.rotation_euler = (math.pi / 2 - elevation, 0.0, rotation + math.pi / 2)
    bpy.context.scene.collection.objects.link(sun)


def _still_camera(loc: Sequence[float], target: Sequence[float], lens: float) -> None:
    data = bpy.data.cameras.new("Camera")
    data.lens = lens
    data.sensor_width = 36.0
    cam = bpy.data.objects.new("Camera", data)
    cam.location = tuple(loc)
    cam.rotation_euler = (Vector(target) - Vector(loc)).to_track_quat("-Z", "Y").to_euler()
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam


def _render(path: Path, samples: int, exposure: float = 0.0,
            look: str = "AgX - Medium High Contrast") -> np.ndarray:
    """Render the current scene with CPU Cycles and return it as uint8 BGR."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = True
    scene.cycles.max_bounces = 4
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "AgX"
    scene.view_settings.look = look
    scene.view_settings.exposure = exposure
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"render failed: {path}")
    return img


def photo_scene() -> None:
    """A plastered cottage with a brick chimney on a meadow, a barn, trees, hills, blue sky."""
    rng = random.Random("photo")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ground("grass")
    house("cottage", Place((0.0, 0.0, 0.0), math.radians(15)), 9.0, 6.5, 3.4, 3.0,
          separate_windows=True)
    house("barn", Place((-13.0, 9.0, 0.0), math.radians(-5)), 10.0, 7.0, 4.5, 3.5, walls="wall_b",
          roof="roof_b", chimney=False)
    box("path", (1.5, -8.0, 0.01), (1.5, 10.0, 0.04), "path", (0, 0, math.radians(15)))
    for i in range(12):
        box(f"fence{i}", (-9.0 + 1.8 * i, -9.0, 0.5), (0.12, 0.12, 1.0), "wood")
    box("fence_rail", (0.9, -9.0, 0.8), (21.6, 0.08, 0.1), "wood")
    for i in range(14):
        a = rng.uniform(0.0, 2 * math.pi)
        r = rng.uniform(12.0, 40.0)
        x, y = r * math.cos(a), abs(r * math.sin(a)) + 4.0
        tree(f"tree{i}", (x, y, 0.0), rng.uniform(6.0, 12.0), rng.choice(["conifer", "broadleaf"]))
    tree("front_tree0", (-11.0, -5.0, 0.0), 9.0, "broadleaf")
    tree("front_tree1", (13.0, 3.0, 0.0), 10.0, "conifer")
    for i, (x, y, r, h) in enumerate([(-80, 160, 90, 30), (60, 200, 110, 45), (180, 120, 80, 25)]):
        _hill(f"hill{i}", (x, y, -2.0), r, h, "grass")
    for ob in bpy.data.objects:
        if ob.name.endswith("_crown"):
            for p in ob.data.polygons:
                p.use_smooth = True
    _texture_materials()
    _sun(math.radians(35), math.radians(-60), 4.0, (1.0, 0.96, 0.9))
    _world_gradient((0.05, 0.16, 0.55), (0.45, 0.6, 0.8), 1.0)
    _still_camera((9.0, -19.0, 2.4), (-1.0, 0.0, 2.6), 32.0)


def painterly_scene() -> None:
    """A lakeside village with a windmill and wooded hills at golden hour."""
    rng = random.Random("painterly")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ground("water", z=0.0)
    box("shore", (0.0, 108.0, -0.5), (400.0, 200.0, 2.0), "grass")
    for i in range(5):
        x = -24.0 + 11.0 * i + rng.uniform(-1.5, 1.5)
        house(f"house{i}", Place((x, 13.0 + rng.uniform(0, 5), 0.5), math.radians(rng.uniform(-15, 15))),
              rng.uniform(6, 8), 5.5, rng.choice([3.5, 5.0, 6.5]), rng.uniform(2.5, 3.5),
              walls=rng.choice(["wall", "wall_b", "wall_d", "plaster"]),
              roof=rng.choice(["roof", "roof_b"]))
    cylinder("mill", (26.0, 24.0, 0.5), 3.0, 10.0, "wood", radius_top=2.0, segments=8)
    cone("mill_cap", (26.0, 24.0, 10.8), 2.6, 2.8, "roof_b", segments=8)
    for i, a in enumerate((math.radians(30), math.radians(120))):
        box(f"mill_sail{i}", (26.0, 21.0, 11.8), (1.4, 0.1, 16.0), "white", (0, a, 0))
    box("jetty", (-4.0, 3.0, 0.4), (2.0, 10.0, 0.3), "wood")
    hull = [(-2.5, 0.0), (2.0, 0.0), (2.8, 0.9), (-2.7, 0.9)]
    prism("boat", hull, 1.4, "red", (2.0, -2.0, -0.3), math.radians(20))
    for i in range(22):
        x = rng.uniform(-60.0, 60.0)
        y = rng.uniform(24.0, 60.0)
        tree(f"tree{i}", (x, y, 0.5), rng.uniform(6.0, 12.0), rng.choice(["conifer", "broadleaf"]))
    for i, (x, y, r, h) in enumerate([(-90, 180, 100, 50), (40, 220, 120, 70), (160, 170, 90, 40)]):
        _hill(f"hill{i}", (x, y, -2.0), r, h, "foliage")
    _texture_materials(0.7)
    _sun(math.radians(7), math.radians(135), 5.0, (1.0, 0.62, 0.35))
    _world_sky(math.radians(7), math.radians(135), 0.5, aerosol=1.5)
    _still_camera((-14.0, -22.0, 4.0), (4.0, 18.0, 4.0), 30.0)


# --------------------------------------------------------------------------------------------
# painting filter


def kuwahara(img: np.ndarray, radius: int) -> np.ndarray:
    """Classic Kuwahara filter: each pixel takes the mean colour of the least-varied of the four
    (radius+1)^2 quadrants around it (variance measured on luminance). img: float32 HxWx3."""
    k = radius + 1
    lum = img @ np.array([0.114, 0.587, 0.299], dtype=np.float32)  # BGR
    means, variances = [], []
    for anchor in ((radius, radius), (0, radius), (radius, 0), (0, 0)):
        def blur(a: np.ndarray, anchor: tuple[int, int] = anchor) -> np.ndarray:
            return cv2.blur(a, (k, k), anchor=anchor, borderType=cv2.BORDER_REFLECT)

        m = blur(lum)
        variances.append(blur(lum * lum) - m * m)
        means.append(blur(img))
    best = np.argmin(np.stack(variances), axis=0)
    out = np.zeros_like(img)
    for q, m in enumerate(means):
        out[best == q] = m[best == q]
    return out


def paint(bgr: np.ndarray, seed: int = 0) -> np.ndarray:
    """Turn a render into a painting: Kuwahara (two scales), saturated palette, soft colour
    quantisation, darkened strokes at edges and a canvas weave."""
    img = bgr.astype(np.float32) / 255.0
    img = kuwahara(kuwahara(img, 6), 3)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.6 + 0.05, 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] * 1.08, 0.0, 1.0)
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    levels = 10.0
    img = 0.6 * img + 0.4 * np.round(img * levels) / levels
    gray = cv2.cvtColor((img * 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(gray, 40, 120).astype(np.float32) / 255.0
    edges = cv2.GaussianBlur(edges, (3, 3), 0.8)
    img *= (1.0 - 0.35 * edges)[..., None]
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    noise = rng.standard_normal((h // 4, w // 4)).astype(np.float32)
    weave = cv2.resize(cv2.blur(noise, (5, 1)) + cv2.blur(noise, (1, 5)), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    img *= (1.0 + 0.05 * weave)[..., None]
    return (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def _write_png(img: np.ndarray, path: Path) -> None:
    """Write a PNG atomically (temp name in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def make_styles(out: Path, samples: int = 24) -> dict[str, Path]:
    """Render both reference images into `out`; returns {style key: path}."""
    out = Path(out)
    paths = {"photo": out / "photo.png", "painterly": out / "painterly.png"}
    with tempfile.TemporaryDirectory() as tmp:
        photo_scene()
        photo = _render(Path(tmp) / "photo.png", samples, -0.3, "AgX - High Contrast")
        _write_png(photo, paths["photo"])
        painterly_scene()
        raw = _render(Path(tmp) / "painterly.png", samples, 0.2, "AgX - Punchy")
        _write_png(paint(raw), paths["painterly"])
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render the benchmark style references.")
    parser.add_argument("--out", type=Path, default=Path("benchmark/styles"))
    parser.add_argument("--samples", type=int, default=24)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    for key, path in make_styles(args.out, args.samples).items():
        print(f"{key:10s} {path} {path.stat().st_size / 1024:.0f} KiB")
    print(f"styles rendered in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
