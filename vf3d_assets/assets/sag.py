"""Sparse Anchor-view Generation assets: per-style LoRAs, per scene x style anchors (paper Sec. 3.2)."""

import json
from dataclasses import replace
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
from vf3d.common.hashing import content_hash
from vf3d.common.limits import check_reference_image
from vf3d.common.visualize import contact_sheet, line_plot
from vf3d.models.hed import CONTROLNET_AUX_RESOLUTION, as_rgb
from vf3d.sag.anchors import anchor_frames, generate_anchors
from vf3d.sag.sampling import SAG_PRESETS, SAGPipeline, with_overrides
from vf3d.sag.style_lora import (LORA_PRESETS, StyleExample, StyleLoRATrainer, load_style_lora, sampling_prompt,
                                 training_prompts, training_size)
from vf3d.sag.style_lora import import_xflux_lora as import_xflux_lora_file
from vf3d_assets.assets.scenes import guidance
from vf3d_assets.assets.styles import style_reference
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
    code_version="2",
    pool="gpu",
    description="Distribution alignment: LoRA (rank 16) on FLUX's first 23 blocks and the HED ControlNet.",
    check_specs=[AssetCheckSpec("loss_decreased", asset="style_lora",
                                description="The evaluation loss on the reference fell during training.")],
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
    with device.oom_advice("style_lora", *training_size(reference, settings.resolution)):
        components = models.flux(device.torch_dtype())
        # References go through HED at controlnet_aux's 512 px, as the official distribution alignment does.
        hed = models.edges(device.torch_device(), device.torch_dtype(), CONTROLNET_AUX_RESOLUTION)
        trainer = StyleLoRATrainer(components, settings, edge_detector=hed)
        device.place(trainer.pipe, inference=False)
        # The LoRA learns the identifiers alone; post-prompts are added only when sampling (paper Fig. 8).
        examples = []
        for prompt, entry in zip(training_prompts(list(styles), settings), styles.values()):
            image = Image.open(entry.reference).convert("RGB")
            examples.append(StyleExample(image, Image.fromarray(as_rgb(hed(np.asarray(image)))), prompt))
        steps = step_progress(context, "LoRA steps", every=50)
        result = trainer.train(examples, lambda step, loss: steps(step, settings.steps))
        example = examples[0]
    out = artifacts.path("style_lora", context.partition_key)
    trainer.save(out, result)
    return MaterializeResult(
        data_version=DataVersion(content_hash(out)),
        metadata={
            "path": MetadataValue.path(str(out)),
            "profile": models.profile,
            "device": MetadataValue.json(gpu.record()),
            "steps": settings.steps,
            "identifiers": MetadataValue.json(list(styles)),
            "final_loss": float(np.mean(result.losses[-10:])),
            "eval_loss_before": result.eval_loss_before,
            "eval_loss_after": result.eval_loss_after,
            "loss_curve": image_markdown(line_plot(result.losses), "training loss"),
            "reference": image_markdown(contact_sheet([np.asarray(reference), np.asarray(example.hed)], columns=2,
                                                      thumb_width=200), "reference and its edge map"),
        },
        check_results=[AssetCheckResult(check_name="loss_decreased", passed=result.improved,
                                        metadata={"before": result.eval_loss_before, "after": result.eval_loss_after})],
    )


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
                                                  "controlnet_tensors_verified": controlnet_verified})])


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
    code_version="2",
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
    device = gpu.settings()
    settings = with_overrides(models.preset(SAG_PRESETS, config.preset), replacement=config.replacement)
    with device.oom_advice("anchors", meta["width"], meta["height"]):
        pipe = models.flux(device.torch_dtype()).pipeline()
        lora_prompts = load_style_lora(pipe, artifacts.path("style_lora", style_key))["prompts"]
        device.place(pipe)
        pipe.set_progress_bar_config(disable=True)
        out = artifacts.path("anchors", context.partition_key)
        records = generate_anchors(
            SAGPipeline(pipe, step_progress(context, "denoising steps", every=0)), guidance_dir, out,
            [sampling_prompt(lora_prompts, s.identifier, s.post_prompt) for s in styles],
            models.edges(device.torch_device(), device.torch_dtype()), settings,
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
            "replacement": settings.replacement,
        },
    )
