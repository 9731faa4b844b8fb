"""The UI's way to rerun only what is stale: a sensor that launches the most upstream stale partitions."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from vf3d_assets.assets import ALL_ASSETS
from vf3d_assets.partitions import catalog
from vf3d_assets.staleness import input_problems, observe_sources, stale_partitions


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Observes the scene and style files and launches a run for each stale partition of the most "
                    "upstream stale asset; later ticks follow the graph downstream. Turn it on to keep in sync.")
def stale_partitions_sensor(context: SensorEvaluationContext):
    observe_sources(context.instance, ALL_ASSETS)
    problems = input_problems(catalog)
    for line in problems.lines():
        context.log.warning(f"unusable input, its partitions are left out: {line}")
    stale = [s for s in stale_partitions(context.instance, ALL_ASSETS) if problems.blocking(s.partition) is None]
    if not stale:
        return SkipReason("nothing is stale" + (f" ({len(problems.lines())} unusable input(s): see the sensor log)"
                                                if problems.lines() else ""))
    first = stale[0].asset
    return [RunRequest(run_key=f"{item.asset}:{item.partition}:{context.cursor or ''}{len(stale)}",
                       asset_selection=[item.asset_key], partition_key=item.partition,
                       tags={"vf3d/stale_causes": "; ".join(item.causes)[:1000]})
            for item in stale if item.asset == first]
