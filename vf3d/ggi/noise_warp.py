"""Warped noise for Geometry-guided Generative Inbetweening (paper Sec. 3.3; Go-with-the-Flow, Burgert et al. 2025).

The noise of frame 0 is i.i.d. N(0, 1); each flow f_i->j carries frame i's noise to frame j so that a point's
noise travels with it, while every frame stays i.i.d. N(0, 1) per element. The state per pixel is (dx, dy,
density w, noise n). Two warp steps (`NoiseWarpSettings.warp`):

"official" (`warp_noise_step_official`, the `paper` preset): Go-with-the-Flow's `warp_xyωc` as the official
preprocessing runs it (fork `assets/mk_noise.py` l. 231-398, `xy_mode='none'`):
- contract: every particle moves to the pixel nearest p + f(p) (l. 314-329); a particle without a valid flow
  (official: the -10000 sentinel of pixels with no correspondence, l. 537-547) or leaving the image stays on
  its own pixel with zero noise and density 1 (`init`, l. 271-275, 325); a pixel receiving particles combines
  them as sum(w*n) / sqrt(sum(w^2)) with w summed (l. 378-381);
- expand: a pixel nothing moved to pulls, nearest, from the pixel nearest q - f(q) (l. 294-299), with NO
  check that the source's own flow lands near q, so a disoccluded region copies whatever lies a flow away;
- regaussianize by unique value (l. 146-184, 366): every set of copies of one value (a particle's scattered
  copy and its expand copies; all zero entries together) becomes value/sqrt(k) + z - mean(z), z fresh N(0, 1),
  density w/k (l. 371). Zero entries become fresh noise of density 1/(number of zero entries);
- densities: divided by their mean, plus 1e-5, raised to the power 0.9999 (l. 384-396).

"checked" (`warp_noise_step`, vf3d's variant): the same contract and expand (ties rounded up; optional sub-pixel
particles), but an expand source must be a valid particle whose own landing point lies within
`MAX_EXPAND_ERROR` pixels of q (else fresh noise); invalid particles vanish; pixels receiving nothing get fresh
noise of density 1; densities divided by their mean only.

Both are linear in Gaussians with flow-determined coefficients, so each frame is i.i.d. N(0, 1) (the official
zero group up to its 1/n mean term). Readout at latent size (`latent_noise`, `warped_noise_for_segment`) keeps
CogVideoX's temporal layout; `mix_with_fresh` applies the degradation of Sec. 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

MAX_EXPAND_ERROR = 2.0
"""Largest distance (pixels, per axis) between an expand target and its source's landing point."""


@dataclass
class WarpState:
    """Per-pixel particle state of one frame, channels last so scatter/gather move whole pixel rows."""

    noise: torch.Tensor  # (H, W, C) float32, i.i.d. N(0, 1)
    weight: torch.Tensor  # (H, W) float32 density w > 0
    offset: torch.Tensor  # (H, W, 2) float32 sub-pixel (dx, dy) of the particle from the pixel centre


WarpAlgorithm = Literal["official", "checked"]
WARP_ALGORITHMS: tuple[str, ...] = ("official", "checked")


@dataclass(frozen=True)
class NoiseWarpSettings:
    """How a segment's noise is warped; the defaults (`paper`) are the official preprocessing
    (`assets/mk_noise.py` and the script in `assets/exampleA/town.blend` of the fork), which made the noise the
    Go-with-the-Flow LoRA and the GGI model were trained on."""

    resolution_scale: int = 4
    """Noise field size / video size. Official: 8x the half-resolution flows, i.e. 4x the video (2880x1920 for
    720x480), read out by 32x area downscaling (the VAE's 8 x this scale). 1 = video resolution."""
    flow_stride: int | None = None
    """Which frames get a noise frame, and so which flows each warp spans. None (official, `paper`): the 13
    noise frames of a 46-frame segment are its frames `np.linspace(0, 45, 13).astype(int)` = 0, 3, 7, 11, 15,
    18, 22, 26, 30, 33, 37, 41, 45 (fork `assets/exampleA/town.blend`, text block "Text" l. 167-175: one
    correspondence map per sampled frame, from the previous sampled frame; `assets/sampleA/arc0/corres/0004.png`
    ... `0046.png`, 1-based), one warp between consecutive sampled frames along our consecutive flows composed
    (`compose_flow_hops`). An int s: frames 0, s, 2s, ... of the segment padded to `num_frames` with still
    frames, flows composed over s frames: s = 1 is every consecutive flow (the official training's cadence,
    `vf3d.ggi.training.TRAINING_NOISE_WARP`), s = 4 gives 0, 4, ..., 44, 48 (the `latent_stride` preset,
    vf3d's earlier cadence: up to 3 frames behind the official)."""
    weighted_readout: bool = False
    """Official: a plain area average of the noise field times the downscale factor. True: avg(noise*w) /
    sqrt(avg(w^2)) with the particle densities w."""
    warp: WarpAlgorithm = "official"
    """The warp step (module docstring). "official" (`mk_noise.py` `warp_xyωc`): nearest expand without a
    consistency check, so disoccluded pixels copy the noise a flow away; regaussianization by unique value;
    densities `/ mean + 1e-5` then `** 0.9999`. "checked" (vf3d): an expand copy only from a valid particle
    landing within `MAX_EXPAND_ERROR` (2 px) of the pixel, else fresh noise, so disocclusions get new noise."""


NOISE_WARP_PRESETS = {
    "paper": NoiseWarpSettings(),
    "latent_stride": NoiseWarpSettings(flow_stride=4, warp="checked"),
    "video_rate": NoiseWarpSettings(resolution_scale=1, flow_stride=1, weighted_readout=True, warp="checked"),
}
"""`paper`: the official preprocessing. `latent_stride`: vf3d's earlier `paper` preset (noise frames 0, 4, ...,
48 and the checked warp). `video_rate`: every consecutive flow at video resolution, checked warp, density-weighted
readout."""


def noise_frame_indices(segment_frames: int, count: int) -> list[int]:
    """The segment frames that carry the `count` noise frames, official cadence: `np.linspace(0, N, count)`
    truncated to integers, N = segment_frames - 1 (fork `assets/exampleA/town.blend` text "Text" l. 167-168;
    46 frames, 13 noise frames: 0, 3, 7, 11, 15, 18, 22, 26, 30, 33, 37, 41, 45)."""
    if segment_frames < 1 or count < 1:
        raise ValueError(f"segment_frames={segment_frames}, count={count}: both must be at least 1")
    return [int(i) for i in np.linspace(0, segment_frames - 1, count).astype(int)]


def initial_state(height: int, width: int, channels: int, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> WarpState:
    """Fresh N(0, 1) noise, density 1, particles at pixel centres (on `device`)."""
    noise = torch.randn(height, width, channels, generator=generator).to(device)
    return WarpState(noise, torch.ones(height, width, device=device), torch.zeros(height, width, 2, device=device))


def compose_flows(flows: torch.Tensor, valid: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows f_{ks}->{(k+1)s} from consecutive flows f_i->i+1: (N, H, W, 2) -> (N / stride, H, W, 2)
    (`compose_flow_hops` at frames 0, s, 2s, ..., N)."""
    n = flows.shape[0]
    if n % stride:
        raise ValueError(f"{n} flows cannot be grouped by flow_stride={stride}")
    return compose_flow_hops(flows, valid, list(range(0, n + 1, stride)))


def compose_flow_hops(flows: torch.Tensor, valid: torch.Tensor,
                      frames: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows between consecutive `frames` a_0 <= a_1 <= ... from consecutive flows f_i->i+1:
    (N, H, W, 2) -> (len(frames) - 1, H, W, 2), hop k being f_{a_k}->{a_{k+1}} (identity when a_k = a_{k+1}).

    Hop by hop, f_a->c(p) = f_a->b(p) + f_b->c(p + f_a->b(p)) with f_b->c sampled bilinearly; p stays valid
    while every hop is valid at the pixel it reaches and every point, the last included, is inside the image.
    """
    n, h, w, _ = flows.shape
    frames = list(frames)
    if len(frames) < 2 or frames[0] < 0 or frames[-1] > n or any(b < a for a, b in pairwise(frames)):
        raise ValueError(f"frames={frames}: expected at least 2 non-decreasing frame indices in 0..{n} "
                         f"for {n} consecutive flows")
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flows.dtype, device=flows.device) + 0.5,
                            torch.arange(w, dtype=flows.dtype, device=flows.device) + 0.5, indexing="ij")
    centre = torch.stack([xs, ys], -1)
    scale = torch.tensor([w, h], dtype=flows.dtype, device=flows.device)
    out_flows, out_valid = [], []
    for start, end in pairwise(frames):
        if start == end:  # a still hop (a segment shorter than its noise frames)
            out_flows.append(torch.zeros_like(flows[0]))
            out_valid.append(torch.ones_like(valid[0]))
            continue
        total, ok = flows[start].clone(), valid[start].clone()
        for hop in range(start + 1, end):
            point = centre + total
            grid = (point / scale * 2 - 1)[None]
            sampled = F.grid_sample(flows[hop].permute(2, 0, 1)[None], grid, mode="bilinear",
                                    padding_mode="border", align_corners=False)[0].permute(1, 2, 0)
            hop_valid = F.grid_sample(valid[hop][None, None].to(flows.dtype), grid, mode="nearest",
                                      padding_mode="zeros", align_corners=False)[0, 0] > 0.5
            inside = (point[..., 0] >= 0) & (point[..., 0] < w) & (point[..., 1] >= 0) & (point[..., 1] < h)
            ok &= inside & hop_valid
            total = total + sampled
        landing = centre + total
        ok &= (landing[..., 0] >= 0) & (landing[..., 0] < w) & (landing[..., 1] >= 0) & (landing[..., 1] < h)
        out_flows.append(total)
        out_valid.append(ok)
    return torch.stack(out_flows), torch.stack(out_valid)


def upsample_flows(flows: torch.Tensor, valid: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows of a `scale`x larger pixel grid: values times `scale`, resized bilinearly (pixel centres aligned);
    valid masks nearest."""
    if scale == 1:
        return flows, valid
    big = F.interpolate(flows.permute(0, 3, 1, 2), scale_factor=scale, mode="bilinear", align_corners=False)
    big_valid = F.interpolate(valid[:, None].to(flows.dtype), scale_factor=scale, mode="nearest")[:, 0] > 0.5
    return (big * scale).permute(0, 2, 3, 1).contiguous(), big_valid


def warp_noise_step(
    state: WarpState,
    flow: torch.Tensor,
    valid: torch.Tensor,
    randn: torch.Tensor | torch.Generator | None = None,
    subpixel: bool = False,
    max_expand_error: float = MAX_EXPAND_ERROR,
) -> WarpState:
    """Carry frame i's state to frame i+1 along f_i->i+1 (vectorised).

    Args:
        state: frame i's state (noise (H, W, C), weight (H, W), offset (H, W, 2)).
        flow: (H, W, 2) float32 f_i->i+1 in pixels (vf3d convention: x right, y down).
        valid: (H, W) bool, pixels of frame i whose point is visible in frame i+1.
        randn: the step's N(0, 1) draws, either injected as a (2, H, W, C) tensor ([0] at each source pixel:
            the z of its scattered copy; [1] at each target pixel: the z of its expand copy, or its fresh
            noise) so that the step is deterministic (tests), or a generator (or None: torch's default) from
            which only the values actually used are drawn.
        subpixel: keep each particle's landing residual (dx, dy) in the state (Go-with-the-Flow's
            xy_mode='float'), so flows under half a pixel per frame still move the noise over several frames.
            Off by default, as in the reference (xy_mode='none', the LoRA's training noise): off-lattice
            particles collide and leave holes far more often (rotating 3 deg/frame at 256x256: 19% of pixels
            merge and 23% are holes after 12 steps, against 0.3% and 2.7%), and each merge or split
            decorrelates the noise from its source (frame-to-frame correlation along the motion 0.80 vs 0.998).
        max_expand_error: see `MAX_EXPAND_ERROR`.

    Returns:
        frame i+1's state.
    """
    h, w, c = state.noise.shape
    hw = h * w
    dev = state.noise.device  # runs wherever the state lives (a configured GPU, or the CPU)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=dev),
                            torch.arange(w, dtype=torch.float32, device=dev), indexing="ij")
    centre = torch.stack([xs, ys], -1).reshape(hw, 2) + 0.5
    noise, weight, offset = state.noise.reshape(hw, c), state.weight.reshape(hw), state.offset.reshape(hw, 2)
    flow, valid = flow.reshape(hw, 2), valid.reshape(hw)

    def draw(kind: int, index: torch.Tensor) -> torch.Tensor:
        if isinstance(randn, torch.Tensor):
            return randn[kind].reshape(hw, c)[index]
        where = randn.device if isinstance(randn, torch.Generator) else dev
        return torch.randn(len(index), c, generator=randn, device=where).to(dev)

    def pixel_index(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat index of the pixel containing each point (H*W, 2), and whether it lies inside the image."""
        cell = point.floor().long()
        inside = (cell[:, 0] >= 0) & (cell[:, 0] < w) & (cell[:, 1] >= 0) & (cell[:, 1] < h)
        return cell[:, 1].clamp(0, h - 1) * w + cell[:, 0].clamp(0, w - 1), inside

    # Contract: each valid source particle lands in one target pixel.
    landing = centre + offset + flow
    land_index, land_inside = pixel_index(landing)
    src = torch.nonzero(valid & land_inside).squeeze(1)
    tgt = land_index[src]
    arrivals = torch.bincount(tgt, minlength=hw)

    # Expand: targets no particle reached pull from the pixel containing q - f(q), if consistent.
    pull_index, pull_inside = pixel_index(centre - flow)
    near = ((landing[pull_index] - centre).abs() <= max_expand_error).all(1)
    exp_tgt = torch.nonzero((arrivals == 0) & pull_inside & valid[pull_index] & near).squeeze(1)
    exp_src = pull_index[exp_tgt]

    # Regaussianize the copies of sources used k > 1 times (for k = 1 the formula returns the value itself).
    k = torch.bincount(torch.cat([src, exp_src]), minlength=hw)
    split = torch.nonzero(k > 1).squeeze(1)
    slot = torch.full((hw,), -1, dtype=torch.long, device=dev)
    slot[split] = torch.arange(len(split), device=dev)
    src_split, exp_split = torch.nonzero(k[src] > 1).squeeze(1), torch.nonzero(k[exp_src] > 1).squeeze(1)
    z_src, z_exp = draw(0, src[src_split]), draw(1, exp_tgt[exp_split])
    z_mean = torch.zeros(len(split), c, device=dev).index_add_(0, slot[src[src_split]], z_src)
    z_mean = z_mean.index_add_(0, slot[exp_src[exp_split]], z_exp) / k[split, None]

    def copies(source: torch.Tensor, which: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Noise of the copies of `source` pixels; `which` picks those in split groups, z their draws."""
        out = noise[source]
        group = source[which]
        out[which] = noise[group] * k[group, None].rsqrt() + (z - z_mean[slot[group]])
        return out

    new_noise = torch.empty(hw, c, device=dev)
    new_weight, new_offset = torch.ones(hw, device=dev), torch.zeros(hw, 2, device=dev)
    copy_weight = weight / k.clamp(min=1)

    # Targets with one arrival take its copy; several combine as sum(a*n) / sqrt(sum(a^2)), a = w/k.
    src_noise, a = copies(src, src_split, z_src), copy_weight[src]
    alone = arrivals[tgt] == 1
    new_noise[tgt[alone]] = src_noise[alone]
    crowd = torch.nonzero(~alone).squeeze(1)
    merged, into = torch.unique(tgt[crowd], return_inverse=True)
    numerator = torch.zeros(len(merged), c, device=dev).index_add_(0, into, src_noise[crowd] * a[crowd, None])
    norm = torch.zeros(len(merged), device=dev).index_add_(0, into, a[crowd] ** 2).sqrt()
    new_noise[merged] = numerator / norm[:, None]
    reached = arrivals > 0
    new_weight[reached] = torch.zeros(hw, device=dev).index_add_(0, tgt, a)[reached]
    if subpixel:
        residual = landing[src] - (landing[src].floor() + 0.5)
        moments = torch.zeros(hw, 2, device=dev).index_add_(0, tgt, residual * a[:, None])
        new_offset[reached] = moments[reached] / new_weight[reached, None]

    new_noise[exp_tgt] = copies(exp_src, exp_split, z_exp)
    new_weight[exp_tgt] = copy_weight[exp_src]
    new_offset[exp_tgt] = offset[exp_src]

    # Pixels nothing reached or pulled into: fresh noise, density 1.
    unfilled = ~reached
    unfilled[exp_tgt] = False
    fresh = torch.nonzero(unfilled).squeeze(1)
    new_noise[fresh] = draw(1, fresh)
    # Keep densities near 1 over long sequences (only their ratios matter).
    new_weight /= new_weight.mean()
    return WarpState(new_noise.reshape(h, w, c), new_weight.reshape(h, w), new_offset.reshape(h, w, 2))


def warp_noise_step_reference(
    state: WarpState,
    flow: torch.Tensor,
    valid: torch.Tensor,
    randn: torch.Tensor,
    subpixel: bool = False,
    max_expand_error: float = MAX_EXPAND_ERROR,
) -> WarpState:
    """Slow per-pixel twin of `warp_noise_step`, written for obviousness; used by the tests on tiny fields."""
    h, w, c = state.noise.shape
    noise, weight, offset = state.noise.double(), state.weight.double(), state.offset.double()
    flow, randn = flow.double(), randn.double()

    def containing_pixel(x: float, y: float) -> tuple[int, int] | None:
        col, row = int(np.floor(x)), int(np.floor(y))
        return (row, col) if 0 <= col < w and 0 <= row < h else None

    def landing(row: int, col: int) -> tuple[float, float]:
        return (col + 0.5 + float(offset[row, col, 0] + flow[row, col, 0]),
                row + 0.5 + float(offset[row, col, 1] + flow[row, col, 1]))

    # Contract: target pixel -> list of sources landing in it.
    arrivals: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for row in range(h):
        for col in range(w):
            if valid[row, col]:
                target = containing_pixel(*landing(row, col))
                if target is not None:
                    arrivals.setdefault(target, []).append((row, col))

    # Expand: target pixel -> its single source.
    pulls: dict[tuple[int, int], tuple[int, int]] = {}
    for row in range(h):
        for col in range(w):
            if (row, col) in arrivals:
                continue
            source = containing_pixel(col + 0.5 - float(flow[row, col, 0]), row + 0.5 - float(flow[row, col, 1]))
            if source is None or not valid[source]:
                continue
            lx, ly = landing(*source)
            if abs(lx - (col + 0.5)) <= max_expand_error and abs(ly - (row + 0.5)) <= max_expand_error:
                pulls[(row, col)] = source

    # Copies of each source: ("scatter", source) uses randn[0] at the source, ("expand", target) randn[1].
    groups: dict[tuple[int, int], list[torch.Tensor]] = {}
    for sources in arrivals.values():
        for source in sources:
            groups.setdefault(source, []).append(randn[0][source])
    for target, source in pulls.items():
        groups.setdefault(source, []).append(randn[1][target])

    def copy(source: tuple[int, int], z: torch.Tensor) -> tuple[torch.Tensor, float]:
        k = len(groups[source])
        z_mean = sum(groups[source]) / k
        return noise[source] / np.sqrt(k) + (z - z_mean), float(weight[source]) / k

    new_noise = torch.empty(h, w, c, dtype=torch.float64)
    new_weight = torch.empty(h, w, dtype=torch.float64)
    new_offset = torch.zeros(h, w, 2, dtype=torch.float64)
    for row in range(h):
        for col in range(w):
            if (row, col) in arrivals:
                total, weighted, squares, residual = 0.0, torch.zeros(c, dtype=torch.float64), 0.0, np.zeros(2)
                for source in arrivals[(row, col)]:
                    value, a = copy(source, randn[0][source])
                    lx, ly = landing(*source)
                    total, squares = total + a, squares + a * a
                    weighted = weighted + a * value
                    residual += a * np.array([lx - (np.floor(lx) + 0.5), ly - (np.floor(ly) + 0.5)])
                new_noise[row, col] = weighted / np.sqrt(squares)
                new_weight[row, col] = total
                if subpixel:
                    new_offset[row, col] = torch.from_numpy(residual / total)
            elif (row, col) in pulls:
                source = pulls[(row, col)]
                new_noise[row, col], new_weight[row, col] = copy(source, randn[1][row, col])
                new_offset[row, col] = offset[source]
            else:
                new_noise[row, col], new_weight[row, col] = randn[1][row, col], 1.0
    new_weight = new_weight / new_weight.mean()
    return WarpState(new_noise.float(), new_weight.float(), new_offset.float())


OFFICIAL_WEIGHT_FLOOR = 1e-5
"""Added to the mean-normalised densities after every official step (`mk_noise.py` l. 384-386)."""
OFFICIAL_WEIGHT_POWER = 0.9999
"""The densities are then raised to this power, "to make it tend towards 1" (`mk_noise.py` l. 396). Densities
only weigh particles merging into one pixel (the `paper` readout ignores them): the power moves a density of
1e-5 (fresh noise) by 0.1% per step, one of 0.5 by 0.007%; reproduced anyway."""


def warp_noise_step_official(
    state: WarpState,
    flow: torch.Tensor,
    valid: torch.Tensor,
    randn: torch.Tensor | torch.Generator | None = None,
) -> WarpState:
    """Carry frame i's state to frame j along f_i->j as Go-with-the-Flow's `warp_xyωc` does in the official
    preprocessing (fork `assets/mk_noise.py` l. 231-398, xy_mode='none'; module docstring), vectorised.

    Pixel p (integer coordinates, the official grid) moves to round(p + f(p)) (l. 318, 328); an expand target q
    pulls from round(q - f(q)) (`rp.torch_remap_image` nearest, l. 294-296), both rounding half to even. An
    invalid flow stands for the official -10000 sentinel of pixels without correspondence (l. 537-547, 606): its
    particle counts as leaving the image, so it stays on its own pixel as a zero entry (l. 318-325), and q with
    an invalid flow has no expand source.

    Args:
        state: frame i's state; its offsets are ignored (xy_mode='none': particles sit on pixel centres).
        flow: (H, W, 2) float32 f_i->j in pixels.
        valid: (H, W) bool, pixels of frame i with a correspondence in frame j.
        randn: the step's N(0, 1) draws: a (2, H, W, C) tensor, the official `foreign_noise` over the
            concatenated [contract | expand] entries (l. 158, 363-366; [0] at each particle's pixel p, [1] at
            each target pixel q) for an exact, deterministic step (tests); or a generator (None: torch's
            default) from which only the draws that reach the output are taken, the discarded zero entries
            contributing their sum as one draw of the same distribution.

    Returns:
        frame j's state (offsets zero).
    """
    h, w, c = state.noise.shape
    hw = h * w
    dev = state.noise.device
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=dev),
                            torch.arange(w, dtype=torch.float32, device=dev), indexing="ij")
    grid = torch.stack([xs, ys], -1).reshape(hw, 2)
    noise, weight = state.noise.reshape(hw, c), state.weight.reshape(hw)
    flow, valid = flow.reshape(hw, 2), valid.reshape(hw)

    def nearest(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat index of the pixel nearest each point (H*W, 2), and whether it lies inside the image."""
        cell = torch.round(point).long()
        inside = (cell[:, 0] >= 0) & (cell[:, 0] < w) & (cell[:, 1] >= 0) & (cell[:, 1] < h)
        return cell[:, 1].clamp(0, h - 1) * w + cell[:, 0].clamp(0, w - 1), inside

    def draw(kind: int, index: torch.Tensor) -> torch.Tensor:
        if isinstance(randn, torch.Tensor):
            return randn[kind].reshape(hw, c)[index].to(dev)
        where = randn.device if isinstance(randn, torch.Generator) else dev
        return torch.randn(len(index), c, generator=randn, device=where).to(dev)

    # Contract: a particle with a valid flow landing inside moves; the others stay put as zero entries.
    land, land_inside = nearest(grid + flow)
    moving = valid & land_inside
    target = torch.where(moving, land, torch.arange(hw, device=dev))
    contracted = torch.zeros(hw, dtype=torch.bool, device=dev)
    contracted[target] = True  # the official shrink mask (l. 350-352)
    # Expand: every other pixel pulls from round(q - f(q)), unchecked (l. 294-299, 358).
    pull, pull_inside = nearest(grid - flow)
    exp_tgt = torch.nonzero(~contracted & valid & pull_inside).squeeze(1)
    exp_src = pull[exp_tgt]
    fresh_mask = ~contracted
    fresh_mask[exp_tgt] = False
    fresh = torch.nonzero(fresh_mask).squeeze(1)  # neither reached nor pulled: zero entries kept

    # Regaussianize by value (l. 146-184, 366): a moving particle's value is shared by its contract entry and
    # its expand copies (k of them in all); an unmoved particle's value by its expand copies only. All zero
    # entries form one group: the unmoved particles, the fresh pixels and the discarded expand entries of
    # contracted pixels (l. 358).
    mov = torch.nonzero(moving).squeeze(1)
    stay = torch.nonzero(~moving).squeeze(1)
    k = torch.bincount(torch.cat([mov, exp_src]), minlength=hw)
    split = torch.nonzero(k > 1).squeeze(1)
    slot = torch.full((hw,), -1, dtype=torch.long, device=dev)
    slot[split] = torch.arange(len(split), device=dev)
    mov_split, exp_split = mov[k[mov] > 1], torch.nonzero(k[exp_src] > 1).squeeze(1)
    z_mov, z_exp = draw(0, mov_split), draw(1, exp_tgt[exp_split])
    z_mean = torch.zeros(len(split), c, device=dev).index_add_(0, slot[mov_split], z_mov)
    z_mean = z_mean.index_add_(0, slot[exp_src[exp_split]], z_exp) / k[split, None]
    z_stay, z_fresh = draw(0, stay), draw(1, fresh)
    discarded = int(contracted.sum())
    if isinstance(randn, torch.Tensor):
        discarded_sum = randn[1].reshape(hw, c).to(dev)[contracted].sum(0)
    else:
        where = randn.device if isinstance(randn, torch.Generator) else dev
        discarded_sum = torch.randn(c, generator=randn, device=where).to(dev) * discarded ** 0.5
    n_zero = len(stay) + len(fresh) + discarded
    zero_mean = (z_stay.sum(0) + z_fresh.sum(0) + discarded_sum) / n_zero

    # Every pixel's particle after regaussianization; densities divided by the group size (l. 371).
    part_noise = noise.clone()
    part_noise[mov_split] = noise[mov_split] * k[mov_split, None].rsqrt() + (z_mov - z_mean[slot[mov_split]])
    part_noise[stay] = z_stay - zero_mean
    part_weight = weight / k.clamp(min=1)
    part_weight[stay] = 1.0 / n_zero
    # Contracted pixels: sum(w*n) / sqrt(sum(w^2)), densities summed (l. 378-381).
    numerator = torch.zeros(hw, c, device=dev).index_add_(0, target, part_noise * part_weight[:, None])
    new_weight = torch.zeros(hw, device=dev).index_add_(0, target, part_weight)
    squares = torch.zeros(hw, device=dev).index_add_(0, target, part_weight * part_weight)
    new_noise = torch.empty(hw, c, device=dev)
    hit = torch.nonzero(contracted).squeeze(1)
    new_noise[hit] = numerator[hit] / squares[hit, None].sqrt()
    # Expanded pixels: the regaussianized copy; fresh pixels: their zero entry regaussianized.
    copies = noise[exp_src].clone()
    group = exp_src[exp_split]
    copies[exp_split] = noise[group] * k[group, None].rsqrt() + (z_exp - z_mean[slot[group]])
    new_noise[exp_tgt] = copies
    new_weight[exp_tgt] = weight[exp_src] / k[exp_src]
    new_noise[fresh] = z_fresh - zero_mean
    new_weight[fresh] = 1.0 / n_zero
    new_weight = (new_weight / new_weight.mean() + OFFICIAL_WEIGHT_FLOOR) ** OFFICIAL_WEIGHT_POWER  # l. 384-396
    return WarpState(new_noise.reshape(h, w, c), new_weight.reshape(h, w), torch.zeros(h, w, 2, device=dev))


def warp_noise_step_official_reference(
    state: WarpState,
    flow: torch.Tensor,
    valid: torch.Tensor,
    randn: torch.Tensor,
) -> WarpState:
    """Slow per-pixel twin of `warp_noise_step_official`, written for obviousness from the official steps
    (`mk_noise.py` l. 231-398): the [contract | expand] entries, regaussianized in groups of equal value."""
    h, w, c = state.noise.shape
    noise, weight = state.noise.double(), state.weight.double()
    flow, randn = flow.double(), randn.double()
    zero = torch.zeros(c, dtype=torch.float64)

    def inside(col: int, row: int) -> bool:
        return 0 <= col < w and 0 <= row < h

    # Contract half: pixel p's entry (value, density) and where it is scattered to.
    contract: dict[tuple[int, int], tuple[torch.Tensor, float, tuple[int, int]]] = {}
    for row in range(h):
        for col in range(w):
            tx = round(col + float(flow[row, col, 0]))  # Python's round: half to even, as torch.round
            ty = round(row + float(flow[row, col, 1]))
            if valid[row, col] and inside(tx, ty):
                contract[(row, col)] = (noise[row, col], float(weight[row, col]), (ty, tx))
            else:  # the init state: zero noise, density 1, scattered to its own pixel
                contract[(row, col)] = (zero, 1.0, (row, col))
    received = {entry[2] for entry in contract.values()}
    # Expand half: pixel q's entry; zero where q received particles or pulls from outside.
    expand: dict[tuple[int, int], tuple[torch.Tensor, float]] = {}
    for row in range(h):
        for col in range(w):
            sx = round(col - float(flow[row, col, 0]))
            sy = round(row - float(flow[row, col, 1]))
            if (row, col) not in received and valid[row, col] and inside(sx, sy):
                expand[(row, col)] = (noise[sy, sx], float(weight[sy, sx]))
            else:
                expand[(row, col)] = (zero, 1.0)

    # Regaussianize: entries sharing a channel-0 value form a group of k; each becomes value/sqrt(k) + z - mean z.
    groups: dict[float, list[torch.Tensor]] = {}
    for pixel, (value, _, _) in contract.items():
        groups.setdefault(float(value[0]), []).append(randn[0][pixel])
    for pixel, (value, _) in expand.items():
        groups.setdefault(float(value[0]), []).append(randn[1][pixel])

    def regauss(value: torch.Tensor, density: float, z: torch.Tensor) -> tuple[torch.Tensor, float]:
        members = groups[float(value[0])]
        k = len(members)
        return value / np.sqrt(k) + (z - sum(members) / k), density / k

    new_noise = torch.empty(h, w, c, dtype=torch.float64)
    new_weight = torch.empty(h, w, dtype=torch.float64)
    for row in range(h):
        for col in range(w):
            if (row, col) in received:
                weighted, total, squares = torch.zeros(c, dtype=torch.float64), 0.0, 0.0
                for source, (value, density, target) in contract.items():
                    if target == (row, col):
                        n, a = regauss(value, density, randn[0][source])
                        weighted, total, squares = weighted + a * n, total + a, squares + a * a
                new_noise[row, col], new_weight[row, col] = weighted / np.sqrt(squares), total
            else:
                value, density = expand[(row, col)]
                new_noise[row, col], new_weight[row, col] = regauss(value, density, randn[1][row, col])
    new_weight = (new_weight / new_weight.mean() + OFFICIAL_WEIGHT_FLOOR) ** OFFICIAL_WEIGHT_POWER
    return WarpState(new_noise.float(), new_weight.float(), torch.zeros(h, w, 2))


def _check_flows(flows, valid) -> tuple[torch.Tensor, torch.Tensor]:
    flows, valid = torch.as_tensor(flows, dtype=torch.float32), torch.as_tensor(valid)
    if flows.ndim != 4 or flows.shape[-1] != 2:
        raise ValueError(f"flows has shape {tuple(flows.shape)}; expected (N, H, W, 2) forward flows f_i->i+1")
    if valid.dtype != torch.bool or valid.shape != flows.shape[:3]:
        raise ValueError(f"valid has shape {tuple(valid.shape)} and dtype {valid.dtype}; expected bool "
                         f"{tuple(flows.shape[:3])} to match flows")
    return flows, valid


def _warped_states(flows, valid, channels: int, generator: torch.Generator | None, subpixel: bool,
                   scale: int = 1, device: torch.device | str = "cpu", warp: WarpAlgorithm = "checked"):
    """Yield the state of frames 0..N, one at a time (a 46-frame 720x480 sequence never sits in memory); with
    `scale`, on a `scale`x larger noise field, each flow upsampled when its step comes; `warp` picks the step."""
    flows, valid = _check_flows(flows, valid)
    if channels < 1:
        raise ValueError(f"channels={channels}: need at least 1 noise channel (CogVideoX latents: 16)")
    if warp not in WARP_ALGORITHMS:
        raise ValueError(f"warp={warp!r}: expected one of {WARP_ALGORITHMS}")
    if subpixel and warp == "official":
        raise ValueError("subpixel=True: the official warp keeps particles on pixel centres (xy_mode='none'); "
                         "use warp='checked' for sub-pixel particles")
    _, h, w, _ = flows.shape
    state = initial_state(h * scale, w * scale, channels, generator, device)
    yield state
    for flow, mask in zip(flows, valid):
        big_flow, big_mask = upsample_flows(flow[None].to(device), mask[None].to(device), scale)
        if warp == "official":
            state = warp_noise_step_official(state, big_flow[0], big_mask[0], generator)
        else:
            state = warp_noise_step(state, big_flow[0], big_mask[0], generator, subpixel)
        yield state


def warp_noise_sequence(
    flows: np.ndarray,
    valid: np.ndarray,
    channels: int = 16,
    generator: torch.Generator | None = None,
    subpixel: bool = False,
    return_weights: bool = False,
    warp: WarpAlgorithm = "checked",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Pixel-resolution warped noise of a segment: frame 0 fresh, frame i+1 = frame i carried along f_i->i+1.

    Args:
        flows: (N, H, W, 2) float32 forward flows f_i->i+1 in pixels (guidance `forward`).
        valid: (N, H, W) bool valid masks (guidance `forward_valid`); invalid pixels' noise is dropped.
        channels: C, noise channels (CogVideoX latent channels: 16); channels are independent.
        generator: source of all randomness.
        subpixel: keep sub-pixel particle positions (see `warp_noise_step`).
        return_weights: also return the densities the latent readout needs.
        warp: the warp step (`NoiseWarpSettings.warp`); default vf3d's "checked", as the `video_rate` preset.

    Returns:
        noise (N+1, C, H, W) float32, each frame i.i.d. N(0, 1); with `return_weights`, also the densities
        (N+1, H, W).
    """
    flows, valid = _check_flows(flows, valid)
    n, h, w, _ = flows.shape
    noise, weights = torch.empty(n + 1, channels, h, w), torch.empty(n + 1, h, w)
    for frame, state in enumerate(_warped_states(flows, valid, channels, generator, subpixel, warp=warp)):
        noise[frame], weights[frame] = state.noise.permute(2, 0, 1), state.weight
    return (noise, weights) if return_weights else noise


def _latent_frame_indices(input_frames: int, num_frames: int, temporal: int) -> list[int]:
    """Frames picked for the latent frames: 0, t, 2t, ... of the sequence padded with its last frame."""
    if (num_frames - 1) % temporal:
        raise ValueError(f"num_frames={num_frames}: must be 1 + a multiple of temporal={temporal} "
                         "(CogVideoX: 49 frames -> 13 latent frames)")
    if not 1 <= input_frames <= num_frames:
        raise ValueError(f"the noise has {input_frames} frames; expected 1 to num_frames={num_frames} "
                         "(shorter sequences are padded with their last frame)")
    return [min(i, input_frames - 1) for i in range(0, num_frames, temporal)]


def _spatial_readout(noise: torch.Tensor, weight: torch.Tensor, spatial: int) -> torch.Tensor:
    """(T, C, H, W) noise, (T, H, W) densities -> (T, C, H/s, W/s): sum(w*n) / sqrt(sum(w^2)) per block."""
    h, w = noise.shape[-2:]
    if h % spatial or w % spatial:
        raise ValueError(f"noise is {h}x{w}: height and width must be multiples of spatial={spatial} "
                         "(the VAE's downsampling); resize the flows")
    weight = weight[:, None]
    # avg(w*n) / sqrt(avg(w^2)) has variance 1/s^2 for independent unit noise; times s gives unit variance.
    return F.avg_pool2d(noise * weight, spatial) / F.avg_pool2d(weight * weight, spatial).sqrt() * spatial


def latent_noise(
    noise: torch.Tensor,
    spatial: int = 8,
    num_frames: int = 49,
    weights: torch.Tensor | None = None,
    temporal: int = 4,
) -> torch.Tensor:
    """Read pixel-resolution warped noise out at CogVideoX's latent size, keeping unit variance.

    Temporal: the sequence is padded to `num_frames` by repeating its last frame (GGI conditions on 46 frames
    + 3 repeats of the last), then frames 0, 4, 8, ..., 48 are taken, one per latent frame: CogVideoX encodes
    frame 0 alone and then groups of 4, and Go-with-the-Flow's CogVideoX code picks these same frames
    ('nearest' temporal downsampling, `resize_list(noise, 13)` on 49 frames).
    Spatial: avg(noise * w) / sqrt(avg(w^2)) over `spatial` x `spatial` blocks, times `spatial`.

    Args:
        noise: (F, C, H, W) warped noise, F <= num_frames.
        spatial: VAE spatial downsampling (CogVideoX: 8; 720x480 -> 90x60).
        num_frames: frames the video model generates (CogVideoX-5B-I2V: 49).
        weights: (F, H, W) densities from `warp_noise_sequence(..., return_weights=True)`; None = all 1.
        temporal: VAE temporal downsampling (CogVideoX: 4).

    Returns:
        (1 + (num_frames - 1) / temporal, C, H / spatial, W / spatial) float32, unit variance.
    """
    if noise.ndim != 4:
        raise ValueError(f"noise has shape {tuple(noise.shape)}; expected (F, C, H, W)")
    if weights is None:
        weights = torch.ones(noise.shape[0], *noise.shape[2:])
    elif weights.shape != (noise.shape[0], *noise.shape[2:]):
        raise ValueError(f"weights has shape {tuple(weights.shape)}; expected (F, H, W) = "
                         f"{(noise.shape[0], *noise.shape[2:])} to match noise")
    index = _latent_frame_indices(noise.shape[0], num_frames, temporal)
    return _spatial_readout(noise[index], weights[index], spatial)


def mix_with_fresh(
    warped: torch.Tensor, degradation: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Variance-preserving mix with fresh noise e: (a*e + (1-a)*warped) / sqrt(a^2 + (1-a)^2), a = degradation.

    Go-with-the-Flow's `mix_new_noise` (a -> 1 destroys the warped noise); the paper uses a = 0.5.

    Args:
        warped: warped noise of any shape, unit variance.
        degradation: a in [0, 1].
        generator: source of the fresh noise.
    """
    if not 0.0 <= degradation <= 1.0:
        raise ValueError(f"degradation={degradation}: must be in [0, 1] (0 = warped noise only, 1 = fresh only)")
    fresh = torch.randn(warped.shape, generator=generator, dtype=warped.dtype)
    a = degradation
    return (a * fresh + (1 - a) * warped) / (a * a + (1 - a) ** 2) ** 0.5


def warped_noise_for_segment(
    flows: np.ndarray,
    valid: np.ndarray,
    channels: int = 16,
    degradation: float = 0.5,
    spatial: int = 8,
    num_frames: int = 49,
    generator: torch.Generator | None = None,
    temporal: int = 4,
    subpixel: bool = False,
    settings: NoiseWarpSettings = NoiseWarpSettings(),
    device: torch.device | str = "cpu",
    segment_frames: int = 46,
) -> torch.Tensor:
    """Initial latents' noise eps_w for GGI from a segment's forward flows (paper Sec. 3.3).

    Official cadence (`settings.flow_stride=None`, the `paper` preset): the flows are padded with identity flows
    to `segment_frames - 1` (a shorter segment holds its last frame, as GGI pads it), the noise frames sit at
    `noise_frame_indices(segment_frames, T)` (46 frames: 0, 3, 7, ..., 41, 45), and each of the T - 1 warps
    follows the consecutive flows composed between two of them. With the paper's settings this is the official
    preprocessing (`assets/mk_noise.py` l. 571-614 with the script of `assets/exampleA/town.blend`): 12 warps on
    a 2880x1920 field for 720x480, each state area-downscaled 32x, 13 x 16 x 60 x 90. The official code only
    ever makes 46-frame segments (the script's `range(i * 45 + 1, (i + 1) * 45 + 2)`, l. 167); a shorter one
    would there get 13 noise frames spread over its own length and its edge maps stretched to 46 frames by
    `ggi.py` (`rp.resize_list`, l. 251), slowing its motion down; vf3d keeps the timing instead.

    Stride cadence (`flow_stride=s`): flows padded to `num_frames - 1` (GGI's 46 frames + 3 repeats of the last),
    composed over s frames, noise frames 0, 4, ..., num_frames - 1. With `NOISE_WARP_PRESETS["video_rate"]` this
    equals `mix_with_fresh(latent_noise(noise, weights=weights, ...), ...)` of `warp_noise_sequence(...,
    return_weights=True)` for the same generator, reading each needed frame out as it is warped.

    Args:
        flows: (N, H, W, 2) float32 forward flows f_i->i+1 of the segment (N = 45 for 46 frames).
        valid: (N, H, W) bool valid masks.
        channels: latent channels C (CogVideoX: 16).
        degradation: fresh-noise mix a (paper: 0.5), see `mix_with_fresh`.
        spatial, num_frames, temporal: latent layout, see `latent_noise`.
        generator: source of all randomness (a CPU generator; draws move to `device`).
        subpixel: see `warp_noise_step` (warp="checked" only).
        settings: resolution, cadence, warp step and readout (`NoiseWarpSettings`).
        device: where the noise field lives and is warped (a configured GPU, or the CPU).
        segment_frames: frames of a whole segment, N + 1 (paper: 46; `GGISettings.segment_frames`), for the
            official cadence.

    Returns:
        (1 + (num_frames - 1) / temporal, C, H / spatial, W / spatial) float32 on the CPU (13x16x60x90 for
        the paper).
    """
    flows, valid = _check_flows(flows, valid)
    stride, scale = settings.flow_stride, settings.resolution_scale
    if scale < 1 or (stride is not None and (stride < 1 or temporal % stride)):
        raise ValueError(f"flow_stride={stride}, resolution_scale={scale}: the stride must be None (official "
                         f"cadence) or divide the VAE's temporal downsampling {temporal}, the scale be at least 1")
    if (num_frames - 1) % temporal:
        raise ValueError(f"num_frames={num_frames}: must be 1 + a multiple of temporal={temporal} "
                         "(CogVideoX: 49 frames -> 13 latent frames)")
    if stride is None:
        if not 2 <= segment_frames <= num_frames or flows.shape[0] > segment_frames - 1:
            raise ValueError(f"{flows.shape[0]} flows, segment_frames={segment_frames}, num_frames={num_frames}: "
                             "expected 2 <= segment_frames <= num_frames and at most segment_frames - 1 flows")
        frames = noise_frame_indices(segment_frames, 1 + (num_frames - 1) // temporal)
        flows, valid = padded_flows(flows, valid, segment_frames - 1)
        flows, valid = compose_flow_hops(flows, valid, frames)
        index = list(range(len(frames)))
    elif stride == 1:
        index = _latent_frame_indices(flows.shape[0] + 1, num_frames, temporal)
    else:
        intervals = num_frames - 1
        if flows.shape[0] > intervals:
            raise ValueError(f"{flows.shape[0]} flows for num_frames={num_frames}: expected at most {intervals}")
        flows, valid = padded_flows(flows, valid, intervals)
        flows, valid = compose_flows(flows, valid, stride)
        index = list(range(0, intervals // stride + 1, temporal // stride))
    block = spatial * scale
    readouts = {}
    states = _warped_states(flows, valid, channels, generator, subpixel, scale, device, settings.warp)
    for frame, state in enumerate(states):
        if frame in index:
            noise = state.noise.permute(2, 0, 1)[None]
            readout = (_spatial_readout(noise, state.weight[None], block) if settings.weighted_readout
                       else F.avg_pool2d(noise, block) * block)  # official: plain area average, times the factor
            readouts[frame] = readout[0].cpu()
    return mix_with_fresh(torch.stack([readouts[i] for i in index]), degradation, generator)


def padded_flows(flows, valid, intervals: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A segment's forward flows cut or extended to `intervals` steps, extended with identity flows (the camera
    holds still: GGI's repeats of the last frame)."""
    flows, valid = torch.as_tensor(flows, dtype=torch.float32), torch.as_tensor(valid)
    missing = intervals - flows.shape[0]
    if missing <= 0:
        return flows[:intervals], valid[:intervals]
    _, h, w, _ = flows.shape
    return (torch.cat([flows, torch.zeros(missing, h, w, 2, dtype=flows.dtype)]),
            torch.cat([valid, torch.ones(missing, h, w, dtype=torch.bool)]))


def noise_stats(noise: torch.Tensor) -> dict:
    """Per-frame mean and std of (F, ...) noise, for asset metadata and checks."""
    flat = noise.reshape(noise.shape[0], -1).double()
    return {
        "frames": int(noise.shape[0]),
        "mean": [round(float(v), 5) for v in flat.mean(1)],
        "std": [round(float(v), 5) for v in flat.std(1)],
    }
