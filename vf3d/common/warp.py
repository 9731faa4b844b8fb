"""Backward warping along reprojection flows: sample view j at p + f_i->j to see view j from view i."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pixel_centres(height: int, width: int) -> np.ndarray:
    """(H, W, 2) pixel-centre coordinates (x + 0.5, y + 0.5)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    return np.stack([xs, ys], axis=-1)


def warp_image(image_j: np.ndarray, flow_i_to_j: np.ndarray, valid: np.ndarray, mode: str = "bilinear"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Warp an image of view j into view i.

    Args:
        image_j: (H, W, C) uint8 image of view j.
        flow_i_to_j: (H, W, 2) flow f_i->j in pixels (vf3d convention).
        valid: (H, W) bool, pixels of view i whose point is visible in view j.
        mode: "bilinear", or "nearest" (the pixel containing the sample point).

    Returns:
        warped (H, W, C) uint8 (black where invalid) and the valid mask.
    """
    h, w = valid.shape
    target = pixel_centres(h, w) + flow_i_to_j  # where to sample view j, pixel-centre coordinates
    grid = torch.from_numpy(np.stack([target[..., 0] / w * 2 - 1, target[..., 1] / h * 2 - 1], -1)).float()
    source = torch.tensor(image_j, dtype=torch.float32).permute(2, 0, 1)[None]  # a copy: inputs may be read-only
    sampled = F.grid_sample(source, grid[None], mode=mode, padding_mode="border", align_corners=False)
    warped = sampled[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
    return np.where(valid[..., None], warped, 0).astype(np.uint8), valid
