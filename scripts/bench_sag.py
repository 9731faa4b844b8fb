"""Benchmark: seconds per anchor view and per style-LoRA step (paper Table 4: 20 s/view, 27 min/style on A100).

    .venv/bin/python scripts/bench_sag.py --size tiny                      # tiny profile, CPU
    .venv/bin/python scripts/bench_sag.py --size full --device cuda        # FLUX-dev + XLabs HED ControlNet
                                                                           # architecture, random bf16 weights

`full` builds the full-size FLUX.1-dev transformer (19 double + 38 single blocks), the XLabs HED ControlNet
(2 double blocks, pixel hint) and FLUX's VAE with random weights; the text encoders keep their full output
widths but one layer each (their cost is one forward per prompt, not per step). Reports peak GPU memory.
Targets (H100): <= 5 s per 720x480 view at 25 steps, <= 5 min per style (400 steps).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxControlNetModel, FluxTransformer2DModel
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from vf3d.models.flux import FluxComponents, tiny_flux
from vf3d.models.tokenizers_offline import clip_tokenizer, t5_tokenizer
from vf3d.sag.sampling import SAG_PRESETS, SAGPipeline
from vf3d.sag.style_lora import LORA_PRESETS, StyleExample, StyleLoRATrainer


def full_size_flux(dtype: torch.dtype, device: str) -> FluxComponents:
    with torch.device(device):
        dims = dict(in_channels=64, attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                    pooled_projection_dim=768, axes_dims_rope=[16, 56, 56], guidance_embeds=True)
        transformer = FluxTransformer2DModel(patch_size=1, num_layers=19, num_single_layers=38, **dims).to(dtype)
        controlnet = FluxControlNetModel(patch_size=2, num_layers=2, num_single_layers=0,
                                         conditioning_embedding_channels=16, **dims).to(dtype)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
                            layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=1024,
                            use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159,
                            scaling_factor=0.3611).to(dtype)
        tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
        text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072,
                                                    num_attention_heads=12, num_hidden_layers=1, projection_dim=768,
                                                    max_position_embeddings=77)).to(dtype)
        text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=4096, d_kv=64, d_ff=10240,
                                                 num_layers=1, num_heads=64)).to(dtype)
    return FluxComponents(transformer, controlnet, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2,
                          FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--lora-steps", type=int, default=5)
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    components = tiny_flux(0) if args.size == "tiny" else full_size_flux(dtype, args.device)
    settings = SAG_PRESETS["tiny" if args.size == "tiny" else "paper"]
    pipe = components.pipeline().to(args.device)
    pipe.set_progress_bar_config(disable=True)
    sag = SAGPipeline(pipe)
    control = Image.fromarray(np.zeros((args.height, args.width, 3), np.uint8))
    warped = np.full((args.height, args.width, 3), 128, np.uint8)
    valid = np.zeros((args.height, args.width), bool)
    valid[:, : args.width // 2] = True
    generator = torch.Generator(args.device).manual_seed(0)
    sag("warm up", control, args.height, args.width, settings=settings, generator=generator)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    for _ in range(args.views):
        sag("a photo in sks style", control, args.height, args.width, warped=warped, valid=valid, settings=settings,
            generator=generator)
    sync()
    per_view = (time.perf_counter() - start) / args.views
    lora = LORA_PRESETS["tiny" if args.size == "tiny" else "paper"]
    lora = replace(lora, steps=args.lora_steps)
    trainer = StyleLoRATrainer(components, lora)
    example = StyleExample(Image.new("RGB", (768, 512), (90, 140, 200)), Image.new("RGB", (768, 512)), "a photo")
    trainer.train([example], None)  # warm-up (includes encoding)
    sync()
    start = time.perf_counter()
    trainer.train([example], None)
    sync()
    per_step = (time.perf_counter() - start) / args.lora_steps
    report = {"size": args.size, "device": args.device, "resolution": f"{args.width}x{args.height}",
              "steps_per_view": settings.num_inference_steps, "seconds_per_view": round(per_view, 3),
              "seconds_per_lora_step": round(per_step, 4),
              "minutes_per_style_400_steps": round(per_step * 400 / 60, 2)}
    if args.device.startswith("cuda"):
        report["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
