"""Camera trajectories: the per-frame poses and intrinsics of a shot, and the trajectory JSON format.

Trajectory JSON (for `.glb`/`.obj` scenes), documented in the README::

    {
      "axes": "opencv",          # camera axes of the matrices: "opencv" (x right, y down, z forward, default)
                                 #   or "opengl" (x right, y up, looking down -z; Blender's camera axes)
      "world_up": "y",           # world frame of the poses: "y" = the mesh file's own Y-up frame (glTF/OBJ,
                                 #   default) or "z" = Blender's Z-up frame after import
      "width": 720, "height": 480,   # image size the intrinsics refer to
      "intrinsics": {"fx": 600, "fy": 600, "cx": 360, "cy": 240},   # or "fov_x_deg": 60
      "camera_to_world": [[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], ...]   # one 4x4 per frame
    }
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vf3d.common.errors import VF3DInputError, read_json_object
from vf3d.common.limits import check_frame_count
from vf3d.preprocess.camera import BLENDER_TO_OPENCV_AXES, Y_UP_TO_Z_UP, Intrinsics, split_segments


@dataclass(frozen=True)
class Trajectory:
    """A shot's camera: constant intrinsics and per-frame OpenCV camera-to-world poses (Blender world, Z up)."""

    intrinsics: Intrinsics
    c2w: np.ndarray  # (F, 4, 4) float64
    source_frames: tuple[int, ...]  # frame numbers in the source (Blender frames, or JSON indices)

    @property
    def num_frames(self) -> int:
        return len(self.c2w)

    def segments(self) -> list[tuple[int, int]]:
        return split_segments(self.num_frames)


def check_moving(c2w: np.ndarray, where: str | Path) -> None:
    """Reject one-frame and static trajectories: there is nothing to in-between."""
    if len(c2w) < 2:
        raise VF3DInputError(where, f"the camera trajectory has {len(c2w)} frame(s); at least 2 are needed")
    if np.allclose(c2w, c2w[:1], atol=1e-7):
        raise VF3DInputError(where, f"the camera does not move: all {len(c2w)} frames have the same pose")


def is_number(value: object) -> bool:
    """A JSON number: int or float, not a bool (True is 1 to Python) and not a numeric string."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_finite_camera(c2w: np.ndarray, intrinsics: Intrinsics, where: str | Path, frame: int) -> None:
    """Refuse a pose or intrinsics with a NaN or infinite entry (an animation curve gone wrong), naming the
    frame: they would otherwise reach meta.json and every flow as NaN."""
    m = np.asarray(c2w, dtype=np.float64)
    if not np.isfinite(m).all():
        row, col = np.argwhere(~np.isfinite(m))[0]
        raise VF3DInputError(where, f"frame {frame}: the camera pose has a non-finite entry ({m[row, col]} at row "
                                    f"{row}, column {col}); check the camera's animation at that frame")
    values = {k: getattr(intrinsics, k) for k in ("fx", "fy", "cx", "cy")}
    bad = [f"{k}={v}" for k, v in values.items() if not np.isfinite(v)]
    if bad:
        raise VF3DInputError(where, f"frame {frame}: the camera intrinsics are non-finite ({', '.join(bad)}); "
                                    "check the camera's lens, sensor and shift at that frame")


def _matrix(value: object, where: Path, index: int) -> np.ndarray:
    rows = value if isinstance(value, list) and all(isinstance(r, list) for r in value) else None
    if rows is None or len(rows) != 4 or any(len(r) != 4 for r in rows):
        got = f"rows of {[len(r) for r in rows]} entries" if rows is not None else type(value).__name__
        raise VF3DInputError(where, f"camera_to_world[{index}] (frame {index}) must be a 4x4 matrix (4 lists of 4 "
                                    f"numbers), got {got}")
    for row, entries in enumerate(rows):
        for col, entry in enumerate(entries):
            if not is_number(entry):
                raise VF3DInputError(where, f"camera_to_world[{index}] (frame {index}) row {row}, column {col} is "
                                            f"{entry!r} ({type(entry).__name__}), not a number")
    m = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(m).all():
        row, col = np.argwhere(~np.isfinite(m))[0]
        raise VF3DInputError(where, f"camera_to_world[{index}] has a non-finite entry ({m[row, col]} at row {row}, "
                                    f"column {col})")
    if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6):
        raise VF3DInputError(where, f"camera_to_world[{index}] last row must be [0, 0, 0, 1], got {m[3].tolist()}")
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
        raise VF3DInputError(where, f"camera_to_world[{index}] rotation is not orthonormal (scale or mirroring)")
    return m


def _intrinsics(data: dict, where: Path) -> Intrinsics:
    width, height = data.get("width"), data.get("height")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height)):
        raise VF3DInputError(where, "'width' and 'height' (the image size the intrinsics refer to) are required "
                                    f"integers, got {width!r}x{height!r}")
    if width <= 0 or height <= 0:
        raise VF3DInputError(where, f"image size must be positive, got {width}x{height}")
    has_k, has_fov = "intrinsics" in data, "fov_x_deg" in data
    if has_k == has_fov:
        raise VF3DInputError(where, "give exactly one of 'intrinsics' {fx, fy, cx, cy} or 'fov_x_deg'")
    if has_fov:
        fov = data["fov_x_deg"]
        if isinstance(fov, bool) or not isinstance(fov, (int, float)) or not 0 < fov < 180:
            raise VF3DInputError(where, f"'fov_x_deg' must be a number in (0, 180), got {fov!r}")
        return Intrinsics.from_fov_x(width, height, float(fov))
    k = data["intrinsics"]
    if not isinstance(k, dict) or not all(name in k for name in ("fx", "fy", "cx", "cy")):
        raise VF3DInputError(where, "'intrinsics' must have numeric fx, fy, cx, cy")
    for name in ("fx", "fy", "cx", "cy"):
        if not is_number(k[name]) or not np.isfinite(k[name]):
            raise VF3DInputError(where, f"'intrinsics' {name} must be a finite number, got {k[name]!r}")
    fx, fy, cx, cy = (float(k[name]) for name in ("fx", "fy", "cx", "cy"))
    if fx <= 0 or fy <= 0:
        raise VF3DInputError(where, f"focal lengths must be positive, got fx={fx}, fy={fy}")
    if abs(fx - fy) > 1e-3 * fx:
        raise VF3DInputError(where, f"non-square pixels (fx={fx}, fy={fy}) are not supported")
    return Intrinsics(width, height, fx, fy, cx, cy)


def load_trajectory_json(path: str | Path) -> Trajectory:
    """Read and validate a trajectory JSON file (format in the module docstring)."""
    path = Path(path)
    data = read_json_object(path, "trajectory")
    axes, world_up = data.get("axes", "opencv"), data.get("world_up", "y")
    if axes not in ("opencv", "opengl"):
        raise VF3DInputError(path, f"'axes' must be 'opencv' or 'opengl', got {axes!r}")
    if world_up not in ("y", "z"):
        raise VF3DInputError(path, f"'world_up' must be 'y' or 'z', got {world_up!r}")
    poses = data.get("camera_to_world")
    if not isinstance(poses, list):
        raise VF3DInputError(path, "'camera_to_world' must be a list of 4x4 matrices, one per frame")
    check_frame_count(path, len(poses))
    c2w = np.stack([_matrix(m, path, i) for i, m in enumerate(poses)]) if poses else np.zeros((0, 4, 4))
    check_moving(c2w, path)
    if axes == "opengl":
        c2w = c2w @ BLENDER_TO_OPENCV_AXES
    if world_up == "y":
        c2w = Y_UP_TO_Z_UP @ c2w
    return Trajectory(_intrinsics(data, path), c2w, tuple(range(len(c2w))))
