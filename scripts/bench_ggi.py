"""Benchmark: seconds per GGI segment (49 frames, 46 kept) and for the noise warping, with peak GPU memory.

    .venv/bin/python scripts/bench_ggi.py --size tiny [--width 720 --height 480]      # tiny profile, CPU
    .venv/bin/python scripts/bench_ggi.py --size full --device cuda [--offload model]  # CogVideoX-5B I2V
                                                         # architecture (widened to 48 channels), random bf16

Paper (Table 4): 145 s per trajectory on an A100. Target on an H100: <= 60 s per segment at 720x480,
30 steps with CFG. The full text encoder keeps T5-XXL's width with one layer (it runs once per prompt).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
from transformers import T5Config, T5EncoderModel

from vf3d.ggi.noise_warp import warped_noise_for_segment
from vf3d.ggi.pipeline import GGI_PRESETS, GGIPipeline
from vf3d.models.cogvideo import SCHEDULER_5B, GGIComponents, tiny_cogvideo, widen_patch_embed
from vf3d.models.tokenizers_offline import t5_tokenizer


def full_size_cogvideo(dtype: torch.dtype, device: str) -> GGIComponents:
    from diffusers import CogVideoXDDIMScheduler

    with torch.device(device):
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, time_embed_dim=512,
            text_embed_dim=4096, num_layers=42, sample_width=90, sample_height=60, sample_frames=49, patch_size=2,
            temporal_compression_ratio=4, max_text_seq_length=226, use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=True).to(dtype)
        widen_patch_embed(transformer, 16)
        vae = AutoencoderKLCogVideoX().to(dtype)
        tokenizer = t5_tokenizer(226)
        text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=4096, d_kv=64, d_ff=10240,
                                               num_layers=1, num_heads=64)).to(dtype)
    return GGIComponents(transformer, vae, text_encoder, tokenizer, CogVideoXDDIMScheduler(**SCHEDULER_5B))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--offload", choices=("none", "model", "sequential"), default="none")
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    components = tiny_cogvideo(0) if args.size == "tiny" else full_size_cogvideo(dtype, "cpu" if args.offload != "none" else args.device)
    settings = GGI_PRESETS["tiny" if args.size == "tiny" else "paper"]
    ggi = GGIPipeline(components)
    if args.offload == "model":
        ggi.pipe.enable_model_cpu_offload(device=args.device)
    elif args.offload == "sequential":
        ggi.pipe.enable_sequential_cpu_offload(device=args.device)
    else:
        ggi.pipe.to(args.device)
    ggi.set_progress_bar_config(disable=True)
    h, w = args.height, args.width
    rng = np.random.default_rng(0)
    flows = np.zeros((45, h, w, 2), np.float32)
    flows[..., 0] = 2.0
    start = time.perf_counter()
    noise = warped_noise_for_segment(flows, np.ones((45, h, w), bool), channels=16,
                                     generator=torch.Generator().manual_seed(0))
    noise_seconds = time.perf_counter() - start
    first, last = (rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(2))
    edges = [rng.integers(0, 255, (h, w), dtype=np.uint8) for _ in range(settings.segment_frames)]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    ggi("a house", first, last, edges, h, w, latents=noise, settings=settings,
        generator=torch.Generator(args.device).manual_seed(0))
    if cuda:
        torch.cuda.synchronize()
    report = {"size": args.size, "device": args.device, "offload": args.offload, "resolution": f"{w}x{h}",
              "steps": settings.num_inference_steps, "seconds_per_segment": round(time.perf_counter() - start, 2),
              "noise_warp_seconds": round(noise_seconds, 2)}
    if cuda:
        report["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
