"""Benchmark: preprocessing seconds per 46-frame segment (render vs flow) and peak memory.

    .venv/bin/python scripts/bench_preprocess.py [SCENE_KEY ...] [--width 720 --height 480]

Each scene runs in its own process so peak memory (max RSS) is per scene. Target (issue): <= 12 s per
segment at 720x480 on the 2-core development machine; the paper reports 12 s per trajectory on a GPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(scene_key: str, width: int, height: int) -> dict:
    from vf3d.benchmark.catalog import active_catalog
    from vf3d.preprocess.guidance import preprocess

    entry = active_catalog().scene(scene_key)
    with tempfile.TemporaryDirectory() as tmp:
        stats = preprocess(entry.source, Path(tmp) / "out", width, height, entry.trajectory)
    segments = len(stats.segments)
    return {
        "scene": scene_key,
        "frames": stats.num_frames,
        "segments": segments,
        "seconds_per_segment": round(stats.total_seconds / segments, 2),
        "render_seconds_per_segment": round(stats.render_seconds / segments, 2),
        "flow_seconds_per_segment": round(stats.flow_seconds / segments, 2),
        "edge_seconds_per_segment": round(stats.edge_seconds / segments, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenes", nargs="*", help="scene keys (default: every benchmark scene)")
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.width, args.height)))
        return
    from vf3d.benchmark.catalog import active_catalog

    keys = args.scenes or [k for k, s in active_catalog().scenes.items() if s.category not in ("user", "demo")]
    rows = []
    for key in keys:
        out = subprocess.run([sys.executable, __file__, "--one", key, "--width", str(args.width), "--height",
                              str(args.height)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    per_segment = [r["seconds_per_segment"] for r in rows]
    print(json.dumps({"scenes": len(rows), "mean_seconds_per_segment": round(sum(per_segment) / len(rows), 2),
                      "max_seconds_per_segment": max(per_segment),
                      "max_peak_rss_mib": max(r["peak_rss_mib"] for r in rows)}))


if __name__ == "__main__":
    main()
