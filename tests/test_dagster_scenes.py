"""Per-scene assets materialized in-process through Dagster; an edited scene file makes only it stale."""

import blender_scenes
import pytest
from conftest import USER_CATALOG_DIR
from dagster import DagsterInstance, materialize
from dagster._core.definitions.observe import observe
from dagster._core.definitions.data_version import StaleStatus

from resources import ArtifactStore, BlenderRenderer
from vf3d_assets.assets.scenes import guidance, scene, scene_source
from vf3d_assets.staleness import partition_status

ASSETS = [scene_source, scene, guidance]


@pytest.fixture(scope="module")
def instance():
    return DagsterInstance.ephemeral()


def _materialize(instance, partition, tmp_path, selection=("scene", "guidance")):
    return materialize([scene, guidance, scene_source], partition_key=partition, instance=instance,
                       selection=list(selection),
                       resources={"artifacts": ArtifactStore(root=str(tmp_path / "artifacts")),
                                  "blender": BlenderRenderer(threads=1)})


def test_materialize_guidance_then_edit_makes_exactly_that_scene_stale(instance, tmp_path):
    blender_scenes.dolly_over_plane(USER_CATALOG_DIR / "shot_a.blend", frames=3, step=0.1, occluder=True)
    blender_scenes.dolly_over_plane(USER_CATALOG_DIR / "shot_b.blend", frames=3, step=0.2, occluder=True)
    observe([scene_source], instance=instance)
    for partition in ("test_shot_a", "test_shot_b"):
        result = _materialize(instance, partition, tmp_path)
        assert result.success
    events = result.get_asset_materialization_events()
    metadata = {e.asset_key.path[-1]: e.materialization.metadata for e in events}
    assert metadata["guidance"]["frames"].value == 3
    assert "data:image/png;base64," in metadata["guidance"]["edge_contact_sheet"].value
    assert "data:image/png;base64," in metadata["guidance"]["hed_input_contact_sheet"].value
    assert metadata["guidance"]["hed_input"].value["anchors"]["height"] == 72  # 1.5 x 48, the official render size
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"edges_on_every_frame": True, "valid_flow_fraction": True}
    assert (tmp_path / "artifacts" / "guidance" / "test_shot_b" / "flows" / "seg000.npz").is_file()

    status = lambda asset, partition: partition_status(instance, ASSETS, asset, partition)  # noqa: E731
    assert {status(a, p) for a in ("scene", "guidance") for p in ("test_shot_a", "test_shot_b")} == {StaleStatus.FRESH}

    # Edit shot a's geometry (a taller occluder) and observe the sources again.
    blender_scenes.dolly_over_plane(USER_CATALOG_DIR / "shot_a.blend", frames=3, step=0.1, distance=12.0,
                                    occluder=True)
    observe([scene_source], instance=instance)
    assert status("scene", "test_shot_a") == StaleStatus.STALE
    assert status("scene", "test_shot_b") == StaleStatus.FRESH
    assert status("guidance", "test_shot_b") == StaleStatus.FRESH

    # Rerunning the scene makes its guidance stale (its shot description carries the new file hash) ...
    assert _materialize(instance, "test_shot_a", tmp_path, selection=["scene"]).success
    assert status("scene", "test_shot_a") == StaleStatus.FRESH
    assert status("guidance", "test_shot_a") == StaleStatus.STALE
    assert status("guidance", "test_shot_b") == StaleStatus.FRESH
    # ... and rerunning that makes everything fresh again.
    assert _materialize(instance, "test_shot_a", tmp_path, selection=["guidance"]).success
    assert {status(a, p) for a in ("scene", "guidance") for p in ("test_shot_a", "test_shot_b")} == {StaleStatus.FRESH}
