"""Visual quality (paper Sec. 4.2, Tables 1-3): CLIP-A (LAION aesthetic predictor) and MUSIQ.

- CLIP-A: the LAION "improved aesthetic predictor" [LAION-AI 2023]: an MLP on L2-normalised CLIP ViT-L/14
  image embeddings (`sac+logos+ava1-l14-linearMSE.pth`), roughly a 1-10 rating. Mean over all frames.
- MUSIQ [Ke et al. 2021]: pyiqa's `musiq` (the KonIQ-10k checkpoint, scores ~0-100, the scale of the paper's
  50-69), on the frames at their own resolution (multi-scale patches). Mean over all frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evaluation.features import clip_image_embeddings, frame_batches

AESTHETIC_HEAD_FILE = "sac+logos+ava1-l14-linearMSE.pth"
CLIP_L14_EMBED_DIM = 768


class AestheticHead(nn.Module):
    """LAION's aesthetic MLP; the module layout (`layers.0/2/4/6/7`) matches the released state dict."""

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


def load_aesthetic_head(path: Path) -> AestheticHead:
    """The head from a state-dict file (LAION's .pth); a wrong file -> `ValueError` naming it."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    first = state.get("layers.0.weight")
    head = AestheticHead(embed_dim=first.shape[1] if first is not None else CLIP_L14_EMBED_DIM)
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a LAION aesthetic predictor state dict ({str(exc).splitlines()[0]})") from None
    return head.eval().requires_grad_(False)


@torch.no_grad()
def clip_aesthetic(frames: Sequence[np.ndarray] | np.ndarray, clip_model: nn.Module, head: AestheticHead) -> float:
    """CLIP-A: mean aesthetic score of the frames. `clip_model`: CLIP ViT-L/14 `CLIPVisionModelWithProjection`."""
    embeddings = clip_image_embeddings(frames, clip_model)
    parameter = next(head.parameters())
    return float(head(embeddings.to(parameter.device, parameter.dtype)).float().mean())


@torch.no_grad()
def musiq(frames: Sequence[np.ndarray] | np.ndarray, musiq_model: nn.Module) -> float:
    """MUSIQ: mean score of the frames, one at a time (pyiqa's `InferenceModel`, inputs in [0, 1])."""
    device = next(musiq_model.parameters()).device
    scores = [float(musiq_model(frame.to(device))) for frame in frame_batches(frames, batch_size=1)]
    return float(np.mean(scores))
