"""XLabs' HED ControlNet as it is released, `flux-hed-controlnet-v3.safetensors` in x-flux's key names (the file
the official SAG code loads), converted to diffusers' `FluxControlNetModel` without a conversion step by the user.

x-flux `ControlNetFlux` -> diffusers: `img_in` -> `x_embedder`, `txt_in` -> `context_embedder`, `time_in`,
`vector_in`, `guidance_in` -> `time_text_embed.*`, per double block the fused `qkv` split into q/k/v,
`norm.query_norm/key_norm.scale` -> `norm_q/norm_k`, `img_mod/txt_mod.lin` -> `norm1(_context).linear`,
`proj` -> `to_out.0`/`to_add_out`, `img_mlp/txt_mlp` -> `ff(_context).net`; `pos_embed_input` ->
`controlnet_x_embedder`; the `input_hint_block` Sequential's convolutions 0, 2, ..., 14 -> `conv_in`,
`blocks.0-5`, `conv_out`. The architecture is read from the tensors; the rotary axes come from the FLUX
transformer the ControlNet serves.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from diffusers import FluxControlNetModel

from vf3d.models.weights import read_safetensors

XLABS_CONTROLNET_FILE = "flux-hed-controlnet-v3.safetensors"
XLABS_CONTROLNET_REPO = "XLabs-AI/flux-controlnet-hed-v3"
HINT_CONVS = {0: "conv_in", 2: "blocks.0", 4: "blocks.1", 6: "blocks.2", 8: "blocks.3", 10: "blocks.4",
              12: "blocks.5", 14: "conv_out"}
EMBEDDERS = {"img_in": "x_embedder", "txt_in": "context_embedder", "pos_embed_input": "controlnet_x_embedder",
             "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
             "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
             "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
             "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
             "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
             "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2"}
BLOCK = {"img_mod.lin": "norm1.linear", "txt_mod.lin": "norm1_context.linear", "img_attn.proj": "attn.to_out.0",
         "txt_attn.proj": "attn.to_add_out", "img_mlp.0": "ff.net.0.proj", "img_mlp.2": "ff.net.2",
         "txt_mlp.0": "ff_context.net.0.proj", "txt_mlp.2": "ff_context.net.2",
         "img_attn.norm.query_norm": "attn.norm_q", "img_attn.norm.key_norm": "attn.norm_k",
         "txt_attn.norm.query_norm": "attn.norm_added_q", "txt_attn.norm.key_norm": "attn.norm_added_k"}
QKV = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
       "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}


def xlabs_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """x-flux ControlNet tensors -> diffusers names; `KeyError` naming the first key it does not know."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name, kind = key.rsplit(".", 1)  # kind: weight, bias or scale
        kind = "weight" if kind == "scale" else kind
        if m := re.fullmatch(r"double_blocks\.(\d+)\.(.+)", name):
            block, part = f"transformer_blocks.{m.group(1)}", m.group(2)
            if part in QKV:
                for target, chunk in zip(QKV[part], value.chunk(3, dim=0)):
                    out[f"{block}.{target}.{kind}"] = chunk.contiguous()
                continue
            if part not in BLOCK:
                raise KeyError(key)
            out[f"{block}.{BLOCK[part]}.{kind}"] = value
        elif m := re.fullmatch(r"input_hint_block\.(\d+)", name):
            if int(m.group(1)) not in HINT_CONVS:
                raise KeyError(key)
            out[f"input_hint_block.{HINT_CONVS[int(m.group(1))]}.{kind}"] = value
        elif m := re.fullmatch(r"controlnet_blocks\.(\d+)", name):
            out[f"controlnet_blocks.{m.group(1)}.{kind}"] = value
        elif name in EMBEDDERS:
            out[f"{EMBEDDERS[name]}.{kind}"] = value
        else:
            raise KeyError(key)
    return out


def load_xlabs_controlnet(path: Path, transformer_config: dict, dtype: torch.dtype = torch.bfloat16
                          ) -> FluxControlNetModel:
    """The released XLabs ControlNet file as a diffusers `FluxControlNetModel`; a file that is not one, or whose
    tensors do not fit, is one `ValueError` naming the file and the first offending keys."""
    path = Path(path)
    state = read_safetensors(path)
    try:
        converted = xlabs_to_diffusers(state)
        blocks = {int(k.split(".")[1]) for k in converted if k.startswith("transformer_blocks.")}
        hidden, in_channels = converted["x_embedder.weight"].shape
        head_dim = converted["transformer_blocks.0.attn.norm_q.weight"].shape[0]
        config = dict(patch_size=2, in_channels=in_channels, num_layers=len(blocks), num_single_layers=0,
                      attention_head_dim=head_dim, num_attention_heads=hidden // head_dim,
                      joint_attention_dim=converted["context_embedder.weight"].shape[1],
                      pooled_projection_dim=converted["time_text_embed.text_embedder.linear_1.weight"].shape[1],
                      guidance_embeds="time_text_embed.guidance_embedder.linear_1.weight" in converted,
                      axes_dims_rope=list(transformer_config["axes_dims_rope"]),
                      conditioning_embedding_channels=converted["input_hint_block.conv_out.weight"].shape[0])
    except KeyError as exc:
        raise ValueError(f"{path}: not an XLabs (x-flux) ControlNet: unknown or missing key {exc}") from None
    with torch.device("meta"):
        model = FluxControlNetModel(**config)
    try:
        result = model.load_state_dict(converted, strict=False, assign=True)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ValueError(f"{path}: not an XLabs (x-flux) ControlNet for this FLUX: "
                         f"{str(exc).splitlines()[-1].strip()}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path}: not an XLabs (x-flux) ControlNet for this FLUX: missing "
                         f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}")
    return model.to(dtype).eval()
