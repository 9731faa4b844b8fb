"""style_lora and anchors materialize through Dagster for one partition (tiny profile, CPU)."""

import json

import blender_scenes
import numpy as np
from conftest import USER_CATALOG_DIR
from dagster import MultiPartitionKey, materialize
from PIL import Image

from resources import GPU, ArtifactStore, BlenderRenderer, ModelStore
from test_learning_curve import assert_loss_curve_recorded
from vf3d_assets.assets.sag import anchors, style_lora
from vf3d_assets.assets.scenes import guidance, scene, scene_source
from vf3d_assets.assets.styles import style_reference

ASSETS = [scene_source, style_reference, scene, guidance, style_lora, anchors]


def test_style_lora_and_anchors_materialize(tmp_path, monkeypatch):
    blender_scenes.dolly_over_plane(USER_CATALOG_DIR / "shot_a.blend", frames=3, step=0.3, occluder=True)
    asked = []
    real_edges = ModelStore.edges
    monkeypatch.setattr(ModelStore, "edges", lambda self, *a: asked.append(a[2:]) or real_edges(self, *a))
    resources = {"artifacts": ArtifactStore(root=str(tmp_path)), "blender": BlenderRenderer(threads=1),
                 "models": ModelStore(profile="tiny"), "gpu": GPU(device="cpu")}
    run = lambda selection, key, config=None: materialize(  # noqa: E731
        ASSETS, selection=selection, partition_key=key, resources=resources, run_config=config)
    assert run(["scene", "guidance"], "test_shot_a").success
    lora = run(["style_lora"], "photo", {"ops": {"style_lora": {"config": {"also_styles": ["painterly",
                                                                                          "photo_winter"]}}}})
    assert lora.success
    checks = {c.check_name: c for c in lora.get_asset_check_evaluations()}
    assert set(checks) == {"loss_decreased", "loss_curve_falls"} and checks["loss_decreased"].passed
    assert (tmp_path / "style_lora" / "photo" / "pytorch_lora_weights.safetensors").is_file()
    lora_metadata = lora.get_asset_materialization_events()[0].materialization.metadata
    assert_loss_curve_recorded(lora_metadata, checks)
    identifiers = lora_metadata["identifiers"].value
    assert identifiers == ["a photo in sks style", "a painting in xyz style"]
    # A style transition (paper Fig. 8): the second anchor uses the painterly identifier, replacement off.
    result = run(["anchors"], MultiPartitionKey({"scene": "test_shot_a", "style": "photo"}),
                 {"ops": {"anchors": {"config": {"anchor_styles": ["photo", "painterly"], "replacement": False}}}})
    assert result.success
    assert asked[-1] == (72,)  # HED at the official render height: 1.5 x 48 (`assets/mk_edge.py:31`)
    out = tmp_path / "anchors" / "test_shot_a__photo"
    record = json.loads((out / "anchors.json").read_text())
    assert [a["frame"] for a in record["anchors"]] == [0, 2]
    assert [a["prompt"] for a in record["anchors"]] == ["a photo in sks style", "a painting in xyz style"]
    assert record["anchors"][1]["replaced_fraction"] == 0.0
    for a in record["anchors"]:
        image = Image.open(out / "anchors" / f"{a['frame']:05d}.png")
        assert image.size == (64, 48)  # the video size, what GGI reads
        assert Image.open(out / "sag_size" / f"{a['frame']:05d}.png").size == (96, 64)  # 96x72, x-flux's rounding
    assert record["anchors"][1]["observed_fraction"] > 0.5
    assert np.asarray(Image.open(out / "warped" / "00002.png")).any()
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["profile"].value == "tiny"
    assert metadata["sag_resolution"].value == "96x64"
    assert "data:image/png;base64," in metadata["anchors"].value
    # One style alone (official distribution alignment): the LoRA learns the empty prompt, and the anchors are
    # sampled with the post-prompt alone.
    # (One step: a flat curve by construction, so `loss_curve_falls` warns, and the run still succeeds.)
    winter_lora = run(["style_lora"], "photo_winter", {"ops": {"style_lora": {"config": {"steps": 1}}}})
    assert winter_lora.success
    checks = {c.check_name: c for c in winter_lora.get_asset_check_evaluations()}
    assert not assert_loss_curve_recorded(winter_lora.get_asset_materialization_events()[0].materialization.metadata,
                                          checks)
    assert json.loads((tmp_path / "style_lora" / "photo_winter" / "style_lora.json").read_text())["prompts"] == [""]
    winter = run(["anchors"], MultiPartitionKey({"scene": "test_shot_a", "style": "photo_winter"}))
    assert winter.success
    record = json.loads((tmp_path / "anchors" / "test_shot_a__photo_winter" / "anchors.json").read_text())
    assert [a["prompt"] for a in record["anchors"]] == ["winter", "winter"]


def test_prompts_with_and_without_the_single_style_identifier():
    from dataclasses import replace

    from vf3d.sag.style_lora import LORA_PRESETS, sampling_prompt, training_prompts
    paper = LORA_PRESETS["paper"]
    assert paper.single_style_identifier is False
    assert training_prompts(["a photo in sks style"], paper) == [""]
    assert training_prompts(["a photo in sks style"], replace(paper, single_style_identifier=True)) == \
        ["a photo in sks style"]
    assert training_prompts(["a", "b"], paper) == ["a", "b"]  # several styles always need their identifiers
    assert sampling_prompt([""], "a photo in sks style", "winter") == "winter"
    assert sampling_prompt([""], "a photo in sks style", None) == ""
    assert sampling_prompt(["a photo in sks style"], "a photo in sks style", "winter") == "a photo in sks style, winter"
