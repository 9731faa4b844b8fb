"""Per-style assets: the observed reference images."""

from dagster import DataVersion, DataVersionsByPartition, observable_source_asset

from resources.artifacts import content_hash
from vf3d_assets.assets.scenes import MISSING
from vf3d_assets.partitions import catalog, style_partitions


@observable_source_asset(partitions_def=style_partitions, group_name="styles",
                         description="A style's reference image; data version = content hash (+ prompt).")
def style_reference() -> DataVersionsByPartition:
    versions = {}
    for key, style in catalog.styles.items():
        # The prompt is part of the style: changing the post-prompt must make the style's outputs stale.
        image = content_hash(style.reference)[:16] if style.reference.is_file() else MISSING
        versions[key] = DataVersion(f"{image}|{style.prompt}")
    return DataVersionsByPartition(versions)
