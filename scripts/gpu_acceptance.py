"""GPU acceptance run: speed and peak memory of every model stage at the paper's shapes, per offload mode.

    .venv/bin/python scripts/gpu_acceptance.py --out gpu_acceptance.json            # on a GPU, about 6 min
    .venv/bin/python scripts/gpu_acceptance.py --scale shrunk --device cpu --stages lora,anchor,noise --out x.json

Builds the published architectures (`vf3d.models.published`: FLUX.1-dev + XLabs HED ControlNet, CogVideoX-5b-I2V)
with random bf16 weights on the device: nothing is downloaded, and time and memory do not depend on weight
values. Measures, for each offload mode (`--offload`, default none,model,group):

- `lora`: seconds per distribution-alignment step at the paper's recipe (1024 px, rank 16, transformer and
  ControlNet LoRA, AdamW, clipping), and the implied seconds per style (400 steps);
- `anchor`: seconds per SAG anchor view (25 steps, 720x480, true CFG from step 1);
- `segment`: seconds per GGI segment (49 frames, 720x480, 30 steps with CFG 6), from `--ggi-steps` timed steps
  plus the VAE encode/decode, extrapolated to 30;
- `noise`: the official noise warping of one segment (2880x1920 field) on the device;
- `metrics`: every Table 2 metric of one 46-frame segment (`evaluation.published` networks);

each with the peak GPU memory (`torch.cuda.max_memory_allocated`). JSON out; no test depends on it.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vf3d.common.atomic import write_text_atomic
from vf3d.ggi.noise_warp import warped_noise_for_segment
from vf3d.ggi.pipeline import GGI_PRESETS, GGIPipeline
from vf3d.models.cogvideo import widen_patch_embed
from vf3d.models.device import DeviceSettings
from vf3d.models.published import published_cogvideo, published_flux
from vf3d.sag.sampling import SAG_PRESETS, SAGPipeline
from vf3d.sag.style_lora import LORA_PRESETS, StyleExample, StyleLoRATrainer

H, W, SEGMENT = 480, 720, 46
STAGES = ("lora", "anchor", "segment", "noise", "metrics")


def measure(device: torch.device, run: Callable[[], dict]) -> dict:
    """Run once; wall seconds and peak device memory (GiB) with whatever `run` reports."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    extra = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out = {"seconds": round(time.perf_counter() - start, 3), **extra}
    if device.type == "cuda":
        out["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def build_on(device: torch.device, dtype: torch.dtype, build: Callable[[], object]) -> object:
    """Build a model set directly on the device in its dtype (a 12B model never passes through host fp32)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device if device.type == "cuda" else "cpu"):
            return build()
    finally:
        torch.set_default_dtype(previous)


def lora_stage(args, settings: DeviceSettings, dtype) -> dict:
    components = build_on(settings.torch_device(), dtype, lambda: published_flux(args.scale, dtype=dtype))
    trainer = StyleLoRATrainer(components, replace(LORA_PRESETS["paper"], steps=args.lora_steps, eval_samples=1))
    settings.place(trainer.pipe, inference=False)
    reference = Image.fromarray(np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8))
    example = StyleExample(reference, reference.convert("L").convert("RGB"), "")
    times = []
    result = measure(settings.torch_device(), lambda: {"losses": trainer.train(
        [example], progress=lambda step, loss: times.append(time.perf_counter())).losses})
    per_step = round(float(np.mean(np.diff(times))) if len(times) > 1 else result["seconds"], 3)
    return {**result, "seconds_per_step": per_step, "seconds_per_style_400_steps": round(400 * per_step, 1)}


def anchor_stage(args, settings: DeviceSettings, dtype) -> dict:
    pipe = build_on(settings.torch_device(), dtype, lambda: published_flux(args.scale, dtype=dtype)).pipeline()
    settings.place(pipe)
    pipe.set_progress_bar_config(disable=True)
    control = Image.fromarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8))
    sag = SAGPipeline(pipe)
    run = lambda: {"image": list(sag("a stone house", control, H, W, settings=replace(  # noqa: E731
        SAG_PRESETS["paper"], num_inference_steps=args.anchor_steps), generator=torch.Generator().manual_seed(0)
        ).image.size)}
    run()  # warm-up: kernels, compile caches, offload hooks
    result = measure(settings.torch_device(), run)
    return {**result, "steps": args.anchor_steps,
            "seconds_per_anchor_25_steps": round(result["seconds"] * 25 / args.anchor_steps, 2)}


def segment_stage(args, settings: DeviceSettings, dtype) -> dict:
    def build():
        components = published_cogvideo(args.scale, dtype=dtype)
        widen_patch_embed(components.transformer, components.transformer.config.out_channels)
        return components

    ggi = GGIPipeline(build_on(settings.torch_device(), dtype, build))
    settings.place(ggi.pipe)
    ggi.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    edges = [rng.integers(0, 256, (H, W), dtype=np.uint8) for _ in range(SEGMENT)]
    first, last = (rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2))
    timings = {}
    for steps in (1, args.ggi_steps):  # two runs: their difference is the denoising cost of the extra steps
        timings[steps] = measure(settings.torch_device(), lambda: {"frames": len(ggi(
            "a stone house", first, last, edges, H, W, generator=torch.Generator().manual_seed(0),
            settings=replace(GGI_PRESETS["paper"], num_inference_steps=steps)).frames)})
    per_step = (timings[args.ggi_steps]["seconds"] - timings[1]["seconds"]) / max(1, args.ggi_steps - 1)
    fixed = timings[1]["seconds"] - per_step  # VAE encode/decode, text encoding
    peaks = [v["peak_gib"] for v in timings.values() if "peak_gib" in v]  # on a GPU only
    return {"runs": {str(k): v for k, v in timings.items()}, "seconds_per_step_with_cfg": round(per_step, 3),
            "seconds_fixed": round(fixed, 2), "seconds_per_segment_30_steps": round(fixed + 30 * per_step, 1),
            **({"peak_gib": max(peaks)} if peaks else {})}


def noise_stage(args, settings: DeviceSettings, dtype) -> dict:
    flows = np.full((SEGMENT - 1, H, W, 2), 1.3, np.float32)
    valid = np.ones(flows.shape[:3], bool)
    return measure(settings.torch_device(), lambda: {"shape": list(warped_noise_for_segment(
        flows, valid, generator=torch.Generator().manual_seed(0), device=settings.torch_device()).shape)})


def metrics_stage(args, settings: DeviceSettings, dtype) -> dict:
    """Every Table 2 metric of one 46-frame 720x480 segment, the metric networks written and loaded as on disk."""
    import tempfile

    from evaluation.metrics import evaluate_video
    from evaluation.models import full_metric_models
    from evaluation.published import write_full_metric_layout
    from vf3d.preprocess.camera import Intrinsics

    with tempfile.TemporaryDirectory() as folder:
        models = full_metric_models(write_full_metric_layout(Path(folder) / "metrics", args.scale),
                                    settings.torch_device(), hf_cache=Path(folder) / "hub")
    frames = np.random.default_rng(0).integers(0, 256, (SEGMENT, H, W, 3), dtype=np.uint8)
    c2w = np.tile(np.eye(4), (SEGMENT, 1, 1))
    c2w[:, 0, 3] = np.arange(SEGMENT) * 0.02
    depth = np.full((SEGMENT, H, W), 5.0, np.float32)
    intrinsics = Intrinsics(W, H, fx=500.0, fy=500.0, cx=W / 2, cy=H / 2)
    return measure(settings.torch_device(), lambda: {"metrics": sorted(k for k in evaluate_video(
        frames, {0: frames[0], SEGMENT - 1: frames[-1]}, frames[0], depth, c2w, intrinsics, models))})


RUNNERS = {"lora": lora_stage, "anchor": anchor_stage, "segment": segment_stage, "noise": noise_stage,
           "metrics": metrics_stage}


def is_report(path: Path) -> bool:
    """Whether `path` holds an earlier report of this script (the only file --out may replace)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(report, dict) and {"scale", "torch", "results"} <= set(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", choices=("full", "shrunk"), default="full")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--offload", default="none,model,group", help="comma-separated offload modes")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated: " + ", ".join(STAGES))
    parser.add_argument("--lora-steps", type=int, default=6)
    parser.add_argument("--anchor-steps", type=int, default=25)
    parser.add_argument("--ggi-steps", type=int, default=4)
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"--stages: unknown {unknown}; known: {', '.join(STAGES)}")
    for offload in args.offload.split(","):
        try:
            DeviceSettings(device=args.device, offload=offload)
        except ValueError as exc:
            parser.error(str(exc))
    if args.out.exists() and not is_report(args.out):
        parser.error(f"--out {args.out}: exists and is not an acceptance report; choose another path")
    report = {"scale": args.scale, "torch": torch.__version__, "host": platform.node(), "results": {}}
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name()
    for offload in args.offload.split(","):
        settings = DeviceSettings(device=args.device, offload=offload)
        dtype = torch.bfloat16 if settings.torch_device().type == "cuda" else torch.float32
        for stage in stages:
            if stage in ("noise", "metrics") and offload != args.offload.split(",")[0]:
                continue  # not offloaded: once is enough
            key = f"{stage}/offload={offload}"
            try:
                report["results"][key] = RUNNERS[stage](args, settings, dtype)
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory without offloading: recorded, not fatal
                report["results"][key] = {"error": str(exc).splitlines()[0][:300]}
            print(key, json.dumps(report["results"][key]), flush=True)
            write_text_atomic(args.out, json.dumps(report, indent=1))  # partial results survive a timeout


if __name__ == "__main__":
    main()
