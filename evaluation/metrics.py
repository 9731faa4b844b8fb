"""Every metric of the paper's Table 2 for one generated video, and the paper's own numbers.

`evaluate_video` is the single entry point: visual fidelity on pseudo ground truth (`evaluation.pseudo_gt`),
structural fidelity (`evaluation.structure`), visual quality (`evaluation.quality`) and style consistency
(`evaluation.consistency`), with the model profile and ids, so that numbers from the `tiny` profile's random
networks are never mistaken for real ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from evaluation.consistency import background_consistency, clip_image_similarity, subject_consistency
from evaluation.flicker import geometric_flicker
from evaluation.models import MetricModels
from evaluation.pseudo_gt import fidelity
from evaluation.quality import clip_aesthetic, musiq
from evaluation.structure import psnr_d
from vf3d.preprocess.camera import Intrinsics

TABLE2_METRICS = ("psnr", "ssim", "lpips", "psnr_d", "clip_a", "musiq", "clip_i", "subject_consistency",
                  "background_consistency")
"""Table 2's columns, in its order: PSNR, SSIM, LPIPS, PSNR-D, CLIP-A, MUSIQ, CLIP-I, SC, BC."""
METRICS = (*TABLE2_METRICS, "flicker_mae", "flicker_psnr")
"""Every column we report: Table 2's and geometric flicker (`evaluation.flicker`, not in the paper)."""
LOWER_IS_BETTER = frozenset({"lpips", "flicker_mae"})

PAPER_TABLE2: dict[str, dict[str, float | None]] = {
    method: dict(zip(TABLE2_METRICS, values)) for method, values in (
        ("Depth-I2V", (None, None, None, 20.696, 6.136, 65.240, 0.787, 0.864, 0.920)),
        ("VACE", (None, None, None, 18.850, 6.189, 65.318, 0.787, 0.856, 0.914)),
        ("SAG + MVSplat360", (13.163, 0.374, 0.315, 13.881, 5.714, 50.524, 0.788, 0.797, 0.894)),
        ("SAG + LVSM", (15.103, 0.472, 0.280, 15.222, 5.680, 50.323, 0.804, 0.843, 0.917)),
        ("SAG + SEVA", (14.014, 0.437, 0.261, 16.598, 6.782, 66.359, 0.834, 0.884, 0.939)),
        ("SAG + GGI (Ours)", (16.739, 0.554, 0.236, 19.754, 6.730, 68.615, 0.840, 0.891, 0.942)),
    )
}
"""The paper's Table 2 (means over its 48 videos), as printed (3 decimals); None where it prints '-' (the
video-diffusion-only baselines, which do not start from the anchor views)."""

TABLE3_METRICS = ("psnr", "ssim", "lpips", "psnr_d", "clip_a", "musiq")
"""Table 3's columns, in its order: PSNR, SSIM, LPIPS, PSNR-D, CLIP-A, MUSIQ."""
PAPER_TABLE3: dict[str, dict[str, float]] = {
    condition: dict(zip(TABLE3_METRICS, values)) for condition, values in (
        ("-", (14.160, 0.417, 0.282, 16.780, 6.622, 62.562)),
        ("HED", (15.935, 0.545, 0.238, 19.655, 6.580, 67.066)),
        ("HED-S", (16.739, 0.554, 0.236, 19.754, 6.730, 68.615)),
    )
}
"""The paper's Table 3 (GGI's structure condition during training), as printed; HED-S is Table 2's ours."""
TABLE3_METHODS = {"-": "ggi_no_structure", "HED": "ggi_hed", "HED-S": "ggi"}
"""Table 3's condition -> the method key (`vf3d.baselines.methods`) of our run with that condition."""

METRICS_CODE_VERSION = "3"
"""The definition of the metric values: the metrics assets' Dagster code version, written into every record;
the report leaves out records of another version. Bump it whenever a value's definition changes.
3: geometric flicker low-passed and symmetrically resampled (`evaluation.flicker`), VBench's float frame tensor
for SC/BC and the DINO hub's position-embedding interpolation (`evaluation.features`)."""


def evaluate_video(frames: Sequence[np.ndarray] | np.ndarray, anchors: Mapping[int, np.ndarray],
                   reference_image: np.ndarray, gt_depth: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics,
                   models: MetricModels, psnr_d_background: str = "exclude") -> dict:
    """All Table 2 metrics of one generated segment.

    Args:
        frames: the F generated frames, (H, W, 3) uint8 RGB (46 for a paper segment, N = 45).
        anchors: frame index -> (H, W, 3) uint8 anchor view (the SAG outputs: {0: v_0, N: v_N}).
        reference_image: (H', W', 3) uint8 style reference, any size (CLIP-I).
        gt_depth: (F, H, W) rendered planar depth, inf = background (guidance's depth.npy for the segment).
        c2w: (F, 4, 4) OpenCV camera-to-world poses (guidance's meta.json).
        intrinsics: pinhole intrinsics of the (H, W) frames.
        models: `tiny_metric_models()` or `full_metric_models(weights_dir)`.
        psnr_d_background: `exclude` (our reading: the paper does not say) or `farthest` (`evaluation.structure`).

    Returns:
        {metric: float for metric in METRICS} (+inf / NaN as the metric modules document), "known_fraction"
        and "num_scored_frames" of the pseudo ground truth, "flicker_per_pair", "num_frames", "profile"
        (the metric models'), "model_ids", "aesthetic_head", "psnr_d_background".
    """
    frames = np.asarray(frames if isinstance(frames, np.ndarray) else np.stack(list(frames)))
    visual = fidelity(frames, anchors, gt_depth, c2w, intrinsics, models.lpips)
    flicker = geometric_flicker(frames, gt_depth, c2w, intrinsics)
    return {
        "psnr": visual["psnr"],
        "ssim": visual["ssim"],
        "lpips": visual["lpips"],
        "psnr_d": psnr_d(frames, gt_depth, models.depth_model, models.depth_processor, psnr_d_background),
        "clip_a": clip_aesthetic(frames, models.clip_l14, models.aesthetic_head),
        "musiq": musiq(frames, models.musiq),
        "clip_i": clip_image_similarity(frames, reference_image, models.clip_l14),
        "subject_consistency": subject_consistency(frames, models.dino),
        "background_consistency": background_consistency(frames, models.clip_b32),
        **flicker,
        "known_fraction": visual["known_fraction"],
        "num_scored_frames": visual["num_scored_frames"],
        "num_frames": len(frames),
        "profile": models.profile,
        "model_ids": dict(models.model_ids),
        "aesthetic_head": models.aesthetic_head_name,
        "psnr_d_background": psnr_d_background,
    }
