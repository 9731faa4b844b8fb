"""The GPU resource: device settings shared by every model-backed asset (see `vf3d.models.device`)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
from dagster import ConfigurableResource

from vf3d.models.device import DeviceName, DeviceSettings, DTypeName, OffloadName

GPU_POOL = "gpu"
"""Concurrency pool of GPU-bound assets (`@asset(pool=GPU_POOL)`); its limit is set in deploy/dagster.yaml."""


class GPU(ConfigurableResource):
    """Device, dtype, offload, VAE tiling and seed for the diffusion stages."""

    device: DeviceName = "auto"
    """"auto" (CUDA when available, else CPU), "cpu" or "cuda"."""
    dtype: DTypeName = "auto"
    """"auto" (bf16 on GPU, fp32 on CPU), "bf16", "fp16" or "fp32"."""
    offload: OffloadName = "none"
    """"none", "model" (one model on the GPU at a time) or "sequential" (layer by layer, slowest)."""
    vae_tiling: bool = False
    """VAE in tiles: lower peak memory at high resolution."""
    seed: int = 0
    """Seed of the pipelines' generator."""

    def settings(self) -> DeviceSettings:
        return DeviceSettings(device=self.device, dtype=self.dtype, offload=self.offload,
                              vae_tiling=self.vae_tiling, seed=self.seed)

    def torch_device(self) -> torch.device:
        return self.settings().torch_device()

    def torch_dtype(self) -> torch.dtype:
        return self.settings().torch_dtype()

    def generator(self) -> torch.Generator:
        return self.settings().generator()

    def place(self, pipeline: Any) -> Any:
        return self.settings().place(pipeline)

    def oom_advice(self, stage: str, width: int, height: int) -> AbstractContextManager[None]:
        return self.settings().oom_advice(stage, width, height)
