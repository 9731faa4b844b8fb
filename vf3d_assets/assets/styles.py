"""Per-style assets: the observed reference images."""

from dagster import DataVersion, DataVersionsByPartition, observable_source_asset

from vf3d.common.errors import VF3DInputError
from vf3d.common.hashing import content_hash
from vf3d.common.limits import check_reference_image
from vf3d_assets.assets.scenes import MISSING
from vf3d_assets.partitions import catalog, style_partitions


@observable_source_asset(partitions_def=style_partitions, group_name="styles",
                         description="A style's reference image; data version = content hash (+ prompt).")
def style_reference() -> DataVersionsByPartition:
    versions = {}
    for key, style in catalog.styles.items():
        # The prompt is part of the style: changing the post-prompt must make the style's outputs stale.
        try:
            check_reference_image(style.reference)
            image = content_hash(style.reference)[:16]
        except VF3DInputError:
            image = MISSING
        versions[key] = DataVersion(f"{image}|{style.prompt}")
    return DataVersionsByPartition(versions)
