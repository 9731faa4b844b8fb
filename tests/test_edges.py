"""Edge maps: silhouettes and the intersection line of two interpenetrating boxes, from real renders."""

import json

import blender_scenes
import numpy as np
from PIL import Image

from vf3d.preprocess.camera import Intrinsics, project
from vf3d.preprocess.edges import EDGE_TYPES, edge_types
from vf3d.preprocess.guidance import preprocess
from vf3d.preprocess.passes import GBuffer

W, H = 240, 160


def _near_edge(edges: np.ndarray, pixels: np.ndarray, radius: int = 1) -> np.ndarray:
    hits = []
    for u, v in pixels:
        x, y = int(u), int(v)
        window = edges[max(y - radius, 0): y + radius + 1, max(x - radius, 0): x + radius + 1]
        hits.append(window.any())
    return np.array(hits)


def test_edges_on_silhouettes_and_on_the_intersection_line(shots):
    out = shots / "boxes_out"
    preprocess(blender_scenes.interpenetrating_boxes(shots / "boxes.blend"), out, W, H)
    meta = json.loads((out / "meta.json").read_text())
    k = meta["intrinsics"]
    intr = Intrinsics(W, H, k["fx"], k["fy"], k["cx"], k["cy"])
    c2w = np.array(meta["camera_to_world"][0])
    edges = np.array(Image.open(out / "edges" / "00000.png"))
    assert edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 255}
    depth = np.load(out / "depth.npy")[0]
    # Silhouette: every geometry pixel bordering the background is an edge.
    geometry = np.isfinite(depth)
    border = geometry & ~np.pad(geometry, 1, constant_values=False)[2:, 1:-1] | geometry & ~np.pad(
        geometry, 1, constant_values=False)[1:-1, 2:]
    border &= geometry
    assert border.sum() > 50
    assert (edges[border] == 255).mean() > 0.95
    # Intersection: B's faces y=-0.5 and z=+0.5 pierce A's face x=1 along two visible segments.
    t = np.linspace(-0.45, 0.45, 30)
    segment_front = np.stack([np.ones_like(t), np.full_like(t, -0.5), t], -1)
    segment_top = np.stack([np.ones_like(t), t, np.full_like(t, 0.5)], -1)
    for segment in (segment_front, segment_top):
        pixels, _ = project(segment, c2w, intr)
        assert _near_edge(edges > 0, pixels).mean() > 0.95
    # Far from any edge (the middle of A's big +x face, away from B) there is none.
    face_point, _ = project(np.array([[1.0, 0.7, -0.7]]), c2w, intr)
    assert not _near_edge(edges > 0, face_point, radius=2).any()


def _synthetic(depth, normal, obj, mat):
    h, w = depth.shape
    background = ~np.isfinite(depth)
    ys, xs = np.mgrid[0:h, 0:w]
    position = np.stack([xs * 0.01 * np.where(background, 0, depth), ys * 0.0, np.where(background, 0, depth)], -1)
    return GBuffer(position.astype(np.float32), normal.astype(np.float32), obj, mat, background)


def test_edge_types_are_classified():
    h, w = 6, 8
    depth = np.full((h, w), 5.0)
    normal = np.zeros((h, w, 3))
    normal[..., 2] = -1
    obj = np.ones((h, w), np.int32)
    mat = np.ones((h, w), np.int32)
    # Right half: another object, same plane, bent normals -> intersection; a material change on the left.
    obj[:, 4:] = 2
    normal[:, 4:] = [0.0, 0.7071, -0.7071]
    mat[3:, :4] = 2
    g = _synthetic(depth, normal, obj, mat)
    types = edge_types(g, depth)
    assert set(types) == set(EDGE_TYPES)
    assert types["intersection"][:, 3].all() and types["intersection"].sum() == h
    assert types["object_boundary"][2, :4].all()
    assert not types["silhouette"].any() and not types["crease"].any()


def test_a_bend_sharper_than_the_crease_angle_is_a_crease_and_a_gentle_one_is_not():
    h, w = 6, 8
    depth = np.full((h, w), 5.0)
    obj, mat = np.ones((h, w), np.int32), np.ones((h, w), np.int32)
    for degrees, expect in ((60.0, True), (30.0, False)):  # EdgeSettings: creases above 40 degrees
        normal = np.zeros((h, w, 3))
        normal[..., 2] = -1
        t = np.radians(degrees)
        normal[:, 4:] = [0.0, np.sin(t), -np.cos(t)]  # one object, one continuous surface, bent at column 4
        types = edge_types(_synthetic(depth, normal, obj, mat), depth)
        assert types["crease"][:, 3:5].any(axis=1).all() == expect
        assert types["crease"][:, :2].sum() == 0 and types["crease"][:, 6:].sum() == 0
        assert not types["intersection"].any() and not types["object_boundary"].any()
