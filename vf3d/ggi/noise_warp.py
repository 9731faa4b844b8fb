"""Warped noise for Geometry-guided Generative Inbetweening (paper Sec. 3.3; Go-with-the-Flow, Burgert et al. 2025).

The noise of frame 0 is i.i.d. N(0, 1); each flow f_i->i+1 carries frame i's noise to frame i+1 so that a
point's noise travels with it, while every frame stays exactly i.i.d. N(0, 1) per element. The state per pixel
is (dx, dy, density w, noise n). One step (`warp_noise_step`):

- contract: every valid pixel p of frame i scatters its particle to the pixel of frame i+1 that contains
  p's landing point (pixel centre + f_i->i+1(p), + (dx, dy) in `subpixel` mode); a pixel receiving several
  particles combines them as sum(w*n) / sqrt(sum(w^2)) with w summed (and (dx, dy) the w-weighted mean of
  the landing residuals);
- expand: a pixel q of frame i+1 that receives no particle pulls, nearest-neighbour, from the pixel s of
  frame i containing q - f_i->i+1(q) (the forward flow at q stands in for the backward flow, as in
  Go-with-the-Flow), if s is valid and s's own landing point lies within `max_expand_error` pixels of q;
- a source whose value is used k times (its scattered copy plus its expand copies) is regaussianized: each
  copy is value/sqrt(k) + z - mean(z) over the group, z fresh N(0, 1), and gets density w/k. The copies are
  then N(0, 1), mutually uncorrelated, and read out together they give back the original value;
- pixels receiving nothing get fresh N(0, 1) noise with density 1; densities are divided by their mean.

Every operation is linear in Gaussians with flow-determined coefficients, so each frame is exactly i.i.d.
N(0, 1). Readout at latent size (`latent_noise`) averages noise*w / sqrt(avg(w^2)) over 8x8 blocks (times 8,
unit variance) and keeps CogVideoX's temporal layout; `mix_with_fresh` applies the degradation of Sec. 4.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class NoiseWarpSettings:
    """How a segment's noise is warped; the defaults are the official preprocessing (`assets/mk_noise.py`), which
    made the noise the Go-with-the-Flow LoRA and the GGI model were trained on."""

    resolution_scale: int = 4
    """Noise field size / video size. Official: 8x the half-resolution flows, i.e. 4x the video (2880x1920 for
    720x480), read out by 32x area downscaling (the VAE's 8 x this scale). 1 = video resolution."""
    flow_stride: int = 4
    """Frames per warp. Official: correspondences between frames at the latent stride, 12 warps and 13 noise
    frames per 49-frame segment; the flows in between are composed here. 1 = every consecutive flow (slow
    motion then rounds to no motion at all and the noise freezes)."""
    weighted_readout: bool = False
    """Official: a plain area average of the noise field times the downscale factor. True: avg(noise*w) /
    sqrt(avg(w^2)) with the particle densities w."""


NOISE_WARP_PRESETS = {
    "paper": NoiseWarpSettings(),
    "video_rate": NoiseWarpSettings(resolution_scale=1, flow_stride=1, weighted_readout=True),
}


def initial_state(height: int, width: int, channels: int, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> WarpState:
    """Fresh N(0, 1) noise, density 1, particles at pixel centres (on `device`)."""
    noise = torch.randn(height, width, channels, generator=generator).to(device)
    return WarpState(noise, torch.ones(height, width, device=device), torch.zeros(height, width, 2, device=device))


def compose_flows(flows: torch.Tensor, valid: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows f_{ks}->{(k+1)s} from consecutive flows f_i->i+1: (N, H, W, 2) -> (N / stride, H, W, 2).

    Hop by hop, f_a->c(p) = f_a->b(p) + f_b->c(p + f_a->b(p)) with f_b->c sampled bilinearly; p stays valid
    while every hop is valid at the pixel it reaches and every point, the last included, is inside the image.
    """
    n, h, w, _ = flows.shape
    if n % stride:
        raise ValueError(f"{n} flows cannot be grouped by flow_stride={stride}")
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flows.dtype, device=flows.device) + 0.5,
                            torch.arange(w, dtype=flows.dtype, device=flows.device) + 0.5, indexing="ij")
    centre = torch.stack([xs, ys], -1)
    scale = torch.tensor([w, h], dtype=flows.dtype, device=flows.device)
    out_flows, out_valid = [], []
    for group in range(0, n, stride):
        total, ok = flows[group].clone(), valid[group].clone()
        for hop in range(group + 1, group + stride):
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


def _check_flows(flows, valid) -> tuple[torch.Tensor, torch.Tensor]:
    flows, valid = torch.as_tensor(flows, dtype=torch.float32), torch.as_tensor(valid)
    if flows.ndim != 4 or flows.shape[-1] != 2:
        raise ValueError(f"flows has shape {tuple(flows.shape)}; expected (N, H, W, 2) forward flows f_i->i+1")
    if valid.dtype != torch.bool or valid.shape != flows.shape[:3]:
        raise ValueError(f"valid has shape {tuple(valid.shape)} and dtype {valid.dtype}; expected bool "
                         f"{tuple(flows.shape[:3])} to match flows")
    return flows, valid


def _warped_states(flows, valid, channels: int, generator: torch.Generator | None, subpixel: bool,
                   scale: int = 1, device: torch.device | str = "cpu"):
    """Yield the state of frames 0..N, one at a time (a 46-frame 720x480 sequence never sits in memory); with
    `scale`, on a `scale`x larger noise field, each flow upsampled when its step comes."""
    flows, valid = _check_flows(flows, valid)
    if channels < 1:
        raise ValueError(f"channels={channels}: need at least 1 noise channel (CogVideoX latents: 16)")
    _, h, w, _ = flows.shape
    state = initial_state(h * scale, w * scale, channels, generator, device)
    yield state
    for flow, mask in zip(flows, valid):
        big_flow, big_mask = upsample_flows(flow[None].to(device), mask[None].to(device), scale)
        state = warp_noise_step(state, big_flow[0], big_mask[0], generator, subpixel)
        yield state


def warp_noise_sequence(
    flows: np.ndarray,
    valid: np.ndarray,
    channels: int = 16,
    generator: torch.Generator | None = None,
    subpixel: bool = False,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Pixel-resolution warped noise of a segment: frame 0 fresh, frame i+1 = frame i carried along f_i->i+1.

    Args:
        flows: (N, H, W, 2) float32 forward flows f_i->i+1 in pixels (guidance `forward`).
        valid: (N, H, W) bool valid masks (guidance `forward_valid`); invalid pixels' noise is dropped.
        channels: C, noise channels (CogVideoX latent channels: 16); channels are independent.
        generator: source of all randomness.
        subpixel: keep sub-pixel particle positions (see `warp_noise_step`).
        return_weights: also return the densities the latent readout needs.

    Returns:
        noise (N+1, C, H, W) float32, each frame i.i.d. N(0, 1); with `return_weights`, also the densities
        (N+1, H, W).
    """
    flows, valid = _check_flows(flows, valid)
    n, h, w, _ = flows.shape
    noise, weights = torch.empty(n + 1, channels, h, w), torch.empty(n + 1, h, w)
    for frame, state in enumerate(_warped_states(flows, valid, channels, generator, subpixel)):
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
) -> torch.Tensor:
    """Initial latents' noise eps_w for GGI from a segment's forward flows (paper Sec. 3.3).

    The segment's flows are padded with identity flows to `num_frames - 1` (GGI's 46 frames + 3 repeats of
    the last: the camera holds still), composed into `settings.flow_stride`-frame flows, and the noise is
    warped on a `settings.resolution_scale`x larger field, then read out at latent size. With the default
    settings this is the official preprocessing: 12 warps of 4 frames each on a 2880x1920 field for 720x480,
    area-downscaled 32x to 13 x 16 x 60 x 90. With `NOISE_WARP_PRESETS["video_rate"]` it equals
    `mix_with_fresh(latent_noise(noise, weights=weights, ...), ...)` of `warp_noise_sequence(...,
    return_weights=True)` for the same generator, reading each needed frame out as it is warped.

    Args:
        flows: (N, H, W, 2) float32 forward flows f_i->i+1 of the segment (N = 45 for 46 frames).
        valid: (N, H, W) bool valid masks.
        channels: latent channels C (CogVideoX: 16).
        degradation: fresh-noise mix a (paper: 0.5), see `mix_with_fresh`.
        spatial, num_frames, temporal: latent layout, see `latent_noise`.
        generator: source of all randomness (a CPU generator; draws move to `device`).
        subpixel: see `warp_noise_step`.
        settings: resolution, stride and readout (`NoiseWarpSettings`).
        device: where the noise field lives and is warped (a configured GPU, or the CPU).

    Returns:
        (1 + (num_frames - 1) / temporal, C, H / spatial, W / spatial) float32 on the CPU (13x16x60x90 for
        the paper).
    """
    flows, valid = _check_flows(flows, valid)
    stride, scale = settings.flow_stride, settings.resolution_scale
    if stride < 1 or temporal % stride or scale < 1:
        raise ValueError(f"flow_stride={stride}, resolution_scale={scale}: the stride must divide the VAE's "
                         f"temporal downsampling {temporal}, the scale be at least 1")
    if stride == 1:
        index = _latent_frame_indices(flows.shape[0] + 1, num_frames, temporal)
    else:
        intervals = num_frames - 1
        if flows.shape[0] > intervals or intervals % temporal:
            raise ValueError(f"{flows.shape[0]} flows for num_frames={num_frames}: expected at most "
                             f"{intervals}, and num_frames = 1 + a multiple of {temporal}")
        flows, valid = padded_flows(flows, valid, intervals)
        flows, valid = compose_flows(flows, valid, stride)
        index = list(range(0, intervals // stride + 1, temporal // stride))
    block = spatial * scale
    readouts = {}
    for frame, state in enumerate(_warped_states(flows, valid, channels, generator, subpixel, scale, device)):
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
