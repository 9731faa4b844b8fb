"""GPU acceptance run: speed and peak memory of every model stage at the paper's shapes, per offload mode.

    .venv/bin/python scripts/gpu_acceptance.py --out-dir gpu_acceptance --budget-s 480     # on a GPU
    .venv/bin/python scripts/gpu_acceptance.py --scale shrunk --device cpu --stages lora,anchor,noise --out x.json

Builds the published architectures (`vf3d.models.published`: FLUX.1-dev + XLabs HED ControlNet, CogVideoX-5b-I2V)
with random bf16 weights on the device: nothing is downloaded, and time and memory do not depend on weight
values. Measures, for each offload mode (`--offload`, default none,model,group), the stages in order of value:

- `anchor`: seconds per SAG anchor view (25 steps, 720x480, true CFG from step 1), after a 1-step warm-up;
- `segment`: seconds per GGI segment (49 frames, 720x480, 30 steps with CFG 6), from `--ggi-steps` timed steps
  plus the VAE encode/decode, extrapolated to 30, after a 1-step warm-up;
- `lora`: seconds per distribution-alignment step at the paper's recipe (1024 px, rank 16, transformer and
  ControlNet LoRA, AdamW, clipping), and the implied seconds per style (400 steps);
- `noise`: the official noise warping of one segment (2880x1920 field) on the device (once: nothing to offload);
- `metrics`: every Table 2 metric of one 46-frame segment (`evaluation.published` networks; once);

each with the peak GPU memory (`torch.cuda.max_memory_allocated`) and its wall time including the model build.
The JSON report (`--out FILE` and/or `--out-dir DIR`: DIR/acceptance.json) is rewritten after every stage, so a
killed run keeps what it measured; a one-screen summary is printed at the end (and saved as DIR/summary.txt).

`--budget-s` plans the time: before each stage the script compares the seconds left with the stage's expected
wall time (the same stage's measured wall time in an earlier offload mode, scaled by `OFFLOAD_FACTOR`, else the
planning allowance `ALLOWANCE_S`, overridable with `--expect`), and skips a stage that would not fit rather than
be cut off in the middle; skipped stages are listed with the options that run them later. The allowances only
plan; no number in the report comes from them.

Runs without Dagster, Blender or the `vf3d_assets`/`resources` packages (the GPU machine has none of them):
only `vf3d.*` and `evaluation.*` modules, torch, diffusers, transformers, peft, pyiqa and torchmetrics.
`scripts/gpu_bundle.sh` downloads the wheels that machine lacks; README "Run with real weights" has the command.
"""

from __future__ import annotations

import time

START = time.monotonic()  # the budget counts the imports too

import argparse
import gc
import json
import platform
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # vf3d and evaluation from this checkout, installed or not

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
STAGES = ("anchor", "segment", "lora", "noise", "metrics")
"""In order of value: with a budget, the first ones run first."""
ONCE = ("noise", "metrics")
"""Nothing to offload: measured with the first offload mode only."""
ALLOWANCE_S = {
    "full": {"anchor": 150, "segment": 240, "lora": 150, "noise": 40, "metrics": 180},
    "shrunk": {"anchor": 60, "segment": 720, "lora": 90, "noise": 120, "metrics": 420},
}
"""Planning allowance (seconds, with the model build) of a stage without offloading before any stage was measured:
generous guesses for one H100 at full scale and for this project's 2-core CPU machines at shrunk scale. They only
decide what is started under `--budget-s`; no reported number comes from them."""
OFFLOAD_FACTOR = {"none": 1.0, "model": 1.5, "group": 4.0, "sequential": 10.0}
"""Planned slowdown of a stage per offload mode relative to `none` (weights streamed over PCIe each step)."""
GRACE_S = 30
"""A stage still running this long after the budget is stopped (the summary and report are still written)."""
REPORT_NAME, SUMMARY_NAME = "acceptance.json", "summary.txt"


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


def release() -> None:
    """Free what the last stage left behind (reference cycles, the CUDA caching allocator's blocks)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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
    run = lambda steps: {"image": list(sag("a stone house", control, H, W, settings=replace(  # noqa: E731
        SAG_PRESETS["paper"], num_inference_steps=steps), generator=torch.Generator().manual_seed(0)).image.size)}
    run(1)  # warm-up, one step at the same shapes: kernels, compile caches, offload hooks
    result = measure(settings.torch_device(), lambda: run(args.anchor_steps))
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

    def run(steps: int) -> dict:
        return {"frames": len(ggi("a stone house", first, last, edges, H, W, generator=torch.Generator().manual_seed(0),
                                  settings=replace(GGI_PRESETS["paper"], num_inference_steps=steps)).frames)}

    run(1)  # warm-up: kernel loading, conv autotuning and offload hooks would otherwise land on the 1-step run
    # two measured runs: their difference is the denoising cost of the extra steps
    timings = {steps: measure(settings.torch_device(), lambda steps=steps: run(steps)) for steps in (1, args.ggi_steps)}
    per_step = (timings[args.ggi_steps]["seconds"] - timings[1]["seconds"]) / max(1, args.ggi_steps - 1)
    fixed = timings[1]["seconds"] - per_step  # VAE encode/decode, text encoding
    peaks = [v["peak_gib"] for v in timings.values() if "peak_gib" in v]  # on a GPU only
    return {"runs": {str(k): v for k, v in timings.items()}, "seconds_per_step_with_cfg": round(per_step, 3),
            "seconds_fixed": round(fixed, 2), "seconds_per_segment_30_steps": round(fixed + 30 * per_step, 1),
            **({"peak_gib": max(peaks)} if peaks else {}),
            **({} if per_step > 0 else {"warning": "the longer run was not slower: timings too noisy to split"})}


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


RUNNERS = {"anchor": anchor_stage, "segment": segment_stage, "lora": lora_stage, "noise": noise_stage,
           "metrics": metrics_stage}


def is_report(path: Path) -> bool:
    """Whether `path` holds an earlier report of this script (the only file --out may replace)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(report, dict) and {"scale", "torch", "results"} <= set(report)


def parse_expect(text: str) -> dict[str, float]:
    """`--expect anchor=90,segment=200` -> {"anchor": 90.0, "segment": 200.0}."""
    expect = {}
    for item in filter(None, text.split(",")):
        stage, _, seconds = item.partition("=")
        if stage not in STAGES:
            raise ValueError(f"--expect: unknown stage {stage!r}; known: {', '.join(STAGES)}")
        try:
            expect[stage] = float(seconds)
        except ValueError:
            raise ValueError(f"--expect: {item!r} is not STAGE=SECONDS") from None
    return expect


class Planner:
    """What fits in the budget: a stage's expected wall time is its measured wall time in an earlier offload mode
    scaled by `OFFLOAD_FACTOR`, else its allowance (`ALLOWANCE_S` or `--expect`) scaled the same way."""

    def __init__(self, budget_s: float | None, allowance: dict[str, float]):
        self.budget_s, self.allowance, self.measured = budget_s, allowance, {}

    def elapsed(self) -> float:
        return time.monotonic() - START

    def expected(self, stage: str, offload: str) -> float:
        factor = OFFLOAD_FACTOR.get(offload, 1.0)
        if stage in self.measured:
            wall, measured_offload = self.measured[stage]
            return wall * factor / OFFLOAD_FACTOR.get(measured_offload, 1.0)
        return self.allowance[stage] * factor

    def refusal(self, stage: str, offload: str) -> str | None:
        """Why `stage` is not started now, or None when it fits (or there is no budget)."""
        if self.budget_s is None:
            return None
        left, needs = self.budget_s - self.elapsed(), self.expected(stage, offload)
        return None if needs <= left else f"budget: expected ~{needs:.0f} s, {max(left, 0):.0f} s left"

    def record(self, stage: str, offload: str, wall: float) -> None:
        if stage not in self.measured:  # the first successful mode is the reference
            self.measured[stage] = (wall, offload)


def headline(stage: str, result: dict) -> str:
    """The one number a reader wants from a stage's result."""
    if "error" in result:
        return "error: " + result["error"][:60]
    if stage == "anchor":
        return f"{result['seconds_per_anchor_25_steps']} s per anchor (25 steps)"
    if stage == "segment":
        return f"{result['seconds_per_segment_30_steps']} s per segment (30 steps)" + (
            " (noisy: see warning)" if "warning" in result else "")
    if stage == "lora":
        return f"{result['seconds_per_step']} s per step, {result['seconds_per_style_400_steps']} s per style"
    if stage == "noise":
        return f"{result['seconds']} s per segment's noise"
    return f"{result['seconds']} s for {len(result.get('metrics', []))} metric entries"


def summary(report: dict, destinations: list[Path]) -> str:
    """One screen: every stage and offload mode that was asked for, measured, failed or skipped."""
    budget = f" of a {report['budget_s']:.0f} s budget" if report.get("budget_s") is not None else ""
    lines = [(f"GPU acceptance ({report['scale']} scale) on {report.get('gpu', 'CPU')}, torch {report['torch']}: "
              f"{report['elapsed_s']:.0f} s{budget}"),
             f"{'stage':<8} {'offload':<10} {'status':<8} {'wall s':>8} {'peak GiB':>9}  result"]
    for key, status in report["plan"].items():
        stage, offload = key.split("/offload=")
        result = report["results"].get(key, {})
        wall = f"{result['wall_seconds']:.1f}" if "wall_seconds" in result else "-"
        peak = f"{result['peak_gib']:.2f}" if "peak_gib" in result else "-"
        text = headline(stage, result) if result else report["skipped"].get(key, "")
        lines.append(f"{stage:<8} {offload:<10} {status:<8} {wall:>8} {peak:>9}  {text}"[:118])
    left = [key for key, status in report["plan"].items() if status in ("skipped", "not run", "running", "killed")]
    if left:
        stages = ",".join(dict.fromkeys(key.split("/")[0] for key in left))
        modes = ",".join(dict.fromkeys(key.split("=")[1] for key in left))
        lines.append(f"not measured: {len(left)}; to run them later: --stages {stages} --offload {modes}")
    lines.append("report: " + ", ".join(str(path) for path in destinations))
    return "\n".join(lines)


class Killed(BaseException):
    """SIGTERM (e.g. `timeout`) or the hard stop `GRACE_S` after the budget: stop the stage running then, keep what
    was measured, print the summary. Not an `Exception`, so a stage's error handling does not swallow it."""


def on_signal(signum, frame):
    raise Killed(signal.Signals(signum).name)


def imported_distributions() -> dict[str, str]:
    """Version and folder of every installed distribution the run imported (what the GPU machine really used)."""
    from importlib import metadata

    tops = {name.partition(".")[0] for name in list(sys.modules)} - set(sys.stdlib_module_names)
    found = {}
    for top, dists in metadata.packages_distributions().items():
        for dist in dists if top in tops else ():
            try:
                found[dist] = f"{metadata.version(dist)} ({metadata.distribution(dist).locate_file('')})"
            except metadata.PackageNotFoundError:
                found[dist] = "?"
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the JSON report, rewritten after every stage")
    parser.add_argument("--out-dir", type=Path, help=f"folder for {REPORT_NAME} (after every stage) and "
                        f"{SUMMARY_NAME}; made if missing")
    parser.add_argument("--scale", choices=("full", "shrunk"), default="full")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--offload", default="none,model,group", help="comma-separated offload modes")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated, run in this order of value: " + ", ".join(STAGES))
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds from the start for the whole run: a stage that would not fit is not started; "
                        f"one still running {GRACE_S} s after it is stopped")
    parser.add_argument("--expect", default="", help="planning allowance per stage without offloading, e.g. "
                        "anchor=90,segment=200 (default: ALLOWANCE_S of the scale)")
    parser.add_argument("--lora-steps", type=int, default=6)
    parser.add_argument("--anchor-steps", type=int, default=25)
    parser.add_argument("--ggi-steps", type=int, default=4, help="at least 2 (1 and this many are timed)")
    args = parser.parse_args()
    if args.out is None and args.out_dir is None:
        parser.error("give --out FILE and/or --out-dir DIR")
    if args.budget_s is not None and not -1e7 < args.budget_s < 1e7:  # NaN, inf: not a number of seconds
        parser.error(f"--budget-s {args.budget_s}: expected a number of seconds")
    for option, least in (("lora_steps", 1), ("anchor_steps", 1), ("ggi_steps", 2)):
        if getattr(args, option) < least:
            parser.error(f"--{option.replace('_', '-')} {getattr(args, option)}: expected at least {least}")
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"--stages: unknown {unknown}; known: {', '.join(STAGES)}")
    stages = [stage for stage in STAGES if stage in stages]  # the order of value, whatever order was given
    offloads = [mode for mode in args.offload.split(",") if mode]
    try:
        expect = parse_expect(args.expect)
        for offload in offloads:
            DeviceSettings(device=args.device, offload=offload).torch_device()
    except ValueError as exc:
        parser.error(str(exc))
    destinations = [path for path in (args.out, args.out_dir and args.out_dir / REPORT_NAME) if path]
    for path in destinations:
        if path.exists() and not is_report(path):
            parser.error(f"{path}: exists and is not an acceptance report; choose another path")
    if args.out_dir is not None:
        try:
            args.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            parser.error(f"--out-dir {args.out_dir}: cannot make the folder ({exc.strerror})")

    planner = Planner(args.budget_s, {**ALLOWANCE_S[args.scale], **expect})
    jobs = [(stage, offload) for stage in stages for offload in (offloads[:1] if stage in ONCE else offloads)]
    report = {"scale": args.scale, "torch": torch.__version__, "python": platform.python_version(),
              "host": platform.node(), "budget_s": args.budget_s, "elapsed_s": 0.0,
              "plan": {f"{stage}/offload={offload}": "not run" for stage, offload in jobs},
              "results": {}, "skipped": {}, "imported": {}}
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name()

    def save() -> None:
        report["elapsed_s"] = round(planner.elapsed(), 1)
        report["imported"] = imported_distributions()
        for path in destinations:
            write_text_atomic(path, json.dumps(report, indent=1))  # partial results survive a timeout

    try:
        save()  # the plan, before any work: a destination that cannot be written ends here, in one line
    except OSError as exc:
        parser.error(f"{' and '.join(map(str, destinations))}: cannot write the report there ({exc.strerror})")
    signal.signal(signal.SIGTERM, on_signal)
    if args.budget_s is not None:
        signal.signal(signal.SIGALRM, on_signal)
        signal.alarm(max(1, round(args.budget_s + GRACE_S - planner.elapsed())))
    killed = False
    try:
        for stage, offload in jobs:
            key = f"{stage}/offload={offload}"
            refusal = planner.refusal(stage, offload)
            if refusal:
                report["plan"][key], report["skipped"][key] = "skipped", refusal
                print(key, "skipped:", refusal, flush=True)
                save()
                continue
            settings = DeviceSettings(device=args.device, offload=offload)
            dtype = torch.bfloat16 if settings.torch_device().type == "cuda" else torch.float32
            report["plan"][key] = "running"  # what a report of a run killed from outside shows
            save()
            started = time.monotonic()
            try:
                result = RUNNERS[stage](args, settings, dtype)
                report["plan"][key] = "ok"
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory without offloading: recorded, the rest runs
                first_line = (str(exc).splitlines() or [""])[0]
                result = {"error": first_line[:300], "error_type": type(exc).__name__}
                report["plan"][key] = "error"
            release()  # a failed stage's tensors must not crowd the next one
            result["wall_seconds"] = round(time.monotonic() - started, 2)
            if "error" not in result:
                planner.record(stage, offload, result["wall_seconds"])
            report["results"][key] = result
            print(key, json.dumps(result), flush=True)
            save()
    except (Killed, KeyboardInterrupt) as stop:
        killed = True
        for key, status in report["plan"].items():
            if status == "running":
                report["plan"][key] = "killed"
                report["skipped"][key] = f"stopped by {stop or type(stop).__name__} at {planner.elapsed():.0f} s"
        print(f"stopped ({type(stop).__name__} {stop}): the stage running then is marked 'killed'", flush=True)
    signal.alarm(0)
    save()
    text = summary(report, destinations)
    if args.out_dir is not None:
        write_text_atomic(args.out_dir / SUMMARY_NAME, text + "\n")
    print("\n" + text, flush=True)
    if killed:
        sys.exit(130)


if __name__ == "__main__":
    main()
