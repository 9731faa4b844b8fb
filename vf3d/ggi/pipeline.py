"""Geometry-guided Generative Inbetweening (paper Sec. 3.3): the frames between anchors v_0 and v_N.

CogVideoX-5B-I2V with its patch embedding widened to take, channel-wise beside the noisy latent Z_t,
  V = [E(v_0), 0, ..., 0, E(v_N)]                 (image latents, stacked along latent time)
  H = E([h_0, ..., h_N, h_N, h_N, h_N])          (HED edge maps of the 46 frames + 3 repeats of the last = 49)
and sampled from the flow-warped noise eps_w with the Go-with-the-Flow LoRA (Eq. 2). The 49 generated frames
are cut back to the segment's 46 (official code: chaining keeps frames[:-3]).

`conditioning_latents` and `model_input` are static functions so training builds exactly the same model input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from diffusers import CogVideoXDPMScheduler
from diffusers.utils.torch_utils import randn_tensor

from vf3d.models.cogvideo import MAX_SEQUENCE_LENGTH, GGIComponents, is_widened

Method = Literal["ggi", "bidirectional"]
METHODS = ("ggi", "bidirectional")
Sampler = Literal["model", "dpm"]
ChainFrom = Literal["generated", "anchor"]
SAMPLERS = ("model", "dpm")


@dataclass(frozen=True)
class GGISettings:
    """Sampling settings; defaults are the paper's / official code's values."""

    num_inference_steps: int = 30
    """Denoising steps (official `ggi.py`: 30)."""
    sampler: Sampler = "model"
    """"model": the scheduler the model ships (CogVideoX-5b-I2V's `scheduler_config.json`: CogVideoXDDIMScheduler,
    v-prediction, trailing spacing), as the official GGI inference, whose DPM line is commented out. "dpm":
    CogVideoXDPMScheduler from the same config (diffusers' documented sampler for the 5B models)."""
    guidance_scale: float = 6.0
    """Classifier-free guidance with an empty negative prompt (official code: 6; 1 = off)."""
    num_frames: int = 49
    """Frames the model generates: CogVideoX's 49 (13 latent frames) = the segment + repeats of its last frame."""
    segment_frames: int = 46
    """Frames kept: N + 1 = 46 (paper Sec. 4, implementation details: N = 45); the last edge map fills the
    other num_frames - segment_frames."""
    chain_from: ChainFrom = "generated"
    """Where segment k+1 starts: "generated", the last frame GGI generated for segment k (official `ggi.py`:
    `start = videos[-1]`); "anchor", segment k's end anchor v_N from SAG (the paper's text: "treating v_N as the
    next starting frame v_0"). Each segment keeps its first `segment_frames` frames (official: `videos[:-3]`)."""
    method: Method = "ggi"
    """"ggi": both anchors and the edge latents in one pass (the paper). "bidirectional": training-free
    inbetweening with the base I2V model (I2V3D Sec. 3.3): a forward pass from v_0 and a time-reversed pass from
    v_N per step, blended by frame position; no edge guidance."""
    structure: Literal["hed_s", "hed", "none"] = "hed_s"
    """The structure condition the GGI weights were trained with (`vf3d.ggi.training.STRUCTURE_CONDITIONS`,
    paper Table 3). "hed_s" and "hed" both sample with the geometry's edge maps (they differ in training only);
    "none" samples with empty maps, as its weights were trained."""


GGI_PRESETS = {
    "paper": GGISettings(),
    "tiny": GGISettings(num_inference_steps=3),
    "bidirectional": GGISettings(method="bidirectional"),
}


def latent_frames(num_frames: int, temporal_compression: int = 4) -> int:
    """Latent frames of a clip through CogVideoX's causal VAE: the first frame alone, then 4 per latent."""
    return (num_frames - 1) // temporal_compression + 1


def to_pixels(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """(H, W) grey or (H, W, 3) RGB uint8 frames -> (1, 3, F, H, W) float in [-1, 1], the VAE's input."""
    video = np.stack([np.repeat(f[..., None], 3, axis=-1) if f.ndim == 2 else f for f in frames])  # (F, H, W, 3)
    return torch.from_numpy(video).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0


def encode_video(vae, frames: Sequence[np.ndarray], generator: torch.Generator | None = None) -> torch.Tensor:
    """E(frames): (1, T, C, h, w) latents scaled as CogVideoX's I2V pipeline scales its image latents.

    A single frame is encoded as the I2V pipeline encodes its image (a 1-frame clip). `generator` samples the
    posterior as diffusers does; None takes its mode (deterministic).
    """
    return encode_pixels(vae, to_pixels(frames), generator)


def encode_pixels(vae, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """E(pixels) for a (1, 3, F, H, W) clip in [-1, 1] (`to_pixels`): (1, T, C, h, w), scaled as `encode_video`."""
    return posterior_latents(vae, encode_posterior(vae, pixels), generator)


Posterior = tuple[torch.Tensor, torch.Tensor]
"""The VAE posterior of a clip: (mean, std), each (1, T, C, h, w), unscaled."""


def encode_posterior(vae, pixels: torch.Tensor) -> Posterior:
    """The VAE's diagonal Gaussian posterior of a (1, 3, F, H, W) clip in [-1, 1]: encode once, draw many times."""
    posterior = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
    return posterior.mean.permute(0, 2, 1, 3, 4), posterior.std.permute(0, 2, 1, 3, 4)


def posterior_latents(vae, posterior: Posterior, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scaled latents (1, T, C, h, w) from a posterior: its mode (`generator` None), or a draw bit-identical to
    diffusers' `DiagonalGaussianDistribution.sample(generator)` (the same normals, in its (1, C, T, h, w) order)."""
    mean, std = posterior
    latents = mean
    if generator is not None:
        normal = randn_tensor(mean.transpose(1, 2).shape, generator=generator, device=mean.device, dtype=mean.dtype)
        latents = mean + std * normal.transpose(1, 2)
    scale = vae.config.scaling_factor
    # CogVideoX 1.5 I2V was trained with the image latents divided by the factor (diffusers' invert_scale_latents).
    return latents / scale if vae.config.invert_scale_latents else latents * scale


def anchor_latents(vae, image: np.ndarray, num_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[E(image), 0, ..., 0] over the clip's latent frames, (1, T, C, h, w): the I2V pipeline's image latents."""
    encoded = encode_video(vae, [image], generator)
    zeros = encoded.new_zeros(1, latent_frames(num_frames, vae.config.temporal_compression_ratio) - 1,
                              *encoded.shape[2:])
    return torch.cat([encoded, zeros], dim=1)


def conditioning_latents(
    vae,
    first: np.ndarray,
    last: np.ndarray,
    edge_frames: Sequence[np.ndarray],
    num_frames: int = 49,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The GGI conditions V and H (paper Eq. 2), shared by training and inference.

    Args:
        vae: CogVideoX's causal 3D VAE (`AutoencoderKLCogVideoX`).
        first, last: anchors v_0, v_N, (H, W, 3) uint8.
        edge_frames: h_0..h_N, (H, W) uint8 each (46 at full size); the last is repeated up to `num_frames`.
        num_frames: frames the model generates (49: 13 latent frames).
        generator: samples the VAE posterior (None: its mode).

    Returns:
        image_latents V: (1, T, C, h, w) = [E(v_0), 0, ..., 0, E(v_N)], v_0 and v_N each encoded as a 1-frame
            clip (as the I2V pipeline encodes its image), E(v_N) in the last latent frame (pixel frames 45-48).
        edge_latents H: (1, T, C, h, w) = E([h_0, ..., h_N, h_N, ...]), the edge maps as one RGB clip.
    """
    return conditions_from_posteriors(vae, conditioning_posteriors(vae, first, last, edge_frames, num_frames),
                                      generator)


def conditioning_posteriors(vae, first: np.ndarray, last: np.ndarray, edge_frames: Sequence[np.ndarray],
                            num_frames: int = 49) -> dict[str, Posterior]:
    """The VAE posteriors behind `conditioning_latents` ("first", "last", "edges"): a trainer encodes them once
    and draws from them at every step."""
    temporal = vae.config.temporal_compression_ratio
    if (num_frames - 1) % temporal or num_frames <= temporal or not 0 < len(edge_frames) <= num_frames:
        raise ValueError(f"num_frames={num_frames} with {len(edge_frames)} edge maps: num_frames must be {temporal}k+1 "
                         "with k >= 1 (two latent frames at least) and at least the number of edge maps")
    edges = [*edge_frames] + [edge_frames[-1]] * (num_frames - len(edge_frames))
    return {"first": encode_posterior(vae, to_pixels([first])), "last": encode_posterior(vae, to_pixels([last])),
            "edges": encode_posterior(vae, to_pixels(edges))}


def conditions_from_posteriors(vae, posteriors: dict[str, Posterior], generator: torch.Generator | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, H) of `conditioning_latents` from its posteriors: the modes, or draws from `generator` (in the order
    first anchor, last anchor, edges)."""
    first = posterior_latents(vae, posteriors["first"], generator)
    last = posterior_latents(vae, posteriors["last"], generator)
    edges = posterior_latents(vae, posteriors["edges"], generator)
    image_latents = torch.cat([first, first.new_zeros(1, edges.shape[1] - 2, *first.shape[2:]), last], dim=1)
    return image_latents, edges


def model_input(noisy_latents: torch.Tensor, image_latents: torch.Tensor,
                edge_latents: torch.Tensor | None = None) -> torch.Tensor:
    """Z_t (+) V (+) H: (B, T, C, h, w) each -> (B, T, 3C, h, w), the widened patch embedding's channel order.

    Without `edge_latents`: (B, T, 2C, h, w), the base I2V model's input (as diffusers concatenates it).
    """
    return torch.cat([noisy_latents, image_latents, *([] if edge_latents is None else [edge_latents])], dim=2)


@dataclass
class GGIOutput:
    frames: list[np.ndarray]  # segment_frames x (H, W, 3) uint8
    method: str
    last_frame: np.ndarray | None = None  # the last of all num_frames generated (the official chaining's next start)
    step_inputs: list[torch.Tensor] = field(default_factory=list)  # latents entering each step (record_steps)
    latents: torch.Tensor | None = None  # the denoised latents (1, T, C, h, w) that were decoded


@dataclass
class _Direction:
    """One conditioning of the transformer: its image/edge latents and whether it runs on time-reversed latents."""

    image_latents: torch.Tensor
    edge_latents: torch.Tensor | None
    reverse: bool = False


def check_sample_size(transformer_config: dict, vae_scale: int, height: int, width: int) -> None:
    """A transformer with learned positional embeddings (CogVideoX-5b-I2V) works at its sample size only."""
    size = (transformer_config["sample_height"] * vae_scale, transformer_config["sample_width"] * vae_scale)
    if transformer_config["use_learned_positional_embeddings"] and (height, width) != size:
        raise ValueError(f"height={height}, width={width}: this transformer has learned positional embeddings and "
                         f"only works at {size[0]}x{size[1]} (CogVideoX-5b-I2V: 480x720); resize the inputs")


class GGIPipeline:
    """CogVideoX I2V sampling with both anchors and edge guidance; components come in, nothing loads."""

    def __init__(self, components: GGIComponents, on_step: Callable[[int, int], None] | None = None):
        self.components = components
        self.pipe = components.pipeline()
        self.on_step = on_step
        """Called with (step, steps) after every denoising step (the terminal's and the run log's progress)."""

    def scheduler(self, sampler: Sampler):
        """The sampler for `GGISettings.sampler`: the model's own scheduler, or CogVideoX's DPM from its config."""
        own = self.components.scheduler
        return own if sampler == "model" else CogVideoXDPMScheduler.from_config(own.config)

    def set_progress_bar_config(self, **kwargs) -> None:
        self.pipe.set_progress_bar_config(**kwargs)

    def check_inputs(self, first_image: np.ndarray, last_image: np.ndarray, edge_frames: Sequence[np.ndarray] | None,
                     height: int, width: int, latents: torch.Tensor | None, settings: GGISettings) -> None:
        config, scale = self.pipe.transformer.config, self.pipe.vae_scale_factor_spatial
        multiple = scale * config.patch_size
        if height % multiple or width % multiple:
            raise ValueError(f"height={height}, width={width}: both must be multiples of {multiple} "
                             f"(VAE {scale}x, patches of {config.patch_size}); resize the inputs")
        check_sample_size(config, scale, height, width)
        if settings.method not in METHODS:
            raise ValueError(f"settings.method={settings.method!r}: expected one of {METHODS}")
        if settings.sampler not in SAMPLERS:
            raise ValueError(f"settings.sampler={settings.sampler!r}: expected one of {SAMPLERS}")
        temporal, num_frames = self.pipe.vae_scale_factor_temporal, settings.num_frames
        if (num_frames - 1) % temporal or num_frames <= temporal or not 0 < settings.segment_frames <= num_frames:
            raise ValueError(f"settings.num_frames={num_frames}, segment_frames={settings.segment_frames}: num_frames "
                             f"must be {temporal}k+1 with k >= 1 (paper: 49) and at least segment_frames (paper: 46)")
        for name, image in (("first_image", first_image), ("last_image", last_image)):
            if image.shape != (height, width, 3) or image.dtype != np.uint8:
                raise ValueError(f"{name} is {image.dtype} {image.shape}, expected uint8 {(height, width, 3)}; "
                                 "resize the anchor to the video size")
        channels = config.out_channels
        if settings.method == "ggi" and config.in_channels != 3 * channels:
            raise ValueError(f"method='ggi' needs the widened GGI transformer (in_channels={3 * channels}), this "
                             f"one takes in_channels={config.in_channels}: load the GGI weights or use "
                             "method='bidirectional'")
        if settings.method == "ggi" and (edge_frames is None or len(edge_frames) != settings.segment_frames):
            count = None if edge_frames is None else len(edge_frames)
            raise ValueError(f"edge_frames: got {count} edge maps, expected exactly segment_frames="
                             f"{settings.segment_frames} (one HED map h_i per frame of the segment)")
        if edge_frames is not None and any(e.shape != (height, width) for e in edge_frames):
            shapes = sorted({e.shape for e in edge_frames})
            raise ValueError(f"edge_frames have shapes {shapes}, expected (H, W) = {(height, width)} grey maps")
        expected = (latent_frames(num_frames, temporal), channels, height // scale, width // scale)
        if latents is not None and tuple(latents.shape) != expected:
            raise ValueError(f"latents (warped noise) has shape {tuple(latents.shape)}, expected {expected} "
                             "(latent frames, channels, height/8, width/8); warp the noise at this video's size")

    def prepare_directions(self, first_image: np.ndarray, last_image: np.ndarray,
                           edge_frames: Sequence[np.ndarray] | None, settings: GGISettings,
                           generator: torch.Generator | None) -> list[_Direction]:
        """The conditioning of each pass: one for "ggi"; forward (v_0) and time-reversed (v_N) for "bidirectional"."""
        vae, dtype, num_frames = self.pipe.vae, self.pipe.transformer.dtype, settings.num_frames
        if settings.method == "ggi":
            image_latents, edge_latents = conditioning_latents(vae, first_image, last_image, edge_frames, num_frames,
                                                               generator)
            return [_Direction(image_latents.to(dtype), edge_latents.to(dtype))]
        forward = anchor_latents(vae, first_image, num_frames, generator).to(dtype)
        backward = anchor_latents(vae, last_image, num_frames, generator).to(dtype)
        # A widened transformer gets zero edge latents: with untrained edge weights that is the base I2V model.
        edges = torch.zeros_like(forward) if is_widened(self.pipe.transformer) else None
        return [_Direction(forward, edges), _Direction(backward, edges, reverse=True)]

    def predict(self, latents: torch.Tensor, t: torch.Tensor, prompt_embeds: torch.Tensor,
                negative_prompt_embeds: torch.Tensor | None, directions: list[_Direction],
                rotary: tuple[torch.Tensor, torch.Tensor] | None, guidance_scale: float) -> torch.Tensor:
        """The guided model output (v-prediction) for latents (1, T, C, h, w), blended over the directions."""
        scheduler = self.pipe.scheduler
        inputs = torch.cat([model_input(scheduler.scale_model_input(latents.flip(1) if d.reverse else latents, t),
                                        d.image_latents, d.edge_latents) for d in directions])
        embeds = prompt_embeds.expand(len(directions), -1, -1)
        if negative_prompt_embeds is not None:
            inputs = torch.cat([inputs, inputs])
            embeds = torch.cat([negative_prompt_embeds.expand(len(directions), -1, -1), embeds])
        with self.pipe.transformer.cache_context("cond_uncond"):  # one batched pass, as diffusers' CogVideoX
            output = self.pipe.transformer(hidden_states=inputs, encoder_hidden_states=embeds,
                                           timestep=t.expand(inputs.shape[0]), image_rotary_emb=rotary,
                                           return_dict=False)[0].float()
        if negative_prompt_embeds is not None:
            uncond, cond = output.chunk(2)
            output = uncond + guidance_scale * (cond - uncond)
        per_direction = [o.flip(0) if d.reverse else o for o, d in zip(output, directions)]  # o: (T, C, h, w)
        if len(per_direction) == 1:
            return per_direction[0][None]
        # I2V3D / Feng et al.: the forward pass's weight falls linearly from 1 at the first frame to 0 at the last.
        weight = torch.linspace(1.0, 0.0, latents.shape[1], device=output.device)[:, None, None, None]
        return (weight * per_direction[0] + (1 - weight) * per_direction[1])[None]

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        first_image: np.ndarray,
        last_image: np.ndarray,
        edge_frames: Sequence[np.ndarray] | None,
        height: int,
        width: int,
        latents: torch.Tensor | None = None,
        settings: GGISettings = GGISettings(),
        generator: torch.Generator | None = None,
        record_steps: bool = False,
    ) -> GGIOutput:
        """Interpolate one segment between its anchors.

        Args:
            prompt: the text prompt (paper: a BLIP caption of the first frame; CogVideoX needs one).
            first_image, last_image: anchors v_0, v_N, (height, width, 3) uint8.
            edge_frames: h_0..h_N, `settings.segment_frames` (height, width) uint8 HED maps; unused (may be None)
                with method="bidirectional".
            height, width: video size, multiples of 16 (full model: 480 x 720 only).
            latents: the initial noise, (T, C, height/8, width/8) with T = 13 latent frames: the flow-warped noise
                eps_w (Go-with-the-Flow, mixed with fresh noise by its module); None draws Gaussian noise from
                `generator`.
            settings: sampling settings (`GGI_PRESETS`); `settings.method` picks GGI or bidirectional sampling.
            generator: seeds the VAE posterior samples, the noise when `latents` is None, and the sampler.
            record_steps: keep the latents entering every step (tests, diagnostics).

        Method "bidirectional" (I2V3D, Sec. 3.3, after Feng et al. "Explorative inbetweening of time and
        space"): training-free inbetweening with the base I2V model. Each step runs a forward pass conditioned on
        v_0 ([E(v_0), 0, ...]) and a time-reversed pass (latents flipped in time) conditioned on v_N
        ([E(v_N), 0, ...]); the second prediction is flipped back and the two are averaged with the forward
        weight falling linearly from 1 at the first latent frame to 0 at the last. Edge latents are zero (a
        widened transformer) or absent (the base model). With CogVideoX's causal VAE the flip is approximate:
        latent frame 0 stands for 1 pixel frame, the others for 4.
        """
        # 1. Check inputs
        self.check_inputs(first_image, last_image, edge_frames, height, width, latents, settings)
        pipe = self.pipe
        device, dtype = pipe._execution_device, pipe.transformer.dtype
        do_cfg = settings.guidance_scale > 1.0
        # 2. Encode the prompt (+ the empty negative prompt for classifier-free guidance)
        prompt_embeds, negative_prompt_embeds = pipe.encode_prompt(
            prompt, negative_prompt="", do_classifier_free_guidance=do_cfg,
            max_sequence_length=MAX_SEQUENCE_LENGTH, device=device, dtype=dtype)
        # 3. Sampler and timesteps
        pipe.scheduler = self.scheduler(settings.sampler)
        pipe.scheduler.set_timesteps(settings.num_inference_steps, device=device)
        timesteps = pipe.scheduler.timesteps
        # 4. Conditions: anchors (and edges) through the causal VAE
        directions = self.prepare_directions(first_image, last_image, edge_frames, settings, generator)
        # 5. Initial latents: the (warped) noise, (1, T, C, h, w), times the scheduler's initial sigma
        shape = directions[0].image_latents.shape
        noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype) if latents is None \
            else latents[None].to(device, dtype)
        latents = noise * pipe.scheduler.init_noise_sigma
        # 6. 3D rotary positional embeddings for this size
        rotary = (pipe._prepare_rotary_positional_embeddings(height, width, shape[1], device)
                  if pipe.transformer.config.use_rotary_positional_embeddings else None)
        # 7. Denoising loop (CogVideoX's DPM sampler carries the previous x0 prediction, DDIM does not)
        output = GGIOutput(frames=[], method=settings.method)
        old_pred_original_sample = None
        with pipe.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if record_steps:
                    output.step_inputs.append(latents.clone())
                model_output = self.predict(latents, t, prompt_embeds, negative_prompt_embeds if do_cfg else None,
                                            directions, rotary, settings.guidance_scale)
                if isinstance(pipe.scheduler, CogVideoXDPMScheduler):
                    latents, old_pred_original_sample = pipe.scheduler.step(
                        model_output, old_pred_original_sample, t, timesteps[i - 1] if i > 0 else None, latents,
                        generator=generator, return_dict=False)
                else:
                    latents = pipe.scheduler.step(model_output, t, latents, generator=generator, return_dict=False)[0]
                latents = latents.to(dtype)
                progress_bar.update()
                if self.on_step:
                    self.on_step(i + 1, len(timesteps))
        # 8. Decode and keep the segment's frames (the last num_frames - segment_frames repeat v_N)
        output.latents = latents
        video = pipe.video_processor.postprocess_video(video=pipe.decode_latents(latents), output_type="np")[0]
        frames = (np.clip(video, 0.0, 1.0) * 255).round().astype(np.uint8)  # (F, H, W, 3)
        output.frames = list(frames[: settings.segment_frames])
        output.last_frame = frames[-1]
        return output
