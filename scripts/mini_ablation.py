"""Benchmark: a miniature of the paper's Table 3 (GGI's structure condition), trained and scored on the CPU.

    .venv/bin/python scripts/mini_ablation.py --out DIR [--quick] [--workers 3] [--threads 2]

Three GGI models are trained at 64x48 on textured renders of 12 benchmark scenes, with the same budget, the same
initial weights, the same clips, steps and random draws; they differ only in the structure maps they are trained
with (paper Sec. 3.4, Table 3): "hed_s" (the edge detector on the rendered depth picture, the paper's HED-S),
"hed" (the edge detector on the textured frames) and "none" (empty maps). They are scored on the other 4 scenes,
which no phase trains on: from the true first and last textured frames, the inference edge maps (the edge
detector on the untextured geometry's HED input, as `vf3d.preprocess` makes it; empty maps for "none") and the
clip's warped noise, each model generates the clip; its in-between frames are compared with the true renders
(PSNR, SSIM), with the paper's pseudo ground truth (the anchors warped along the exact flows, known region only)
and scored for geometric flicker (`evaluation.flicker`).

The tiny profile's models have random weights, and a random VAE decodes no images. So first a shared autoencoder is
fitted on the training renders (seconds; frozen afterwards): a linear one in CogVideoX's latent layout (8x8 patches,
the first frame alone and then groups of 4 frames, 16 channels; `patch_autoencoder_class`), the top principal
components of the training clips' patches, whitened. Its reconstruction of the held-out clips is the ceiling of every
score. (The tiny CogVideoX VAE itself, fitted by gradient descent, stayed at the clips' mean colour within minutes
of CPU: docs/mini_ablation.md.) The three transformers then start from one seeded initialisation (a larger
CogVideoX transformer than `tiny_cogvideo`'s, `TransformerSize`) and are trained by `vf3d.ggi.training.GGITrainer`
(the tiny preset's 9 frames of which 6 are real, the official per-step warped noise and anchor augmentation).

The budget is a number of steps (`BUDGETS`), not a time, so a rerun gives the same numbers; "full" takes about
20 minutes on an idle 2-core machine. `--out` receives: `renders/` (cached: a rerun renders nothing),
`vae/` (the autoencoder), `variants/<condition>/` (weights, per-video scores), `diagnostics/`, `results.json` (the
table, the curves, the settings, seconds per phase), `curves.png`, `examples.png` and `table.md`. Finished phases are
skipped when their settings are unchanged.
Everything is written atomically; the script refuses an `--out` that holds anything it did not write.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vf3d.common.atomic import (OWNER_MARKER, TMP_PREFIX, atomic_dir, atomic_file, owner_tag,  # noqa: E402
                               recover, write_text_atomic)
from vf3d.common.errors import VF3DInputError  # noqa: E402

CONDITIONS = ("hed_s", "hed", "none")
"""`vf3d.ggi.training.STRUCTURE_CONDITIONS`, in Table 3's order bottom-up: HED-S, HED, '-'."""
PAPER_LABEL = {"hed_s": "HED-S", "hed": "HED", "none": "-"}
TRAIN_SCENES = ("cottage", "lighthouse", "windmill", "living_room", "street", "plaza", "bridge", "village",
                "castle_wall", "terraces", "colonnade", "room_to_garden")
HELD_OUT_SCENES = ("gazebo", "corridor", "harbour", "courtyard_hall")
"""One held-out scene per category of the benchmark (object-centric, indoor, outdoor, transition)."""
WIDTH, HEIGHT = 64, 48
MARKER = ".vf3d-mini-ablation"
"""Written into `--out`: the script writes only into a folder that is new, empty or holds this marker."""
PROMPT = "a video of a static scene"


@dataclass(frozen=True)
class TransformerSize:
    """The ablation's GGI transformer: 4 heads of 32, 4 layers, time embedding 64 (1,259,712 weights), larger than
    tiny_cogvideo's (2 heads of 16, 2 layers, time embedding 2: 37,576 weights)."""

    heads: int = 4
    head_dim: int = 32
    layers: int = 4
    time_embed_dim: int = 64


@dataclass(frozen=True)
class Budget:
    """Everything that decides the numbers. Steps, not seconds."""

    train_scenes: tuple[str, ...] = TRAIN_SCENES
    held_out_scenes: tuple[str, ...] = HELD_OUT_SCENES
    clips_per_train_scene: int = 12
    clips_per_held_out_scene: int = 3
    real_frames: int = 6
    """Frames of a clip (the tiny training preset's 6 real frames, padded to 9 = 3 latent frames)."""
    num_frames: int = 9
    frame_stride: int = 9
    """Trajectory frames between clip frames: 9 x 5 = 45, so a clip's anchors are a paper segment apart (N = 45)."""
    render_samples: int = 8
    ggi_steps: int = 2500
    ggi_batch: int = 4
    """Clips per optimisation step (gradient accumulation, batch 1 each, as `GGITrainer`)."""
    ggi_lr: float = 1e-3
    """The tiny training preset's learning rate (AdamW, constant)."""
    noise_warp: str = "video_rate"
    """`NOISE_WARP_PRESETS` key of the warped noise, in training (every consecutive flow, fresh noise and a random
    degradation at every step, as the official training) and for the held-out clips (degradation 0.5):
    "video_rate" warps at the video's resolution, 3x cheaper per training step on the CPU than the official 4x
    field ("paper"), which the Dagster assets' `noise_warp` option also offers."""
    transformer: TransformerSize = TransformerSize()
    eval_every: int = 250
    """Steps between held-out denoising-loss evaluations (the curves)."""
    eval_loss_samples: int = 2
    sample_seeds: int = 3
    """Generations per held-out clip (seeds of its warped noise; the DDIM sampler itself is deterministic)."""
    sampling_steps: int = 25
    seed: int = 0


BUDGETS = {
    "full": Budget(),
    "quick": Budget(train_scenes=("cottage",), held_out_scenes=("gazebo",), clips_per_train_scene=2,
                    clips_per_held_out_scene=1, render_samples=2, ggi_steps=4, ggi_batch=1,
                    eval_every=2, eval_loss_samples=1, sample_seeds=1, sampling_steps=2,
                    transformer=TransformerSize(heads=2, head_dim=16, layers=1, time_embed_dim=8)),
}


def settings_hash(*parts) -> str:
    blob = json.dumps([asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- phase 1: renders ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    scene: str
    index: int
    start: int
    """First trajectory frame (0-based offset from the scene's frame_start)."""
    seed: int
    """Random textures and light (`vf3d.preprocess.blender.textured`)."""
    stride: int
    frames: int
    samples: int

    @property
    def name(self) -> str:
        return f"{self.scene}_{self.index:02d}"


def clip_specs(budget: Budget, held_out: bool) -> list[ClipSpec]:
    """Deterministic clip positions and texture seeds: from (budget seed, scene, index) alone."""
    from vf3d.benchmark.scenes import SCENES

    scenes = budget.held_out_scenes if held_out else budget.train_scenes
    count = budget.clips_per_held_out_scene if held_out else budget.clips_per_train_scene
    span = budget.frame_stride * (budget.real_frames - 1)
    specs = []
    for scene in scenes:
        frames = SCENES[scene].frames
        if frames <= span:
            raise ValueError(f"{scene}: {frames} frames, a clip spans {span + 1}")
        for k in range(count):
            seq = np.random.SeedSequence([budget.seed, int(hashlib.sha256(scene.encode()).hexdigest()[:8], 16), k,
                                          int(held_out)])
            rng = np.random.default_rng(seq)
            specs.append(ClipSpec(scene, k, int(rng.integers(0, frames - span)), int(rng.integers(0, 2**31 - 1)),
                                  budget.frame_stride, budget.real_frames, budget.render_samples))
    return specs


def strided_shot(scene: str, spec: ClipSpec, folder: Path) -> Path:
    """A copy of the benchmark scene whose frame range is the clip's frames (start, stride): Blender renders only
    those, and `vf3d.preprocess` sees them as consecutive frames (its flows join clip frames)."""
    import bpy

    from vf3d.preprocess.blender import quiet_stdout
    from vf3d.preprocess.blender.scene_io import disable_autoexec

    disable_autoexec()
    with quiet_stdout():
        bpy.ops.wm.open_mainfile(filepath=str(ROOT / "benchmark" / "scenes" / f"{scene}.blend"), load_ui=False,
                                 use_scripts=False)
    blender_scene = bpy.context.scene
    blender_scene.frame_start += spec.start
    blender_scene.frame_step = spec.stride
    blender_scene.frame_end = blender_scene.frame_start + (spec.frames - 1) * spec.stride
    shot = folder / f"{spec.name}.blend"
    with quiet_stdout():
        bpy.ops.wm.save_as_mainfile(filepath=str(shot), copy=True, relative_remap=True)
    return shot


def render_clip(spec: ClipSpec, out: Path, work: Path) -> None:
    """One clip folder: `clip/` (the `save_clip` layout: frames, HED-S structure, flows), `inference_edges/` (the
    tiny profile's edge maps of the untextured geometry, as the pipeline makes them), `geometry.npz` (depth, poses,
    intrinsics), `spec.json`."""
    from PIL import Image

    from vf3d.ggi.training import save_clip
    from vf3d.ggi.training_set import clip_from_render
    from vf3d.models.hed import ClassicalEdgeDetector
    from vf3d.preprocess.hed_input import guidance_edge_maps

    detector = ClassicalEdgeDetector()  # the tiny profile's edge detector (`make_edge_detector("auto", "tiny")`)
    shot = strided_shot(spec.scene, spec, work)
    clip = clip_from_render(shot, WIDTH, HEIGHT, spec.frames, seed=spec.seed, edge_detector=detector,
                            workdir=work / "clip", prompt=PROMPT, samples=spec.samples)
    guidance = work / "clip" / "guidance"
    edges = guidance_edge_maps(guidance, range(spec.frames), detector, (WIDTH, HEIGHT), "frames")
    meta = json.loads((guidance / "meta.json").read_text())
    k = meta["intrinsics"]
    with atomic_dir(out) as tmp:
        save_clip(clip, tmp / "clip")
        (tmp / "inference_edges").mkdir()
        for i, edge in enumerate(edges):
            Image.fromarray(edge).save(tmp / "inference_edges" / f"{i:05d}.png")
        np.savez_compressed(tmp / "geometry.npz", depth=np.load(guidance / "depth.npy")[: spec.frames],
                            c2w=np.asarray(meta["camera_to_world"], np.float64)[: spec.frames],
                            intrinsics=np.array([meta["width"], meta["height"], k["fx"], k["fy"], k["cx"], k["cy"]]))
        (tmp / "spec.json").write_text(json.dumps(asdict(spec)))


RENDER_WORK = "render-work"
"""Blender's scratch folder while clips render: `out/.tmp-render-work.<host>-<pid>.<random>`."""


def render_all(budget: Budget, out: Path, log) -> dict[str, list[Path]]:
    """Render every clip not yet in `out/renders` (a clip folder is reused when its spec.json matches)."""
    folders: dict[str, list[Path]] = {"train": [], "held_out": []}
    recover(out / RENDER_WORK)  # the scratch folders of killed runs
    work = None
    try:
        for split, held_out in (("train", False), ("held_out", True)):
            for spec in clip_specs(budget, held_out):
                folder = out / "renders" / split / spec.name
                spec_file = folder / "spec.json"
                if not (spec_file.is_file() and json.loads(spec_file.read_text()) == asdict(spec)):
                    if work is None:  # named by its owner: a later run removes it if this one is killed
                        work = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{RENDER_WORK}.{owner_tag()}.", dir=out))
                    started = time.perf_counter()
                    render_clip(spec, folder, work)
                    log(f"rendered {split} {spec.name} (start {spec.start}, seed {spec.seed}) "
                        f"{time.perf_counter() - started:.1f} s")
                folders[split].append(folder)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return folders


@dataclass
class EvalClip:
    """A rendered clip with what evaluation needs."""

    name: str
    scene: str
    frames: list[np.ndarray]
    flows: np.ndarray
    valid: np.ndarray
    hed_s: list[np.ndarray]
    inference_edges: list[np.ndarray]
    depth: np.ndarray
    c2w: np.ndarray
    intrinsics: object


def load_eval_clip(folder: Path) -> EvalClip:
    from PIL import Image

    from vf3d.ggi.training import load_clip
    from vf3d.preprocess.camera import Intrinsics

    clip = load_clip(folder / "clip")
    edges = [np.asarray(Image.open(p)) for p in sorted((folder / "inference_edges").glob("*.png"))]
    with np.load(folder / "geometry.npz") as g:
        depth, c2w, k = g["depth"], g["c2w"], g["intrinsics"]
    spec = json.loads((folder / "spec.json").read_text())
    return EvalClip(folder.name, spec["scene"], clip.frames, clip.flows, clip.valid, clip.structure, edges, depth,
                    c2w, Intrinsics(int(k[0]), int(k[1]), *map(float, k[2:])))


# --- phase 2: the shared VAE ------------------------------------------------------------------------------------


def padded(frames: list[np.ndarray], num_frames: int) -> list[np.ndarray]:
    """The clip as GGI encodes it: its frames, then its last frame repeated up to `num_frames`."""
    return [*frames, *[frames[-1]] * (num_frames - len(frames))]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def reconstruct(vae, frames: list[np.ndarray], num_frames: int) -> list[np.ndarray]:
    """E then D of the padded clip (the posterior's mode), the clip's own frames back as uint8."""
    import torch

    from vf3d.ggi.pipeline import to_pixels

    with torch.no_grad():
        latents = vae.encode(to_pixels(padded(frames, num_frames))).latent_dist.mode()
        video = vae.decode(latents).sample[0].clamp(-1, 1)
    return [((f.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8) for f in video.unbind(1)][:len(frames)]


PATCH = 8
"""CogVideoX's spatial compression."""
TEMPORAL = 4
"""CogVideoX's temporal compression: the first frame alone, then groups of 4."""


def patch_autoencoder_class():
    """`PatchPCAAutoencoder`: a linear autoencoder with the interface and latent layout of CogVideoX's causal VAE
    (`AutoencoderKLCogVideoX`), as far as `vf3d.ggi` and diffusers' I2V pipeline use it.

    Latent frame 0 encodes pixel frame 0 alone, latent frame k >= 1 frames 4k-3..4k; each latent cell (16 channels)
    is the projection of its 8x8 pixel patch (x 1 or 4 frames, RGB) on the top 16 principal components of such
    patches in the training renders, the mean patch subtracted, each divided by its standard deviation (whitened:
    every channel has unit variance, as a KL-regularised VAE's roughly have; with raw components a diffusion error
    of a given size in a weak channel would decode as a strong pattern); decoding is the inverse. The posterior is a
    point mass (log-variance -30, std 3e-7), so sampling it is taking its mode, as the tiny training preset does.
    `block_out_channels` only makes diffusers compute the 8x scale factor (2 ** (4 - 1)).
    """
    import torch
    from diffusers.configuration_utils import ConfigMixin, register_to_config
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKLOutput
    from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
    from diffusers.models.modeling_utils import ModelMixin

    class PatchPCAAutoencoder(ModelMixin, ConfigMixin):
        @register_to_config
        def __init__(self, latent_channels: int = 16, temporal_compression_ratio: int = TEMPORAL,
                     block_out_channels: tuple[int, ...] = (1, 1, 1, 1), scaling_factor: float = 1.0,
                     invert_scale_latents: bool = False):
            super().__init__()
            single, group = PATCH * PATCH * 3, temporal_compression_ratio * PATCH * PATCH * 3
            for name, size in (("image", single), ("group", group)):
                for part, shape in (("mean", (size,)), ("basis", (size, latent_channels)),
                                    ("scale", (latent_channels,))):
                    self.register_parameter(f"{name}_{part}",
                                            torch.nn.Parameter(torch.ones(shape), requires_grad=False))

        def _spans(self, frames: int) -> list[tuple[int, int]]:
            t = self.config.temporal_compression_ratio
            if (frames - 1) % t:
                raise ValueError(f"{frames} frames: expected 1 + {t}k")
            return [(0, 1)] + [(1 + t * k, 1 + t * (k + 1)) for k in range((frames - 1) // t)]

        def encode(self, x: torch.Tensor) -> AutoencoderKLOutput:
            b, c, _, h, w = x.shape
            latents = []
            for start, end in self._spans(x.shape[2]):
                n = end - start  # (B, C, n, h/8, 8, w/8, 8) -> (B, h/8, w/8, n * 8 * 8 * C)
                patches = x[:, :, start:end].reshape(b, c, n, h // PATCH, PATCH, w // PATCH, PATCH)
                patches = patches.permute(0, 3, 5, 2, 4, 6, 1).reshape(b, h // PATCH, w // PATCH, -1)
                name = "image" if n == 1 else "group"
                mean, basis, scale = (getattr(self, f"{name}_{part}") for part in ("mean", "basis", "scale"))
                z = (patches - mean) @ basis / scale
                latents.append(z.permute(0, 3, 1, 2)[:, :, None])
            mean = torch.cat(latents, dim=2)
            return AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(
                torch.cat([mean, torch.full_like(mean, -30.0)], dim=1)))

        def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput:
            b, _, t, h, w = z.shape
            frames = []
            for k in range(t):
                name, n = ("image", 1) if k == 0 else ("group", self.config.temporal_compression_ratio)
                mean, basis, scale = (getattr(self, f"{name}_{part}") for part in ("mean", "basis", "scale"))
                cells = (z[:, :, k].permute(0, 2, 3, 1) * scale) @ basis.T + mean
                cells = cells.reshape(b, h, w, n, PATCH, PATCH, 3).permute(0, 6, 3, 1, 4, 2, 5)
                frames.append(cells.reshape(b, 3, n, h * PATCH, w * PATCH))
            return DecoderOutput(sample=torch.cat(frames, dim=2))

    return PatchPCAAutoencoder


def principal_components(rows: list[np.ndarray], count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, top `count` principal directions (columns) and their standard deviations for the stacked rows, by the
    covariance's eigendecomposition in float64 (deterministic; each direction's largest entry made positive)."""
    data = np.concatenate(rows)
    mean = data.mean(axis=0)
    centred = data - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / len(data))
    order = np.argsort(values)[::-1][:count]
    basis = vectors[:, order]
    basis *= np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(count)])
    return mean, basis, np.sqrt(np.maximum(values[order], 1e-12))


def to_unit(frames: list[np.ndarray]) -> np.ndarray:
    """(F, H, W, 3) in [-1, 1] from uint8 RGB frames or grey maps (repeated, as `to_pixels`)."""
    video = np.stack([np.repeat(f[..., None], 3, axis=-1) if f.ndim == 2 else f for f in frames])
    return video.astype(np.float64) / 127.5 - 1.0


def patch_rows(video: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) -> one row per 8x8 cell: (H/8 * W/8, F * 8 * 8 * 3), in the autoencoder's order."""
    f, h, w, c = video.shape
    return video.reshape(f, h // PATCH, PATCH, w // PATCH, PATCH, c).transpose(1, 3, 0, 2, 4, 5).reshape(
        (h // PATCH) * (w // PATCH), -1)


def fit_vae(budget: Budget, train_clips, held_out: list[EvalClip], out: Path, log, key: str = "") -> dict:
    """Fit the shared autoencoder (`patch_autoencoder_class`) on the training clips as GGI encodes them: their
    frames, HED-S maps and HED maps, padded to `num_frames`, forwards and time-reversed (the end anchor is encoded
    on its own), and mirrored; single frames for latent frame 0, 4-frame groups for the others. Then its scaling
    factor makes the training frames' latents unit-variance (as CogVideoX's factor). Writes `out/` (weights, held-out
    reconstruction PSNR)."""
    import torch
    from safetensors.torch import save_file

    from vf3d.ggi.pipeline import to_pixels
    from vf3d.models.hed import ClassicalEdgeDetector

    started = time.perf_counter()
    detector = ClassicalEdgeDetector()
    singles, groups = [], []
    for clip in train_clips:
        for images in (clip.frames, clip.structure, [detector(f) for f in clip.frames]):
            real = to_unit(images[:budget.real_frames])
            for video in (real, real[:, :, ::-1]):
                singles += [patch_rows(video[i:i + 1]) for i in range(len(video))]
                for ordered in (video, video[::-1]):
                    full = np.concatenate([ordered, np.repeat(ordered[-1:], budget.num_frames - len(ordered), 0)])
                    groups += [patch_rows(full[s:s + TEMPORAL]) for s in range(1, budget.num_frames, TEMPORAL)]
    vae = patch_autoencoder_class()()
    with torch.no_grad():
        for name, rows in (("image", singles), ("group", groups)):
            for part, value in zip(("mean", "basis", "scale"), principal_components(rows, 16)):
                getattr(vae, f"{name}_{part}").copy_(torch.from_numpy(value))
        latents = torch.cat([vae.encode(to_pixels(padded(c.frames, budget.num_frames))).latent_dist.mode().flatten()
                             for c in train_clips])
    scaling = float(1.0 / latents.std())
    between = slice(1, budget.real_frames - 1)
    recon: dict[str, list[float]] = {"all_frames": [], "in_between": [], "inference_edges": []}
    for clip in held_out:
        frames = reconstruct(vae, clip.frames, budget.num_frames)
        recon["all_frames"].append(float(np.mean([psnr(a, b) for a, b in zip(frames, clip.frames)])))
        recon["in_between"].append(float(np.mean([psnr(a, b) for a, b in zip(frames[between], clip.frames[between])])))
        edges = reconstruct(vae, clip.inference_edges, budget.num_frames)
        recon["inference_edges"].append(float(np.mean([psnr(a[..., 0], b)
                                                       for a, b in zip(edges, clip.inference_edges)])))
    info = {"kind": "patch PCA autoencoder", "scaling_factor": scaling,
            "latent_std_before_scaling": float(latents.std()),
            "latent_mean": float(latents.mean()),
            "held_out_reconstruction_psnr": {k: float(np.mean(v)) for k, v in recon.items()},
            "held_out_reconstruction_psnr_per_clip": recon, "fit_rows": {"single": int(sum(len(r) for r in singles)),
                                                                          "group": int(sum(len(r) for r in groups))},
            "seconds": time.perf_counter() - started, "key": key}
    with atomic_dir(out) as tmp:
        save_file({k: v.contiguous().float() for k, v in vae.state_dict().items()}, tmp / "vae.safetensors")
        (tmp / "vae.json").write_text(json.dumps(info, indent=1))
    log(f"autoencoder fitted on {info['fit_rows']['single']} + {info['fit_rows']['group']} patches "
        f"({info['seconds']:.1f} s)")
    return info


def fitted_components(vae_dir: Path, size: TransformerSize, seed: int):
    """tiny_cogvideo(0)'s T5, tokenizer and scheduler, the fitted VAE (frozen, rescaled) and a widened CogVideoX
    transformer of `size`, seeded: the same initial weights for every variant."""
    import torch
    from diffusers import CogVideoXTransformer3DModel
    from safetensors.torch import load_file

    from vf3d.models.cogvideo import MAX_SEQUENCE_LENGTH, tiny_cogvideo, widen_patch_embed

    components = tiny_cogvideo(0)
    components.vae = patch_autoencoder_class()(
        scaling_factor=json.loads((vae_dir / "vae.json").read_text())["scaling_factor"])
    components.vae.load_state_dict(load_file(vae_dir / "vae.safetensors"))
    components.vae.eval()
    torch.manual_seed(seed)
    latent_channels = components.vae.config.latent_channels
    transformer = CogVideoXTransformer3DModel(  # tiny_cogvideo's transformer, larger (`TransformerSize`)
        num_attention_heads=size.heads, attention_head_dim=size.head_dim, in_channels=2 * latent_channels,
        out_channels=latent_channels, time_embed_dim=size.time_embed_dim,
        text_embed_dim=components.text_encoder.config.d_model, num_layers=size.layers, sample_width=8,
        sample_height=6, sample_frames=49, patch_size=2, temporal_compression_ratio=4,
        max_text_seq_length=MAX_SEQUENCE_LENGTH, use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=False)
    components.transformer = widen_patch_embed(transformer, latent_channels).eval()
    return components


# --- phase 3: the three GGI variants, trained and sampled --------------------------------------------------------


def training_settings(budget: Budget):
    """The tiny training preset at this budget (AdamW, constant lr, per-step warped noise as the official
    training, anchors noise-augmented in pixel space); one checkpoint, at the end."""
    from vf3d.ggi.noise_warp import NOISE_WARP_PRESETS
    from vf3d.ggi.training import GGI_TRAINING_PRESETS

    return replace(GGI_TRAINING_PRESETS["tiny"], steps=budget.ggi_steps, learning_rate=budget.ggi_lr,
                   gradient_accumulation=budget.ggi_batch, checkpoint_every=budget.ggi_steps,
                   schedule_steps=budget.ggi_steps, num_frames=budget.num_frames, real_frames=budget.real_frames,
                   gradient_checkpointing=False, seed=budget.seed,
                   noise_warp=replace(NOISE_WARP_PRESETS[budget.noise_warp], flow_stride=1))


def sampling_settings(budget: Budget, condition: str):
    """The pipeline's settings for a 6-frame clip: the model's DDIM sampler, no classifier-free guidance (every
    clip has one prompt: the models never saw another, so the empty prompt's prediction means nothing)."""
    from vf3d.ggi.pipeline import GGISettings

    return GGISettings(num_inference_steps=budget.sampling_steps, guidance_scale=1.0, num_frames=budget.num_frames,
                       segment_frames=budget.real_frames, structure=condition)


def inference_maps(clip: EvalClip, condition: str) -> list[np.ndarray]:
    """The structure maps a variant samples with: the geometry's edge maps, or empty maps for "none" (as
    `vf3d.ggi.inbetween.generate_video`)."""
    return [np.zeros_like(e) for e in clip.inference_edges] if condition == "none" else list(clip.inference_edges)


def held_out_noise(clip: EvalClip, seed: int, budget: Budget):
    """The clip's warped noise as the `warped_noise` asset makes it (degradation 0.5) with the preset
    `budget.noise_warp`, seeded."""
    import torch

    from vf3d.ggi.noise_warp import NOISE_WARP_PRESETS, warped_noise_for_segment

    return warped_noise_for_segment(clip.flows, clip.valid, channels=16, degradation=0.5,
                                    num_frames=budget.num_frames, segment_frames=budget.real_frames,
                                    generator=torch.Generator().manual_seed(10_000 + seed),
                                    settings=NOISE_WARP_PRESETS[budget.noise_warp])


def score_video(frames: list[np.ndarray], clip: EvalClip) -> dict:
    """The in-between frames (the anchors excluded) against the true renders (PSNR, SSIM over the whole frame) and
    against the paper's pseudo ground truth (the true anchors warped along the exact flows, known region only);
    geometric flicker of the whole clip (`evaluation.flicker`)."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    from evaluation.flicker import geometric_flicker
    from evaluation.pseudo_gt import masked_psnr, pseudo_gt

    last = len(clip.frames) - 1
    between = range(1, last)
    as_tensor = lambda images: torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).double() / 255.0  # noqa: E731
    generated, true = as_tensor([frames[i] for i in between]), as_tensor([clip.frames[i] for i in between])
    ssim = structural_similarity_index_measure(generated, true, data_range=1.0, reduction="none")
    anchors = {0: clip.frames[0], last: clip.frames[last]}
    pgt_psnr, pgt_ssim = [], []
    for k, i in enumerate(between):
        target, known = pseudo_gt(i, anchors, clip.depth, clip.c2w, clip.intrinsics)
        if not known.any():
            continue
        mask = torch.from_numpy(known)
        pgt_psnr.append(masked_psnr(generated[k], as_tensor([target])[0], mask))
        _, ssim_map = structural_similarity_index_measure((generated[k] * mask)[None], (as_tensor([target]) * mask),
                                                          data_range=1.0, return_full_image=True)
        pgt_ssim.append(float(ssim_map.mul(mask).sum() / (mask.sum() * ssim_map.shape[1])))
    flicker = geometric_flicker(frames, clip.depth, clip.c2w, clip.intrinsics)
    return {"psnr": float(np.mean([psnr(frames[i], clip.frames[i]) for i in between])),
            "ssim": float(ssim.mean()),
            "psnr_pgt": float(np.mean(pgt_psnr)) if pgt_psnr else math.nan,
            "ssim_pgt": float(np.mean(pgt_ssim)) if pgt_ssim else math.nan,
            "flicker_mae": flicker["flicker_mae"]}


def sample_held_out(components, budget: Budget, held_out: list[EvalClip], condition: str, maps_for
                    ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Generate every held-out clip with every seed from its true anchors, `maps_for(clip)` and its warped noise;
    the scores of each video, and the videos of seed 0."""
    import torch

    from vf3d.ggi.pipeline import GGIPipeline

    pipeline = GGIPipeline(components)
    pipeline.set_progress_bar_config(disable=True)
    settings = sampling_settings(budget, condition)
    videos, previews = [], {}
    with torch.no_grad():
        for clip in held_out:
            for seed in range(budget.sample_seeds):
                result = pipeline(PROMPT, clip.frames[0], clip.frames[-1], maps_for(clip), HEIGHT, WIDTH,
                                  latents=held_out_noise(clip, seed, budget), settings=settings,
                                  generator=None)  # conditions encoded with the posterior's mode, as in training
                videos.append({"clip": clip.name, "scene": clip.scene, "seed": seed,
                               **score_video(result.frames, clip)})
                if seed == 0:
                    previews[clip.name] = np.stack(result.frames)
    return videos, previews


def run_variant(condition: str, budget: Budget, out: str, train_folders: list[str], held_out_folders: list[str],
                threads: int) -> dict:
    """Train one variant from the shared initialisation, then sample every held-out clip with every seed."""
    import torch

    from vf3d.ggi.training import GGITrainer, TrainingClip, load_clip, with_structure_condition
    from vf3d.models.hed import ClassicalEdgeDetector

    torch.set_num_threads(threads)
    out = Path(out)
    started = time.perf_counter()
    components = fitted_components(out / "vae", budget.transformer, budget.seed)
    trainer = GGITrainer(components, training_settings(budget))
    detector = ClassicalEdgeDetector()  # "hed": the tiny profile's detector on the textured frames
    clips = [with_structure_condition(load_clip(Path(f) / "clip"), condition, detector) for f in train_folders]
    held_out = [load_eval_clip(Path(f)) for f in held_out_folders]
    batches = trainer.prepare_all(clips)
    held_out_batches = trainer.prepare_all([TrainingClip(c.frames, c.flows, c.valid, inference_maps(c, condition),
                                                         PROMPT) for c in held_out])
    curve = [(0, trainer.evaluate(held_out_batches, budget.eval_loss_samples))]

    def progress(step: int, loss: float) -> None:
        if step % budget.eval_every == 0 or step == budget.ggi_steps:
            curve.append((step, trainer.evaluate(held_out_batches, budget.eval_loss_samples)))
            print(f"[{condition}] step {step}/{budget.ggi_steps} train loss {loss:.4f} held-out loss "
                  f"{curve[-1][1]:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)

    checkpoints = out / "checkpoints" / condition
    clear_checkpoints(checkpoints)  # a fresh run, not a resume
    losses = trainer.train(None, checkpoints, progress, batches=batches)
    train_seconds = time.perf_counter() - started
    videos, previews = sample_held_out(components, budget, held_out, condition,
                                       lambda clip: inference_maps(clip, condition))
    result = {"condition": condition, "train_losses": losses, "held_out_loss_curve": curve, "videos": videos,
              "train_seconds": train_seconds, "sample_seconds": time.perf_counter() - started - train_seconds,
              "transformer_parameters": sum(p.numel() for p in components.transformer.parameters())}
    with atomic_dir(out / "variants" / condition) as tmp:
        trainer.export(tmp / "ggi_weights.safetensors", losses)
        np.savez_compressed(tmp / "previews.npz", **previews)
        (tmp / "result.json").write_text(json.dumps({**result, "key": variant_key(budget)}, indent=1))
    clear_checkpoints(checkpoints)
    return result


def clear_checkpoints(folder: Path) -> None:
    """Remove a training's checkpoint folder, only when everything in it is a checkpoint the trainer wrote."""
    from vf3d.ggi.training import CHECKPOINT_PREFIX

    if not folder.is_dir():
        return
    foreign = [e.name for e in folder.iterdir() if not e.name.startswith(TMP_PREFIX) and not (
        e.is_dir() and e.name.startswith(CHECKPOINT_PREFIX) and (e / OWNER_MARKER).is_file())]
    if foreign:
        raise VF3DInputError(folder, f"holds files the trainer did not write ({', '.join(sorted(foreign)[:3])}); "
                                     "move them away")
    shutil.rmtree(folder)


def variant_key(budget: Budget) -> str:
    return settings_hash(budget, "variant-v1")


def vae_key(budget: Budget) -> str:
    fields = ("train_scenes", "clips_per_train_scene", "real_frames", "num_frames", "frame_stride", "render_samples",
              "seed", "held_out_scenes",
              "clips_per_held_out_scene")
    return settings_hash({k: getattr(budget, k) for k in fields}, "vae-v1")


# --- diagnostics: why the structured variants score what they score -----------------------------------------------


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else math.nan


def map_agreement(held_out: list[EvalClip]) -> dict:
    """How alike each training-time map and the inference map of the same held-out frame are (Pearson correlation
    of the two 64x48 maps, mean over frames), and how much of each frame they light up (mean level / 255)."""
    from vf3d.models.hed import ClassicalEdgeDetector

    detector = ClassicalEdgeDetector()
    pairs = {"hed_s_vs_inference": [], "hed_vs_inference": [], "hed_s_vs_hed": []}
    levels = {"inference": [], "hed_s": [], "hed": []}
    for clip in held_out:
        for edge, depth_edge, frame in zip(clip.inference_edges, clip.hed_s, clip.frames):
            texture_edge = detector(frame)
            pairs["hed_s_vs_inference"].append(correlation(depth_edge, edge))
            pairs["hed_vs_inference"].append(correlation(texture_edge, edge))
            pairs["hed_s_vs_hed"].append(correlation(depth_edge, texture_edge))
            for name, image in (("inference", edge), ("hed_s", depth_edge), ("hed", texture_edge)):
                levels[name].append(float(image.mean() / 255.0))
    return {"correlation": {k: float(np.nanmean(v)) for k, v in pairs.items()},
            "mean_level": {k: float(np.mean(v)) for k, v in levels.items()}}


DIAGNOSTIC_ROWS = {
    "hed_s_with_depth_edges": ("hed_s", ("HED-S model, sampled with the held-out clips' HED-S maps (its training "
                                         "kind of map; diagnostic)")),
    "hed_with_texture_edges": ("hed", ("HED model, sampled with HED of the true textured in-between frames (its "
                                       "training kind of map, unknowable at inference; diagnostic)")),
}


def input_weight_norms(out: Path) -> dict[str, dict[str, float]]:
    """Per variant, the norm of the patch embedding's weights on each input: the noisy latents, the anchors' latents
    V and the structure latents H (zero at the start for all three: the widened channels start at zero), i.e. how
    much each trained model listens to each input."""
    from safetensors.torch import load_file

    norms = {}
    for condition in CONDITIONS:
        weight = load_file(out / "variants" / condition / "ggi_weights.safetensors")["patch_embed.proj.weight"]
        channels = weight.shape[1] // 3
        norms[condition] = {name: float(weight[:, k * channels:(k + 1) * channels].norm())
                            for k, name in enumerate(("noisy_latents", "anchor_latents", "structure_latents"))}
    return norms


def diagnostic_row(name: str, budget: Budget, out: str, held_out_folders: list[str], threads: int) -> list[dict]:
    """One `DIAGNOSTIC_ROWS` row: the trained model of its condition, sampled with its training kind of maps."""
    import torch

    from vf3d.models.cogvideo import load_ggi_weights
    from vf3d.models.hed import ClassicalEdgeDetector

    torch.set_num_threads(threads)
    condition = DIAGNOSTIC_ROWS[name][0]
    detector = ClassicalEdgeDetector()
    maps = {"hed_s_with_depth_edges": lambda clip: list(clip.hed_s),
            "hed_with_texture_edges": lambda clip: [detector(f) for f in clip.frames]}[name]
    components = fitted_components(Path(out) / "vae", budget.transformer, budget.seed)
    load_ggi_weights(components.transformer, Path(out) / "variants" / condition / "ggi_weights.safetensors")
    return sample_held_out(components, budget, [load_eval_clip(Path(f)) for f in held_out_folders], condition,
                           maps)[0]


def diagnostics(budget: Budget, held_out_folders: list[Path], out: Path, workers: int, threads: int, log) -> dict:
    """The trained structured models sampled with the kind of maps they were trained on, instead of the geometry's
    edge maps (the same clips, noise and seeds), and how alike the kinds of maps are: separates "structure does not
    help at this scale" from "the maps at inference are not the maps of training"."""
    cached = cached_json(out / "diagnostics" / "result.json", variant_key(budget))
    if cached is not None:
        return cached
    started = time.perf_counter()
    names = list(DIAGNOSTIC_ROWS)
    jobs = [(name, budget, str(out), [str(f) for f in held_out_folders]) for name in names]
    rows = dict(zip(names, run_jobs(diagnostic_row, jobs, workers, threads)))
    log("diagnostics sampled")
    info = {"rows": rows, "seconds": time.perf_counter() - started, "key": variant_key(budget)}
    with atomic_dir(out / "diagnostics") as tmp:
        (tmp / "result.json").write_text(json.dumps(finite_or_null(info), indent=1, allow_nan=False))
    return info


def run_jobs(function, jobs: list[tuple], workers: int, threads: int) -> list:
    """`function(*job, threads_each)` for every job: in this process one after the other (workers 1), else side by
    side in spawned processes (torch's threads split among them)."""
    workers = max(1, min(workers, len(jobs)))
    each = max(1, threads // workers)
    if workers == 1:
        return [function(*job, each) for job in jobs]
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(function, *zip(*[(*job, each) for job in jobs])))


# --- phase 4: reference rows, table, curves --------------------------------------------------------------------


def reference_rows(budget: Budget, held_out: list[EvalClip], out: Path) -> dict[str, list[dict]]:
    """Rows that need no GGI model: the fitted VAE's reconstruction of the true clip (what any variant could reach
    at best), the anchors cross-faded over time (no model at all), and the true renders' own flicker."""
    from evaluation.flicker import geometric_flicker

    vae = fitted_components(out / "vae", budget.transformer, budget.seed).vae
    rows: dict[str, list[dict]] = {"vae_reconstruction": [], "anchor_crossfade": [], "true_renders": []}
    for clip in held_out:
        last = len(clip.frames) - 1
        first, end = (clip.frames[0].astype(np.float64), clip.frames[last].astype(np.float64))
        fade = [((1 - i / last) * first + i / last * end).round().astype(np.uint8) for i in range(last + 1)]
        for name, frames in (("vae_reconstruction", reconstruct(vae, clip.frames, budget.num_frames)),
                             ("anchor_crossfade", fade)):
            rows[name].append({"clip": clip.name, "scene": clip.scene, "seed": 0, **score_video(frames, clip)})
        rows["true_renders"].append({"clip": clip.name, "scene": clip.scene, "seed": 0, "psnr": math.nan,
                                     "ssim": math.nan, "psnr_pgt": math.nan, "ssim_pgt": math.nan, "flicker_mae":
                                     geometric_flicker(clip.frames, clip.depth, clip.c2w, clip.intrinsics)[
                                         "flicker_mae"]})
    return rows


PAIRS = (("hed_s", "none"), ("hed", "none"), ("hed_s", "hed"))
METRIC_COLUMNS = ("psnr", "ssim", "psnr_pgt", "ssim_pgt", "flicker_mae")
HEADERS = {"psnr": "PSNR↑ (true)", "ssim": "SSIM↑ (true)", "psnr_pgt": "PSNR↑ (pseudo-GT)",
           "ssim_pgt": "SSIM↑ (pseudo-GT)", "flicker_mae": "Flicker↓"}


def metric(video: dict, name: str) -> float:
    value = video[name]
    return math.nan if value is None else float(value)  # null in a cached JSON: NaN


MIN_CONTENT_STD = 2.0
"""A held-out clip is scored only if its true frames vary by at least this much (standard deviation in 8-bit
levels): the textured renders of closed interiors are black (the renderer lights them by sun and sky only), and a
black clip has no picture to generate. The rule holds for every row alike; the GGI rows over all clips are in the
results too."""


def content_clips(held_out: list[EvalClip]) -> list[str]:
    return [c.name for c in held_out if float(np.stack(c.frames).std()) >= MIN_CONTENT_STD]


def summarise(videos: list[dict], clips: list[str] | None = None) -> dict:
    """Per metric: mean over `clips` (all by default; each clip's value = its mean over seeds), the standard error
    over clips, the number of clips, and the per-scene means. NaN (no value) is left out; +inf is kept."""
    summary = {}
    clips = sorted({v["clip"] for v in videos} if clips is None else set(clips))
    videos = [v for v in videos if v["clip"] in clips]
    for name in METRIC_COLUMNS:
        per_clip = np.array([np.mean([metric(v, name) for v in videos if v["clip"] == c]) for c in clips])
        finite = per_clip[~np.isnan(per_clip)]
        summary[name] = {
            "mean": float(finite.mean()) if finite.size else math.nan,
            "se": float(finite.std(ddof=1) / math.sqrt(finite.size)) if finite.size > 1 else math.nan,
            "clips": int(finite.size),
            "per_scene": {s: float(np.mean([metric(v, name) for v in videos if v["scene"] == s]))
                          for s in sorted({v["scene"] for v in videos})}}
    return summary


def paired(videos: list[dict], reference: list[dict], clips: list[str]) -> dict:
    """Per metric, variant minus reference over the same clips and seeds (same noise): mean and standard error
    over `clips`, and in how many clips the variant is better."""
    key = lambda v: (v["clip"], v["seed"])  # noqa: E731
    ref = {key(v): v for v in reference}
    result = {}
    for name in METRIC_COLUMNS:
        clips = sorted(clips)
        diffs = np.array([np.mean([metric(v, name) - metric(ref[key(v)], name) for v in videos if v["clip"] == c])
                          for c in clips])
        diffs = diffs[~np.isnan(diffs)]
        better = int((diffs < 0).sum() if name == "flicker_mae" else (diffs > 0).sum())
        result[name] = {"mean": float(diffs.mean()) if diffs.size else math.nan,
                          "se": float(diffs.std(ddof=1) / math.sqrt(diffs.size)) if diffs.size > 1 else math.nan,
                          "better_clips": better, "clips": int(diffs.size)}
    return result


def cell(value: dict, digits: int) -> str:
    if math.isnan(value["mean"]):
        return "-"
    if math.isinf(value["mean"]):
        return "∞"
    se = f" ± {value['se']:.{digits}f}" if math.isfinite(value.get("se", math.nan)) else ""
    return f"{value['mean']:.{digits}f}{se}"


DIGITS = {"psnr": 2, "ssim": 3, "psnr_pgt": 2, "ssim_pgt": 3, "flicker_mae": 2}


def markdown_table(results: dict) -> str:
    from evaluation.metrics import PAPER_TABLE3

    lines = ["| row | " + " | ".join(HEADERS[m] for m in METRIC_COLUMNS) + " | paper Table 3: PSNR↑ | SSIM↑ |",
             "|---|" + "---|" * (len(METRIC_COLUMNS) + 2)]
    for condition in ("none", "hed", "hed_s"):
        summary = results["variants"][condition]["summary"]
        paper = PAPER_TABLE3[PAPER_LABEL[condition]]
        lines.append(f"| GGI, structure '{PAPER_LABEL[condition]}' ({condition}) | "
                     + " | ".join(cell(summary[m], DIGITS[m]) for m in METRIC_COLUMNS)
                     + f" | {paper['psnr']:.3f} | {paper['ssim']:.3f} |")
    for name, label in (("vae_reconstruction", "fitted autoencoder's reconstruction (ceiling)"),
                        ("anchor_crossfade", "anchors cross-faded (no model)"), ("true_renders", "true renders")):
        summary = results["references"][name]["summary"]
        lines.append(f"| {label} | " + " | ".join(cell(summary[m], DIGITS[m]) for m in METRIC_COLUMNS) + " | | |")
    for name, (_, label) in DIAGNOSTIC_ROWS.items():
        summary = results["diagnostics"]["rows"][name]["summary"]
        lines.append(f"| {label} | " + " | ".join(cell(summary[m], DIGITS[m]) for m in METRIC_COLUMNS) + " | | |")
    if results["excluded_clips"]:
        for condition in ("none", "hed", "hed_s"):
            summary = results["variants"][condition]["summary_all_clips"]
            lines.append(f"| GGI '{PAPER_LABEL[condition]}', all {summary['psnr']['clips']} clips (black ones "
                         "included) | " + " | ".join(cell(summary[m], DIGITS[m]) for m in METRIC_COLUMNS) + " | | |")
    lines += ["", (f"Scored: {len(results['scored_clips'])} held-out clips x {results['budget']['sample_seeds']} "
                   f"seeds, mean ± standard error over clips; left out (black renders, no picture to generate): "
                   f"{', '.join(results['excluded_clips']) or 'none'}.")]
    lines += ["", "| paired difference (same clips, noise, seeds) | "
              + " | ".join(HEADERS[m] for m in METRIC_COLUMNS) + " |", "|---|" + "---|" * len(METRIC_COLUMNS)]
    labels = {**{f"{a}-{b}": f"{PAPER_LABEL[a]} − {PAPER_LABEL[b]}" for a, b in PAIRS},
              **{f"{name}-none": f"{PAPER_LABEL[c]} with its training kind of maps − -"
                 for name, (c, _) in DIAGNOSTIC_ROWS.items()}}
    for key, label in labels.items():
        diff = results["paired"][key]
        lines.append(f"| {label} (clips better / all) | "
                     + " | ".join(f"{cell(diff[m], DIGITS[m] + 1)} ({diff[m]['better_clips']}/{diff[m]['clips']})"
                                  for m in METRIC_COLUMNS) + " |")
    agreement = results["diagnostics"]["map_agreement"]
    lines += ["", ("Scored held-out frames' maps, correlation with the inference edge maps (mean over frames): HED-S "
                   f"{agreement['correlation']['hed_s_vs_inference']:.2f}, HED "
                   f"{agreement['correlation']['hed_vs_inference']:.2f} (HED-S vs HED "
                   f"{agreement['correlation']['hed_s_vs_hed']:.2f}); mean level / 255: inference "
                   f"{agreement['mean_level']['inference']:.2f}, HED-S {agreement['mean_level']['hed_s']:.2f}, HED "
                   f"{agreement['mean_level']['hed']:.2f}."),
              "", "Patch-embedding weight norm on the structure latents (noisy latents, anchor latents): "
              + "; ".join(f"{PAPER_LABEL[c]} {n['structure_latents']:.2f} ({n['noisy_latents']:.2f}, "
                          f"{n['anchor_latents']:.2f})"
                          for c, n in results["diagnostics"]["input_weight_norms"].items())
              + ". Training loss, mean of the last 250 steps: "
              + ", ".join(f"{PAPER_LABEL[c]} {v:.3f}" for c, v in
                          results["diagnostics"]["train_loss_last_250_steps"].items())
              + "; final held-out loss: " + ", ".join(f"{PAPER_LABEL[c]} {v:.3f}" for c, v in
                                                     results["diagnostics"]["held_out_loss_final"].items()) + "."]
    return "\n".join(lines) + "\n"


def plot_curves(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"hed_s": "tab:blue", "hed": "tab:orange", "none": "tab:green"}
    figure, axes = plt.subplots(1, 2, figsize=(8.5, 2.9), dpi=80)
    for condition in ("hed_s", "hed", "none"):
        variant = results["variants"][condition]
        losses = np.array(variant["train_losses"])
        window = max(1, min(25, len(losses) // 5))
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        label = f"{PAPER_LABEL[condition]} ({condition})"
        axes[0].plot(np.arange(window, len(losses) + 1), smooth, color=colours[condition], lw=1, label=label)
        steps, values = zip(*variant["held_out_loss_curve"])
        axes[1].plot(steps, values, color=colours[condition], marker="o", ms=3, lw=1, label=label)
    axes[0].set(title=f"training loss (moving mean of {window} steps)", xlabel="step", ylabel="loss", yscale="log")
    axes[1].set(title="held-out loss (inference maps)", xlabel="step", yscale="log")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)


def plot_examples(held_out: list[EvalClip], out: Path, path: Path) -> None:
    """The first held-out clip of each scene (seed 0), at the videos' own 64x48 pixels: the true renders, each
    variant's video (as the paper's Fig. 12), the inference edge maps the structured variants saw, and the maps of
    the same frames of the kinds they were trained on (HED-S: depth edges; HED: edges of the textured frames)."""
    from PIL import Image, ImageDraw

    from vf3d.models.hed import ClassicalEdgeDetector

    detector = ClassicalEdgeDetector()

    previews = {c: np.load(out / "variants" / c / "previews.npz") for c in CONDITIONS}
    firsts = [next(c for c in held_out if c.scene == s) for s in dict.fromkeys(c.scene for c in held_out)]
    labels = ["true renders", "HED-S (hed_s)", "HED (hed)", "- (none)", "inference edges", "HED-S maps",
              "HED maps"]
    margin, gap, title = 96, 8, 14
    width = len(firsts[0].frames) * WIDTH
    block_h = title + len(labels) * HEIGHT
    columns = min(2, len(firsts))
    rows = -(-len(firsts) // columns)
    sheet = Image.new("RGB", (columns * (margin + width + gap), rows * (block_h + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, clip in enumerate(firsts):
        x0, y0 = (k % columns) * (margin + width + gap) + margin, (k // columns) * (block_h + gap)
        strips = [np.concatenate(clip.frames, axis=1)] + [np.concatenate(list(previews[c][clip.name]), axis=1)
                                                          for c in ("hed_s", "hed", "none")]
        strips += [np.repeat(np.concatenate(maps, axis=1)[..., None], 3, axis=-1)
                   for maps in (clip.inference_edges, clip.hed_s, [detector(f) for f in clip.frames])]
        sheet.paste(Image.fromarray(np.concatenate(strips, axis=0)), (x0, y0 + title))
        draw.text((x0, y0 + 1), f"{clip.name}: frames 0-5, 0 and 5 are the anchors", fill=(0, 0, 0))
        for r, label in enumerate(labels):
            draw.text((x0 - margin + 2, y0 + title + r * HEIGHT + HEIGHT // 2 - 5), label, fill=(0, 0, 0))
    with atomic_file(path) as tmp:
        sheet.quantize(256).save(tmp, format="PNG", optimize=True)


# --- driver --------------------------------------------------------------------------------------------------------


def finite_or_null(value):
    """NaN and infinities as JSON null (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def prepare_out(out: Path) -> None:
    """`out` must be new, empty, or written by this script (it holds `MARKER`)."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: {out}: not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise SystemExit(f"error: {out}: holds files this script did not write (no {MARKER}); choose a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / MARKER, "written by scripts/mini_ablation.py\n")
    except OSError as exc:
        raise SystemExit(f"error: {out}: cannot write there ({exc.strerror})")


def cached_json(path: Path, key: str) -> dict | None:
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("key") == key:
            return data
    return None


def positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for renders, weights, results (reused)")
    parser.add_argument("--quick", action="store_true", help="a tiny budget (smoke test, development)")
    parser.add_argument("--workers", type=positive, default=3, help="variant trainings run side by side (1 = in turn)")
    parser.add_argument("--threads", type=positive, default=2, help="torch threads in all (the VAE fit; split by workers)")
    args = parser.parse_args(argv)
    budget = BUDGETS["quick" if args.quick else "full"]
    out = args.out.resolve()
    prepare_out(out)
    import torch

    torch.set_num_threads(args.threads)
    begun = time.perf_counter()
    log = lambda message: print(f"[{time.perf_counter() - begun:6.0f} s] {message}", flush=True)  # noqa: E731
    seconds = {}

    started = time.perf_counter()
    folders = render_all(budget, out, log)
    seconds["renders (this run)"] = time.perf_counter() - started
    log(f"renders: {len(folders['train'])} training clips, {len(folders['held_out'])} held-out clips")

    from vf3d.ggi.training import load_clip

    train_clips = [load_clip(f / "clip") for f in folders["train"]]
    held_out = [load_eval_clip(f) for f in folders["held_out"]]
    vae_info = cached_json(out / "vae" / "vae.json", vae_key(budget))
    if vae_info is None:
        vae_info = fit_vae(budget, train_clips, held_out, out / "vae", log, vae_key(budget))
    seconds["vae fit"] = vae_info["seconds"]
    log(f"autoencoder: held-out reconstruction PSNR {vae_info['held_out_reconstruction_psnr']['in_between']:.2f} dB "
        f"(in-between frames of every held-out clip, black ones included)")

    variants = {c: cached_json(out / "variants" / c / "result.json", variant_key(budget)) for c in CONDITIONS}
    missing = [c for c in CONDITIONS if variants[c] is None]
    if missing:
        log(f"training {', '.join(missing)} ({max(1, min(args.workers, len(missing)))} at a time)")
        jobs = [(c, budget, str(out), [str(f) for f in folders["train"]], [str(f) for f in folders["held_out"]])
                for c in missing]
        variants.update(zip(missing, run_jobs(run_variant, jobs, args.workers, args.threads)))
    if (out / "checkpoints").is_dir() and not any((out / "checkpoints").iterdir()):
        (out / "checkpoints").rmdir()  # ours, emptied by each variant
    for c in CONDITIONS:
        seconds[f"train {c}"] = variants[c]["train_seconds"]
        seconds[f"sample+score {c}"] = variants[c]["sample_seconds"]

    started = time.perf_counter()
    references = reference_rows(budget, held_out, out)
    seconds["reference rows"] = time.perf_counter() - started
    diagnostic = diagnostics(budget, folders["held_out"], out, args.workers, args.threads, log)
    seconds["diagnostics"] = diagnostic["seconds"]
    scored = content_clips(held_out)
    results = {
        "budget": asdict(budget), "train_clips": [f.name for f in folders["train"]],
        "held_out_clips": [f.name for f in folders["held_out"]], "scored_clips": scored,
        "excluded_clips": [c.name for c in held_out if c.name not in scored],
        "vae": {k: v for k, v in vae_info.items() if k != "key"},
        "variants": {c: {**{k: v for k, v in variants[c].items() if k != "key"},
                         "summary": summarise(variants[c]["videos"], scored),
                         "summary_all_clips": summarise(variants[c]["videos"])} for c in CONDITIONS},
        "references": {name: {"videos": rows, "summary": summarise(rows, scored)}
                       for name, rows in references.items()},
        "diagnostics": {"rows": {name: {"videos": rows, "summary": summarise(rows, scored)}
                                 for name, rows in diagnostic["rows"].items()},
                        "map_agreement": map_agreement([c for c in held_out if c.name in scored]),
                        "seconds": diagnostic["seconds"],
                        "input_weight_norms": input_weight_norms(out),
                        "train_loss_last_250_steps": {c: float(np.mean(variants[c]["train_losses"][-250:]))
                                                      for c in CONDITIONS},
                        "held_out_loss_final": {c: variants[c]["held_out_loss_curve"][-1][1] for c in CONDITIONS}},
        "paired": {**{f"{a}-{b}": paired(variants[a]["videos"], variants[b]["videos"], scored) for a, b in PAIRS},
                   **{f"{name}-none": paired(rows, variants["none"]["videos"], scored)
                      for name, rows in diagnostic["rows"].items()}},
        "seconds": seconds, "threads": args.threads, "workers": args.workers,
        "command": " ".join(["scripts/mini_ablation.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    table = markdown_table(results)
    write_text_atomic(out / "table.md", table)
    plot_curves(results, out / "curves.png")
    plot_examples([c for c in held_out if c.name in scored], out, out / "examples.png")
    seconds["total (this run)"] = time.perf_counter() - begun
    write_text_atomic(out / "results.json", json.dumps(finite_or_null(results), indent=1, allow_nan=False))
    print(table)
    log(f"seconds: {json.dumps({k: round(v, 1) for k, v in seconds.items()})}")
    return results


if __name__ == "__main__":
    try:
        main()
    except VF3DInputError as exc:  # a folder of --out holding what this script did not write
        raise SystemExit(f"error: {exc}")
