"""Where the `full` profile's weights live, what is present, and loading by profile.

Search order per component: `<weights_dir>/<folder>` (a plain folder in diffusers layout), then the newest
snapshot of the Hugging Face repo in the HF hub cache. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel, FluxControlNetModel, FluxTransformer2DModel

from vf3d.models.cogvideo import (
    COGVIDEO_FOLDER,
    COGVIDEO_REPO,
    GWTF_FILENAME,
    GWTF_REPO,
    GGIComponents,
    load_full_ggi,
    load_ggi_weights,
    missing_ggi_files,
    tiny_cogvideo,
    widen_patch_embed,
)
from vf3d.models.flux import (
    CONTROLNET_FOLDER,
    CONTROLNET_REPO,
    FLUX_FOLDER,
    FLUX_REPO,
    FluxComponents,
    load_full_flux,
    missing_flux_files,
    tiny_flux,
)
from vf3d.models.ggi_checkpoint import expected_ggi_shapes
from vf3d.models.hed import HED_FILENAME, HED_REPO, find_hed_weights
from vf3d.models.midas import MIDAS_COMPONENT, MIDAS_FILENAME
from vf3d.models.raft import RAFT_FILES
from vf3d.models.xlabs_controlnet import XLABS_CONTROLNET_FILE, XLABS_CONTROLNET_REPO
from vf3d.models.captioner import BLIP2_FOLDER, BLIP2_REPO, Captioner, load_full_captioner, tiny_captioner
from vf3d.models.weights import MissingWeightsError, find_annotator_file, has_weights, hf_cache_snapshots

Profile = Literal["tiny", "full"]


def default_hf_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE", Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
                               / "hub"))


@dataclass(frozen=True)
class ModelLocations:
    """Roots searched for `full` weights."""

    weights_dir: Path
    hf_cache: Path

    def resolve(self, folder: str, repo_id: str) -> Path:
        """The local folder for a model: `<weights_dir>/<folder>` if it exists, else the newest HF snapshot."""
        direct = self.weights_dir / folder
        if direct.is_dir():
            return direct
        snapshots = hf_cache_snapshots(self.hf_cache, repo_id)
        return snapshots[-1] if snapshots else direct

    def flux_dirs(self) -> tuple[Path, Path]:
        """FLUX.1-dev's folder and the HED ControlNet: its diffusers folder, else XLabs' released single file."""
        controlnet = self.resolve(CONTROLNET_FOLDER, CONTROLNET_REPO)
        single = self.weights_dir / XLABS_CONTROLNET_FILE
        snapshots = hf_cache_snapshots(self.hf_cache, XLABS_CONTROLNET_REPO)
        if not (controlnet / "config.json").is_file():
            if single.is_file():
                return self.resolve(FLUX_FOLDER, FLUX_REPO), single
            if snapshots and (snapshots[-1] / XLABS_CONTROLNET_FILE).is_file():
                return self.resolve(FLUX_FOLDER, FLUX_REPO), snapshots[-1] / XLABS_CONTROLNET_FILE
        return self.resolve(FLUX_FOLDER, FLUX_REPO), controlnet

    def ggi_files(self) -> tuple[Path, Path]:
        """CogVideoX-5b-I2V folder and the Go-with-the-Flow LoRA file."""
        direct = self.weights_dir / GWTF_FILENAME
        snapshots = hf_cache_snapshots(self.hf_cache, GWTF_REPO)
        lora = direct if direct.is_file() or not snapshots else snapshots[-1] / GWTF_FILENAME
        return self.resolve(COGVIDEO_FOLDER, COGVIDEO_REPO), lora

    def hed_weights(self) -> Path:
        direct = self.weights_dir / HED_FILENAME
        return direct if direct.is_file() else self.weights_dir

    def check(self) -> list[dict]:
        """One row per `full` component of every model stage: stage, component, present, where."""
        flux_dir, controlnet_dir = self.flux_dirs()
        missing = {name: looked for name, looked in missing_flux_files(flux_dir, controlnet_dir)}
        rows = [{"stage": "guidance", "component": "Blender (bpy)", "present": True, "where": "python package"}]
        for name in ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler",
                     "controlnet (HED)"):
            where = str(controlnet_dir if name.startswith("controlnet") else flux_dir / name)
            rows.append({"stage": "sag", "component": name, "present": name not in missing,
                         "where": where if name not in missing else "; ".join(missing[name])})
        rows.append(annotator_row("sag", f"HED annotator ({HED_FILENAME})",
                                  lambda: find_hed_weights(self.hed_weights()), self.weights_dir))
        cogvideo_dir, lora = self.ggi_files()
        missing_ggi = {name: looked for name, looked in missing_ggi_files(cogvideo_dir, None, lora)}
        for name in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
            key = f"CogVideoX-5b-I2V {name}"
            rows.append({"stage": "ggi", "component": key, "present": key not in missing_ggi,
                         "where": "; ".join(missing_ggi.get(key, [str(cogvideo_dir / name)]))})
        key = "Go-with-the-Flow LoRA (CogVideoX-5B I2V)"
        rows.append({"stage": "ggi", "component": key, "present": key not in missing_ggi, "where": str(lora)})
        raft = self.weights_dir / RAFT_FILES[True]
        rows.append({"stage": "ggi", "component": f"RAFT for training on videos ({raft.name})",
                     "present": raft.is_file(), "where": str(raft)})
        rows.append(annotator_row("ggi", f"MiDaS annotator for HED-S, training on videos ({MIDAS_FILENAME})",
                                  lambda: find_annotator_file(self.weights_dir, MIDAS_FILENAME, MIDAS_COMPONENT),
                                  self.weights_dir))
        rows.append({"stage": "ggi", "component": "GGI transformer weights", "present": True,
                     "where": "asset ggi_weights (trained here, or imported with its `pretrained` config)"})
        blip = self.captioner_dir()
        rows.append({"stage": "ggi", "component": f"BLIP-2 captioner ({BLIP2_REPO})",
                     "present": (blip / "config.json").is_file() and has_weights(blip), "where": str(blip)})
        return rows

    def captioner_dir(self) -> Path:
        return self.resolve(BLIP2_FOLDER, BLIP2_REPO)


def annotator_row(stage: str, component: str, find: Callable[[], Path], weights_dir: Path) -> dict:
    """A `check` row for a single-file annotator: where `find` found it, or every path it looked at."""
    try:
        return {"stage": stage, "component": component, "present": True, "where": str(find())}
    except MissingWeightsError as error:
        return {"stage": stage, "component": component, "present": False,
                "where": "; ".join(error.missing[0][1]) or str(weights_dir)}


def load_ggi(profile: Profile, locations: ModelLocations, dtype: torch.dtype, ggi_weights: Path | None,
             seed: int = 0, widened: bool = False) -> GGIComponents:
    """CogVideoX I2V components for a profile.

    `ggi_weights`: the fine-tuned GGI transformer; None = the base I2V model, widened with zero edge weights
    if `widened` (the start of GGI training), else as is (the training-free bidirectional method).
    """
    if profile == "tiny":
        components = tiny_cogvideo(seed, widened=widened or ggi_weights is not None)
        if ggi_weights is not None:
            load_ggi_weights(components.transformer, ggi_weights)
        return components
    if profile == "full":
        cogvideo_dir, lora = locations.ggi_files()
        components = load_full_ggi(cogvideo_dir, ggi_weights, lora, dtype)
        if widened and ggi_weights is None:
            widen_patch_embed(components.transformer, components.transformer.config.out_channels)
        return components
    raise ValueError(f"profile: expected 'tiny' or 'full', got {profile!r}")


def ggi_weight_shapes(profile: Profile, locations: ModelLocations, seed: int = 0) -> dict[str, torch.Size]:
    """Key -> shape of the widened GGI transformer's weights, for verifying imported weights. `full` builds the
    transformer from CogVideoX-5b-I2V's config on the meta device (no weights read, no memory used)."""
    if profile == "tiny":
        return expected_ggi_shapes(tiny_cogvideo(seed, widened=True).transformer)
    if profile == "full":
        folder = locations.ggi_files()[0] / "transformer"
        if not (folder / "config.json").is_file():
            raise MissingWeightsError([("CogVideoX-5b-I2V transformer config", [str(folder / "config.json")])])
        config = CogVideoXTransformer3DModel.load_config(folder)
        with torch.device("meta"):
            model = CogVideoXTransformer3DModel.from_config({**config, "in_channels": 3 * config["out_channels"]})
        return expected_ggi_shapes(model)
    raise ValueError(f"profile: expected 'tiny' or 'full', got {profile!r}")


def ggi_sample_size(profile: Profile, locations: ModelLocations, seed: int = 0) -> tuple[int, int]:
    """(width, height) in pixels the GGI transformer is made for: its sample size times the VAE's spatial factor
    (CogVideoX-5b-I2V: 720x480, which its learned positional embeddings require). Configs only, no weights."""
    if profile == "tiny":
        components = tiny_cogvideo(seed)
        transformer, vae = dict(components.transformer.config), dict(components.vae.config)
    elif profile == "full":
        folder = locations.ggi_files()[0]
        for name in ("transformer", "vae"):
            if not (folder / name / "config.json").is_file():
                raise MissingWeightsError([(f"CogVideoX-5b-I2V {name} config", [str(folder / name / "config.json")])])
        transformer = CogVideoXTransformer3DModel.load_config(folder / "transformer")
        vae = AutoencoderKLCogVideoX.load_config(folder / "vae")
    else:
        raise ValueError(f"profile: expected 'tiny' or 'full', got {profile!r}")
    scale = 2 ** (len(vae["block_out_channels"]) - 1)
    return transformer["sample_width"] * scale, transformer["sample_height"] * scale


def flux_transformer_config(profile: Profile, locations: ModelLocations, seed: int = 0) -> dict:
    """The FLUX transformer's config (architecture only; `full` reads FLUX.1-dev's transformer/config.json)."""
    if profile == "tiny":
        return dict(tiny_flux(seed).transformer.config)
    if profile == "full":
        folder = locations.flux_dirs()[0] / "transformer"
        if not (folder / "config.json").is_file():
            raise MissingWeightsError([("FLUX.1-dev transformer config", [str(folder / "config.json")])])
        return dict(FluxTransformer2DModel.load_config(folder))
    raise ValueError(f"profile: expected 'tiny' or 'full', got {profile!r}")


def flux_controlnet_config(profile: Profile, locations: ModelLocations, seed: int = 0) -> dict:
    """The HED ControlNet's config (architecture only): the diffusers folder's config.json, or, for XLabs' single
    file, the transformer's with the file's block counts (read from its key names, no tensors loaded)."""
    if profile == "tiny":
        return dict(tiny_flux(seed).controlnet.config)
    if profile == "full":
        path = locations.flux_dirs()[1]
        if path.is_file():
            from safetensors import safe_open

            with safe_open(path, "pt") as f:
                keys = list(f.keys())
            count = lambda kind: len({k.split(".")[1] for k in keys if k.startswith(f"{kind}.")})  # noqa: E731
            return {**flux_transformer_config(profile, locations, seed), "num_layers": count("double_blocks"),
                    "num_single_layers": count("single_blocks")}
        if not (path / "config.json").is_file():
            raise MissingWeightsError([("FLUX HED ControlNet config", [str(path / "config.json")])])
        return dict(FluxControlNetModel.load_config(path))
    raise ValueError(f"profile: expected 'tiny' or 'full', got {profile!r}")


def load_captioner(profile: Profile, locations: ModelLocations, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float16, seed: int = 0) -> Captioner:
    """The BLIP-2 captioner for a profile (`tiny`: seeded random, CPU; `full`: from disk)."""
    if profile == "tiny":
        return tiny_captioner(seed)
    if profile == "full":
        return load_full_captioner(locations.captioner_dir(), device, dtype)
    raise ValueError(f"profile: expected 'tiny' or 'full', got {profile!r}")


def load_flux(profile: Profile, locations: ModelLocations, dtype: torch.dtype, seed: int = 0) -> FluxComponents:
    """FLUX + HED ControlNet components for a profile (`tiny`: seeded random; `full`: from disk)."""
    if profile == "tiny":
        return tiny_flux(seed)
    if profile == "full":
        return load_full_flux(*locations.flux_dirs(), dtype=dtype)
    raise ValueError(f"profile: expected 'tiny' or 'full', got {profile!r}")


__all__ = ["HED_REPO", "ModelLocations", "Profile", "default_hf_cache", "load_flux", "load_ggi"]
