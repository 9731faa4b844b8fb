"""The GPU resource: device settings shared by every model-backed asset (see `vf3d.models.device`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import torch
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from resources.artifacts import default_home
from resources.devices import Device, lease_device, parse_devices
from vf3d.models.device import DeviceSettings

GPU_POOL = "gpu"
"""Concurrency pool of every asset that uses this resource (`@asset(pool=GPU_POOL)`): one slot per device
(`vf3d_assets.instance.sync_gpu_pool`)."""


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
    gpus: str = "auto"
    """The workstation's devices ("auto", "0,1,2,3", "cpu,cpu"; `resources.devices`): each step leases one."""
    _leased: Device | None = PrivateAttr(default=None)

    @contextlib.contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[GPU]:
        """Lease one free device for the step's whole duration (released when the step ends or its process
        dies), and make it the step's device."""
        owner = f"run {context.run_id or '?'} pid {os.getpid()}"
        log = context.log.info if context.log is not None else None
        with lease_device(parse_devices(self.gpus), default_home(), owner, log) as device:
            if device.torch_device.startswith("cuda"):
                torch.cuda.set_device(torch.device(device.torch_device))  # implicit "cuda" means this one too
            self._leased = device
            if context.log is not None:
                context.log.info(f"leased device {device.name}")
            try:
                yield self
            finally:
                self._leased = None
                if context.log is not None:
                    context.log.info(f"released device {device.name}")

    def settings(self) -> DeviceSettings:
        settings = DeviceSettings(device=self.device, dtype=self.dtype, offload=self.offload, vae=self.vae,
                                  cache=self.cache, compile=self.compile, attention_backend=self.attention_backend,
                                  seed=self.seed)
        if self._leased is not None and self.device != "cpu":  # "cpu" stays the CPU whatever the slot
            settings = replace(settings, device=self._leased.torch_device)
        return settings

    def record(self) -> dict[str, Any]:
        """`DeviceSettings.record()` plus the leased device (metadata: which slot ran the step)."""
        return {**self.settings().record(), "slot": self._leased.name if self._leased else None}

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
