"""FLUX.1-dev + XLabs HED ControlNet components for the SAG stage, in both profiles.

- `tiny`: the FLUX architecture from small configs with seeded random weights: a 2+2-block transformer,
  an XLabs-style ControlNet whose `input_hint_block` takes the pixel control image (initialised so that the
  edge map reaches the anchor, `condition_reaches_output`), a VAE that downsamples 8x like FLUX's, CLIP and T5
  text encoders with offline tokenizers. CPU, seconds.
- `full`: FLUX.1-dev (diffusers layout) and XLabs flux-controlnet-hed-v3 (diffusers format) from a local
  folder or the Hugging Face cache, `local_files_only=True`: nothing is downloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxControlNetModel, FluxTransformer2DModel
from diffusers import FluxControlNetPipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

from vf3d.models.tokenizers_offline import clip_tokenizer, t5_tokenizer
from vf3d.models.weights import MissingWeightsError, has_weights
from vf3d.models.xlabs_controlnet import XLABS_CONTROLNET_FILE, load_xlabs_controlnet

FLUX_REPO = "black-forest-labs/FLUX.1-dev"
CONTROLNET_REPO = "XLabs-AI/flux-controlnet-hed-diffusers"
FLUX_FOLDER, CONTROLNET_FOLDER = "FLUX.1-dev", "flux-controlnet-hed-v3"
# What a FLUX.1-dev folder must hold, per component: (subfolder, files of which one must exist).
FLUX_LAYOUT = {
    "transformer": ("transformer", ("config.json",)),
    "vae": ("vae", ("config.json",)),
    "text_encoder": ("text_encoder", ("config.json",)),
    "text_encoder_2": ("text_encoder_2", ("config.json",)),
    "tokenizer": ("tokenizer", ("vocab.json", "tokenizer.json")),
    "tokenizer_2": ("tokenizer_2", ("tokenizer.json", "spiece.model")),
    "scheduler": ("scheduler", ("scheduler_config.json",)),
}
MODEL_COMPONENTS = ("transformer", "vae", "text_encoder", "text_encoder_2")


@dataclass
class FluxComponents:
    """Everything `FluxControlNetPipeline` takes, loaded and ready."""

    transformer: FluxTransformer2DModel
    controlnet: FluxControlNetModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    text_encoder_2: T5EncoderModel
    tokenizer_2: T5TokenizerFast
    scheduler: FlowMatchEulerDiscreteScheduler

    def pipeline(self) -> FluxControlNetPipeline:
        return FluxControlNetPipeline(**{f.name: getattr(self, f.name) for f in fields(self)})


def tiny_flux(seed: int = 0) -> FluxComponents:
    """Seeded random FLUX-architecture components (diffusers' own test sizes, with an 8x VAE)."""
    torch.manual_seed(seed)
    dims = dict(patch_size=1, in_channels=16, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=True)
    transformer = FluxTransformer2DModel(num_layers=2, num_single_layers=2, **dims)
    # XLabs layout: a pixel-space hint encoder (input_hint_block, 8x down) instead of VAE latents, whose
    # output is patchified 2x2 (patch_size=2) into the packed token grid: 4 channels * 4 = in_channels.
    controlnet = FluxControlNetModel(num_layers=2, num_single_layers=0, conditioning_embedding_channels=4,
                                     **{**dims, "patch_size": 2})
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=2, sample_size=64, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035,
    )
    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        projection_dim=32, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, max_position_embeddings=77))
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        pad_token_id=tokenizer_2.pad_token_id, eos_token_id=tokenizer_2.eos_token_id, decoder_start_token_id=0))
    condition_reaches_output(controlnet, torch.Generator().manual_seed(seed))  # own generator: the rest unchanged
    for model in (transformer, controlnet, vae, text_encoder, text_encoder_2):
        model.eval()
    return FluxComponents(transformer, controlnet, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2,
                          FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True))


@torch.no_grad()
def condition_reaches_output(controlnet: FluxControlNetModel, generator: torch.Generator) -> None:
    """Seeded weights with which a random ControlNet passes its control image on, as a trained one does.

    diffusers zero-initialises a ControlNet's output layers for training from scratch (`zero_module`:
    `controlnet_blocks`, `controlnet_x_embedder`, the hint encoder's `conv_out`): left so, the residuals are
    exactly zero, the edge map changes nothing and no gradient reaches a LoRA on the ControlNet. Those layers get
    PyTorch's default init; the hint encoder's convolutions get He-normal weights and zero biases, so that the
    edge map itself, not the biases, carries through its eight layers (with the default init the anchors of two
    different edge maps differ by ~1e-5 RMS in latent space; with these, by 3-7% of their RMS)."""
    for module in controlnet.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and not module.weight.any():
            torch.nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight[0].numel())  # 1 / sqrt(fan_in), as nn.Linear / nn.Conv2d
                torch.nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    if controlnet.input_hint_block is not None:
        for module in controlnet.input_hint_block.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                torch.nn.init.zeros_(module.bias)


def save_full_layout(components: FluxComponents, flux_dir: Path, controlnet_dir: Path) -> None:
    """Write components in the FLUX.1-dev + XLabs diffusers layout (how the tests exercise the full loader)."""
    pipe = components.pipeline()
    pipe.controlnet = None
    pipe.register_to_config(controlnet=(None, None))
    pipe.save_pretrained(flux_dir, safe_serialization=True)
    components.controlnet.save_pretrained(controlnet_dir, safe_serialization=True)


def missing_flux_files(flux_dir: Path, controlnet_dir: Path) -> list[tuple[str, list[str]]]:
    """(component, paths looked at) for every component of the full profile that is not on disk."""
    missing = []
    for name, (sub, configs) in FLUX_LAYOUT.items():
        folder = flux_dir / sub
        found_config = any((folder / c).is_file() for c in configs)
        if not found_config or (name in MODEL_COMPONENTS and not has_weights(folder)):
            missing.append((name, [str(folder / c) for c in configs] + (
                [str(folder / "*.safetensors")] if name in MODEL_COMPONENTS else [])))
    if controlnet_dir.is_file():  # XLabs' released single file (x-flux names)
        return missing
    if not (controlnet_dir / "config.json").is_file() or not has_weights(controlnet_dir):
        missing.append(("controlnet (HED)", [str(controlnet_dir / "config.json"), str(controlnet_dir / "*.safetensors"),
                                             str(controlnet_dir.parent / XLABS_CONTROLNET_FILE)]))
    return missing


def load_full_flux(flux_dir: Path, controlnet_dir: Path, dtype: torch.dtype = torch.bfloat16) -> FluxComponents:
    """Load FLUX.1-dev and the HED ControlNet from local files; one clear error if anything is missing.

    `controlnet_dir`: the diffusers-format folder, or XLabs' released `flux-hed-controlnet-v3.safetensors`
    (x-flux key names, converted on load by `vf3d.models.xlabs_controlnet`)."""
    missing = missing_flux_files(flux_dir, controlnet_dir)
    if missing:
        raise MissingWeightsError(missing)
    kwargs = dict(local_files_only=True)
    load = {
        "transformer": lambda: FluxTransformer2DModel.from_pretrained(flux_dir, subfolder="transformer", torch_dtype=dtype, **kwargs),
        "vae": lambda: AutoencoderKL.from_pretrained(flux_dir, subfolder="vae", torch_dtype=dtype, **kwargs),
        "text_encoder": lambda: CLIPTextModel.from_pretrained(flux_dir, subfolder="text_encoder", dtype=dtype, **kwargs),
        "tokenizer": lambda: CLIPTokenizer.from_pretrained(flux_dir, subfolder="tokenizer", **kwargs),
        "text_encoder_2": lambda: T5EncoderModel.from_pretrained(flux_dir, subfolder="text_encoder_2", dtype=dtype, **kwargs),
        "tokenizer_2": lambda: T5TokenizerFast.from_pretrained(flux_dir, subfolder="tokenizer_2", **kwargs),
        "scheduler": lambda: FlowMatchEulerDiscreteScheduler.from_pretrained(flux_dir, subfolder="scheduler", **kwargs),
        "controlnet": lambda: FluxControlNetModel.from_pretrained(controlnet_dir, torch_dtype=dtype, **kwargs),
    }
    if controlnet_dir.is_file():
        transformer = load["transformer"]()
        load["transformer"] = lambda: transformer
        load["controlnet"] = lambda: load_xlabs_controlnet(controlnet_dir, dict(transformer.config), dtype)
    return FluxComponents(**{name: make() for name, make in load.items()})
