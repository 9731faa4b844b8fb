"""The code location: loads assets, resources and jobs; no logic lives here."""

from dagster import Definitions, define_asset_job

from resources import ArtifactStore, BlenderRenderer
from vf3d_assets.assets.scenes import guidance, scene, scene_source
from vf3d_assets.assets.styles import style_reference
from vf3d_assets.partitions import scene_partitions

scene_job = define_asset_job("scene_guidance", selection=["scene", "guidance"], partitions_def=scene_partitions,
                             description="Parse a shot and render its guidance (edges, depth, flows).")

defs = Definitions(
    assets=[scene_source, scene, guidance, style_reference],
    jobs=[scene_job],
    resources={"artifacts": ArtifactStore(), "blender": BlenderRenderer()},
)
