"""What the full benchmark costs: GPU-hours for 16 scenes x 3 styles, and wall time on 1, 4, 8 and 32 GPUs.

    .venv/bin/python scripts/cost_table.py                           # the paper's stage times (Table 4, A100)
    .venv/bin/python scripts/cost_table.py --measured gpu.json       # ours, from scripts/gpu_acceptance.py
    .venv/bin/python scripts/cost_table.py --out docs/cost.md        # write the markdown (atomically)

The graph's dependencies decide the wall time: each scene's guidance (Blender, on the CPU) and each style's
LoRA (GPU; a post-prompt variant shares its reference's LoRA, paper Sec. 3.2, so one per reference) come first; a scene x style partition (its anchor views, then its GGI segments) can start when both
of its inputs exist. Partitions are list-scheduled on the GPUs, longest first, as the `gpu` pool hands out
slots; the CPU renders all scenes at once (a workstation renders 16 shots of 1-3 segments in well under one
LoRA's time). GGI training is left out: the benchmark samples with the released GGI weights.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPU_COUNTS = (1, 4, 8, 32)

PAPER_SECONDS = {"preprocess_per_segment": 12.0, "lora_per_style": 27 * 60.0, "anchor_per_view": 20.0,
                 "ggi_per_segment": 145.0}
"""Paper Table 4 (A100-80GB): preprocessing 12 s/trajectory, distribution alignment 27 min/style, SAG 20 s/view,
GGI 145 s/trajectory; a trajectory there is one 46-frame segment (12 + 2 x 20 + 145 = the 197 s it reports)."""


def measured_seconds(report: dict, offload: str) -> dict[str, float]:
    """Our stage times from a `gpu_acceptance.py` report (one offload mode); preprocessing stays the paper's
    unless the report has it, since it runs on the CPU."""
    results = report["results"]
    # gpu_acceptance.py keys its results "<stage>/offload=<mode>"; metrics run once, under the first mode
    metrics = next((k for k in results if k.startswith("metrics/") and "seconds" in results[k]), None)

    def get(stage: str, key: str) -> float:
        name = metrics if stage == "metrics" else f"{stage}/offload={offload}"
        entry = results.get(name) or {}
        if key not in entry:
            raise SystemExit(f"error: the report has no {name} {key} (errors: {entry.get('error')})")
        return float(entry[key])

    seconds = {"preprocess_per_segment": PAPER_SECONDS["preprocess_per_segment"],
               "lora_per_style": get("lora", "seconds_per_style_400_steps"),
               "anchor_per_view": get("anchor", "seconds_per_anchor_25_steps"),
               "ggi_per_segment": get("segment", "seconds_per_segment_30_steps")}
    if metrics:
        seconds["metrics_per_segment"] = get("metrics", "seconds")
    else:
        failed = [f"{k}: {results[k].get('error')}" for k in results if k.startswith("metrics/")]
        if failed:  # said, not silently dropped: the table's metrics column stays empty
            print(f"note: the report's metrics stage has no seconds ({'; '.join(failed)}); metrics are left out",
                  file=sys.stderr)
    return seconds


@dataclass(frozen=True)
class Partition:
    scene: str
    style: str
    """The LoRA it samples with (`lora_of_style`)."""
    gpu_seconds: float
    ready_after: tuple[str, ...]
    """The style LoRA it waits for (a GPU task) and the time its scene's guidance takes (CPU)."""
    cpu_seconds: float


def benchmark_partitions(catalog: dict, seconds: dict[str, float]) -> list[Partition]:
    """One task per scene x style: (segments + 1) anchor views, then the segments' GGI (and metrics, if
    measured)."""
    per_segment = seconds["ggi_per_segment"] + seconds.get("metrics_per_segment", 0.0)
    lora = lora_of_style(catalog)
    return [Partition(scene["key"], lora[style["key"]],
                      (scene["segments"] + 1) * seconds["anchor_per_view"] + scene["segments"] * per_segment,
                      (lora[style["key"]],), scene["segments"] * seconds["preprocess_per_segment"])
            for scene in catalog["scenes"] for style in catalog["styles"]]


def lora_of_style(catalog: dict) -> dict[str, str]:
    """The LoRA each style samples with, named by the first style that trains it: styles with the same reference
    and identifier share one (post-prompt variants; `vf3d_assets.assets.sag.lora_training_key`)."""
    first: dict[tuple[str, str], str] = {}
    return {s["key"]: first.setdefault((s["reference"], s["identifier"]), s["key"]) for s in catalog["styles"]}


def schedule(partitions: list[Partition], loras: list[str], lora_seconds: float, gpus: int) -> float:
    """Makespan in seconds: the LoRAs first (one GPU each), then partitions longest first as soon as a GPU is
    free and their LoRA and guidance are done."""
    free = [0.0] * gpus  # when each GPU is next free (a heap)
    lora_done = {}
    for lora in loras:
        start = heapq.heappop(free)
        lora_done[lora] = start + lora_seconds
        heapq.heappush(free, lora_done[lora])
    end = max(lora_done.values(), default=0.0)
    for task in sorted(partitions, key=lambda p: -p.gpu_seconds):
        start = max(heapq.heappop(free), lora_done[task.style], task.cpu_seconds)
        heapq.heappush(free, start + task.gpu_seconds)
        end = max(end, start + task.gpu_seconds)
    return end


def cost_rows(catalog: dict, seconds: dict[str, float]) -> dict:
    partitions = benchmark_partitions(catalog, seconds)
    loras = sorted(set(lora_of_style(catalog).values()))
    gpu_seconds = len(loras) * seconds["lora_per_style"] + sum(p.gpu_seconds for p in partitions)
    return {"partitions": len(partitions), "segments": sum(s["segments"] for s in catalog["scenes"]),
            "loras": len(loras), "gpu_hours": gpu_seconds / 3600,
            "wall_hours": {g: schedule(partitions, loras, seconds["lora_per_style"], g) / 3600 for g in GPU_COUNTS}}


def markdown(columns: dict[str, tuple[dict, dict]]) -> str:
    names = list(columns)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label in (("lora_per_style", "style LoRA (s per style)"), ("anchor_per_view", "SAG anchor (s per view)"),
                       ("ggi_per_segment", "GGI (s per 46-frame segment)"),
                       ("metrics_per_segment", "metrics (s per segment)")):
        lines.append(f"| {label} | " + " | ".join(f"{columns[n][0][key]:.0f}" if key in columns[n][0] else "-"
                                                   for n in names) + " |")
    lines.append("| **GPU-hours, 16 x 3 benchmark** | " + " | ".join(f"**{columns[n][1]['gpu_hours']:.2f}**"
                                                                      for n in names) + " |")
    for g in GPU_COUNTS:
        lines.append(f"| wall time on {g} GPU(s) (h) | " + " | ".join(f"{columns[n][1]['wall_hours'][g]:.2f}"
                                                                      for n in names) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=ROOT / "benchmark" / "catalog.json")
    parser.add_argument("--measured", type=Path, help="a scripts/gpu_acceptance.py report (our stage times)")
    parser.add_argument("--offload", default="none", help="which offload mode of the report (default: none)")
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    args = parser.parse_args()
    catalog = json.loads(args.catalog.read_text())
    columns = {"paper (Table 4, A100-80GB)": (PAPER_SECONDS, cost_rows(catalog, PAPER_SECONDS))}
    if args.measured:
        from vf3d.common.errors import VF3DInputError, read_json_object

        try:
            report = read_json_object(args.measured, "gpu_acceptance.py report")
        except VF3DInputError as exc:
            raise SystemExit(f"error: {exc}") from None
        ours = measured_seconds(report, args.offload)
        columns[f"ours ({report.get('gpu', 'GPU')}, offload {args.offload})"] = (ours, cost_rows(catalog, ours))
    table = markdown(columns)
    print(table, end="")
    if args.out:
        from vf3d.common.atomic import write_text_atomic

        write_text_atomic(args.out, table)


if __name__ == "__main__":
    main()
