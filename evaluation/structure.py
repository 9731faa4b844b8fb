"""Structural fidelity, PSNR-D (paper Sec. 4.2, Table 2).

PSNR between the depth rendered from the input 3D model and a monocular depth estimate of each generated
frame, both histogram-equalised first "to compensate for nonlinear errors and scene-dependent scale
variations inherent in monocular depth estimation".

- Orientation: monocular estimators (DPT/MiDaS, Depth Anything) give relative inverse depth (larger = nearer;
  `vf3d.models.depth_estimator.estimate_depth` inverts metric models), so the rendered planar depth is inverted too and
  both maps read "near = high". Equalising depth instead would give the reversed ranks and compare them
  with the estimate's, a nonsense score.
- Equalisation (`histogram_equalise`): each value becomes its rank among the frame's valid pixels, mapped to
  [0, 1] (ties share their average rank), the exact histogram equalisation of the empirical distribution.
  Ranks are unchanged by any strictly increasing map, so the score does not depend on the estimate's scale,
  shift or any monotone distortion.
- Background (`PSNR_D_BACKGROUND`): the paper does not say. `exclude` (default, our reading): only pixels with
  finite positive rendered depth are scored, so structure invented where the geometry is empty is never
  penalised. `farthest`: background pixels are scored too, as the farthest depth (inverse depth 0, one tied
  rank below every surface), so an estimate that puts structure in the sky loses.
- PSNR with data range 1 per frame (+inf where the equalised maps agree), then the mean over the frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from evaluation.pseudo_gt import masked_psnr


def histogram_equalise(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rank-based histogram equalisation of the values of `x` where `mask` is True.

    Returns float64 of `x`'s shape: (average rank among the masked values) / (count - 1), in [0, 1]; a single
    or all-equal set of values gives 0.5; 0 outside the mask.
    """
    x, mask = np.asarray(x), np.asarray(mask, dtype=bool)
    out = np.zeros(x.shape, np.float64)
    values = x[mask]
    if values.size == 0:
        return out
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts + 1) / 2.0  # 0-based mean rank of each group of equal values
    out[mask] = average_rank[inverse.ravel()] / (values.size - 1) if values.size > 1 else 0.5
    return out


PSNR_D_BACKGROUND = ("exclude", "farthest")


def psnr_d_from_disparity(disparity: Sequence[np.ndarray] | np.ndarray, gt_depth: np.ndarray,
                          background: str = "exclude") -> float:
    """PSNR-D from monocular estimates: `disparity` (F, H, W) relative inverse depth (larger = nearer),
    `gt_depth` (F, H, W) rendered planar depth (inf = background), `background` one of `PSNR_D_BACKGROUND`.
    Frames without geometry are skipped; NaN when none has any."""
    if background not in PSNR_D_BACKGROUND:
        raise ValueError(f"background={background!r}: expected one of {', '.join(PSNR_D_BACKGROUND)}")
    disparity, gt_depth = np.asarray(disparity, dtype=np.float64), np.asarray(gt_depth, dtype=np.float64)
    if disparity.shape != gt_depth.shape or gt_depth.ndim != 3:
        raise ValueError(f"disparity {disparity.shape} and gt_depth {gt_depth.shape}: expected equal (F, H, W) shapes")
    scores = []
    for estimate, depth in zip(disparity, gt_depth):
        valid = np.isfinite(depth) & (depth > 0)
        if not valid.any():
            continue
        with np.errstate(divide="ignore"):
            gt_inverse = np.where(valid, 1.0 / depth, 0.0)  # background: the farthest (scored with `farthest`)
        scored = valid if background == "exclude" else np.ones_like(valid)
        scores.append(masked_psnr(torch.from_numpy(histogram_equalise(estimate, scored)),
                                  torch.from_numpy(histogram_equalise(gt_inverse, scored)), torch.from_numpy(scored)))
    return float(np.mean(scores)) if scores else float("nan")


def psnr_d(frames: Sequence[np.ndarray] | np.ndarray, gt_depth: np.ndarray, depth_model: torch.nn.Module,
           processor, background: str = "exclude") -> float:
    """PSNR-D of a generated video (module docstring).

    Args:
        frames: F generated frames, (H, W, 3) uint8.
        gt_depth: (F, H, W) planar depth rendered for the same cameras (guidance's depth.npy).
        depth_model, processor: a transformers depth estimator and its image processor
            (`MetricModels.depth_model`, `.depth_processor`); the estimate is resized back to (H, W).
        background: `exclude` (default) or `farthest` (module docstring).
    """
    from vf3d.models.depth_estimator import estimate_depth  # pulls in the diffusers stack: only when used

    frames = list(frames)
    if len(frames) != len(gt_depth) or frames[0].shape[:2] != np.asarray(gt_depth).shape[1:]:
        raise ValueError(f"frames: {len(frames)} frames of {frames[0].shape[:2]} do not match gt_depth "
                         f"{np.asarray(gt_depth).shape} (F, H, W)")
    return psnr_d_from_disparity(estimate_depth(frames, depth_model, processor), gt_depth, background)
