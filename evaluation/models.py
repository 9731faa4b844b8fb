"""Metric model profiles: every network the metrics use, `tiny` (seeded random, offline, CPU) or `full` (disk).

`full` never downloads. It reads `<weights_dir>/<name>` first, then the Hugging Face hub cache (transformers
folders) or torch's hub cache (state-dict files), and raises one `MissingWeightsError` naming every missing
component and every path looked at::

    weights_dir/clip-vit-large-patch14/              openai/clip-vit-large-patch14 (CLIP-A, CLIP-I)
    weights_dir/sa_0_4_vit_l_14_linear.pth           LAION aesthetic linear head (CLIP-A, default)
    weights_dir/sac+logos+ava1-l14-linearMSE.pth     improved aesthetic MLP head (CLIP-A, `improved_mlp`)
    weights_dir/clip-vit-base-patch32/               openai/clip-vit-base-patch32 (VBench BC)
    weights_dir/dino-vitb16/                         facebook/dino-vitb16 (VBench SC)
    weights_dir/alexnet-owt-7be5be79.pth             torchvision AlexNet (LPIPS trunk)
    weights_dir/musiq_koniq_ckpt-e95806b9.pth        pyiqa MUSIQ, KonIQ-10k
    weights_dir/dpt-hybrid-midas/                    Intel/dpt-hybrid-midas (PSNR-D; any transformers depth
                                                     model folder can be given as `depth_dir`)

CLIP folders may hold the whole `CLIPModel` (as the hub repos do); only the vision tower and its projection
are loaded. LPIPS is torchmetrics' implementation (`_LPIPS`, private API pinned by torchmetrics==1.9.0): its
public class always asks torchvision for ImageNet AlexNet weights (a download), so the trunk is built empty
(`pnet_rand=True`) and filled from the AlexNet file; the calibrated linear layers (LPIPS v0.1) ship inside
torchmetrics. The `tiny` profile keeps those shipped layers on a random trunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from evaluation.quality import DEFAULT_AESTHETIC_HEAD, aesthetic_head_spec, load_aesthetic_head
from vf3d.models.weights import MissingWeightsError

if TYPE_CHECKING:
    from vf3d.models.store import ModelLocations

CLIP_L14 = ("clip-vit-large-patch14", "openai/clip-vit-large-patch14")
CLIP_B32 = ("clip-vit-base-patch32", "openai/clip-vit-base-patch32")
DINO = ("dino-vitb16", "facebook/dino-vitb16")
DEPTH = ("dpt-hybrid-midas", "Intel/dpt-hybrid-midas")
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
MUSIQ_FILE = "musiq_koniq_ckpt-e95806b9.pth"
DEPTH_FILES = ("preprocessor_config.json",)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TINY_MUSIQ = dict(hidden_size=32, mlp_dim=64, num_heads=2, num_layers=1, longer_side_lengths=[128],
                  max_seq_len_from_original_res=None)
"""pyiqa MUSIQ arguments of the tiny profile. The real one is 384 wide with 14 layers and sees the image at
full size and with its longer side at 224 and 384: ~240 patches whose convolutional stem dominates the CPU
time; one 128 px scale (16 patches) keeps tiny runs fast."""


@dataclass
class MetricModels:
    """Every network of `evaluation.metrics.evaluate_video`, with the profile and an id per component."""

    profile: Literal["tiny", "full"]
    clip_l14: nn.Module
    """CLIP ViT-L/14 `CLIPVisionModelWithProjection`: CLIP-A's embeddings and CLIP-I."""
    aesthetic_head: nn.Module
    """aesthetic head on `clip_l14`'s normalised embeddings (CLIP-A; `evaluation.quality.AESTHETIC_HEADS`)."""
    clip_b32: nn.Module
    """CLIP ViT-B/32 `CLIPVisionModelWithProjection`: VBench Background Consistency."""
    dino: nn.Module
    """DINO ViT-B/16 `ViTModel`: VBench Subject Consistency."""
    lpips: nn.Module
    """torchmetrics `_LPIPS` (AlexNet, v0.1, spatial map): pseudo-GT LPIPS."""
    musiq: nn.Module
    """pyiqa `musiq` `InferenceModel` (KonIQ-10k)."""
    depth_model: nn.Module
    """transformers monocular depth model (PSNR-D)."""
    depth_processor: object
    """its image processor."""
    model_ids: dict[str, str]
    """component -> checkpoint id and where it was loaded from (tiny: the random configuration)."""
    aesthetic_head_name: str = DEFAULT_AESTHETIC_HEAD
    """which of `AESTHETIC_HEADS` CLIP-A uses (their scales differ)."""


def lpips_network(alexnet_weights: Path | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """torchmetrics' LPIPS (AlexNet, v0.1 linear layers, spatial output) with its trunk from a torchvision AlexNet
    state dict, or random when `alexnet_weights` is None (tiny)."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    network = _NoTrainLpips(pretrained=True, net="alex", pnet_rand=True, spatial=True)
    if alexnet_weights is not None:
        state = torch.load(Path(alexnet_weights), map_location="cpu", weights_only=True)
        trunk = network.net
        # torchvision's `features.<i>` modules sit in torchmetrics' slices under their own index <i>.
        slice_of = {index: name for name, block in trunk.named_children() for index, _ in block.named_children()}
        trunk_state = {f"{slice_of[key.split('.')[1]]}.{key.split('.', 1)[1]}": value
                       for key, value in state.items() if key.startswith("features.")}
        try:
            trunk.load_state_dict(trunk_state)
        except RuntimeError as exc:
            raise ValueError(f"{alexnet_weights}: not a torchvision AlexNet state dict "
                             f"({str(exc).splitlines()[0]})") from None
    return network.to(device).eval().requires_grad_(False)


def load_musiq(weights: Path | None, device: torch.device | str = "cpu", **arch) -> nn.Module:
    """pyiqa's `musiq` metric from a local checkpoint (pyiqa's `pretrained_model_path`), random when `weights` is
    None; `arch`: MUSIQ constructor arguments (the tiny profile's `TINY_MUSIQ`)."""
    import pyiqa

    path = None if weights is None else str(weights)
    return pyiqa.create_metric("musiq", device=torch.device(device), pretrained=False, pretrained_model_path=path,
                               **arch).eval().requires_grad_(False)


def load_clip_vision(folder: Path, device: torch.device | str = "cpu") -> nn.Module:
    """The vision tower and projection of a local CLIP folder (a whole `CLIPModel` or a vision-only save)."""
    from transformers import AutoConfig, CLIPConfig, CLIPVisionModelWithProjection

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if isinstance(config, CLIPConfig):  # the projection width lives on the top-level config
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        config = vision
    model = CLIPVisionModelWithProjection.from_pretrained(folder, config=config, local_files_only=True)
    return model.to(device).eval().requires_grad_(False)


def tiny_metric_models(seed: int = 0, device: torch.device | str = "cpu",
                       aesthetic_head: str = DEFAULT_AESTHETIC_HEAD) -> MetricModels:
    """Seeded random models from small configs: runs offline on the CPU in seconds; numbers mean nothing."""
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        DPTConfig,
        DPTForDepthEstimation,
        DPTImageProcessor,
        ViTConfig,
        ViTModel,
    )

    head_spec = aesthetic_head_spec(aesthetic_head)
    torch.manual_seed(seed)
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                 patch_size=8)
    # ViT-L/14 projects to 768, the aesthetic head's input; keep that width so the head is the real one.
    clip_l14 = CLIPVisionModelWithProjection(CLIPVisionConfig(**small, projection_dim=768))
    clip_b32 = CLIPVisionModelWithProjection(CLIPVisionConfig(**small, projection_dim=16))
    dino = ViTModel(ViTConfig(**small), add_pooling_layer=False)
    depth_model = DPTForDepthEstimation(DPTConfig(**{**small, "num_hidden_layers": 4},
                                                  backbone_out_indices=[0, 1, 2, 3],
                                                  neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16))
    processor = DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False)
    clip_l14, head, clip_b32, dino, depth_model = (m.to(device).eval().requires_grad_(False)
                                                   for m in (clip_l14, head_spec.module(), clip_b32, dino, depth_model))
    ids = {name: f"tiny-random {kind} (seed {seed})" for name, kind in (
        ("clip_l14", "CLIPVisionModelWithProjection 2x32, projection 768"),
        ("aesthetic_head", f"{aesthetic_head} ({head_spec.source})"),
        ("clip_b32", "CLIPVisionModelWithProjection 2x32"), ("dino", "ViTModel 2x32"),
        ("lpips", "AlexNet trunk + torchmetrics LPIPS v0.1 linear layers"), ("musiq", f"pyiqa MUSIQ {TINY_MUSIQ}"),
        ("depth", "DPTForDepthEstimation 4x32"))}
    return MetricModels("tiny", clip_l14=clip_l14, aesthetic_head=head, clip_b32=clip_b32, dino=dino,
                        lpips=lpips_network(None, device), musiq=load_musiq(None, device, **TINY_MUSIQ),
                        depth_model=depth_model, depth_processor=processor, model_ids=ids,
                        aesthetic_head_name=aesthetic_head)


def _check_model_folder(path: Path, required: tuple[str, ...] = ()) -> tuple[Path | None, list[str]]:
    """`path` if it is a transformers `save_pretrained` folder (config.json, a weights file, the `required` files);
    else None and what was looked for there."""
    if ((path / "config.json").is_file() and any((path / name).is_file() for name in WEIGHT_FILES)
            and all((path / name).is_file() for name in required)):
        return path, []
    needs = ", ".join(("config.json",) + required)
    return None, [f"{path} (needs {needs} and model.safetensors or pytorch_model.bin)"]


def _find_folder(locations: ModelLocations, folder: str, repo_id: str, required: tuple[str, ...] = ()
                 ) -> tuple[Path | None, list[str]]:
    """`<weights_dir>/<folder>` or the newest HF-cache snapshot of `repo_id`; else None and the paths looked at."""
    path, looked_at = _check_model_folder(locations.resolve(folder, repo_id), required)
    cache = locations.hf_cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return path, looked_at + [f"{cache}/* (HF cache)"] if looked_at else []


def _find_file(candidates: list[Path]) -> tuple[Path | None, list[str]]:
    for path in candidates:
        if path.is_file():
            return path, []
    return None, [str(path) for path in candidates]


def find_metric_weights(weights_dir: Path, hf_cache: Path | None = None, depth_dir: Path | None = None,
                        aesthetic_head: str = DEFAULT_AESTHETIC_HEAD) -> dict[str, tuple[Path | None, list[str]]]:
    """Every metric network's file or folder: component -> (path or None, paths looked at). Loads nothing."""
    # vf3d's model store imports the diffusers stack: only when full models are asked for.
    from vf3d.models.store import ModelLocations, default_hf_cache

    weights_dir = Path(weights_dir)
    locations = ModelLocations(weights_dir, Path(hf_cache) if hf_cache is not None else default_hf_cache())
    torch_hub = Path(torch.hub.get_dir())
    head = aesthetic_head_spec(aesthetic_head)
    found: dict[str, tuple[Path | None, list[str]]] = {
        "CLIP ViT-L/14 (openai/clip-vit-large-patch14)": _find_folder(locations, *CLIP_L14),
        f"aesthetic head {aesthetic_head} ({head.file})": _find_file([weights_dir / head.file]),
        "CLIP ViT-B/32 (openai/clip-vit-base-patch32)": _find_folder(locations, *CLIP_B32),
        "DINO ViT-B/16 (facebook/dino-vitb16)": _find_folder(locations, *DINO),
        f"LPIPS AlexNet trunk (torchvision {ALEXNET_FILE})": _find_file(
            [weights_dir / ALEXNET_FILE, torch_hub / "checkpoints" / ALEXNET_FILE]),
        f"MUSIQ KonIQ-10k (pyiqa {MUSIQ_FILE})": _find_file(
            [weights_dir / MUSIQ_FILE, torch_hub / "pyiqa" / MUSIQ_FILE]),
        "monocular depth estimator (Intel/dpt-hybrid-midas)": (
            _find_folder(locations, *DEPTH, required=DEPTH_FILES) if depth_dir is None else
            _check_model_folder(Path(depth_dir), DEPTH_FILES)),
    }
    return found


def full_metric_models(weights_dir: Path, device: torch.device | str = "cpu", hf_cache: Path | None = None,
                       depth_dir: Path | None = None, aesthetic_head: str = DEFAULT_AESTHETIC_HEAD) -> MetricModels:
    """The paper's metric networks from disk (module docstring for the layout); nothing is downloaded.

    Args:
        weights_dir: folder searched first for every component.
        device: where the networks run.
        hf_cache: Hugging Face hub cache searched next for the transformers folders (default: HF_HUB_CACHE,
            HF_HOME/hub, or ~/.cache/huggingface/hub).
        depth_dir: a transformers depth model folder to use instead of dpt-hybrid-midas.
        aesthetic_head: CLIP-A's head, a key of `evaluation.quality.AESTHETIC_HEADS`.

    Raises:
        MissingWeightsError: naming every missing component and where it was looked for.
    """
    # The depth loader imports the diffusers stack: only when full models are asked for.
    from transformers import ViTModel

    from vf3d.models.depth_estimator import load_depth_estimator

    found = find_metric_weights(weights_dir, hf_cache, depth_dir, aesthetic_head)
    missing = [(component, looked_at) for component, (path, looked_at) in found.items() if path is None]
    if missing:
        raise MissingWeightsError(missing)
    clip_l14, head, clip_b32, dino, alexnet, musiq_file, depth = (path for path, _ in found.values())
    depth_model, processor = load_depth_estimator(depth, device)
    ids = {name: f"{repo} ({path})" for name, repo, path in (
        ("clip_l14", CLIP_L14[1], clip_l14),
        ("aesthetic_head", f"{aesthetic_head_spec(aesthetic_head).source} {aesthetic_head}", head),
        ("clip_b32", CLIP_B32[1], clip_b32), ("dino", DINO[1], dino), ("lpips", "LPIPS v0.1 alex", alexnet),
        ("musiq", "pyiqa musiq (koniq10k)", musiq_file),
        ("depth", DEPTH[1] if depth_dir is None else Path(depth_dir).name, depth))}
    return MetricModels(
        "full",
        clip_l14=load_clip_vision(clip_l14, device),
        aesthetic_head=load_aesthetic_head(head, aesthetic_head).to(device),
        clip_b32=load_clip_vision(clip_b32, device),
        dino=ViTModel.from_pretrained(dino, add_pooling_layer=False, local_files_only=True
                                      ).to(device).eval().requires_grad_(False),
        lpips=lpips_network(alexnet, device),
        musiq=load_musiq(musiq_file, device),
        depth_model=depth_model,
        depth_processor=processor,
        model_ids=ids,
        aesthetic_head_name=aesthetic_head,
    )
