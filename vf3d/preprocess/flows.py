"""Optical flow by reprojection (paper Sec. 3.1), with valid masks.

`f_i->j` at pixel p of view i is (dx, dy) in pixels from p to where p's 3D point appears in view j
(x right, y down, pixel centres at +0.5). The paper backprojects a coordinate-encoded image of view j
onto the mesh and renders it from view i; projecting view i's world-position pass with camera j and
testing visibility against view j's depth is the same correspondence, computed exactly.

A pixel is valid when it shows geometry in view i, its point lies in front of camera j, inside
view j's image, and is not occluded there. Visibility: on a plane 1/z is affine in the image, so the
point's depth must lie within the range of view j's depths at the 4 pixel centres around its
projection (widened by a relative tolerance); an occluder makes all four nearer.
Invalid pixels keep their geometric flow where it is defined (behind-camera and background: 0).
"""

from __future__ import annotations

import numpy as np

from vf3d.common.warp import pixel_centres
from vf3d.preprocess.camera import Intrinsics, project

DEPTH_TOLERANCE = 0.01
"""Relative depth slack of the visibility test (1% of the depth)."""


def _neighbour_depths(depth_j: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Depth of view j at the 4 pixel centres around each projection: (H, W, 4), NaN outside the image."""
    h, w = depth_j.shape
    x0 = np.floor(uv[..., 0] - 0.5).astype(np.int64)
    y0 = np.floor(uv[..., 1] - 0.5).astype(np.int64)
    flat = depth_j.ravel()
    out = np.empty(uv.shape[:2] + (4,), depth_j.dtype)
    for k, (dx, dy) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        x, y = x0 + dx, y0 + dy
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        gathered = flat[np.clip(y, 0, h - 1) * w + np.clip(x, 0, w - 1)]
        out[..., k] = np.where(inside, gathered, np.nan)
    return out


def reprojection_flow(
    position_i: np.ndarray,
    background_i: np.ndarray,
    c2w_j: np.ndarray,
    intrinsics: Intrinsics,
    depth_j: np.ndarray,
    tolerance: float = DEPTH_TOLERANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Flow f_i->j and its valid mask.

    Args:
        position_i: (H, W, 3) world position of each pixel of view i.
        background_i: (H, W) bool, True where view i sees no geometry.
        c2w_j: (4, 4) OpenCV camera-to-world pose of view j.
        intrinsics: shared pinhole intrinsics of both views.
        depth_j: (H, W) planar depth of view j (inf = background).
        tolerance: relative depth slack of the occlusion test.

    Returns:
        flow (H, W, 2) float32 in pixels, valid (H, W) bool.
    """
    h, w = background_i.shape
    centres = pixel_centres(h, w)
    # float32 keeps projections within ~1e-4 px at these image sizes, at half the memory traffic.
    uv, z = project(position_i.astype(np.float32), c2w_j.astype(np.float32), intrinsics)
    in_front = ~background_i & (z > 1e-9)
    uv = np.where(in_front[..., None], uv, centres)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    near = _neighbour_depths(np.where(np.isfinite(depth_j), depth_j, np.nan).astype(np.float32), uv)
    lo, hi = np.fmin.reduce(near, axis=-1), np.fmax.reduce(near, axis=-1)  # NaN only if no surface around
    with np.errstate(invalid="ignore"):
        visible = (z <= hi * (1 + tolerance)) & (z >= lo * (1 - tolerance))
    valid = in_front & inside & visible
    flow = (uv - centres).astype(np.float32)
    return flow, valid


def backproject(depth: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """World points of a planar depth map: (H, W, 3) float64 and the background mask (H, W) (non-finite or
    non-positive depth; its points are 0). `c2w`: (4, 4) OpenCV camera-to-world."""
    background = ~(np.isfinite(depth) & (depth > 0))
    z = np.where(background, 0.0, depth).astype(np.float64)
    centres = pixel_centres(*depth.shape).astype(np.float64)
    camera = np.stack([(centres[..., 0] - intrinsics.cx) / intrinsics.fx * z,
                       (centres[..., 1] - intrinsics.cy) / intrinsics.fy * z, z], axis=-1)
    c2w = np.asarray(c2w, dtype=np.float64)
    return camera @ c2w[:3, :3].T + c2w[:3, 3], background


def depth_flow(depth: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics, i: int, j: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """The exact mesh flow f_i->j between two frames of a shot from its planar depth (F, H, W) and poses
    (F, 4, 4): frame i's pixels back-projected and `reprojection_flow` into frame j (the flows guidance stores)."""
    points, background = backproject(depth[i], c2w[i], intrinsics)
    return reprojection_flow(points, background, c2w[j], intrinsics, depth[j])


def reprojection_flow_reference(
    position_i: np.ndarray,
    background_i: np.ndarray,
    c2w_j: np.ndarray,
    intrinsics: Intrinsics,
    depth_j: np.ndarray,
    tolerance: float = DEPTH_TOLERANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Slow per-pixel twin of `reprojection_flow`, written for obviousness; used by the tests."""
    h, w = background_i.shape
    w2c = np.linalg.inv(c2w_j)
    flow = np.zeros((h, w, 2), np.float32)
    valid = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if background_i[y, x]:
                continue
            cam = w2c[:3, :3] @ position_i[y, x].astype(np.float64) + w2c[:3, 3]
            if cam[2] <= 1e-9:
                continue
            u = intrinsics.fx * cam[0] / cam[2] + intrinsics.cx
            v = intrinsics.fy * cam[1] / cam[2] + intrinsics.cy
            flow[y, x] = (u - (x + 0.5), v - (y + 0.5))
            if not (0 <= u < w and 0 <= v < h):
                continue
            x0, y0 = int(np.floor(u - 0.5)), int(np.floor(v - 0.5))
            depths = [depth_j[yy, xx] for yy in (y0, y0 + 1) for xx in (x0, x0 + 1)
                      if 0 <= xx < w and 0 <= yy < h and np.isfinite(depth_j[yy, xx])]
            if depths and min(depths) * (1 - tolerance) <= cam[2] <= max(depths) * (1 + tolerance):
                valid[y, x] = True
    return flow, valid
