"""The benchmark report's arithmetic and honesty, on hand-made metric records."""

import math

import numpy as np
import pytest

from evaluation.metrics import METRICS, PAPER_TABLE2
from evaluation.report import (PUBLISHED, RANDOM_WEIGHTS, benchmark_table, paired_differences, per_scene_table,
                               summarise, write_report)


def record(method, scene, style, category="outdoor", profile="full", **values):
    return {"method": method, "scene": scene, "style": style, "category": category, "generation_profile": profile,
            "metric_profile": profile, "aesthetic_head": "laion_linear", "psnr_d_background": "exclude",
            "model_ids": {"clip_l14": f"openai/clip-vit-large-patch14 ({profile})"},
            **{m: values.get(m, 1.0) for m in METRICS}}


def test_summary_counts_non_finite_values_instead_of_dropping_them():
    stats = summarise([1.0, 2.0, 3.0, math.nan, math.inf])
    assert stats["mean"] == 2.0 and stats["std"] == pytest.approx(1.0)
    assert (stats["n"], stats["nan"], stats["inf"]) == (3, 1, 1)
    assert stats["ci_low"] <= 2.0 <= stats["ci_high"] and stats["ci_low"] >= 1.0 and stats["ci_high"] <= 3.0
    single = summarise([5.0])
    assert single["mean"] == 5.0 and math.isnan(single["std"]) and math.isnan(single["ci_low"])
    assert summarise([1.0] * 10)["ci_low"] == summarise([1.0] * 10)["ci_high"] == 1.0
    # the interval narrows with more videos of the same spread
    rng = np.random.default_rng(0)
    few, many = summarise(rng.normal(0, 1, 8)), summarise(rng.normal(0, 1, 200))
    assert many["ci_high"] - many["ci_low"] < (few["ci_high"] - few["ci_low"]) / 2


def test_rows_carry_profiles_marks_and_published_labels():
    records = [record("ggi", "a", "x", psnr=10.0), record("ggi", "b", "x", category="indoor", psnr=math.nan),
               record("ggi", "a", "x", profile="tiny", psnr=3.0)]
    table = benchmark_table(records, PAPER_TABLE2)
    overall = table[table["category"] == "overall"].set_index("label")
    full = overall.loc["SAG + GGI, HED-S (ours) · generated full, scored full"]
    assert full["psnr"] == 10.0 and full["psnr_nan"] == 1 and full["videos"] == 2 and not full["random_weights"]
    tiny = overall.loc[f"SAG + GGI, HED-S (ours) · generated tiny, scored tiny {RANDOM_WEIGHTS}"]
    assert tiny["random_weights"] and tiny["psnr"] == 3.0
    vace = overall.loc[f"VACE ({PUBLISHED})"]
    assert math.isnan(vace["psnr"]) and vace["background_consistency"] == 0.914  # '-' is n/a, never 0
    assert "openai/clip-vit-large-patch14 (full)" in full["metric_models"]
    # a tiny video scored with full metrics is not a full row
    mixed = benchmark_table([record("ggi", "a", "x") | {"generation_profile": "tiny"}], {})
    assert mixed["label"].iloc[0].endswith(RANDOM_WEIGHTS) and "generated tiny, scored full" in mixed["label"].iloc[0]


def test_paired_differences_use_only_videos_both_methods_have():
    records = [record("ggi", "a", "x", clip_a=6.0, lpips=0.3), record("ggi", "b", "x", clip_a=5.0, lpips=0.2),
               record("sag_dense", "a", "x", clip_a=5.5, lpips=0.4), record("sag_dense", "c", "x", clip_a=9.0)]
    per_video, summary = paired_differences(records)
    assert len(per_video) == 1 and per_video.iloc[0]["scene"] == "a"
    assert per_video.iloc[0]["clip_a"] == pytest.approx(-0.5)
    rows = summary.set_index("metric")
    assert rows.loc["clip_a", "pairs"] == 1 and not rows.loc["clip_a", "favours_method"]
    assert rows.loc["lpips", "mean_difference"] == pytest.approx(0.1) and not rows.loc["lpips", "favours_method"]
    assert paired_differences(records, reference="per_frame")[1].empty


def test_per_scene_table_and_files(tmp_path):
    records = [record("ggi", "a", style, clip_a=value) for style, value in (("x", 4.0), ("y", 6.0))]
    records += [record("anchor_warp", "a", "x", psnr=math.inf)]
    scenes = per_scene_table(records)
    assert scenes.set_index("label").loc["SAG + GGI, HED-S (ours) · generated full, scored full", "clip_a"] == 5.0
    paths = write_report(records, PAPER_TABLE2, tmp_path)
    text = paths["md"].read_text()
    assert "published, on the paper's unreleased scenes" in text and "PSNR↑ 1×inf" in text
    assert "laion_linear" in text and "Flicker" in text and "exclude" in text
    assert {p.name for p in tmp_path.iterdir()} >= {"benchmark.csv", "per_scene.csv", "paired.csv",
                                                     "paired_per_video.csv", "benchmark.md", "benchmark.png"}
