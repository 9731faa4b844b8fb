"""Benchmark: preprocessing seconds per 46-frame segment (render vs flow vs HED inputs) and peak memory.

    .venv/bin/python scripts/bench_preprocess.py [SCENE_KEY ...] [--width 720 --height 480] [--preset paper]
    .venv/bin/python scripts/bench_preprocess.py [SCENE_KEY ...] --compare lines paper official_every_frame

Each scene runs in its own process so peak memory (max RSS) is per scene. `--preset` picks the edge preset
(`vf3d.preprocess.edges.EDGE_PRESETS`); `--compare` runs several presets on the same scenes, one after the other per
scene, and reports each one's time relative to the first ("lines" = the line maps alone, as before the HED inputs).
Targets (issues): <= 12 s per segment at 720x480 on the 2-core development machine (the paper reports 12 s per
trajectory on a GPU); the `paper` preset's HED inputs at most 1.5x the `lines` time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(scene_key: str, width: int, height: int, preset: str) -> dict:
    from vf3d.benchmark.catalog import active_catalog
    from vf3d.preprocess.edges import EDGE_PRESETS
    from vf3d.preprocess.guidance import preprocess

    entry = active_catalog().scene(scene_key)
    with tempfile.TemporaryDirectory() as tmp:
        stats = preprocess(entry.source, Path(tmp) / "out", width, height, entry.trajectory, EDGE_PRESETS[preset],
                           library_paths=entry.library_paths)
    segments = len(stats.segments)
    return {
        "scene": scene_key,
        "preset": preset,
        "frames": stats.num_frames,
        "segments": segments,
        "seconds_per_segment": round(stats.total_seconds / segments, 2),
        "render_seconds_per_segment": round(stats.render_seconds / segments, 2),
        "flow_seconds_per_segment": round(stats.flow_seconds / segments, 2),
        "edge_seconds_per_segment": round(stats.edge_seconds / segments, 2),
        "hed_input_seconds_per_segment": round(stats.hed_input_seconds / segments, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenes", nargs="*", help="scene keys (default: every benchmark scene)")
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--preset", default="paper", help="edge preset (EDGE_PRESETS)")
    parser.add_argument("--compare", nargs="+", metavar="PRESET", help="presets to run on every scene")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.width, args.height, args.preset)))
        return
    from vf3d.benchmark.catalog import active_catalog

    keys = args.scenes or [k for k, s in active_catalog().scenes.items() if s.category not in ("user", "demo")]
    presets = args.compare or [args.preset]
    rows: dict[str, list[dict]] = {p: [] for p in presets}
    for key in keys:
        for preset in presets:
            out = subprocess.run([sys.executable, __file__, "--one", key, "--width", str(args.width), "--height",
                                  str(args.height), "--preset", preset], capture_output=True, text=True, check=True)
            rows[preset].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[preset][-1]), flush=True)
    base = [r["seconds_per_segment"] for r in rows[presets[0]]]
    for preset in presets:
        per_segment = [r["seconds_per_segment"] for r in rows[preset]]
        ratios = [t / b for t, b in zip(per_segment, base)]
        print(json.dumps({"preset": preset, "scenes": len(per_segment),
                          "mean_seconds_per_segment": round(sum(per_segment) / len(per_segment), 2),
                          "max_seconds_per_segment": max(per_segment),
                          f"mean_ratio_to_{presets[0]}": round(sum(per_segment) / sum(base), 3),
                          f"max_ratio_to_{presets[0]}": round(max(ratios), 3),
                          "max_peak_rss_mib": max(r["peak_rss_mib"] for r in rows[preset])}))


if __name__ == "__main__":
    main()
