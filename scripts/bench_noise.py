"""Benchmark: seconds and peak memory of the warped noise of one 46-frame segment at 720x480.

    .venv/bin/python scripts/bench_noise.py [--preset paper|video_rate] [--device cpu|cuda] [--width 720 --height 480]

A sideways pan with a slow rotation (every pixel moves, some leave the image). `paper` is the official
warping: a 2880x1920 noise field, 12 warps of 4 frames, area readout to 13 x 16 x 60 x 90. Each run is one
process, so the peak resident memory is this run's alone. Target on a GPU: at most 3 s per segment.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time

import numpy as np
import torch

from vf3d.common.warp import pixel_centres
from vf3d.ggi.noise_warp import NOISE_WARP_PRESETS, warped_noise_for_segment


def pan_and_turn(height: int, width: int, frames: int = 45) -> tuple[np.ndarray, np.ndarray]:
    p = pixel_centres(height, width).astype(np.float64)
    centre = np.array([width / 2, height / 2])
    t = math.radians(0.2)
    rotation = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    landing = (p - centre) @ rotation.T + centre + np.array([1.3, 0.0])
    flow = (landing - p).astype(np.float32)
    valid = (landing[..., 0] >= 0) & (landing[..., 0] < width) & (landing[..., 1] >= 0) & (landing[..., 1] < height)
    return np.repeat(flow[None], frames, 0), np.repeat(valid[None], frames, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(NOISE_WARP_PRESETS), default="paper")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    flows, valid = pan_and_turn(args.height, args.width)
    seconds = []
    for k in range(args.repeats + (args.device != "cpu")):  # a GPU gets one warm-up run
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        noise = warped_noise_for_segment(flows, valid, channels=16, generator=torch.Generator().manual_seed(k),
                                         settings=NOISE_WARP_PRESETS[args.preset], device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    print(json.dumps({
        "preset": args.preset, "device": args.device, "size": f"{args.width}x{args.height}",
        "shape": list(noise.shape), "seconds": [round(s, 2) for s in seconds[-args.repeats:]],
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device.startswith("cuda") else None,
        "std": round(float(noise.std()), 4),
    }))


if __name__ == "__main__":
    main()
