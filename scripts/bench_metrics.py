"""Benchmark: seconds for every metric column of one 46-frame video, and for the report over the benchmark.

    .venv/bin/python scripts/bench_metrics.py [--width 720 --height 480] [--frames 46] [--profile tiny]

The video is a textured plane seen by a sideways dolly (exact depth and poses), with mild per-frame noise, so
every column has a finite value. Columns are timed by family, in `evaluate_video`'s order. The report is built
from synthetic records shaped like the full benchmark: 16 scenes x 3 styles x every method of `vf3d.baselines.methods`.
`--profile full` reads the metric networks from VF3D_WEIGHTS_DIR/metrics (random weights at published shapes
can be written there by `evaluation.published.write_full_metric_layout`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evaluation.consistency import background_consistency, clip_image_similarity, subject_consistency
from evaluation.flicker import geometric_flicker
from evaluation.metrics import METRICS, PAPER_TABLE2
from evaluation.models import full_metric_models, tiny_metric_models
from evaluation.pseudo_gt import fidelity
from evaluation.quality import clip_aesthetic, musiq
from evaluation.report import write_report
from evaluation.structure import psnr_d
from vf3d.baselines.methods import METHODS
from vf3d.preprocess.camera import Intrinsics


def dolly(width: int, height: int, frames: int, shift: int = 3, distance: float = 10.0):
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 256, (height, width + frames * shift, 3), dtype=np.uint8)
    video = np.stack([canvas[:, k * shift:k * shift + width] for k in range(frames)])
    video = np.clip(video.astype(int) + rng.integers(-8, 9, video.shape), 0, 255).astype(np.uint8)
    intrinsics = Intrinsics(width, height, fx=0.9 * width, fy=0.9 * width, cx=width / 2, cy=height / 2)
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    c2w[:, 0, 3] = np.arange(frames) * shift * distance / intrinsics.fx
    depth = np.full((frames, height, width), distance, np.float32)
    return video, depth, c2w, intrinsics, {0: video[0], frames - 1: video[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=46)
    parser.add_argument("--profile", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--weights", type=Path, help="metric weights folder for --profile full")
    args = parser.parse_args()
    video, depth, c2w, intrinsics, anchors = dolly(args.width, args.height, args.frames)
    models = tiny_metric_models() if args.profile == "tiny" else full_metric_models(args.weights)
    reference = video[0]
    seconds = {}
    for name, run in (
        ("psnr, ssim, lpips (pseudo-GT)", lambda: fidelity(video, anchors, depth, c2w, intrinsics, models.lpips)),
        ("psnr_d", lambda: psnr_d(video, depth, models.depth_model, models.depth_processor)),
        ("clip_a", lambda: clip_aesthetic(video, models.clip_l14, models.aesthetic_head)),
        ("musiq", lambda: musiq(video, models.musiq)),
        ("clip_i", lambda: clip_image_similarity(video, reference, models.clip_l14)),
        ("subject_consistency", lambda: subject_consistency(video, models.dino)),
        ("background_consistency", lambda: background_consistency(video, models.clip_b32)),
        ("flicker_mae, flicker_psnr", lambda: geometric_flicker(video, depth, c2w, intrinsics)),
    ):
        started = time.perf_counter()
        with torch.no_grad():
            run()
        seconds[name] = round(time.perf_counter() - started, 2)
    rng = np.random.default_rng(1)
    records = [{"method": method, "scene": f"scene{s:02d}", "style": f"style{t}", "category": "outdoor",
                "generation_profile": args.profile, "metric_profile": args.profile, "aesthetic_head": "laion_linear",
                "psnr_d_background": "exclude", "model_ids": dict(models.model_ids),
                **{m: float(rng.normal(10, 2)) for m in METRICS}}
               for method in METHODS for s in range(16) for t in range(3)]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_report(records, PAPER_TABLE2, Path(folder))
    report_seconds = round(time.perf_counter() - started, 2)
    print(json.dumps({"profile": args.profile, "frames": args.frames, "size": f"{args.width}x{args.height}",
                      "seconds_per_column_family": seconds, "metrics_total_seconds": round(sum(seconds.values()), 2),
                      "report_records": len(records), "report_seconds": report_seconds}, indent=1))


if __name__ == "__main__":
    main()
