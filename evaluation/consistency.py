"""Style consistency (paper Sec. 4.2, Table 2): CLIP-I and VBench's Subject / Background Consistency.

- CLIP-I: cosine similarity of the CLIP image embeddings of each frame and the style reference image,
  averaged over the frames. The paper does not name the CLIP model; we use ViT-L/14, the one CLIP-A needs.
- SC / BC [Huang et al. 2024, VBench]: `vbench_consistency` of DINO ViT-B/16 CLS features (SC) and CLIP
  ViT-B/32 image embeddings (BC), preprocessed as VBench does (`evaluation.features`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from evaluation.features import clip_image_embeddings, dino_features


def vbench_consistency(features: torch.Tensor) -> float:
    """VBench's consistency of per-frame features (T, D): for frames t = 1..T-1 the mean of
    max(0, cos(f_t, f_0)) and max(0, cos(f_t, f_{t-1})), averaged over those frames; 1.0 for a single frame."""
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features: expected (T, D) with T >= 1, got shape {tuple(features.shape)}")
    if features.shape[0] == 1:
        return 1.0
    features = F.normalize(features.double(), dim=-1)
    to_first = (features[1:] @ features[0]).clamp(min=0)
    to_previous = (features[1:] * features[:-1]).sum(dim=-1).clamp(min=0)
    return float(((to_first + to_previous) / 2).mean())


def clip_image_similarity(frames: Sequence[np.ndarray] | np.ndarray, reference_image: np.ndarray,
                          clip_model: torch.nn.Module) -> float:
    """CLIP-I: mean cosine between each frame's and the reference image's CLIP embeddings.

    `reference_image`: (H', W', 3) uint8 of any size; `clip_model`: a `CLIPVisionModelWithProjection`.
    """
    frames = clip_image_embeddings(frames, clip_model)
    reference = clip_image_embeddings(np.asarray(reference_image)[None], clip_model)
    return float((frames.double() @ reference[0].double()).mean())


def subject_consistency(frames: Sequence[np.ndarray] | np.ndarray, dino_model: torch.nn.Module) -> float:
    """VBench Subject Consistency: `vbench_consistency` of DINO CLS features (`dino_model`: a `ViTModel`)."""
    return vbench_consistency(dino_features(frames, dino_model))


def background_consistency(frames: Sequence[np.ndarray] | np.ndarray, clip_model: torch.nn.Module) -> float:
    """VBench Background Consistency: `vbench_consistency` of CLIP ViT-B/32 image embeddings (VBench's
    `clip_transform`)."""
    return vbench_consistency(clip_image_embeddings(frames, clip_model, vbench=True))
