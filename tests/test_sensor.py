"""The UI's stale-partitions sensor leaves out partitions whose inputs are unusable, and says why."""

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from vf3d_assets import sensors
from vf3d_assets.staleness import InputProblems, StalePartition


def test_sensor_skips_partitions_with_unusable_inputs(monkeypatch):
    problems = InputProblems(scenes={"test_shot_a": "/x/shot_a.blend: scene 'test_shot_a': file not found"})
    stale = [StalePartition("scene", "test_shot_a", ("scene_source[test_shot_a] has a new data version",)),
             StalePartition("scene", "test_shot_b", ("scene_source[test_shot_b] has a new data version",))]
    monkeypatch.setattr(sensors, "observe_sources", lambda instance, assets: None)
    monkeypatch.setattr(sensors, "input_problems", lambda catalog: problems)
    monkeypatch.setattr(sensors, "stale_partitions", lambda instance, assets: stale)
    context = build_sensor_context(instance=DagsterInstance.ephemeral())
    requests = sensors.stale_partitions_sensor(context)
    assert [r.partition_key for r in requests if isinstance(r, RunRequest)] == ["test_shot_b"]
    monkeypatch.setattr(sensors, "stale_partitions", lambda instance, assets: stale[:1])
    skipped = sensors.stale_partitions_sensor(build_sensor_context(instance=DagsterInstance.ephemeral()))
    assert isinstance(skipped, SkipReason) and "1 unusable input" in skipped.skip_message
