"""Every method of `vf3d.baselines.methods` materializes on one partition, is scored by the same metrics and reported
(tiny, CPU): the paper's method, its Table 3 ablations, and the baselines."""

import json
import math

import blender_scenes
import numpy as np
import pandas as pd
import pytest
from conftest import USER_CATALOG_DIR
from dagster import DagsterInstance, MultiPartitionKey, materialize
from PIL import Image

from evaluation.metrics import METRICS_CODE_VERSION
from evaluation.report import PUBLISHED, RANDOM_WEIGHTS
from resources import GPU, ArtifactStore, BlenderRenderer, ModelStore
from vf3d.baselines.anchor_warp import anchor_warp_video, composite
from vf3d.ggi.inbetween import generate_video
from vf3d.ggi.pipeline import GGI_PRESETS
from vf3d.ggi.training import TrainingClip, with_structure_condition
from vf3d.baselines.methods import METHODS
from vf3d.preprocess.guidance import ShotGeometry
from vf3d_assets.assets import ALL_ASSETS
from vf3d_assets.assets.evaluation import metrics_asset_name
from vf3d_assets.assets.ggi import GGI_WEIGHTS, video_asset_name

FRAMES = 8
PARTITION = MultiPartitionKey({"scene": "test_shot_m", "style": "test_style"})
FOLDER = "test_shot_m__test_style"


@pytest.fixture(scope="module")
def every_method(tmp_path_factory):
    """Artifacts root and instance after every method, its metrics and the report were materialized."""
    root = tmp_path_factory.mktemp("methods")
    blender_scenes.dolly_over_plane(USER_CATALOG_DIR / "shot_m.blend", frames=FRAMES, step=0.05, occluder=True)
    resources = {"artifacts": ArtifactStore(root=str(root)), "blender": BlenderRenderer(threads=1),
                 "models": ModelStore(profile="tiny"), "gpu": GPU(device="cpu")}
    instance = DagsterInstance.ephemeral()

    def run(selection, key=None, config=None):
        result = materialize(ALL_ASSETS, selection=selection, partition_key=key, resources=resources,
                             run_config=config, instance=instance)
        assert result.success
        return result

    run(["scene", "guidance", "warped_noise"], "test_shot_m")
    run(["style_lora"], "test_style", {"ops": {"style_lora": {"config": {"steps": 2}}}})
    run(["ggi_training_set"], config={"ops": {"ggi_training_set": {"config": {"scenes": ["test_shot_m"]}}}})
    weights = list(GGI_WEIGHTS.values())
    run(weights, config={"ops": {name: {"config": {"steps": 2}} for name in weights}})
    run(["anchors"], PARTITION)
    results = run([video_asset_name(m) for m in METHODS] + [metrics_asset_name(m) for m in METHODS], PARTITION)
    report = run(["benchmark_report"])
    return root, results, report


def test_every_method_writes_a_video_of_every_frame(every_method):
    root, results, _ = every_method
    metadata = {e.asset_key.path[-1]: e.materialization.metadata for e in results.get_asset_materialization_events()}
    for key, method in METHODS.items():
        info = json.loads((root / video_asset_name(key) / FOLDER / "video.json").read_text())
        assert info["method"] == key and info["profile"] == "tiny" and info["frames"] == FRAMES
        assert len(list((root / video_asset_name(key) / FOLDER / "frames").glob("*.png"))) == FRAMES
        assert metadata[video_asset_name(key)]["method_label"].value == method.display
        record = json.loads((root / metrics_asset_name(key) / FOLDER / "metrics.json").read_text())
        assert record["method"] == key and record["generation_profile"] == "tiny"
        assert record["metric_profile"] == "tiny" and record["aesthetic_head"] == "laion_linear"
        assert record["metrics_code_version"] == METRICS_CODE_VERSION  # the report keeps only current records
        assert len(record["flicker_per_pair"]) == FRAMES - 1
    # SAG on every frame is guided by the previous frame; per-frame generation by nothing
    assert len(list((root / "video_sag_dense_views" / FOLDER / "warped").glob("*.png"))) == FRAMES - 1
    assert list((root / "video_per_frame_views" / FOLDER / "warped").glob("*.png")) == []
    assert metadata[video_asset_name("ggi_no_structure")]["structure"].value == "none"


def test_anchor_warp_is_the_pseudo_gt_where_known_and_scores_perfect_fidelity(every_method):
    root, _, _ = every_method
    geometry = ShotGeometry.load(root / "guidance" / "test_shot_m")
    anchors = {int(p.stem): np.asarray(Image.open(p).convert("RGB"))
               for p in (root / "anchors" / FOLDER / "anchors").glob("*.png")}
    frames = [np.asarray(Image.open(p)) for p in sorted((root / "video_anchor_warp" / FOLDER / "frames").glob("*.png"))]
    for k, anchor in anchors.items():
        np.testing.assert_array_equal(frames[k], anchor)
    image, known = composite(3, anchors, geometry.depth, geometry.c2w, geometry.intrinsics)
    assert known.mean() > 0.5
    np.testing.assert_array_equal(frames[3][known], image[known])
    record = json.loads((root / "metrics_anchor_warp" / FOLDER / "metrics.json").read_text())
    assert record["psnr"] == math.inf and record["ssim"] == pytest.approx(1.0, abs=1e-5)


def test_anchor_warp_fills_holes_from_the_nearer_anchors_nearest_valid_pixel():
    from test_metrics import INTRINSICS, SHIFT, W, sideways_dolly

    frames, depth, c2w = sideways_dolly(4, seed=3)
    video = anchor_warp_video({0: frames[0]}, depth, c2w, INTRINSICS)
    np.testing.assert_array_equal(video[0], frames[0])
    # frame 2 sees 2*SHIFT columns on the right that anchor 0 never saw: they repeat its last valid column
    np.testing.assert_array_equal(video[2][:, : W - 2 * SHIFT], frames[2][:, : W - 2 * SHIFT])
    last_valid = frames[2][:, W - 2 * SHIFT - 1]
    np.testing.assert_array_equal(video[2][:, W - 2 * SHIFT:], np.repeat(last_valid[:, None], 2 * SHIFT, axis=1))


def test_structure_conditions_of_the_table3_ablation(every_method):
    root, _, _ = every_method
    clip = TrainingClip([np.full((4, 6, 3), 200, np.uint8)] * 2, np.zeros((1, 4, 6, 2), np.float32),
                        np.ones((1, 4, 6), bool), [np.full((4, 6), 255, np.uint8)] * 2)
    assert with_structure_condition(clip, "hed_s") is clip
    assert all((s == 0).all() for s in with_structure_condition(clip, "none").structure)
    hed = with_structure_condition(clip, "hed", lambda frame: frame[..., 0] // 2)
    assert all((s == 100).all() for s in hed.structure)  # the detector ran on the RGB frames
    with pytest.raises(ValueError, match="structure condition 'depth'"):
        with_structure_condition(clip, "depth")
    # the three weights differ, and sampling with 'none' feeds empty maps where 'hed_s' feeds the edges
    weights = {name: (root / name / "all" / "ggi_weights.safetensors").read_bytes() for name in GGI_WEIGHTS.values()}
    assert len(set(weights.values())) == 3
    fed = {}

    class Recorder:
        def __call__(self, prompt, first, last, edges, height, width, latents, settings, generator):
            fed[settings.structure] = edges
            raise StopIteration

    for structure in ("hed_s", "none"):
        settings = GGI_PRESETS["tiny"].__class__(**{**GGI_PRESETS["tiny"].__dict__, "structure": structure})
        with pytest.raises(StopIteration):
            generate_video(Recorder(), root / "guidance" / "test_shot_m", root / "anchors" / FOLDER, lambda k: None,
                           lambda line_art: np.where(line_art > 0, 255, 0).astype(np.uint8), settings, "p",
                           lambda k: None)
    assert any(e.any() for e in fed["hed_s"]) and not any(e.any() for e in fed["none"])


def test_report_has_a_labelled_row_per_method_with_spread_and_pairs(every_method):
    root, _, report = every_method
    folder = root / "benchmark_report" / "all"
    table = pd.read_csv(folder / "benchmark.csv")
    overall = table[table["category"] == "overall"]
    ours = overall[overall["generation_profile"] != "published"]
    assert sorted(ours["method"]) == sorted(METHODS)
    assert all(label.endswith(RANDOM_WEIGHTS) for label in ours["label"])
    roles = {m.role for m in METHODS.values()}
    assert all(any(f"({role})" in label for label in ours["label"]) for role in roles)
    published = overall[overall["generation_profile"] == "published"]
    assert len(published) == 6 and all(PUBLISHED in label for label in published["label"])
    assert published.set_index("method").loc["VACE", "psnr"] != published.set_index("method").loc["VACE", "psnr"]
    # anchor_warp's PSNR is +inf: counted, not averaged into the row, not dropped silently
    warp = ours.set_index("method").loc["anchor_warp"]
    assert warp["psnr_inf"] == 1 and warp["psnr_n"] == 0 and np.isnan(warp["psnr"])
    assert "PSNR↑ 1×inf" in (folder / "benchmark.md").read_text()
    assert all(ours["metric_models"].str.contains("laion_linear"))
    paired = pd.read_csv(folder / "paired.csv")
    assert set(paired["label"].str.split(" ·").str[0]) == {m.display for k, m in METHODS.items() if k != "ggi"}
    per_video = pd.read_csv(folder / "paired_per_video.csv")
    ggi = json.loads((root / "metrics" / FOLDER / "metrics.json").read_text())
    sag = json.loads((root / "metrics_sag_dense" / FOLDER / "metrics.json").read_text())
    row = per_video[per_video["label"].str.startswith(METHODS["sag_dense"].display)].iloc[0]
    assert row["clip_a"] == pytest.approx(sag["clip_a"] - ggi["clip_a"])
    assert len(pd.read_csv(folder / "per_scene.csv")) == len(METHODS)
    plot = Image.open(folder / "benchmark.png")
    assert plot.width <= 800  # reads whole in the UI's markdown view
    assert report.get_asset_materialization_events()[0].materialization.metadata["videos"].value == len(METHODS)
