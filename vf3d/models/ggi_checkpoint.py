"""GGI weights as users hold them, imported without conversion steps and verified key by key.

Two layouts are accepted:

- **ours**: one safetensors file of the widened transformer's own weights (`ggi_state_dict`);
- **the official release**: `checkpoint-<step>/transformer/` (or the `checkpoint-<step>` folder above it),
  as the official GGI training writes it with `save_pretrained(max_shard_size="5GB")`: `config.json`
  (`in_channels` 48) and sharded `diffusion_pytorch_model-0000k-of-0000n.safetensors` with their
  `.index.json`. The Go-with-the-Flow adapter (PEFT adapter `default`: rank 2048, alpha 2048 on
  `to_q`/`to_k`/`to_v`/`to_out.0`) was attached before saving, so wrapped weights are named
  `*.base_layer.*` and the adapter's own `*.lora_A.default.*`/`*.lora_B.default.*` sit beside them (the
  official inference adds the same adapter, then loads the shards with a plain `load_state_dict`).

Import keeps the base weights under their plain names (the layout `load_full_ggi` loads strictly); the
adapter tensors are counted and checked for rank and targets, since the same LoRA is loaded from its own
file. A file that is not safetensors, a missing shard, a missing or extra key, or a shape that differs from
the model's is one `ValueError` naming the file and the first offending keys.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from vf3d.models.weights import read_safetensors

INDEX_FILE = "diffusion_pytorch_model.safetensors.index.json"
LORA_MARKERS = (".lora_A.", ".lora_B.", ".lora_embedding_", ".lora_magnitude_")


def official_transformer_folder(source: Path) -> Path | None:
    """The `transformer/` folder of an official checkpoint given it or the checkpoint folder; None otherwise."""
    for folder in (source, source / "transformer"):
        if (folder / "config.json").is_file() and (list(folder.glob("*.safetensors")) or (folder / INDEX_FILE).is_file()):
            return folder
    return None


def _read_official(folder: Path) -> tuple[dict[str, torch.Tensor], list[Path], dict]:
    config = json.loads((folder / "config.json").read_text())
    index = folder / INDEX_FILE
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        shards = [folder / name for name in names]
        absent = [s.name for s in shards if not s.is_file()]
        if absent:
            raise ValueError(f"{folder}: incomplete checkpoint, {len(absent)} of {len(shards)} shards missing "
                             f"(first: {absent[0]})")
    else:
        shards = sorted(folder.glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(read_safetensors(shard))
    return state, shards, config


def _mismatches(where: Path, found: dict[str, torch.Tensor], expected: dict[str, torch.Size]) -> None:
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [f"{k} {tuple(found[k].shape)} != {tuple(expected[k])}" for k in expected
             if k in found and found[k].shape != expected[k]]
    problems = [f"{label} {len(keys)} (first: {', '.join(keys[:3])})"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
                if keys]
    if problems:
        raise ValueError(f"{where}: not GGI weights for this transformer: {'; '.join(problems)}")


def import_ggi_weights(source: str | Path, expected: dict[str, torch.Size]) -> tuple[dict[str, torch.Tensor], dict]:
    """GGI weights from our file or an official checkpoint folder, checked against `expected` key shapes.

    `expected`: the widened transformer's `ggi_state_dict` shapes (`expected_ggi_shapes`). Returns the
    weights in our layout and a report of what was verified.
    """
    source = Path(source)
    if not source.exists():
        raise ValueError(f"{source}: GGI weights not found (a .safetensors file, or an official "
                         "checkpoint-<step>/transformer folder)")
    folder = official_transformer_folder(source) if source.is_dir() else None
    if source.is_dir() and folder is None:
        raise ValueError(f"{source}: not an official GGI checkpoint (no transformer/config.json with safetensors "
                         "shards)")
    if folder is None:
        state, shards, layout, config = read_safetensors(source), [source], "vf3d single file", {}
    else:
        state, shards, config = _read_official(folder)
        layout = "official checkpoint (sharded, PEFT adapter inside)"
    lora = {k: v for k, v in state.items() if any(m in k for m in LORA_MARKERS)}
    base = {k.replace(".base_layer.", "."): v for k, v in state.items() if k not in lora}
    _mismatches(folder or source, base, expected)
    if config and config.get("in_channels") != expected["patch_embed.proj.weight"][1]:
        raise ValueError(f"{folder / 'config.json'}: in_channels {config.get('in_channels')} != "
                         f"{expected['patch_embed.proj.weight'][1]} (the widened GGI transformer)")
    ranks = sorted({int(v.shape[0]) for k, v in lora.items() if ".lora_A." in k})
    targets = sorted({m.group(1) for k in lora if (m := re.search(r"\.([a-z_]+(?:\.\d+)?)\.lora_", k))})
    report = {"layout": layout, "files": [s.name for s in shards], "tensors_verified": len(base),
              "parameters_verified": int(sum(v.numel() for v in base.values())),
              "verified": "every tensor of the widened transformer present, with its shape",
              "adapter_tensors": len(lora), "adapter_ranks": ranks, "adapter_targets": targets}
    return base, report


def expected_ggi_shapes(transformer: torch.nn.Module) -> dict[str, torch.Size]:
    """Key -> shape of a widened transformer's GGI weights (LoRA layers left out, plain names)."""
    return {k.replace(".base_layer.", "."): v.shape for k, v in transformer.state_dict().items() if ".lora_" not in k}
