"""Evaluation assets: per-partition metrics (paper Sec. 4.2) and the benchmark table (paper Table 2)."""

import json
import math

import numpy as np
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from PIL import Image

from evaluation.metrics import PAPER_TABLE2, evaluate_video
from evaluation.report import COLUMNS, benchmark_table, paper_rows_as_dicts, write_report
from resources.artifacts import ArtifactStore
from resources.gpu import GPU
from resources.models import ModelStore
from vf3d.common.atomic import atomic_dir, write_text_atomic
from vf3d.common.hashing import content_hash
from vf3d.preprocess.camera import Intrinsics
from vf3d_assets.assets.ggi import video
from vf3d_assets.assets.sag import anchors
from vf3d_assets.assets.scenes import guidance
from vf3d_assets.metadata import image_markdown
from vf3d_assets.partitions import catalog, from_scene, scene_style_partitions

METRICS_CODE_VERSION = "1"


class MetricsConfig(Config):
    min_clip_i: float = 0.5
    """Quality check (warning only): CLIP-I to the reference at least this (paper, ours: 0.840)."""
    min_subject_consistency: float = 0.8
    """Quality check (warning only): VBench SC at least this (paper, ours: 0.891)."""


def metrics_asset(code_version: str = METRICS_CODE_VERSION) -> AssetsDefinition:
    """The metrics asset; a factory so a test can bump its code version like an edit would."""

    @asset(
        name="metrics",
        partitions_def=scene_style_partitions,
        deps=[video, anchors, AssetDep(guidance, partition_mapping=from_scene)],
        group_name="evaluation",
        code_version=code_version,
        description="Visual fidelity on pseudo-GT (PSNR/SSIM/LPIPS), PSNR-D, CLIP-A, MUSIQ, CLIP-I, VBench SC/BC.",
        check_specs=[
            AssetCheckSpec("values_are_sane", asset="metrics", description="Every value finite (PSNR may be inf) "
                                                                             "and one frame per trajectory frame."),
            AssetCheckSpec("quality_thresholds", asset="metrics", description="CLIP-I and SC above thresholds."),
        ],
    )
    def metrics(context: AssetExecutionContext, config: MetricsConfig, artifacts: ArtifactStore,
                models: ModelStore, gpu: GPU) -> MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        scene_key, style_key = keys["scene"], keys["style"]
        guidance_dir = artifacts.path("guidance", scene_key)
        video_dir = artifacts.path("video", context.partition_key)
        meta = json.loads((guidance_dir / "meta.json").read_text())
        k = meta["intrinsics"]
        intrinsics = Intrinsics(meta["width"], meta["height"], k["fx"], k["fy"], k["cx"], k["cy"])
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((video_dir / "frames").glob("*.png"))]
        anchor_dir = artifacts.path("anchors", context.partition_key) / "anchors"
        anchor_images = {int(p.stem): np.asarray(Image.open(p).convert("RGB")) for p in sorted(anchor_dir.glob("*.png"))}
        reference = np.asarray(Image.open(catalog.style(style_key).reference).convert("RGB"))
        device = gpu.settings()
        values = evaluate_video(frames, anchor_images, reference, np.load(guidance_dir / "depth.npy"),
                                np.array(meta["camera_to_world"]), intrinsics,
                                models.metric_models(device.torch_device(), device.torch_dtype()))
        video_info = json.loads((video_dir / "video.json").read_text())
        record = {"scene": scene_key, "style": style_key, "category": catalog.scene(scene_key).category,
                  "method": video_info["method"], **values}
        out = artifacts.path("metrics", context.partition_key) / "metrics.json"
        write_text_atomic(out, json.dumps(record, indent=1))
        numbers = {c: float(values[c]) for c in COLUMNS}
        sane = all(math.isfinite(v) or (c == "psnr" and v == math.inf) for c, v in numbers.items())
        sane &= len(frames) == meta["num_frames"]
        return MaterializeResult(
            data_version=DataVersion(content_hash(out)),
            metadata={**numbers, "profile": values["profile"], "method": video_info["method"],
                      "model_ids": MetadataValue.json(values["model_ids"]), "path": MetadataValue.path(str(out))},
            check_results=[
                AssetCheckResult(check_name="values_are_sane", passed=bool(sane),
                                 metadata={"frames": len(frames), "trajectory_frames": meta["num_frames"]}),
                AssetCheckResult(check_name="quality_thresholds", severity=AssetCheckSeverity.WARN,
                                 passed=numbers["clip_i"] >= config.min_clip_i
                                 and numbers["subject_consistency"] >= config.min_subject_consistency,
                                 metadata={"profile": values["profile"], "clip_i": numbers["clip_i"],
                                           "subject_consistency": numbers["subject_consistency"]}),
            ],
        )

    return metrics


metrics = metrics_asset()


@asset(deps=[metrics], group_name="evaluation", code_version="1",
       description="Table 2 of the paper for our videos: rows per method, columns per metric, per scene category "
                   "and overall, the paper's published rows beside ours (CSV, Markdown, PNG).")
def benchmark_report(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
    records = [json.loads(p.read_text()) for p in sorted(artifacts.base().glob("metrics/*/metrics.json"))]
    records = [r for r in records if r["category"] != "demo"] or records  # the demo counts only when alone
    table = benchmark_table(records, paper_rows_as_dicts(PAPER_TABLE2))
    out = artifacts.path("benchmark_report", "all")
    with atomic_dir(out) as tmp:
        write_report(table, tmp)
    plot = np.asarray(Image.open(out / "benchmark.png").convert("RGB"))
    return MaterializeResult(data_version=DataVersion(content_hash(out)), metadata={
        "path": MetadataValue.path(str(out / "benchmark.md")), "videos": len(records),
        "profiles": MetadataValue.json(sorted({r["profile"] for r in records})),
        "table": MetadataValue.md((out / "benchmark.md").read_text()),
        "plot": image_markdown(plot, "benchmark metrics")})
