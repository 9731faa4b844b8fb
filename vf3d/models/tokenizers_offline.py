"""Tokenizers built offline for the tiny profile: a character-level CLIP BPE and a character Unigram T5."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import CLIPTokenizer, T5TokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")
T5_SPECIALS = ("<pad>", "</s>", "<unk>")


def clip_tokenizer(max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer whose vocabulary is every byte symbol, alone and word-final (no merges): 514 ids."""
    symbols = list(bytes_to_unicode().values())
    vocab = {token: i for i, token in enumerate([*symbols, *(s + "</w>" for s in symbols), *CLIP_SPECIALS])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def t5_tokenizer(max_length: int = 512) -> T5TokenizerFast:
    """A T5 tokenizer with a character Unigram vocabulary (printable ASCII plus the metaspace): 99 ids."""
    pieces = [(token, 0.0) for token in T5_SPECIALS]
    pieces += [(chr(c), -1.0) for c in range(32, 127)] + [("\u2581", -1.0)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    return T5TokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           model_max_length=max_length, extra_ids=0)
