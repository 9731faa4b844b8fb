"""Distribution alignment on tiny FLUX: the loss falls, save -> load is exact, identifiers differ."""

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


def test_lora_targets_the_first_23_blocks():
    pattern = transformer_targets(LORA_PRESETS["paper"])
    import re
    assert re.fullmatch(pattern, "transformer_blocks.18.attn.to_q")
    assert not re.fullmatch(pattern, "transformer_blocks.19.attn.to_q")
    assert re.fullmatch(pattern, "single_transformer_blocks.3.proj_mlp")
    assert not re.fullmatch(pattern, "single_transformer_blocks.4.proj_mlp")


def test_save_then_load_reproduces_outputs_exactly(trained):
    trainer, _, out = trained
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    before = _generate(trainer.pipe, "a photo in sks style")
    fresh = tiny_flux(0).pipeline()
    load_style_lora(fresh, out)
    assert np.array_equal(before, _generate(fresh, "a photo in sks style"))
    assert not np.array_equal(before, _generate(tiny_flux(0).pipeline(), "a photo in sks style"))


def test_two_identifiers_in_one_lora_give_two_outputs(trained):
    trainer, _, _ = trained
    assert not np.array_equal(_generate(trainer.pipe, "a photo in sks style"),
                              _generate(trainer.pipe, "a painting in xyz style"))
