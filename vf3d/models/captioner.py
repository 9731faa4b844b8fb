"""Captions for the GGI prompt: BLIP-2 (OPT-2.7b) on the first anchor, as the official GGI inference prompts
CogVideoX (`ggi.py`: `Blip2ForConditionalGeneration` on `images[0]`, `generate` with its defaults); the
official training used captions of each clip's first frame the same way.

`tiny`: a seeded BLIP-2 built from a small config (vision, Q-Former and OPT of width 32) with a byte-level BPE
tokenizer built offline: real `generate` code, meaningless words. `full`: `Salesforce/blip2-opt-2.7b` from
disk (`local_files_only`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor,
                          GPT2TokenizerFast)
from transformers.convert_slow_tokenizer import bytes_to_unicode

from vf3d.models.weights import MissingWeightsError, has_weights

BLIP2_REPO = "Salesforce/blip2-opt-2.7b"
BLIP2_FOLDER = "blip2-opt-2.7b"


@dataclass
class Captioner:
    model: Blip2ForConditionalGeneration
    processor: Blip2Processor
    max_new_tokens: int | None = None
    """None: the checkpoint's generation defaults (the official call passes none)."""

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> str:
        """A caption of one (H, W, 3) uint8 image."""
        parameter = next(self.model.parameters())
        inputs = self.processor(images=image, return_tensors="pt").to(parameter.device, parameter.dtype)
        extra = {} if self.max_new_tokens is None else {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        ids = self.model.generate(**inputs, **extra)
        return self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


def byte_level_tokenizer() -> GPT2TokenizerFast:
    """OPT's tokenizer kind (byte-level BPE) with every byte symbol as a token and no merges: 258 ids."""
    vocab = {token: i for i, token in enumerate(["</s>", "<pad>", *bytes_to_unicode().values()])}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return GPT2TokenizerFast(tokenizer_object=tokenizer, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                             unk_token="</s>")


def tiny_captioner(seed: int = 0, max_new_tokens: int = 12) -> Captioner:
    """A seeded random BLIP-2 of the real architecture, small enough for the CPU in milliseconds."""
    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                               tokenizer=byte_level_tokenizer(), num_query_tokens=4)
    tokenizer = processor.tokenizer
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=8),
        qformer_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
                            encoder_hidden_size=32, vocab_size=64),
        text_config=dict(model_type="opt", hidden_size=32, num_hidden_layers=1, ffn_dim=37, num_attention_heads=4,
                         vocab_size=len(tokenizer), word_embed_proj_dim=32, max_position_embeddings=128,
                         bos_token_id=0, eos_token_id=0, pad_token_id=1),
        num_query_tokens=4, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    return Captioner(Blip2ForConditionalGeneration(config).eval(), processor, max_new_tokens)


def load_full_captioner(folder: Path, device: torch.device | str = "cpu",
                        dtype: torch.dtype = torch.float16) -> Captioner:
    """BLIP-2 from a local `save_pretrained` folder (the official inference runs it in float16)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not has_weights(folder):
        raise MissingWeightsError([(f"BLIP-2 captioner ({BLIP2_REPO})",
                                    [str(folder / "config.json"), str(folder / "*.safetensors")])])
    model = Blip2ForConditionalGeneration.from_pretrained(folder, local_files_only=True, dtype=dtype)
    processor = Blip2Processor.from_pretrained(folder, local_files_only=True)
    return Captioner(model.to(device).eval(), processor)
