"""The published architectures of every `full` model component, built without downloading anything.

`PUBLISHED` holds the config each checkpoint ships (`config.json` of black-forest-labs/FLUX.1-dev,
XLabs-AI/flux-controlnet-hed-diffusers, THUDM/CogVideoX-5b-I2V, Salesforce/blip2-opt-2.7b,
openai/clip-vit-large-patch14's text model and google/t5-v1_1-xxl's encoder). Two uses:

- `scale="full"`: the real sizes with random weights, for the GPU acceptance run (`scripts/gpu_acceptance.py`):
  time and memory do not depend on weight values;
- `scale="shrunk"`: every shape-deciding field kept (latent and input channels, patch sizes, attention head
  and RoPE dims, sample size and learned positional embeddings, text lengths, VAE compression and scaling
  factors, block counts that decide resolution), only depth (layers) and width (heads, hidden sizes) cut, so
  the full profile's loaders and stages run at 720x480 and 49 frames on a CPU in seconds.

`write_full_layout` saves either into the on-disk layout `ModelLocations` reads, with the offline tokenizers
(`vf3d.models.tokenizers_offline`) at the real maximum lengths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
    FluxControlNetModel,
    FluxTransformer2DModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from vf3d.models.captioner import BLIP2_FOLDER, Captioner, byte_level_tokenizer
from vf3d.models.cogvideo import (COGVIDEO_FOLDER, GWTF_FILENAME, SCHEDULER_5B, GGIComponents,
                                  save_full_layout as save_cogvideo)
from vf3d.models.flux import CONTROLNET_FOLDER, FLUX_FOLDER, FluxComponents, save_full_layout as save_flux
from vf3d.models.tokenizers_offline import clip_tokenizer, t5_tokenizer

Scale = Literal["full", "shrunk"]

PUBLISHED = {
    "flux_transformer": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                             attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                             pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=[16, 56, 56]),
    "flux_vae": dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[128, 256, 512, 512],
                     layers_per_block=2, down_block_types=["DownEncoderBlock2D"] * 4,
                     up_block_types=["UpDecoderBlock2D"] * 4, norm_num_groups=32, sample_size=1024,
                     scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
                     force_upcast=True, mid_block_add_attention=True),
    "flux_scheduler": dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                           max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096),
    # XLabs' HED ControlNet v3: 2 double blocks; a pixel hint encoder to 16 channels at 1/8, patchified 2x2
    "xlabs_controlnet": dict(patch_size=2, in_channels=64, num_layers=2, num_single_layers=0,
                             attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                             pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=[16, 56, 56],
                             conditioning_embedding_channels=16),
    "clip_text": dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                      projection_dim=768, max_position_embeddings=77, hidden_act="quick_gelu"),
    "t5_encoder": dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                       feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                       relative_attention_max_distance=128),
    "cogvideo_transformer": dict(num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16,
                                 time_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=90,
                                 sample_height=60, sample_frames=49, patch_size=2, temporal_compression_ratio=4,
                                 max_text_seq_length=226, use_rotary_positional_embeddings=True,
                                 use_learned_positional_embeddings=True, spatial_interpolation_scale=1.875,
                                 temporal_interpolation_scale=1.0, activation_fn="gelu-approximate",
                                 attention_bias=True, flip_sin_to_cos=True, freq_shift=0),
    # Salesforce/blip2-opt-2.7b: EVA ViT-g/14 at 224 px, a 32-query Q-Former, OPT-2.7b
    "blip2_vision": dict(image_size=224, patch_size=14, hidden_size=1408, intermediate_size=6144,
                         num_hidden_layers=39, num_attention_heads=16),
    "blip2_qformer": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                          encoder_hidden_size=1408),
    "blip2_text": dict(model_type="opt", hidden_size=2560, num_hidden_layers=32, ffn_dim=10240,
                       num_attention_heads=32, word_embed_proj_dim=2560, max_position_embeddings=2048),
    "cogvideo_vae": dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[128, 256, 256, 512],
                         layers_per_block=3, down_block_types=["CogVideoXDownBlock3D"] * 4,
                         up_block_types=["CogVideoXUpBlock3D"] * 4, norm_num_groups=32, temporal_compression_ratio=4,
                         sample_height=480, sample_width=720, scaling_factor=0.7, use_quant_conv=False,
                         use_post_quant_conv=False, force_upcast=True),
}
"""The shipped configs (architecture fields; diffusers/transformers defaults for the rest)."""

SHRUNK = {
    "flux_transformer": dict(num_layers=1, num_single_layers=2, num_attention_heads=1, joint_attention_dim=32,
                             pooled_projection_dim=32),
    "flux_vae": dict(block_out_channels=[8, 8, 8, 8], layers_per_block=1, norm_num_groups=2),
    "xlabs_controlnet": dict(num_attention_heads=1, joint_attention_dim=32, pooled_projection_dim=32),
    "clip_text": dict(hidden_size=32, intermediate_size=37, num_attention_heads=2, num_hidden_layers=1,
                      projection_dim=32),
    "t5_encoder": dict(d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=2),
    "cogvideo_transformer": dict(num_attention_heads=1, time_embed_dim=8, text_embed_dim=32, num_layers=2),
    "cogvideo_vae": dict(block_out_channels=[4, 4, 4, 4], layers_per_block=1, norm_num_groups=2),
    "blip2_vision": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2),
    "blip2_qformer": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                          encoder_hidden_size=32),
    "blip2_text": dict(hidden_size=32, num_hidden_layers=1, ffn_dim=37, num_attention_heads=2, word_embed_proj_dim=32),
}
"""Depth and width only: the fields a full run's tensor shapes at the stage boundaries do not depend on."""


def config(name: str, scale: Scale) -> dict:
    """The published config of a component, or its shrunk twin."""
    if scale not in ("full", "shrunk"):
        raise ValueError(f"scale: expected 'full' or 'shrunk', got {scale!r}")
    return {**PUBLISHED[name], **(SHRUNK.get(name, {}) if scale == "shrunk" else {})}


def _text_encoders(scale: Scale, t5_length: int) -> tuple:
    clip_tok, t5_tok = clip_tokenizer(77), t5_tokenizer(t5_length)
    clip = CLIPTextModel(CLIPTextConfig(**config("clip_text", scale), vocab_size=len(clip_tok),
                                        bos_token_id=clip_tok.bos_token_id, eos_token_id=clip_tok.eos_token_id,
                                        pad_token_id=clip_tok.pad_token_id))
    t5 = T5EncoderModel(T5Config(**config("t5_encoder", scale), vocab_size=len(t5_tok),
                                 pad_token_id=t5_tok.pad_token_id, eos_token_id=t5_tok.eos_token_id,
                                 decoder_start_token_id=0))
    return clip, clip_tok, t5, t5_tok


def published_flux(scale: Scale, seed: int = 0, dtype: torch.dtype = torch.float32) -> FluxComponents:
    """FLUX.1-dev, its VAE, CLIP-L and T5-XXL encoders (512 tokens) and XLabs' HED ControlNet, random weights."""
    torch.manual_seed(seed)
    clip, clip_tok, t5, t5_tok = _text_encoders(scale, 512)
    models = (FluxTransformer2DModel(**config("flux_transformer", scale)),
              FluxControlNetModel(**config("xlabs_controlnet", scale)), AutoencoderKL(**config("flux_vae", scale)))
    transformer, controlnet, vae = (m.to(dtype).eval() for m in models)
    return FluxComponents(transformer, controlnet, vae, clip.to(dtype).eval(), clip_tok, t5.to(dtype).eval(), t5_tok,
                          FlowMatchEulerDiscreteScheduler(**PUBLISHED["flux_scheduler"]))


def published_cogvideo(scale: Scale, seed: int = 0, dtype: torch.dtype = torch.float32) -> GGIComponents:
    """CogVideoX-5b-I2V (base, unwidened), its VAE and T5-XXL encoder (226 tokens), random weights."""
    torch.manual_seed(seed)
    _, _, t5, t5_tok = _text_encoders(scale, PUBLISHED["cogvideo_transformer"]["max_text_seq_length"])
    transformer = CogVideoXTransformer3DModel(**config("cogvideo_transformer", scale))
    vae = AutoencoderKLCogVideoX(**config("cogvideo_vae", scale))
    return GGIComponents(transformer.to(dtype).eval(), vae.to(dtype).eval(), t5.to(dtype).eval(), t5_tok,
                         CogVideoXDDIMScheduler(**SCHEDULER_5B))


def published_captioner(scale: Scale, seed: int = 0) -> Captioner:
    """BLIP-2 OPT-2.7b (32 query tokens, 224 px with CLIP's normalisation), random weights, offline tokenizer."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor

    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 224, "width": 224}),
                               tokenizer=byte_level_tokenizer(), num_query_tokens=32)
    tokenizer = processor.tokenizer
    blip2 = Blip2Config(vision_config=config("blip2_vision", scale), qformer_config=config("blip2_qformer", scale),
                        text_config={**config("blip2_text", scale), "vocab_size": len(tokenizer), "bos_token_id": 0,
                                     "eos_token_id": 0, "pad_token_id": 1},
                        num_query_tokens=32, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    return Captioner(Blip2ForConditionalGeneration(blip2).eval(), processor)


def write_full_layout(weights_dir: Path, scale: Scale = "shrunk", seed: int = 0) -> Path:
    """FLUX.1-dev/, flux-controlnet-hed-v3/, CogVideoX-5b-I2V/ (with a Go-with-the-Flow LoRA file in its
    distributed format) and blip2-opt-2.7b/ under `weights_dir`, as a user's downloads would be laid out.
    Returns the GGI weights file of the widened transformer written beside them (what `ggi_weights` makes)."""
    weights_dir = Path(weights_dir)
    save_flux(published_flux(scale, seed), weights_dir / FLUX_FOLDER, weights_dir / CONTROLNET_FOLDER)
    ggi_weights = weights_dir / "ggi_weights.safetensors"
    save_cogvideo(published_cogvideo(scale, seed), weights_dir / COGVIDEO_FOLDER, ggi_weights,
                  weights_dir / GWTF_FILENAME)
    captioner = published_captioner(scale, seed)
    captioner.model.save_pretrained(weights_dir / BLIP2_FOLDER)
    captioner.processor.save_pretrained(weights_dir / BLIP2_FOLDER)
    return ggi_weights
