"""GGI module training (paper Sec. 3.4, Eq. 3), with checkpoints that survive a kill.

The widened CogVideoX I2V transformer is fine-tuned (a Go-with-the-Flow LoRA, when loaded, stays frozen) on
clips of static scenes: V = [E(x_0), 0.., E(x_N)], H = E(HED-S maps) (HED of depth, paper Fig. 9), initial
noise = the clip's flow-warped noise, warped and degraded anew at every step as the official training does.
As in CogVideoX's training: v-prediction, the x0 recovered from it is compared with the clip's latents under
the weight 1 / (1 - alpha_bar_t); the anchors are noise-augmented with sigma = exp(N(-3, 0.5)); AdamW at a
constant lr 5e-5, betas (0.9, 0.95), weight decay 1e-4; 16 clips per optimisation step (paper: batch 16).
The math of the conditions is imported from `vf3d.ggi.pipeline` and `vf3d.ggi.noise_warp`, shared with inference.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from typing import Literal
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from diffusers.optimization import get_scheduler
from PIL import Image
from safetensors.torch import save_file

from vf3d.common.atomic import OWNER_MARKER, TMP_PREFIX, atomic_dir, atomic_file, write_text_atomic
from vf3d.common.hashing import content_hash
from vf3d.ggi.noise_warp import NOISE_WARP_PRESETS, NoiseWarpSettings, padded_flows, warped_noise_for_segment
from vf3d.ggi.pipeline import (check_sample_size, conditioning_posteriors, conditions_from_posteriors,
                               encode_pixels, encode_posterior, model_input, posterior_latents, to_pixels)
from vf3d.models.cogvideo import MAX_SEQUENCE_LENGTH, GGIComponents, ggi_state_dict, load_ggi_weights
from vf3d.models.hed import EdgeDetector

CHECKPOINT_PREFIX = "checkpoint-"
RUN_PREFIX = "run-"


TRAINING_NOISE_WARP = replace(NOISE_WARP_PRESETS["paper"], flow_stride=1)
"""The official training's warp (fork `training_ggi/exps/T073-000.py` l. 517-572): RAFT flows between EVERY
consecutive frame (l. 560-567: one warp per frame, so `flow_stride=1`), a `NoiseWarper` field `resize_flow` = 8x
the half-resolution frames, i.e. 4x the video (l. 545-553), read out by plain 32x area downscaling (l. 97-100,
522), the warp step with the default `warp_kwargs={}` (l. 557). That is the preprocessing's `NoiseWarper` and
step (`assets/mk_noise.py`), which the `paper` preset of `NoiseWarpSettings` holds; only the cadence differs."""


@dataclass(frozen=True)
class GGITrainingSettings:
    """Training settings (official code's values unless noted)."""

    steps: int = 1300
    """Optimisation steps (paper: 1,300 iterations; the released checkpoint is `checkpoint-1350`)."""
    gradient_accumulation: int = 16
    """Clips per optimisation step, batch 1 each, gradients averaged: the effective batch on one GPU (paper Sec. 4:
    batch size 16). Several GPUs (accelerate) give per-device batch x devices x accumulation: the official
    `T073-000.yaml` has train_batch_size 1 and gradient_accumulation_steps 4 (l. 16-17), and the script logs
    `train_batch_size * num_processes * gradient_accumulation_steps` (T073-000.py l. 458), so the paper's 16 is
    1 x 4 GPUs x 4. Here, one process: 16 = 1 x 1 x 16."""
    lr_scheduler: str = "constant"
    """diffusers' `get_scheduler` name. Official: constant, `T073-000.py` imports `get_scheduler` (l. 50) but never
    builds or steps one, only `optimizer.step()` (l. 727), and logs `args.learning_rate` as the lr (l. 766).
    "cosine_with_restarts" with `warmup_steps=800`, `schedule_steps=10_000` is the schedule the yaml names
    (`T073-000.yaml` l. 22-24) and the `paper_yaml_schedule` preset."""
    warmup_steps: int = 0
    """Linear learning-rate warm-up (official: none; the yaml's unused lr_warmup_steps: 800). diffusers' "constant"
    ignores it."""
    schedule_steps: int = 10_000
    """Length of the learning-rate schedule, for the decaying schedulers (the yaml's max_train_steps: 10,000)."""
    max_grad_norm: float = 1.0
    """Gradient clipping (official max_grad_norm: 1.0)."""
    learning_rate: float = 5e-5
    """AdamW learning rate (official `T073-000.yaml` l. 18: 0.00005)."""
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-4
    anchor_noise_log_mean: float = -3.0
    """Anchor latents are augmented with sigma = exp(N(mean, std))."""
    anchor_noise_log_std: float = 0.5
    noise: Literal["per_step", "per_clip"] = "per_step"
    """"per_step" (official `T073-000.py` l. 544-576, inside the step loop): every step warps a fresh noise field
    along the clip's flows and degrades it anew, from a generator seeded by (seed, step, micro-batch), so a
    resumed run draws the same noise. "per_clip": one warped noise per clip, computed once and reused (faster)."""
    degradation: float | None = None
    """Warped-noise mix with fresh noise, `mix_with_fresh`. None (official `T073-000.py` l. 575-576:
    `alpha = random.random()`): drawn uniform in [0, 1) for every clip at every step; a number fixes it (0.5:
    the inference value)."""
    noise_warp: NoiseWarpSettings = TRAINING_NOISE_WARP
    """How the training noise is warped (`TRAINING_NOISE_WARP`, the official training's); any
    `NOISE_WARP_PRESETS` entry, e.g. "latent_stride" (our previous training noise: one checked warp per 4 composed
    flows)."""
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    gradient_checkpointing: bool = True
    num_frames: int = 49
    real_frames: int = 46
    """Clip frames used; the last is repeated up to `num_frames` in the video, the structure maps and (as a still
    camera) the flows, so the end anchor sits at frame 45 as at inference (official
    `training_ggi/mydataset_depthhed_mask.py`: 46 frames + 3 repeats). `num_frames`: 49 real frames."""
    anchor_noise_space: Literal["pixel", "latent"] = "pixel"
    """Where the first/last frames are noise-augmented: "pixel", on the frames before VAE encoding (official
    `training_ggi/exps/T073-000.py`), or "latent", on their latents."""
    posterior: Literal["sample", "mode"] = "sample"
    """How clips, anchors and structure maps become latents. "sample" (official `T073-000.py` l. 597, 602, 617, 626:
    `latent_dist.sample()` at every step): a fresh draw from each VAE posterior at every step, drawn (diffusers'
    way) from the step's noise generator; the posteriors of the clip and its structure maps are encoded once per
    clip, the noise-augmented anchors at every step as there. "mode": the posterior means, the same every step
    (the tiny preset: the random tiny VAE's posterior has std ~1 against means ~0.15, draws would bury the clip)."""
    autocast: bool = True
    """Run the forward pass under bf16/fp16 autocast when the weights are half precision (official: accelerate's
    bf16 mixed precision on bf16 weights); False runs the half-precision weights as they are."""
    seed: int = 0


GGI_TRAINING_PRESETS = {
    "paper": GGITrainingSettings(),
    "paper_yaml_schedule": GGITrainingSettings(lr_scheduler="cosine_with_restarts", warmup_steps=800),
    "tiny": GGITrainingSettings(steps=6, learning_rate=1e-3, checkpoint_every=2, num_frames=9, real_frames=6,
                                gradient_accumulation=1, schedule_steps=6, posterior="mode"),
}
"""`paper_yaml_schedule`: the paper preset with the warm-up and cosine schedule `T073-000.yaml` names but the
script never builds (800 linear warm-up steps, then one cosine cycle over 10,000 steps)."""


def noise_generator(seed: int, step: int, micro: int) -> torch.Generator:
    """The generator of a training step's noise: seeded from (seed, step, micro-batch) alone, so the noise of a
    step is the same whether the run was resumed or not."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, micro]).generate_state(1)[0]))


@dataclass
class TrainingClip:
    """One training clip: frames x_0..x_N, forward flows with valid masks, structure maps (HED-S)."""

    frames: list[np.ndarray]  # (H, W, 3) uint8
    flows: np.ndarray  # (N, H, W, 2) float32, f_i->i+1
    valid: np.ndarray  # (N, H, W) bool
    structure: list[np.ndarray]  # (H, W) uint8
    prompt: str = "a video of a static scene"


STRUCTURE_CONDITIONS = ("hed_s", "hed", "none")
"""GGI's structure condition during training (paper Table 3, Fig. 12): "hed_s" (the paper's: HED of a depth
picture, stored in the clip), "hed" (HED of the RGB frames themselves: texture edges leak in and details go
missing at inference, 15.935 PSNR vs HED-S's 16.739), "none" (empty maps: no structure, 14.160)."""


def with_structure_condition(clip: TrainingClip, condition: str, edge_detector: EdgeDetector | None = None
                             ) -> TrainingClip:
    """The clip with the structure maps of `condition` (`STRUCTURE_CONDITIONS`); "hed" needs the edge detector
    HED-S used (controlnet_aux's HED at 512 px)."""
    if condition not in STRUCTURE_CONDITIONS:
        raise ValueError(f"structure condition {condition!r}: expected one of {', '.join(STRUCTURE_CONDITIONS)}")
    if condition == "hed_s":
        return clip
    if condition == "none":
        structure = [np.zeros_like(s) for s in clip.structure]
    elif edge_detector is None:
        raise ValueError("structure condition 'hed': needs the edge detector to run on the RGB frames")
    else:
        structure = [edge_detector(frame) for frame in clip.frames]
    return replace(clip, structure=structure)


def save_clip(clip: TrainingClip, folder: Path) -> None:
    """Clip folder: frames/*.png, structure/*.png, flows.npz, clip.json (written atomically)."""
    with atomic_dir(folder) as tmp:
        for sub, images in (("frames", clip.frames), ("structure", clip.structure)):
            (tmp / sub).mkdir()
            for i, image in enumerate(images):
                Image.fromarray(image).save(tmp / sub / f"{i:05d}.png")
        np.savez_compressed(tmp / "flows.npz", forward=clip.flows, forward_valid=clip.valid)
        (tmp / "clip.json").write_text(json.dumps({"prompt": clip.prompt, "frames": len(clip.frames)}))


def load_clip(folder: Path) -> TrainingClip:
    read = lambda sub: [np.asarray(Image.open(p)) for p in sorted((folder / sub).glob("*.png"))]  # noqa: E731
    with np.load(folder / "flows.npz") as flows:
        return TrainingClip(read("frames"), flows["forward"], flows["forward_valid"], read("structure"),
                            json.loads((folder / "clip.json").read_text())["prompt"])


def training_run_key(training_set_version: str, settings: GGITrainingSettings, base_model: str) -> str:
    """The identity of a training run: its clips (their data version), its settings and its base model.

    Checkpoints live under `run-<key>/`; a run resumes only from checkpoints of the same key, so new clips or
    new settings train from the start instead of returning the weights of the previous inputs.
    """
    blob = json.dumps({"training_set": training_set_version, "settings": asdict(settings),
                       "base_model": base_model}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint (complete = renamed into place by `atomic_dir`)."""
    found = sorted(out_dir.glob(f"{CHECKPOINT_PREFIX}*"))
    return found[-1] if found else None


def remove_other_runs(out_dir: Path, keep: Path) -> None:
    """Delete the checkpoints of earlier runs (other inputs) in `out_dir`: only `run-*` folders that hold
    nothing but vf3d-written checkpoints are touched."""
    def written_here(entry: Path) -> bool:
        return entry.name.startswith(TMP_PREFIX) or (
            entry.is_dir() and entry.name.startswith(CHECKPOINT_PREFIX) and (entry / OWNER_MARKER).is_file())

    for run in out_dir.glob(f"{RUN_PREFIX}*"):
        if run != keep and run.is_dir() and all(written_here(e) for e in run.iterdir()):
            shutil.rmtree(run, ignore_errors=True)


class GGITrainer:
    def __init__(self, components: GGIComponents, settings: GGITrainingSettings):
        self.components, self.settings = components, settings
        self.pipe = components.pipeline()
        transformer = components.transformer
        for model in (components.vae, components.text_encoder):
            model.requires_grad_(False)
        for name, parameter in transformer.named_parameters():
            parameter.requires_grad_("lora" not in name)  # the Go-with-the-Flow LoRA stays frozen
        if settings.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        self.optimizer = torch.optim.AdamW([p for p in transformer.parameters() if p.requires_grad],
                                           lr=settings.learning_rate, betas=settings.betas,
                                           weight_decay=settings.weight_decay)
        self.lr_scheduler = get_scheduler(settings.lr_scheduler, self.optimizer, num_warmup_steps=settings.warmup_steps,
                                          num_training_steps=settings.schedule_steps, num_cycles=1)
        self.step = 0

    @torch.no_grad()
    def prepare(self, clip: TrainingClip, generator: torch.Generator) -> dict:
        """Latents and conditions of a clip (frozen VAE and text encoder: computed once) and its flows for the
        noise (`draw_noise`); with `noise="per_clip"`, its one warped noise."""
        s, vae, pipe = self.settings, self.components.vae, self.pipe
        n = min(len(clip.frames), s.real_frames, s.num_frames)
        frames, structure = clip.frames[:n], clip.structure[:n]
        check_sample_size(self.components.transformer.config, pipe.vae_scale_factor_spatial, *frames[0].shape[:2])
        pad = [frames[-1]] * (s.num_frames - n)
        posteriors = conditioning_posteriors(vae, frames[0], frames[-1], structure, s.num_frames)
        posteriors["video"] = encode_posterior(vae, to_pixels([*frames, *pad]))
        image_latents, edge_latents = conditions_from_posteriors(vae, posteriors)
        x0 = posterior_latents(vae, posteriors["video"])
        height, width = frames[0].shape[:2]
        embeds, _ = pipe.encode_prompt(clip.prompt, do_classifier_free_guidance=False,
                                       max_sequence_length=MAX_SEQUENCE_LENGTH, device=x0.device)
        rotary = (pipe._prepare_rotary_positional_embeddings(height, width, x0.shape[1], x0.device)
                  if self.components.transformer.config.use_rotary_positional_embeddings else None)
        batch = dict(x0=x0, image_latents=image_latents, edge_latents=edge_latents, embeds=embeds, rotary=rotary,
                     anchor_pixels=to_pixels([frames[0], frames[-1]])[0].transpose(0, 1).to(x0),
                     flows=torch.as_tensor(clip.flows[: n - 1]), valid=torch.as_tensor(clip.valid[: n - 1]))
        if s.posterior == "sample":
            batch["posteriors"] = posteriors
        if s.noise == "per_clip":
            batch["noise"] = self.draw_noise(batch, generator)
        return batch

    @torch.no_grad()
    def draw_noise(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """The warped noise of a clip, degraded: (1, 13, C, H/8, W/8) for the paper's 49 frames.

        Official (`T073-000.py` l. 544-576): a `NoiseWarper` carries fresh noise along the flow between every
        consecutive frame of the 49 (46 + 3 repeats, l. 540), each warped frame is read out by area downscaling
        (l. 559-570), `rp.resize_list(noises, 13)` keeps frames round(i * 48 / 12) = 0, 4, ..., 48 (rp `r.py`
        `resize_list`), and `mix_new_noise(noise, alpha)` mixes in fresh noise with alpha = random.random().
        Here the same, on the clip's own flows (`settings.noise_warp`), alpha from `generator` when
        `settings.degradation` is None.
        """
        s, x0 = self.settings, batch["x0"]
        flows, valid = batch["flows"], batch["valid"]
        cadence = {}
        if s.noise_warp.flow_stride == 1:  # every consecutive flow of the 49 frames: the repeats' (still) ones too,
            flows, valid = padded_flows(flows, valid, s.num_frames - 1)  # as the official pads before RAFT (l. 540)
        elif s.noise_warp.flow_stride is None:  # the inference cadence, over the clip's real frames
            cadence = {"segment_frames": flows.shape[0] + 1}
        alpha = float(torch.rand((), generator=generator)) if s.degradation is None else s.degradation
        noise = warped_noise_for_segment(flows, valid, channels=x0.shape[2], degradation=alpha,
                                         num_frames=s.num_frames, generator=generator, settings=s.noise_warp,
                                         device=x0.device, **cadence)  # the 4x field: on the GPU when there is one
        return noise[None].to(x0)

    def loss(self, batch: dict, t: torch.Tensor, anchor_sigma: torch.Tensor, augment: torch.Tensor,
             noise: torch.Tensor, posterior: torch.Generator | None = None) -> torch.Tensor:
        """Eq. 3 in CogVideoX's v-prediction form, at timestep t, with the warped `noise` (`draw_noise`); latents
        drawn from the VAE posteriors with `posterior` (`settings.posterior` "sample"), else their modes."""
        scheduler, vae = self.pipe.scheduler, self.components.vae
        x0, image_latents, edge_latents = batch["x0"], batch["image_latents"], batch["edge_latents"]
        if posterior is not None:
            image_latents, edge_latents = conditions_from_posteriors(vae, batch["posteriors"], posterior)
            x0 = posterior_latents(vae, batch["posteriors"]["video"], posterior)
        noisy = scheduler.add_noise(x0, noise, t)
        if self.settings.anchor_noise_space == "pixel":  # v_0, v_N noised as images, then encoded (official)
            noisy_anchors = batch["anchor_pixels"] + anchor_sigma * augment  # (2, 3, H, W)
            image_latents = torch.zeros_like(image_latents)
            image_latents[:, :1] = encode_pixels(vae, noisy_anchors[0][None, :, None], posterior)
            image_latents[:, -1:] = encode_pixels(vae, noisy_anchors[1][None, :, None], posterior)
        else:
            anchors = (image_latents.abs().sum(dim=(2, 3, 4), keepdim=True) > 0).to(x0)  # E(v_0), E(v_N) frames
            image_latents = image_latents + anchors * anchor_sigma * augment
        half = x0.dtype in (torch.bfloat16, torch.float16)  # the components' dtype (bf16 on a GPU)
        with torch.autocast(x0.device.type, dtype=x0.dtype if half else torch.bfloat16,
                            enabled=self.settings.autocast and half):
            output = self.components.transformer(
                hidden_states=model_input(noisy, image_latents, edge_latents),
                encoder_hidden_states=batch["embeds"], timestep=t, image_rotary_emb=batch["rotary"],
                return_dict=False)[0]
        predicted_x0 = scheduler.get_velocity(output, noisy, t)  # v-prediction -> x0
        weight = 1.0 / (1.0 - scheduler.alphas_cumprod.to(x0.device)[t])
        return (weight * (predicted_x0.float() - x0.float()) ** 2).mean()

    @torch.no_grad()
    def evaluate(self, batches: Sequence[dict], samples: int = 4, seed: int = 1234) -> float:
        """Mean loss over fixed draws (the same for every call): comparable before and after training."""
        generator = torch.Generator().manual_seed(seed)
        return float(np.mean([self.loss(b, *self._draw(b, generator, generator)).item()
                              for b in batches for _ in range(samples)]))

    def _draw(self, batch: dict, generator: torch.Generator, noise_generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator | None]:
        """Timestep, anchor sigma and augmentation from `generator`; the noise (per step) from `noise_generator`,
        which then draws the step's latents from their posteriors (returned for `loss`; None: the modes)."""
        s = self.settings
        t = torch.randint(0, self.pipe.scheduler.config.num_train_timesteps, (1,), generator=generator)
        sigma = torch.exp(torch.randn((), generator=generator) * s.anchor_noise_log_std + s.anchor_noise_log_mean)
        shape = batch["anchor_pixels" if s.anchor_noise_space == "pixel" else "image_latents"].shape
        augment = torch.randn(shape, generator=generator)
        noise = batch["noise"] if s.noise == "per_clip" else self.draw_noise(batch, noise_generator)
        return t, sigma, augment.to(batch["x0"]), noise, noise_generator if s.posterior == "sample" else None

    def save_checkpoint(self, out_dir: Path, losses: list[float], generator: torch.Generator) -> None:
        with atomic_dir(out_dir / f"{CHECKPOINT_PREFIX}{self.step:06d}") as tmp:
            save_file(ggi_state_dict(self.components.transformer), tmp / "transformer.safetensors")
            torch.save({"optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict(),
                        "generator": generator.get_state()}, tmp / "training_state.pt")
            (tmp / "state.json").write_text(json.dumps({"step": self.step, "losses": losses}))
        for old in sorted(out_dir.glob(f"{CHECKPOINT_PREFIX}*"))[: -self.settings.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def resume(self, checkpoint: Path, generator: torch.Generator) -> list[float]:
        load_ggi_weights(self.components.transformer, checkpoint / "transformer.safetensors")
        # weights_only: the artifact volume may be shared (Kubernetes); a checkpoint never runs code.
        state = torch.load(checkpoint / "training_state.pt", map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        generator.set_state(state["generator"])
        info = json.loads((checkpoint / "state.json").read_text())
        self.step = info["step"]
        return info["losses"]

    def prepare_all(self, clips: Sequence[TrainingClip]) -> list[dict]:
        """`prepare` every clip, each with its own seeded generator (the same batches on every call)."""
        return [self.prepare(c, torch.Generator().manual_seed(self.settings.seed + k)) for k, c in enumerate(clips)]

    def train(self, clips: Sequence[TrainingClip] | None, out_dir: Path,
              progress: Callable[[int, float], None] | None = None, batches: Sequence[dict] | None = None,
              run_key: str | None = None) -> list[float]:
        """Train for `settings.steps`, resuming from the newest checkpoint of the same run; returns all losses.

        `batches`: already `prepare_all`-ed clips (then `clips` may be None), so a caller that also evaluates
        does not encode and warp every clip twice. `run_key` (`training_run_key`): checkpoints go to
        `out_dir/run-<key>/` and only those are resumed; when the run completes, other runs' checkpoints in
        `out_dir` are removed. None: `out_dir` itself holds the checkpoints (the caller keys it).
        """
        s = self.settings
        run_dir = out_dir / f"{RUN_PREFIX}{run_key}" if run_key else out_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        generator = torch.Generator().manual_seed(s.seed)
        batches = list(batches) if batches is not None else self.prepare_all(clips)
        checkpoint = latest_checkpoint(run_dir)
        losses = self.resume(checkpoint, generator) if checkpoint else []
        self.components.transformer.train()
        while self.step < s.steps:
            self.optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for micro in range(s.gradient_accumulation):  # batch 1 per clip, gradients accumulated
                batch = batches[(self.step * s.gradient_accumulation + micro) % len(batches)]
                loss = self.loss(batch, *self._draw(batch, generator, noise_generator(s.seed, self.step, micro)))
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(f"GGI training loss is {loss.item()} at step {self.step}")
                (loss / s.gradient_accumulation).backward()
                step_loss += loss.item() / s.gradient_accumulation
            torch.nn.utils.clip_grad_norm_([p for p in self.components.transformer.parameters() if p.requires_grad],
                                           s.max_grad_norm)
            self.optimizer.step()
            self.lr_scheduler.step()
            self.step += 1
            losses.append(step_loss)
            if progress:
                progress(self.step, losses[-1])
            if self.step % s.checkpoint_every == 0 or self.step == s.steps:
                self.save_checkpoint(run_dir, losses, generator)
        self.components.transformer.eval()
        if run_key:
            remove_other_runs(out_dir, keep=run_dir)
        return losses

    def export(self, weights_file: Path, losses: Sequence[float]) -> None:
        """The GGI weights file `load_full_ggi` reads (the widened transformer's state dict), plus its log."""
        with atomic_file(weights_file) as tmp:
            save_file(ggi_state_dict(self.components.transformer), tmp)
        write_text_atomic(weights_file.with_suffix(".json"), json.dumps(
            {"settings": asdict(self.settings), "losses": list(losses)}, indent=1))


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m vf3d.ggi.training --clips DIR --out DIR [--preset tiny]`: train (resuming) on saved clips."""
    import argparse

    from vf3d.models.cogvideo import tiny_cogvideo

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--clips", type=Path, required=True, help="folder of clip folders (`save_clip` layout)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder (resumed if it has checkpoints)")
    parser.add_argument("--preset", choices=sorted(GGI_TRAINING_PRESETS), default="tiny")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    settings = GGI_TRAINING_PRESETS[args.preset]
    trainer = GGITrainer(tiny_cogvideo(0), settings)
    clips = [load_clip(folder) for folder in sorted(p for p in args.clips.iterdir() if (p / "clip.json").exists())]
    losses = trainer.train(clips, args.out, lambda step, loss: print(f"step {step} loss {loss:.6f}", flush=True),
                           run_key=training_run_key(content_hash(args.clips), settings, "tiny_cogvideo(0)"))
    trainer.export(args.out / "ggi_weights.safetensors", losses)


if __name__ == "__main__":
    main()
