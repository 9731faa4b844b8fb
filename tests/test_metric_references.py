"""Our metrics against the reference implementations: preprocessing on real images (the benchmark's style
references, and a portrait crop so both orientations are covered), and whole pipelines with the same random
weights on both sides (issue 22, 4: the same pipeline as the reference libraries, weights aside).

- CLIP-A / CLIP-I vs transformers' CLIP image processors: `CLIPImageProcessorPil` (OpenAI CLIP's `preprocess`,
  PIL) equal within 1e-5; `CLIPImageProcessor` (transformers 5's default, torchvision on uint8 tensors) within
  two 8-bit levels per pixel (2/255 / the smallest CLIP std = 0.0304; measured: 0.0300 at 224 px) where the
  two bicubic resamplers round differently, and within 1e-3 on average.
- VBench's `clip_transform` and `dino_transform`, rebuilt here from the torchvision operations VBench composes
  (`Resize(n, BICUBIC, antialias=False)`, `CenterCrop(n)`, `/255`, `Normalize`; `Resize(n, antialias=False)`,
  `/255`, `Normalize`) applied to VBench's frame tensor, which its `load_video` builds with `torch.Tensor(frames)`:
  float32 0-255, not uint8 (no rounding or clamping after the resize): equal within 1e-6.
- VBench SC and BC, transcribed from VBench's `subject_consistency.py` / `background_consistency.py` (the
  per-frame float32 loop of `F.cosine_similarity(...).item()`), with the DINO hub model's forward transcribed
  from facebookresearch/dino `vision_transformer.py` (its own position-embedding interpolation) around the same
  transformers weights: equal to ours within 1e-6.
- MUSIQ vs pyiqa's own inference path (`InferenceModel` on an image file) and LPIPS vs torchmetrics'
  `LearnedPerceptualImagePatchSimilarity`, each built from the same random state dict as ours.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Lambda, Normalize, Resize

from evaluation.consistency import background_consistency, subject_consistency
from evaluation.features import (CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, clip_image_embeddings,
                                 clip_preprocess, dino_features, dino_preprocess, frames_to_tensor,
                                 vbench_clip_preprocess)
from evaluation.models import TINY_MUSIQ, load_musiq, lpips_network
from evaluation.pseudo_gt import _masked_scores
from evaluation.quality import musiq
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


def vbench_frames(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """VBench's `load_video` output: `torch.Tensor(frames).permute(0, 3, 1, 2)`, float32 0-255 (T, C, H, W)."""
    return torch.Tensor(np.asarray(images)).permute(0, 3, 1, 2)


def vbench_clip_transform(n_px: int) -> Compose:
    """VBench `utils.clip_transform`."""
    return Compose([Resize(n_px, interpolation=InterpolationMode.BICUBIC, antialias=False), CenterCrop(n_px),
                    Lambda(lambda x: x.float().div(255.0)), Normalize(CLIP_MEAN, CLIP_STD)])


def vbench_dino_transform(n_px: int) -> Compose:
    """VBench `utils.dino_transform`."""
    return Compose([Resize(size=n_px, antialias=False), Lambda(lambda x: x.float().div(255.0)),
                    Normalize(IMAGENET_MEAN, IMAGENET_STD)])


@pytest.mark.parametrize("size", [224, 32])
def test_vbench_transforms_equal_torchvision_composition(real_images, size):
    for image in real_images:
        torch.testing.assert_close(vbench_clip_preprocess(image[None], size),
                                   vbench_clip_transform(size)(vbench_frames(image[None])), atol=1e-6, rtol=0)
        expected = vbench_dino_transform(size)(vbench_frames(image[None]))
        assert expected.shape[-2:] != (size, size)  # no crop: the grid keeps the aspect ratio
        torch.testing.assert_close(dino_preprocess(image[None], size), expected, atol=1e-6, rtol=0)


class DinoHub(torch.nn.Module):
    """facebookresearch/dino `VisionTransformer.forward` (`vision_transformer.py`) transcribed around a
    transformers `ViTModel`'s weights: patch embedding, [CLS], position embeddings interpolated the hub's way,
    the blocks, the final norm, the [CLS] token. The blocks are transformers' (the same pre-norm blocks: weights
    aside)."""

    def __init__(self, vit: torch.nn.Module):
        super().__init__()
        self.vit = vit

    def interpolate_pos_encoding(self, x: torch.Tensor, w: int, h: int) -> torch.Tensor:
        pos_embed, patch_size = self.vit.embeddings.position_embeddings, self.vit.config.patch_size
        npatch, N = x.shape[1] - 1, pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return pos_embed
        class_pos_embed, patch_pos_embed, dim = pos_embed[:, 0], pos_embed[:, 1:], x.shape[-1]
        w0, h0 = w // patch_size + 0.1, h // patch_size + 0.1
        patch_pos_embed = torch.nn.functional.interpolate(
            patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
            scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)), mode="bicubic")
        assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, nc, w, h = x.shape  # the hub's names: w is the height
        x = self.vit.embeddings.patch_embeddings.projection(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.vit.embeddings.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x, w, h)
        for layer in self.vit.layers:
            x = layer(x, None)
        return self.vit.layernorm(x)[:, 0]


def vbench_consistency_loop(image_features: list[torch.Tensor]) -> float:
    """The loop of VBench's `subject_consistency` / `background_consistency` for one video: sim / cnt."""
    sim, cnt = 0.0, 0
    first = former = None  # set by frame 0, as in VBench
    for i, features in enumerate(image_features):
        features = torch.nn.functional.normalize(features, dim=-1, p=2)
        if i == 0:
            first = features
        else:
            sim_pre = max(0.0, torch.nn.functional.cosine_similarity(former, features).item())
            sim_fir = max(0.0, torch.nn.functional.cosine_similarity(first, features).item())
            sim += (sim_pre + sim_fir) / 2
            cnt += 1
        former = features
    return sim / cnt


@torch.no_grad()
def test_subject_and_background_consistency_equal_vbench(real_images):
    """Issue 22, 4: VBench's float32 path (frames never rounded to 8 bits after resizing) and the DINO hub's
    position-embedding interpolation (scale factors (n + 0.1) / side: on a 4x4 grid stretched to 4x6 even the
    unchanged axis is resampled), with the same random weights: equal within float32 rounding. Before issue 22
    our uint8 resize moved SC by 8e-6 and BC by 1e-5 here, transformers' interpolation the DINO features by 4e-4
    (SC by 1.5e-6)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, ViTConfig, ViTModel

    torch.manual_seed(0)
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                 patch_size=8)
    dino = ViTModel(ViTConfig(**small), add_pooling_layer=False).eval()
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**small, projection_dim=16)).eval()
    photo = real_images[0]
    video = np.stack([np.ascontiguousarray(photo[40:340, 12 * k:12 * k + 450]) for k in range(4)])  # a pan, 450x300

    images = vbench_dino_transform(32)(vbench_frames(video))
    assert images.shape[-2:] == (32, 48)  # a 4 x 6 patch grid: the position embeddings are interpolated
    features = [DinoHub(dino)(images[i].unsqueeze(0)) for i in range(len(images))]
    # the features themselves (transformers' interpolation moves them by 4e-4, the uint8 path by more)
    torch.testing.assert_close(dino_features(video, dino), F.normalize(torch.cat(features), dim=-1), atol=1e-6, rtol=0)
    assert subject_consistency(video, dino) == pytest.approx(vbench_consistency_loop(features), abs=1e-6)

    images = vbench_clip_transform(32)(vbench_frames(video))
    features = clip(pixel_values=images).image_embeds  # OpenAI CLIP's `encode_image`: ln_post(CLS) @ proj
    torch.testing.assert_close(clip_image_embeddings(video, clip, vbench=True), F.normalize(features, dim=-1),
                               atol=1e-6, rtol=0)
    reference = vbench_consistency_loop([features[i].unsqueeze(0) for i in range(len(features))])
    assert background_consistency(video, clip) == pytest.approx(reference, abs=1e-6)


@torch.no_grad()
def test_musiq_equals_pyiqa_inference_on_image_files(tmp_path):
    """Issue 22, 4: our `musiq` (frames as [0, 1] tensors, one at a time, mean) against pyiqa's own inference
    path: an `InferenceModel` from the same state dict called on each frame's PNG (pyiqa reads it with PIL and
    `ToTensor`). Same code after the file is read: equal within 1e-6."""
    from PIL import Image

    ours = load_musiq(None, **TINY_MUSIQ)
    theirs = load_musiq(None, **TINY_MUSIQ)
    theirs.net.load_state_dict(ours.net.state_dict())
    frames = np.random.default_rng(2).integers(0, 256, (2, 48, 72, 3), dtype=np.uint8)
    scores = []
    for k, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{k}.png")
        scores.append(float(theirs(str(tmp_path / f"{k}.png"))))
    assert musiq(frames, ours) == pytest.approx(float(np.mean(scores)), abs=1e-6)


@torch.no_grad()
def test_pseudo_gt_lpips_equals_torchmetrics_lpips_on_a_fully_known_frame():
    """Issue 22, 4: with the whole frame known, our LPIPS (torchmetrics' network with `spatial=True`, the map
    averaged over the pixels) against torchmetrics' public `LearnedPerceptualImagePatchSimilarity(net_type=
    'alex', normalize=True)`, with the same random AlexNet trunk and the same shipped v0.1 linear layers. The
    public metric averages each layer's map at its own resolution, we average the bilinearly upsampled maps:
    the upsampling weights border cells slightly differently, 1e-4 relative at 64x48 (tolerance 2e-3)."""
    import torchvision
    import torchmetrics.functional.image.lpips as tm_lpips
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    torch.manual_seed(1)
    ours = lpips_network(None)
    original = tm_lpips._get_tv_model_features
    # the public class asks torchvision for ImageNet AlexNet weights (a download): build it empty, then copy ours
    tm_lpips._get_tv_model_features = lambda net, pretrained=False: getattr(torchvision.models, net)().features
    try:
        public = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
    finally:
        tm_lpips._get_tv_model_features = original
    public.net.load_state_dict(ours.state_dict())
    rng = np.random.default_rng(3)
    target = rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    video = np.clip(target.astype(int) + rng.integers(-40, 41, target.shape), 0, 255).astype(np.uint8)
    known = torch.ones(3, 48, 64, dtype=torch.bool)
    _, _, lpips = _masked_scores(frames_to_tensor(video), frames_to_tensor(target), known, ours)
    reference = [float(public(frames_to_tensor(video[i:i + 1]), frames_to_tensor(target[i:i + 1]))) for i in range(3)]
    assert lpips == pytest.approx(reference, rel=2e-3)
    assert lpips != pytest.approx(reference, rel=1e-7)  # the difference is real, and this small
