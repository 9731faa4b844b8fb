"""The code location: loads assets, resources and jobs; no logic lives here."""

from dagster import Definitions, define_asset_job

from resources import GPU, ArtifactStore, BlenderRenderer, ModelStore
from vf3d_assets.assets.sag import anchors, style_lora
from vf3d_assets.assets.scenes import guidance, scene, scene_source
from vf3d_assets.assets.styles import style_reference
from vf3d_assets.partitions import scene_partitions, scene_style_partitions, style_partitions

scene_job = define_asset_job("scene_guidance", selection=["scene", "guidance"], partitions_def=scene_partitions,
                             description="Parse a shot and render its guidance (edges, depth, flows).")

style_job = define_asset_job("style_alignment", selection=["style_lora"], partitions_def=style_partitions,
                             description="Train a style's LoRA (distribution alignment).")
anchors_job = define_asset_job("anchor_views", selection=["anchors"], partitions_def=scene_style_partitions,
                               description="Generate a scene x style's anchor views (SAG).")

defs = Definitions(
    assets=[scene_source, scene, guidance, style_reference, style_lora, anchors],
    jobs=[scene_job, style_job, anchors_job],
    resources={"artifacts": ArtifactStore(), "blender": BlenderRenderer(), "models": ModelStore(), "gpu": GPU()},
)
