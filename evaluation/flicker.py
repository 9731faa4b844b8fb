"""Geometric flicker: how much consecutive generated frames disagree where the geometry says they must agree.

The failure the paper's Fig. 13 shows (SAG alone: "severe flickering") has no number in Table 2; the VBench
consistencies compare global features and miss it. With the exact mesh flows every frame pair is a known
correspondence, so flicker is a warping error [Lai et al. 2018] with ground-truth flow instead of estimated:

- for each pair (i, i+1): frame i+1 warped back into frame i along f_i->i+1 (`vf3d.preprocess.flows.depth_flow`,
  the flows guidance stores; bilinear, rounded to 8 bits), compared with frame i on the pixels that are
  valid (geometry in frame i, in view and unoccluded in frame i+1);
- per pair: mean absolute error in 8-bit levels (0-255) over the valid pixels and channels;
- per video: `flicker_mae`, the mean over pairs that have valid pixels, and `flicker_psnr`, the PSNR (data range
  1) of all valid pixels of all pairs pooled (+inf only when every pair agrees exactly).
A video that is an exact re-projection of one texture scores 0 (and +inf); independent per-frame noise, light
changes or texture that swims along the surface raise it. View-dependent effects (specularities) also count,
so a perfect video of a glossy scene is not 0: compare methods on the same scenes, not against zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evaluation.features import frame_array
from vf3d.baselines.anchor_warp import check_geometry
from vf3d.common.warp import warp_image
from vf3d.preprocess.camera import Intrinsics
from vf3d.preprocess.flows import depth_flow


def geometric_flicker(frames: Sequence[np.ndarray] | np.ndarray, depth: np.ndarray, c2w: np.ndarray,
                      intrinsics: Intrinsics) -> dict:
    """Warping error of consecutive frames along the exact mesh flows (module docstring).

    Args:
        frames: F frames (H, W, 3) uint8, frame i seen by camera `c2w[i]`.
        depth: (F, H, W) planar depth (inf = background); c2w: (F, 4, 4) poses; intrinsics of (H, W).

    Returns:
        "flicker_mae" (levels, NaN without any valid pair), "flicker_psnr" (dB), "flicker_per_pair": MAE per
        pair (i, i+1) or None where no pixel is valid, "flicker_valid_fraction": mean valid fraction.
    """
    video, depth, c2w = frame_array(frames), np.asarray(depth), np.asarray(c2w)
    check_geometry(depth, c2w, intrinsics)
    if video.shape[:3] != depth.shape:
        raise ValueError(f"frames: {video.shape[0]} frames of {video.shape[2]}x{video.shape[1]} do not match "
                         f"depth's {depth.shape[0]} frames of {depth.shape[2]}x{depth.shape[1]}")
    per_pair: list[float | None] = []
    squared, count, valid_fraction = 0.0, 0, []
    for i in range(len(video) - 1):
        flow, valid = depth_flow(depth, c2w, intrinsics, i, i + 1)
        valid_fraction.append(float(valid.mean()))
        if not valid.any():
            per_pair.append(None)
            continue
        warped, _ = warp_image(video[i + 1], flow, valid)
        difference = video[i][valid].astype(np.float64) - warped[valid]
        per_pair.append(float(np.abs(difference).mean()))
        squared += float(((difference / 255.0) ** 2).sum())
        count += difference.size
    scored = [v for v in per_pair if v is not None]
    mse = squared / count if count else math.nan
    return {"flicker_mae": float(np.mean(scored)) if scored else math.nan,
            "flicker_psnr": math.nan if not count else (math.inf if mse == 0 else -10.0 * math.log10(mse)),
            "flicker_per_pair": per_pair,
            "flicker_valid_fraction": float(np.mean(valid_fraction)) if valid_fraction else math.nan}
