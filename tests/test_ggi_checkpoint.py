"""The official GGI checkpoint (sharded, PEFT adapter inside, config.json) and our weights file are imported
as they are distributed, and anything partial or mismatched is one clear error."""

import copy
import json
from glob import glob

import pytest
import torch
from dagster import materialize
from peft import LoraConfig, get_peft_model_state_dict
from safetensors.torch import load_file, save_file

from resources import ArtifactStore, ModelStore
from vf3d.models.cogvideo import GWTF_ADAPTER, GWTF_TARGET_MODULES, ggi_state_dict, load_ggi_weights, tiny_cogvideo
from vf3d.models.ggi_checkpoint import INDEX_FILE, expected_ggi_shapes, import_ggi_weights
from vf3d_assets.assets.ggi import ggi_weights


def official_checkpoint(folder, seed=3):
    """A tiny GGI transformer saved as the official training does (fork `training_ggi/exps/T073-000.py` l. 194-210,
    289-297): Go-with-the-Flow adapter `default` (rank 2048, alpha 2048) attached and loaded with its weights (here
    random, B non-zero, so the adapter changes the outputs), `save_pretrained` with shards (`max_shard_size` small
    enough to shard here too)."""
    transformer = tiny_cogvideo(seed, widened=True).transformer
    torch.manual_seed(seed)
    for p in transformer.parameters():
        p.data.normal_()  # trained weights: nothing left at its initial value
    transformer.add_adapter(LoraConfig(r=2048, lora_alpha=2048, init_lora_weights=True,
                                       target_modules=GWTF_TARGET_MODULES))
    for name, p in transformer.named_parameters():
        if ".lora_" in name:  # the loaded Go-with-the-Flow LoRA: A and B both non-zero
            p.data.normal_(std=0.02)
    transformer.save_pretrained(folder / "transformer", safe_serialization=True, max_shard_size="200KB")
    return transformer


def official_ggi_py_load(path_ckpt):
    """The official inference's loading, `ggi.py` l. 104-123, with the tiny model standing in for
    `CogVideoXImageToVideoPipeline.from_pretrained(...)`: widen the patch embedding to 48 (`ch_channel_cnn`), add the
    adapter LoraConfig(r=2048, lora_alpha=2048, init_lora_weights=True, target_modules=["to_k", "to_q", "to_v",
    "to_out.0"]), `register_to_config(**config.json)`, then `load_state_dict` of every tensor of every shard."""
    transformer = tiny_cogvideo(11, widened=True).transformer
    transformer.add_adapter(LoraConfig(r=2048, lora_alpha=2048, init_lora_weights=True,
                                       target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    transformer.register_to_config(**json.loads((path_ckpt / "config.json").read_text()))
    state_dict = {}
    for shard_file in glob(str(path_ckpt / "*.safetensors")):
        state_dict.update(load_file(shard_file))
    transformer.load_state_dict(state_dict)
    return transformer.eval()


def _output(transformer):
    """The transformer's prediction on one fixed input (latents of 3 frames, 48 channels, a text embedding)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return transformer(hidden_states=torch.randn(1, 3, 48, 6, 8, generator=g),
                           encoder_hidden_states=torch.randn(1, 7, 32, generator=g), timestep=torch.tensor([500]),
                           return_dict=False)[0]


def test_official_checkpoint_imports_without_conversion(tmp_path):
    trained = official_checkpoint(tmp_path / "checkpoint-1350")
    shards = sorted((tmp_path / "checkpoint-1350" / "transformer").glob("*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "checkpoint-1350" / "transformer" / INDEX_FILE).is_file()
    assert any(".base_layer." in k for k in json.loads(
        (tmp_path / "checkpoint-1350" / "transformer" / INDEX_FILE).read_text())["weight_map"])
    fresh = tiny_cogvideo(0, widened=True).transformer
    state, report = import_ggi_weights(tmp_path / "checkpoint-1350", expected_ggi_shapes(fresh))
    expected, adapter = ggi_state_dict(trained), get_peft_model_state_dict(trained)
    assert state.keys() == expected.keys() | adapter.keys() and len(adapter) > 0
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert all(torch.equal(state[k], adapter[k]) for k in adapter)  # the checkpoint's own adapter, kept
    assert report["tensors_verified"] == len(expected) and report["adapter_ranks"] == [2048]
    assert report["adapter_targets"] == sorted(GWTF_TARGET_MODULES) and len(report["files"]) == len(shards)
    # The imported weights load strictly into our transformer and give the trained model's weights and adapter.
    save_file(state, tmp_path / "ggi.safetensors")
    load_ggi_weights(fresh, tmp_path / "ggi.safetensors")
    loaded, loaded_adapter = ggi_state_dict(fresh), get_peft_model_state_dict(fresh, adapter_name=GWTF_ADAPTER)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    assert loaded_adapter.keys() == adapter.keys() and all(torch.equal(loaded_adapter[k], adapter[k]) for k in adapter)
    # Our own single-file layout goes through the same verification.
    assert import_ggi_weights(tmp_path / "ggi.safetensors", expected_ggi_shapes(fresh))[1]["tensors_verified"] == \
        len(expected)


def test_a_user_with_only_checkpoint_1350_runs_exactly_the_official_model(tmp_path):
    """Official `ggi.py` l. 104-123 uses the adapter stored in the checkpoint. Imported, our weights give the same
    outputs through both loaders (tiny: `load_ggi_weights`; full: `load_full_ggi`, with no Go-with-the-Flow file
    on disk); with the adapter discarded (the option, our previous import) they do not."""
    from vf3d.models.cogvideo import load_full_ggi, save_full_layout

    official_checkpoint(tmp_path / "checkpoint-1350")
    official = _output(official_ggi_py_load(tmp_path / "checkpoint-1350" / "transformer"))
    shapes = expected_ggi_shapes(tiny_cogvideo(0, widened=True).transformer)
    state, report = import_ggi_weights(tmp_path / "checkpoint-1350", shapes)
    assert report["adapter"].startswith("kept")
    save_file(state, tmp_path / "ggi.safetensors")
    ours = tiny_cogvideo(5, widened=True).transformer
    load_ggi_weights(ours, tmp_path / "ggi.safetensors")
    torch.testing.assert_close(_output(ours.eval()), official, rtol=0, atol=1e-6)
    folder = tmp_path / "CogVideoX-5b-I2V"
    save_full_layout(tiny_cogvideo(0, widened=False), folder, tmp_path / "unused.safetensors")
    full = load_full_ggi(folder, tmp_path / "ggi.safetensors", tmp_path / "no-gwtf-lora.safetensors",
                         dtype=torch.float32)
    torch.testing.assert_close(_output(full.transformer), official, rtol=0, atol=1e-6)
    discarded, report = import_ggi_weights(tmp_path / "checkpoint-1350", shapes, adapter="discard")
    assert report["adapter"].startswith("discarded") and not any(".lora_" in k for k in discarded)
    save_file(discarded, tmp_path / "no-adapter.safetensors")
    bare = tiny_cogvideo(5, widened=True).transformer
    load_ggi_weights(bare, tmp_path / "no-adapter.safetensors")
    assert (_output(bare.eval()) - official).abs().max() > 1e-3  # the adapter matters: the test can tell


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
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    check = checks["loss_decreased"]  # and loss_curve_falls: imported, no curve to judge
    assert checks["loss_curve_falls"].passed and checks["loss_curve_falls"].metadata["trained"].value is False
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
