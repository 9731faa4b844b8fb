"""A shot's video: every segment in-betweened between its two anchors, segments chained (paper Sec. 3.3).

Segment k covers trajectory frames [s_k, e_k] between anchors v_{s_k} and v_{e_k}. Its edge maps (the line art
through the edge detector) and its warped noise condition the GGI model; a segment shorter than 46 frames
(the last of a long shot) is padded with its last edge map and identity flows and cut back after sampling.
Segments are joined by `vf3d.common.video_io.chain_segments`: the shared boundary frame once (vf3d), or twice
as the official code (`duplicate_joins`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vf3d.common.video_io import chain_segments
from vf3d.ggi.noise_warp import NoiseWarpSettings, padded_flows, warped_noise_for_segment
from vf3d.ggi.pipeline import GGIPipeline, GGISettings
from vf3d.models.hed import EdgeDetector
from vf3d.preprocess.hed_input import guidance_edge_maps


def segment_noise(guidance_dir: Path, segment: int, channels: int, settings: GGISettings, degradation: float,
                  generator: torch.Generator, noise_settings: NoiseWarpSettings = NoiseWarpSettings(),
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """eps_w of one segment at latent resolution: (T, C, H/8, W/8), warped on `device`."""
    with np.load(guidance_dir / "flows" / f"seg{segment:03d}.npz") as data:
        flows, valid = padded_flows(data["forward"], data["forward_valid"], settings.segment_frames - 1)
    return warped_noise_for_segment(flows, valid, channels=channels, degradation=degradation,
                                    num_frames=settings.num_frames, generator=generator, settings=noise_settings,
                                    device=device, segment_frames=settings.segment_frames)


def generate_video(
    ggi: GGIPipeline,
    guidance_dir: Path,
    anchors_dir: Path,
    noise_for: Callable[[int], torch.Tensor],
    edge_detector: EdgeDetector,
    settings: GGISettings,
    prompt: str,
    generator_for: Callable[[int], torch.Generator],
    progress: Callable[[int, int], None] | None = None,
    duplicate_joins: bool = False,
) -> list[np.ndarray]:
    """All frames of the shot, (H, W, 3) uint8: exactly one per trajectory frame, or with `duplicate_joins`
    (official `ggi.py`) every segment's frames in full, one extra frame per join (`chain_segments`)."""
    if settings.chain_from not in ("generated", "anchor"):
        raise ValueError(f"settings.chain_from={settings.chain_from!r}: expected 'generated' or 'anchor'")
    meta = json.loads((guidance_dir / "meta.json").read_text())
    height, width = meta["height"], meta["width"]
    anchor = lambda frame: np.asarray(Image.open(anchors_dir / "anchors" / f"{frame:05d}.png").convert("RGB"))  # noqa: E731
    segments = []
    first_image = None
    for k, (start, end) in enumerate(meta["segments"]):
        count = end - start + 1
        edges = None
        if settings.method == "ggi":
            edges = guidance_edge_maps(guidance_dir, range(start, end + 1), edge_detector, (width, height), "frames")
            if settings.structure == "none":  # weights trained without structure see empty maps (Table 3 '-')
                edges = [np.zeros_like(e) for e in edges]
            edges += [edges[-1]] * (settings.segment_frames - count)
        if first_image is None or settings.chain_from == "anchor":
            first_image = anchor(start)
        result = ggi(prompt, first_image, anchor(end), edges, height, width, latents=noise_for(k),
                     settings=settings, generator=generator_for(k))
        segments.append(result.frames[:count])
        first_image = result.last_frame  # segment k+1 starts from what GGI generated (settings.chain_from)
        if progress:
            progress(k + 1, len(meta["segments"]))
    return chain_segments(segments, duplicate_joins)
