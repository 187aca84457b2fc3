"""Tiny random-weight models of real architectures, and a synthetic subject pool, all built in code.

Each builder writes with `save_pretrained`, so the code under test loads it with `from_pretrained` exactly as real
weights: only the sizes differ. Tokenizers come from an in-code byte-level vocabulary (one token per byte), so
no vocabulary file and no model hub is needed. The FLUX.2 text encoders keep as many layers as the real ones'
hidden-state taps (30 and 27), so the pipelines run with their default arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageDraw

from collapsebench.core.clip_tokens import byte_symbols

HIDDEN = 16
# A chat template of the shape both FLUX.2 pipelines send: roles with typed text parts (Mistral) or plain text (Qwen).
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{% if m['content'] is string %}{{ m['content'] }}"
                 "{% else %}{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
                 "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def make_pool(data_dir: Path, count: int = 16, size: int = 96) -> Path:
    """Write `count` visually distinct reference images + subjects.yaml (IDs S001..); every fourth an animal."""
    (data_dir / "subjects").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    entries = []
    for number in range(1, count + 1):
        subject_id = f"S{number:03d}"
        background = tuple(int(v) for v in rng.integers(0, 256, 3))
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, size - 20, 2))
            draw.ellipse((x, y, x + 20 + number, y + 20), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        image.save(data_dir / "subjects" / f"{subject_id}.png")
        entries.append({"id": subject_id, "phrase": f"subject number {number}",
                        "kind": "person" if number % 4 else "animal", "image": f"subjects/{subject_id}.png",
                        "source": "tests", "license": "CC0-1.0"})
    (data_dir / "subjects.yaml").write_text(yaml.safe_dump({"subjects": entries}, sort_keys=False))
    return data_dir


def byte_level_tokenizer(cls: Any, specials: list[str], **kwargs: Any) -> Any:
    """A byte-level BPE tokenizer of class `cls` with no merges (one token per byte) plus special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: index for index, token in enumerate(specials)}
    for symbol in byte_symbols():
        vocab.setdefault(symbol, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = cls(tokenizer_object=backend, **kwargs)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def qwen_tokenizer() -> Any:
    """A Qwen2 tokenizer (FLUX.2 [klein]'s text encoder's) over the byte-level vocabulary."""
    from transformers import Qwen2TokenizerFast

    return byte_level_tokenizer(Qwen2TokenizerFast, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def flux2_transformer_and_vae() -> tuple[Any, Any]:
    """A one-block FLUX.2 transformer and a 3-level FLUX.2 VAE with 1 latent channel."""
    import torch
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel

    torch.manual_seed(0)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=3 * HIDDEN, timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4])
    vae = AutoencoderKLFlux2(
        sample_size=32, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(4, 4, 4), layers_per_block=1, latent_channels=1,
        norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False)
    return transformer, vae


def build_flux2(folder: Path) -> None:
    """Flux2Pipeline: Mistral3 (Pixtral vision + Mistral text, 30 layers) text encoder."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2Pipeline
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, PreTrainedTokenizerFast

    tokenizer = byte_level_tokenizer(PreTrainedTokenizerFast, ["<unk>", "[IMG]", "<s>", "</s>", "<pad>"],
                                     unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    config = Mistral3Config(
        text_config={"model_type": "mistral", "vocab_size": len(tokenizer), "hidden_size": HIDDEN,
                     "intermediate_size": 32, "max_position_embeddings": 1024, "num_attention_heads": 2,
                     "num_hidden_layers": 30, "num_key_value_heads": 1, "head_dim": 8, "sliding_window": None,
                     "bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 4},
        vision_config={"model_type": "pixtral", "hidden_size": HIDDEN, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 32, "image_size": 32, "patch_size": 8, "num_channels": 3},
        image_token_index=1, bos_token_id=2, eos_token_id=3, pad_token_id=4)
    torch.manual_seed(0)
    text_encoder = Mistral3ForConditionalGeneration(config)
    transformer, vae = flux2_transformer_and_vae()
    Flux2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                  tokenizer=tokenizer, transformer=transformer).save_pretrained(folder)


def build_flux2_klein(folder: Path) -> None:
    """Flux2KleinPipeline (distilled): Qwen3 (27 layers) text encoder."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = qwen_tokenizer()
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=27,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=1024,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    text_encoder = Qwen3ForCausalLM(config)
    transformer, vae = flux2_transformer_and_vae()
    Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                       tokenizer=tokenizer, transformer=transformer, is_distilled=True).save_pretrained(folder)


def build_flux1(folder: Path) -> None:
    """Tiny random FLUX.1 components (CLIP text with the real CLIP BPE, T5, VAE, transformer) saved as both a
    FluxPipeline (text only) and a FluxKontextPipeline (one reference image) under `folder/<class>`."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        PreTrainedTokenizerFast,
        T5Config,
        T5EncoderModel,
    )

    from collapsebench.core.clip_tokens import write_tokenizer_files

    torch.manual_seed(0)
    clip_tokenizer = CLIPTokenizer.from_pretrained(str(write_tokenizer_files(folder / "clip-tokenizer")))
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(clip_tokenizer), hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
    t5_tokenizer = byte_level_tokenizer(PreTrainedTokenizerFast, ["<pad>", "</s>", "<unk>"], pad_token="<pad>",
                                        eos_token="</s>", unk_token="<unk>")
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tokenizer), d_model=HIDDEN, d_kv=8, d_ff=32, num_layers=1,
                                 num_heads=2))
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=HIDDEN, pooled_projection_dim=HIDDEN, guidance_embeds=True, axes_dims_rope=(2, 2, 4))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 4), layers_per_block=1, latent_channels=4,
        norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0, scaling_factor=1.0)
    parts = {"scheduler": FlowMatchEulerDiscreteScheduler(), "vae": vae, "text_encoder": clip,
             "tokenizer": clip_tokenizer, "text_encoder_2": t5, "tokenizer_2": t5_tokenizer, "transformer": transformer}
    for cls in (FluxPipeline, FluxKontextPipeline):
        cls(**parts).save_pretrained(folder / cls.__name__)


FLUX2_BUILDERS = {"Flux2Pipeline": build_flux2, "Flux2KleinPipeline": build_flux2_klein}
