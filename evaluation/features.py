"""Frames to network inputs and image embeddings, shared by the CLIP- and DINO-based metrics.

Frames are (H, W, 3) uint8 RGB arrays (a sequence, or one (F, H, W, 3) array). Preprocessing is the one of the
code each metric comes from, operation for operation, with the input size read from the model's config (224
for the real checkpoints, smaller for the tiny profile); `tests/test_metric_references.py` checks each against
its reference on real images:
- CLIP-A, CLIP-I: OpenAI CLIP's `preprocess`, which transformers' `CLIPImageProcessor` reproduces: PIL bicubic
  resize of the uint8 image (shorter side to 224), centre crop, /255, CLIP mean/std.
- VBench Background Consistency: VBench's `clip_transform` on its frame tensor: `load_video` builds it with
  `torch.Tensor(frames)`, i.e. float32 0-255 (its comment says uint8), so the torchvision `Resize(224, BICUBIC,
  antialias=False)` neither rounds nor clamps; then `CenterCrop(224)`, /255, CLIP mean/std.
- VBench Subject Consistency: VBench's `dino_transform` on the same float32 tensor: `Resize(224,
  antialias=False)` (bilinear), /255, ImageNet mean/std, no crop. The DINO hub model it loads
  (facebookresearch/dino `dino_vitb16`) interpolates its position embeddings to the non-square grid with
  `scale_factor=((rows + 0.1) / 14, (cols + 0.1) / 14)`, not transformers' `size=(rows, cols)`: the sampling
  positions differ (even along a side that keeps 14 patches), so `dino_features` uses the hub's rule
  (`dino_hub_interpolate_pos_encoding`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from types import MethodType

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from vf3d.models.device import model_device

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BATCH_SIZE = 16


def frame_array(frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 RGB frames as one array; `ValueError` naming the shape otherwise."""
    array = np.asarray(frames if isinstance(frames, np.ndarray) else np.stack(list(frames)))
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"frames: expected uint8 RGB frames (F, H, W, 3), got {array.dtype} {array.shape}")
    return array


def frames_to_tensor(frames: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
    """(F, 3, H, W) float32 in [0, 1] from uint8 RGB frames."""
    return torch.from_numpy(frame_array(frames)).permute(0, 3, 1, 2).float() / 255.0


def frame_batches(frames: Sequence[np.ndarray] | np.ndarray, batch_size: int = BATCH_SIZE) -> Iterator[np.ndarray]:
    """(B, H, W, 3) uint8 chunks of the frames, so that a long full-size video is never all in float."""
    array = frame_array(frames)
    for start in range(0, len(array), batch_size):
        yield array[start:start + batch_size]


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    return TF.normalize(x, list(mean), list(std))


def _shorter_side_to(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the shorter side `size` and the longer int(size * ratio): torchvision's `Resize(size)`
    and transformers' `shortest_edge` rule."""
    return (size, int(size * width / height)) if height <= width else (int(size * height / width), size)


def clip_preprocess(images: np.ndarray, size: int) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, size, size) float32: OpenAI CLIP's `preprocess` (= `CLIPImageProcessor`)."""
    out = []
    for image in frame_array(images):
        height, width = _shorter_side_to(*image.shape[:2], size)
        resized = np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))
        top, left = (height - size) // 2, (width - size) // 2
        out.append(torch.from_numpy(resized[top:top + size, left:left + size].copy()))
    x = torch.stack(out).permute(0, 3, 1, 2).float() / 255.0
    return _normalise(x, CLIP_MEAN, CLIP_STD)


def _vbench_tensor(images: np.ndarray) -> torch.Tensor:
    """VBench's `load_video` frame tensor: `torch.Tensor(frames).permute(0, 3, 1, 2)`, float32 0-255 (T, C, H, W)."""
    return torch.from_numpy(frame_array(images)).permute(0, 3, 1, 2).float()


def vbench_clip_preprocess(images: np.ndarray, size: int) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> VBench's `clip_transform(size)` of its float frame tensor (Background Consistency)."""
    x = TF.resize(_vbench_tensor(images), size, InterpolationMode.BICUBIC, antialias=False)
    return _normalise(TF.center_crop(x, size) / 255.0, CLIP_MEAN, CLIP_STD)


def dino_preprocess(images: np.ndarray, size: int) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> VBench's `dino_transform(size)` of its float frame tensor (Subject Consistency)."""
    x = TF.resize(_vbench_tensor(images), size, InterpolationMode.BILINEAR, antialias=False)
    return _normalise(x / 255.0, IMAGENET_MEAN, IMAGENET_STD)


def dino_hub_interpolate_pos_encoding(self: torch.nn.Module, embeddings: torch.Tensor, height: int, width: int
                                      ) -> torch.Tensor:
    """facebookresearch/dino's `VisionTransformer.interpolate_pos_encoding` for a transformers `ViTEmbeddings`
    (`self`): bicubic with `scale_factor` = (patches + 0.1) / side per axis (module docstring)."""
    num_patches, num_positions = embeddings.shape[1] - 1, self.position_embeddings.shape[1] - 1
    if num_patches == num_positions and height == width:
        return self.position_embeddings
    side, dim = int(math.sqrt(num_positions)), embeddings.shape[-1]
    rows, cols = height // self.patch_size + 0.1, width // self.patch_size + 0.1  # the hub's float-error guard
    grid = self.position_embeddings[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=(rows / side, cols / side), mode="bicubic")
    return torch.cat((self.position_embeddings[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)


@torch.no_grad()
def clip_image_embeddings(frames: Sequence[np.ndarray] | np.ndarray, clip_model: torch.nn.Module,
                          vbench: bool = False) -> torch.Tensor:
    """L2-normalised projected CLIP image embeddings (OpenAI `encode_image`), (F, D) float32 on the CPU.

    `clip_model`: a transformers `CLIPVisionModelWithProjection`; `vbench=True`: VBench's `clip_transform`
    instead of OpenAI CLIP's `preprocess`.
    """
    device, dtype = model_device(clip_model)
    size = clip_model.config.image_size
    out = []
    for chunk in frame_batches(frames):
        pixels = (vbench_clip_preprocess if vbench else clip_preprocess)(chunk, size).to(device, dtype)
        out.append(clip_model(pixel_values=pixels).image_embeds.float().cpu())
    return F.normalize(torch.cat(out), dim=-1)


@torch.no_grad()
def dino_features(frames: Sequence[np.ndarray] | np.ndarray, dino_model: torch.nn.Module) -> torch.Tensor:
    """L2-normalised DINO CLS features (the DINO hub model's output: the final-norm CLS token, position embeddings
    interpolated by the hub's rule), (F, D) on the CPU.

    `dino_model`: a transformers `ViTModel` (e.g. facebook/dino-vitb16, VBench's DINO ViT-B/16).
    """
    device, dtype = model_device(dino_model)
    size = dino_model.config.image_size
    embeddings = dino_model.embeddings
    # the hub's interpolation on this instance for the call, transformers' again afterwards
    embeddings.interpolate_pos_encoding = MethodType(dino_hub_interpolate_pos_encoding, embeddings)
    try:
        out = []
        for chunk in frame_batches(frames):
            pixels = dino_preprocess(chunk, size).to(device, dtype)
            hidden = dino_model(pixel_values=pixels, interpolate_pos_encoding=True).last_hidden_state
            out.append(hidden[:, 0].float().cpu())
    finally:
        del embeddings.interpolate_pos_encoding
    return F.normalize(torch.cat(out), dim=-1)
