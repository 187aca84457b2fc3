"""Preflight of XVerse: its upstream code (`--code-dir`, or /opt/xverse in its image) on a twin of its three
checkpoints, all random: FLUX.1 (16 latent channels, since upstream packs condition latents as 64 wide), a CLIP
ViT with projection (and its processor), and an XVerse checkpoint folder with upstream's own CLIPModAdapter (as
upstream loads it, modulation_adapter/modulation_adapter) and a DiT LoRA (pytorch_lora_weights.safetensors).
The demo config's FLUX.1 widths are replaced for the twin through the adapter's `config_overrides`.

Liveness: the modulation adapter (its output zeroed) and the DiT LoRA (bypassed) each change the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.models.mosaic import import_upstream
from collapsebench.preflight.drivers import Twin, lora_switch, weights_folder
from collapsebench.preflight.drivers.flux1 import build_flux1, random_lora
from collapsebench.preflight.spec import PreflightSpec
from collapsebench.preflight.upstream import upstream_pin

WIDTH = 16  # transformer width (2 heads x 8) = modulation out_dim = T5 width = CLIP width
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_out", "proj_mlp"]


class XVerseDriver:
    def twin(self, config: ModelConfig, spec: PreflightSpec, work: Path, weights: Path | None,
             code_dir: Path | None, instance: Any) -> Twin:
        settings = dict(config.settings)
        code = str(code_dir) if code_dir else settings.get("code_dir", "/opt/xverse")
        if weights:
            folders = {key: weights_folder(weights, key) for key in ("base", "clip", "xverse")}
            overrides: dict[str, Any] = {}
        else:
            # The twin's T5 knows the benchmark's words: upstream keeps 128 tokens (and hardcodes that width), so
            # its prompts must count about as T5 counts them; the real count is the `T5 tokens` check.
            texts = [p.natural(instance.pool) for p in instance.prompts] + [s.phrase for s in instance.pool.values()]
            flux = build_flux1(work, t5_width=WIDTH, latent_channels=16, t5_texts=texts)
            folders = {"base": str(flux), "clip": str(self.build_clip(work / "clip")),
                       "xverse": str(self.build_checkpoint(flux, work / "xverse", code))}
            overrides = {"model": {"modulation": {"out_dim": WIDTH, "adapter_width": WIDTH,
                                                  "per_block_adapter_width": WIDTH}}}
        settings.update({key: {**settings[key], "repo": folder, "revision": None} for key, folder in folders.items()})
        settings.update(code_dir=code, height=spec.size, width=spec.size, cond_size=spec.size, steps=spec.steps,
                        device="cpu", config_overrides=overrides)
        pins = {"upstream": upstream_pin(config, Path(code)),
                **{key: config.settings[key] for key in ("base", "clip", "xverse")},
                "twin": "local weights" if weights else "random weights"}
        return Twin(settings=settings, pins=pins)

    @staticmethod
    def build_clip(folder: Path) -> Path:
        """CLIPVisionModelWithProjection and the CLIPProcessor upstream's load_clip reads (CLIP's real BPE)."""
        import torch
        from transformers import (
            CLIPImageProcessor,
            CLIPProcessor,
            CLIPTokenizer,
            CLIPVisionConfig,
            CLIPVisionModelWithProjection,
        )

        from collapsebench.core.clip_tokens import write_tokenizer_files

        torch.manual_seed(0)
        CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=WIDTH, intermediate_size=32, projection_dim=WIDTH, num_hidden_layers=2, num_attention_heads=2,
            image_size=224, patch_size=32)).save_pretrained(folder)
        tokenizer = CLIPTokenizer.from_pretrained(str(write_tokenizer_files(folder / "bpe")))
        CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
        return folder

    @staticmethod
    def build_checkpoint(flux: Path, folder: Path, code_dir: str) -> Path:
        """Upstream's CLIPModAdapter at the twin's widths, and a random DiT LoRA in the diffusers layout."""
        import torch
        from diffusers import FluxPipeline, FluxTransformer2DModel

        adapters = import_upstream(code_dir, {"mod": "src.adapters.mod_adapters"})["mod"]
        torch.manual_seed(0)
        adapter = adapters.CLIPModAdapter(out_dim=WIDTH, width=WIDTH, pblock_width=WIDTH, layers=1, pblock_layers=1,
                                          heads=2, input_text_dim=WIDTH, input_image_dim=WIDTH)
        adapter.save_pretrained(folder / "modulation_adapter" / "modulation_adapter")
        transformer = FluxTransformer2DModel.from_pretrained(flux / "transformer")
        state = random_lora(transformer, LORA_TARGETS, rank=4, adapter_name="default")
        FluxPipeline.save_lora_weights(folder, transformer_lora_layers=state,
                                       weight_name="pytorch_lora_weights.safetensors")
        return folder

    def reference_encoder(self, adapter: Any) -> Any:
        return adapter.model.pipe.clip_model

    @staticmethod
    def prompt_checks(config: ModelConfig, weights: Path | None, code_dir: Path | None, instance: Any) -> list[Any]:
        return [t5_token_check(config, weights, code_dir, instance)]

    def switches(self, adapter: Any) -> dict[str, Any]:
        return {"modulation adapter": self.modulation_off(adapter), "dit lora": lora_switch(adapter.model.pipe)}

    @staticmethod
    def modulation_off(adapter: Any) -> Any:
        @contextmanager
        def off() -> Iterator[None]:
            import torch

            modules = adapter.model.pipe.modulation_adapters
            hooks = [module.register_forward_hook(lambda m, i, out: tuple(torch.zeros_like(t) for t in out))
                     for module in modules]
            try:
                yield
            finally:
                for hook in hooks:
                    hook.remove()

        return off


def t5_token_check(config: ModelConfig, weights: Path | None, code_dir: Path | None, instance: Any) -> Any:
    """T5 tokens of every rendered prompt, counted with FLUX.1's real tokenizer_2 when it is here (--weights
    DIR/base, or the pinned snapshot in the model cache): upstream keeps max_text_len of them, and a job whose
    subject words fall past that is recorded as failed (models/xverse.py), so the count says how many will be."""
    import yaml

    from collapsebench.models.weights import WeightsPin, resolve
    from collapsebench.models.xverse import CONFIG, cut_words
    from collapsebench.preflight.record import Check

    try:
        base = Path(weights) / "base" if weights else resolve(WeightsPin.from_setting(config.settings["base"],
                                                                                      "settings.base"))[0]
    except Exception as error:  # not in the cache: nothing to count with
        return Check(None, "T5 tokens", True, f"not counted: FLUX.1's tokenizer_2 is not here ({error})"[:300])
    if not (base / "tokenizer_2").is_dir():
        return Check(None, "T5 tokens", True, f"not counted: {base / 'tokenizer_2'} not found")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base / "tokenizer_2"))
    code = Path(code_dir) if code_dir else Path(config.settings.get("code_dir", "/opt/xverse"))
    max_length = int(yaml.safe_load((code / CONFIG).read_text())["model"]["modulation"]["max_text_len"])
    counts, cut = [], []
    for prompt in instance.prompts:
        text = prompt.natural(instance.pool)
        counts.append(len(tokenizer(text).input_ids))
        phrases = [instance.pool[s].phrase for s in prompt.subjects]
        words = [p[2:] if p[:2] in ("a ", "A ") else p for p in phrases]
        if cut_words(tokenizer, text, words, max_length):
            cut.append(prompt.id)
    return Check(None, "T5 tokens", True, f"{min(counts)}-{max(counts)} per prompt, upstream keeps {max_length}; "
                 f"{len(cut)} of {len(counts)} prompts cut a subject's words" + (f" (prompts {cut}: those jobs are "
                 "recorded as failed)" if cut else ""))
