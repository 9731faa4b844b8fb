"""Frames to network inputs and image embeddings, shared by the CLIP- and DINO-based metrics.

Frames are (H, W, 3) uint8 RGB arrays (a sequence, or one (F, H, W, 3) array). Preprocessing follows the
code each metric comes from, with the input size read from the model's config (224 for the real checkpoints,
smaller for the tiny profile):
- CLIP-A, CLIP-I: OpenAI CLIP's `preprocess` (shorter side to 224, bicubic, antialiased as PIL does; centre
  crop; CLIP mean/std).
- VBench Background Consistency: VBench's `clip_transform` (the same, on tensors without antialiasing).
- VBench Subject Consistency: VBench's `dino_transform` (shorter side to 224, bilinear, no antialiasing,
  no crop; ImageNet mean/std), the ViT's position embeddings interpolated to the non-square grid, as the
  DINO hub model does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

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


def frame_batches(frames: Sequence[np.ndarray] | np.ndarray, batch_size: int = BATCH_SIZE) -> Iterator[torch.Tensor]:
    """`frames_to_tensor` a batch at a time, so that a long full-size video is never all in float."""
    array = frame_array(frames)
    for start in range(0, len(array), batch_size):
        yield frames_to_tensor(array[start:start + batch_size])


def _resize_shorter(x: torch.Tensor, size: int, mode: str, antialias: bool) -> torch.Tensor:
    """torchvision `Resize(size)` semantics: the shorter side becomes `size`, the longer one int(size * ratio)."""
    height, width = x.shape[-2:]
    if height <= width:
        new = (size, int(size * width / height))
    else:
        new = (int(size * height / width), size)
    return F.interpolate(x, size=new, mode=mode, align_corners=False, antialias=antialias).clamp(0.0, 1.0)


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    return (x - x.new_tensor(mean)[:, None, None]) / x.new_tensor(std)[:, None, None]


def clip_preprocess(images: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3, size, size): shorter side to `size` (bicubic), centre crop, CLIP norm."""
    x = _resize_shorter(images, size, "bicubic", antialias)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return _normalise(x[..., top:top + size, left:left + size], CLIP_MEAN, CLIP_STD)


def dino_preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> VBench's DINO input: shorter side to `size` (bilinear, no antialiasing),
    ImageNet mean/std."""
    return _normalise(_resize_shorter(images, size, "bilinear", False), IMAGENET_MEAN, IMAGENET_STD)


@torch.no_grad()
def clip_image_embeddings(frames: Sequence[np.ndarray] | np.ndarray, clip_model: torch.nn.Module,
                          antialias: bool = True) -> torch.Tensor:
    """L2-normalised projected CLIP image embeddings (OpenAI `encode_image`), (F, D) float32 on the CPU.

    `clip_model`: a transformers `CLIPVisionModelWithProjection`; `antialias=False` is VBench's resize.
    """
    device, dtype = model_device(clip_model)
    size = clip_model.config.image_size
    out = []
    for chunk in frame_batches(frames):
        pixels = clip_preprocess(chunk, size, antialias).to(device, dtype)
        out.append(clip_model(pixel_values=pixels).image_embeds.float().cpu())
    return F.normalize(torch.cat(out), dim=-1)


@torch.no_grad()
def dino_features(frames: Sequence[np.ndarray] | np.ndarray, dino_model: torch.nn.Module) -> torch.Tensor:
    """L2-normalised DINO CLS features (the DINO hub model's output: the final-norm CLS token), (F, D) on the CPU.

    `dino_model`: a transformers `ViTModel` (e.g. facebook/dino-vitb16, VBench's DINO ViT-B/16).
    """
    device, dtype = model_device(dino_model)
    size = dino_model.config.image_size
    out = []
    for chunk in frame_batches(frames):
        pixels = dino_preprocess(chunk, size).to(device, dtype)
        hidden = dino_model(pixel_values=pixels, interpolate_pos_encoding=True).last_hidden_state
        out.append(hidden[:, 0].float().cpu())
    return F.normalize(torch.cat(out), dim=-1)
