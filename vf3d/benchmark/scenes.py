"""The 16 procedural coarse-geometry scenes of the benchmark (paper Sec. 4.2).

The paper's test set has 4 object-centric, 2 indoor, 8 outdoor and 2 indoor-outdoor transition
scenes. We cannot ship the authors' models, so each scene here is built in Blender from coarse
primitives (boxes, cylinders, cones, gable-roof wedges, extruded profiles) with an animated camera
keyed on every frame. Builds are deterministic (`random.Random(key)` seeds all variation).

    python -m vf3d.benchmark.scenes --out benchmark/scenes [--only KEY ...]

writes `{key}.blend` for every scene (compressed, atomic rename).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy  # isort: skip  (bpy must be imported before bmesh/mathutils)
import bmesh
from mathutils import Matrix, Vector

SEGMENT_FRAMES = 45
RENDER_WIDTH, RENDER_HEIGHT = 720, 480
GROUND_SIZE = 2000.0
CATEGORIES = ("object-centric", "indoor", "outdoor", "transition")

Vec3 = tuple[float, float, float]

# Linear-RGB base colours; every material a scene uses is created from this table on first use.
PALETTE: dict[str, Vec3] = {
    "grass": (0.16, 0.32, 0.08),
    "foliage": (0.06, 0.22, 0.05),
    "hedge": (0.05, 0.18, 0.05),
    "trunk": (0.22, 0.12, 0.05),
    "wall": (0.78, 0.70, 0.55),
    "wall_b": (0.70, 0.45, 0.30),
    "wall_c": (0.62, 0.64, 0.66),
    "wall_d": (0.80, 0.62, 0.42),
    "brick": (0.45, 0.16, 0.09),
    "stone": (0.42, 0.40, 0.37),
    "rock": (0.30, 0.28, 0.26),
    "roof": (0.40, 0.10, 0.06),
    "roof_b": (0.18, 0.18, 0.22),
    "wood": (0.36, 0.20, 0.08),
    "door": (0.20, 0.09, 0.04),
    "glass": (0.18, 0.30, 0.42),
    "water": (0.04, 0.16, 0.28),
    "road": (0.09, 0.09, 0.10),
    "pavement": (0.45, 0.43, 0.40),
    "path": (0.55, 0.48, 0.36),
    "metal": (0.12, 0.12, 0.13),
    "fabric": (0.50, 0.12, 0.10),
    "fabric_b": (0.12, 0.22, 0.45),
    "floor": (0.42, 0.25, 0.12),
    "ceiling": (0.85, 0.84, 0.80),
    "plaster": (0.80, 0.77, 0.70),
    "white": (0.85, 0.85, 0.83),
    "red": (0.55, 0.05, 0.04),
    "lamp": (1.00, 0.85, 0.50),
    "crop": (0.55, 0.45, 0.12),
    "flower": (0.70, 0.15, 0.35),
    "sand": (0.70, 0.62, 0.45),
    "books": (0.35, 0.10, 0.12),
}


@dataclass(frozen=True)
class SceneRecipe:
    """One benchmark scene: catalog facts plus the function that builds it into bpy."""

    key: str
    category: str
    description: str
    segments: int
    motion: str
    build: Callable[[], None]

    @property
    def frames(self) -> int:
        """Number of frames of the camera trajectory (1 + 45 * segments)."""
        return 1 + SEGMENT_FRAMES * self.segments


SCENES: dict[str, SceneRecipe] = {}


# --------------------------------------------------------------------------------------------
# materials and primitives


def material(name: str) -> bpy.types.Material:
    """The material called `name` in the current file (created from PALETTE on first use)."""
    mat = bpy.data.materials.get(name)
    if mat is None:
        rgb = PALETTE[name]
        mat = bpy.data.materials.new(name)
        mat.diffuse_color = (*rgb, 1.0)
        bsdf = mat.node_tree.nodes.get("Principled BSDF") if mat.node_tree else None
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
            bsdf.inputs["Roughness"].default_value = 0.1 if name in ("glass", "water") else 0.8
            if name == "lamp":
                bsdf.inputs["Emission Color"].default_value = (*rgb, 1.0)
                bsdf.inputs["Emission Strength"].default_value = 2.0
    return mat


def _link(name: str, bm: bmesh.types.BMesh, mat: str, loc: Sequence[float],
          rot: Sequence[float]) -> bpy.types.Object:
    """Turn `bm` into a mesh object with one material, placed at loc with Euler rotation rot."""
    bmesh.ops.recalc_face_normals(bm, faces=bm.faces[:])
    me = bpy.data.meshes.new(name)
    bm.to_mesh(me)
    bm.free()
    me.materials.append(material(mat))
    ob = bpy.data.objects.new(name, me)
    ob.location = tuple(loc)
    ob.rotation_euler = tuple(rot)
    bpy.context.scene.collection.objects.link(ob)
    return ob


def _add_box(bm: bmesh.types.BMesh, center: Sequence[float], size: Sequence[float]) -> None:
    m = Matrix.Translation(Vector(center)) @ Matrix.Diagonal((*size, 1.0))
    bmesh.ops.create_cube(bm, size=1.0, matrix=m)


def box(name: str, center: Sequence[float], size: Sequence[float], mat: str,
        rot: Sequence[float] = (0.0, 0.0, 0.0)) -> bpy.types.Object:
    """An axis-aligned (before `rot`) box with its centre at `center`."""
    bm = bmesh.new()
    _add_box(bm, (0.0, 0.0, 0.0), size)
    return _link(name, bm, mat, center, rot)


def boxes(name: str, parts: Iterable[tuple[Sequence[float], Sequence[float]]], mat: str,
          loc: Sequence[float] = (0.0, 0.0, 0.0), rot: Sequence[float] = (0.0, 0.0, 0.0)
          ) -> bpy.types.Object | None:
    """One object made of several boxes (centre, size) given in the object's local frame."""
    bm = bmesh.new()
    for center, size in parts:
        _add_box(bm, center, size)
    if not bm.verts:
        bm.free()
        return None
    return _link(name, bm, mat, loc, rot)


def cylinder(name: str, base: Sequence[float], radius: float, height: float, mat: str,
             radius_top: float | None = None, segments: int = 16,
             rot: Sequence[float] = (0.0, 0.0, 0.0)) -> bpy.types.Object:
    """A cylinder (or cone frustum when radius_top differs) standing on `base` along local +Z."""
    bm = bmesh.new()
    top = radius if radius_top is None else radius_top
    bmesh.ops.create_cone(bm, cap_ends=True, cap_tris=False, segments=segments, radius1=radius,
                          radius2=top, depth=height,
                          matrix=Matrix.Translation((0.0, 0.0, height / 2)))
    if top == 0.0:
        bmesh.ops.remove_doubles(bm, verts=bm.verts[:], dist=1e-6)
    return _link(name, bm, mat, base, rot)


def cone(name: str, base: Sequence[float], radius: float, height: float, mat: str,
         segments: int = 12, rot: Sequence[float] = (0.0, 0.0, 0.0)) -> bpy.types.Object:
    """A pointed cone standing on `base`."""
    return cylinder(name, base, radius, height, mat, radius_top=0.0, segments=segments, rot=rot)


def sphere(name: str, center: Sequence[float], radius: float, mat: str) -> bpy.types.Object:
    """A coarse icosphere (80 triangles)."""
    bm = bmesh.new()
    bmesh.ops.create_icosphere(bm, subdivisions=1, radius=radius)
    return _link(name, bm, mat, center, (0.0, 0.0, 0.0))


def solid(name: str, verts: Sequence[Sequence[float]], faces: Sequence[Sequence[int]], mat: str,
          loc: Sequence[float] = (0.0, 0.0, 0.0), rot: Sequence[float] = (0.0, 0.0, 0.0)
          ) -> bpy.types.Object:
    """A closed mesh from vertices and faces (normals are made consistent and outward)."""
    bm = bmesh.new()
    bv = [bm.verts.new(v) for v in verts]
    for f in faces:
        bm.faces.new([bv[i] for i in f])
    return _link(name, bm, mat, loc, rot)


def prism(name: str, profile: Sequence[tuple[float, float]], depth: float, mat: str,
          loc: Sequence[float], rot_z: float = 0.0) -> bpy.types.Object:
    """A simple polygon drawn in the local XZ plane, extruded `depth` along local Y (centred).

    Used for walls with door/arch openings, bridges, staircases and boat hulls.
    """
    n = len(profile)
    half = depth / 2
    verts = [(x, -half, z) for x, z in profile] + [(x, half, z) for x, z in profile]
    faces = [list(range(n)), list(range(2 * n - 1, n - 1, -1))]
    faces += [[i, (i + 1) % n, n + (i + 1) % n, n + i] for i in range(n)]
    return solid(name, verts, faces, mat, loc, (0.0, 0.0, rot_z))


def gable_roof(name: str, base: Sequence[float], length: float, width: float, height: float,
               mat: str, rot_z: float = 0.0) -> bpy.types.Object:
    """A gable-roof wedge: eaves at `base` height, ridge along local X."""
    lx, wy = length / 2, width / 2
    verts = [(-lx, -wy, 0), (lx, -wy, 0), (lx, wy, 0), (-lx, wy, 0), (-lx, 0, height), (lx, 0, height)]
    faces = [[0, 3, 2, 1], [0, 1, 5, 4], [2, 3, 4, 5], [1, 2, 5], [3, 0, 4]]
    return solid(name, verts, faces, mat, base, (0.0, 0.0, rot_z))


def ground(mat: str = "grass", z: float = 0.0, size: float = GROUND_SIZE) -> bpy.types.Object:
    """A large single-quad ground plane (covers the horizon from every benchmark camera)."""
    h = size / 2
    return solid("ground", [(-h, -h, 0), (h, -h, 0), (h, h, 0), (-h, h, 0)], [[0, 1, 2, 3]], mat,
                 (0.0, 0.0, z))


@dataclass(frozen=True)
class Place:
    """A local frame (origin + rotation about Z) for composing multi-part things."""

    origin: Vec3
    rot_z: float = 0.0

    def at(self, x: float, y: float, z: float = 0.0) -> Vec3:
        """World coordinates of the local point (x, y, z)."""
        c, s = math.cos(self.rot_z), math.sin(self.rot_z)
        ox, oy, oz = self.origin
        return (ox + c * x - s * y, oy + s * x + c * y, oz + z)

    def rot(self, rx: float = 0.0, ry: float = 0.0, rz: float = 0.0) -> Vec3:
        """World Euler rotation of a part rotated (rx, ry, rz) in the local frame."""
        return (rx, ry, rz + self.rot_z)


def tree(name: str, base: Sequence[float], height: float, kind: str = "conifer") -> None:
    """A tree: trunk cylinder plus a foliage cone (conifer) or icosphere (broadleaf)."""
    x, y, z = base
    cylinder(f"{name}_trunk", (x, y, z), 0.1 + 0.02 * height, 0.5 * height, "trunk", segments=8)
    if kind == "conifer":
        cone(f"{name}_crown", (x, y, z + 0.28 * height), 0.3 * height, 0.72 * height, "foliage",
             segments=10)
    else:
        sphere(f"{name}_crown", (x, y, z + 0.65 * height), 0.33 * height, "foliage")


def house(name: str, place: Place, w: float, d: float, h: float, roof_h: float,
          walls: str = "wall", roof: str = "roof", chimney: bool = True, flat: bool = False,
          door_x: float = 0.0, separate_windows: bool = False, shop: bool = False,
          side_windows: bool = True) -> None:
    """A house: plinth, walls, gable roof (or flat roof + cornice), chimney through the roof,
    door on the local -Y facade, and windows as thin boxes half sunk into the walls; `shop`
    puts a shop window right of the door instead of ground-floor front windows."""
    box(f"{name}_walls", place.at(0, 0, h / 2), (w, d, h), walls, place.rot())
    box(f"{name}_plinth", place.at(0, 0, 0.2), (w + 0.2, d + 0.2, 0.4), "stone", place.rot())
    if flat:
        box(f"{name}_cornice", place.at(0, 0, h), (w + 0.4, d + 0.4, 0.5), "stone", place.rot())
        box(f"{name}_rooftop", place.at(w * 0.2, d * 0.1, h + 1.0), (2.0, 2.0, 2.0), walls,
            place.rot())
    else:
        gable_roof(f"{name}_roof", place.at(0, 0, h), w + 0.6, d + 0.8, roof_h, roof, place.rot_z)
        if chimney:
            box(f"{name}_chimney", place.at(w * 0.28, d * 0.18, h + roof_h * 0.55),
                (0.6, 0.6, roof_h * 1.3), "brick", place.rot())
    box(f"{name}_door", place.at(door_x, -d / 2, 1.05), (1.0, 0.14, 2.1), "door", place.rot())
    if shop:
        x0, x1 = door_x + 0.9, w / 2 - 0.6
        box(f"{name}_shopfront", place.at((x0 + x1) / 2, -d / 2, 1.6), (x1 - x0, 0.16, 2.2),
            "glass", place.rot())
    parts: list[tuple[Vec3, Vec3]] = []
    floors = max(1, int(h / 3.0))
    for f in range(floors):
        z = 1.6 + 3.0 * f
        cols = max(1, int(w / 2.6))
        for c in range(cols):
            x = -w / 2 + w * (c + 0.5) / cols
            if f > 0 or (abs(x - door_x) > 1.2 and not shop):
                parts.append(((x, -d / 2, z), (0.9, 0.12, 1.1)))
            parts.append(((x, d / 2, z), (0.9, 0.12, 1.1)))
        for c in range(max(1, int(d / 2.6)) if side_windows else 0):
            y = -d / 2 + d * (c + 0.5) / max(1, int(d / 2.6))
            parts += [((-w / 2, y, z), (0.12, 0.9, 1.1)), ((w / 2, y, z), (0.12, 0.9, 1.1))]
    if separate_windows:
        for i, (c, s) in enumerate(parts):
            box(f"{name}_window{i}", place.at(*c), s, "glass", place.rot())
    else:
        boxes(f"{name}_windows", parts, "glass", place.origin, place.rot())


def column(name: str, base: Sequence[float], height: float, radius: float = 0.3,
           mat: str = "white") -> None:
    """A classical column: square base, cylindrical shaft, square capital."""
    x, y, z = base
    box(f"{name}_base", (x, y, z + 0.15), (radius * 2.8, radius * 2.8, 0.3), mat)
    cylinder(f"{name}_shaft", (x, y, z + 0.2), radius, height - 0.4, mat, segments=12)
    box(f"{name}_capital", (x, y, z + height - 0.15), (radius * 2.8, radius * 2.8, 0.3), mat)


def lamp_post(name: str, base: Sequence[float], height: float = 4.0) -> None:
    """A street lamp: pole and lantern."""
    x, y, z = base
    cylinder(f"{name}_pole", (x, y, z), 0.08, height, "metal", segments=8)
    box(f"{name}_lantern", (x, y, z + height + 0.2), (0.35, 0.35, 0.5), "lamp")


def table(name: str, center: Sequence[float], w: float, d: float, h: float = 0.75,
          mat: str = "wood") -> None:
    """A table: top and four legs (one object)."""
    x, y, z = center
    box(f"{name}_top", (x, y, z + h - 0.03), (w, d, 0.06), mat)
    legs = [((sx * (w / 2 - 0.08), sy * (d / 2 - 0.08), (h - 0.06) / 2), (0.07, 0.07, h - 0.06))
            for sx in (-1, 1) for sy in (-1, 1)]
    boxes(f"{name}_legs", legs, mat, (x, y, z))


def chair(name: str, place: Place, mat: str = "wood") -> None:
    """A chair facing local -Y: seat with legs, and a back."""
    legs = [((sx * 0.2, sy * 0.2, 0.22), (0.05, 0.05, 0.44)) for sx in (-1, 1) for sy in (-1, 1)]
    legs.append(((0, 0, 0.46), (0.48, 0.48, 0.05)))
    boxes(f"{name}_seat", legs, mat, place.origin, place.rot())
    box(f"{name}_back", place.at(0, 0.22, 0.75), (0.46, 0.05, 0.55), mat, place.rot())


def room_shell(name: str, x0: float, x1: float, y0: float, y1: float, height: float,
               skip: Sequence[str] = (), t: float = 0.2, wall: str = "plaster") -> None:
    """Floor, ceiling and four walls (outside the interior box); `skip` omits walls
    ('n', 's', 'e', 'w') that are built separately, e.g. with a door opening."""
    cx, cy, sx, sy = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    box(f"{name}_floor", (cx, cy, -0.08), (sx + 2 * t, sy + 2 * t, 0.2), "floor")
    box(f"{name}_ceiling", (cx, cy, height + 0.1), (sx + 2 * t, sy + 2 * t, 0.2), "ceiling")
    walls = {"s": ((cx, y0 - t / 2), (sx + 2 * t, t)), "n": ((cx, y1 + t / 2), (sx + 2 * t, t)),
             "w": ((x0 - t / 2, cy), (t, sy)), "e": ((x1 + t / 2, cy), (t, sy))}
    for side, ((wx, wy), (wsx, wsy)) in walls.items():
        if side not in skip:
            box(f"{name}_wall_{side}", (wx, wy, height / 2), (wsx, wsy, height), wall)


def opening_profile(x0: float, x1: float, height: float, half_width: float, top: float,
                    arch_rise: float = 0.0, center: float = 0.0, steps: int = 8
                    ) -> list[tuple[float, float]]:
    """XZ outline of a wall from x0 to x1 with a door (or round-topped arch when arch_rise > 0)
    opening cut up from the floor, centred on `center`; `top` is the springing height."""
    pts = [(x0, 0.0), (center - half_width, 0.0), (center - half_width, top)]
    if arch_rise > 0:
        for i in range(1, steps):
            a = math.pi * (1 - i / steps)
            pts.append((center + half_width * math.cos(a), top + arch_rise * math.sin(a)))
    pts += [(center + half_width, top), (center + half_width, 0.0), (x1, 0.0), (x1, height),
            (x0, height)]
    return pts


# --------------------------------------------------------------------------------------------
# camera


def look_dir(yaw_deg: float, pitch_deg: float = 0.0) -> Vector:
    """Unit view direction: yaw 0 looks along +Y, positive yaw turns left (towards -X)."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    return Vector((-math.sin(y) * math.cos(p), math.cos(y) * math.cos(p), math.sin(p)))


def spline(points: Sequence[Sequence[float]], n: int, ease: float = 0.3) -> list[Vector]:
    """n samples of a uniform Catmull-Rom spline through `points` (ends included); waypoint i
    falls on sample i*(n-1)/(len(points)-1) when ease is 0; `ease` slows the start and end."""
    pts = [Vector(p) for p in points]
    if len(pts) == 1:
        return [pts[0].copy() for _ in range(n)]
    ext = [2 * pts[0] - pts[1], *pts, 2 * pts[-1] - pts[-2]]
    m = len(pts) - 1
    out = []
    for i in range(n):
        t = i / (n - 1)
        t = (1 - ease) * t + ease * t * t * (3 - 2 * t)
        s = t * m
        k = min(int(s), m - 1)
        u = s - k
        p0, p1, p2, p3 = ext[k:k + 4]
        out.append(0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u * u
                          + (3 * p1 - p0 - 3 * p2 + p3) * u ** 3))
    return out


def orbit(center: Sequence[float], n: int, deg: tuple[float, float], radius: tuple[float, float],
          height: tuple[float, float], target_z: float) -> tuple[list[Vector], list[Vector]]:
    """Camera positions on an arc around `center` (angle from +X, radius and height
    interpolated), all looking at the centre raised to target_z."""
    cx, cy, cz = center
    locs, tgts = [], []
    for i in range(n):
        t = i / (n - 1)
        t = 0.7 * t + 0.3 * t * t * (3 - 2 * t)
        a = math.radians(deg[0] + (deg[1] - deg[0]) * t)
        r = radius[0] + (radius[1] - radius[0]) * t
        locs.append(Vector((cx + r * math.cos(a), cy + r * math.sin(a), cz + height[0]
                            + (height[1] - height[0]) * t)))
        tgts.append(Vector((cx, cy, cz + target_z)))
    return locs, tgts


def walk(points: Sequence[Sequence[float]], yaw_pitch: Sequence[tuple[float, float]], n: int,
         ease: float = 0.3) -> tuple[list[Vector], list[Vector]]:
    """Positions along a spline through `points`; view direction from splined (yaw, pitch)."""
    locs = spline(points, n, ease)
    angles = spline([(y, p, 0.0) for y, p in yaw_pitch], n, ease)
    return locs, [loc + look_dir(a.x, a.y) for loc, a in zip(locs, angles)]


def animate_camera(locations: Sequence[Vector], targets: Sequence[Vector],
                   lens: float = 28.0) -> bpy.types.Object:
    """Create the scene camera "Camera" and key location + rotation on every frame (look-at)."""
    scene = bpy.context.scene
    data = bpy.data.cameras.new("Camera")
    data.type = "PERSP"
    data.lens = lens
    data.sensor_width = 36.0
    data.sensor_fit = "AUTO"
    data.clip_start = 0.1
    data.clip_end = 2500.0
    cam = bpy.data.objects.new("Camera", data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.frame_start = 1
    scene.frame_end = len(locations)
    prefs = bpy.context.preferences.edit
    old_interp = prefs.keyframe_new_interpolation_type
    prefs.keyframe_new_interpolation_type = "LINEAR"
    try:
        prev = None
        for frame, (loc, tgt) in enumerate(zip(locations, targets), start=1):
            quat = (Vector(tgt) - Vector(loc)).to_track_quat("-Z", "Y")
            eul = quat.to_euler("XYZ", prev) if prev is not None else quat.to_euler("XYZ")
            cam.location = loc
            cam.rotation_euler = eul
            cam.keyframe_insert("location", frame=frame)
            cam.keyframe_insert("rotation_euler", frame=frame)
            prev = eul
    finally:
        prefs.keyframe_new_interpolation_type = old_interp
    scene.frame_set(1)
    return cam


# --------------------------------------------------------------------------------------------
# registry


def _frames(segments: int) -> int:
    return 1 + SEGMENT_FRAMES * segments


def _scene(key: str, category: str, segments: int, motion: str, description: str
           ) -> Callable[[Callable[[random.Random, int], None]], Callable[[random.Random, int], None]]:
    """Register a builder `fn(rng, n_frames)` as the recipe `key`."""
    assert category in CATEGORIES and 1 <= segments <= 3

    def register(fn: Callable[[random.Random, int], None]) -> Callable[[random.Random, int], None]:
        def build() -> None:
            fn(random.Random(key), _frames(segments))

        SCENES[key] = SceneRecipe(key, category, description, segments, motion, build)
        return fn

    return register


# --------------------------------------------------------------------------------------------
# object-centric


@_scene("cottage", "object-centric", 1, "orbit",
        "A plastered cottage with a gable roof, a chimney through the roof, a fenced yard, a well "
        "and trees; the camera orbits the cottage.")
def _cottage(rng: random.Random, n: int) -> None:
    ground("grass")
    house("cottage", Place((0.0, 0.0, 0.0)), 8.0, 6.0, 3.2, 2.6, separate_windows=True)
    box("porch_step", (0.0, -3.5, 0.1), (2.0, 1.0, 0.2), "stone")
    box("garden_path", (0.0, -6.0, 0.01), (1.4, 4.4, 0.04), "path")
    for side, (cx, cy, sx, sy) in {"n": (0, 8, 20, 0.1), "e": (10, 0, 0.1, 16), "w": (-10, 0, 0.1, 16),
                                   "sw": (-5.6, -8, 8.8, 0.1), "se": (5.6, -8, 8.8, 0.1)}.items():
        long_x = sx > sy
        count = int(max(sx, sy) / 2.0) + 1
        posts = [(((-max(sx, sy) / 2 + i * max(sx, sy) / (count - 1)) if long_x else 0.0,
                   0.0 if long_x else (-max(sx, sy) / 2 + i * max(sx, sy) / (count - 1)), 0.55),
                  (0.14, 0.14, 1.1)) for i in range(count)]
        boxes(f"fence_posts_{side}", posts, "wood", (cx, cy, 0.0))
        for z in (0.45, 0.9):
            box(f"fence_rail_{side}_{z}", (cx, cy, z), (sx + 0.1, sy + 0.06, 0.08), "wood")
    cylinder("well", (6.0, -4.5, 0.0), 0.8, 0.8, "stone")
    boxes("well_posts", [((-0.7, 0, 1.0), (0.1, 0.1, 2.0)), ((0.7, 0, 1.0), (0.1, 0.1, 2.0))],
          "wood", (6.0, -4.5, 0.0))
    gable_roof("well_roof", (6.0, -4.5, 1.9), 1.9, 1.6, 0.6, "roof")
    box("woodpile", (-5.6, 0.5, 0.5), (1.0, 2.5, 1.0), "wood")
    box("bench", (3.0, -4.2, 0.45), (1.6, 0.45, 0.1), "wood")
    for i, (x, y) in enumerate([(-7.0, 5.5), (7.5, 5.0), (-7.5, -5.5), (-18, 14), (16, 18),
                                (-24, -6), (22, -4), (4, 26)]):
        tree(f"tree{i}", (x, y, 0.0), rng.uniform(5.5, 9.0), rng.choice(["conifer", "broadleaf"]))
    locs, tgts = orbit((0, 0, 0), n, (-128.0, -52.0), (16.0, 14.5), (4.5, 3.6), 2.2)
    animate_camera(locs, tgts, lens=28.0)


@_scene("lighthouse", "object-centric", 1, "orbit",
        "A striped lighthouse with gallery and lantern on a rocky island, a keeper's house and a "
        "jetty; the camera orbits while rising.")
def _lighthouse(rng: random.Random, n: int) -> None:
    ground("water")
    cylinder("island", (0, 0, -1.0), 16.0, 4.0, "rock", radius_top=12.0, segments=10)
    for i in range(9):
        a = 2 * math.pi * i / 9 + rng.uniform(-0.2, 0.2)
        r = rng.uniform(14.5, 17.0)
        box(f"rock{i}", (r * math.cos(a), r * math.sin(a), 0.2), (rng.uniform(2, 4),
            rng.uniform(1.5, 3), rng.uniform(1.5, 3)), "rock", (rng.uniform(-0.4, 0.4),
            rng.uniform(-0.4, 0.4), a))
    top, tx, ty = 3.0, 0.0, 2.0
    cylinder("plinth", (tx, ty, top - 0.2), 3.2, 1.2, "stone", segments=8)
    r0, r1, h = 2.5, 1.6, 16.0
    cylinder("tower", (tx, ty, top), r0, h, "white", radius_top=r1)
    for i, z in enumerate((4.0, 10.0)):
        ra, rb = r0 + (r1 - r0) * z / h, r0 + (r1 - r0) * (z + 3) / h
        cylinder(f"band{i}", (tx, ty, top + z), ra + 0.05, 3.0, "red", radius_top=rb + 0.05)
    zt = top + h
    cylinder("gallery", (tx, ty, zt), 2.7, 0.3, "metal")
    posts = [((2.5 * math.cos(a), 2.5 * math.sin(a), 0.55), (0.08, 0.08, 1.0))
             for a in (2 * math.pi * i / 14 for i in range(14))]
    boxes("railing_posts", posts, "metal", (tx, ty, zt + 0.3))
    cylinder("railing", (tx, ty, zt + 1.3), 2.55, 0.08, "metal")
    cylinder("lantern", (tx, ty, zt + 0.3), 1.2, 2.2, "glass", segments=12)
    cone("lantern_roof", (tx, ty, zt + 2.5), 1.6, 1.6, "red", segments=12)
    cylinder("finial", (tx, ty, zt + 4.0), 0.12, 0.8, "metal", segments=6)
    box("tower_door", (tx, ty - 2.45, top + 1.1), (1.0, 0.3, 2.2), "door")
    boxes("tower_windows", [((0, -(r0 + (r1 - r0) * z / h), z), (0.6, 0.3, 0.9))
                            for z in (5.5, 9.0, 12.5)], "glass", (tx, ty, top))
    house("keeper", Place((7.5, -3.0, top), math.radians(20)), 6.0, 4.5, 3.0, 2.2, walls="wall_c")
    box("path", (3.5, -1.5, top + 0.01), (5.0, 1.2, 0.04), "path")
    box("jetty", (-9.0, -12.0, 1.0), (2.0, 9.0, 0.3), "wood", (0, 0, math.radians(-35)))
    hull = [(-3.0, 0.0), (2.2, 0.0), (3.2, 1.0), (-3.2, 1.0)]
    prism("boat_hull", hull, 1.6, "red", (-14.0, -17.0, -0.3), math.radians(55))
    locs, tgts = orbit((tx, ty, 0.0), n, (-105.0, -25.0), (30.0, 27.0), (6.0, 12.0), 10.5)
    animate_camera(locs, tgts, lens=30.0)


@_scene("windmill", "object-centric", 2, "orbit",
        "An octagonal tower windmill with cap, four sails and a stage, with a barn, hay bales and "
        "fields; the camera circles half way round it.")
def _windmill(rng: random.Random, n: int) -> None:
    ground("grass")
    cylinder("base", (0, 0, 0), 3.8, 1.2, "stone", segments=8)
    cylinder("tower", (0, 0, 0), 3.3, 11.0, "wood", radius_top=2.3, segments=8)
    cone("cap", (0, 0, 10.8), 2.8, 3.0, "roof_b", segments=8)
    cylinder("stage", (0, 0, 4.0), 4.6, 0.25, "wood", segments=8)
    boxes("stage_posts", [((4.2 * math.cos(a), 4.2 * math.sin(a), 2.0), (0.15, 0.15, 4.0))
                          for a in (2 * math.pi * (i + 0.5) / 8 for i in range(8))], "wood")
    cylinder("hub", (0.0, -1.5, 11.6), 0.55, 2.8, "metal", segments=10,
             rot=(math.radians(90), 0, 0))
    hub = Vector((0.0, -3.8, 11.6))
    for i, a in enumerate((math.radians(55), math.radians(145))):
        box(f"spar{i}", hub, (0.3, 0.3, 19.0), "wood", (0, a, 0))
    for i in range(4):
        a = math.radians(55 + 90 * i)
        along, side = Vector((math.sin(a), 0, math.cos(a))), Vector((math.cos(a), 0, -math.sin(a)))
        box(f"sail{i}", hub + 5.3 * along + 0.95 * side + Vector((0, -0.1, 0)), (1.5, 0.06, 7.5),
            "white", (0, a, 0))
    box("mill_door", (0, -3.2, 1.1), (1.1, 0.5, 2.1), "door")
    boxes("mill_windows", [((0, -2.9 + 0.09 * z, z), (0.7, 0.4, 0.9)) for z in (6.0, 8.5)] +
          [((2.7 - 0.09 * (z - 2), 0, z), (0.4, 0.7, 0.9)) for z in (7.0,)], "glass")
    house("barn", Place((-14.0, 12.0, 0.0), math.radians(-30)), 10.0, 7.0, 4.5, 3.5,
          walls="wall_b", roof="roof_b", chimney=False)
    house("shed", Place((-4.0, 14.0, 0.0), math.radians(-10)), 4.0, 3.0, 2.5, 1.5, walls="wood",
          chimney=False)
    for i in range(6):
        x, y = rng.uniform(-20.0, -8.0), rng.uniform(2.0, 9.0)
        cylinder(f"hay{i}", (x, y + 0.6, 0.6), 0.6, 1.2, "crop", rot=(math.radians(90), 0, 0))
    for i, (x, y, sx, sy) in enumerate([(-50, -40, 40, 30), (0, -60, 40, 25), (50, -30, 30, 40),
                                        (55, 30, 35, 30)]):
        box(f"field{i}", (x, y, 0.03), (sx, sy, 0.06), ["crop", "hedge"][i % 2])
    box("road", (36.0, 0.0, 0.02), (4.0, 200.0, 0.04), "path")
    for i in range(10):
        tree(f"tree{i}", (40.0 + rng.uniform(-0.5, 0.5), -60.0 + 14.0 * i, 0.0),
             rng.uniform(6, 9), "broadleaf")
    locs, tgts = orbit((0, 0, 0), n, (-150.0, 30.0), (30.0, 25.0), (3.0, 8.0), 9.0)
    animate_camera(locs, tgts, lens=26.0)


@_scene("gazebo", "object-centric", 1, "orbit",
        "An octagonal garden gazebo with columns and a pointed roof, a tiered fountain, lamp posts, "
        "hedges and trees; the camera orbits inwards.")
def _gazebo(rng: random.Random, n: int) -> None:
    ground("grass")
    cylinder("platform", (0, 0, 0), 4.0, 0.5, "stone", segments=8)
    box("step", (0, -4.2, 0.15), (2.2, 1.0, 0.3), "stone")
    corners = [(3.5 * math.cos(a), 3.5 * math.sin(a)) for a in
               (2 * math.pi * (i + 0.5) / 8 for i in range(8))]
    for i, (x, y) in enumerate(corners):
        cylinder(f"column{i}", (x, y, 0.5), 0.16, 3.1, "white", segments=10)
        x2, y2 = corners[(i + 1) % 8]
        mid, ang = ((x + x2) / 2, (y + y2) / 2), math.atan2(y2 - y, x2 - x)
        length = math.hypot(x2 - x, y2 - y)
        box(f"beam{i}", (*mid, 3.65), (length + 0.3, 0.3, 0.35), "white", (0, 0, ang))
        if i != 5:  # leave the entrance (towards -Y) open
            box(f"rail{i}", (*mid, 1.4), (length, 0.1, 0.1), "white", (0, 0, ang))
    cone("roof", (0, 0, 3.7), 4.8, 2.6, "roof_b", segments=8)
    cylinder("finial", (0, 0, 6.1), 0.1, 0.9, "metal", segments=6)
    cylinder("table", (0, 0, 0.5), 0.8, 0.75, "wood", segments=12)
    fx, fy = 0.0, 15.0
    cylinder("basin", (fx, fy, 0), 3.0, 0.6, "stone", segments=20)
    cylinder("basin_water", (fx, fy, 0.1), 2.8, 0.45, "water", segments=20)
    cylinder("pedestal", (fx, fy, 0), 0.4, 1.9, "stone", segments=10)
    cylinder("bowl", (fx, fy, 1.8), 0.5, 0.4, "stone", radius_top=1.3, segments=12)
    cylinder("spout", (fx, fy, 2.2), 0.15, 0.6, "stone", segments=8)
    box("path_x", (0, 0, 0.01), (60.0, 2.6, 0.04), "path")
    box("path_y", (0, 10.0, 0.01), (2.6, 40.0, 0.04), "path")
    for i, x in enumerate((-7.0, 7.0)):
        lamp_post(f"lamp{i}", (x, 1.8, 0.0), 3.2)
    for i, x in enumerate((-16.0, 16.0)):
        box(f"hedge{i}", (x, 5.0, 0.6), (1.2, 20.0, 1.2), "hedge")
    box("bench0", (-3.0, 11.5, 0.45), (1.8, 0.5, 0.1), "wood")
    box("bench1", (3.0, 11.5, 0.45), (1.8, 0.5, 0.1), "wood")
    for i in range(9):
        a = math.radians(20 + 20 * i + rng.uniform(-6, 6))
        r = rng.uniform(22.0, 30.0)
        tree(f"tree{i}", (r * math.cos(a), r * math.sin(a), 0.0), rng.uniform(6, 10),
             rng.choice(["conifer", "broadleaf"]))
    locs, tgts = orbit((0, 0, 0), n, (-145.0, -55.0), (17.0, 11.5), (3.4, 2.6), 2.4)
    animate_camera(locs, tgts, lens=26.0)


# --------------------------------------------------------------------------------------------
# indoor


@_scene("living_room", "indoor", 2, "pan",
        "A furnished living room: fireplace, sofa and armchairs, coffee table on a rug, dining "
        "table with chairs, bookshelf, lamps and windows; the camera pans 150 degrees in place.")
def _living_room(rng: random.Random, n: int) -> None:
    room_shell("room", -4.5, 4.5, -3.5, 3.5, 3.0)
    for i, x in enumerate((-2.0, 1.0)):
        box(f"window{i}", (x, 3.5, 1.6), (1.4, 0.12, 1.5), "glass")
        box(f"sill{i}", (x, 3.45, 0.82), (1.6, 0.3, 0.06), "white")
    box("door", (4.5, -2.0, 1.05), (0.12, 1.0, 2.1), "door")
    box("chimney_breast", (-4.3, 0.0, 1.5), (0.6, 2.2, 3.0), "brick")
    box("firebox", (-4.0, 0.0, 0.5), (0.1, 1.0, 0.9), "metal")
    box("mantel", (-3.9, 0.0, 1.2), (0.4, 2.6, 0.1), "wood")
    box("rug", (-1.8, 0.0, 0.03), (3.0, 2.4, 0.02), "fabric_b")  # on the floor top (z=0.02): no z-fighting
    box("sofa_base", (0.3, 0.0, 0.22), (0.9, 2.4, 0.45), "fabric")
    box("sofa_back", (0.7, 0.0, 0.6), (0.25, 2.4, 0.8), "fabric")
    boxes("sofa_arms", [((0.3, -1.25, 0.35), (0.9, 0.2, 0.7)), ((0.3, 1.25, 0.35), (0.9, 0.2, 0.7))],
          "fabric")
    table("coffee_table", (-1.8, 0.0, 0.0), 0.7, 1.2, 0.42)
    for i, y in enumerate((-2.3, 2.3)):
        pl = Place((-2.2, y, 0.0), math.radians(0 if y > 0 else 180))
        box(f"armchair{i}_seat", pl.at(0, 0, 0.25), (0.8, 0.8, 0.5), "fabric_b", pl.rot())
        box(f"armchair{i}_back", pl.at(0, 0.35, 0.6), (0.8, 0.2, 0.75), "fabric_b", pl.rot())
    box("bookshelf", (3.0, 3.3, 1.1), (2.2, 0.35, 2.2), "wood")
    books = []
    for s in range(4):
        x = 2.05
        while x < 3.85:
            wdt = rng.uniform(0.05, 0.12)
            books.append(((x + wdt / 2, 3.15, 0.3 + 0.5 * s), (wdt, 0.22, rng.uniform(0.25, 0.38))))
            x += wdt + 0.01
    boxes("books", books, "books")
    table("dining_table", (2.6, -1.8, 0.0), 1.8, 1.0)
    for i, (x, y, r) in enumerate([(2.1, -2.65, 180), (3.1, -2.65, 180), (2.1, -0.95, 0),
                                   (3.1, -0.95, 0)]):
        chair(f"chair{i}", Place((x, y, 0.0), math.radians(r)))
    cylinder("pendant_cord", (2.6, -1.8, 2.2), 0.02, 0.8, "metal", segments=6)
    cylinder("pendant_shade", (2.6, -1.8, 1.9), 0.45, 0.35, "lamp", radius_top=0.1)
    cylinder("floor_lamp", (-3.3, 3.0, 0.0), 0.03, 1.6, "metal", segments=6)
    cylinder("floor_lamp_shade", (-3.3, 3.0, 1.5), 0.35, 0.4, "lamp", radius_top=0.2)
    cylinder("plant_pot", (4.05, 1.5, 0.0), 0.25, 0.45, "brick", segments=10)
    cone("plant", (4.05, 1.5, 0.4), 0.45, 1.3, "foliage")
    boxes("pictures", [((-1.0, -3.48, 1.7), (1.2, 0.04, 0.8)), ((1.2, -3.48, 1.8), (0.6, 0.04, 0.8))],
          "fabric_b")
    box("tv_cabinet", (-4.2, 2.4, 0.3), (0.5, 1.4, 0.6), "wood")
    locs, tgts = walk([(1.4, 1.0, 1.55), (1.35, 0.9, 1.6), (1.3, 0.8, 1.6)],
                      [(140.0, -12.0), (70.0, -10.0), (-10.0, -8.0)], n, ease=0.4)
    animate_camera(locs, tgts, lens=24.0)


@_scene("corridor", "indoor", 3, "room-to-hall",
        "From a furnished office the camera walks out through the door into a long corridor lined "
        "with doors, benches and ceiling lights, turning 90 degrees into the hall.")
def _corridor(rng: random.Random, n: int) -> None:
    room_shell("office", -3.0, 3.0, -6.0, -0.1, 3.0, skip=("n",))
    room_shell("hall", -4.0, 18.0, 0.1, 3.1, 3.0, skip=("s",), wall="wall_c")
    prism("hall_wall_s", opening_profile(-4.2, 18.2, 3.0, 0.75, 2.3), 0.2, "wall_c", (0, 0, 0))
    box("door_frame_top", (0, 0.0, 2.38), (1.7, 0.3, 0.16), "wood")
    box("desk", (-1.5, -4.8, 0.75), (1.6, 0.8, 0.05), "wood")
    boxes("desk_sides", [((-0.75, 0, 0.37), (0.05, 0.75, 0.74)), ((0.75, 0, 0.37), (0.05, 0.75, 0.74))],
          "wood", (-1.5, -4.8, 0.0))
    chair("office_chair", Place((-1.5, -4.0, 0.0), math.radians(180)))
    box("monitor", (-1.5, -5.0, 1.05), (0.6, 0.05, 0.4), "metal")
    box("cabinet", (2.6, -3.5, 1.0), (0.6, 2.0, 2.0), "wood")
    box("office_window", (-0.5, -6.1, 1.6), (2.0, 0.12, 1.3), "glass")
    box("office_board", (-2.97, -2.2, 1.5), (0.06, 1.8, 1.0), "fabric_b")
    cylinder("coat_rack", (-2.5, -0.6, 0.0), 0.04, 1.8, "metal", segments=6)
    cone("coat", (-2.5, -0.6, 0.7), 0.3, 1.0, "fabric", segments=8)
    cylinder("office_pot", (2.5, -5.5, 0.0), 0.25, 0.45, "brick", segments=10)
    cone("office_plant", (2.5, -5.5, 0.4), 0.4, 1.2, "foliage")
    for i, x in enumerate(range(-2, 18, 4)):
        box(f"door_n{i}", (x, 3.1, 1.05), (1.0, 0.12, 2.1), "door")
        boxes(f"frame_n{i}", [((-0.55, 0, 1.1), (0.1, 0.18, 2.2)), ((0.55, 0, 1.1), (0.1, 0.18, 2.2)),
                              ((0, 0, 2.2), (1.2, 0.18, 0.1))], "wood", (x, 3.1, 0))
        box(f"light{i}", (x + 2, 1.6, 2.99), (1.2, 0.35, 0.06), "lamp")
    for i, (x, bx) in enumerate(((6.0, 4.0), (12.0, 12.0))):
        box(f"door_s{i}", (x, 0.1, 1.05), (1.0, 0.12, 2.1), "door")
        box(f"bench{i}", (bx, 2.8, 0.45), (1.6, 0.45, 0.08), "wood")
        box(f"noticeboard{i}", (x + 2.0, 0.12, 1.5), (1.2, 0.06, 0.8), "fabric_b")
    box("end_window", (18.0, 1.6, 1.6), (0.12, 1.6, 1.4), "glass")
    cylinder("hall_pot", (17.3, 2.6, 0.0), 0.3, 0.5, "brick", segments=10)
    cone("hall_plant", (17.3, 2.6, 0.45), 0.45, 1.4, "foliage")
    cylinder("extinguisher", (9.0, 2.95, 0.3), 0.1, 0.6, "red", segments=8)
    locs, tgts = walk([(1.0, -5.0, 1.6), (0.5, -3.3, 1.6), (0.1, -1.4, 1.6), (0.0, 0.2, 1.6),
                       (0.5, 1.5, 1.6), (6.0, 1.6, 1.6), (12.0, 1.6, 1.6)],
                      [(70.0, -8.0), (30.0, -5.0), (0.0, -3.0), (-25.0, -3.0), (-90.0, -3.0),
                       (-95.0, -3.0), (-88.0, -3.0)], n, ease=0.2)
    animate_camera(locs, tgts, lens=24.0)


# --------------------------------------------------------------------------------------------
# outdoor


def _street_block(rng: random.Random, side: int, y0: float, y1: float, x_front: float,
                  prefix: str) -> None:
    """Buildings of random width/height along one side of a street, facades facing the street."""
    y, i = y0, 0
    while True:
        w = rng.uniform(7.0, 11.0)
        if y + w > y1:
            break
        h = rng.choice([9.0, 12.0, 15.0, 18.0])
        d = 10.0
        pl = Place((side * (x_front + d / 2), y + w / 2, 0.0), math.radians(-90 * side))
        house(f"{prefix}{i}", pl, w, d, h, rng.uniform(2.5, 4.0),
              walls=rng.choice(["wall", "wall_b", "wall_c", "wall_d", "brick"]),
              roof=rng.choice(["roof", "roof_b"]), flat=rng.random() < 0.4,
              door_x=-w / 2 + 1.1, shop=True, side_windows=False)
        if rng.random() < 0.5:
            box(f"{prefix}{i}_awning", pl.at(0.6, -d / 2 - 0.7, 2.9), (w - 2.6, 1.4, 0.1),
                rng.choice(["fabric", "fabric_b"]), pl.rot(rx=math.radians(-15)))
        y += w + rng.choice([0.0, 0.0, 0.5])
        i += 1


@_scene("street", "outdoor", 3, "dolly",
        "A street canyon of three- to six-storey houses with shop fronts, awnings, parked cars and "
        "lamp posts, closed by a cross building; the camera dollies 60 m down the street.")
def _street(rng: random.Random, n: int) -> None:
    ground("pavement")
    box("road", (0, 40.0, 0.01), (8.0, 160.0, 0.02), "road")
    for s in (-1, 1):
        box(f"sidewalk{s}", (s * 5.25, 40.0, 0.08), (2.5, 160.0, 0.16), "pavement")
        _street_block(rng, s, -30.0, 40.0 if s > 0 else 92.0, 6.5, f"house{'ew'[s > 0]}")
        for j in range(7):
            lamp_post(f"lamp{s}_{j}", (s * 5.6, -10.0 + 15.0 * j, 0.16), 4.5)
    _street_block(rng, 1, 52.0, 92.0, 6.5, "houseE2")
    house("cross_building", Place((0, 104.0, 0.0)), 40.0, 12.0, 18.0, 5.0, walls="wall_d")
    box("side_street", (30.0, 46.0, 0.01), (48.0, 8.0, 0.02), "road")
    for i in range(8):
        y = -5.0 + 11.0 * i + rng.uniform(-2, 2)
        s = 1 if i % 2 else -1
        color = rng.choice(["red", "fabric_b", "white", "metal"])
        box(f"car{i}_body", (s * 3.0, y, 0.6), (1.8, 4.2, 0.8), color)
        box(f"car{i}_cabin", (s * 3.0, y + 0.2, 1.25), (1.6, 2.2, 0.6), "glass")
    boxes("crosswalk", [((x, 0, 0.0), (0.5, 3.0, 0.03)) for x in (-3, -2, -1, 0, 1, 2, 3)],
          "white", (0, 46.0, 0.02))
    for i, y in enumerate((41.5, 50.5)):
        tree(f"tree{i}", (8.8, y, 0.0), 5.0, "broadleaf")
    locs, tgts = walk([(-0.5, -12.0, 1.8), (-0.2, 8.0, 2.4), (0.2, 28.0, 3.0), (0.0, 48.0, 3.6)],
                      [(0.0, -2.0), (14.0, 0.0), (-14.0, 0.0), (0.0, -2.0)], n, ease=0.2)
    animate_camera(locs, tgts, lens=26.0)


@_scene("plaza", "outdoor", 1, "pan",
        "A town square framed by gabled houses and a church tower, with a statue, market stalls, "
        "trees, benches and lamps; the camera pans 80 degrees.")
def _plaza(rng: random.Random, n: int) -> None:
    ground("pavement")
    # (side centre, rotation so that the facades face the square, side length)
    sides = [((0, 26.0), 0.0, 52.0), ((0, -26.0), math.pi, 52.0), ((-30.0, 0), math.pi / 2, 44.0),
             ((30.0, 0), -math.pi / 2, 44.0)]
    for s, ((cx, cy), rz, length) in enumerate(sides):
        side = Place((cx, cy, 0.0), rz)
        pos, j = -length / 2 + 4.0, 0
        while True:
            w = rng.uniform(7.0, 10.0)
            if pos + w > length / 2 - 4.0:
                break
            if s == 0 and pos < 7.0 and pos + w > -7.0:
                pos = 7.0  # leave the middle of the north side to the church
                continue
            house(f"house{s}_{j}", Place(side.at(pos + w / 2, 0.0), rz), w, 8.0,
                  rng.choice([7.0, 9.0, 12.0]), rng.uniform(2.5, 4.0),
                  walls=rng.choice(["wall", "wall_b", "wall_d", "wall_c"]),
                  roof=rng.choice(["roof", "roof_b"]))
            pos += w + rng.choice([0.0, 0.0, 3.0])
            j += 1
    box("church_nave", (0, 34.0, 6.0), (10.0, 20.0, 12.0), "stone")
    gable_roof("church_roof", (0, 34.0, 12.0), 10.6, 20.6, 5.0, "roof_b", math.pi / 2)
    box("church_tower", (0, 24.0, 12.0), (6.0, 6.0, 24.0), "stone")
    cone("church_spire", (0, 24.0, 24.0), 4.6, 9.0, "roof_b", segments=4,
         rot=(0, 0, math.pi / 4))
    box("church_door", (0, 20.95, 2.0), (2.0, 0.2, 4.0), "door")
    box("church_window", (0, 20.95, 16.0), (1.2, 0.2, 2.5), "glass")
    box("statue_plinth", (0, 0, 1.0), (2.5, 2.5, 2.0), "stone")
    cylinder("statue", (0, 0, 2.0), 0.45, 2.4, "metal", segments=10)
    box("statue_head", (0, 0, 4.6), (0.5, 0.5, 0.5), "metal")
    for i, (x, y) in enumerate([(-12, 8), (12, 8), (-12, -8), (12, -8)]):
        box(f"stall{i}", (x, y, 1.0), (3.0, 2.0, 2.0), "wood")
        gable_roof(f"stall{i}_canopy", (x, y, 2.0), 3.6, 2.6, 0.8, ["fabric", "fabric_b"][i % 2])
    for i in range(6):
        x = -20.0 + 8.0 * i
        tree(f"tree{i}", (x, 16.5, 0.0), rng.uniform(5, 7), "broadleaf")
        lamp_post(f"lamp{i}", (x + 4.0, -17.0, 0.0), 4.0)
    for i, x in enumerate((-6.0, 6.0)):
        box(f"bench{i}", (x, 3.5, 0.45), (2.0, 0.5, 0.1), "wood")
    locs, tgts = walk([(3.0, -15.0, 1.8)], [(50.0, 5.0), (10.0, 5.0), (-30.0, 4.0)], n, ease=0.4)
    animate_camera(locs, tgts, lens=28.0)


@_scene("bridge", "outdoor", 1, "dolly",
        "A two-arched stone bridge over a river between quays with a row of houses and a boat; "
        "the camera dollies sideways along the bank.")
def _bridge(rng: random.Random, n: int) -> None:
    ground("water", z=-2.0)
    for s in (-1, 1):
        box(f"bank{s}", (0, s * 155.0, -2.0), (600.0, 290.0, 4.0), "grass")
        box(f"quay{s}", (0, s * 11.0, -0.9), (600.0, 2.0, 2.2), "stone")

    def deck_top(u: float) -> float:
        return 0.3 + 1.7 * max(0.0, 1 - (u / 16.0) ** 2)

    top = [(u, deck_top(u)) for u in (16, 12, 8, 4, 0, -4, -8, -12, -16)]
    arch = []
    for lo, hi in ((1.0, 9.0), (-9.0, -1.0)):
        c, half = (lo + hi) / 2, (hi - lo) / 2
        arch += [(hi, -2.2), (hi, -1.8)]
        arch += [(c + half * math.cos(a), -1.8 + 2.6 * math.sin(a))
                 for a in (math.pi * k / 8 for k in range(1, 8))]
        arch += [(lo, -1.8), (lo, -2.2)]
    outline = top[::-1] + [(16.0, -0.5), (10.0, -0.5), (10.0, -2.2)] + arch
    outline += [(-10.0, -2.2), (-10.0, -0.5), (-16.0, -0.5)]
    prism("bridge", outline, 5.0, "stone", (0, 0, 0), math.pi / 2)
    for s in (-1, 1):
        para = [(u, z + 1.0) for u, z in top] + [(u, z - 0.3) for u, z in top[::-1]]
        prism(f"parapet{s}", para, 0.35, "stone", (s * 2.4, 0, 0), math.pi / 2)
    for s in (-1, 1):
        cylinder(f"cutwater{s}", (s * 2.5, 0, -2.2), 1.0, 2.2, "stone", radius_top=1.0,
                 segments=4, rot=(0, 0, math.pi / 4))
    for i, y in enumerate((-6.0, 6.0)):
        lamp_post(f"bridge_lamp{i}", (2.4, y, deck_top(y) + 1.0), 2.5)
    x = -40.0
    i = 0
    while x < 40.0:
        w = rng.uniform(6.0, 9.0)
        if x > 4.0 or x + w < -4.0:
            house(f"house{i}", Place((x + w / 2, 18.0, 0.0)), w, 8.0, rng.choice([6.0, 9.0, 12.0]),
                  rng.uniform(2.5, 3.5), walls=rng.choice(["wall", "wall_b", "wall_d"]),
                  roof=rng.choice(["roof", "roof_b"]))
        x += w + 0.3
        i += 1
    for i in range(6):
        tree(f"tree{i}", (8.0 + 7.0 * i + rng.uniform(-1, 1), -16.0, 0.0), rng.uniform(5, 8),
             "broadleaf")
    hull = [(-3.5, 0.0), (2.6, 0.0), (3.6, 1.1), (-3.6, 1.1)]
    prism("boat_hull", hull, 2.0, "wood", (-11.0, 4.0, -2.3), 0.1)
    box("boat_cabin", (-11.5, 4.0, -0.6), (2.0, 1.4, 1.0), "white")
    locs, tgts = walk([(-20.0, -24.0, 2.6), (-12.0, -24.0, 2.8), (-4.0, -24.0, 3.0)],
                      [(-22.0, -2.0), (-14.0, -2.0), (-4.0, -2.0)], n, ease=0.3)
    animate_camera(locs, tgts, lens=28.0)


@_scene("village", "outdoor", 2, "fly-through",
        "A village of gabled houses with chimneys, trees, lanes and a church with a spire; the "
        "camera flies over the roofs and banks 80 degrees in its second segment.")
def _village(rng: random.Random, n: int) -> None:
    ground("grass")
    for j in range(-3, 4):
        box(f"lane_x{j}", (0, j * 16.0 + 8.0, 0.01), (120.0, 3.0, 0.04), "path")
    for gi in range(-3, 4):
        for gj in range(-3, 4):
            x, y = gi * 16.0 + rng.uniform(-2, 2), gj * 16.0 + rng.uniform(-2, 2)
            if (gi, gj) in ((-2, 2), (-2, 1)):
                continue
            if rng.random() < 0.25:
                tree(f"tree{gi}_{gj}", (x, y, 0), rng.uniform(6, 9), rng.choice(["conifer", "broadleaf"]))
                continue
            house(f"house{gi}_{gj}", Place((x, y, 0.0), math.radians(rng.choice([0, 90, 180, 270])
                                                                       + rng.uniform(-8, 8))),
                  rng.uniform(6.0, 9.0), rng.uniform(5.0, 7.0), rng.choice([3.2, 4.5, 6.0]),
                  rng.uniform(2.2, 3.2), walls=rng.choice(["wall", "wall_b", "wall_d", "wall_c"]),
                  roof=rng.choice(["roof", "roof_b"]))
            if rng.random() < 0.6:
                continue
            tx, ty = x + rng.choice([-7.5, 7.5]), y + rng.uniform(-5, 5)
            tree(f"yard_tree{gi}_{gj}", (tx, ty, 0), rng.uniform(4, 6), rng.choice(["conifer", "broadleaf"]))
    house("church", Place((-32.0, 32.0, 0.0), math.pi / 2), 16.0, 8.0, 8.0, 4.0, walls="stone",
          roof="roof_b", chimney=False)
    box("church_tower", (-32.0, 22.0, 7.0), (4.0, 4.0, 14.0), "stone")
    cone("church_spire", (-32.0, 22.0, 14.0), 3.0, 8.0, "roof_b", segments=4,
         rot=(0, 0, math.pi / 4))
    locs, tgts = walk([(4.0, -70.0, 17.0), (4.0, -50.0, 16.0), (4.0, -32.0, 15.0),
                       (10.0, -18.0, 14.5), (22.0, -10.0, 14.0)],
                      [(0.0, -22.0), (0.0, -24.0), (0.0, -25.0), (-40.0, -25.0), (-80.0, -25.0)],
                      n, ease=0.1)
    animate_camera(locs, tgts, lens=26.0)


@_scene("castle_wall", "outdoor", 2, "dolly",
        "A crenellated castle curtain wall with round towers under conical roofs and a gatehouse "
        "with an arched gate over a moat; the camera dollies sideways along the wall.")
def _castle_wall(rng: random.Random, n: int) -> None:
    ground("grass")
    wall_h, wall_t = 12.0, 3.0
    towers = [-50.0, -25.0, 25.0, 50.0]
    for i, (a, b) in enumerate([(-70.0, -50.0), (-50.0, -25.0), (-25.0, -7.0), (7.0, 25.0),
                                (25.0, 50.0), (50.0, 70.0)]):
        box(f"curtain{i}", ((a + b) / 2, 0, wall_h / 2), (b - a, wall_t, wall_h), "stone")
        merlons = [((x, -wall_t / 2 + 0.5, wall_h + 0.6), (1.0, 1.0, 1.2))
                   for x in [a + 1.5 + 2.0 * k for k in range(int((b - a - 2) / 2.0))]]
        boxes(f"merlons{i}", merlons, "stone")
    for i, x in enumerate(towers):
        cylinder(f"tower{i}", (x, 0, 0), 4.5, 16.0, "stone")
        cone(f"tower{i}_roof", (x, 0, 16.0), 5.3, 6.5, "roof_b", segments=16)
        boxes(f"tower{i}_slits", [((0, -4.4, z), (0.4, 0.5, 1.4)) for z in (5.0, 10.0)], "door",
              (x, 0, 0))
    for s in (-1, 1):
        box(f"gate_tower{s}", (s * 7.0, -0.5, 8.0), (6.0, 6.0, 16.0), "stone")
        boxes(f"gate_tower{s}_merlons", [((dx, dy, 16.6), (1.0, 1.0, 1.2)) for dx in (-2.5, 0, 2.5)
                                        for dy in (-2.5, 2.5)], "stone", (s * 7.0, -0.5, 0))
    prism("gate_wall", opening_profile(-4.0, 4.0, 14.0, 2.8, 4.0, arch_rise=2.2), 4.0, "stone",
          (0, 0, 0))
    box("portcullis", (0, -1.6, 4.6), (5.6, 0.15, 3.0), "metal")
    box("moat", (0, -9.0, 0.01), (140.0, 8.0, 0.04), "water")
    box("drawbridge", (0, -8.0, 0.25), (5.0, 10.0, 0.3), "wood")
    box("road", (0, -40.0, 0.01), (5.0, 60.0, 0.02), "path")
    for i in range(3):
        x = -30.0 + 20.0 * i + rng.uniform(-3, 3)
        cone(f"tent{i}", (x, -24.0, 0), 2.5, 3.5, ["fabric", "fabric_b", "white"][i], segments=8)
    for i in range(8):
        tree(f"tree{i}", (-70.0 + 20.0 * i + rng.uniform(-3, 3), -60.0 + rng.uniform(-4, 4), 0),
             rng.uniform(6, 9), "conifer")
    box("cart", (14.0, -20.0, 0.7), (2.0, 3.0, 0.8), "wood")
    locs, tgts = walk([(-36.0, -38.0, 4.0), (0.0, -38.0, 5.0), (36.0, -38.0, 4.5)],
                      [(-20.0, 2.0), (0.0, 4.0), (20.0, 3.0)], n, ease=0.2)
    animate_camera(locs, tgts, lens=28.0)


@_scene("harbour", "outdoor", 1, "dolly",
        "A harbour: a pier on piles with lamp posts and moored boats, a quay with warehouses and a "
        "crane, a small light at the pier head; the camera walks the pier towards the town.")
def _harbour(rng: random.Random, n: int) -> None:
    ground("water")
    box("quay", (0, 105.0, -0.75), (200.0, 190.0, 4.5), "pavement")
    for i in range(5):
        x = -36.0 + 16.0 * i + rng.uniform(-1, 1)
        house(f"warehouse{i}", Place((x, 18.0, 1.5)), 12.0, 10.0, rng.choice([8.0, 10.0]), 3.0,
              walls=rng.choice(["brick", "wall_b", "wall_c"]), roof="roof_b", chimney=False)
    box("crane_tower", (14.0, 14.0, 8.5), (1.5, 1.5, 14.0), "red")
    box("crane_jib", (14.0, 8.0, 15.5), (1.0, 16.0, 1.0), "red")
    boxes("bollards", [((x, 10.6, 1.9), (0.4, 0.4, 0.8)) for x in range(-40, 41, 8) if x],
          "metal")
    box("pier", (0, -15.0, 1.45), (5.0, 50.0, 0.3), "wood")
    for i in range(10):
        for s in (-1, 1):
            cylinder(f"pile{s}_{i}", (s * 2.3, -38.0 + 5.0 * i, -1.0), 0.25, 2.4, "wood", segments=8)
    for i, y in enumerate((-30.0, -18.0, -6.0)):
        lamp_post(f"lamp{i}", (2.2, y, 1.6), 3.5)
    cylinder("pier_head", (0, -42.0, -1.0), 3.5, 2.9, "stone", segments=12)
    cylinder("beacon", (0, -43.0, 1.9), 0.8, 5.0, "white", radius_top=0.6, segments=12)
    cone("beacon_roof", (0, -43.0, 6.9), 0.9, 1.0, "red", segments=12)
    hull = [(-4.0, 0.0), (3.0, 0.0), (4.5, 1.6), (-4.2, 1.6)]
    for i, (x, y) in enumerate([(-6.0, -28.0), (6.0, -20.0), (-6.5, -10.0), (18.0, -12.0)]):
        prism(f"boat{i}_hull", hull, 2.4, rng.choice(["red", "fabric_b", "white", "wood"]),
              (x, y, -0.6), math.pi / 2 + rng.uniform(-0.1, 0.1))
        box(f"boat{i}_cabin", (x, y + 0.8, 1.5), (1.6, 2.2, 1.2), "white")
        cylinder(f"boat{i}_mast", (x, y - 1.2, 1.0), 0.08, 7.0, "wood", segments=6)
    locs, tgts = walk([(0.3, -30.0, 3.3), (0.3, -17.0, 3.3), (0.4, -4.0, 3.3)],
                      [(0.0, -1.0), (10.0, -3.0), (22.0, -2.0)], n, ease=0.3)
    animate_camera(locs, tgts, lens=26.0)


def _stair_floor(y: float) -> float:
    """Walking height of the terraces' central stairs at y (terraces rise 3 m every 10 m)."""
    k, r = divmod(y, 10.0)
    base = 3.0 * max(0, min(k, 4))
    if 0 <= k < 4 and r > 4.0:
        return base + 0.5 * (r - 4.0)
    return base


@_scene("terraces", "outdoor", 2, "dolly",
        "Hillside terraces with stone retaining walls, a central flight of stairs with balustrades, "
        "houses, planters and trees; the camera climbs two flights and turns along a terrace.")
def _terraces(rng: random.Random, n: int) -> None:
    ground("grass")
    for k in range(1, 5):
        box(f"terrace{k}", (0, 10.0 * k + 30.0, 1.5 * k), (80.0, 60.0, 3.0 * k), "stone")
        box(f"lawn{k}", (0, 10.0 * k + 30.3, 3.0 * k + 0.01), (80.0, 60.0, 0.04), "grass")
        steps = [(0.0, 0.0)]
        for s in range(15):
            steps += [(0.4 * s, 0.2 * (s + 1)), (0.4 * (s + 1), 0.2 * (s + 1))]
        steps += [(6.3, 3.0), (6.3, 0.0)]
        prism(f"stairs{k}", steps, 3.0, "pavement", (0, 10.0 * k - 6.0, 3.0 * (k - 1)), math.pi / 2)
        for s in (-1, 1):
            prism(f"balustrade{k}_{s}", [(0, 0), (6.3, 0), (6.3, 3.9), (6.0, 3.9), (0, 0.9)], 0.25,
                  "white", (s * 1.7, 10.0 * k - 6.0, 3.0 * (k - 1)), math.pi / 2)
        if k < 4:
            for s in (-1, 1):
                for j in range(3):
                    x = s * (9.0 + 11.0 * j + rng.uniform(-1, 1))
                    house(f"house{k}_{s}_{j}", Place((x, 10.0 * k + 6.5, 3.0 * k)),
                          rng.uniform(6.0, 8.0), 5.5, rng.choice([3.5, 5.0, 6.0]),
                          rng.uniform(2.0, 3.0), walls=rng.choice(["wall", "wall_d", "wall_b"]),
                          roof="roof")
                box(f"planter{k}_{s}", (s * 6.0, 10.0 * k + 1.0, 3.0 * k + 0.4), (2.0, 1.0, 0.8),
                    "brick")
                cone(f"shrub{k}_{s}", (s * 6.0, 10.0 * k + 1.0, 3.0 * k + 0.8), 0.8, 1.6, "hedge")
    house("villa", Place((0, 52.0, 12.0)), 16.0, 9.0, 7.0, 3.5, walls="wall_d", roof="roof")
    for i in range(6):
        tree(f"tree{i}", (-40.0 + 16.0 * i + rng.uniform(-2, 2), -8.0 + rng.uniform(-3, 0), 0),
             rng.uniform(5, 8), "broadleaf")
    for i in range(4):
        tree(f"top_tree{i}", (-20.0 + 13.0 * i, 46.0, 12.0), rng.uniform(6, 9), "conifer")
    ys = [-6.0, 0.0, 6.0, 11.0, 16.0, 20.5, 21.5]
    pts = [(0.0, y, 0.5 * (_stair_floor(y - 0.8) + _stair_floor(y + 0.8)) + 1.7) for y in ys]
    locs, tgts = walk(pts, [(0.0, 6.0), (0.0, 12.0), (0.0, 14.0), (0.0, 10.0), (0.0, 12.0),
                            (30.0, 2.0), (75.0, -2.0)], n, ease=0.1)
    animate_camera(locs, tgts, lens=26.0)


@_scene("colonnade", "outdoor", 1, "dolly",
        "A park colonnade: two rows of columns under beams leading to a small temple, with lawns, "
        "hedges, statues, a pond and trees; the camera dollies along the colonnade.")
def _colonnade(rng: random.Random, n: int) -> None:
    ground("grass")
    box("path", (0, 15.0, 0.01), (5.0, 90.0, 0.04), "path")
    for s in (-1, 1):
        for i in range(11):
            column(f"column{s}_{i}", (s * 3.5, 4.0 * i, 0.0), 5.0)
        box(f"architrave{s}", (s * 3.5, 20.0, 5.4), (1.0, 41.0, 0.8), "white")
    for i in range(11):
        box(f"crossbeam{i}", (0, 4.0 * i, 5.95), (8.2, 0.4, 0.4), "white")
    box("podium", (0, 56.0, 0.6), (12.0, 10.0, 1.2), "white")
    box("temple_steps", (0, 50.5, 0.3), (8.0, 1.5, 0.6), "white")
    for i in range(4):
        column(f"portico{i}", (-4.5 + 3.0 * i, 52.0, 1.2), 5.0, 0.35)
    box("cella", (0, 57.5, 3.7), (8.0, 6.0, 5.0), "wall")
    box("temple_entablature", (0, 56.0, 6.6), (11.0, 9.5, 0.8), "white")
    gable_roof("temple_roof", (0, 56.0, 7.0), 12.0, 10.5, 2.5, "roof", math.pi / 2)
    for s in (-1, 1):
        box(f"hedge{s}", (s * 8.0, 18.0, 0.6), (1.0, 44.0, 1.2), "hedge")
        for i in range(3):
            box(f"bench{s}_{i}", (s * 6.0, 6.0 + 14.0 * i, 0.45), (0.5, 1.8, 0.1), "wood")
        box(f"statue{s}_plinth", (s * 12.0, 10.0, 0.8), (1.2, 1.2, 1.6), "stone")
        cylinder(f"statue{s}", (s * 12.0, 10.0, 1.6), 0.35, 2.0, "white", segments=8)
    cylinder("pond", (-20.0, 26.0, 0.0), 6.0, 0.15, "water", segments=20)
    for i in range(14):
        x = rng.choice([-1, 1]) * rng.uniform(14.0, 40.0)
        y = rng.uniform(-20.0, 70.0)
        if math.hypot(x + 20.0, y - 26.0) < 8:
            x -= 16.0
        tree(f"tree{i}", (x, y, 0), rng.uniform(6, 11), rng.choice(["conifer", "broadleaf"]))
    locs, tgts = walk([(0.5, -8.0, 1.8), (0.0, 6.0, 1.8), (-0.5, 18.0, 2.0)],
                      [(-8.0, 4.0), (6.0, 6.0), (-6.0, 4.0)], n, ease=0.3)
    animate_camera(locs, tgts, lens=26.0)


# --------------------------------------------------------------------------------------------
# indoor-outdoor transitions


@_scene("room_to_garden", "transition", 2, "door-transition",
        "A cottage room (table, cupboard, armchair, windows) whose open door leads to a fenced "
        "garden with flower beds, a shed and trees; the camera walks out through the door.")
def _room_to_garden(rng: random.Random, n: int) -> None:
    ground("grass")
    room_shell("room", -4.0, 4.0, -3.0, 3.0, 3.0, skip=("s",), wall="wall")
    prism("front_wall", opening_profile(-4.2, 4.2, 3.2, 0.8, 2.3), 0.25, "wall", (0, -3.125, 0))
    gable_roof("roof", (0, 0, 3.2), 9.4, 7.6, 2.6, "roof")
    box("chimney", (2.5, 1.5, 5.0), (0.7, 0.7, 3.4), "brick")
    for i, x in enumerate((-2.6, 2.6)):
        box(f"window{i}", (x, -3.125, 1.6), (1.2, 0.35, 1.2), "glass")
    box("back_window", (0.0, 3.1, 1.6), (1.4, 0.3, 1.2), "glass")
    hinge = Vector((-0.8, -2.95, 0.0))
    a = math.radians(85)
    box("door_leaf", hinge + 0.8 * Vector((-math.cos(a), math.sin(a), 0)) + Vector((0, 0, 1.12)),
        (1.6, 0.06, 2.22), "door", (0, 0, -a))
    table("table", (-2.2, 0.8, 0.0), 1.4, 0.9)
    for i, (x, r) in enumerate([(-2.7, 0), (-1.7, 0)]):
        chair(f"chair{i}", Place((x, 1.6, 0.0), math.radians(r)))
    box("cupboard", (3.6, 1.8, 1.0), (0.7, 1.6, 2.0), "wood")
    box("armchair_seat", (2.8, -1.6, 0.25), (0.8, 0.8, 0.5), "fabric")
    box("armchair_back", (3.2, -1.6, 0.6), (0.2, 0.8, 0.75), "fabric")
    box("rug", (0.0, 0.5, 0.03), (2.5, 1.8, 0.02), "fabric_b")  # on the floor top (z=0.02): no z-fighting
    boxes("pictures", [((-3.98, -1.0, 1.7), (0.04, 1.0, 0.7)), ((3.98, 0.0, 1.7), (0.04, 0.6, 0.8))],
          "fabric_b")
    boxes("flagstones", [((0.0, -4.0 - 1.2 * i, 0.02), (1.0, 0.9, 0.04)) for i in range(10)], "path")
    for i, (x, y) in enumerate([(-3.5, -6.0), (3.5, -6.0), (-3.5, -10.0), (3.5, -10.0)]):
        box(f"flower_bed{i}", (x, y, 0.15), (3.5, 2.0, 0.3), "brick")
        box(f"flowers{i}", (x, y, 0.4), (3.2, 1.7, 0.3), "flower")
    house("shed", Place((8.0, -12.0, 0.0), math.radians(200)), 3.5, 3.0, 2.4, 1.4, walls="wood",
          chimney=False)
    for side, (cx, cy, sx, sy) in {"s": (0, -18, 30, 0.1), "e": (15, -8, 0.1, 20),
                                   "w": (-15, -8, 0.1, 20)}.items():
        box(f"fence_{side}", (cx, cy, 0.6), (sx, sy + 0.05, 1.2), "wood")
    box("bench", (-6.5, -13.0, 0.45), (0.5, 1.8, 0.1), "wood")
    cylinder("birdbath", (-2.5, -14.0, 0.0), 0.15, 0.9, "stone", segments=8)
    cylinder("birdbath_bowl", (-2.5, -14.0, 0.9), 0.5, 0.15, "stone", segments=12)
    for i in range(7):
        x = rng.choice([-1, 1]) * rng.uniform(7.0, 13.0)
        tree(f"tree{i}", (x, rng.uniform(-16.0, -6.0), 0), rng.uniform(5, 8),
             rng.choice(["conifer", "broadleaf"]))
    for i in range(5):
        tree(f"far_tree{i}", (-24.0 + 12.0 * i, -26.0 + rng.uniform(-2, 2), 0), rng.uniform(7, 10),
             "broadleaf")
    locs, tgts = walk([(1.8, 2.0, 1.6), (1.0, 0.5, 1.6), (0.1, -1.7, 1.6), (0.0, -4.5, 1.65),
                       (0.8, -9.5, 1.7)],
                      [(160.0, -8.0), (165.0, -8.0), (175.0, -6.0), (185.0, -6.0), (225.0, -6.0)],
                      n, ease=0.2)
    animate_camera(locs, tgts, lens=24.0)


@_scene("courtyard_hall", "transition", 3, "door-transition",
        "A courtyard with a well and trees, enclosed by wings, opening through a round arch into a "
        "columned hall with long tables, chandeliers and a dais; the camera crosses the courtyard "
        "and enters the hall through the arch.")
def _courtyard_hall(rng: random.Random, n: int) -> None:
    ground("pavement")
    for name, (cx, cy, sx, sy, rz) in {"west_wing": (-17.0, -16.0, 32.0, 10.0, math.pi / 2),
                                       "east_wing": (17.0, -16.0, 32.0, 10.0, -math.pi / 2),
                                       "south_wing": (0.0, -29.0, 24.0, 8.0, math.pi)}.items():
        house(name, Place((cx, cy, 0.0), rz), sx, sy, 9.0, 4.0, walls="wall_d", roof="roof",
              chimney=False)
    for i in range(6):
        column(f"arcade{i}", (10.5, -24.0 + 4.0 * i, 0.0), 4.0, 0.25, "stone")
    box("arcade_roof", (11.2, -14.0, 4.2), (2.6, 22.0, 0.4), "stone")
    cylinder("well", (0, -15.0, 0), 1.2, 0.9, "stone")
    boxes("well_posts", [((-1.0, 0, 1.2), (0.15, 0.15, 2.4)), ((1.0, 0, 1.2), (0.15, 0.15, 2.4))],
          "wood", (0, -15.0, 0))
    gable_roof("well_roof", (0, -15.0, 2.3), 2.6, 2.2, 0.8, "roof")
    for i, (x, y) in enumerate([(-8.0, -22.0), (8.0, -22.0), (-8.0, -8.0), (7.0, -8.0)]):
        box(f"planter{i}", (x, y, 0.4), (1.6, 1.6, 0.8), "brick")
        tree(f"tree{i}", (x, y, 0.8), rng.uniform(4.5, 6.5), "broadleaf")
    # the hall: interior x in [-13, 13], y in [-3, 25], z in [0, 9]; arch in its south wall
    prism("hall_wall_s", opening_profile(-14.0, 14.0, 10.0, 1.8, 3.2, arch_rise=1.8), 1.0, "stone",
          (0, -3.5, 0))
    box("hall_wall_n", (0, 25.5, 5.0), (28.0, 1.0, 10.0), "stone")
    for s in (-1, 1):
        box(f"hall_wall_{s}", (s * 13.5, 11.0, 5.0), (1.0, 28.0, 10.0), "stone")
        boxes(f"hall_windows_{s}", [((s * -0.5, y, 5.5), (0.2, 1.6, 3.5)) for y in (2, 8, 14, 20)],
              "glass", (s * 13.5, 0, 0))
        for i in range(6):
            column(f"hall_column{s}_{i}", (s * 5.5, 0.5 + 4.0 * i, 0.0), 9.0, 0.4, "white")
        table(f"long_table{s}", (s * 9.0, 10.0, 0.0), 1.2, 14.0)
        boxes(f"benches{s}", [((dx, 0, 0.23), (0.4, 14.0, 0.46)) for dx in (-1.0, 1.0)], "wood",
              (s * 9.0, 10.0, 0.0))
        boxes(f"banners{s}", [((s * -0.05, y, 6.0), (0.05, 1.2, 3.0)) for y in (5, 11, 17)],
              "fabric", (s * 12.9, 0, 0))
    box("hall_floor", (0, 11.0, -0.03), (28.0, 29.0, 0.1), "floor")
    box("hall_ceiling", (0, 11.0, 9.25), (28.0, 29.0, 0.5), "ceiling")
    gable_roof("hall_roof", (0, 11.0, 10.0), 30.0, 29.0, 6.0, "roof_b", math.pi / 2)
    box("dais", (0, 22.5, 0.3), (12.0, 5.0, 0.6), "wood")
    box("throne", (0, 23.5, 1.4), (1.2, 1.0, 1.6), "fabric")
    for i, y in enumerate((4.0, 12.0, 20.0)):
        cylinder(f"chandelier{i}", (0, y, 6.0), 1.2, 0.25, "lamp", segments=12)
        cylinder(f"chain{i}", (0, y, 6.25), 0.04, 2.8, "metal", segments=6)
    locs, tgts = walk([(-4.0, -24.0, 1.7), (-5.0, -17.5, 1.7), (-4.0, -11.0, 1.7),
                       (-0.8, -6.5, 1.7), (0.0, -1.5, 1.7), (0.0, 4.0, 1.7), (0.0, 10.0, 1.75)],
                      [(-15.0, 6.0), (-18.0, 5.0), (-16.0, 4.0), (-6.0, 3.0), (0.0, 2.0),
                       (35.0, 2.0), (10.0, 3.0)], n, ease=0.15)
    animate_camera(locs, tgts, lens=24.0)


# --------------------------------------------------------------------------------------------
# building and saving


def _scene_settings(scene: bpy.types.Scene) -> None:
    scene.render.resolution_x = RENDER_WIDTH
    scene.render.resolution_y = RENDER_HEIGHT
    scene.render.resolution_percentage = 100
    scene.render.fps = 24
    world = bpy.data.worlds.new("Sky")
    world.color = (0.45, 0.62, 0.85)
    bg = world.node_tree.nodes.get("Background") if world.node_tree else None
    if bg is not None:
        bg.inputs["Color"].default_value = (0.45, 0.62, 0.85, 1.0)
    scene.world = world


def build_scene(key: str) -> None:
    """Reset Blender to an empty factory state and build scene `key` (geometry + camera)."""
    recipe = SCENES[key]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = key
    _scene_settings(scene)
    recipe.build()
    if scene.frame_end != recipe.frames or scene.camera is None:
        raise RuntimeError(f"{key}: built {scene.frame_end} frames, expected {recipe.frames}")
    scene.frame_set(scene.frame_start)


def save_scene_blend(key: str, path: Path) -> None:
    """Build scene `key` and save it as a compressed .blend at `path` (atomic rename)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    build_scene(key)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.blend")
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp), compress=True, copy=True,
                                    relative_remap=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: write `{key}.blend` for every (or each --only) scene into --out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmark/scenes"))
    parser.add_argument("--only", nargs="*", choices=sorted(SCENES), default=None)
    args = parser.parse_args(argv)
    keys = args.only or list(SCENES)
    start = time.perf_counter()
    for key in keys:
        t0 = time.perf_counter()
        out = args.out / f"{key}.blend"
        save_scene_blend(key, out)
        objs = sum(1 for o in bpy.data.objects if o.type == "MESH")
        print(f"{key:16s} {objs:4d} objects {out.stat().st_size / 1024:7.1f} KiB "
              f"{time.perf_counter() - t0:5.2f} s", flush=True)
    print(f"built {len(keys)} scenes in {time.perf_counter() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
