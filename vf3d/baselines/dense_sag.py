"""Every frame from the anchor generator: the `sag_dense` and `per_frame` baselines.

- `sag_dense` (paper Fig. 13, "frames are generated along the camera trajectory solely using the SAG module"):
  every trajectory frame by Sparse Appearance-guided Sampling, each guided by the previous frame warped into it
  along the exact mesh flow. The inherent randomness of each generation shows as flicker, and warping errors
  accumulate.
- `per_frame`: every frame from the style-aligned FLUX ControlNet alone, independently (no guidance from any
  other frame, SAG's replacement off), as Blender diffusion add-ons render an animation today.
Both use the partition's style LoRA and prompt, and the same seed for every frame (official SAG: the same noise
for every anchor), so the only frame-to-frame change is what the edge map and the guidance change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vf3d.models.hed import EdgeDetector
from vf3d.preprocess.flows import depth_flow
from vf3d.preprocess.guidance import ShotGeometry
from vf3d.sag.anchors import generate_views
from vf3d.sag.sampling import SAGPipeline, SAGSettings, with_overrides

DENSE_MODES = ("sag_dense", "per_frame")


def generate_every_frame(sag: SAGPipeline, guidance_dir: Path, out_dir: Path, prompt: str, edge_detector: EdgeDetector,
                         settings: SAGSettings, generator_for: Callable[[int], torch.Generator], mode: str,
                         progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """All frames of the shot by `mode` (`DENSE_MODES`), written under `out_dir/frames` (with `control/`,
    `warped/` and `anchors.json` as `vf3d.sag.anchors`); returns them as (H, W, 3) uint8."""
    if mode not in DENSE_MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(DENSE_MODES)}")
    geometry = ShotGeometry.load(guidance_dir)
    frames = list(range(geometry.depth.shape[0]))

    def previous_frame_flow(k: int, previous: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        return depth_flow(geometry.depth, geometry.c2w, geometry.intrinsics, frame, previous)

    guided = mode == "sag_dense"
    generate_views(sag, guidance_dir, out_dir, frames, [prompt] * len(frames), edge_detector,
                   settings if guided else with_overrides(settings, replacement=False), generator_for,
                   previous_frame_flow if guided else None, progress, images="frames")
    return [np.asarray(Image.open(out_dir / "frames" / f"{i:05d}.png").convert("RGB")) for i in frames]
