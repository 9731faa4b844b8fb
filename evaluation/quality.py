"""Visual quality (paper Sec. 4.2, Tables 1-3): CLIP-A (LAION aesthetic predictor) and MUSIQ.

- CLIP-A: an aesthetic head on L2-normalised CLIP ViT-L/14 image embeddings, roughly a 1-10 rating; mean over
  all frames. Two released heads (`AESTHETIC_HEADS`), on different scales, so the record names the one used:
  - `laion_linear` (default): LAION-AI/aesthetic-predictor's linear probe `sa_0_4_vit_l_14_linear.pth`, the
    predictor the paper cites [LAION-AI 2023] and the one VBench's aesthetic quality uses (VBench divides
    its score by 10; the paper's 6.7 is the raw score, so we keep it raw);
  - `improved_mlp`: christophschuhmann/improved-aesthetic-predictor's MLP `sac+logos+ava1-l14-linearMSE.pth`.
- MUSIQ [Ke et al. 2021]: pyiqa's `musiq` (the KonIQ-10k checkpoint, scores ~0-100, the scale of the paper's
  50-69), on the frames at their own resolution (multi-scale patches). Mean over all frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evaluation.features import clip_image_embeddings, frame_batches, frames_to_tensor

CLIP_L14_EMBED_DIM = 768


class MLPAestheticHead(nn.Module):
    """The improved aesthetic predictor's MLP; the module layout (`layers.0/2/4/6/7`) matches its state dict."""

    def __init__(self, embed_dim: int = CLIP_L14_EMBED_DIM):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(embed_dim, 1024), nn.Dropout(0.2),
            nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, embed_dim) L2-normalised CLIP image embeddings -> (B,) aesthetic scores."""
        return self.layers(embeddings)[:, 0]


class LinearAestheticHead(nn.Linear):
    """LAION's linear aesthetic probe: `nn.Linear(768, 1)`, state dict keys `weight` and `bias` (as VBench
    loads it)."""

    def __init__(self, embed_dim: int = CLIP_L14_EMBED_DIM):
        super().__init__(embed_dim, 1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return super().forward(embeddings)[:, 0]


@dataclass(frozen=True)
class AestheticHeadSpec:
    file: str
    source: str
    module: type[nn.Module]


AESTHETIC_HEADS = {
    "laion_linear": AestheticHeadSpec("sa_0_4_vit_l_14_linear.pth", "LAION-AI/aesthetic-predictor",
                                      LinearAestheticHead),
    "improved_mlp": AestheticHeadSpec("sac+logos+ava1-l14-linearMSE.pth",
                                      "christophschuhmann/improved-aesthetic-predictor", MLPAestheticHead),
}
DEFAULT_AESTHETIC_HEAD = "laion_linear"


def aesthetic_head_spec(name: str) -> AestheticHeadSpec:
    if name not in AESTHETIC_HEADS:
        raise ValueError(f"aesthetic_head={name!r}: expected one of {', '.join(AESTHETIC_HEADS)}")
    return AESTHETIC_HEADS[name]


def load_aesthetic_head(path: Path, name: str = DEFAULT_AESTHETIC_HEAD) -> nn.Module:
    """The head `name` from its released state-dict file; a wrong file -> `ValueError` naming it."""
    spec = aesthetic_head_spec(name)
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    first = state.get("layers.0.weight", state.get("weight"))
    head = spec.module(embed_dim=first.shape[1] if first is not None else CLIP_L14_EMBED_DIM)
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: not the {name} aesthetic head ({spec.source}) state dict "
                         f"({str(exc).splitlines()[0]})") from None
    return head.eval().requires_grad_(False)


@torch.no_grad()
def clip_aesthetic(frames: Sequence[np.ndarray] | np.ndarray, clip_model: nn.Module, head: nn.Module) -> float:
    """CLIP-A: mean aesthetic score of the frames. `clip_model`: CLIP ViT-L/14 `CLIPVisionModelWithProjection`."""
    embeddings = clip_image_embeddings(frames, clip_model)
    parameter = next(head.parameters())
    return float(head(embeddings.to(parameter.device, parameter.dtype)).float().mean())


@torch.no_grad()
def musiq(frames: Sequence[np.ndarray] | np.ndarray, musiq_model: nn.Module) -> float:
    """MUSIQ: mean score of the frames, one at a time (pyiqa's `InferenceModel`, inputs in [0, 1])."""
    device = next(musiq_model.parameters()).device
    scores = [float(musiq_model(frames_to_tensor(frame).to(device))) for frame in frame_batches(frames, 1)]
    return float(np.mean(scores))
