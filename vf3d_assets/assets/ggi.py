"""Geometry-guided Generative Inbetweening assets: warped noise, GGI training, videos (paper Sec. 3.3-3.4)."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from PIL import Image
from safetensors.torch import load_file, save_file

from resources.artifacts import ArtifactStore
from resources.gpu import GPU
from resources.models import ModelStore
from vf3d.common.atomic import atomic_dir, atomic_file
from vf3d.common.hashing import content_hash
from vf3d.common.visualize import contact_sheet, line_plot
from vf3d.ggi.inbetween import generate_video, segment_noise
from vf3d.ggi.noise_warp import NOISE_WARP_PRESETS, noise_stats
from vf3d.ggi.pipeline import GGI_PRESETS, GGIPipeline
from vf3d.ggi.training import (GGI_TRAINING_PRESETS, GGITrainer, load_clip, save_clip, training_run_key,
                               with_structure_condition)
from vf3d.ggi.training_set import (clip_from_render, clip_from_video, hed_s_depth_pictures, read_video_frames,
                                   video_folders)
from vf3d.models.hed import CONTROLNET_AUX_RESOLUTION
from vf3d.models.ggi_checkpoint import import_ggi_weights
from vf3d.models.raft import load_raft
from vf3d.preprocess.hed_input import hed_detect_resolution
from vf3d_assets.assets.sag import anchors
from vf3d_assets.learning_curves import imported_curve_check, loss_curve_check_spec, loss_curve_record
from vf3d_assets.assets.scenes import guidance
from vf3d_assets.progress import step_progress
from vf3d_assets.metadata import image_markdown, method_display, save_method_video
from vf3d_assets.partitions import catalog, from_scene, scene_partitions, scene_style_partitions

LATENT_CHANNELS = 16  # CogVideoX's VAE, in both profiles
WEIGHTS_FILE = "ggi_weights.safetensors"


class WarpedNoiseConfig(Config):
    degradation: float = 0.5
    """Mix with fresh noise (official code: 0.5); 0 = pure warped noise."""
    seed: int = 0
    preset: str = "paper"
    """'paper': the official warping (4x video resolution, noise frames 0, 3, 7, ..., 45, unchecked expand, area
    readout); 'latent_stride': noise frames 0, 4, ..., 48 and vf3d's checked expand; 'video_rate': every
    consecutive flow at video resolution (see vf3d.ggi.noise_warp.NoiseWarpSettings)."""


@asset(partitions_def=scene_partitions, deps=[guidance], group_name="ggi", code_version="3", pool="gpu",
       description="Go-with-the-Flow warped noise per segment at latent resolution (13 x 16 x H/8 x W/8).")
def warped_noise(context: AssetExecutionContext, config: WarpedNoiseConfig, artifacts: ArtifactStore, gpu: GPU
                 ) -> MaterializeResult:
    guidance_dir = artifacts.path("guidance", context.partition_key)
    segments = json.loads((guidance_dir / "meta.json").read_text())["segments"]
    settings = GGI_PRESETS["paper"]
    if config.preset not in NOISE_WARP_PRESETS:
        raise ValueError(f"warped_noise config preset={config.preset!r}: expected one of {sorted(NOISE_WARP_PRESETS)}")
    out = artifacts.path("warped_noise", context.partition_key)
    stats = []
    with atomic_dir(out) as tmp:
        for k in range(len(segments)):
            noise = segment_noise(guidance_dir, k, LATENT_CHANNELS, settings, config.degradation,
                                  torch.Generator().manual_seed(config.seed + k), NOISE_WARP_PRESETS[config.preset],
                                  gpu.settings().torch_device())
            save_file({"noise": noise.contiguous()}, tmp / f"seg{k:03d}.safetensors")
            stats.append(noise_stats(noise))
    return MaterializeResult(data_version=DataVersion(content_hash(out)), metadata={
        "path": MetadataValue.path(str(out)), "segments": len(segments),
        "shape": str(tuple(noise.shape)), "max_abs_frame_mean": max(max(abs(m) for m in s["mean"]) for s in stats),
        "frame_std": MetadataValue.json([s["std"] for s in stats])})


class TrainingSetConfig(Config):
    scenes: list[str] = ["cottage", "street"]
    """tiny: benchmark scenes rendered with random textures (exact flows and depth)."""
    clips_per_scene: int = 1
    width: int = 0
    height: int = 0
    """Clip size; 0 = the GGI transformer's own size (CogVideoX-5b-I2V: 720x480, the only size its learned
    positional embeddings accept; tiny: 64x48)."""
    videos_dir: str = ""
    """full: a DL3DV-style folder of videos (see vf3d.ggi.training_set); flows by RAFT, HED-S of estimated depth."""
    max_videos: int = 0
    """full: use at most this many videos (0 = all)."""
    frame_stride: int = 1
    crop: str = "zoom"
    """full: 'zoom' = the official crop (cover the size x1.1, one random crop per clip, seeded by the clip's
    index); 'centre' = centre crop to the aspect ratio."""
    raft_weights: str = ""
    """full: RAFT state dict (.pth) or a folder holding it; empty = the model store's weights_dir."""
    raft_model: str = "large"
    """full: torchvision's 'large' RAFT (raft_large_C_T_SKHT_V2) or 'small' (raft_small_C_T_V2)."""
    depth_model: str = ""
    """full, HED-S depth: empty = the official controlnet_aux MiDaS annotator (dpt_hybrid-midas-501f0c75.pt in
    the weights folder, beside ControlNetHED.pth); a .pt file = that annotator file; a transformers depth
    model folder (config.json) = that model's disparity, min-max normalised (e.g. Depth Anything)."""
    prompt: str = ""
    """Every clip's prompt; empty = the BLIP-2 caption of its first frame (the official training's captions)."""


def training_clip_size(config: TrainingSetConfig, models: ModelStore) -> tuple[int, int]:
    """(width, height) of the training clips: the config's, else the GGI transformer's own size."""
    native = models.ggi_sample_size()
    return config.width or native[0], config.height or native[1]


@asset(group_name="ggi", code_version="3", pool="gpu",
       description="GGI training clips: frames, flows, HED-S structure maps (tiny: textured renders of benchmark "
                   "scenes with exact flows and depth).")
def ggi_training_set(context: AssetExecutionContext, config: TrainingSetConfig, artifacts: ArtifactStore,
                     models: ModelStore, gpu: GPU) -> MaterializeResult:
    for name, value, choices in (("raft_model", config.raft_model, ("large", "small")),
                                 ("crop", config.crop, ("zoom", "centre"))):
        if value not in choices:  # before any model is loaded
            raise ValueError(f"ggi_training_set config {name}={value!r}: expected one of {', '.join(choices)}")
    device = gpu.settings()
    edges = models.edges(device.torch_device(), device.torch_dtype())
    # the official HED-S calls controlnet_aux's HEDdetector with its default 512 px detect resolution
    hed_s_edges = models.edges(device.torch_device(), device.torch_dtype(), CONTROLNET_AUX_RESOLUTION)
    caption = None if config.prompt else models.captioner(device.torch_device(), device.torch_dtype())
    num_frames = models.preset(GGI_TRAINING_PRESETS).num_frames
    size = training_clip_size(config, models)
    out = artifacts.path("ggi_training_set", "all")
    previews = []
    with atomic_dir(out) as tmp:
        if config.videos_dir:  # real videos (the paper's DL3DV-10K), the full profile's path
            weights_dir = models.locations().weights_dir
            raft = load_raft(Path(config.raft_weights or weights_dir), large=config.raft_model == "large",
                             device=device.torch_device())
            depth_pictures = hed_s_depth_pictures(Path(config.depth_model or weights_dir), device.torch_device())
            folders = video_folders(Path(config.videos_dir))[: config.max_videos or None]
            for k, folder in enumerate(folders):
                frames = read_video_frames(folder, num_frames, config.frame_stride, size,
                                           crop_seed=k if config.crop == "zoom" else None)
                clip = clip_from_video(frames, raft, depth_pictures, hed_s_edges)
                clip.prompt = config.prompt or caption(clip.frames[0])
                save_clip(clip, tmp / f"video_{k:05d}")
                previews += [clip.frames[0], np.repeat(clip.structure[0][..., None], 3, -1)]
        for scene_key in [] if config.videos_dir else config.scenes:
            entry = catalog.scene(scene_key)
            for k in range(config.clips_per_scene):
                clip = clip_from_render(entry.source, *size, num_frames, seed=k,
                                        edge_detector=edges, workdir=tmp / ".work", trajectory=entry.trajectory)
                clip.prompt = config.prompt or caption(clip.frames[0])
                save_clip(clip, tmp / f"{scene_key}_{k:02d}")
                previews += [clip.frames[0], np.repeat(clip.structure[0][..., None], 3, -1)]
        shutil.rmtree(tmp / ".work", ignore_errors=True)
        prompts = sorted({json.loads((c / "clip.json").read_text())["prompt"] for c in tmp.iterdir()
                          if (c / "clip.json").is_file()})
        if not previews:
            raise ValueError(f"ggi_training_set: no clips (videos_dir={config.videos_dir!r}, scenes={config.scenes})")
    return MaterializeResult(data_version=DataVersion(content_hash(out)), metadata={
        "path": MetadataValue.path(str(out)), "clips": len(previews) // 2,
        "source": config.videos_dir or "textured benchmark renders",
        "frames_per_clip": num_frames, "size": f"{size[0]}x{size[1]}", "prompts": MetadataValue.json(prompts),
        "samples": image_markdown(contact_sheet(previews, columns=4, thumb_width=160), "frames and HED-S")})


class GGIWeightsConfig(Config):
    preset: str = ""
    """'paper' or 'tiny'; empty = the model store's profile."""
    steps: int = 0
    """Override the preset's steps (0 = keep)."""
    pretrained: str = ""
    """Import GGI weights instead of training: the official `checkpoint-1350` folder (or its `transformer/`
    subfolder) as released, or a vf3d weights file. Every tensor is checked against the model's shapes."""
    pretrained_adapter: str = "checkpoint"
    """'checkpoint': keep the LoRA adapter stored in the imported checkpoint and run it (official `ggi.py`);
    'discard': drop it and attach the Go-with-the-Flow LoRA file instead (see vf3d.models.ggi_checkpoint)."""
    noise_warp: str = ""
    """Override how the training noise is warped: a `NOISE_WARP_PRESETS` key ('video_rate' is the cheapest on a CPU:
    the official 4x field costs minutes per step at 720x480); empty = the preset's (official: per consecutive flow
    on the 4x field, `vf3d.ggi.training.TRAINING_NOISE_WARP`)."""
    gradient_accumulation: int = 0
    """Override the clips per optimisation step (0 = the preset's; paper: 16): fewer for a quick shape check."""


GGI_WEIGHTS = {"hed_s": "ggi_weights", "hed": "ggi_weights_hed", "none": "ggi_weights_no_structure"}
"""Structure condition (paper Table 3) -> its weights asset."""
GGI_VIDEO_METHODS = {"ggi": "hed_s", "ggi_hed": "hed", "ggi_no_structure": "none", "bidirectional": None}
"""Methods sampled by the GGI pipeline -> the structure condition of their weights (None: the base model)."""


def ggi_weights_asset(structure: str = "hed_s") -> AssetsDefinition:
    """The GGI weights trained with one structure condition (`STRUCTURE_CONDITIONS`; "hed_s" is the paper's)."""
    name = GGI_WEIGHTS[structure]
    ablation = "" if structure == "hed_s" else f" Ablation (paper Table 3): structure condition '{structure}'."

    @asset(name=name, deps=[ggi_training_set], group_name="ggi", code_version="6", pool="gpu",
           description="The fine-tuned, widened GGI transformer weights (resumes from its last checkpoint)." + ablation,
           check_specs=[AssetCheckSpec("loss_decreased", asset=name,
                                       description="Trained: the evaluation loss on the training clips fell. "
                                                   "Imported: every tensor of the widened transformer was found "
                                                   "with its shape."),
                        loss_curve_check_spec(name)])
    def weights_asset(context: AssetExecutionContext, config: GGIWeightsConfig, artifacts: ArtifactStore,
                      models: ModelStore, gpu: GPU) -> MaterializeResult:
        out = artifacts.path(name, "all")
        weights = out / WEIGHTS_FILE
        if config.pretrained:
            # import_ggi_weights raises on any missing, extra or misshapen tensor: reaching the check means verified.
            state, report = import_ggi_weights(config.pretrained, models.ggi_weight_shapes(),
                                               config.pretrained_adapter)
            with atomic_file(weights) as tmp:
                save_file(state, tmp)
            return MaterializeResult(data_version=DataVersion(content_hash(weights)),
                                     metadata={"path": MetadataValue.path(str(weights)), "source": config.pretrained,
                                               "import": MetadataValue.json(report), "structure": structure},
                                     check_results=[AssetCheckResult(
                                         check_name="loss_decreased", passed=True,
                                         description="imported: " + report["verified"],
                                         metadata={"tensors_verified": report["tensors_verified"],
                                                   "parameters_verified": report["parameters_verified"],
                                                   "layout": report["layout"]}), imported_curve_check()])
        device = gpu.settings()
        preset = models.preset(GGI_TRAINING_PRESETS, config.preset)
        if config.gradient_accumulation < 0:
            raise ValueError(f"ggi_weights config gradient_accumulation={config.gradient_accumulation}: expected 0 "
                             "(the preset's) or a positive number of clips per step")
        if config.noise_warp and config.noise_warp not in NOISE_WARP_PRESETS:
            raise ValueError(f"ggi_weights config noise_warp={config.noise_warp!r}: expected one of "
                             f"{sorted(NOISE_WARP_PRESETS)}")
        settings = replace(preset, steps=config.steps or preset.steps,
                           gradient_accumulation=config.gradient_accumulation or preset.gradient_accumulation,
                           noise_warp=replace(NOISE_WARP_PRESETS[config.noise_warp], flow_stride=1)
                           if config.noise_warp else preset.noise_warp)
        clips_dir = artifacts.path("ggi_training_set", "all")
        # "hed": HED of the RGB frames, by the same detector (controlnet_aux's 512 px) that made HED-S
        hed = models.edges(device.torch_device(), device.torch_dtype(), CONTROLNET_AUX_RESOLUTION) \
            if structure == "hed" else None
        clips = [with_structure_condition(load_clip(p), structure, hed) for p in sorted(clips_dir.iterdir())
                 if (p / "clip.json").exists()]
        # Training starts from the base I2V model widened with zero edge weights (paper Sec. 3.3).
        trainer = GGITrainer(models.ggi(device.torch_dtype(), None, widened=True), settings)
        batches = trainer.prepare_all(clips)
        before = trainer.evaluate(batches)
        # Checkpoints are keyed by the clips' content, the settings and the base model: new inputs retrain from
        # the start (and so give new weights, making the videos stale) instead of resuming a finished run.
        base_model = models.profile if models.profile == "tiny" else "|".join(map(str, models.locations().ggi_files()))
        run_key = training_run_key(content_hash(clips_dir), settings, f"{base_model}|structure={structure}")
        steps = step_progress(context, "training steps", every=10)
        losses = trainer.train(None, out / "checkpoints", batches=batches, run_key=run_key,
                               progress=lambda step, loss: steps(step, settings.steps))
        after = trainer.evaluate(batches)
        trainer.export(weights, losses)
        curve_metadata, curve_check = loss_curve_record(losses)
        return MaterializeResult(
            data_version=DataVersion(content_hash(weights)),
            metadata={"path": MetadataValue.path(str(weights)), "profile": models.profile, "structure": structure,
                      "device": MetadataValue.json(gpu.record()), "steps": settings.steps,
                      "eval_loss_before": before, "eval_loss_after": after, **curve_metadata,
                      "loss_curve": image_markdown(line_plot(losses), "training loss")},
            check_results=[AssetCheckResult(check_name="loss_decreased", passed=after < before,
                                            metadata={"before": before, "after": after}), curve_check],
        )

    return weights_asset


ggi_weights = ggi_weights_asset("hed_s")
ggi_weights_hed = ggi_weights_asset("hed")
ggi_weights_no_structure = ggi_weights_asset("none")


class VideoConfig(Config):
    preset: str = ""
    """'paper' (30 steps, CFG 6) or 'tiny'; empty = the model store's profile."""
    prompt: str = ""
    """Text prompt for CogVideoX; empty = the BLIP-2 caption of the first anchor (official `ggi.py`)."""
    fps: float = 8.0
    duplicate_joins: bool = False
    """False: each join's boundary frame once, one video frame per trajectory frame (vf3d). True: every segment's
    46 frames kept, the boundary frame twice, as the official `ggi.py` (vf3d.common.video_io.chain_segments);
    such a video no longer matches the trajectory frame for frame, which the metrics require."""


def video_asset_name(method_key: str) -> str:
    """The video asset of a method: `video` for the paper's, `video_<method>` for the others."""
    return "video" if method_key == "ggi" else f"video_{method_key}"


def ggi_video_asset(method_key: str = "ggi") -> AssetsDefinition:
    """The video of a method sampled by the GGI pipeline (`GGI_VIDEO_METHODS`): GGI with the weights of its
    structure condition, or the training-free bidirectional baseline on the base model."""
    structure = GGI_VIDEO_METHODS[method_key]
    name = video_asset_name(method_key)
    weights_deps = [] if structure is None else [AssetKey(GGI_WEIGHTS[structure])]

    @asset(
        name=name,
        partitions_def=scene_style_partitions,
        deps=[anchors, AssetDep(guidance, partition_mapping=from_scene),
              AssetDep(warped_noise, partition_mapping=from_scene), *weights_deps],
        group_name="ggi" if method_key == "ggi" else "methods", code_version="4", pool="gpu",
        description=f"{method_display(method_key)}: every segment in-betweened between its anchors, chained; "
                    "H.264 mp4 + frames.",
    )
    def video_of_method(context: AssetExecutionContext, config: VideoConfig, artifacts: ArtifactStore,
                        models: ModelStore, gpu: GPU) -> MaterializeResult:
        scene_key = context.partition_key.keys_by_dimension["scene"]
        guidance_dir = artifacts.path("guidance", scene_key)
        settings = models.preset(GGI_PRESETS, config.preset)
        settings = replace(settings, method="bidirectional" if structure is None else "ggi",
                           structure=structure or "hed_s")
        device = gpu.settings()
        weights = None if structure is None else artifacts.path(GGI_WEIGHTS[structure], "all") / WEIGHTS_FILE
        noise_dir = artifacts.path("warped_noise", scene_key)
        anchors_dir = artifacts.path("anchors", context.partition_key)
        prompt, prompt_source = config.prompt, "config"
        if not prompt:
            first_anchor = sorted((anchors_dir / "anchors").glob("*.png"))[0]
            prompt = models.captioner(device.torch_device(), device.torch_dtype())(
                np.asarray(Image.open(first_anchor).convert("RGB")))
            prompt_source = f"BLIP-2 caption of the first anchor ({first_anchor.name})"
            context.log.info(f"prompt: {prompt!r}")
        meta = json.loads((guidance_dir / "meta.json").read_text())
        with device.oom_advice(name, meta["width"], meta["height"]):
            ggi = GGIPipeline(models.ggi(device.torch_dtype(), weights),
                              step_progress(context, "denoising steps", every=0))
            device.place(ggi.pipe)
            ggi.set_progress_bar_config(disable=True)
            frames = generate_video(
                ggi, guidance_dir, anchors_dir,
                lambda k: load_file(noise_dir / f"seg{k:03d}.safetensors")["noise"],
                models.edges(device.torch_device(), device.torch_dtype(), hed_detect_resolution(guidance_dir)),
                settings, prompt,
                lambda k: torch.Generator(device.torch_device()).manual_seed(device.seed + k),
                step_progress(context, "segments"), duplicate_joins=config.duplicate_joins)
        return save_method_video(artifacts.path(name, context.partition_key), frames, method_key, models.profile,
                                 config.fps, gpu.record(),
                                 {"prompt": prompt, "prompt_source": prompt_source, "structure": settings.structure,
                                  "duplicate_joins": config.duplicate_joins},
                                 edges_dir=guidance_dir / "edges")

    return video_of_method


video = ggi_video_asset("ggi")
video_bidirectional = ggi_video_asset("bidirectional")
video_ggi_hed = ggi_video_asset("ggi_hed")
video_ggi_no_structure = ggi_video_asset("ggi_no_structure")
