"""Distribution alignment on tiny FLUX: the loss falls, save -> load is exact, each style keeps its identifier."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from vf3d.models.flux import tiny_flux
from vf3d.sag.sampling import SAG_PRESETS, SAGPipeline
from vf3d.sag.style_lora import LORA_PRESETS, StyleExample, StyleLoRATrainer, load_style_lora, transformer_targets

H, W = 48, 64


def _example(color, prompt):
    image = Image.new("RGB", (64, 48), color)
    image.paste((255, 255, 255), (16, 12, 40, 30))
    return StyleExample(image, image.convert("L").convert("RGB"), prompt)


def _generate(pipe, prompt):
    pipe.set_progress_bar_config(disable=True)
    control = Image.fromarray(np.zeros((H, W, 3), np.uint8))
    return np.asarray(SAGPipeline(pipe)(prompt, control, H, W, settings=SAG_PRESETS["tiny"],
                                        generator=torch.Generator().manual_seed(0)).image)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    trainer = StyleLoRATrainer(tiny_flux(0), LORA_PRESETS["tiny"])
    result = trainer.train([_example((200, 60, 30), "a photo in sks style"),
                            _example((30, 60, 200), "a painting in xyz style")])
    out = tmp_path_factory.mktemp("lora") / "style"
    trainer.save(out, result)
    return trainer, result, out


def test_training_lowers_the_loss(trained):
    _, result, _ = trained
    assert result.eval_loss_after < result.eval_loss_before
    assert len(result.losses) == LORA_PRESETS["tiny"].steps


def test_lora_targets_the_official_x_flux_processors():
    """Double blocks 0-18 and single blocks 1-4, attention qkv and output projections only."""
    import re
    pattern = transformer_targets(LORA_PRESETS["paper"])
    for name in ("transformer_blocks.0.attn.to_q", "transformer_blocks.18.attn.add_v_proj",
                 "transformer_blocks.7.attn.to_out.0", "transformer_blocks.7.attn.to_add_out",
                 "single_transformer_blocks.1.attn.to_k", "single_transformer_blocks.4.proj_out"):
        assert re.fullmatch(pattern, name), name
    for name in ("transformer_blocks.19.attn.to_q", "single_transformer_blocks.0.attn.to_q",
                 "single_transformer_blocks.5.proj_out", "transformer_blocks.0.ff.net.2",
                 "transformer_blocks.0.ff_context.net.0.proj", "single_transformer_blocks.2.proj_mlp"):
        assert not re.fullmatch(pattern, name), name
    wider = transformer_targets(replace(LORA_PRESETS["paper"], feed_forward=True))
    assert re.fullmatch(wider, "transformer_blocks.0.ff.net.2") and re.fullmatch(wider, "single_transformer_blocks.2.proj_mlp")


def test_save_then_load_reproduces_outputs_exactly(trained):
    trainer, _, out = trained
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    before = _generate(trainer.pipe, "a photo in sks style")
    fresh = tiny_flux(0).pipeline()
    load_style_lora(fresh, out)
    assert np.array_equal(before, _generate(fresh, "a photo in sks style"))
    assert not np.array_equal(before, _generate(tiny_flux(0).pipeline(), "a photo in sks style"))


def test_each_style_of_a_multi_style_lora_trains_with_its_own_identifier():
    """Distribution alignment over several styles: every training step pairs a style's image (any of its crops)
    with the text embedding of that style's identifier, and every style is trained."""
    trainer = StyleLoRATrainer(tiny_flux(0), replace(LORA_PRESETS["tiny"], steps=4))
    examples = [_example((200, 60, 30), "a photo in sks style"), _example((30, 60, 200), "a painting in xyz style")]
    embeds = {e.prompt: trainer.pipe.encode_prompt(e.prompt, None)[0] for e in examples}
    prepare, seen = trainer._prepare, []

    def tagged(example):  # which reference image each prepared batch came from: its dominant channel
        return dict(prepare(example), reddish=bool(np.mean(np.asarray(example.image)[..., 0]) > 128))
    trainer._prepare = tagged
    flow_loss = trainer.flow_loss

    def recorded(batch, noise, t):
        if torch.is_grad_enabled():  # a training step, not the evaluation loss
            seen.append((batch["reddish"], batch["prompt_embeds"]))
        return flow_loss(batch, noise, t)
    trainer.flow_loss = recorded
    trainer.train(examples)
    assert [reddish for reddish, _ in seen] == [True, False, True, False]  # round robin over the styles
    for reddish, prompt_embeds in seen:
        identifier = "a photo in sks style" if reddish else "a painting in xyz style"
        torch.testing.assert_close(prompt_embeds, embeds[identifier])


def test_flow_loss_targets_the_velocity_noise_minus_x():
    trainer = StyleLoRATrainer(tiny_flux(0), LORA_PRESETS["tiny"])
    batch = trainer._prepare(_example((200, 60, 30), "a photo in sks style"))
    noise, t = torch.randn(batch["x"].shape, generator=torch.Generator().manual_seed(0)), torch.tensor(0.3)
    seen = []

    class Velocity(torch.nn.Module):
        def __init__(self, offset):
            super().__init__()
            self.offset = offset

        def forward(self, hidden_states, **kwargs):
            seen.append(hidden_states)
            return (noise - batch["x"] + self.offset,)

    trainer.components.controlnet = lambda **kwargs: (None, None)
    trainer.components.transformer = Velocity(0.0)
    assert trainer.flow_loss(batch, noise, t).item() < 1e-12
    torch.testing.assert_close(seen[-1], 0.7 * batch["x"] + 0.3 * noise)  # z_t = (1 - t) x + t noise
    trainer.components.transformer = Velocity(0.5)
    assert trainer.flow_loss(batch, noise, t).item() == pytest.approx(0.25, rel=1e-5)


def xflux_lora_file(path, transformer, rank=4, seed=0):
    """A LoRA in x-flux's own format (the official distribution alignment's output) for a FLUX transformer:
    fused qkv LoRAs and output-projection LoRAs on double blocks, qkv and linear2 LoRAs on single blocks."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    tensors = {}
    def lora(name, fan_in, fan_out):
        tensors[f"{name}.down.weight"] = torch.randn(rank, fan_in, generator=g)
        tensors[f"{name}.up.weight"] = torch.randn(fan_out, rank, generator=g)
    for i in range(len(transformer.transformer_blocks)):
        for n in (1, 2):
            lora(f"double_blocks.{i}.processor.qkv_lora{n}", dim, 3 * dim)
            lora(f"double_blocks.{i}.processor.proj_lora{n}", dim, dim)
    if len(transformer.single_transformer_blocks) > 1:  # (the XLabs ControlNet has none)
        lora("single_blocks.1.processor.qkv_lora", dim, 3 * dim)
        lora("single_blocks.1.processor.proj_lora", transformer.single_transformer_blocks[1].proj_out.in_features, dim)
    save_file(tensors, path)
    return tensors


def test_an_xflux_lora_file_loads_exactly(tmp_path):
    import json

    from peft.utils import get_peft_model_state_dict

    from vf3d.sag.style_lora import META_FILE, XFLUX_LORA_FILE

    pipe = tiny_flux(0).pipeline()
    tensors = xflux_lora_file(tmp_path / XFLUX_LORA_FILE, pipe.transformer)
    (tmp_path / META_FILE).write_text(json.dumps({"source": "x-flux"}))
    before = _generate(pipe, "a photo in sks style")
    load_style_lora(pipe, tmp_path)
    state = get_peft_model_state_dict(pipe.transformer, adapter_name=next(iter(pipe.transformer.peft_config)))
    dim = pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim
    up = tensors["double_blocks.0.processor.qkv_lora1.up.weight"]
    for k, name in enumerate(("to_q", "to_k", "to_v")):  # the fused qkv LoRA, split exactly
        key = f"transformer_blocks.0.attn.{name}"
        assert torch.equal(state[f"{key}.lora_A.weight"], tensors["double_blocks.0.processor.qkv_lora1.down.weight"])
        assert torch.equal(state[f"{key}.lora_B.weight"], up[k * dim:(k + 1) * dim])
    assert torch.equal(state["single_transformer_blocks.1.proj_out.lora_B.weight"],
                       tensors["single_blocks.1.processor.proj_lora.up.weight"])
    assert not np.array_equal(before, _generate(pipe, "a photo in sks style"))


def test_style_lora_asset_imports_an_xflux_file_and_verifies_it(tmp_path):
    from dagster import materialize
    from safetensors.torch import load_file, save_file

    from resources import GPU, ArtifactStore, ModelStore
    from vf3d_assets.assets.sag import style_lora

    source = tmp_path / "official_lora.safetensors"
    xflux_lora_file(source, tiny_flux(0).transformer)
    resources = {"artifacts": ArtifactStore(root=str(tmp_path / "artifacts")), "models": ModelStore(profile="tiny"),
                 "gpu": GPU(device="cpu")}
    result = materialize([style_lora], partition_key="photo", resources=resources,
                         run_config={"ops": {"style_lora": {"config": {"pretrained": str(source)}}}})
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    check = checks["loss_decreased"]  # and loss_curve_falls: imported, no curve to judge
    assert checks["loss_curve_falls"].passed and checks["loss_curve_falls"].metadata["trained"].value is False
    assert check.passed and check.metadata["tensors_verified"].value == len(load_file(source))
    pipe = tiny_flux(0).pipeline()
    load_style_lora(pipe, tmp_path / "artifacts" / "style_lora" / "photo")
    assert pipe.transformer.peft_config
    # A LoRA for a different transformer (block 5 does not exist; a wrong width) is refused, naming the key.
    bad = load_file(source)
    bad["double_blocks.5.processor.proj_lora1.down.weight"] = torch.zeros(4, 7)
    save_file(bad, tmp_path / "bad.safetensors")
    failed = materialize([style_lora], partition_key="photo", resources=resources, raise_on_error=False,
                         run_config={"ops": {"style_lora": {"config": {"pretrained": str(tmp_path / "bad.safetensors")}}}})
    assert not failed.success
    from vf3d.sag.style_lora import check_xflux_lora
    with pytest.raises(ValueError, match=r"bad.safetensors: not an x-flux LoRA.*double_blocks.5"):
        check_xflux_lora(tmp_path / "bad.safetensors", dict(tiny_flux(0).transformer.config))


def test_the_official_checkpoint_folder_imports_the_controlnet_lora_too(tmp_path):
    """`loras/<name>/checkpoint-<step>/`: lora.safetensors (transformer) and controlnet.lora.safetensors."""
    from dagster import materialize
    from peft.utils import get_peft_model_state_dict

    from resources import GPU, ArtifactStore, ModelStore
    from vf3d_assets.assets.sag import style_lora

    official = tmp_path / "loras" / "style" / "checkpoint-400"
    official.mkdir(parents=True)
    components = tiny_flux(0)
    xflux_lora_file(official / "lora.safetensors", components.transformer)
    tensors = xflux_lora_file(official / "controlnet.lora.safetensors", components.controlnet, seed=1)
    resources = {"artifacts": ArtifactStore(root=str(tmp_path / "artifacts")), "models": ModelStore(profile="tiny"),
                 "gpu": GPU(device="cpu")}
    result = materialize([style_lora], partition_key="photo", resources=resources,
                         run_config={"ops": {"style_lora": {"config": {"pretrained": str(official)}}}})
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    check = checks["loss_decreased"]  # and loss_curve_falls: imported, no curve to judge
    assert checks["loss_curve_falls"].passed and checks["loss_curve_falls"].metadata["trained"].value is False
    assert check.metadata["controlnet_tensors_verified"].value == len(tensors) > 0
    pipe = tiny_flux(0).pipeline()
    load_style_lora(pipe, tmp_path / "artifacts" / "style_lora" / "photo")
    state = get_peft_model_state_dict(pipe.controlnet)
    dim = pipe.controlnet.config.num_attention_heads * pipe.controlnet.config.attention_head_dim
    up = tensors["double_blocks.1.processor.qkv_lora2.up.weight"]
    for k, name in enumerate(("add_q_proj", "add_k_proj", "add_v_proj")):
        key = f"transformer_blocks.1.attn.{name}"
        assert torch.equal(state[f"{key}.lora_A.weight"], tensors["double_blocks.1.processor.qkv_lora2.down.weight"])
        assert torch.equal(state[f"{key}.lora_B.weight"], up[k * dim:(k + 1) * dim])
    assert torch.equal(state["transformer_blocks.0.attn.to_add_out.lora_B.weight"],
                       tensors["double_blocks.0.processor.proj_lora2.up.weight"])
    # A ControlNet LoRA for blocks the ControlNet does not have (single blocks) is refused.
    xflux_lora_file(official / "controlnet.lora.safetensors", components.transformer, seed=1)
    failed = materialize([style_lora], partition_key="photo", resources=resources, raise_on_error=False,
                         run_config={"ops": {"style_lora": {"config": {"pretrained": str(official)}}}})
    assert not failed.success
    with pytest.raises(ValueError, match=r"controlnet.lora.safetensors: not an x-flux LoRA for this model.*single"):
        from vf3d.sag.style_lora import check_xflux_lora
        check_xflux_lora(official / "controlnet.lora.safetensors", dict(components.controlnet.config))


def test_official_recipe_random_crops_and_shifted_uniform_times(monkeypatch):
    import math

    from vf3d.sag.style_lora import centre_crop, training_size, xflux_training_times

    paper = LORA_PRESETS["paper"]
    assert (paper.resolution, paper.random_aspect, paper.timesteps, paper.max_grad_norm, paper.betas,
            paper.weight_decay) == (1024, True, "xflux", 1.0, (0.9, 0.999), 0.01)
    times = xflux_training_times()
    mu = 0.5 + (1.15 - 0.5) / (4096 - 256) * (4096 - 256)  # x-flux get_lin_function at 4,096 tokens = 1.15
    assert len(times) == 1000 and times[0] == 1.0 and times[-1] == 0.0
    assert times[500] == pytest.approx(math.exp(mu) / (math.exp(mu) + (1 / (1 - 500 / 999) - 1)))
    image = Image.new("RGB", (1600, 900))
    assert centre_crop(image, 1.0).size == (900, 900) and centre_crop(image, 4 / 3).size == (1200, 900)
    assert training_size(Image.new("RGB", (1000, 750)), 1024) == (1024, 768)
    assert training_size(Image.new("RGB", (1000, 563)), 1024) == (1024, 576)  # floored to multiples of 32
    shapes = set()
    trainer = StyleLoRATrainer(tiny_flux(0), replace(LORA_PRESETS["tiny"], steps=12))
    real_loss = trainer.flow_loss
    monkeypatch.setattr(trainer, "flow_loss", lambda batch, n, t: shapes.add(tuple(batch["x"].shape)) or
                        real_loss(batch, n, t))
    trainer.train([_example((200, 60, 30), "a photo in sks style")])
    assert len(shapes) > 1  # several crops were trained on


def _record_lr_and_clipping(trainer, monkeypatch):
    """Train, recording the lr of every optimiser step and the parameters and norm of every clipping call."""
    lrs, clipped = [], []
    real_clip, real_adamw = torch.nn.utils.clip_grad_norm_, torch.optim.AdamW

    class RecordingAdamW(real_adamw):
        def step(self, closure=None):
            lrs.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda p, m: clipped.append((list(p), m)) or real_clip(p, m))
    trainer.train([_example((200, 60, 30), "a photo in sks style")])
    return lrs, clipped


def test_official_lr_is_constant_from_the_first_step_and_only_the_transformer_lora_is_clipped(monkeypatch):
    """Official `configs/distribution_alignment.yaml`: learning_rate 1e-4 (l. 12), lr_scheduler constant (l. 13),
    lr_warmup_steps 10 (l. 14), max_grad_norm 1.0 (l. 19); `sag_distribution_alignment.py` l. 246-251 calls
    `get_scheduler("constant", num_warmup_steps=10, ...)`, which ignores the warm-up (diffusers: "constant" returns
    before reading it), and l. 363-364 clips `dit.parameters()` only: the ControlNet LoRA is never clipped."""
    official_lr, official_warmup, official_max_grad_norm = 1e-4, 10, 1.0
    paper = LORA_PRESETS["paper"]
    assert (paper.learning_rate, paper.warmup_steps, paper.max_grad_norm) == (official_lr, official_warmup,
                                                                              official_max_grad_norm)
    trainer = StyleLoRATrainer(tiny_flux(0), replace(
        LORA_PRESETS["tiny"], steps=12, learning_rate=paper.learning_rate, lr_scheduler=paper.lr_scheduler,
        warmup_steps=paper.warmup_steps, clip_grad=paper.clip_grad))
    # the LoRA parameters being trained (fused; training ends by unfusing them into new parameters)
    transformer = {id(p) for p in trainer.components.transformer.parameters() if p.requires_grad}
    controlnet = {id(p) for p in trainer.components.controlnet.parameters() if p.requires_grad}
    lrs, clipped = _record_lr_and_clipping(trainer, monkeypatch)
    assert lrs == [official_lr] * 12
    assert transformer and controlnet and len(clipped) == 12
    for params, max_norm in clipped:
        assert {id(p) for p in params} == transformer and max_norm == official_max_grad_norm


def test_warmup_and_clipping_both_loras_are_options(monkeypatch):
    trainer = StyleLoRATrainer(tiny_flux(0), replace(LORA_PRESETS["tiny"], steps=5, learning_rate=1e-4,
                                                     lr_scheduler="constant_with_warmup", warmup_steps=3,
                                                     clip_grad="both"))
    both = {id(p) for p in trainer.parameters()}
    lrs, clipped = _record_lr_and_clipping(trainer, monkeypatch)
    assert lrs == pytest.approx([0.0, 1e-4 / 3, 2e-4 / 3, 1e-4, 1e-4])  # diffusers' linear warm-up
    assert len(clipped) == 5 and all({id(p) for p in params} == both for params, _ in clipped)


def test_each_random_crop_gets_its_own_edge_map_from_the_detector():
    calls = []

    def detector(image):
        calls.append(image.shape)
        return np.zeros(image.shape[:2], np.uint8)

    trainer = StyleLoRATrainer(tiny_flux(0), LORA_PRESETS["tiny"], edge_detector=detector)
    crops = trainer._crops(_example((200, 60, 30), "a photo in sks style"))
    assert len(crops) == 4 and sorted(calls) == sorted([(36, 64, 3), (48, 64, 3), (48, 48, 3)])


def test_fused_qkv_lora_trains_one_down_projection_per_stream_and_is_stored_exactly_unfused():
    """x-flux's qkv_lora: one A shared by q, k and v. Trained fused, stored as three LoRAs with that A, same outputs."""
    trainer = StyleLoRATrainer(tiny_flux(0), LORA_PRESETS["tiny"])
    transformer = trainer.components.transformer
    names = [n for n, _ in transformer.named_modules()]
    assert "transformer_blocks.0.attn.to_qkv.lora_A.default" in names
    assert "transformer_blocks.0.attn.to_added_qkv.lora_A.default" in names
    assert not any(".to_q.lora_A" in n or ".add_q_proj.lora_A" in n for n in names)
    controlnet = [n for n, _ in trainer.components.controlnet.named_modules() if n.endswith("lora_A.default")]
    assert controlnet and all(".attn." in n for n in controlnet)  # the official ControlNet LoRA: attention only
    g = torch.Generator().manual_seed(1)
    for model in (transformer, trainer.components.controlnet):  # a trained-looking LoRA: nonzero B
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.data = torch.randn(p.shape, generator=g) * 0.1
    batch = trainer._prepare(_example((200, 60, 30), ""))
    noise, t = torch.randn(batch["x"].shape, generator=g), torch.tensor(0.6)
    with torch.no_grad():
        fused = trainer.flow_loss(batch, noise, t)
        for model in (transformer, trainer.components.controlnet):
            trainer._unfuse(model)
        unfused = trainer.flow_loss(batch, noise, t)
    torch.testing.assert_close(unfused, fused, rtol=1e-5, atol=1e-6)
    block = transformer.transformer_blocks[0].attn
    assert not hasattr(block, "to_qkv") and not block.fused_projections
    a = [getattr(block, n).lora_A["default"].weight for n in ("to_q", "to_k", "to_v")]
    assert torch.equal(a[0], a[1]) and torch.equal(a[0], a[2])  # the shared down-projection
    assert not torch.equal(block.to_q.lora_B["default"].weight, block.to_k.lora_B["default"].weight)
