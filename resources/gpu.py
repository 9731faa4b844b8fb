"""The GPU resource: device settings shared by every model-backed asset (see `vf3d.models.device`)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
from dagster import ConfigurableResource

from vf3d.models.device import DeviceSettings

GPU_POOL = "gpu"
"""Concurrency pool of GPU-bound assets (`@asset(pool=GPU_POOL)`); its limit is set in deploy/dagster.yaml."""


class GPU(ConfigurableResource):
    """Device, dtype, offloading, VAE, cache, compile, attention backend and seed for the diffusion stages
    (see `vf3d.models.device.DeviceSettings`; values are checked there). Plain strings, so that the deployment
    can set each from an environment variable (`resources.deployment`)."""

    device: str = "auto"
    """"auto" (CUDA when available, else CPU), "cpu" or "cuda"."""
    dtype: str = "auto"
    """"auto" (bf16 on GPU, fp32 on CPU), "bf16", "fp16" or "fp32"."""
    offload: str = "none"
    """"none", "model" (one model on the GPU at a time), "group" (one transformer block at a time, prefetched)
    or "sequential" (layer by layer, slowest)."""
    vae: str = "full"
    """"full", "tiling" (lower peak memory at high resolution), "slicing" or "tiling+slicing"."""
    cache: str = "none"
    """"none" or "first_block[:threshold]": diffusers' First Block Cache on the transformers (inference)."""
    compile: str = "none"
    """"transformer": torch.compile the transformers."""
    attention_backend: str = "native"
    """A diffusers attention backend (`set_attention_backend`), e.g. "flash", "_native_cudnn", "sage"."""
    seed: int = 0
    """Seed of the pipelines' generator."""

    def settings(self) -> DeviceSettings:
        return DeviceSettings(device=self.device, dtype=self.dtype, offload=self.offload, vae=self.vae,
                              cache=self.cache, compile=self.compile, attention_backend=self.attention_backend,
                              seed=self.seed)

    def torch_device(self) -> torch.device:
        return self.settings().torch_device()

    def torch_dtype(self) -> torch.dtype:
        return self.settings().torch_dtype()

    def generator(self) -> torch.Generator:
        return self.settings().generator()

    def place(self, pipeline: Any, inference: bool = True) -> Any:
        return self.settings().place(pipeline, inference)

    def oom_advice(self, stage: str, width: int, height: int) -> AbstractContextManager[None]:
        return self.settings().oom_advice(stage, width, height)
