"""Anchor views for every segment boundary of a shot (paper Sec. 3.2 and 'long trajectories').

Anchor 0 is generated from its edge map alone; anchor k (the last frame of segment k-1) is guided by
anchor k-1 warped into its view with that segment's f_N->0. Anchors are sampled at the SAG size
(`SAGSettings.resolution_scale`, `vf3d.sag.resolution`: 1072x720 for a 720x480 video in the `paper` preset) and
written at the video size. Output folder::

    anchors/{frame:05d}.png   the anchor views v, at the video size (what GGI and the metrics read)
    sag_size/{frame:05d}.png  the anchor views as sampled, at the SAG size (the next anchor warps this one)
    control/{frame:05d}.png   the edge condition fed to the ControlNet (edge detector on the guidance's HED input)
    warped/{frame:05d}.png    the previous anchor warped into this view (guided anchors only; SAG size)
    masks/{frame:05d}.png     SAG's mask m (white = unobserved, generated freely; guided anchors only; SAG size)
    anchors.json              frames, prompts, observed coverage per anchor, sizes, settings
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vf3d.common.atomic import atomic_dir
from vf3d.common.warp import warp_image
from vf3d.models.hed import EdgeDetector, as_rgb
from vf3d.preprocess.hed_input import guidance_edge_maps
from vf3d.sag.resolution import resize_flow, sag_size, to_video_size
from vf3d.sag.sampling import SAGPipeline, SAGSettings, unobserved_mask


@dataclass
class AnchorRecord:
    frame: int
    prompt: str
    observed_fraction: float  # pixels of this view seen in the warped previous anchor
    replaced_fraction: float  # pixels whose latent is replaced (mask m == 0 after dilation and blur)


def anchor_frames(segments: Sequence[Sequence[int]]) -> list[int]:
    """The first frame of the trajectory and the last frame of every segment."""
    return [segments[0][0]] + [end for _, end in segments]


WarpSource = Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]
"""(k, previous frame, frame) -> the flow from `frame` to `previous frame` and its valid mask."""


def generate_anchors(
    sag: SAGPipeline,
    guidance_dir: Path,
    out_dir: Path,
    prompts: Sequence[str],
    edge_detector: EdgeDetector,
    settings: SAGSettings,
    generator_for: Callable[[int], torch.Generator],
    progress: Callable[[int, int], None] | None = None,
) -> list[AnchorRecord]:
    """Generate and write the anchors of one shot (layout in the module docstring).

    Args:
        prompts: one prompt per anchor (identifier + post-prompt); different identifiers make a style transition.
        generator_for: a generator seeded with the base seed + k; anchor k gets k = 0 (official: the same
            noise for every anchor) or its own index with `settings.seed_per_anchor`.
    """
    meta = json.loads((guidance_dir / "meta.json").read_text())

    def segment_flow(k: int, previous: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        with np.load(guidance_dir / "flows" / f"seg{k - 1:03d}.npz") as flows:  # anchor k ends segment k-1
            return flows["end_to_start"], flows["end_to_start_valid"]

    return generate_views(sag, guidance_dir, out_dir, anchor_frames(meta["segments"]), prompts, edge_detector,
                          settings, generator_for, segment_flow, progress)


def generate_views(
    sag: SAGPipeline,
    guidance_dir: Path,
    out_dir: Path,
    frames: Sequence[int],
    prompts: Sequence[str],
    edge_detector: EdgeDetector,
    settings: SAGSettings,
    generator_for: Callable[[int], torch.Generator],
    warp_source: WarpSource | None,
    progress: Callable[[int, int], None] | None = None,
    images: str = "anchors",
) -> list[AnchorRecord]:
    """SAG views of the given trajectory frames, in order, each guided by the previous view warped into it along
    `warp_source` (None: every view from its edge map alone). Written as the module docstring's layout, the
    views under `images/`."""
    meta = json.loads((guidance_dir / "meta.json").read_text())
    if len(prompts) != len(frames):
        raise ValueError(f"prompts: {len(prompts)} given, the shot has {len(frames)} views at frames {list(frames)}")
    height, width = meta["height"], meta["width"]  # the video size: anchors are written at it
    sag_width, sag_height = sag_size(width, height, settings.resolution_scale)  # and sampled at this one
    records: list[AnchorRecord] = []
    with atomic_dir(out_dir) as tmp:
        for sub in (images, "sag_size", "control", "warped", "masks"):
            (tmp / sub).mkdir()
        previous: np.ndarray | None = None
        for k, frame in enumerate(frames):
            edges = guidance_edge_maps(guidance_dir, [frame], edge_detector, (sag_width, sag_height), "anchors")[0]
            control = Image.fromarray(as_rgb(edges))
            control.save(tmp / "control" / f"{frame:05d}.png")
            warped = valid = None
            observed = replaced = 0.0
            if previous is not None and warp_source is not None:
                flow, flow_valid = resize_flow(*warp_source(k, frames[k - 1], frame), (sag_width, sag_height))
                warped, valid = warp_image(previous, flow, flow_valid,
                                           "nearest" if settings.resampling == "nearest" else "bilinear")
                Image.fromarray(warped).save(tmp / "warped" / f"{frame:05d}.png")
                observed = float(valid.mean())
                mask = unobserved_mask(valid, settings)
                Image.fromarray((mask * 255).round().astype(np.uint8)).save(tmp / "masks" / f"{frame:05d}.png")
                replaced = float((mask == 0).mean()) if settings.replacement else 0.0
            result = sag(prompts[k], control, sag_height, sag_width, warped=warped, valid=valid, settings=settings,
                         generator=generator_for(k if settings.seed_per_anchor else 0))
            result.image.save(tmp / "sag_size" / f"{frame:05d}.png")
            to_video_size(result.image, width, height).save(tmp / images / f"{frame:05d}.png")
            previous = np.asarray(result.image.convert("RGB"))  # the next anchor warps the anchor as sampled
            records.append(AnchorRecord(frame, prompts[k], observed, replaced))
            if progress:
                progress(k + 1, len(frames))
        (tmp / "anchors.json").write_text(json.dumps(
            {"anchors": [asdict(r) for r in records], "video_size": [width, height], "sag_size": [sag_width, sag_height],
             "settings": asdict(settings)}, indent=1))
    return records
