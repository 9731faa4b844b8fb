"""Evaluation assets: per-partition metrics (paper Sec. 4.2) and the benchmark table (paper Table 2)."""

import json
import math

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from PIL import Image

from evaluation.metrics import METRICS_CODE_VERSION, PAPER_TABLE2, evaluate_video
from evaluation.quality import DEFAULT_AESTHETIC_HEAD, aesthetic_head_spec
from evaluation.report import COLUMNS, current_records, paper_rows_as_dicts, write_report
from evaluation.results_page import ArtifactLayout, write_results_page
from evaluation.structure import PSNR_D_BACKGROUND
from resources.artifacts import ArtifactStore
from resources.gpu import GPU
from resources.models import ModelStore
from vf3d.common.atomic import atomic_dir, write_text_atomic
from vf3d.common.hashing import content_hash
from vf3d.common.visualize import line_plot
from vf3d.baselines.methods import METHODS
from vf3d.preprocess.guidance import ShotGeometry
from vf3d_assets.artifact_server import page_metadata
from vf3d_assets.assets.ggi import video_asset_name
from vf3d_assets.assets.sag import anchors
from vf3d_assets.assets.scenes import guidance
from vf3d_assets.metadata import image_markdown, method_display
from vf3d_assets.partitions import catalog, from_scene, scene_style_partitions


class MetricsConfig(Config):
    min_clip_i: float = 0.5
    """Quality check (warning only): CLIP-I to the reference at least this (paper, ours: 0.840)."""
    min_subject_consistency: float = 0.8
    """Quality check (warning only): VBench SC at least this (paper, ours: 0.891)."""
    aesthetic_head: str = DEFAULT_AESTHETIC_HEAD
    """CLIP-A's head: 'laion_linear' (LAION-AI/aesthetic-predictor, the paper's citation) or 'improved_mlp'."""
    psnr_d_background: str = "exclude"
    """PSNR-D's background pixels: 'exclude' (our reading; the paper does not say) or 'farthest' (scored as the
    farthest depth)."""


def metrics_asset_name(method_key: str) -> str:
    return "metrics" if method_key == "ggi" else f"metrics_{method_key}"


def metrics_asset(method_key: str = "ggi", code_version: str = METRICS_CODE_VERSION) -> AssetsDefinition:
    """The metrics of one method's videos; a factory so a test can bump its code version like an edit would."""
    name = metrics_asset_name(method_key)
    video_name = video_asset_name(method_key)

    @asset(
        name=name,
        partitions_def=scene_style_partitions,
        deps=[AssetKey(video_name), anchors, AssetDep(guidance, partition_mapping=from_scene)],
        group_name="evaluation",
        code_version=code_version,
        pool="gpu",
        description=f"{method_display(method_key)}: visual fidelity on pseudo-GT (PSNR/SSIM/LPIPS), PSNR-D, CLIP-A, "
                    "MUSIQ, CLIP-I, VBench SC/BC, geometric flicker.",
        check_specs=[
            AssetCheckSpec("values_are_sane", asset=name, description="Every value finite (PSNR may be inf) "
                                                                      "and one frame per trajectory frame."),
            AssetCheckSpec("quality_thresholds", asset=name, description="CLIP-I and SC above thresholds."),
        ],
    )
    def metrics(context: AssetExecutionContext, config: MetricsConfig, artifacts: ArtifactStore,
                models: ModelStore, gpu: GPU) -> MaterializeResult:
        aesthetic_head_spec(config.aesthetic_head)  # a bad choice fails before any model loads
        if config.psnr_d_background not in PSNR_D_BACKGROUND:
            raise ValueError(f"metrics config psnr_d_background={config.psnr_d_background!r}: expected one of "
                             f"{', '.join(PSNR_D_BACKGROUND)}")
        keys = context.partition_key.keys_by_dimension
        scene_key, style_key = keys["scene"], keys["style"]
        guidance_dir = artifacts.path("guidance", scene_key)
        video_dir = artifacts.path(video_name, context.partition_key)
        geometry = ShotGeometry.load(guidance_dir)
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((video_dir / "frames").glob("*.png"))]
        anchor_dir = artifacts.path("anchors", context.partition_key) / "anchors"
        anchor_images = {int(p.stem): np.asarray(Image.open(p).convert("RGB"))
                         for p in sorted(anchor_dir.glob("*.png"))}
        reference = np.asarray(Image.open(catalog.style(style_key).reference).convert("RGB"))
        device = gpu.settings()
        metric_models = models.metric_models(device.torch_device(), device.torch_dtype(), config.aesthetic_head)
        values = evaluate_video(frames, anchor_images, reference, geometry.depth, geometry.c2w, geometry.intrinsics,
                                metric_models, config.psnr_d_background)
        video_info = json.loads((video_dir / "video.json").read_text())
        record = {"scene": scene_key, "style": style_key, "category": catalog.scene(scene_key).category,
                  "method": method_key, "generation_profile": video_info["profile"],
                  "metric_profile": values["profile"], "metrics_code_version": code_version, **values}
        out = artifacts.path(name, context.partition_key) / "metrics.json"
        write_text_atomic(out, json.dumps(record, indent=1))
        numbers = {c: float(values[c]) for c in COLUMNS}
        sane = all(math.isfinite(v) or (c in ("psnr", "flicker_psnr") and v == math.inf) for c, v in numbers.items())
        sane &= len(frames) == geometry.depth.shape[0]
        per_pair = [v for v in values["flicker_per_pair"] if v is not None]
        return MaterializeResult(
            data_version=DataVersion(content_hash(out)),
            metadata={**numbers, "method": method_key, "method_label": method_display(method_key),
                      "generation_profile": video_info["profile"], "metric_profile": values["profile"],
                      "aesthetic_head": values["aesthetic_head"], "psnr_d_background": values["psnr_d_background"],
                      "model_ids": MetadataValue.json(values["model_ids"]), "path": MetadataValue.path(str(out)),
                      "flicker_per_frame": image_markdown(line_plot(per_pair), "flicker per frame pair")
                      if len(per_pair) >= 2 else MetadataValue.text("fewer than two scored pairs")},
            check_results=[
                AssetCheckResult(check_name="values_are_sane", passed=bool(sane),
                                 metadata={"frames": len(frames), "trajectory_frames": geometry.depth.shape[0],
                                           "non_finite": MetadataValue.json(
                                               [c for c, v in numbers.items() if not math.isfinite(v)])}),
                AssetCheckResult(check_name="quality_thresholds", severity=AssetCheckSeverity.WARN,
                                 passed=numbers["clip_i"] >= config.min_clip_i
                                 and numbers["subject_consistency"] >= config.min_subject_consistency,
                                 metadata={"profile": values["profile"], "clip_i": numbers["clip_i"],
                                           "subject_consistency": numbers["subject_consistency"]}),
            ],
        )

    return metrics


METRICS_ASSETS = {key: metrics_asset(key) for key in METHODS}
metrics = METRICS_ASSETS["ggi"]


@asset(deps=list(METRICS_ASSETS.values()), group_name="evaluation", code_version="3",
       description="Table 2 of the paper for every method we ran (ours, ablations, baselines): rows per method and "
                   "profile, mean ± std, bootstrap 95% intervals per category, paired differences against ours, "
                   "per-scene tables; the paper's published rows beside them (CSV, Markdown, PNG), and the results "
                   "page index.html: every method's video of each shot side by side, in sync, with its numbers.")
def benchmark_report(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
    records = [json.loads(p.read_text()) for key in METHODS
               for p in sorted(artifacts.base().glob(f"{metrics_asset_name(key)}/*/metrics.json"))]
    partitions = {(scene, style) for scene in catalog.scenes for style in catalog.styles}
    records, left_out = current_records(records, METRICS_CODE_VERSION, partitions)  # stale and orphans counted
    records = [r for r in records if r["category"] != "demo"] or records  # the demo counts only when alone
    out = artifacts.path("benchmark_report", "all")
    with atomic_dir(out) as tmp:
        paths = write_report(records, paper_rows_as_dicts(PAPER_TABLE2), tmp, left_out=left_out,
                             code_version=METRICS_CODE_VERSION)
        # the page shows the report's own tables, read back from its CSVs: the same numbers as the Markdown
        page = write_results_page(records, tmp, ArtifactLayout(artifacts.base(), video_asset_name), page_dir=out,
                                  table=pd.read_csv(paths["benchmark"]), scenes=pd.read_csv(paths["per_scene"]),
                                  left_out=left_out, code_version=METRICS_CODE_VERSION)
    plot = np.asarray(Image.open(out / "benchmark.png").convert("RGB"))
    methods = sorted({r["method"] for r in records})
    return MaterializeResult(data_version=DataVersion(content_hash(out)), metadata={
        "path": MetadataValue.path(str(out / "benchmark.md")), "videos": len(records),
        "left_out_stale": left_out["stale"], "left_out_orphan": left_out["orphan"],
        "results_page": page_metadata(out / page.name, artifacts.base()),
        "methods": MetadataValue.json(methods),
        "profiles": MetadataValue.json(sorted({f"generated {r.get('generation_profile', 'unknown')}, scored "
                                               f"{r.get('metric_profile', r.get('profile'))}" for r in records})),
        "table": MetadataValue.md((out / "benchmark.md").read_text()),
        "plot": image_markdown(plot, "benchmark metrics")})
