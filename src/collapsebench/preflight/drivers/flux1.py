"""A FLUX.1 [dev] twin for the upstream adapters (MOSAIC, XVerse): FluxPipeline with random weights.

Unlike collapsebench.testing.tiny.build_flux1 it saves the FluxPipeline alone (the images' diffusers 0.32 has no
FluxKontextPipeline) and takes the widths the upstream adapters' own modules must match: XVerse's modulation
adapter writes into the transformer's width and reads the T5 width. Guidance is embedded, as in FLUX.1 [dev].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collapsebench.testing.tiny import HIDDEN, byte_level_tokenizer


def t5_tokenizer(texts: list[str] | None = None) -> Any:
    """T5's special tokens (<pad> 0, </s> 1 appended to every text, <unk> 2) over the byte-level vocabulary, or,
    given `texts`, over their words and punctuation: about as many tokens as T5 makes of them (a byte per token
    is about four times that), for upstream code that keeps a fixed number of them (XVerse: 128)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>", "<unused>"]  # id 3 is T5's leading space, which XVerse drops from a word
    if texts is None:
        tokenizer = byte_level_tokenizer(PreTrainedTokenizerFast, specials[:3], pad_token="<pad>", eos_token="</s>",
                                         unk_token="<unk>")
    else:
        splitter = pre_tokenizers.Whitespace()
        vocab = {token: index for index, token in enumerate(specials)}
        for text in texts:
            for word, _ in splitter.pre_tokenize_str(text):
                vocab.setdefault(word, len(vocab))
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        backend.pre_tokenizer = splitter
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                            unk_token="<unk>")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tokenizer.convert_tokens_to_ids("</s>"))])
    return tokenizer


def build_flux1(folder: Path, heads: int = 2, head_dim: int = 8, t5_width: int = HIDDEN,
                latent_channels: int = 4, t5_texts: list[str] | None = None) -> Path:
    """Save a FluxPipeline (CLIP text with the real CLIP BPE, T5, 2-level VAE, 1+1-block transformer) in
    folder/flux. `latent_channels`: FLUX.1's 16 where upstream code hardcodes its packed width (XVerse: 64);
    `t5_texts`: the texts whose words the T5 tokenizer knows (see t5_tokenizer)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    from collapsebench.core.clip_tokens import write_tokenizer_files

    torch.manual_seed(0)
    clip_tokenizer = CLIPTokenizer.from_pretrained(str(write_tokenizer_files(folder / "clip-tokenizer")))
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(clip_tokenizer), hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
    tokenizer_2 = t5_tokenizer(t5_texts)
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=t5_width, d_kv=8, d_ff=32, num_layers=1,
                                 num_heads=2))
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4 * latent_channels, num_layers=1, num_single_layers=1, attention_head_dim=head_dim,
        num_attention_heads=heads, joint_attention_dim=t5_width, pooled_projection_dim=HIDDEN, guidance_embeds=True,
        axes_dims_rope=(head_dim // 4, head_dim // 4, head_dim // 2))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 4), layers_per_block=1,
        latent_channels=latent_channels, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0, scaling_factor=1.0)
    FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip, tokenizer=clip_tokenizer,
                 text_encoder_2=t5, tokenizer_2=tokenizer_2, transformer=transformer).save_pretrained(folder / "flux")
    return folder / "flux"


def random_lora(transformer: Any, targets: list[str], rank: int, adapter_name: str) -> dict[str, Any]:
    """A LoRA on `targets` of `transformer` with both factors random (peft starts B at zero, a LoRA that changes
    nothing and so would pass any liveness check vacuously); returns its state dict in the diffusers layout."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets), adapter_name=adapter_name)
    generator = torch.Generator().manual_seed(1)
    for name, parameter in transformer.named_parameters():
        if "lora_" in name:
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.5
    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    transformer.delete_adapters(adapter_name)
    return state
