"""XLabs' released HED ControlNet file (x-flux key names) loads as diffusers' FluxControlNetModel, exactly."""

import pytest
import torch
from safetensors.torch import save_file

from vf3d.models.flux import tiny_flux
from vf3d.models.xlabs_controlnet import load_xlabs_controlnet


def xflux_names(controlnet) -> dict[str, torch.Tensor]:
    """The diffusers ControlNet's tensors under x-flux's names, as XLabs distributes them (fused qkv, `scale`)."""
    state, out = controlnet.state_dict(), {}
    rename = {"x_embedder": "img_in", "context_embedder": "txt_in", "controlnet_x_embedder": "pos_embed_input",
              "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
              "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
              "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
              "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
              "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
              "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer"}
    block = {"norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin", "attn.to_out.0": "img_attn.proj",
             "attn.to_add_out": "txt_attn.proj", "ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2",
             "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2"}
    norms = {"attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
             "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm"}
    hint = {"conv_in": 0, **{f"blocks.{i}": 2 * (i + 1) for i in range(6)}, "conv_out": 14}
    for i in range(len(controlnet.transformer_blocks)):
        b = f"transformer_blocks.{i}"
        for kind in ("weight", "bias"):
            out[f"double_blocks.{i}.img_attn.qkv.{kind}"] = torch.cat([state[f"{b}.attn.to_{x}.{kind}"] for x in "qkv"])
            out[f"double_blocks.{i}.txt_attn.qkv.{kind}"] = torch.cat(
                [state[f"{b}.attn.add_{x}_proj.{kind}"] for x in "qkv"])
            for ours, theirs in block.items():
                out[f"double_blocks.{i}.{theirs}.{kind}"] = state[f"{b}.{ours}.{kind}"]
        for ours, theirs in norms.items():
            out[f"double_blocks.{i}.{theirs}.scale"] = state[f"{b}.{ours}.weight"]
    for kind in ("weight", "bias"):
        for ours, theirs in rename.items():
            out[f"{theirs}.{kind}"] = state[f"{ours}.{kind}"]
        for ours, index in hint.items():
            out[f"input_hint_block.{index}.{kind}"] = state[f"input_hint_block.{ours}.{kind}"]
        for i in range(len(controlnet.controlnet_blocks)):
            out[f"controlnet_blocks.{i}.{kind}"] = state[f"controlnet_blocks.{i}.{kind}"]
    assert len(out) == len(state) - 2 * len(controlnet.transformer_blocks) * 2 * 2  # fused q/k/v (weight, bias)
    return {k: v.contiguous() for k, v in out.items()}


def test_the_released_xlabs_file_loads_and_computes_what_the_diffusers_model_does(tmp_path):
    components = tiny_flux(0)
    reference = components.controlnet
    torch.manual_seed(5)
    for p in reference.parameters():
        p.data.normal_(0, 0.2)  # trained: the zero-initialised blocks are not zero any more
    save_file(xflux_names(reference), tmp_path / "flux-hed-controlnet-v3.safetensors")
    loaded = load_xlabs_controlnet(tmp_path / "flux-hed-controlnet-v3.safetensors",
                                   dict(components.transformer.config), dtype=torch.float32)
    assert dict(loaded.config)["num_layers"] == 2 and loaded.config.conditioning_embedding_channels == 4
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    pipe = components.pipeline()
    pipe.controlnet = loaded
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 12, 16, generator=g)  # 48x64: 3x4 packed tokens of in_channels
    args = dict(hidden_states=z, controlnet_cond=torch.randn(1, 3, 48, 64, generator=g), conditioning_scale=0.8,
                timestep=torch.tensor([0.5]), guidance=torch.tensor([4.0]),
                pooled_projections=torch.randn(1, 32, generator=g), encoder_hidden_states=torch.randn(1, 7, 32, generator=g),
                txt_ids=torch.zeros(7, 3), img_ids=pipe._prepare_latent_image_ids(1, 3, 4, "cpu", torch.float32),
                return_dict=False)
    with torch.no_grad():
        for ours, theirs in zip(loaded(**args)[0], reference(**args)[0]):
            assert torch.equal(ours, theirs)


def test_a_wrong_or_partial_file_is_one_clear_error(tmp_path):
    components = tiny_flux(0)
    state = xflux_names(components.controlnet)
    state["double_blocks.0.img_attn.extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "odd.safetensors")
    with pytest.raises(ValueError, match=r"odd.safetensors: not an XLabs .*double_blocks.0.img_attn.extra.weight"):
        load_xlabs_controlnet(tmp_path / "odd.safetensors", dict(components.transformer.config))
    state = xflux_names(components.controlnet)
    del state["controlnet_blocks.1.weight"]
    save_file(state, tmp_path / "partial.safetensors")
    with pytest.raises(ValueError, match=r"partial.safetensors: .*missing \['controlnet_blocks.1.weight'\]"):
        load_xlabs_controlnet(tmp_path / "partial.safetensors", dict(components.transformer.config))


def test_the_full_profile_uses_the_single_file_when_there_is_no_diffusers_folder(tmp_path):
    from vf3d.models.flux import FLUX_FOLDER, save_full_layout
    from vf3d.models.store import ModelLocations, load_flux

    components = tiny_flux(0)
    save_full_layout(components, tmp_path / FLUX_FOLDER, tmp_path / "unused-controlnet")
    save_file(xflux_names(components.controlnet), tmp_path / "flux-hed-controlnet-v3.safetensors")
    locations = ModelLocations(tmp_path, tmp_path / "no-hf-cache")
    assert locations.flux_dirs()[1] == tmp_path / "flux-hed-controlnet-v3.safetensors"
    loaded = load_flux("full", locations, torch.float32)
    for key, value in components.controlnet.state_dict().items():
        assert torch.equal(loaded.controlnet.state_dict()[key], value), key
