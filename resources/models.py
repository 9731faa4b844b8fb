"""The model store resource: which profile runs, and where `full` weights are found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import torch
from dagster import ConfigurableResource, EnvVar
from pydantic import field_validator

from resources.artifacts import default_home
from vf3d.models.cogvideo import GGIComponents
from vf3d.models.flux import FluxComponents
from vf3d.models.hed import EdgeDetector, make_edge_detector
from vf3d.models.captioner import Captioner
from vf3d.models.store import (ModelLocations, default_hf_cache, flux_controlnet_config, flux_transformer_config,
                               ggi_sample_size, ggi_weight_shapes, load_captioner, load_flux, load_ggi)

T = TypeVar("T")

if TYPE_CHECKING:  # evaluation imports pyiqa: loaded only when metrics run
    from evaluation.models import MetricModels


class ModelStore(ConfigurableResource):
    """`tiny`: random weights from configs (tests, demo, CPU). `full`: the paper's checkpoints from disk."""

    profile: str = "tiny"
    """Which weights the model stages use: "tiny" or "full" (a string, so that `VF3D_PROFILE` can set it)."""
    weights_dir: str = ""
    """Folder with FLUX.1-dev/, flux-controlnet-hed-v3/, ControlNetHED.pth; empty = $VF3D_WEIGHTS_DIR or
    <VF3D_HOME>/weights."""
    hf_cache: str = ""
    """Hugging Face hub cache searched after weights_dir; empty = HF_HUB_CACHE or ~/.cache/huggingface/hub."""
    edge_detector: Literal["auto", "classical", "hed"] = "auto"
    """Edge detector for references and line art: auto = classical (tiny) or HED (full)."""
    tiny_seed: int = 0
    """Seed of the tiny profile's random weights."""

    @field_validator("profile", mode="before")
    @classmethod
    def _known_profile(cls, value: object) -> object:
        if not isinstance(value, EnvVar) and value not in ("tiny", "full"):  # an EnvVar: checked once resolved
            raise ValueError(f"profile: expected 'tiny' or 'full', got {value!r} (VF3D_PROFILE or vf3d.toml)")
        return value

    def preset(self, presets: dict[str, T], requested: str = "") -> T:
        """A stage's settings preset: `requested`, or the profile's own ("paper" for real weights, "tiny" for the
        tiny models); an unknown name is one clear error listing the known ones."""
        name = requested or ("paper" if self.profile == "full" else "tiny")
        if name not in presets:
            raise ValueError(f"preset {name!r}: expected one of {', '.join(sorted(presets))}")
        return presets[name]

    def locations(self) -> ModelLocations:
        weights = self.weights_dir or os.environ.get("VF3D_WEIGHTS_DIR", "")
        return ModelLocations(Path(weights) if weights else default_home() / "weights",
                              Path(self.hf_cache) if self.hf_cache else default_hf_cache())

    def flux(self, dtype: torch.dtype) -> FluxComponents:
        return load_flux(self.profile, self.locations(), dtype, self.tiny_seed)

    def ggi(self, dtype: torch.dtype, ggi_weights: Path | None, widened: bool = False) -> GGIComponents:
        return load_ggi(self.profile, self.locations(), dtype, ggi_weights, self.tiny_seed, widened)

    def captioner(self, device: torch.device, dtype: torch.dtype) -> Captioner:
        """BLIP-2 for the GGI prompt (float16 on a GPU as the official code, the given dtype elsewhere)."""
        return load_captioner(self.profile, self.locations(), device,
                              torch.float16 if torch.device(device).type == "cuda" else dtype, self.tiny_seed)

    def flux_transformer_config(self) -> dict:
        return flux_transformer_config(self.profile, self.locations(), self.tiny_seed)

    def flux_controlnet_config(self) -> dict:
        return flux_controlnet_config(self.profile, self.locations(), self.tiny_seed)

    def ggi_sample_size(self) -> tuple[int, int]:
        return ggi_sample_size(self.profile, self.locations(), self.tiny_seed)

    def ggi_weight_shapes(self) -> dict[str, torch.Size]:
        return ggi_weight_shapes(self.profile, self.locations(), self.tiny_seed)

    def metric_models(self, device: torch.device, dtype: torch.dtype, aesthetic_head: str = "laion_linear"
                      ) -> MetricModels:
        """Every metric network: random tiny models (values tagged `tiny`) or the real ones from disk;
        `aesthetic_head`: CLIP-A's head (`evaluation.quality.AESTHETIC_HEADS`)."""
        from evaluation.models import full_metric_models, tiny_metric_models

        if self.profile == "tiny":
            return tiny_metric_models(self.tiny_seed, device, aesthetic_head)
        locations = self.locations()
        return full_metric_models(locations.weights_dir / "metrics", device, locations.hf_cache,
                                  aesthetic_head=aesthetic_head)

    def edges(self, device: torch.device, dtype: torch.dtype, detect_resolution: int | None = None) -> EdgeDetector:
        return make_edge_detector(self.edge_detector, self.profile, self.locations().hed_weights(), device, dtype,
                                  detect_resolution)
