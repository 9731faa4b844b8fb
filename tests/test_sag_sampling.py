"""Sparse Appearance-guided Sampling on the tiny FLUX components: Eq. 1 exactly, and only for K steps."""

import math
import warnings

import cv2
import numpy as np
import pytest
import torch
from diffusers import FluxControlNetPipeline
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


def test_soft_unobserved_mask_is_dilated_and_blurred():
    valid = np.ones((64, 96), bool)
    valid[30:34, 30:34] = False
    mask = unobserved_mask(valid, with_overrides(SAG_PRESETS["paper"], soft_mask=True))
    assert mask[32, 32] == 1.0 and mask[0, 0] == 0.0
    # 12 dilations of 5x5 grow the hole (columns 30-33) by 24 px: 6-57; the float blur softens the border.
    assert mask[32, 50] > 0.99 and 0 < mask[32, 58] < 1 and mask[32, 66] == 0


def _official_latent_mask(valid: np.ndarray, latent_h: int, latent_w: int) -> tuple[np.ndarray, np.ndarray]:
    """(latent-grid mask (h, w, 1), full-size mask (H, W)), the official mask transcribed step by step from
    `sag_generate_anchor_view.py` (KIMGEONUNG/VideoFrom3D): `Warp` l. 491-495 (unobserved = no correspondence,
    as uint16; dilate 5x5 ones x (8 + 4) iterations, the default `mask_dilation=(5, 8 + 4)` of l. 485;
    GaussianBlur (9, 9), 3 on the uint16 image) and `forward` l. 82-84 (nearest resize of the float32 mask to
    the latent grid)."""
    mask = ((~valid) * 1).astype("uint16")
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8), iterations=8 + 4)[..., None]
    mask = cv2.GaussianBlur(mask, (9, 9), 3)[..., None]
    small = cv2.resize(mask.astype(np.float32), (latent_w, latent_h), interpolation=cv2.INTER_NEAREST)
    return small[:, :, np.newaxis], mask[..., 0]


def test_paper_mask_is_the_official_binary_mask_on_the_latent_grid(sag):
    """A triangle of unobserved pixels whose dilated border crosses latent cells: the paper mask equals the
    official steps at full size and on the latent grid (binary), the soft option keeps fractions there."""
    h, w = 160, 224
    rows, cols = np.mgrid[:h, :w]
    valid = ~((cols - 40) + 0.7 * (rows - 30) < 37)  # unobserved: a slanted corner region
    official_small, official_full = _official_latent_mask(valid, h // 8, w // 8)
    paper = SAG_PRESETS["paper"]
    assert not paper.soft_mask and paper.resampling == "nearest"
    mask = unobserved_mask(valid, paper)
    np.testing.assert_array_equal(mask, official_full.astype(np.float32))
    assert set(np.unique(mask)) == {0.0, 1.0}
    packed = sag.pack_mask(mask, h // 8, w // 8, 4, paper.resampling)
    expected = torch.from_numpy(official_small).permute(2, 0, 1)[None].expand(1, 4, h // 8, w // 8)
    assert torch.equal(packed, FluxControlNetPipeline._pack_latents(expected.contiguous(), 1, 4, h // 8, w // 8))
    soft = unobserved_mask(valid, with_overrides(paper, soft_mask=True))
    assert ((soft > 0) & (soft < 1)).sum() > 100
    soft_packed = sag.pack_mask(soft, h // 8, w // 8, 4, paper.resampling)
    assert ((soft_packed > 0) & (soft_packed < 1)).any()  # boundary cells only partly replaced


def test_warp_samples_view_j_along_the_flow():
    image = np.zeros((8, 10, 3), np.uint8)
    image[:, 6] = 255
    flow = np.zeros((8, 10, 2), np.float32)
    flow[..., 0] = 2.0  # view i sees at x what view j has at x + 2
    image.setflags(write=False)  # as decoded frames and memory-mapped arrays come: taken without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warped, valid = warp_image(image, flow, np.ones((8, 10), bool))
    assert (warped[:, 4] == 255).all() and warped[:, 6].max() == 0


def test_bad_size_is_a_clear_error(sag):
    with pytest.raises(ValueError, match="multiples of 16"):
        sag("p", Image.new("RGB", (50, 40)), 40, 50, settings=SAG_PRESETS["tiny"])


@pytest.mark.parametrize("schedule_tokens", ["xflux", "latent"])
def test_schedule_shift_reproduces_xflux_and_latent_tokens_is_the_option(sag, schedule_tokens):
    """The official x-flux schedule (`get_schedule(steps, (w // 8) * (h // 8) // 256)`, shift on) written out
    here independently; "latent" counts FLUX's packed 2x2 tokens as diffusers does."""
    steps = 5
    assert SAG_PRESETS["paper"].schedule_tokens == "xflux"
    settings = with_overrides(SAG_PRESETS["tiny"], num_inference_steps=steps, schedule_tokens=schedule_tokens)
    sag("a photo in sks style", Image.fromarray(np.zeros((H, W, 3), np.uint8)), H, W, settings=settings,
        generator=torch.Generator().manual_seed(0))
    tokens = (W // 8) * (H // 8) // 256 if schedule_tokens == "xflux" else (H // 16) * (W // 16)
    mu = 0.5 + (1.15 - 0.5) / (4096 - 256) * (tokens - 256)  # x-flux get_lin_function(256, 0.5, 4096, 1.15)
    t = np.linspace(1, 0, steps + 1)[:-1]
    expected = math.exp(mu) / (math.exp(mu) + (1 / t - 1))
    np.testing.assert_allclose(sag.pipe.scheduler.sigmas[:-1].numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("seed_per_anchor", [False, True])
def test_every_anchor_starts_from_the_same_seed_as_the_official_code(tmp_path, seed_per_anchor):
    from vf3d.sag.anchors import generate_anchors
    from vf3d.sag.sampling import SAGOutput

    (tmp_path / "edges").mkdir()
    (tmp_path / "flows").mkdir()
    (tmp_path / "meta.json").write_text('{"height": 16, "width": 16, "segments": [[0, 2], [2, 4], [4, 5]]}')
    for i in range(6):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "edges" / f"{i:05d}.png")
    for k in range(3):
        np.savez(tmp_path / "flows" / f"seg{k:03d}.npz", end_to_start=np.zeros((16, 16, 2), np.float32),
                 end_to_start_valid=np.ones((16, 16), bool))
    seeds = []

    def fake_sag(prompt, control, height, width, warped, valid, settings, generator):
        seeds.append(generator.initial_seed())
        return SAGOutput(image=Image.fromarray(np.full((16, 16, 3), 7, np.uint8)))

    settings = with_overrides(SAG_PRESETS["paper"], seed_per_anchor=seed_per_anchor)
    assert SAG_PRESETS["paper"].seed_per_anchor is False
    generate_anchors(fake_sag, tmp_path, tmp_path / "out", ["p"] * 4, lambda e: e, settings,
                     lambda k: torch.Generator().manual_seed(100 + k))
    assert seeds == ([100, 101, 102, 103] if seed_per_anchor else [100] * 4)


def test_resampling_is_nearest_as_the_official_code_and_smooth_is_the_option(sag):
    assert SAG_PRESETS["paper"].resampling == "nearest"
    mask = np.zeros((H, W), np.float32)
    mask[:, ::3] = 1.0  # stripes: an area average gives fractions, nearest never does
    nearest = sag.pack_mask(mask, 6, 8, 4, "nearest")
    smooth = sag.pack_mask(mask, 6, 8, 4, "smooth")
    assert set(nearest.unique().tolist()) <= {0.0, 1.0}
    assert not set(smooth.unique().tolist()) <= {0.0, 1.0}
    image = np.random.default_rng(3).integers(0, 255, (H, W, 3), dtype=np.uint8)
    flow = np.full((H, W, 2), 0.4, np.float32)  # between pixels: bilinear mixes, nearest copies one
    valid = np.ones((H, W), bool)
    copied, _ = warp_image(image, flow, valid, mode="nearest")
    mixed, _ = warp_image(image, flow, valid)
    np.testing.assert_array_equal(copied[:-1, :-1], image[:-1, :-1])
    assert not np.array_equal(mixed[:-1, :-1], image[:-1, :-1])


def test_replacement_target_follows_the_schedule_step_by_step(sag):
    """z = m*z_t + (1-m)*((1-t_k)*x1 + t_k*x0) with t_k from the x-flux schedule written out here: x1 is
    recovered from step 1 and must then predict every other replacement step (an off-by-one sigma fails)."""
    settings, out = _guided(sag, replacement=True)
    steps, observed = settings.num_inference_steps, out.observed
    tokens = (W // 8) * (H // 8) // 256
    mu = 0.5 + (1.15 - 0.5) / (4096 - 256) * (tokens - 256)
    t = np.linspace(1, 0, steps + 1)[:-1]
    sigma = np.exp(mu) / (np.exp(mu) + (1 / t - 1))
    x0 = out.step_inputs[0]  # t_0 = 1: the replacement leaves z_T = x0 unchanged
    x1 = (out.step_inputs[1] - float(sigma[1]) * x0) / (1 - float(sigma[1]))
    for k in range(2, settings.replace_steps):
        expected = (1 - float(sigma[k])) * x1 + float(sigma[k]) * x0
        torch.testing.assert_close(out.step_inputs[k][observed], expected[observed], rtol=1e-4, atol=1e-4)


def test_own_loop_equals_diffusers_when_set_like_it_and_the_official_cfg_differs(sag):
    """With true CFG from step 0 and shared ControlNet residuals our loop is diffusers' FluxControlNetPipeline
    exactly; the official settings (CFG from step 1, negative residuals recomputed) give another image."""
    edges = Image.fromarray(np.random.default_rng(4).integers(0, 255, (H, W, 3), dtype=np.uint8))
    like_diffusers = with_overrides(SAG_PRESETS["tiny"], true_cfg_scale=3.5, true_cfg_start=0,
                                    negative_controlnet=False, schedule_tokens="latent")
    ours = np.asarray(sag("a photo in sks style", edges, H, W, settings=like_diffusers,
                          generator=torch.Generator().manual_seed(2)).image)
    x0, _ = sag.pipe.prepare_latents(1, sag.pipe.transformer.config.in_channels // 4, H, W,
                                     sag.pipe.transformer.dtype, "cpu", torch.Generator().manual_seed(2))
    reference = np.asarray(sag.pipe(prompt="a photo in sks style", negative_prompt="", true_cfg_scale=3.5,
                                    control_image=edges, controlnet_conditioning_scale=0.8, height=H, width=W,
                                    num_inference_steps=like_diffusers.num_inference_steps, guidance_scale=4.0,
                                    latents=x0, output_type="pil").images[0])
    np.testing.assert_array_equal(ours, reference)
    later_cfg = np.asarray(sag("a photo in sks style", edges, H, W, generator=torch.Generator().manual_seed(2),
                               settings=with_overrides(like_diffusers, true_cfg_start=1)).image)
    assert not np.array_equal(later_cfg, ours)
    assert (SAG_PRESETS["paper"].true_cfg_start, SAG_PRESETS["paper"].negative_controlnet) == (1, True)


def test_the_negative_pass_gets_its_own_controlnet_residuals_from_the_cfg_start(sag, monkeypatch):
    texts = []
    forward = sag.pipe.controlnet.forward
    monkeypatch.setattr(sag.pipe.controlnet, "forward",
                        lambda *a, **k: texts.append(k["encoder_hidden_states"].clone()) or forward(*a, **k))
    edges = Image.fromarray(np.zeros((H, W, 3), np.uint8))
    steps = 4
    for negative_controlnet, calls in ((True, steps + steps - 1), (False, steps)):
        texts.clear()
        settings = with_overrides(SAG_PRESETS["tiny"], num_inference_steps=steps, true_cfg_scale=3.5,
                                  negative_controlnet=negative_controlnet)
        sag("a photo in sks style", edges, H, W, settings=settings, generator=torch.Generator().manual_seed(0))
        assert len(texts) == calls
    negative, _, _ = sag.pipe.encode_prompt(prompt="", prompt_2=None, device="cpu")
    positive, _, _ = sag.pipe.encode_prompt(prompt="a photo in sks style", prompt_2=None, device="cpu")
    texts.clear()
    sag("a photo in sks style", edges, H, W, generator=torch.Generator().manual_seed(0),
        settings=with_overrides(SAG_PRESETS["tiny"], num_inference_steps=steps, true_cfg_scale=3.5))
    close = lambda a, b: torch.allclose(a, b.detach(), atol=1e-3)  # noqa: E731
    assert close(texts[0], positive) and not close(positive, negative)  # step 0: conditional only
    assert close(texts[1], positive) and close(texts[2], negative)  # step 1: both passes, each its own residuals
