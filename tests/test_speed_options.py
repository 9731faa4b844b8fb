"""The GPU resource's speed and memory options on the tiny profile: each is applied where it should be, and the
exact ones leave outputs unchanged (run on the CPU; their speed and memory are measured by the GPU acceptance run)."""

import numpy as np
import pytest
import torch
from PIL import Image

from vf3d.ggi.pipeline import GGI_PRESETS, GGIPipeline
from vf3d.models.cogvideo import tiny_cogvideo
from vf3d.models.device import DeviceSettings
from vf3d.models.flux import tiny_flux
from vf3d.sag.sampling import SAG_PRESETS, SAGPipeline

H, W = 48, 64


def _anchor(settings: DeviceSettings, count: dict | None = None) -> tuple[object, np.ndarray]:
    """One tiny anchor view; `count`: counts the transformer's calls and its last block's computations."""
    pipe = tiny_flux(0).pipeline()
    if count is not None:
        for key, module in (("passes", pipe.transformer), ("blocks", pipe.transformer.single_transformer_blocks[-1])):
            forward = module.forward

            def counted(*args, _key=key, _forward=forward, **kwargs):
                count[_key] = count.get(_key, 0) + 1
                return _forward(*args, **kwargs)
            module.forward = counted  # before `place`: the cache hooks wrap this forward, and skip it when reusing
    settings.place(pipe)
    pipe.set_progress_bar_config(disable=True)
    control = Image.fromarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8))
    result = SAGPipeline(pipe)("a stone house", control, H, W, settings=SAG_PRESETS["tiny"],
                               generator=torch.Generator().manual_seed(0))
    return pipe, np.asarray(result.image)


@pytest.fixture(scope="module")
def plain_anchor() -> np.ndarray:
    return _anchor(DeviceSettings())[1]


def test_group_offloading_is_applied_and_exact(plain_anchor):
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    pipe, image = _anchor(DeviceSettings(offload="group"))
    assert _is_group_offload_enabled(pipe.transformer) and _is_group_offload_enabled(pipe.controlnet)
    np.testing.assert_array_equal(image, plain_anchor)


def test_first_block_cache_is_applied_exact_at_threshold_0_and_skips_blocks_above(plain_anchor):
    pipe, image = _anchor(DeviceSettings(cache="first_block:0"))
    assert pipe.transformer.is_cache_enabled and not getattr(pipe.controlnet, "is_cache_enabled", False)
    np.testing.assert_array_equal(image, plain_anchor)  # never reuses: the same computation
    count = {}
    _anchor(DeviceSettings(cache="first_block:0"), count)
    assert count["blocks"] == count["passes"] == SAG_PRESETS["tiny"].num_inference_steps
    count = {}
    _, skipping = _anchor(DeviceSettings(cache="first_block:1e9"), count)
    assert count["passes"] == SAG_PRESETS["tiny"].num_inference_steps
    assert count["blocks"] == 1  # the first pass; every later one reuses the cached residual of the other blocks
    assert not np.array_equal(skipping, plain_anchor)


def test_attention_backend_is_applied_and_leaves_outputs_unchanged(plain_anchor):
    pipe, image = _anchor(DeviceSettings(attention_backend="_native_math"))
    assert pipe.transformer.transformer_blocks[0].attn.processor._attention_backend.value == "_native_math"
    assert np.abs(image.astype(int) - plain_anchor.astype(int)).max() <= 1  # another kernel, same attention


def test_compile_and_vae_options_are_applied():
    pipe = DeviceSettings(compile="transformer", vae="tiling+slicing").place(tiny_flux(0).pipeline())
    assert pipe.transformer._compiled_call_impl is not None and pipe.controlnet._compiled_call_impl is not None
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    trainer_pipe = DeviceSettings(compile="transformer", cache="first_block").place(tiny_flux(0).pipeline(),
                                                                                    inference=False)
    assert trainer_pipe.transformer._compiled_call_impl is None and not trainer_pipe.transformer.is_cache_enabled


@torch.no_grad()
def test_vae_slicing_is_exact_up_to_float_rounding():
    vae = tiny_flux(0).vae
    latents = torch.randn(3, vae.config.latent_channels, 6, 8, generator=torch.Generator().manual_seed(0))
    whole = vae.decode(latents).sample
    vae.enable_slicing()
    torch.testing.assert_close(vae.decode(latents).sample, whole, rtol=0, atol=1e-5)  # batch-size-dependent kernels


def test_ggi_runs_under_the_cache_options():
    """GGI's own loop gives the transformer its cache context: exact at threshold 0."""
    edges = [np.random.default_rng(10 + i).integers(0, 256, (H, W), dtype=np.uint8) for i in range(46)]
    first, last = (np.random.default_rng(k).integers(0, 256, (H, W, 3), dtype=np.uint8) for k in (1, 2))
    videos = []
    for cache in ("none", "first_block:0"):
        ggi = GGIPipeline(tiny_cogvideo(0))
        DeviceSettings(cache=cache).place(ggi.pipe)
        ggi.set_progress_bar_config(disable=True)
        videos.append(ggi("a house", first, last, edges, H, W, settings=GGI_PRESETS["tiny"],
                          generator=torch.Generator().manual_seed(0)))
    assert ggi.pipe.transformer.is_cache_enabled
    np.testing.assert_array_equal(np.asarray(videos[0].frames), np.asarray(videos[1].frames))
