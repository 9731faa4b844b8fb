"""Partitions built from the catalog, and the per-scene -> scene x style mapping later stages use."""

from dagster import DagsterInstance
from dagster._core.definitions.data_version import extract_data_version_from_entry
from dagster._core.definitions.observe import observe

from vf3d.benchmark.catalog import BENCHMARK_CATALOG, load_catalog
from vf3d_assets.assets.styles import style_reference
from vf3d_assets.definitions import defs
from vf3d_assets.partitions import from_scene, scene_partitions, scene_style_partitions, style_partitions


def test_partitions_cover_the_benchmark_and_user_scenes():
    benchmark = load_catalog([BENCHMARK_CATALOG])
    scenes = set(scene_partitions.get_partition_keys())
    assert set(benchmark.scenes) <= scenes and {"test_shot_a", "test_shot_b"} <= scenes
    styles = set(style_partitions.get_partition_keys())
    assert styles == {"photo", "painterly", "photo_winter", "test_style"}  # benchmark + the tests' user style
    keys = scene_style_partitions.get_partition_keys()
    assert len(keys) == len(scenes) * len(styles)
    assert "cottage|photo" in keys


def test_a_scene_maps_to_its_three_style_partitions():
    subset = from_scene.get_downstream_partitions_for_partitions(
        scene_partitions.empty_subset().with_partition_keys(["cottage"]), scene_partitions, scene_style_partitions)
    assert set(subset.get_partition_keys()) == {f"cottage|{style}" for style in style_partitions.get_partition_keys()}
    assert len(subset.get_partition_keys()) == 4


def test_style_references_are_observed_with_their_prompt():
    instance = DagsterInstance.ephemeral()
    observe([style_reference], instance=instance)
    versions = {}
    for key in ("photo", "photo_winter"):
        record = instance.get_latest_data_version_record(style_reference.key, partition_key=key)
        versions[key] = extract_data_version_from_entry(record.event_log_entry).value
    # Same image, different post-prompt: different versions.
    assert versions["photo"].split("|")[0] == versions["photo_winter"].split("|")[0]
    assert versions["photo"] != versions["photo_winter"]


def test_definitions_load():
    assert defs.resolve_job_def("scene_guidance") is not None
    assert {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} >= {
        "scene_source", "scene", "guidance", "style_reference"}
