"""Visual fidelity on pseudo ground truth (paper Sec. 4.2, Table 2: PSNR, SSIM, LPIPS).

No ground-truth in-between frames exist, so the anchors v_0 and v_N are warped into each frame i with the
geometry's exact correspondences, composited, and the metrics are computed on the known region only.

- Flows f_i->anchor: `vf3d.preprocess.flows.depth_flow`: frame i's planar depth back-projected with its camera
  and projected into the anchor's camera with the occlusion test (valid = seen there); `vf3d.common.warp.warp_image`
  samples the anchor (bilinear).
- Composite: frame i uses the anchors that bracket it (the last at or before i, the first at or after;
  the segment's v_0 and v_N when a longer video's anchors are all given); each pixel takes the one nearer
  in time among those that see it (a tie goes to the earlier). The nearer anchor's viewpoint is closer to
  frame i, so its warp resamples less and its view-dependent appearance differs least; averaging would blur
  the two anchors' independently generated textures where they disagree. Known region = union of the
  anchors' valid masks.
- PSNR: over the known pixels only (all channels, data range 1), per frame; identical images give +inf,
  deliberately uncapped (torchmetrics' convention), so a mean containing such a frame is +inf.
- SSIM: torchmetrics' SSIM map (Gaussian 11x11, sigma 1.5) of the two images with the unknown pixels set to
  0 in both, averaged over the known pixels. Windows straddling the border see identical zeros on the
  unknown side, a small upward bias there, far smaller than comparing generated content to black.
- LPIPS (AlexNet, v0.1): of the two images with the unknown pixels set to 0 in both; the network's spatial
  map (torchmetrics' `spatial=True`) is averaged over the known pixels, so the score does not shrink with
  the known area as the image-wide average would (a network without a spatial map is broadcast: its score is
  then the plain LPIPS of the masked pair).
Scores are averaged over the frames that are not anchors and have a known pixel; frames without one (no
overlap, e.g. a 66 degree turn) are skipped, and a video without any scores NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from evaluation.features import frame_array, frames_to_tensor
from vf3d.baselines.anchor_warp import bracketing_anchors, composite  # noqa: F401 - bracketing_anchors re-exported
from vf3d.preprocess.camera import Intrinsics

BATCH_SIZE = 8
"""Frames scored together (SSIM and LPIPS batches)."""


def pseudo_gt(frame_index: int, anchors: Mapping[int, np.ndarray], depth: np.ndarray, c2w: np.ndarray,
              intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """The pseudo ground truth of one frame: its bracketing anchors warped into it and composited
    (`vf3d.baselines.anchor_warp.composite`, the `anchor_warp` baseline before its holes are filled).

    Returns:
        image (H, W, 3) uint8 (0 where unknown) and known (H, W) bool.
    """
    return composite(frame_index, anchors, depth, c2w, intrinsics)


def masked_psnr(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (data range 1) over the pixels where `mask` (H, W) is True; `prediction`/`target` (C, H, W) or
    (H, W). +inf when they agree there."""
    return float(peak_signal_noise_ratio(prediction[..., mask], target[..., mask], data_range=1.0))


def _masked_scores(prediction: torch.Tensor, target: torch.Tensor, known: torch.Tensor, lpips_model: torch.nn.Module
                   ) -> tuple[list[float], list[float], list[float]]:
    """Per-frame PSNR, SSIM, LPIPS of (B, 3, H, W) images in [0, 1] on the (B, H, W) known masks."""
    psnr = [masked_psnr(p, t, m) for p, t, m in zip(prediction, target, known)]
    device = next(lpips_model.parameters()).device
    mask = known[:, None].to(device)
    prediction, target = prediction.to(device) * mask, target.to(device) * mask  # unknown: 0 in both
    _, ssim_map = structural_similarity_index_measure(prediction, target, data_range=1.0, return_full_image=True)
    lpips_map = lpips_model(prediction, target, normalize=True).expand_as(mask)
    area = mask.sum(dim=(1, 2, 3))
    ssim = ssim_map.mul(mask).sum(dim=(1, 2, 3)) / (area * ssim_map.shape[1])
    lpips = lpips_map.mul(mask).sum(dim=(1, 2, 3)) / area
    return psnr, ssim.tolist(), lpips.tolist()


@torch.no_grad()
def fidelity(video_frames: Sequence[np.ndarray] | np.ndarray, anchors: Mapping[int, np.ndarray], depth: np.ndarray,
             c2w: np.ndarray, intrinsics: Intrinsics, lpips_model: torch.nn.Module) -> dict:
    """PSNR, SSIM and LPIPS of a generated video against its pseudo ground truth (module docstring).

    Args:
        video_frames: the F frames, (H, W, 3) uint8; frame i is seen by camera `c2w[i]`.
        anchors, depth, c2w, intrinsics: as `pseudo_gt`.
        lpips_model: torchmetrics `_LPIPS` (inputs in [0, 1] with `normalize=True`), as `MetricModels.lpips`.

    Returns:
        {"psnr", "ssim", "lpips"}: means over the scored frames (NaN when none), "known_fraction": mean known
        fraction of the in-between frames, "num_scored_frames".
    """
    video, depth = frame_array(video_frames), np.asarray(depth)
    if video.shape[:3] != depth.shape:
        raise ValueError(f"video_frames: {video.shape[0]} frames of {video.shape[2]}x{video.shape[1]} do not match "
                         f"depth's {depth.shape[0]} frames of {depth.shape[2]}x{depth.shape[1]}")
    between = [i for i in range(video.shape[0]) if i not in anchors]
    if not between:
        raise ValueError(f"anchors: every frame of the {video.shape[0]}-frame video is an anchor; nothing to score")
    psnr, ssim, lpips, known_pixels = [], [], [], 0
    for start in range(0, len(between), BATCH_SIZE):
        batch = between[start:start + BATCH_SIZE]
        targets, masks = map(np.stack, zip(*(pseudo_gt(i, anchors, depth, c2w, intrinsics) for i in batch)))
        known_pixels += int(masks.sum())
        scored = masks.any(axis=(1, 2))
        if scored.any():
            scores = _masked_scores(frames_to_tensor(video[batch][scored]), frames_to_tensor(targets[scored]),
                                    torch.from_numpy(masks[scored]), lpips_model)
            for values, new in zip((psnr, ssim, lpips), scores):
                values += new
    result = {"known_fraction": known_pixels / (len(between) * depth[0].size), "num_scored_frames": len(psnr)}
    if not psnr:
        return {"psnr": float("nan"), "ssim": float("nan"), "lpips": float("nan"), **result}
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "lpips": float(np.mean(lpips)), **result}
