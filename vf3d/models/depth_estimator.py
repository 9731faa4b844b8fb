"""Monocular depth by a transformers depth model (paper Sec. 3.4: HED-S structure maps are HED of estimated
depth; also the depth used by the PSNR-D metric).

Weights (never downloaded): a `save_pretrained` folder, e.g. Intel/dpt-hybrid-midas or
depth-anything/Depth-Anything-V2-Small-hf.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vf3d.models.device import model_device
from vf3d.models.weights import first_existing

METRIC_DEPTH_MODEL_TYPES = frozenset({"glpn", "zoedepth", "depth_pro", "prompt_depth_anything"})
"""transformers depth models that predict metric depth; all others (DPT/MiDaS, Depth Anything relative)
predict relative inverse depth (disparity, larger = nearer, known up to scale and shift)."""


def load_depth_estimator(folder: Path, device: torch.device | str = "cpu",
                         dtype: torch.dtype = torch.float32) -> tuple[torch.nn.Module, object]:
    """A transformers monocular depth model and its image processor from a local `save_pretrained` folder
    (`local_files_only`); missing -> `MissingWeightsError` naming the folder."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    folder = Path(folder)
    first_existing("monocular depth estimator (transformers folder, e.g. Intel/dpt-hybrid-midas)",
                   [folder / "config.json"])
    model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True)
    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    return model.to(device, dtype).eval().requires_grad_(False), processor


def predicts_disparity(model: torch.nn.Module) -> bool:
    """True when a transformers depth model predicts relative inverse depth (DPT/MiDaS, Depth Anything
    relative), False for metric depth (GLPN, ZoeDepth, Depth Pro, Depth Anything metric)."""
    config = model.config
    return (getattr(config, "depth_estimation_type", "relative") != "metric"
            and config.model_type not in METRIC_DEPTH_MODEL_TYPES)


@torch.no_grad()
def estimate_depth(frames: Sequence[np.ndarray], model: torch.nn.Module, processor, batch_size: int = 4
                   ) -> list[np.ndarray]:
    """Relative inverse depth (disparity: larger = nearer, up to scale and shift) per frame, (H, W) float32.

    `predicted_depth` is resized back to the frame size (bicubic, as the processors' post-processing).
    DPT/MiDaS and relative Depth Anything already predict disparity; metric models' depth is inverted.
    Feed the maps to `depth_to_image(..., disparity=True)`. Processors that pad (ZoeDepth) are not undone:
    use a DPT/MiDaS (the paper's estimator) or Depth Anything model.
    """
    device, dtype = model_device(model)
    invert = not predicts_disparity(model)
    maps = []
    for start in range(0, len(frames), batch_size):
        chunk = list(frames[start:start + batch_size])
        inputs = processor(images=chunk, return_tensors="pt")
        predicted = model(pixel_values=inputs["pixel_values"].to(device, dtype)).predicted_depth.float()
        predicted = F.interpolate(predicted[:, None], size=chunk[0].shape[:2], mode="bicubic", align_corners=False)
        for prediction in predicted[:, 0].cpu().numpy():
            maps.append((1.0 / np.maximum(prediction, 1e-6) if invert else prediction).astype(np.float32))
    return maps
