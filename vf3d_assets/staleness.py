"""Per-partition stale status (the UI does not show it for partitioned assets, dagster issue #22553).

Uses Dagster's `CachingStaleStatusResolver`, internal API: dagster is pinned and tests cover this.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetKey, AssetsDefinition, DagsterInstance, SourceAsset
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime


def stale_resolver(instance: DagsterInstance, assets: Sequence[AssetsDefinition | SourceAsset]) -> CachingStaleStatusResolver:
    graph = AssetGraph.from_assets(assets)
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=graph)
    return CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)


def partition_status(instance: DagsterInstance, assets: Sequence[AssetsDefinition | SourceAsset], asset: str,
                     partition: str) -> StaleStatus:
    return stale_resolver(instance, assets).get_status(AssetKey(asset), partition)
