"""Analytic videos of a textured plane under a moving camera: the calibration cases of `evaluation.flicker`.

A fronto-parallel plane at `DISTANCE` carries a procedural texture defined in canvas pixels (u, v): three
smooth sinusoids (periods 13-48 px) plus sharp content (a checkerboard of 8 px period and a 3.2 px grating,
both near or above the Nyquist rate of their harmonics). The camera translates parallel to the plane at
`speed` px/frame along `direction_deg`, starting at a sub-pixel `phase`, and optionally toward it
(`approach`), so frame k's pixel (x, y) sees the canvas square [x + k*s_x + phase_x, +1] x [y + k*s_y +
phase_y, +1] (scaled about the principal point by the camera's distance when it approaches). Each pixel is
the exact mean of the texture over that square (an ideal box-filtered sensor: sinusoids and the checkerboard
integrate in closed form), then rounded to 8 bits. Depth, poses and intrinsics are the exact ones, so the
mesh flow between any two frames is the true correspondence and an ideal video scores only what the metric's
own resampling adds.

Variants (`plane_video(kind=...)`): the exact video, the exact video plus blotchy low-frequency flicker (an
independent smooth random field per frame and channel, bicubically upsampled from a 16 px grid, peak
`amplitude` levels, what an independently sampled diffusion frame adds), plus per-pixel noise (uniform
integers in [-amplitude, amplitude]), a frozen video (frame 0 repeated: the texture ignores the camera) and
a flat grey video (every pixel 128).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from vf3d.preprocess.camera import Intrinsics

DISTANCE = 10.0
"""Depth of the plane (scene units)."""
KINDS = ("exact", "blotchy", "noise", "frozen", "flat")
Kind = Literal["exact", "blotchy", "noise", "frozen", "flat"]

# (frequency u, frequency v in cycles/px, amplitude in levels per channel R, G, B, phase in radians)
_SMOOTH_WAVES = ((1 / 48, 1 / 61, (25.0, 18.0, 12.0), 0.3), (-1 / 23, 1 / 29, (12.0, 20.0, 16.0), 1.7),
                 (1 / 13, -1 / 17, (10.0, 8.0, 14.0), 4.1))
_SHARP_WAVES = ((0.31, 0.07, (10.0, 10.0, 10.0), 0.9),)
_CHECKER_PERIOD, _CHECKER_AMPLITUDE = 8.0, (25.0, 22.0, 18.0)


@dataclass(frozen=True)
class PlaneVideo:
    """A video with its exact geometry, in `evaluation.flicker.geometric_flicker`'s argument layout."""

    frames: np.ndarray
    """(F, H, W, 3) uint8."""
    depth: np.ndarray
    """(F, H, W) float32 planar depth: the plane's distance from each frame's camera."""
    c2w: np.ndarray
    """(F, 4, 4) OpenCV camera-to-world poses: translation only."""
    intrinsics: Intrinsics


def _wave_mean(start: np.ndarray, size: float | np.ndarray, frequency: float) -> np.ndarray:
    """Mean of exp(2 pi i f t) over [start, start + size] (complex)."""
    if frequency == 0:
        return np.ones_like(start, dtype=np.complex128)
    w = 2j * np.pi * frequency
    return np.exp(w * start) * (np.exp(w * size) - 1) / (w * size)


def _square_wave_mean(start: np.ndarray, size: float | np.ndarray, period: float) -> np.ndarray:
    """Mean of the +-1 square wave sign(sin(2 pi t / period)) over [start, start + size]: its antiderivative
    is the triangle wave, so the box integral is exact."""
    def triangle(t: np.ndarray) -> np.ndarray:
        m = np.mod(t, period)
        return np.where(m < period / 2, m, period - m)
    return (triangle(start + size) - triangle(start)) / size


def box_integrated_texture(u: np.ndarray, v: np.ndarray, sharp: bool = True, size: float | np.ndarray = 1.0
                           ) -> np.ndarray:
    """Mean of the texture over the squares [u, u + size] x [v, v + size] (canvas pixels): (..., 3) float64."""
    out = np.full(u.shape + (3,), 128.0)
    waves = _SMOOTH_WAVES + (_SHARP_WAVES if sharp else ())
    for fu, fv, amplitude, phase in waves:
        # the mean of sin over a square is the imaginary part of a product of 1-D complex means
        mean = np.imag(np.exp(1j * phase) * _wave_mean(u, size, fu) * _wave_mean(v, size, fv))
        out += mean[..., None] * np.asarray(amplitude)
    if sharp:
        checker = _square_wave_mean(u, size, _CHECKER_PERIOD) * _square_wave_mean(v, size, _CHECKER_PERIOD)
        out += checker[..., None] * np.asarray(_CHECKER_AMPLITUDE)
    return out


def smooth_random_field(rng: np.random.Generator, shape: tuple[int, ...], height: int, width: int,
                        cell: int = 16) -> np.ndarray:
    """Blotchy fields (*shape, H, W) float64 with peak |value| 1 each: normal noise on a `cell` px grid,
    bicubically upsampled (low-frequency, like the blotches an independently sampled diffusion frame differs by)."""
    grid = rng.normal(size=(int(np.prod(shape)), 1, height // cell + 2, width // cell + 2))
    field = F.interpolate(torch.from_numpy(grid), size=(height, width), mode="bicubic", align_corners=True)
    field = field[:, 0].numpy()
    field /= np.abs(field).max(axis=(1, 2), keepdims=True)
    return field.reshape(*shape, height, width)


def plane_video(speed: float, kind: Kind = "exact", phase: tuple[float, float] = (0.0, 0.0), num_frames: int = 8,
                width: int = 128, height: int = 96, direction_deg: float = 20.0, amplitude: float = 3.0,
                sharp: bool = True, approach: float = 0.0, seed: int = 0) -> PlaneVideo:
    """One calibration video (module docstring).

    Args:
        speed: image motion in px/frame; direction_deg: its direction (0 = content moves left).
        kind: one of `KINDS`; amplitude: peak levels of the blotchy flicker or the per-pixel noise.
        phase: sub-pixel offset (x, y) of frame 0's pixel grid on the canvas.
        sharp: False keeps only the smooth sinusoids.
        approach: the camera also moves toward the plane by this fraction of `DISTANCE` per frame (a dolly-in:
            the flow grows from the image centre outwards, so it differs at every pixel).
        seed: of the flicker fields and the noise.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    intrinsics = Intrinsics(width, height, fx=100.0, fy=100.0, cx=width / 2, cy=height / 2)
    step = speed * np.array([np.cos(np.radians(direction_deg)), np.sin(np.radians(direction_deg))])
    if not 0 <= approach * (num_frames - 1) < 0.5:
        raise ValueError(f"approach={approach}: the camera must stay beyond half the plane's distance")
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    distances = DISTANCE * (1 - approach * np.arange(num_frames))
    # frame k's pixel square, scaled about the principal point by its distance, on the canvas (canvas px = image
    # px of frame 0's distance)
    exact = np.stack([box_integrated_texture((xs - intrinsics.cx) * scale + intrinsics.cx + k * step[0] + phase[0],
                                             (ys - intrinsics.cy) * scale + intrinsics.cy + k * step[1] + phase[1],
                                             sharp, scale)
                      for k, scale in enumerate(distances / DISTANCE)])
    rng = np.random.default_rng(seed)
    if kind == "blotchy":
        exact = exact + amplitude * smooth_random_field(rng, (num_frames, 3), height, width).transpose(0, 2, 3, 1)
    elif kind == "noise":
        exact = exact + rng.integers(-round(amplitude), round(amplitude) + 1, exact.shape)
    elif kind == "frozen":
        exact = np.repeat(exact[:1], num_frames, axis=0)
    elif kind == "flat":
        exact = np.full_like(exact, 128.0)
    frames = np.clip(np.round(exact), 0, 255).astype(np.uint8)
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    # frame k's pixel sees the canvas k * step further: the camera moves by step * depth / focal in the world
    c2w[:, 0, 3] = np.arange(num_frames) * step[0] * DISTANCE / intrinsics.fx
    c2w[:, 1, 3] = np.arange(num_frames) * step[1] * DISTANCE / intrinsics.fy
    c2w[:, 2, 3] = DISTANCE - distances  # z forward, toward the plane
    depth = np.repeat(distances.astype(np.float32)[:, None, None], height, axis=1).repeat(width, axis=2)
    return PlaneVideo(frames, depth, c2w, intrinsics)
