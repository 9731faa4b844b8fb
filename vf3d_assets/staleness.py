"""Rerun only what is stale, per partition (the UI shows neither partitioned staleness nor includes stale
partitions in "Materialize unsynced": dagster issue #22553).

`stale_partitions` lists every (asset, partition) whose inputs, code version or dependencies changed since it
was materialized; `refresh` observes the sources, materializes the most upstream stale layer, and repeats (a
rerun with a new data version makes the next layer stale), so an edit flows exactly as far as it matters.
Uses Dagster's `CachingStaleStatusResolver`, internal API: dagster is pinned and tests cover this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, AssetsDefinition, DagsterInstance, SourceAsset
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.observe import observe
from dagster._time import get_current_datetime

from vf3d.benchmark.catalog import Catalog
from vf3d.common.errors import VF3DInputError
from vf3d.common.limits import check_reference_image
from vf3d_assets.dead_runs import materialize_owned

Assets = Sequence[AssetsDefinition | SourceAsset]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the CLI prints its own one-liners


def stale_resolver(instance: DagsterInstance, assets: Assets) -> CachingStaleStatusResolver:
    graph = AssetGraph.from_assets(assets)
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=graph)
    return CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)


def partition_status(instance: DagsterInstance, assets: Assets, asset: str, partition: str | None) -> StaleStatus:
    return stale_resolver(instance, assets).get_status(AssetKey(asset), partition)


@dataclass(frozen=True)
class StalePartition:
    asset: str
    partition: str | None
    causes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def asset_key(self) -> AssetKey:
        return AssetKey.from_user_string(self.asset)

    def __str__(self) -> str:
        where = f"[{self.partition}]" if self.partition else ""
        return f"{self.asset}{where}: {'; '.join(self.causes)}"


def _cause(cause) -> str:
    dependency = cause.dependency
    if dependency is None:
        return cause.reason
    part = f"[{dependency.partition_key}]" if dependency.partition_key else ""
    return f"{dependency.asset_key.to_user_string()}{part} {cause.reason}"


def observe_sources(instance: DagsterInstance, assets: Assets) -> None:
    """Observe every observable source so edited files get new data versions."""
    sources = [a for a in assets if isinstance(a, SourceAsset) and a.is_observable]
    sources += [a for a in assets if isinstance(a, AssetsDefinition) and a.is_observable]
    for source in sources:
        observe([source], instance=instance, run_config=QUIET)


@dataclass(frozen=True)
class InputProblems:
    """Scenes and styles whose input files cannot be used, each with its one-line error."""

    scenes: dict[str, str] = field(default_factory=dict)
    styles: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [f"scene {k}: {m}" for k, m in sorted(self.scenes.items())] + \
               [f"style {k}: {m}" for k, m in sorted(self.styles.items())]

    def blocking(self, partition: str | None) -> str | None:
        """The problem that keeps a partition from running (per-scene, per-style or scene|style key)."""
        for part in (partition or "").split("|"):
            if part in self.scenes or part in self.styles:
                return self.scenes.get(part) or self.styles[part]
        return None


def input_problems(catalog: Catalog, scenes: Sequence[str] | None = None,
                   styles: Sequence[str] | None = None) -> InputProblems:
    """Check every scene's files (missing, linked libraries) and style reference (opened, decoded, size)."""
    problems = InputProblems()
    for key in catalog.scenes if scenes is None else scenes:
        try:
            catalog.scene(key).input_files()
        except VF3DInputError as exc:
            problems.scenes[key] = str(exc)
    for key in catalog.styles if styles is None else styles:
        try:
            check_reference_image(catalog.style(key).reference)
        except VF3DInputError as exc:
            problems.styles[key] = str(exc)
    return problems


def check_partition_inputs(catalog: Catalog, scene: str, style: str) -> None:
    """Raise the first input problem of one scene x style partition (before any work starts)."""
    catalog.scene(scene).input_files()
    check_reference_image(catalog.style(style).reference)


def explain(item: StalePartition, problems: InputProblems) -> StalePartition:
    """A stale partition whose input file is missing or unusable says so, not "new dependency data version"."""
    problem = problems.blocking(item.partition)
    if problem is None:
        return item
    return StalePartition(item.asset, item.partition, (f"input unusable: {problem}",))


def stale_partitions(instance: DagsterInstance, assets: Assets) -> list[StalePartition]:
    """Every stale (asset, partition) in graph order; never-materialized partitions are not stale (missing)."""
    resolver = stale_resolver(instance, assets)
    graph = resolver.asset_graph
    found = []
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if not node.is_materializable:
            continue
        partitions = node.partitions_def.get_partition_keys() if node.partitions_def else [None]
        for partition in partitions:
            if resolver.get_status(key, partition) == StaleStatus.STALE:
                causes = tuple(_cause(c) for c in resolver.get_stale_causes(key, partition))
                found.append(StalePartition(key.to_user_string(), partition, causes))
    return found


def refresh(instance: DagsterInstance, assets: Assets, resources: Mapping[str, object],
            report: Callable[[StalePartition], None] | None = None, max_rounds: int = 20,
            problems: InputProblems | None = None) -> list[StalePartition]:
    """Observe sources, then materialize stale partitions layer by layer until nothing is stale.

    Partitions blocked by an input problem are left out (they stay stale and `vf3d stale` names the file).
    """
    problems = problems or InputProblems()
    observe_sources(instance, assets)
    done: list[StalePartition] = []
    for _ in range(max_rounds):
        stale = [s for s in stale_partitions(instance, assets) if problems.blocking(s.partition) is None]
        if not stale:
            return done
        first = stale[0].asset  # the most upstream stale asset: its reruns decide what goes stale next
        for item in (s for s in stale if s.asset == first):
            if report:
                report(item)
            materialize_owned(assets, item.asset, item.partition, instance, resources, QUIET)
            done.append(item)
    raise RuntimeError(f"refresh: still stale after {max_rounds} rounds: {stale_partitions(instance, assets)}")
