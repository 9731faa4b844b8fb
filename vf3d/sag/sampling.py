"""Sparse Anchor-view Generation (paper Sec. 3.2): anchors v_0, v_N with Sparse Appearance-guided Sampling.

v_0 comes from the style-aligned FLUX + HED ControlNet under the identifier prompt. Every later anchor v_N
is sampled the same way, but for the first K of T steps the latent outside the (dilated, blurred)
unobserved mask is replaced by the VAE latent of the warped previous anchor, noised to the current
flow-matching time (Eq. 1; official code: z = m*z_t + (1-m)*((1-t)*x1 + t*x0), x0 = the initial noise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np
import torch
from diffusers import FluxControlNetPipeline
from diffusers.pipelines.flux.pipeline_flux_controlnet import calculate_shift, retrieve_latents, retrieve_timesteps
from PIL import Image


ScheduleTokens = Literal["xflux", "latent"]
Resampling = Literal["nearest", "smooth"]
OutputType = Literal["pil", "latent"]


def xflux_sigmas(settings: "SAGSettings", height: int, width: int, scheduler_config: dict) -> np.ndarray | None:
    """Sigmas that make diffusers' FLUX schedule equal the official x-flux one (None: diffusers' own).

    diffusers shifts `linspace(1, 1/T, T)` by mu(packed tokens); shifts compose additively in mu
    (1/s' - 1 = e^-mu (1/s - 1)), so pre-shifting by mu_xflux - mu_diffusers yields exactly mu_xflux.
    """
    if settings.schedule_tokens == "latent":
        return None
    if settings.schedule_tokens != "xflux":
        raise ValueError(f"settings.schedule_tokens={settings.schedule_tokens!r}: expected 'xflux' or 'latent'")
    shift = dict(base_seq_len=scheduler_config.get("base_image_seq_len", 256),
                 max_seq_len=scheduler_config.get("max_image_seq_len", 4096),
                 base_shift=scheduler_config.get("base_shift", 0.5), max_shift=scheduler_config.get("max_shift", 1.15))
    mu = calculate_shift((width // 8) * (height // 8) // 256, **shift) - calculate_shift(
        (height // 16) * (width // 16), **shift)
    base = np.linspace(1.0, 1 / settings.num_inference_steps, settings.num_inference_steps)
    return np.exp(mu) / (np.exp(mu) + (1 / base - 1))


@dataclass(frozen=True)
class SAGSettings:
    """Sampling settings; defaults are the official code's values."""

    num_inference_steps: int = 25
    """T: denoising steps per anchor (paper: 25)."""
    replace_steps: int = 12
    """K: steps at the start that replace the observed latent (paper: first 12)."""
    replacement: bool = True
    """Sparse Appearance-guided Sampling on/off (off = the ablation of paper Fig. 11, or style transitions)."""
    guidance_scale: float = 4.0
    """FLUX-dev distilled guidance (official code: 4)."""
    true_cfg_scale: float = 3.5
    """True classifier-free guidance with an empty negative prompt (official code: 3.5; 1 = off)."""
    controlnet_conditioning_scale: float = 0.8
    """HED ControlNet weight (official code: 0.8)."""
    mask_dilate_iterations: int = 12
    """Unobserved mask dilation with a 5x5 kernel, repeated (official code: 12)."""
    mask_blur_sigma: float = 3.0
    """Gaussian blur of the dilated mask with a 9x9 kernel (official code: sigma 3)."""
    soft_mask: bool = False
    """False (official `sag_generate_anchor_view.py` `Warp`, l. 491-495): the mask is uint16 0/1 when blurred,
    so cv2 rounds the blur back to 0/1 (it only rounds the dilated region's corners) and every latent cell is
    either replaced or free. True: the blur runs in float, a soft border whose cells are partly replaced."""
    resampling: Resampling = "nearest"
    """How the previous anchor is warped and the mask brought to the latent grid: "nearest" (official) or
    "smooth" (bilinear warp, area-averaged mask)."""
    true_cfg_start: int = 1
    """First step with true CFG (official x-flux `timestep_to_start_cfg`: 1; the first step is conditional
    only). diffusers: 0."""
    negative_controlnet: bool = True
    """Recompute the ControlNet residuals with the negative prompt for the negative pass (official x-flux
    `denoise_controlnet`); False reuses the positive pass's residuals (diffusers)."""
    seed_per_anchor: bool = False
    """False: every anchor starts from the same noise (official `sag_generate_anchor_view.py`: the seed offset
    `COUNTER` only grows with `USE_ELSE_NOISE`, which is False). True: anchor k uses seed + k."""
    schedule_tokens: ScheduleTokens = "xflux"
    """Token count the flow-matching schedule's shift mu is computed from. "xflux" (official
    `src/flux/sampling.py`: `get_schedule(steps, (w // 8) * (h // 8) // (16 * 16))`, i.e. 21 tokens at 720x480,
    mu = 0.46): reproduced, although it looks like a mistake, since FLUX packs 2x2 latent patches into
    (h / 16) * (w / 16) = 1,350 tokens. "latent": those 1,350 tokens (mu = 0.71), as diffusers computes it."""
    resolution_scale: float = 1.5
    """Anchors are sampled at this multiple of the video size, floored to multiples of 16, then resized to the
    video size (`vf3d.sag.resolution`). Official 1.5: the size of the 1080x720 edge maps
    (`sag_generate_anchor_view.py:560`), 1072x720 after x-flux's rounding (l. 179-180), resized to 720x480 by
    `ggi.py:219`. 1: at the video size."""


SAG_PRESETS = {
    "paper": SAGSettings(),
    "tiny": SAGSettings(num_inference_steps=4, replace_steps=2, true_cfg_scale=1.0),
}


def unobserved_mask(valid: np.ndarray, settings: SAGSettings) -> np.ndarray:
    """m: 1 where the warped anchor gives no observation, dilated then blurred, (H, W) float32.

    Official (`sag_generate_anchor_view.py` `Warp`, l. 491-495): the unobserved pixels as a uint16 0/1 image,
    `cv2.dilate` with a 5x5 ones kernel, 12 iterations, then `cv2.GaussianBlur` 9x9, sigma 3 on that uint16
    image, which rounds to integers: m stays binary. `settings.soft_mask` blurs in float instead (m in [0, 1]).
    """
    unobserved = (~valid).astype(np.float32 if settings.soft_mask else np.uint16)
    dilated = cv2.dilate(unobserved, np.ones((5, 5), np.uint8), iterations=settings.mask_dilate_iterations)
    blurred = cv2.GaussianBlur(dilated, (9, 9), settings.mask_blur_sigma)
    return np.clip(blurred.astype(np.float32), 0.0, 1.0)


@dataclass
class SAGOutput:
    image: Image.Image | None  # None with output_type="latent"
    latents: torch.Tensor | None = None
    """The final packed latents (1, L, 4*C) the image is decoded from, scaled as FLUX's training targets:
    (E(x) - shift_factor) * scaling_factor (`StyleLoRATrainer._prepare`'s `x`)."""
    step_inputs: list[torch.Tensor] = field(default_factory=list)  # packed latents entering each step
    observed: torch.Tensor | None = None  # packed (1, L, C) bool: tokens where m == 0
    noised_warps: list[torch.Tensor] = field(default_factory=list)  # (1-t)*x1 + t*x0 per replacement step


class SAGPipeline:
    """FLUX ControlNet sampling with Sparse Appearance-guided Sampling; components come in, nothing loads."""

    def __init__(self, pipeline: FluxControlNetPipeline, on_step: Callable[[int, int], None] | None = None):
        self.pipe = pipeline
        self.on_step = on_step
        """Called with (step, steps) after every denoising step (the terminal's and the run log's progress)."""

    def check_inputs(self, height: int, width: int, warped: np.ndarray | None, valid: np.ndarray | None) -> None:
        multiple = self.pipe.vae_scale_factor * 2
        if height % multiple or width % multiple:
            raise ValueError(f"height={height}, width={width}: both must be multiples of {multiple} "
                             "(FLUX packs 2x2 latent patches); resize the guidance")
        if (warped is None) != (valid is None):
            raise ValueError("warped and valid go together: give both (guided anchor) or neither (first anchor)")
        if warped is not None and warped.shape[:2] != (height, width):
            raise ValueError(f"warped image is {warped.shape[:2]}, expected {(height, width)}")

    def _packed(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, h, w = latents.shape
        return FluxControlNetPipeline._pack_latents(latents, b, c, h, w)

    def encode_warp(self, warped: np.ndarray, generator: torch.Generator | None) -> torch.Tensor:
        """x1: the packed, scaled VAE latent of the warped previous anchor."""
        vae = self.pipe.vae
        pixels = self.pipe.image_processor.preprocess(Image.fromarray(warped)).to(vae.device, vae.dtype)
        latents = vae.encode(pixels).latent_dist.mode()
        return self._packed((latents - vae.config.shift_factor) * vae.config.scaling_factor)

    def pack_mask(self, mask: np.ndarray, latent_h: int, latent_w: int, channels: int,
                  resampling: Resampling = "nearest") -> torch.Tensor:
        """Downsample m to the latent grid and pack it like the latents: (1, L, 4*C). "nearest" picks one pixel
        per latent cell, the cell's top-left one (official `sag_generate_anchor_view.py` l. 82-83:
        `cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)`, which torch's "nearest"
        matches); "smooth" averages the cell (area)."""
        small = torch.from_numpy(mask)[None, None].float()
        mode = {"nearest": "nearest", "smooth": "area"}[resampling]
        small = torch.nn.functional.interpolate(small, size=(latent_h, latent_w), mode=mode)
        return self._packed(small.expand(1, channels, latent_h, latent_w).contiguous())

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        control_image: Image.Image,
        height: int,
        width: int,
        warped: np.ndarray | None = None,
        valid: np.ndarray | None = None,
        settings: SAGSettings = SAGSettings(),
        generator: torch.Generator | None = None,
        record_steps: bool = False,
        output_type: OutputType = "pil",
    ) -> SAGOutput:
        """Generate one anchor view.

        Args:
            prompt: identifier prompt (+ post-prompt) of the style.
            control_image: the HED edge map of this view (RGB), height x width.
            warped, valid: the previous anchor warped into this view with f_N->0 and its valid mask;
                None for the first anchor v_0.
            settings: sampling settings (`SAG_PRESETS`).
            generator: seeds the initial noise x0.
            record_steps: keep the packed latents entering every step (tests, diagnostics).
            output_type: "pil" decodes the final latents into `image`; "latent" skips the VAE decode (as diffusers'
                `output_type="latent"`), `image` is None. `latents` holds the final latents either way.
        """
        # 1. Check inputs
        self.check_inputs(height, width, warped, valid)
        if output_type not in ("pil", "latent"):
            raise ValueError(f"output_type={output_type!r}: expected 'pil' or 'latent'")
        pipe = self.pipe
        device = pipe._execution_device
        guided = warped is not None and settings.replacement
        # 2. Initial noise x0, packed: the same tensor is z_T and the noise of the replacement target.
        channels = pipe.transformer.config.in_channels // 4
        x0, _ = pipe.prepare_latents(1, channels, height, width, pipe.transformer.dtype, device, generator)
        latent_h, latent_w = 2 * (height // (pipe.vae_scale_factor * 2)), 2 * (width // (pipe.vae_scale_factor * 2))
        output = SAGOutput(image=None)  # type: ignore[arg-type]
        if guided:
            # 3. Observation: x1 = E(v_0->N), m = unobserved mask on the latent grid
            x1 = self.encode_warp(warped, generator).to(x0.dtype)
            m = self.pack_mask(unobserved_mask(valid, settings), latent_h, latent_w, channels,
                               settings.resampling).to(x0)
            output.observed = m == 0
        # 4. Denoising with replacement before each of the first K steps (Eq. 1)
        def replace_observed(latents: torch.Tensor, step: int) -> torch.Tensor:
            if guided and step < settings.replace_steps:
                # FLUX's shifted schedule starts at sigma = 1 exactly; later sigmas come from the scheduler.
                t = pipe.scheduler.sigmas[step].to(latents) if step > 0 else torch.ones((), dtype=latents.dtype)
                target = (1 - t) * x1 + t * x0
                if record_steps:
                    output.noised_warps.append(target.clone())
                latents = m * latents + (1 - m) * target
            if record_steps:
                output.step_inputs.append(latents.clone())
            return latents

        output.latents = self.denoise(prompt, control_image, height, width, x0, settings, replace_observed, generator)
        if output_type == "pil":
            output.image = self.decode(output.latents, height, width)
        return output

    def denoise(self, prompt: str, control_image: Image.Image, height: int, width: int, latents: torch.Tensor,
                settings: SAGSettings, before_step: Callable[[torch.Tensor, int], torch.Tensor],
                generator: torch.Generator | None) -> torch.Tensor:
        """FLUX + ControlNet sampling as x-flux's `denoise_controlnet` does it, in diffusers' components: true CFG
        from step `settings.true_cfg_start`, the negative pass with its own ControlNet residuals
        (`settings.negative_controlnet`); `before_step(latents, i)` runs before every step (the replacement).
        Returns the final packed latents (`decode` makes the image)."""
        pipe = self.pipe
        device, dtype = pipe._execution_device, pipe.transformer.dtype
        do_cfg = settings.true_cfg_scale > 1.0
        embeds, pooled, text_ids = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=device)
        if do_cfg:
            neg_embeds, neg_pooled, _ = pipe.encode_prompt(prompt="", prompt_2=None, device=device)
        control = pipe.prepare_image(image=control_image, width=width, height=height, batch_size=1,
                                     num_images_per_prompt=1, device=device, dtype=pipe.vae.dtype)
        xlabs = pipe.controlnet.input_hint_block is not None  # XLabs: a pixel hint encoder, residuals repeated
        if not xlabs:  # InstantX-style ControlNets take packed VAE latents of the control image
            control = retrieve_latents(pipe.vae.encode(control), generator=generator)
            control = (control - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
            control = pipe._pack_latents(control, 1, control.shape[1], *control.shape[2:])
        latent_h, latent_w = 2 * (height // (pipe.vae_scale_factor * 2)), 2 * (width // (pipe.vae_scale_factor * 2))
        image_ids = pipe._prepare_latent_image_ids(1, latent_h // 2, latent_w // 2, device, dtype)
        config = pipe.scheduler.config
        sigmas = xflux_sigmas(settings, height, width, config)
        if sigmas is None:
            sigmas = np.linspace(1.0, 1 / settings.num_inference_steps, settings.num_inference_steps)
        mu = calculate_shift(latents.shape[1], config.get("base_image_seq_len", 256),
                             config.get("max_image_seq_len", 4096), config.get("base_shift", 0.5),
                             config.get("max_shift", 1.15))
        timesteps, _ = retrieve_timesteps(pipe.scheduler, settings.num_inference_steps, device, sigmas=sigmas, mu=mu)

        def guidance(model) -> torch.Tensor | None:
            return torch.tensor([settings.guidance_scale], device=device) if model.config.guidance_embeds else None

        def predict(z, timestep, text, pooled_text, residuals):
            return pipe.transformer(hidden_states=z, timestep=timestep / 1000, guidance=guidance(pipe.transformer),
                                    pooled_projections=pooled_text, encoder_hidden_states=text,
                                    controlnet_block_samples=residuals[0], controlnet_single_block_samples=residuals[1],
                                    txt_ids=text_ids, img_ids=image_ids, return_dict=False,
                                    controlnet_blocks_repeat=xlabs)[0]

        def controlnet(z, timestep, text, pooled_text):
            return pipe.controlnet(hidden_states=z, controlnet_cond=control, controlnet_mode=None,
                                   conditioning_scale=settings.controlnet_conditioning_scale, timestep=timestep / 1000,
                                   guidance=guidance(pipe.controlnet), pooled_projections=pooled_text,
                                   encoder_hidden_states=text, txt_ids=text_ids, img_ids=image_ids, return_dict=False)

        with pipe.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                latents = before_step(latents, i)
                timestep = t.expand(latents.shape[0]).to(latents.dtype)
                residuals = controlnet(latents, timestep, embeds, pooled)
                with pipe.transformer.cache_context("cond"):  # the cache options keep one state per pass
                    prediction = predict(latents, timestep, embeds, pooled, residuals)
                if do_cfg and i >= settings.true_cfg_start:
                    if settings.negative_controlnet:
                        residuals = controlnet(latents, timestep, neg_embeds, neg_pooled)
                    with pipe.transformer.cache_context("uncond"):
                        negative = predict(latents, timestep, neg_embeds, neg_pooled, residuals)
                    prediction = negative + settings.true_cfg_scale * (prediction - negative)
                latents = pipe.scheduler.step(prediction, t, latents, return_dict=False)[0]
                progress_bar.update()
                if self.on_step:
                    self.on_step(i + 1, len(timesteps))
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, height: int, width: int) -> Image.Image:
        """Packed, scaled latents -> the image (FLUX's VAE)."""
        pipe = self.pipe
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
        latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        return pipe.image_processor.postprocess(pipe.vae.decode(latents, return_dict=False)[0], output_type="pil")[0]


def with_overrides(settings: SAGSettings, **overrides) -> SAGSettings:
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
