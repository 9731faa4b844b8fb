"""Benchmark: `geometric_flicker` on the analytic textured-plane videos, at several speeds and sub-pixel phases.

    .venv/bin/python scripts/bench_flicker.py [--frames 8] [--width 128 --height 96]

Prints one Markdown table: `flicker_mae` (levels) per case (`evaluation.plane_video`: exact, blotchy +-3
flicker, per-pixel +-3 noise, frozen, frozen smooth-only texture, flat grey; the exact video also with purely
horizontal motion and with the camera approaching the plane) and speed (px/frame), the best and worst over
three sub-pixel phases where they differ, and the seconds per 46-frame 720x480 video. The numbers
in `evaluation.flicker`'s docstring come from this script.
"""

from __future__ import annotations

import argparse
import time

from evaluation.flicker import geometric_flicker
from evaluation.plane_video import plane_video

SPEEDS = (0.25, 0.75, 1.5, 4.0)
PHASES = ((0.0, 0.0), (0.5, 0.5), (0.3, 0.7))
CASES = (("exact", dict(kind="exact")), ("exact, horizontal motion", dict(kind="exact", direction_deg=0.0)),
         ("exact, approaching 1%/frame", dict(kind="exact", approach=0.01)),
         ("blotchy ±3", dict(kind="blotchy")), ("pixel noise ±3", dict(kind="noise")),
         ("frozen", dict(kind="frozen")), ("frozen, smooth texture", dict(kind="frozen", sharp=False)),
         ("flat grey", dict(kind="flat")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    args = parser.parse_args()
    print("| case | " + " | ".join(f"{s} px/frame" for s in SPEEDS) + " |")
    print("|---" * (len(SPEEDS) + 1) + "|")
    for name, options in CASES:
        cells = []
        for speed in SPEEDS:
            values = []
            for phase in PHASES:
                video = plane_video(speed, phase=phase, num_frames=args.frames, width=args.width, height=args.height,
                                    **options)
                values.append(geometric_flicker(video.frames, video.depth, video.c2w, video.intrinsics)["flicker_mae"])
            low, high = f"{min(values):.2f}", f"{max(values):.2f}"
            cells.append(high if low == high else f"{low}-{high}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    video = plane_video(1.5, num_frames=46, width=720, height=480)
    start = time.perf_counter()
    geometric_flicker(video.frames, video.depth, video.c2w, video.intrinsics)
    print(f"\n46 frames at 720x480: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
