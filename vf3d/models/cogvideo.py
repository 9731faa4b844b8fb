"""CogVideoX-5B-I2V components for the GGI stage (paper Sec. 3.3), in both profiles.

- `tiny`: the CogVideoX architecture from small configs with seeded random weights: a 1-block transformer with
  rotary positional embeddings only (so any multiple-of-16 size works), a causal 3D VAE that keeps CogVideoX's
  compression (8x spatial, 4x temporal: 49 frames -> 13 latent frames) and its 16 latent channels, a T5 encoder
  with an offline tokenizer (226 tokens), and the 5B scheduler settings. CPU, seconds.
- `full`: CogVideoX-5b-I2V (diffusers layout) + our fine-tuned GGI transformer (one safetensors file holding the
  widened transformer's state dict) + the Go-with-the-Flow LoRA for CogVideoX-5B I2V (diffusers LoRA format),
  from local files, `local_files_only=True`: nothing is downloaded. CogVideoX-5b-I2V has learned positional
  embeddings, so the full model only samples at its 720x480 size.

The GGI transformer is the I2V transformer with `patch_embed.proj` widened from 32 to 48 input channels
(official code): noise 16 + image 16 + edges 16, the new input weights zero, so it starts as the base model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import diffusers
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXDPMScheduler,
    CogVideoXImageToVideoPipeline,
    CogVideoXTransformer3DModel,
)
from peft import LoraConfig, get_peft_model_state_dict
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import T5Config, T5EncoderModel, T5TokenizerFast

from vf3d.models.ggi_checkpoint import attach_adapter, split_adapter, weights_carry_adapter
from vf3d.models.tokenizers_offline import t5_tokenizer
from vf3d.models.weights import MissingWeightsError, has_weights

COGVIDEO_REPO = "THUDM/CogVideoX-5b-I2V"
COGVIDEO_FOLDER = "CogVideoX-5b-I2V"
GWTF_REPO = "Eyeline-Research/Go-with-the-Flow"
GWTF_FILENAME = "I2V5B_final_i38800_nearest_lora_weights.safetensors"
GWTF_ADAPTER = "gwtf"
# Go-with-the-Flow's LoRA targets (its training script: rank 2048 on the attention projections).
GWTF_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
MAX_SEQUENCE_LENGTH = 226  # CogVideoX's T5 prompt length
# What a CogVideoX-5b-I2V folder must hold, per component: (subfolder, files of which one must exist).
COGVIDEO_LAYOUT = {
    "transformer": ("transformer", ("config.json",)),
    "vae": ("vae", ("config.json",)),
    "text_encoder": ("text_encoder", ("config.json",)),
    "tokenizer": ("tokenizer", ("tokenizer.json", "spiece.model")),
    "scheduler": ("scheduler", ("scheduler_config.json",)),
}
MODEL_COMPONENTS = ("transformer", "vae", "text_encoder")
# CogVideoX-5b-I2V's scheduler_config.json: CogVideoXDDIMScheduler (v-prediction, zero-terminal-SNR, trailing
# spacing). The GGI settings' sampler "dpm" builds CogVideoXDPMScheduler from the same values.
SCHEDULER_5B = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "set_alpha_to_one": True, "steps_offset": 0, "prediction_type": "v_prediction",
    "clip_sample_range": 1.0, "sample_max_value": 1.0, "timestep_spacing": "trailing",
    "rescale_betas_zero_snr": True, "snr_shift_scale": 1.0,
}


@dataclass
class GGIComponents:
    """Everything `CogVideoXImageToVideoPipeline` takes, loaded and ready (the transformer may be widened)."""

    transformer: CogVideoXTransformer3DModel
    vae: AutoencoderKLCogVideoX
    text_encoder: T5EncoderModel
    tokenizer: T5TokenizerFast
    scheduler: CogVideoXDDIMScheduler | CogVideoXDPMScheduler
    """The model's own scheduler (CogVideoX-5b-I2V: DDIM); `GGIPipeline` may swap in DPM per its settings."""

    def pipeline(self) -> CogVideoXImageToVideoPipeline:
        return CogVideoXImageToVideoPipeline(**{f.name: getattr(self, f.name) for f in fields(self)})


def is_widened(transformer: CogVideoXTransformer3DModel) -> bool:
    """True when the patch embedding takes noise + image + edges (3 x latent channels)."""
    return transformer.config.in_channels == 3 * transformer.config.out_channels


def widen_patch_embed(transformer: CogVideoXTransformer3DModel, extra_channels: int) -> CogVideoXTransformer3DModel:
    """Append `extra_channels` zero-weight input channels to `patch_embed.proj` (in place) and return the model.

    With zero new weights the widened model computes exactly what the base model does whatever the extra
    channels hold (official GGI code: 32 -> 48 for 16 edge-latent channels). `config.in_channels` follows.
    """
    proj = transformer.patch_embed.proj
    if not isinstance(proj, nn.Conv2d):
        raise ValueError(f"patch_embed.proj is {type(proj).__name__}: only CogVideoX 1.0 (Conv2d patch embedding, "
                         "patch_size_t=None) can be widened; use a CogVideoX-5b-I2V transformer")
    wide = nn.Conv2d(proj.in_channels + extra_channels, proj.out_channels, kernel_size=proj.kernel_size,
                     stride=proj.stride, bias=proj.bias is not None, device=proj.weight.device, dtype=proj.weight.dtype)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, : proj.in_channels] = proj.weight
        if proj.bias is not None:
            wide.bias.copy_(proj.bias)
    wide.requires_grad_(proj.weight.requires_grad)
    transformer.patch_embed.proj = wide
    transformer.register_to_config(in_channels=proj.in_channels + extra_channels)
    return transformer


def base_transformer(transformer: CogVideoXTransformer3DModel) -> CogVideoXTransformer3DModel:
    """A copy of a widened transformer without the edge input channels: the I2V model it was widened from."""
    if not is_widened(transformer):
        return copy.deepcopy(transformer)
    base_in = 2 * transformer.config.out_channels
    base = CogVideoXTransformer3DModel.from_config({**transformer.config, "in_channels": base_in})
    state = ggi_state_dict(transformer)
    state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"][:, :base_in]
    base.load_state_dict(state)
    return (base if base.dtype == transformer.dtype else base.to(transformer.dtype)).eval()


def ggi_state_dict(transformer: CogVideoXTransformer3DModel) -> dict[str, torch.Tensor]:
    """The GGI weights file's content: the (widened) transformer's own weights, LoRA layers left out.

    With the Go-with-the-Flow LoRA attached (training keeps it frozen), PEFT renames wrapped weights to
    `*.base_layer.*`; they are saved under their plain names so the file loads into a bare transformer.
    """
    return {k.replace(".base_layer.", "."): v.detach().contiguous() for k, v in transformer.state_dict().items()
            if ".lora_" not in k}


def load_ggi_weights(transformer: nn.Module, weights_file: Path) -> None:
    """Load a `ggi_state_dict` file into a transformer, with or without a LoRA attached; every weight must load.
    A file that carries its own adapter (an imported official checkpoint) attaches it as adapter "gwtf"."""
    saved, adapter = split_adapter(load_file(weights_file), weights_file)
    own = [k for k in transformer.state_dict() if ".lora_" not in k]
    missing = [k for k in own if k.replace(".base_layer.", ".") not in saved]
    if missing:
        raise ValueError(f"{weights_file}: not a GGI weights file for this transformer (missing {missing[:3]} ...)")
    transformer.load_state_dict({k: saved[k.replace(".base_layer.", ".")] for k in own}, strict=False)
    if adapter:
        attach_adapter(transformer, adapter, GWTF_ADAPTER, weights_file)


def tiny_cogvideo(seed: int = 0, widened: bool = True, attention_heads: int = 2, time_embed_dim: int = 2
                  ) -> GGIComponents:
    """Seeded random CogVideoX-architecture components (diffusers' I2V test sizes, rotary embeddings only).

    The VAE keeps CogVideoX's 4 down blocks (8x spatial), `temporal_compression_ratio=4` and 16 latent channels,
    so latent shapes match the full model's: 49 frames at HxW -> (13, 16, H/8, W/8). `widened` adds the 16
    zero-weight edge channels to the patch embedding (32 -> 48, as the GGI model). `attention_heads` of 16
    channels each set the transformer's width: the default 2 (width 32) is below the 64 numbers of one 2x2 latent
    patch, too narrow to reproduce a clip; 8 (width 128) with a 16-wide timestep embedding (default 2, which
    barely tells the noise levels apart) can (`tests/test_learning_ggi.py`).
    """
    torch.manual_seed(seed)
    latent_channels = 16
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=attention_heads, attention_head_dim=16, in_channels=2 * latent_channels,
        out_channels=latent_channels, time_embed_dim=time_embed_dim, text_embed_dim=32, num_layers=2, sample_width=8,
        sample_height=6, sample_frames=49,
        patch_size=2, temporal_compression_ratio=4, max_text_seq_length=MAX_SEQUENCE_LENGTH,
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=latent_channels,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4, sample_height=48, sample_width=64,
        scaling_factor=0.7,  # CogVideoX-5B's
    )
    tokenizer = t5_tokenizer(MAX_SEQUENCE_LENGTH)
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0))
    if widened:
        widen_patch_embed(transformer, latent_channels)
    for model in (transformer, vae, text_encoder):
        model.eval()
    return GGIComponents(transformer, vae, text_encoder, tokenizer, CogVideoXDDIMScheduler(**SCHEDULER_5B))


def save_tiny_lora(transformer: CogVideoXTransformer3DModel, lora_file: Path, rank: int = 4, seed: int = 0) -> None:
    """A seeded random LoRA on Go-with-the-Flow's target modules, saved in diffusers' CogVideoX LoRA format."""
    torch.manual_seed(seed)
    model = copy.deepcopy(transformer)
    # init_lora_weights=False: both LoRA matrices random, so the adapter visibly changes the model.
    model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=GWTF_TARGET_MODULES))
    CogVideoXImageToVideoPipeline.save_lora_weights(
        lora_file.parent, transformer_lora_layers=get_peft_model_state_dict(model), weight_name=lora_file.name,
        safe_serialization=True)


def save_full_layout(components: GGIComponents, cogvideo_dir: Path, ggi_weights_file: Path,
                     gwtf_lora: Path | None = None) -> None:
    """Write components as the full profile stores them (how the tests exercise the full loader).

    `cogvideo_dir` gets the CogVideoX-5b-I2V diffusers folder with the BASE (unwidened) transformer;
    `ggi_weights_file` the widened transformer's state dict; `gwtf_lora`, if given, a seeded random tiny LoRA
    in the Go-with-the-Flow file's format.
    """
    widened = components.transformer if is_widened(components.transformer) else widen_patch_embed(
        copy.deepcopy(components.transformer), components.transformer.config.out_channels)
    base = base_transformer(widened)
    pipe = CogVideoXImageToVideoPipeline(**{**{f.name: getattr(components, f.name) for f in fields(components)},
                                            "transformer": base})
    pipe.save_pretrained(cogvideo_dir, safe_serialization=True)
    ggi_weights_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(ggi_state_dict(widened), ggi_weights_file)
    if gwtf_lora is not None:
        save_tiny_lora(widened, gwtf_lora)


def missing_ggi_files(cogvideo_dir: Path, ggi_weights_file: Path | None,
                      gwtf_lora: Path | None = None) -> list[tuple[str, list[str]]]:
    """(component, paths looked at) for every component of the full GGI profile that is not on disk."""
    missing = []
    for name, (sub, configs) in COGVIDEO_LAYOUT.items():
        folder = cogvideo_dir / sub
        weights = [str(folder / "*.safetensors")] if name in MODEL_COMPONENTS else []
        if not any((folder / c).is_file() for c in configs) or (weights and not has_weights(folder)):
            missing.append((f"CogVideoX-5b-I2V {name}", [str(folder / c) for c in configs] + weights))
    if ggi_weights_file is not None and not ggi_weights_file.is_file():
        missing.append(("GGI transformer weights (fine-tuned, widened)", [str(ggi_weights_file)]))
    if gwtf_lora is not None and not gwtf_lora.is_file():
        missing.append(("Go-with-the-Flow LoRA (CogVideoX-5B I2V)", [str(gwtf_lora)]))
    return missing


def model_scheduler(cogvideo_dir: Path) -> CogVideoXDDIMScheduler | CogVideoXDPMScheduler:
    """The scheduler class and settings the model folder's `scheduler/scheduler_config.json` names."""
    config = CogVideoXDDIMScheduler.load_config(cogvideo_dir, subfolder="scheduler", local_files_only=True)
    name = config.get("_class_name", "")
    if name not in ("CogVideoXDDIMScheduler", "CogVideoXDPMScheduler"):
        raise ValueError(f"{cogvideo_dir / 'scheduler' / 'scheduler_config.json'}: scheduler {name!r} is not a "
                         "CogVideoX scheduler")
    return getattr(diffusers, name).from_config(config)


def load_full_ggi(cogvideo_dir: Path, ggi_weights_file: Path | None, gwtf_lora: Path | None,
                  dtype: torch.dtype = torch.bfloat16) -> GGIComponents:
    """Load the GGI model from local files; one `MissingWeightsError` naming everything that is missing.

    The base CogVideoX-5b-I2V transformer is built from `cogvideo_dir`, widened (32 -> 48 input channels) and
    then loaded strictly from `ggi_weights_file`; the Go-with-the-Flow LoRA (adapter "gwtf") is attached on top
    unless `gwtf_lora` is None. A weights file that carries its own adapter (the official `checkpoint-1350`,
    imported) attaches that one instead, as the official `ggi.py` does, and needs no `gwtf_lora` file. Without
    `ggi_weights_file` the base I2V transformer is returned (for the training-free bidirectional method). The
    scheduler is the class the folder's `scheduler_config.json` names (CogVideoX-5b-I2V: CogVideoXDDIMScheduler),
    as the official inference keeps it.
    """
    if ggi_weights_file is not None and ggi_weights_file.is_file() and weights_carry_adapter(ggi_weights_file):
        gwtf_lora = None  # the weights' own adapter is attached
    missing = missing_ggi_files(cogvideo_dir, ggi_weights_file, gwtf_lora)
    if missing:
        raise MissingWeightsError(missing)
    kwargs = {"local_files_only": True}
    transformer = CogVideoXTransformer3DModel.from_pretrained(cogvideo_dir, subfolder="transformer",
                                                              torch_dtype=dtype, **kwargs)
    if ggi_weights_file is not None:
        widen_patch_embed(transformer, transformer.config.out_channels)
        base, adapter = split_adapter(load_file(ggi_weights_file), ggi_weights_file)
        transformer.load_state_dict(base, strict=True)
        if adapter:
            attach_adapter(transformer, adapter, GWTF_ADAPTER, ggi_weights_file)
    components = GGIComponents(
        transformer=transformer.eval(),
        vae=AutoencoderKLCogVideoX.from_pretrained(cogvideo_dir, subfolder="vae", torch_dtype=dtype, **kwargs).eval(),
        text_encoder=T5EncoderModel.from_pretrained(cogvideo_dir, subfolder="text_encoder", dtype=dtype,
                                                    **kwargs).eval(),
        tokenizer=T5TokenizerFast.from_pretrained(cogvideo_dir, subfolder="tokenizer", **kwargs),
        scheduler=model_scheduler(cogvideo_dir),
    )
    if gwtf_lora is not None:
        components.pipeline().load_lora_weights(load_file(gwtf_lora), adapter_name=GWTF_ADAPTER)
    return components
