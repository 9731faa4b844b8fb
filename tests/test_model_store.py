"""The `full` loading path, exercised with tiny components saved in the FLUX.1-dev + XLabs layout."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from vf3d.models.flux import CONTROLNET_FOLDER, FLUX_FOLDER, save_full_layout, tiny_flux
from vf3d.models.midas import MIDAS_FILENAME
from vf3d.models.store import ModelLocations, load_flux
from vf3d.models.weights import MissingWeightsError
from vf3d.sag.sampling import SAG_PRESETS, SAGPipeline
from vf3d_assets.cli import main


def _image(components):
    pipe = components.pipeline()
    pipe.set_progress_bar_config(disable=True)
    control = Image.fromarray(np.zeros((48, 64, 3), np.uint8))
    return np.asarray(SAGPipeline(pipe)("a photo in sks style", control, 48, 64, settings=SAG_PRESETS["tiny"],
                                        generator=torch.Generator().manual_seed(0)).image)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    save_full_layout(tiny_flux(0), root / FLUX_FOLDER, root / CONTROLNET_FOLDER)
    return root


def test_full_profile_loads_tiny_components_saved_in_the_full_layout(weights, tmp_path):
    locations = ModelLocations(weights, tmp_path / "no-cache")
    loaded, original = load_flux("full", locations, torch.float32), tiny_flux(0)
    assert loaded.controlnet.input_hint_block is not None  # the XLabs pixel-hint layout survived
    for name in ("transformer", "controlnet", "vae", "text_encoder", "text_encoder_2"):
        saved, back = getattr(original, name).state_dict(), getattr(loaded, name).state_dict()
        assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved), name
    # Same weights; kernels chosen at load time (attention backends) may differ in the last bit.
    difference = np.abs(_image(loaded).astype(int) - _image(original).astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.05


def test_hf_cache_snapshot_is_found(weights, tmp_path):
    cache = tmp_path / "hub"
    snapshot = cache / "models--black-forest-labs--FLUX.1-dev" / "snapshots" / "abc123"
    shutil.copytree(weights / FLUX_FOLDER, snapshot)
    locations = ModelLocations(tmp_path / "empty", cache)
    assert locations.flux_dirs()[0] == snapshot


def test_missing_components_are_named_with_where_they_were_looked_for(weights, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(weights, partial)
    shutil.rmtree(partial / FLUX_FOLDER / "text_encoder_2")
    (partial / CONTROLNET_FOLDER / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(MissingWeightsError) as error:
        load_flux("full", ModelLocations(partial, tmp_path / "no-cache"), torch.float32)
    message = str(error.value)
    assert "text_encoder_2" in message and str(partial / FLUX_FOLDER / "text_encoder_2") in message
    assert "controlnet (HED)" in message and str(partial / CONTROLNET_FOLDER) in message
    assert "transformer" not in message.replace("text_encoder", "")


def test_check_weights_lists_every_stage(weights, capsys, monkeypatch):
    monkeypatch.setenv("VF3D_WEIGHTS_DIR", str(weights))
    assert main(["check-weights"]) == 0
    out = capsys.readouterr().out
    assert "sag" in out and "transformer" in out and "present" in out
    assert "HED annotator" in out and "missing" in out
    assert "ggi" in out and "CogVideoX-5b-I2V transformer" in out
    assert "metrics" in out and "DINO ViT-B/16" in out


def test_check_finds_the_annotator_files_where_controlnet_aux_keeps_them(tmp_path):
    rows = {row["component"]: row for row in ModelLocations(tmp_path, tmp_path / "no-cache").check()}
    midas = next(name for name in rows if name.startswith("MiDaS annotator for HED-S"))
    expected = tmp_path / "lllyasviel/Annotators" / MIDAS_FILENAME
    assert not rows[midas]["present"] and str(expected) in rows[midas]["where"]
    (tmp_path / "lllyasviel/Annotators").mkdir(parents=True)
    (tmp_path / "lllyasviel/Annotators" / MIDAS_FILENAME).touch()
    rows = {row["component"]: row for row in ModelLocations(tmp_path, tmp_path / "no-cache").check()}
    assert rows[midas]["present"] and rows[midas]["where"] == str(tmp_path / "lllyasviel/Annotators" / MIDAS_FILENAME)
