"""Materialize the stages of one shot (or the demo) in graph order, each only if it is missing or stale.

Each stage is one asset partition materialized in-process in the persistent instance (the runs and their full
event logs are in the UI); a stage whose inputs, code and upstream data are unchanged is skipped, so a rerun
after an edit runs exactly what the edit made stale. Progress: `vf3d_assets.progress`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, DagsterInstance, MultiPartitionKey
from dagster._core.definitions.data_version import StaleStatus

from vf3d.common.errors import input_error_behind
from vf3d_assets.dead_runs import materialize_owned
from vf3d_assets.progress import StageDisplay
from vf3d_assets.staleness import QUIET, Assets, observe_sources, stale_resolver


@dataclass(frozen=True)
class Stage:
    asset: str
    partition: str | None = None
    config: Mapping = field(default_factory=dict)
    only_if_missing: bool = False
    """Run only when never materialized (GGI training for a designer's shot is not rerun on every edit)."""

    @property
    def name(self) -> str:
        return self.asset + (f"[{self.partition}]" if self.partition else "")


class StageFailed(Exception):
    """A stage failed: its one-line message and the run holding the full log."""

    def __init__(self, stage: Stage, message: str, run_id: str):
        super().__init__(f"{stage.name} failed: {message} (full log: `vf3d ui`, run {run_id[:8]})")


def partition_key(scene: str, style: str) -> MultiPartitionKey:
    return MultiPartitionKey({"scene": scene, "style": style})


def shot_stages(scene: str, style: str, methods: Sequence[str] = ("ggi",), train_ggi: Mapping | None = None,
                report: bool = False) -> list[Stage]:
    """Every stage of one scene x style partition: guidance, style LoRA, GGI weights if missing (trained with
    `train_ggi` as the training set's config; None = not trained here), anchors, each method's video and
    metrics, and the report."""
    from vf3d_assets.assets.evaluation import metrics_asset_name
    from vf3d_assets.assets.ggi import GGI_VIDEO_METHODS, GGI_WEIGHTS, video_asset_name

    pair = partition_key(scene, style)
    stages = [Stage("scene", scene), Stage("guidance", scene), Stage("warped_noise", scene), Stage("style_lora", style)]
    if train_ggi is not None:
        stages.append(Stage("ggi_training_set", None, {"config": dict(train_ggi)}, only_if_missing=True))
        stages += [Stage(GGI_WEIGHTS[s], None, only_if_missing=True)
                   for s in dict.fromkeys(GGI_VIDEO_METHODS.get(m) for m in methods) if s]
    stages.append(Stage("anchors", pair))
    stages += [Stage(video_asset_name(m), pair) for m in methods]
    stages += [Stage(metrics_asset_name(m), pair) for m in methods]
    if report:
        stages.append(Stage("benchmark_report"))
    return stages


def _needs_run(instance: DagsterInstance, assets: Assets, stage: Stage) -> bool:
    if stage.only_if_missing:
        return instance.get_latest_materialization_event(AssetKey(stage.asset)) is None
    status = stale_resolver(instance, assets).get_status(AssetKey(stage.asset), stage.partition)
    return status in (StaleStatus.MISSING, StaleStatus.STALE)


def _root_cause(exc: BaseException) -> BaseException:
    while (getattr(exc, "user_exception", None) or exc.__cause__) is not None:
        exc = getattr(exc, "user_exception", None) or exc.__cause__
    return exc


def stages_to_run(stages: Sequence[Stage], instance: DagsterInstance, assets: Assets) -> list[Stage]:
    """The stages that are missing or stale now (sources observed first), without running any."""
    observe_sources(instance, assets)
    return [stage for stage in stages if _needs_run(instance, assets, stage)]


def run_stages(stages: Sequence[Stage], instance: DagsterInstance, assets: Assets, resources: Mapping[str, object],
               display: StageDisplay, verbose: bool = False) -> list[Stage]:
    """Observe the sources, then run each stage that is missing or stale; returns the stages that ran. A
    failing stage raises `StageFailed` (a user-input error inside it: its `VF3DInputError`)."""
    observe_sources(instance, assets)
    ran = []
    for stage in stages:
        with display.stage(stage.name) as finish:
            if not _needs_run(instance, assets, stage):
                finish("up to date")
                continue
            run_config = {} if verbose else dict(QUIET)
            if stage.config:
                run_config["ops"] = {stage.asset: dict(stage.config)}
            try:
                materialize_owned(assets, stage.asset, stage.partition, instance, resources, run_config)
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line; the log stays in the run
                if input_error_behind(exc) is not None:
                    raise input_error_behind(exc) from None
                cause = _root_cause(exc)
                message = (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
                raise StageFailed(stage, f"{type(cause).__name__}: {message}",
                                  instance.get_runs(limit=1)[0].run_id) from exc
            finish("ran")
            ran.append(stage)
    return ran
