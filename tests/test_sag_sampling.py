"""Sparse Appearance-guided Sampling on the tiny FLUX components: Eq. 1 exactly, and only for K steps."""

import numpy as np
import pytest
import torch
from PIL import Image

from vf3d.common.warp import warp_image
from vf3d.models.flux import tiny_flux
from vf3d.sag.sampling import SAG_PRESETS, SAGPipeline, unobserved_mask, with_overrides

H, W = 48, 64


@pytest.fixture(scope="module")
def sag():
    pipe = tiny_flux(0).pipeline()
    pipe.set_progress_bar_config(disable=True)
    return SAGPipeline(pipe)


def _guided(sag, replacement: bool):
    settings = with_overrides(SAG_PRESETS["tiny"], replacement=replacement, num_inference_steps=5, replace_steps=3,
                              mask_dilate_iterations=1)  # a small image: keep part of it observed
    edges = Image.fromarray(np.zeros((H, W, 3), np.uint8))
    warped = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    valid = np.zeros((H, W), bool)
    valid[:, : W // 2] = True
    return settings, sag("a photo in sks style", edges, H, W, warped=warped, valid=valid, settings=settings,
                         generator=torch.Generator().manual_seed(1), record_steps=True)


def test_observed_latent_equals_the_noised_warp_during_replacement_steps_only(sag):
    settings, out = _guided(sag, replacement=True)
    observed = out.observed
    assert 0 < observed.sum() < observed.numel()
    assert len(out.step_inputs) == settings.num_inference_steps
    assert len(out.noised_warps) == settings.replace_steps
    for step, latents in enumerate(out.step_inputs):
        if step < settings.replace_steps:
            assert torch.equal(latents[observed], out.noised_warps[step][observed])
        else:  # free after step K: the sampler's own latent differs from any noised warp
            assert not torch.allclose(latents[observed], out.noised_warps[-1][observed], atol=1e-3)


def test_without_replacement_the_latent_never_equals_the_noised_warp(sag):
    _, guided = _guided(sag, replacement=True)
    settings, free = _guided(sag, replacement=False)
    assert free.observed is None and free.noised_warps == []
    observed = guided.observed
    for step in range(1, settings.num_inference_steps):
        for target in guided.noised_warps[1:]:
            assert not torch.allclose(free.step_inputs[step][observed], target[observed], atol=1e-3)


def test_no_overlap_means_no_replacement(sag):
    settings = SAG_PRESETS["tiny"]
    mask = unobserved_mask(np.zeros((H, W), bool), settings)
    assert (mask == 1).all()
    packed = sag.pack_mask(mask, 6, 8, 4)
    assert (packed == 1).all()


def test_unobserved_mask_is_dilated_and_blurred():
    valid = np.ones((64, 96), bool)
    valid[30:34, 30:34] = False
    mask = unobserved_mask(valid, SAG_PRESETS["paper"])
    assert mask[32, 32] == 1.0 and mask[0, 0] == 0.0
    # 12 dilations of 5x5 grow the hole (columns 30-33) by 24 px: 6-57; the blur softens the border.
    assert mask[32, 50] > 0.99 and 0 < mask[32, 58] < 1 and mask[32, 66] == 0


def test_warp_samples_view_j_along_the_flow():
    image = np.zeros((8, 10, 3), np.uint8)
    image[:, 6] = 255
    flow = np.zeros((8, 10, 2), np.float32)
    flow[..., 0] = 2.0  # view i sees at x what view j has at x + 2
    warped, valid = warp_image(image, flow, np.ones((8, 10), bool))
    assert (warped[:, 4] == 255).all() and warped[:, 6].max() == 0


def test_bad_size_is_a_clear_error(sag):
    with pytest.raises(ValueError, match="multiples of 16"):
        sag("p", Image.new("RGB", (50, 40)), 40, 50, settings=SAG_PRESETS["tiny"])
