"""warped_noise, GGI training and the video materialize through Dagster for one partition (tiny, CPU)."""

import blender_scenes
import numpy as np
from conftest import USER_CATALOG_DIR
from dagster import AssetKey, DagsterInstance, MultiPartitionKey, materialize
from dagster._core.definitions.data_version import StaleStatus

from resources import GPU, ArtifactStore, BlenderRenderer, ModelStore
from test_learning_curve import assert_loss_curve_recorded
from vf3d.common.video_io import read_mp4
from vf3d_assets.assets.ggi import ggi_training_set, ggi_weights, video, video_bidirectional, warped_noise
from vf3d_assets.assets.sag import anchors, style_lora
from vf3d_assets.assets.scenes import guidance, scene, scene_source
from vf3d_assets.assets.styles import style_reference
from vf3d_assets.staleness import partition_status

ASSETS = [scene_source, style_reference, scene, guidance, warped_noise, style_lora, anchors, ggi_training_set,
          ggi_weights, video, video_bidirectional]


def test_video_materializes_with_continuous_joins(tmp_path):
    # 50 frames: two segments, 0-45 and 45-49, sharing frame 45.
    blender_scenes.dolly_over_plane(USER_CATALOG_DIR / "shot_b.blend", frames=50, step=0.02, occluder=True)
    resources = {"artifacts": ArtifactStore(root=str(tmp_path)), "blender": BlenderRenderer(threads=1),
                 "models": ModelStore(profile="tiny"), "gpu": GPU(device="cpu")}
    instance = DagsterInstance.ephemeral()

    def run(selection, key=None, config=None):
        result = materialize(ASSETS, selection=selection, partition_key=key, resources=resources, run_config=config,
                             instance=instance)
        assert result.success
        return result

    run(["scene", "guidance", "warped_noise"], "test_shot_b")
    noise_meta = run(["warped_noise"], "test_shot_b").get_asset_materialization_events()[0].materialization.metadata
    assert noise_meta["segments"].value == 2 and noise_meta["shape"].value == "(13, 16, 6, 8)"
    run(["style_lora"], "photo", {"ops": {"style_lora": {"config": {"steps": 3}}}})
    training_set = {"scenes": ["test_shot_b"], "width": 64, "height": 48}
    run(["ggi_training_set"], config={"ops": {"ggi_training_set": {"config": training_set}}})
    weights_config = {"ops": {"ggi_weights": {"config": {"steps": 4}}}}
    trained = run(["ggi_weights"], config=weights_config)
    checks = {c.check_name: c for c in trained.get_asset_check_evaluations()}
    assert set(checks) == {"loss_decreased", "loss_curve_falls"}
    assert_loss_curve_recorded(trained.get_asset_materialization_events()[0].materialization.metadata, checks)
    partition = MultiPartitionKey({"scene": "test_shot_b", "style": "photo"})
    result = run(["anchors", "video"], partition)
    metadata = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert metadata["video"]["frames"].value == 50 and metadata["video"]["method"].value == "ggi"
    # The prompt is the BLIP-2 caption of the first anchor (official ggi.py), recorded with its source.
    from PIL import Image

    from vf3d.models.captioner import tiny_captioner
    first_anchor = np.asarray(Image.open(tmp_path / "anchors" / "test_shot_b__photo" / "anchors" / "00000.png"))
    assert metadata["video"]["prompt"].value == tiny_captioner(0)(first_anchor[..., :3])
    assert metadata["video"]["prompt_source"].value.startswith("BLIP-2 caption of the first anchor")
    assert "data:image/png;base64," in metadata["video"]["contact_sheet"].value
    frames = read_mp4(tmp_path / "video" / "test_shot_b__photo" / "video.mp4")
    assert len(frames) == 50 and frames[0].shape == (48, 64, 3)
    # Continuity at the join: the step into and out of frame 45 is like any other step of the video.
    steps = [np.abs(frames[i + 1].astype(int) - frames[i].astype(int)).mean() for i in range(49)]
    assert max(steps[44], steps[45]) <= 3 * np.median(steps) + 2
    # The training-free baseline is its own asset: no GGI weights, labelled as a baseline.
    bidirectional = run(["video_bidirectional"], partition)
    metadata = bidirectional.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["method"].value == "bidirectional" and metadata["method_label"].value.endswith("(baseline)")
    assert (tmp_path / "video_bidirectional" / "test_shot_b__photo" / "video.mp4").is_file()

    # A new training set retrains (no resume of the finished run): new weights, new data version, stale videos.
    def weights_version():
        record = instance.get_latest_data_version_record(AssetKey("ggi_weights"))
        return record.asset_materialization.tags["dagster/data_version"]

    first = weights_version()
    assert partition_status(instance, ASSETS, "video", partition) == StaleStatus.FRESH
    run(["ggi_training_set"], config={"ops": {"ggi_training_set": {"config": {**training_set, "clips_per_scene": 2}}}})
    assert partition_status(instance, ASSETS, "ggi_weights", None) == StaleStatus.STALE
    run(["ggi_weights"], config=weights_config)
    assert weights_version() != first
    assert partition_status(instance, ASSETS, "video", partition) == StaleStatus.STALE
    assert len(list((tmp_path / "ggi_weights" / "all" / "checkpoints").iterdir())) == 1  # the old run is gone


def test_training_set_config_choices_are_checked_before_any_model_loads(tmp_path, monkeypatch):
    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was checked")
    monkeypatch.setattr(ModelStore, "edges", no_models)
    resources = {"artifacts": ArtifactStore(root=str(tmp_path)), "models": ModelStore(profile="tiny"),
                 "gpu": GPU(device="cpu")}
    for field, value in (("crop", "diagonal"), ("raft_model", "medium")):
        result = materialize([ggi_training_set], resources=resources, raise_on_error=False,
                             run_config={"ops": {"ggi_training_set": {"config": {field: value}}}})
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        assert f"ggi_training_set config {field}={value!r}: expected one of" in str(failure.step_failure_data.error)
