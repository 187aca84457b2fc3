"""Tokenizers and processors of the multi-reference pipelines' text encoders, built in code for their twins.

Each is the real class over the byte-level vocabulary of tiny.py (one token per byte) plus the special tokens the
pipeline's prompt template uses, registered as special so the template's markers stay one token each. Their
ids are fixed (the order below), so a twin's config (models/<name>/preflight.yaml) can name them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collapsebench.testing.tiny import byte_level_tokenizer

# Qwen2-VL / Qwen2.5-VL / Qwen3-VL: ids 0..6, then the 256 byte tokens (vocabulary of 263).
QWEN_VL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                    "<|image_pad|>", "<|video_pad|>"]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>"]
VL_PIXELS = 4 * 28 * 28  # the smallest image the Qwen VL image processors make: 4 patches of 28 px


def _with_specials(tokenizer: Any, specials: list[str]) -> Any:
    from tokenizers import AddedToken

    tokenizer.add_special_tokens({"additional_special_tokens": [AddedToken(s, special=True) for s in specials]})
    return tokenizer


def qwen_vl_tokenizer() -> Any:
    from transformers import Qwen2TokenizerFast

    tokenizer = byte_level_tokenizer(Qwen2TokenizerFast, QWEN_VL_SPECIALS, eos_token="<|endoftext|>",
                                     pad_token="<|endoftext|>")
    return _with_specials(tokenizer, QWEN_VL_SPECIALS[1:])


def qwen2_vl_processor() -> Any:
    """Qwen2VLProcessor (Qwen-Image-Edit's): transformers builds its video processor, which needs torchvision."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    tokenizer = qwen_vl_tokenizer()
    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=VL_PIXELS, max_pixels=VL_PIXELS),
                            tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                            chat_template=tokenizer.chat_template)


def qwen3_vl_processor() -> Any:
    """Qwen3VLProcessor (JoyAI-Image-Edit's); its video processor needs torchvision too."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    tokenizer = qwen_vl_tokenizer()
    return Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=VL_PIXELS, max_pixels=VL_PIXELS,
                                                                  patch_size=16),
                            tokenizer=tokenizer, video_processor=Qwen3VLVideoProcessor(),
                            chat_template=tokenizer.chat_template)


def llama_tokenizer() -> Any:
    """LlamaTokenizerFast (OmniGen's Phi-3 vocabulary kind): <unk> 0, <s> 1, </s> 2."""
    from transformers import LlamaTokenizerFast

    return byte_level_tokenizer(LlamaTokenizerFast, LLAMA_SPECIALS, unk_token="<unk>", bos_token="<s>",
                                eos_token="</s>", pad_token="</s>")


BUILDERS: dict[str, Callable[[], Any]] = {
    "qwen-vl-tokenizer": qwen_vl_tokenizer,
    "qwen2-vl-processor": qwen2_vl_processor,
    "qwen3-vl-processor": qwen3_vl_processor,
    "llama-tokenizer": llama_tokenizer,
}
