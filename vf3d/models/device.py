"""Where and how the diffusion pipelines run: device, dtype, offloading, VAE tiling/slicing, cache
acceleration, torch.compile, attention backend, seed.

FLUX.1-dev (12B) with its ControlNet and CogVideoX-5B do not fit every GPU at 720x480; offloading and VAE
tiling trade speed for memory. diffusers' group offloading (`enable_group_offload`, block level, CUDA streams)
keeps one transformer block on the GPU at a time. Cache acceleration (`enable_cache` with a First Block Cache)
skips the remaining blocks when the first block's output barely changed between steps (approximate, inference
only); `torch.compile` and the attention backend (`set_attention_backend`) change speed, not results. An
out-of-memory error is turned into advice naming the next setting to change, so a user with a smaller GPU is
not left with a bare CUDA traceback.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Literal, get_args

import torch

DeviceName = Literal["auto", "cpu", "cuda"]
DTypeName = Literal["auto", "bf16", "fp16", "fp32"]
OffloadName = Literal["none", "model", "sequential", "group"]
VAEName = Literal["full", "tiling", "slicing", "tiling+slicing"]
CompileName = Literal["none", "transformer"]

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def model_device(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of a network's parameters."""
    parameter = next(model.parameters())
    return parameter.device, parameter.dtype



def check_device_present(device: str) -> None:
    """A `ValueError` ("device: ...") when a device setting names hardware this machine does not have: "cuda"
    or "cuda:N" without CUDA, or N not below the number of visible CUDA devices. Checked where the steps run,
    before any work: otherwise the GPU resource's CPU slot would run the models on the CPU unannounced."""
    if not device.startswith("cuda"):
        return  # "auto" and "cpu" are always there
    if not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} is not on this machine: CUDA is not available (CPU-only torch or no "
                         "GPU visible); use 'auto' or 'cpu'")
    index, count = int(device.partition(":")[2] or 0), torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device: {device!r} is not on this machine: {count} CUDA device(s) visible "
                         f"(cuda:0 to cuda:{count - 1}); use one of them, 'auto' or 'cpu'")


class GPUOutOfMemoryError(RuntimeError):
    """A stage ran out of GPU memory; the message says which setting to change next."""


@dataclass(frozen=True)
class DeviceSettings:
    """How a model stage is placed on the hardware (resolved lazily, so settings travel between machines)."""

    device: DeviceName = "auto"
    """"auto" = CUDA when available, else CPU; "cpu"; "cuda" (the current CUDA device); "cuda:N" (device N, as
    leased by the GPU resource on a multi-GPU workstation)."""
    dtype: DTypeName = "auto"
    """Weights and activations: "auto" = bf16 on GPU (the paper trains and samples in bf16), fp32 on CPU."""
    offload: OffloadName = "none"
    """"none": whole pipeline on the GPU; "model": one model at a time (low cost); "group": diffusers' group
    offloading, one transformer block at a time with CUDA-stream prefetch (both stages fit a 24 GB card);
    "sequential": layer by layer (lowest memory, much slower)."""
    vae: VAEName = "full"
    """VAE in tiles ("tiling": less peak memory at high resolution, faint seams possible) and/or one image or
    frame batch at a time ("slicing": exact)."""
    cache: str = "none"
    """"none", or "first_block" / "first_block:<threshold>" (diffusers' First Block Cache on the transformers,
    threshold 0.05 by default): faster, approximate; inference only."""
    compile: CompileName = "none"
    """"transformer": `torch.compile` the transformers (the first step pays the compilation)."""
    attention_backend: str = "native"
    """diffusers attention backend of the transformers (`set_attention_backend`), e.g. "native", "flash",
    "_native_cudnn", "sage"; it must be installed."""
    seed: int = 0
    """Seed of the generator handed to the pipelines."""

    def __post_init__(self) -> None:
        for field, choices in (("device", DeviceName), ("dtype", DTypeName), ("offload", OffloadName),
                               ("vae", VAEName), ("compile", CompileName)):
            value = getattr(self, field)
            if field == "device" and re.fullmatch(r"cuda:\d+", value):  # one device of several (a leased slot)
                continue
            if value not in get_args(choices):
                raise ValueError(f"{field}: unknown value {value!r}; use one of {', '.join(get_args(choices))}")
        self.cache_config()  # a bad cache value fails here, not at the first denoising step
        from diffusers.models.attention_dispatch import AttentionBackendName

        backends = [b.value for b in AttentionBackendName]
        if self.attention_backend not in backends:
            raise ValueError(f"attention_backend: unknown value {self.attention_backend!r}; use one of "
                             f"{', '.join(backends)}")

    def cache_config(self) -> Any:
        """The diffusers cache config of `cache` (None for "none")."""
        from diffusers import FirstBlockCacheConfig

        kind, _, threshold = self.cache.partition(":")
        if kind == "none" and not threshold:
            return None
        try:
            if kind == "first_block":
                return FirstBlockCacheConfig(threshold=float(threshold or 0.05))
        except ValueError:
            pass
        raise ValueError(f"cache: unknown value {self.cache!r}; use 'none', 'first_block' or "
                         "'first_block:<threshold>' (e.g. first_block:0.05)")

    @property
    def vae_tiling(self) -> bool:
        return "tiling" in self.vae

    def record(self) -> dict[str, Any]:
        """The settings as asset metadata (what ran where, and how)."""
        return {"device": str(self.torch_device()), "dtype": str(self.torch_dtype()).removeprefix("torch."),
                "offload": self.offload, "vae": self.vae, "cache": self.cache, "compile": self.compile,
                "attention_backend": self.attention_backend}

    def torch_device(self) -> torch.device:
        """The resolved device; "cuda" without a usable CUDA device is an error, not a silent CPU run."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device: 'cuda' was asked for but CUDA is not available (CPU-only torch or no GPU "
                             "visible); use device='auto' or 'cpu', or install a CUDA build of torch")
        return torch.device(self.device)

    def torch_dtype(self) -> torch.dtype:
        """The resolved dtype: bf16 on GPU and fp32 on CPU for "auto"."""
        if self.dtype == "auto":
            return torch.bfloat16 if self.torch_device().type == "cuda" else torch.float32
        return DTYPES[self.dtype]

    def generator(self) -> torch.Generator:
        """A generator on the execution device seeded with `seed` (diffusers' `generator=` argument)."""
        return torch.Generator(device=self.torch_device()).manual_seed(self.seed)

    def place(self, pipeline: Any, inference: bool = True) -> Any:
        """Move a diffusers pipeline to the device or enable offloading, then the VAE, attention backend, compile
        and cache options on its transformer(s) (`transformer`, `controlnet`). `inference=False` (training) leaves
        out the cache and compile.

        The dtype is chosen when loading (`torch_dtype=settings.torch_dtype()`), not here, so a component
        deliberately kept in another dtype stays so. Returns the pipeline.
        """
        device = self.torch_device()
        if self.offload == "none":
            pipeline.to(device)
        elif device.type == "cpu" and self.offload != "group":
            raise ValueError(f"offload: {self.offload!r} moves models between CPU and GPU, but the device is "
                             "the CPU; use offload='none' on the CPU")
        elif self.offload == "model":
            pipeline.enable_model_cpu_offload(device=device)
        elif self.offload == "group":
            pipeline.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                          offload_type="block_level", num_blocks_per_group=1,
                                          use_stream=device.type == "cuda")
        else:
            pipeline.enable_sequential_cpu_offload(device=device)
        vae = getattr(pipeline, "vae", None)
        if vae is not None and self.vae_tiling:
            vae.enable_tiling()
        if vae is not None and "slicing" in self.vae:
            vae.enable_slicing()
        for name in ("transformer", "controlnet"):
            model = getattr(pipeline, name, None)
            if model is None:
                continue
            if self.attention_backend != "native":
                model.set_attention_backend(self.attention_backend)
            if inference and self.compile == "transformer":
                model.compile()
            if inference and name == "transformer" and self.cache_config() is not None:
                model.enable_cache(self.cache_config())
        return pipeline

    def next_steps(self, width: int, height: int) -> list[str]:
        """What to change after running out of memory at width x height, cheapest first."""
        steps = []
        if self.torch_dtype() == torch.float32 and self.torch_device().type == "cuda":
            steps.append("dtype='bf16' (half the memory of fp32)")
        if self.offload == "none":
            steps.append("offload='model' (one model on the GPU at a time, small slowdown)")
        if self.offload in ("none", "model"):
            steps.append("offload='group' (one transformer block on the GPU at a time, prefetched)")
        if not self.vae_tiling:
            steps.append("vae='tiling' (VAE in tiles)")
        if self.offload != "sequential":
            steps.append("offload='sequential' (layer by layer: lowest memory, much slower)")
        small_w, small_h = max(16, width // 2 // 16 * 16), max(16, height // 2 // 16 * 16)
        steps.append(f"a lower resolution than {width}x{height} (e.g. {small_w}x{small_h})")
        return steps

    @contextmanager
    def oom_advice(self, stage: str, width: int, height: int) -> Iterator[None]:
        """Re-raise a CUDA out-of-memory error inside the block as `GPUOutOfMemoryError` with advice."""
        try:
            yield
        except GPUOutOfMemoryError:
            raise
        except RuntimeError as exc:
            if not isinstance(exc, torch.cuda.OutOfMemoryError) and "out of memory" not in str(exc):
                raise
            steps = "; ".join(f"{i}) {step}" for i, step in enumerate(self.next_steps(width, height), 1))
            raise GPUOutOfMemoryError(
                f"{stage}: out of GPU memory at {width}x{height} with device={self.torch_device()}, "
                f"dtype={str(self.torch_dtype()).removeprefix('torch.')}, offload='{self.offload}', "
                f"vae='{self.vae}'. Try, in this order: {steps}.") from exc
