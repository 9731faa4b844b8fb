"""Pinhole cameras, axis conventions and trajectory segments.

Conventions (DESIGN.md): camera-to-world 4x4 matrices in OpenCV axes (x right, y down, z forward),
pixel centres at +0.5, world = the Blender scene's frame (Z up, scene units).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SEGMENT_INTERVALS = 45
"""N in the paper: a segment spans frames 0..N (46 frames); consecutive segments share a frame."""

# Blender/OpenGL camera axes (x right, y up, looking down -z) <-> OpenCV axes (x right, y down, +z).
BLENDER_TO_OPENCV_AXES = np.diag([1.0, -1.0, -1.0, 1.0])
# glTF and OBJ files are Y-up; Blender's importers rotate them +90 degrees about X into Z-up.
Y_UP_TO_Z_UP = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of `width` x `height`."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled_to(self, width: int, height: int) -> "Intrinsics":
        sx, sy = width / self.width, height / self.height
        return Intrinsics(width, height, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_fov_x(cls, width: int, height: int, fov_x_deg: float) -> "Intrinsics":
        f = float(0.5 * width / np.tan(np.radians(fov_x_deg) / 2))  # a Python float: it goes into JSON and metadata
        return cls(width, height, f, f, width / 2, height / 2)


def strip_scale(matrix: np.ndarray) -> np.ndarray:
    """Remove scale (and shear) from a rigid 4x4 transform, keeping rotation and translation.

    Camera objects in real .blend files can carry a scale (0.6 seen); extrinsics must be rigid.
    """
    out = np.array(matrix, dtype=np.float64)
    u, _, vt = np.linalg.svd(out[:3, :3])
    rot = u @ vt
    if np.linalg.det(rot) < 0:  # a mirrored camera: keep a proper rotation
        u[:, -1] *= -1
        rot = u @ vt
    out[:3, :3] = rot
    out[3] = [0, 0, 0, 1]
    return out


def blender_to_opencv_c2w(c2w_blender: np.ndarray) -> np.ndarray:
    return strip_scale(c2w_blender) @ BLENDER_TO_OPENCV_AXES


def opencv_to_blender_c2w(c2w_opencv: np.ndarray) -> np.ndarray:
    return np.asarray(c2w_opencv, dtype=np.float64) @ BLENDER_TO_OPENCV_AXES


def project(points_world: np.ndarray, c2w: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Project world points (..., 3) with an OpenCV camera-to-world pose.

    Returns pixel coordinates (..., 2) in the +0.5-centre convention and camera-space depth z (...).
    """
    w2c = np.linalg.inv(c2w.astype(np.float64)).astype(points_world.dtype)
    cam = points_world @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intr.fx * cam[..., 0] / z + intr.cx
        v = intr.fy * cam[..., 1] / z + intr.cy
    return np.stack([u, v], axis=-1), z


def split_segments(num_frames: int, intervals: int = SEGMENT_INTERVALS) -> list[tuple[int, int]]:
    """Cut frames 0..num_frames-1 into inclusive (first, last) segments of `intervals` steps.

    The last frame of a segment is the first of the next; the final segment may be shorter.
    """
    if num_frames < 2:
        raise ValueError(f"a trajectory needs at least 2 frames, got {num_frames}")
    segments, start = [], 0
    while start < num_frames - 1:
        end = min(start + intervals, num_frames - 1)
        segments.append((start, end))
        start = end
    return segments
