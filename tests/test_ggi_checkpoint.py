"""The official GGI checkpoint (sharded, PEFT adapter inside, config.json) and our weights file are imported
as they are distributed, and anything partial or mismatched is one clear error."""

import copy
import json

import pytest
import torch
from dagster import materialize
from peft import LoraConfig
from safetensors.torch import save_file

from resources import ArtifactStore, ModelStore
from vf3d.models.cogvideo import GWTF_TARGET_MODULES, ggi_state_dict, load_ggi_weights, tiny_cogvideo
from vf3d.models.ggi_checkpoint import INDEX_FILE, expected_ggi_shapes, import_ggi_weights
from vf3d_assets.assets.ggi import ggi_weights


def official_checkpoint(folder, seed=3):
    """A tiny GGI transformer saved as the official training does: Go-with-the-Flow adapter `default` (rank 2048,
    alpha 2048) attached, `save_pretrained` with shards (`max_shard_size` small enough to shard here too)."""
    transformer = tiny_cogvideo(seed, widened=True).transformer
    torch.manual_seed(seed)
    for p in transformer.parameters():
        p.data.normal_()  # trained weights: nothing left at its initial value
    transformer.add_adapter(LoraConfig(r=2048, lora_alpha=2048, init_lora_weights=True,
                                       target_modules=GWTF_TARGET_MODULES))
    transformer.save_pretrained(folder / "transformer", safe_serialization=True, max_shard_size="200KB")
    return transformer


def test_official_checkpoint_imports_without_conversion(tmp_path):
    trained = official_checkpoint(tmp_path / "checkpoint-1350")
    shards = sorted((tmp_path / "checkpoint-1350" / "transformer").glob("*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "checkpoint-1350" / "transformer" / INDEX_FILE).is_file()
    assert any(".base_layer." in k for k in json.loads(
        (tmp_path / "checkpoint-1350" / "transformer" / INDEX_FILE).read_text())["weight_map"])
    fresh = tiny_cogvideo(0, widened=True).transformer
    state, report = import_ggi_weights(tmp_path / "checkpoint-1350", expected_ggi_shapes(fresh))
    expected = ggi_state_dict(trained)
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in expected)
    assert report["tensors_verified"] == len(expected) and report["adapter_ranks"] == [2048]
    assert report["adapter_targets"] == sorted(GWTF_TARGET_MODULES) and len(report["files"]) == len(shards)
    # The imported weights load strictly into our transformer and give the trained model's weights.
    save_file(state, tmp_path / "ggi.safetensors")
    load_ggi_weights(fresh, tmp_path / "ggi.safetensors")
    assert all(torch.equal(fresh.state_dict()[k], expected[k]) for k in expected)
    # Our own single-file layout goes through the same verification.
    assert import_ggi_weights(tmp_path / "ggi.safetensors", expected_ggi_shapes(fresh))[1]["tensors_verified"] == \
        len(expected)


def test_partial_or_mismatched_checkpoints_are_one_clear_error(tmp_path):
    official_checkpoint(tmp_path / "ckpt")
    shapes = expected_ggi_shapes(tiny_cogvideo(0, widened=True).transformer)
    folder = tmp_path / "ckpt" / "transformer"
    missing_shard = sorted(folder.glob("*.safetensors"))[-1]
    saved = missing_shard.read_bytes()
    missing_shard.unlink()
    with pytest.raises(ValueError, match=f"incomplete checkpoint.*{missing_shard.name}"):
        import_ggi_weights(tmp_path / "ckpt", shapes)
    missing_shard.write_bytes(saved[:100])
    with pytest.raises(ValueError, match=f"{missing_shard.name}: not a readable safetensors file"):
        import_ggi_weights(tmp_path / "ckpt", shapes)
    # Weights of a base (unwidened) transformer: the patch embedding's shape differs.
    base = tiny_cogvideo(0, widened=False).transformer
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, tmp_path / "base.safetensors")
    with pytest.raises(ValueError, match=r"base.safetensors: not GGI weights.*shape mismatch 1 \(first: "
                                         r"patch_embed.proj.weight"):
        import_ggi_weights(tmp_path / "base.safetensors", shapes)
    partial = {k: v for k, v in ggi_state_dict(tiny_cogvideo(0, widened=True).transformer).items()
               if not k.startswith("transformer_blocks.0.")}
    save_file(partial, tmp_path / "partial.safetensors")
    with pytest.raises(ValueError, match=r"missing \d+ \(first: transformer_blocks.0."):
        import_ggi_weights(tmp_path / "partial.safetensors", shapes)
    with pytest.raises(ValueError, match="not an official GGI checkpoint"):
        import_ggi_weights(tmp_path, shapes)


def test_ggi_weights_asset_imports_the_official_checkpoint_and_reports_what_it_verified(tmp_path):
    official_checkpoint(tmp_path / "checkpoint-1350")
    result = materialize([ggi_weights], resources={"artifacts": ArtifactStore(root=str(tmp_path / "artifacts")),
                                                   "models": ModelStore(profile="tiny"), "gpu": _gpu()},
                         run_config={"ops": {"ggi_weights": {"config": {
                             "pretrained": str(tmp_path / "checkpoint-1350")}}}})
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["tensors_verified"].value == len(expected_ggi_shapes(
        tiny_cogvideo(0, widened=True).transformer))
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["import"].value["layout"].startswith("official checkpoint")
    bad = copy.deepcopy(tiny_cogvideo(0, widened=False).transformer)
    save_file({k: v.contiguous() for k, v in bad.state_dict().items()}, tmp_path / "base.safetensors")
    failed = materialize([ggi_weights], resources={"artifacts": ArtifactStore(root=str(tmp_path / "artifacts")),
                                                   "models": ModelStore(profile="tiny"), "gpu": _gpu()},
                         run_config={"ops": {"ggi_weights": {"config": {"pretrained": str(tmp_path / "base.safetensors")}}}},
                         raise_on_error=False)
    assert not failed.success


def _gpu():
    from resources import GPU
    return GPU(device="cpu")


def test_full_profile_verifies_against_the_cogvideo_config_without_loading_weights(tmp_path):
    from vf3d.models.cogvideo import COGVIDEO_FOLDER, save_full_layout

    components = tiny_cogvideo(0, widened=False)
    save_full_layout(components, tmp_path / COGVIDEO_FOLDER, tmp_path / "ggi.safetensors")
    shapes = ModelStore(profile="full", weights_dir=str(tmp_path)).ggi_weight_shapes()
    assert shapes == expected_ggi_shapes(tiny_cogvideo(0, widened=True).transformer)
    assert shapes["patch_embed.proj.weight"][1] == 3 * components.transformer.config.out_channels
