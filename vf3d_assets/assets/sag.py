"""Sparse Anchor-view Generation assets: per-style LoRAs, per scene x style anchors (paper Sec. 3.2)."""

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from PIL import Image

from resources.artifacts import ArtifactStore
from resources.gpu import GPU
from resources.models import ModelStore
from vf3d.common.atomic import forget_unlinked, link_files, output_lock
from vf3d.common.hashing import content_hash
from vf3d.common.limits import check_reference_image
from vf3d.common.visualize import contact_sheet, line_plot
from vf3d.models.hed import CONTROLNET_AUX_RESOLUTION, as_rgb
from vf3d.preprocess.hed_input import hed_detect_resolution
from vf3d.sag.anchors import anchor_frames, generate_anchors
from vf3d.sag.resolution import sag_size
from vf3d.sag.sampling import SAG_PRESETS, SAGPipeline, with_overrides
from vf3d.sag.style_lora import (LORA_PRESETS, META_FILE, StyleExample, StyleLoRATrainer, load_style_lora,
                                 sampling_prompt, training_prompts, training_size)
from vf3d.sag.style_lora import import_xflux_lora as import_xflux_lora_file
from vf3d_assets.assets.scenes import guidance
from vf3d_assets.assets.styles import style_reference
from vf3d_assets.learning_curves import imported_curve_check, loss_curve_check_spec, loss_curve_record
from vf3d_assets.progress import step_progress
from vf3d_assets.metadata import image_markdown
from vf3d_assets.partitions import catalog, from_scene, from_style, scene_style_partitions, style_partitions


class StyleLoRAConfig(Config):
    preset: str = ""
    """'paper' (400 steps, lr 1e-4) or 'tiny'; empty = the model store's profile."""
    steps: int = 0
    """Override the preset's steps (0 = keep)."""
    learning_rate: float = 0.0
    """Override the preset's learning rate (0 = keep)."""
    also_styles: list[str] = []
    """Multi-style mode (paper 'Style Variation'): also train on these styles' references, one identifier each,
    into this one LoRA, so `anchors` can switch identifiers per anchor (style transitions)."""
    pretrained_prompt: str = ""
    """The prompt the imported LoRA was trained with (the official default: empty)."""
    pretrained: str = ""
    """Import the official distribution alignment's x-flux LoRAs instead of training: its `checkpoint-<step>/`
    folder, or its `lora.safetensors` (a `controlnet.lora.safetensors` beside it is the ControlNet's); every
    tensor is checked against the FLUX transformer's (ControlNet's) blocks and shapes."""


@asset(
    partitions_def=style_partitions,
    deps=[style_reference],
    group_name="sag",
    code_version="4",  # 4: HED's final resize as controlnet_aux + PIL (vf3d.models.hed)
    pool="gpu",
    description="Distribution alignment: LoRA (rank 16) on FLUX's first 23 blocks and the HED ControlNet.",
    check_specs=[AssetCheckSpec("loss_decreased", asset="style_lora",
                                description="The evaluation loss on the reference fell during training."),
                 loss_curve_check_spec("style_lora")],
)
def style_lora(context: AssetExecutionContext, config: StyleLoRAConfig, artifacts: ArtifactStore, models: ModelStore,
               gpu: GPU) -> MaterializeResult:
    style = catalog.style(context.partition_key)
    if config.pretrained:
        return import_xflux_lora(Path(config.pretrained), artifacts.path("style_lora", context.partition_key),
                                 models, config.pretrained_prompt)
    device = gpu.settings()
    preset = models.preset(LORA_PRESETS, config.preset)
    settings = replace(preset, steps=config.steps or preset.steps,
                       learning_rate=config.learning_rate or preset.learning_rate)
    # One example per distinct identifier: a post-prompt variant shares its base style's reference and identifier.
    styles = {s.identifier: s for s in [style, *(catalog.style(k) for k in config.also_styles)]}
    for entry in styles.values():
        check_reference_image(entry.reference)  # missing, corrupt or oversized: one line, before any training
    reference = Image.open(style.reference).convert("RGB")
    out = artifacts.path("style_lora", context.partition_key)
    # Post-prompt variants reuse their reference's LoRA (paper Sec. 3.2, "Style Variation": "to avoid training
    # additional LoRA models"): the post-prompt is only added when sampling, so a style with the same references,
    # identifiers and settings trains the same LoRA; it is trained once, kept under its training key, and every
    # such style's partition links to it.
    shared = artifacts.base() / SHARED_LORAS / lora_training_key(styles, settings, models)
    shared.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(shared.parent / f"{shared.name}.training"):  # a variant trained meanwhile waits, then reuses
        trained_here, edge_picture = not (shared / META_FILE).is_file(), []
        if trained_here:
            with device.oom_advice("style_lora", *training_size(reference, settings.resolution)):
                components = models.flux(device.torch_dtype())
                # References go through HED at controlnet_aux's 512 px, as the official distribution alignment.
                hed = models.edges(device.torch_device(), device.torch_dtype(), CONTROLNET_AUX_RESOLUTION)
                trainer = StyleLoRATrainer(components, settings, edge_detector=hed)
                device.place(trainer.pipe, inference=False)
                # The LoRA learns the identifiers alone; post-prompts are added only when sampling (paper Fig. 8).
                examples = []
                for prompt, entry in zip(training_prompts(list(styles), settings), styles.values()):
                    image = Image.open(entry.reference).convert("RGB")
                    examples.append(StyleExample(image, Image.fromarray(as_rgb(hed(np.asarray(image)))), prompt))
                steps = step_progress(context, "LoRA steps", every=50)
                trainer.save(shared, trainer.train(examples, lambda step, loss: steps(step, settings.steps)))
                edge_picture = [np.asarray(examples[0].hed)]
        link_files(shared, out)
    forget_unlinked(shared)
    trained = json.loads((out / META_FILE).read_text())
    curve_metadata, curve_check = loss_curve_record(trained["losses"])
    return MaterializeResult(
        data_version=DataVersion(content_hash(out)),
        metadata={
            "path": MetadataValue.path(str(out)),
            "profile": models.profile,
            "device": MetadataValue.json(gpu.record()),
            "steps": settings.steps,
            "identifiers": MetadataValue.json(list(styles)),
            "trained": MetadataValue.text("here" if trained_here else
                                          f"reused: the LoRA of the same reference and identifier ({shared.name})"),
            **curve_metadata,
            "eval_loss_before": trained["eval_loss_before"],
            "eval_loss_after": trained["eval_loss_after"],
            "loss_curve": image_markdown(line_plot(trained["losses"]), "training loss"),
            "reference": image_markdown(contact_sheet([np.asarray(reference), *edge_picture], columns=2,
                                                      thumb_width=200), "reference (and its edge map, when trained here)"),
        },
        check_results=[AssetCheckResult(check_name="loss_decreased",
                                        passed=trained["eval_loss_after"] < trained["eval_loss_before"],
                                        metadata={"before": trained["eval_loss_before"],
                                                  "after": trained["eval_loss_after"]}),
                       curve_check],
    )


SHARED_LORAS = "style_lora_shared"
"""Artifacts folder of the LoRAs by training key; each style's `style_lora` partition holds links to one."""


def lora_training_key(styles: dict, settings, models: ModelStore) -> str:
    """What a style LoRA's training depends on: the references' content, the identifiers, the settings and the
    base model. Not the post-prompts, which only sampling uses."""
    parts = [content_hash(s.reference) for s in styles.values()] + list(styles)
    parts += [json.dumps(asdict(settings), sort_keys=True, default=str), models.profile, str(models.weights_dir)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def import_xflux_lora(source: Path, out: Path, models: ModelStore, prompt: str) -> MaterializeResult:
    # import_xflux_lora raises on any bad key or shape: reaching the check means verified.
    report = import_xflux_lora_file(source, out, models.flux_transformer_config(), models.flux_controlnet_config(),
                                    prompt)
    controlnet_verified = report["controlnet"]["tensors_verified"] if isinstance(report["controlnet"], dict) else 0
    return MaterializeResult(
        data_version=DataVersion(content_hash(out)),
        metadata={"path": MetadataValue.path(str(out)), "source": str(source), "import": MetadataValue.json(report)},
        check_results=[AssetCheckResult(check_name="loss_decreased", passed=True,
                                        description="imported: every tensor matches the transformer's (and the "
                                                    "ControlNet's) blocks and shapes",
                                        metadata={"tensors_verified": report["tensors_verified"],
                                                  "controlnet_tensors_verified": controlnet_verified}),
                       imported_curve_check()])


def anchor_rows(out: Path, frames: list[int]) -> list[np.ndarray]:
    """Per anchor: the anchor, the previous anchor warped into it, SAG's mask (black where there is none)."""
    pictures = []
    for frame in frames:
        anchor = np.asarray(Image.open(out / "anchors" / f"{frame:05d}.png").convert("RGB"))
        guidance = [out / sub / f"{frame:05d}.png" for sub in ("warped", "masks")]
        pictures += [anchor] + [np.asarray(Image.open(p).convert("RGB")) if p.is_file() else np.zeros_like(anchor)
                                for p in guidance]
    return pictures


class AnchorsConfig(Config):
    preset: str = ""
    """SAG sampling preset: 'paper' (25 steps, replacement in 12) or 'tiny'; empty = the model store's profile."""
    replacement: bool = True
    """Sparse Appearance-guided Sampling; off = the ablation of paper Fig. 11 (and style transitions)."""
    anchor_styles: list[str] = []
    """Style key per anchor for style transitions (paper Fig. 8), e.g. ['photo', 'photo_winter']; empty = this
    partition's style for every anchor. The styles must share this partition's LoRA (their identifiers)."""


@asset(
    partitions_def=scene_style_partitions,
    deps=[AssetDep(guidance, partition_mapping=from_scene), AssetDep(style_lora, partition_mapping=from_style)],
    group_name="sag",
    code_version="4",  # 4: sampled at 1.5x the video size (vf3d.sag.resolution), HED at the render height
    pool="gpu",
    description="Anchor views v_0, v_N (every segment boundary) by Sparse Appearance-guided Sampling.",
)
def anchors(context: AssetExecutionContext, config: AnchorsConfig, artifacts: ArtifactStore, models: ModelStore,
            gpu: GPU) -> MaterializeResult:
    keys = context.partition_key.keys_by_dimension
    scene_key, style_key = keys["scene"], keys["style"]
    style = catalog.style(style_key)
    guidance_dir = artifacts.path("guidance", scene_key)
    meta = json.loads((guidance_dir / "meta.json").read_text())
    frames = anchor_frames(meta["segments"])
    styles = [catalog.style(k) for k in config.anchor_styles] or [style] * len(frames)
    if len(styles) != len(frames):
        raise ValueError(f"anchor_styles: {len(styles)} given, scene '{scene_key}' has {len(frames)} anchors")
    # a post-prompt schedule changes the style over time (paper Fig. 8): without replacement, as the paper does
    post_prompts = [s.post_prompt for s in styles] if config.anchor_styles else style.anchor_post_prompts(len(frames))
    over_time = bool(style.post_prompt_schedule) and not config.anchor_styles
    device = gpu.settings()
    settings = with_overrides(models.preset(SAG_PRESETS, config.preset),
                              replacement=config.replacement and not over_time)
    with device.oom_advice("anchors", *sag_size(meta["width"], meta["height"], settings.resolution_scale)):
        pipe = models.flux(device.torch_dtype()).pipeline()
        lora_prompts = load_style_lora(pipe, artifacts.path("style_lora", style_key))["prompts"]
        device.place(pipe)
        pipe.set_progress_bar_config(disable=True)
        out = artifacts.path("anchors", context.partition_key)
        records = generate_anchors(
            SAGPipeline(pipe, step_progress(context, "denoising steps", every=0)), guidance_dir, out,
            [sampling_prompt(lora_prompts, s.identifier, p) for s, p in zip(styles, post_prompts)],
            models.edges(device.torch_device(), device.torch_dtype(), hed_detect_resolution(guidance_dir)), settings,
            lambda k: torch.Generator(device.torch_device()).manual_seed(device.seed + k),
            step_progress(context, "anchors"))
    pictures = [np.asarray(Image.open(out / "anchors" / f"{r.frame:05d}.png")) for r in records]
    return MaterializeResult(
        data_version=DataVersion(content_hash(out)),
        metadata={
            "path": MetadataValue.path(str(out)),
            "profile": models.profile,
            "device": MetadataValue.json(gpu.record()),
            "anchors": image_markdown(contact_sheet(pictures, columns=4, thumb_width=200), "anchor views"),
            "anchors_warped_and_masks": image_markdown(
                contact_sheet(anchor_rows(out, [r.frame for r in records]), columns=3, thumb_width=200),
                "each anchor (left), the previous anchor warped into it (middle), SAG's mask m (right, white = "
                "generated freely)"),
            "anchor_frames": MetadataValue.json([r.frame for r in records]),
            "observed_fraction": MetadataValue.json([round(r.observed_fraction, 4) for r in records]),
            "replaced_fraction": MetadataValue.json([round(r.replaced_fraction, 4) for r in records]),
            "resolution": f"{meta['width']}x{meta['height']}",
            "sag_resolution": "x".join(map(str, sag_size(meta["width"], meta["height"], settings.resolution_scale))),
            "replacement": settings.replacement,
            "post_prompts": MetadataValue.json(post_prompts),
        },
    )
