"""Optical flow by torchvision's RAFT, with a forward-backward consistency check (paper Sec. 3.4: the GGI
training videos' flows, which drive their warped noise).

Weights (never downloaded): a torchvision state dict (`RAFT_FILES`), or a folder holding it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vf3d.models.device import model_device
from vf3d.models.weights import first_existing

RAFT_FILES = {True: "raft_large_C_T_SKHT_V2-ff5fadd5.pth", False: "raft_small_C_T_V2-01064c6d.pth"}
RAFT_MIN_SIZE = 128
"""torchvision's RAFT needs feature maps (1/8 of the input) of at least 16 px for its 4-level correlation pyramid."""
FB_ABS_TOLERANCE, FB_REL_TOLERANCE = 1.0, 0.05


def load_raft(path: Path, large: bool = True, device: torch.device | str = "cpu") -> torch.nn.Module:
    """torchvision's RAFT (large or small) from a local state-dict .pth, or a folder holding torchvision's
    file of that name (`RAFT_FILES`); missing -> `MissingWeightsError` naming the paths looked at."""
    from torchvision.models.optical_flow import raft_large, raft_small

    path = Path(path)
    component = f"RAFT optical flow ({'raft_large' if large else 'raft_small'}, torchvision state dict)"
    file = first_existing(component, [path / RAFT_FILES[large]] if path.is_dir() else [path])
    model = (raft_large if large else raft_small)(weights=None)
    try:
        model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{file}: not a torchvision {'raft_large' if large else 'raft_small'} state dict "
                         f"({str(exc).splitlines()[0]}); pass large={not large} if it is the other model") from None
    return model.to(device).eval().requires_grad_(False)


def _as_raft_input(frames: Sequence[np.ndarray], scale: float, padded: tuple[int, int]) -> torch.Tensor:
    """(F, 3, H', W') in [-1, 1] (torchvision's `OpticalFlow` transform), resized by `scale`, edge-padded."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    height, width = x.shape[-2:]
    if scale != 1.0:
        x = F.interpolate(x, size=(round(height * scale), round(width * scale)), mode="bilinear",
                          align_corners=False, antialias=False)
    return F.pad(x, (0, padded[1] - x.shape[-1], 0, padded[0] - x.shape[-2]), mode="replicate")


@torch.no_grad()
def raft_flows(frames: Sequence[np.ndarray], model: torch.nn.Module, pairs: Sequence[tuple[int, int]],
               batch_size: int = 4, num_flow_updates: int = 12) -> np.ndarray:
    """RAFT flows f_i->j for each (i, j) in `pairs`: (P, H, W, 2) float32 in pixels (vf3d convention).

    Inputs are scaled to [-1, 1]; frames smaller than `RAFT_MIN_SIZE` are upsampled first (flows scaled
    back), and padded on the bottom/right to multiples of 8 (flows cropped back).
    """
    height, width = frames[0].shape[:2]
    scale = max(1.0, RAFT_MIN_SIZE / min(height, width))
    scaled = (round(height * scale), round(width * scale))
    padded = tuple(-(-s // 8) * 8 for s in scaled)
    device, dtype = model_device(model)
    images = _as_raft_input(frames, scale, padded)
    out = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        first = images[[i for i, _ in chunk]].to(device, dtype)
        second = images[[j for _, j in chunk]].to(device, dtype)
        flow = model(first, second, num_flow_updates=num_flow_updates)[-1].float()[..., : scaled[0], : scaled[1]]
        if scale != 1.0:
            flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
            flow = flow * torch.tensor([width / scaled[1], height / scaled[0]], device=flow.device)[:, None, None]
        out.append(flow.permute(0, 2, 3, 1).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def forward_backward_valid(forward: np.ndarray, backward: np.ndarray, abs_tolerance: float = FB_ABS_TOLERANCE,
                           rel_tolerance: float = FB_REL_TOLERANCE) -> np.ndarray:
    """Forward-backward consistency of flows f_i->j (forward) and f_j->i (backward), (..., H, W, 2) each.

    p is valid when p + f_fw(p) lies inside the image (pixel-centre coordinates in [0, W) x [0, H)) and
    |f_fw(p) + f_bw(p + f_fw(p))| < abs_tolerance + rel_tolerance * |f_fw(p)|, f_bw sampled bilinearly.
    """
    forward, backward = np.asarray(forward, np.float32), np.asarray(backward, np.float32)
    shape = forward.shape
    height, width = shape[-3:-1]
    fw = torch.from_numpy(forward.reshape(-1, height, width, 2))
    bw = torch.from_numpy(backward.reshape(-1, height, width, 2))
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    target = torch.stack([xs, ys], -1) + fw  # (B, H, W, 2) pixel-centre coordinates in view j
    grid = target / torch.tensor([width, height]) * 2 - 1
    sampled = F.grid_sample(bw.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border",
                            align_corners=False).permute(0, 2, 3, 1)
    inside = (target[..., 0] >= 0) & (target[..., 0] < width) & (target[..., 1] >= 0) & (target[..., 1] < height)
    error = (fw + sampled).norm(dim=-1)
    valid = inside & (error < abs_tolerance + rel_tolerance * fw.norm(dim=-1))
    return valid.numpy().reshape(shape[:-1])


def estimate_flows(frames: Sequence[np.ndarray], model: torch.nn.Module, batch_size: int = 4,
                   num_flow_updates: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Forward flows f_i->i+1 of consecutive frames by RAFT, with forward-backward valid masks.

    `frames`: (H, W, 3) uint8 RGB, at least 2. Returns flows (N, H, W, 2) float32 and valid (N, H, W) bool,
    N = len(frames) - 1. Forward and backward flows of each pair are estimated in one batch.
    """
    if len(frames) < 2:
        raise ValueError(f"frames: need at least 2 frames for flows, got {len(frames)}")
    n = len(frames) - 1
    pairs = [(i, i + 1) for i in range(n)] + [(i + 1, i) for i in range(n)]
    order = [k for i in range(n) for k in (i, n + i)]  # a pair's forward and backward side by side
    flows = np.empty((2 * n, *frames[0].shape[:2], 2), np.float32)
    flows[order] = raft_flows(frames, model, [pairs[k] for k in order], batch_size, num_flow_updates)
    return flows[:n], forward_backward_valid(flows[:n], flows[n:])
