"""The metric networks' published architectures in the layout `full_metric_models` reads, random weights.

Companion of `vf3d.models.published` for the evaluation stage: `scale="full"` for the GPU acceptance run's
metrics timing, `scale="shrunk"` for the CPU tests of the full profile. Shape-deciding fields stay real in both:
input sizes and patch sizes (CLIP 224 px with 14 / 32 px patches, DINO 224 / 16, the depth model's 384 px input),
CLIP-L/14's 768-wide projection (the aesthetic head's input), AlexNet (LPIPS's calibrated layers fit only it)
and pyiqa's MUSIQ (its checkpoint format fixes its size); only depth and width of the transformers shrink.

The depth model is a DPT at dpt-hybrid-midas's 384 px input with a plain ViT backbone (the hybrid's BiT stem
has no shrinkable twin); PSNR-D takes any transformers depth model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from evaluation.models import ALEXNET_FILE, CLIP_B32, CLIP_L14, DEPTH, DINO, MUSIQ_FILE, load_musiq
from evaluation.quality import AESTHETIC_HEADS

Scale = Literal["full", "shrunk"]

PUBLISHED_METRICS = {
    "clip_l14": dict(image_size=224, patch_size=14, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                     num_attention_heads=16, projection_dim=768, hidden_act="quick_gelu"),
    "clip_b32": dict(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, projection_dim=512, hidden_act="quick_gelu"),
    "dino": dict(image_size=224, patch_size=16, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12),
    "depth": dict(image_size=384, patch_size=16, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                  num_attention_heads=12, backbone_out_indices=[2, 5, 8, 11], neck_hidden_sizes=[96, 192, 384, 768],
                  fusion_hidden_size=256),
}
SHRUNK_METRICS = {
    "clip_l14": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2),
    "clip_b32": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                     projection_dim=16),
    "dino": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2),
    "depth": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=4, num_attention_heads=2,
                  backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16),
}


def metric_config(name: str, scale: Scale) -> dict:
    if scale not in ("full", "shrunk"):
        raise ValueError(f"scale: expected 'full' or 'shrunk', got {scale!r}")
    return {**PUBLISHED_METRICS[name], **(SHRUNK_METRICS[name] if scale == "shrunk" else {})}


def write_full_metric_layout(metrics_dir: Path, scale: Scale = "shrunk", seed: int = 0) -> Path:
    """Every metric network, random weights, saved where `full_metric_models(metrics_dir)` looks."""
    from torchvision.models import alexnet
    from transformers import (CLIPVisionConfig, CLIPVisionModelWithProjection, DPTConfig, DPTForDepthEstimation,
                              DPTImageProcessor, ViTConfig, ViTModel)

    metrics_dir = Path(metrics_dir)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    for key, (folder, _) in (("clip_l14", CLIP_L14), ("clip_b32", CLIP_B32)):
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**metric_config(key, scale)))
        model.save_pretrained(metrics_dir / folder)
    ViTModel(ViTConfig(**metric_config("dino", scale)), add_pooling_layer=False).save_pretrained(metrics_dir / DINO[0])
    DPTForDepthEstimation(DPTConfig(**metric_config("depth", scale))).save_pretrained(metrics_dir / DEPTH[0])
    DPTImageProcessor(size={"height": 384, "width": 384}, keep_aspect_ratio=False, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(metrics_dir / DEPTH[0])  # dpt-hybrid-midas's processor
    for head in AESTHETIC_HEADS.values():
        torch.save(head.module().state_dict(), metrics_dir / head.file)
    torch.save(alexnet(weights=None).state_dict(), metrics_dir / ALEXNET_FILE)
    torch.save(load_musiq(None).net.state_dict(), metrics_dir / MUSIQ_FILE)
    return metrics_dir
