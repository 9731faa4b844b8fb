"""The BLIP-2 captioner: tiny from a config, full from its folder, and the caption used as the video's prompt."""

import numpy as np
import pytest

from vf3d.models.captioner import load_full_captioner, tiny_captioner
from vf3d.models.weights import MissingWeightsError


def test_tiny_captioner_is_deterministic_and_the_full_loader_reads_its_layout(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    captioner = tiny_captioner(0)
    caption = captioner(image)
    assert isinstance(caption, str) and caption == captioner(image)
    captioner.model.save_pretrained(tmp_path / "blip2-opt-2.7b")
    captioner.processor.save_pretrained(tmp_path / "blip2-opt-2.7b")
    loaded = load_full_captioner(tmp_path / "blip2-opt-2.7b", dtype=captioner.model.dtype)
    loaded.max_new_tokens = captioner.max_new_tokens
    assert loaded(image) == caption
    with pytest.raises(MissingWeightsError, match="BLIP-2"):
        load_full_captioner(tmp_path / "nothing")
