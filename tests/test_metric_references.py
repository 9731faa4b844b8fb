"""Our metric preprocessing against the reference implementations, on real images (the benchmark's style
references, and a portrait crop so both orientations are covered).

- CLIP-A / CLIP-I vs transformers' CLIP image processors: `CLIPImageProcessorPil` (OpenAI CLIP's `preprocess`,
  PIL) equal within 1e-5; `CLIPImageProcessor` (transformers 5's default, torchvision on uint8 tensors) within
  two 8-bit levels per pixel (2/255 / the smallest CLIP std = 0.0304; measured: 0.0300 at 224 px) where the
  two bicubic resamplers round differently, and within 1e-3 on average.
- VBench's `clip_transform` and `dino_transform`, rebuilt here from the same torchvision operations VBench
  composes (`Resize(n, BICUBIC, antialias=False)`, `CenterCrop(n)`, `/255`, `Normalize`; `Resize(n,
  antialias=False)`, `/255`, `Normalize`) applied to VBench's uint8 (T, C, H, W) frame tensor: equal within 1e-6.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Lambda, Normalize, Resize

from evaluation.features import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, clip_preprocess, dino_preprocess
from evaluation.features import vbench_clip_preprocess
from vf3d.benchmark.catalog import REPO_ROOT


@pytest.fixture(scope="module")
def real_images() -> list[np.ndarray]:
    images = [np.asarray(Image.open(REPO_ROOT / "benchmark" / "styles" / f"{name}.png").convert("RGB"))
              for name in ("photo", "painterly")]
    return images + [np.ascontiguousarray(images[0][:, 100:420])]  # 320x512: the longer side is the height


@pytest.mark.parametrize("size", [224, 32])
def test_clip_preprocess_equals_clip_image_processor(real_images, size):
    from transformers import CLIPImageProcessor, CLIPImageProcessorPil

    sizes = dict(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    two_levels = 2 / 255 / min(CLIP_STD) + 1e-5
    for image in real_images:
        ours = clip_preprocess(image[None], size)
        openai = CLIPImageProcessorPil(**sizes)(images=Image.fromarray(image), return_tensors="pt").pixel_values
        assert ours.shape == openai.shape == (1, 3, size, size)
        torch.testing.assert_close(ours, openai, atol=1e-5, rtol=0)
        default = CLIPImageProcessor(**sizes)(images=Image.fromarray(image), return_tensors="pt").pixel_values
        assert (ours - default).abs().max() <= two_levels and (ours - default).abs().mean() < 1e-3


def vbench_frames(image: np.ndarray) -> torch.Tensor:
    """VBench's `load_video` output for a one-frame video: uint8 (T, C, H, W)."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("size", [224, 32])
def test_vbench_transforms_equal_torchvision_composition(real_images, size):
    clip_transform = Compose([Resize(size, interpolation=InterpolationMode.BICUBIC, antialias=False),
                              CenterCrop(size), Lambda(lambda x: x.float().div(255.0)), Normalize(CLIP_MEAN, CLIP_STD)])
    dino_transform = Compose([Resize(size=size, antialias=False), Lambda(lambda x: x.float().div(255.0)),
                              Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    for image in real_images:
        torch.testing.assert_close(vbench_clip_preprocess(image[None], size), clip_transform(vbench_frames(image)),
                                   atol=1e-6, rtol=0)
        expected = dino_transform(vbench_frames(image))
        assert expected.shape[-2:] != (size, size)  # no crop: the grid keeps the aspect ratio
        torch.testing.assert_close(dino_preprocess(image[None], size), expected, atol=1e-6, rtol=0)
