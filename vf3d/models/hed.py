"""Edge detectors for the SAG stage's HED ControlNet (paper Sec. 3.2).

The FLUX HED ControlNet was trained on HED maps, so its condition must look like HED: soft, thick,
white-on-black strokes. The paper's LoRA is trained on HED of the style reference, and the official code
also passes every rendered frame (a normal-matcap picture with Line Art strokes, `vf3d.preprocess.hed_input`)
through HED before sampling (fork `assets/mk_edge.py:31-32`: `model(im, detect_resolution=size[1],
image_resolution=size[1])`, then `im.resize(size)`). Two detectors share one interface:

- `ClassicalEdgeDetector` (`tiny` profile): multi-scale Gaussian-derivative magnitude, no weights, so the
  tiny pipeline still sees meaningful structure;
- `HEDEdgeDetector` (`full` profile): controlnet_aux's Apache-2 HED network from a local
  `ControlNetHED.pth` (lllyasviel/Annotators), with controlnet_aux's exact pre- and post-processing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np
import torch
from PIL import Image

from vf3d.models.weights import find_annotator_file

HED_FILENAME = "ControlNetHED.pth"
HED_REPO = "lllyasviel/Annotators"
HED_COMPONENT = f"HED annotator ({HED_FILENAME} from {HED_REPO})"


class EdgeDetector(Protocol):
    """(H, W, 3) uint8 RGB or (H, W) uint8 gray -> (H, W) uint8 edge strength, white edges on black."""

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Check an input image and return it as (H, W, 3) uint8 (gray is repeated, as controlnet_aux's HWC3)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image: expected a uint8 numpy array, got {getattr(image, 'dtype', type(image))}; "
                         "convert with np.asarray(pil_image) or (x * 255).clip(0, 255).astype(np.uint8)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"image: expected shape (H, W) or (H, W, 3), got {image.shape}; drop alpha with image[..., :3]")


@dataclass(frozen=True)
class ClassicalEdgeDetector:
    """Soft multi-scale gradient edges, HED-like, with no weights (the `tiny` profile).

    At each scale sigma: blur, Sobel gradient magnitude, blur the magnitude again with 1.5 sigma.
    The second blur merges the two flanks of a thin line into one stroke centred on it (HED draws line art
    as thick soft lines, not as pairs) and gives the soft falloff of HED maps. Responses are normalised so
    a full-contrast step edge gives 1 at every scale (not per image: flat images stay black), averaged over
    scales (as HED averages its side outputs) and compressed with tanh(gain * r).
    """

    sigmas: tuple[float, ...] = (1.0, 2.0)
    """Gaussian scales in pixels; larger ones draw thicker strokes and ignore finer texture."""
    gain: float = 3.0
    """Strength curve: tanh(gain * r); a full-contrast step edge maps to tanh(gain), a 1 px line lower."""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(as_rgb(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0  # (H, W) in [0, 1]
        response = np.zeros_like(gray)
        for sigma in self.sigmas:
            response += _soft_gradient(gray, sigma) / _unit_step_peak(sigma)
        edge = np.tanh(self.gain * response / len(self.sigmas))
        return (edge * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


def _soft_gradient(gray: np.ndarray, sigma: float) -> np.ndarray:
    """Blurred gradient magnitude of a blurred image at one scale, (H, W) float32."""
    smooth = cv2.GaussianBlur(gray, (0, 0), sigma)
    magnitude = cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    return cv2.GaussianBlur(magnitude, (0, 0), 1.5 * sigma)  # 1.5: the least that leaves no dip mid-line


@lru_cache(maxsize=None)
def _unit_step_peak(sigma: float) -> float:
    """Peak of `_soft_gradient` on a 0 -> 1 step edge, to make scales comparable."""
    width = 2 * int(16 * sigma + 8)
    step = np.zeros((8, width), np.float32)
    step[:, width // 2:] = 1.0
    return float(_soft_gradient(step, sigma).max())


def hed_network_class() -> type[torch.nn.Module]:
    """controlnet_aux's `ControlNetHED_Apache2` (imported lazily: the package imports every annotator)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from controlnet_aux.hed import ControlNetHED_Apache2
    return ControlNetHED_Apache2


def find_hed_weights(weights: Path | None) -> Path:
    """`weights` itself if it is a file; in a folder, `ControlNetHED.pth` directly or in an HF cache snapshot.

    Raises `MissingWeightsError` naming every path looked at.
    """
    return find_annotator_file(weights, HED_FILENAME, HED_COMPONENT, HED_REPO)


class AnnotatorNetwork:
    """A controlnet_aux annotator's network, frozen on a device and dtype, with its detect resolution."""

    def __init__(self, network: torch.nn.Module, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, detect_resolution: int | None = None):
        """`detect_resolution`: an int resizes as controlnet_aux does (short side to it, both sides rounded to
        multiples of 64), as every official caller does; None runs at the input size (ours, an option)."""
        self.device = torch.device(device)
        self.dtype = dtype
        self.detect_resolution = detect_resolution
        self.network = network.to(self.device, dtype).eval().requires_grad_(False)


class HEDEdgeDetector(AnnotatorNetwork):
    """The Apache-2 HED network of controlnet_aux (the `full` profile), run on a given device and dtype.

    With an int `detect_resolution` R it reproduces what the official code gets from
    `HEDdetector(image, detect_resolution=R, image_resolution=R).resize(image.size)` (fork `assets/mk_edge.py:31-32`
    with R = the image height; `image_datasets/dataset.py:129` with R = 512), exactly: the input resized by
    `controlnet_aux.util.resize_image` (short side to R, sides rounded to multiples of 64; Lanczos up, area down),
    RGB as float 0..255 into the network, the 5 side outputs resized (bilinear) to that size, averaged, sigmoid,
    x255 truncated to uint8; the map resized (bilinear) to `resize_image(resized input, R)`'s size, then by PIL's
    default `Image.resize` (bicubic) back to the input size. With `detect_resolution=None` (ours) the network runs
    at the input size and nothing is resized.
    """

    @classmethod
    def from_file(cls, weights: Path | None, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32, detect_resolution: int | None = None) -> HEDEdgeDetector:
        """Load `ControlNetHED.pth` from a file or folder (see `find_hed_weights`); never downloads."""
        path = find_hed_weights(weights)
        state = torch.load(path, map_location="cpu", weights_only=True)
        with torch.device("meta"):
            network = hed_network_class()()
        try:
            network.load_state_dict(state, assign=True)
        except RuntimeError as exc:
            raise ValueError(f"{path}: not a ControlNetHED state dict ({exc}); "
                             f"use {HED_FILENAME} from {HED_REPO}") from None
        return cls(network.float(), device, dtype, detect_resolution)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        rgb = as_rgb(image)
        height, width = rgb.shape[:2]
        if self.detect_resolution is not None:
            rgb = resize_like_controlnet_aux(rgb, self.detect_resolution)
        h, w = rgb.shape[:2]
        x = torch.from_numpy(rgb.copy()).float().to(self.device, self.dtype).permute(2, 0, 1)[None]  # (1, 3, h, w)
        sides = [side.float().cpu().numpy()[0, 0] for side in self.network(x)]  # 5 x (h / 2^k, w / 2^k)
        sides = np.stack([cv2.resize(side, (w, h), interpolation=cv2.INTER_LINEAR) for side in sides], axis=2)
        edge = 1 / (1 + np.exp(-np.mean(sides, axis=2).astype(np.float64)))
        edge = (edge * 255.0).clip(0, 255).astype(np.uint8)  # (h, w)
        if self.detect_resolution is None:
            return edge
        # controlnet_aux: the map at image_resolution (= detect_resolution), computed from the resized input
        out_h, out_w = controlnet_aux_size(h, w, self.detect_resolution)
        edge = cv2.resize(edge, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        # the official callers: PIL's default resize (bicubic) back to the input size
        return np.asarray(Image.fromarray(edge).resize((width, height), Image.Resampling.BICUBIC))


def controlnet_aux_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """(h, w) that `controlnet_aux.util.resize_image` gives: short side to `resolution`, sides rounded to
    multiples of 64 (e.g. 1080x720 at 720 -> 1088x704)."""
    k = float(resolution) / min(height, width)
    return int(np.round(height * k / 64.0)) * 64, int(np.round(width * k / 64.0)) * 64


def resize_like_controlnet_aux(image: np.ndarray, resolution: int) -> np.ndarray:
    """controlnet_aux.util.resize_image: short side to `resolution`, sides rounded to multiples of 64 (Lanczos
    when enlarging, area otherwise)."""
    height, width = image.shape[:2]
    h, w = controlnet_aux_size(height, width, resolution)
    k = float(resolution) / min(height, width)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LANCZOS4 if k > 1 else cv2.INTER_AREA)


CONTROLNET_AUX_RESOLUTION = 512
"""controlnet_aux's default detect resolution, which the official distribution alignment keeps for the HED of
style references (`image_datasets/dataset.py:129`). Rendered frames go through HED at their own height
(`assets/mk_edge.py:31`), recorded by the guidance (`vf3d.preprocess.hed_input.hed_detect_resolution`)."""


def make_edge_detector(kind: Literal["auto", "classical", "hed"], profile: Literal["tiny", "full"],
                       weights: Path | None = None, device: torch.device | str = "cpu",
                       dtype: torch.dtype = torch.float32, detect_resolution: int | None = None) -> EdgeDetector:
    """The edge detector for a profile: "auto" = classical for `tiny`, HED for `full`.

    `weights`: `ControlNetHED.pth` or a folder holding it (only read for HED). `detect_resolution`: HED's
    working size (see `HEDEdgeDetector`); the classical detector always runs at the input size.
    """
    if profile not in ("tiny", "full"):
        raise ValueError(f"profile: expected 'tiny' or 'full', got {profile!r}")
    if kind not in ("auto", "classical", "hed"):
        raise ValueError(f"kind: expected 'auto', 'classical' or 'hed', got {kind!r}")
    if kind == "classical" or (kind == "auto" and profile == "tiny"):
        return ClassicalEdgeDetector()
    return HEDEdgeDetector.from_file(weights, device, dtype, detect_resolution)
