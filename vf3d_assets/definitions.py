"""The code location: loads assets, resources and jobs; no logic lives here."""

from dagster import Definitions, define_asset_job

from resources import ArtifactStore, BlenderRenderer
from resources.deployment import deployment_resources, selected_executor, selected_methods
from vf3d_assets.assets import ALL_ASSETS
from vf3d_assets.assets.evaluation import metrics_asset_name
from vf3d_assets.assets.ggi import GGI_VIDEO_METHODS, GGI_WEIGHTS, video_asset_name
from vf3d_assets.partitions import scene_partitions, scene_style_partitions, style_partitions
from vf3d_assets.sensors import stale_partitions_sensor

resources = {"artifacts": ArtifactStore(), "blender": BlenderRenderer(), **deployment_resources()}
# The deployment's `methods` (VF3D_METHODS) decide what the jobs run; every method's assets stay in the UI.
methods = selected_methods()
weights = [GGI_WEIGHTS[GGI_VIDEO_METHODS[m]] for m in methods if GGI_VIDEO_METHODS.get(m)]
# The deployment's `executor` (VF3D_EXECUTOR): "local" = Dagster's multiprocess executor, each GPU step leasing
# one of this machine's devices; "k8s" = one Kubernetes Job per step, the GPU steps' pods on GPU nodes, and the
# GPU jobs' runs tagged for the run queue's GPU limit (vf3d_assets/k8s.py, deploy/k8s/).
if selected_executor() == "k8s":
    from vf3d_assets.k8s import GPU_RUN_TAGS, gpu_executor, gpu_pool_steps

    executor, gpu_tags = gpu_executor(gpu_pool_steps(ALL_ASSETS)), dict(GPU_RUN_TAGS)
else:
    executor, gpu_tags = None, {}

scene_job = define_asset_job("scene_guidance", selection=["scene", "guidance", "warped_noise"],
                             partitions_def=scene_partitions, tags=gpu_tags,
                             description="Parse a shot, render its guidance (edges, depth, flows), warp its noise.")
style_job = define_asset_job("style_alignment", selection=["style_lora"], partitions_def=style_partitions,
                             tags=gpu_tags,
                             description="Train a style's LoRA (distribution alignment).")
shot_job = define_asset_job("shot_video", selection=["anchors", *(video_asset_name(m) for m in methods),
                                                     *(metrics_asset_name(m) for m in methods)],
                            partitions_def=scene_style_partitions, tags=gpu_tags,
                            description=f"A scene x style's anchor views (SAG), then the video and metrics of each "
                                        f"configured method ({', '.join(methods)}).")
report_job = define_asset_job("benchmark_table", selection=["benchmark_report"],
                              description="Table 2 of the paper over every evaluated partition and method.")
training_job = define_asset_job("ggi_training", selection=["ggi_training_set", *weights], tags=gpu_tags,
                                description="Build the GGI training clips and fine-tune the GGI transformer(s) of "
                                            "the configured methods.")

defs = Definitions(
    assets=ALL_ASSETS,
    sensors=[stale_partitions_sensor],
    jobs=[scene_job, style_job, shot_job, training_job, report_job],
    # models and gpu: the deployment's one switch (VF3D_* variables or <VF3D_HOME>/vf3d.toml; resources.deployment)
    resources=resources,
    executor=executor,
)
