"""GGI weights as users hold them, imported without conversion steps and verified key by key.

Two layouts are accepted:

- **ours**: one safetensors file of the widened transformer's own weights (`ggi_state_dict`), optionally with
  a LoRA adapter beside them (`<module>.lora_A.weight` / `.lora_B.weight`, PEFT's adapter-name-free keys);
- **the official release**: `checkpoint-<step>/transformer/` (or the `checkpoint-<step>` folder above it),
  as the official GGI training writes it with `save_pretrained(max_shard_size="5GB")`: `config.json`
  (`in_channels` 48) and sharded `diffusion_pytorch_model-0000k-of-0000n.safetensors` with their
  `.index.json`. The Go-with-the-Flow adapter (PEFT adapter `default`: rank 2048, alpha 2048 on
  `to_q`/`to_k`/`to_v`/`to_out.0`, fork `training_ggi/exps/T073-000.py` l. 194-210, frozen while training) was
  attached before saving, so wrapped weights are named `*.base_layer.*` and the adapter's own
  `*.lora_A.default.*`/`*.lora_B.default.*` sit beside them.

The official inference (`ggi.py` l. 104-123) widens the patch embedding, adds a PEFT adapter with r = alpha =
2048 on to_q/to_k/to_v/to_out.0, registers `config.json` and loads EVERY tensor of the shards with a strict
`load_state_dict`: the adapter stored in the checkpoint is the one it runs. Import therefore keeps the base
weights under their plain names (the layout `load_full_ggi` loads strictly) and, by default, the checkpoint's
adapter beside them; loading such a file attaches that adapter (`attach_adapter`: r = alpha = its rank, as
`ggi.py`) instead of the Go-with-the-Flow LoRA file, so a user holding only `checkpoint-1350` runs exactly the
official model. A file that is not safetensors, a missing shard, a missing or extra key, or a shape that
differs from the model's is one `ValueError` naming the file and the first offending keys.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import torch
from peft import LoraConfig, set_peft_model_state_dict
from safetensors import safe_open

from vf3d.models.weights import read_safetensors

INDEX_FILE = "diffusion_pytorch_model.safetensors.index.json"
LORA_MARKERS = (".lora_A.", ".lora_B.", ".lora_embedding_", ".lora_magnitude_")
ADAPTER_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])(?:\.(?P<name>[^.]+))?\.weight$")
"""A LoRA linear-layer tensor: `<module>.lora_A.weight` (ours) or `<module>.lora_A.<adapter>.weight` (as
`save_pretrained` writes an attached PEFT adapter, e.g. `.lora_A.default.weight` in the official checkpoint)."""


def split_adapter(state: dict[str, torch.Tensor], where: Path | str = "weights"
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(base weights under plain names, the LoRA adapter under `<module>.lora_A.weight` / `.lora_B.weight`).

    `.base_layer.` is dropped from wrapped weights' names and the adapter name from the LoRA's. LoRA tensors of
    another kind (embedding LoRA, DoRA magnitudes) or of several adapters are one `ValueError` naming `where`.
    """
    base, adapter, names = {}, {}, set()
    for key, value in state.items():
        match = ADAPTER_KEY.match(key)
        if match:
            adapter[f"{match['module']}.lora_{match['part']}.weight"] = value
            names.add(match["name"])
        elif any(marker in key for marker in LORA_MARKERS):
            raise ValueError(f"{where}: {key} is a LoRA tensor of a kind GGI weights do not hold (expected the "
                             "Go-with-the-Flow adapter's lora_A/lora_B linear weights)")
        else:
            base[key.replace(".base_layer.", ".")] = value
    if len(names) > 1:
        raise ValueError(f"{where}: {len(names)} LoRA adapters ({', '.join(sorted(map(str, names)))}); expected one "
                         "(the Go-with-the-Flow adapter)")
    return base, adapter


def adapter_layout(adapter: dict[str, torch.Tensor], where: Path | str = "weights") -> tuple[int, list[str]]:
    """(rank, adapted module names) of a `split_adapter` adapter; every module needs its A and B, one rank."""
    modules = sorted({key.rsplit(".lora_", 1)[0] for key in adapter})
    unpaired = [m for m in modules if f"{m}.lora_A.weight" not in adapter or f"{m}.lora_B.weight" not in adapter]
    ranks = sorted({int(v.shape[0]) for k, v in adapter.items() if ".lora_A." in k} |
                   {int(v.shape[1]) for k, v in adapter.items() if ".lora_B." in k})
    if unpaired or len(ranks) != 1:
        raise ValueError(f"{where}: not one LoRA adapter: {len(unpaired)} module(s) without both lora_A and lora_B "
                         f"(first: {', '.join(unpaired[:3]) or 'none'}), ranks {ranks}")
    return ranks[0], modules


def _adapter_mismatches(where: Path, adapter: dict[str, torch.Tensor], expected: dict[str, torch.Size]
                        ) -> list[str]:
    """The adapter tensors whose module is not a linear layer of the model or whose shape does not fit it."""
    rank, modules = adapter_layout(adapter, where)
    wrong = []
    for module in modules:
        weight = expected.get(f"{module}.weight")
        if weight is None or len(weight) != 2:
            wrong.append(f"{module} (no such linear layer)")
            continue
        for part, shape in (("A", (rank, weight[1])), ("B", (weight[0], rank))):
            found = tuple(adapter[f"{module}.lora_{part}.weight"].shape)
            if found != shape:
                wrong.append(f"{module}.lora_{part}.weight {found} != {shape}")
    return wrong


def attach_adapter(transformer: torch.nn.Module, adapter: dict[str, torch.Tensor], adapter_name: str,
                   where: Path | str = "weights") -> None:
    """Attach a `split_adapter` adapter as the official inference does (`ggi.py` l. 108-123): PEFT's
    `add_adapter` with r = lora_alpha = its rank (scale 1; the release: 2048) on exactly its modules, then its
    tensors loaded. Anything not loaded is one `ValueError` naming `where`."""
    rank, modules = adapter_layout(adapter, where)
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=modules),
                            adapter_name=adapter_name)
    result = set_peft_model_state_dict(transformer, adapter, adapter_name=adapter_name)
    left = list(result.unexpected_keys) + [k for k in result.missing_keys if f".{adapter_name}." in k]
    if left:
        raise ValueError(f"{where}: the LoRA adapter does not fit this transformer ({len(left)} tensors left: "
                         f"{', '.join(left[:3])})")


def weights_carry_adapter(weights_file: Path) -> bool:
    """Whether a GGI weights file holds its own LoRA adapter (read from the header; no tensor is loaded)."""
    with safe_open(str(weights_file), framework="pt") as f:
        return any(ADAPTER_KEY.match(key) for key in f.keys())


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


def import_ggi_weights(source: str | Path, expected: dict[str, torch.Size],
                       adapter: Literal["checkpoint", "discard"] = "checkpoint"
                       ) -> tuple[dict[str, torch.Tensor], dict]:
    """GGI weights from our file or an official checkpoint folder, checked against `expected` key shapes.

    `expected`: the widened transformer's `ggi_state_dict` shapes (`expected_ggi_shapes`). `adapter`:
    "checkpoint" (official `ggi.py` l. 108-123: the adapter stored in the checkpoint is loaded and used) keeps
    its LoRA adapter in the returned weights, checked against the model's linear layers, and loading them attaches
    it in place of the Go-with-the-Flow LoRA file; "discard" drops it (the full profile then attaches the
    Go-with-the-Flow LoRA from its own file, which the release's adapter was trained frozen from). Returns the
    weights in our layout and a report of what was verified.
    """
    if adapter not in ("checkpoint", "discard"):
        raise ValueError(f"adapter={adapter!r}: expected 'checkpoint' (keep the checkpoint's LoRA adapter) or "
                         "'discard'")
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
    where = folder or source
    base, lora = split_adapter(state, where)
    _mismatches(where, base, expected)
    if config and config.get("in_channels") != expected["patch_embed.proj.weight"][1]:
        raise ValueError(f"{folder / 'config.json'}: in_channels {config.get('in_channels')} != "
                         f"{expected['patch_embed.proj.weight'][1]} (the widened GGI transformer)")
    rank, modules = adapter_layout(lora, where) if lora else (None, [])
    wrong = _adapter_mismatches(where, lora, expected) if lora and adapter == "checkpoint" else []
    if wrong:
        raise ValueError(f"{where}: LoRA adapter not for this transformer: {len(wrong)} mismatch(es) "
                         f"(first: {'; '.join(wrong[:3])})")
    targets = sorted({m.group(1) for k in modules if (m := re.search(r"\.([a-z_]+(?:\.\d+)?)$", k))})
    kept = adapter == "checkpoint" and bool(lora)
    report = {"layout": layout, "files": [s.name for s in shards], "tensors_verified": len(base),
              "parameters_verified": int(sum(v.numel() for v in base.values())),
              "verified": "every tensor of the widened transformer present, with its shape",
              "adapter_tensors": len(lora), "adapter_ranks": [rank] if lora else [], "adapter_targets": targets,
              "adapter": ("none" if not lora else
                          "kept: attached when the weights load (r = alpha = its rank, as ggi.py), in place of the "
                          "Go-with-the-Flow LoRA file" if kept else
                          "discarded: the Go-with-the-Flow LoRA file is attached when the weights load")}
    return ({**base, **lora} if kept else base), report


def expected_ggi_shapes(transformer: torch.nn.Module) -> dict[str, torch.Size]:
    """Key -> shape of a widened transformer's GGI weights (LoRA layers left out, plain names)."""
    return {k.replace(".base_layer.", "."): v.shape for k, v in transformer.state_dict().items() if ".lora_" not in k}
