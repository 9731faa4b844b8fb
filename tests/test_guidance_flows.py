"""Flow exactness against analytic answers, on shots rendered by real Blender."""

import json
import math

import blender_scenes
import numpy as np

from vf3d.common.warp import pixel_centres
from vf3d.preprocess.camera import Intrinsics
from vf3d.preprocess.flows import reprojection_flow, reprojection_flow_reference
from vf3d.preprocess.guidance import preprocess

W, H = 96, 64


def load(out):
    meta = json.loads((out / "meta.json").read_text())
    k = meta["intrinsics"]
    intr = Intrinsics(meta["width"], meta["height"], k["fx"], k["fy"], k["cx"], k["cy"])
    return meta, intr, np.load(out / "depth.npy"), np.load(out / "flows" / "seg000.npz")


def test_sideways_dolly_before_fronto_parallel_plane(shots):
    step, distance = 0.1, 10.0
    out = shots / "dolly_out"
    preprocess(blender_scenes.dolly_over_plane(shots / "dolly.blend", 3, step, distance), out, W, H)
    meta, intr, depth, flows = load(out)
    # Planar depth of a fronto-parallel plane is the distance everywhere.
    np.testing.assert_allclose(depth, distance, rtol=1e-5)
    valid = flows["forward_valid"]
    expected = np.array([-intr.fx * step / distance, 0.0])
    error = np.linalg.norm(flows["forward"] - expected, axis=-1)[valid]
    assert error.max() < 0.05, error.max()
    # Everything except the last columns (leaving the image) stays visible.
    shift = int(math.ceil(intr.fx * step / distance))
    assert valid[:, :, shift + 1:].all()
    assert not valid[:, :, :shift - 1].any()
    # f_N->0 is the opposite shift over the whole segment.
    back = flows["end_to_start"][flows["end_to_start_valid"]]
    np.testing.assert_allclose(back, -2 * expected + 0 * back, atol=0.05)


def test_pure_pan_is_the_homography_K_R_Kinv(shots):
    out = shots / "pan_out"
    preprocess(blender_scenes.pan_in_room(shots / "pan.blend", 2, degrees_per_frame=3.0), out, W, H)
    meta, intr, depth, flows = load(out)
    c2w = np.array(meta["camera_to_world"])
    np.testing.assert_allclose(c2w[0][:3, 3], c2w[1][:3, 3], atol=1e-9)  # rotation only
    relative = np.linalg.inv(c2w[1])[:3, :3] @ c2w[0][:3, :3]  # camera 0 -> camera 1 rotation
    homography = intr.K @ relative @ np.linalg.inv(intr.K)
    p = pixel_centres(H, W)
    ph = np.concatenate([p, np.ones((H, W, 1))], -1) @ homography.T
    expected = ph[..., :2] / ph[..., 2:] - p
    valid = flows["forward_valid"][0]
    assert valid.mean() > 0.9
    error = np.linalg.norm(flows["forward"][0] - expected, axis=-1)[valid]
    assert error.max() < 0.05, error.max()


def _ray_hits_box(origin, targets, lo, hi):
    """Slab test: does the open segment origin->target pass through the axis-aligned box [lo, hi]?"""
    d = targets - origin
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - origin) / d, (hi - origin) / d
    t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
    return (t_near <= t_far) & (t_far > 1e-6) & (t_near < 1 - 1e-6)


def test_occluded_pixels_are_invalid(shots):
    out = shots / "occ_out"
    distance = 10.0
    preprocess(blender_scenes.dolly_over_plane(shots / "occ.blend", 2, step=1.0, distance=distance, occluder=True),
               out, W, H)
    meta, intr, depth, flows = load(out)
    c2w = np.array(meta["camera_to_world"])
    on_plane = np.isclose(depth[0], distance, rtol=1e-4)
    # Back-project frame 0's plane pixels, then ask analytically whether the box hides them from camera 1.
    rays = np.concatenate([pixel_centres(H, W), np.ones((H, W, 1))], -1) @ np.linalg.inv(intr.K).T
    points = (rays * depth[0][..., None]) @ c2w[0][:3, :3].T + c2w[0][:3, 3]
    lo, hi = np.array([-0.5, -1.0, -distance]), np.array([1.5, 1.0, -distance + 4.0])
    hidden = on_plane & _ray_hits_box(c2w[1][:3, 3], points, lo, hi)
    # Pixel-centre sampling cannot resolve an outline finer than a pixel: a box shrunk by about
    # 1.5 px at its distance marks the points that are hidden beyond doubt.
    margin = 1.5 * (distance - 4.0) / intr.fx
    hidden_deep = on_plane & _ray_hits_box(c2w[1][:3, 3], points, lo + margin, hi - margin)
    valid = flows["forward_valid"][0]
    assert hidden_deep.sum() > 20
    assert not valid[hidden_deep].any()
    assert valid[hidden].sum() <= 0.1 * hidden.sum()
    # Visible plane pixels landing well inside frame 1 stay valid (away from the box outline).
    target = pixel_centres(H, W) + flows["forward"][0]
    inside = (target[..., 0] > 2) & (target[..., 0] < W - 2) & (target[..., 1] > 2) & (target[..., 1] < H - 2)
    from scipy import ndimage
    near_outline = ndimage.binary_dilation(hidden, iterations=2)
    clear = on_plane & ~hidden & inside & ~near_outline
    assert valid[clear].mean() > 0.99


def test_vectorised_flow_matches_the_reference_twin():
    rng = np.random.default_rng(0)
    h, w = 12, 16
    intr = Intrinsics(w, h, 14.0, 14.0, 8.3, 5.9)
    depth_i = rng.uniform(2.0, 6.0, (h, w))
    background = rng.random((h, w)) < 0.1
    rays = np.concatenate([pixel_centres(h, w), np.ones((h, w, 1))], -1) @ np.linalg.inv(intr.K).T
    position = (rays * depth_i[..., None]).astype(np.float32)
    angle = 0.05
    c2w_j = np.eye(4)
    c2w_j[:3, :3] = [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]
    c2w_j[:3, 3] = [0.3, -0.1, 0.2]
    depth_j = rng.uniform(2.0, 6.0, (h, w))
    depth_j[rng.random((h, w)) < 0.1] = np.inf
    fast = reprojection_flow(position, background, c2w_j, intr, depth_j, tolerance=0.3)
    slow = reprojection_flow_reference(position, background, c2w_j, intr, depth_j, tolerance=0.3)
    np.testing.assert_allclose(fast[0], slow[0], atol=1e-4)
    np.testing.assert_array_equal(fast[1], slow[1])
    assert 0 < fast[1].sum() < (~background).sum()
