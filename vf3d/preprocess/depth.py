"""Planar depth: the camera-space z of each pixel's surface point (scene units, background = inf)."""

from __future__ import annotations

import numpy as np


def planar_depth(position: np.ndarray, background: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Depth along the optical axis of the OpenCV camera `c2w`.

    position: (H, W, 3) world points; background: (H, W) bool. Returns (H, W) float32.
    """
    w2c = np.linalg.inv(c2w)
    z = position.astype(np.float64) @ w2c[2, :3] + w2c[2, 3]
    return np.where(background, np.inf, z).astype(np.float32)
