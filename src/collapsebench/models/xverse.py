"""XVerse (Chen et al., 2025): FLUX.1-dev with XVerse's text-stream modulation adapter and DiT LoRA.

The official `inference_single_sample.py` is a script, so this adapter performs
its steps with the upstream functions of the checkout pinned in
docker/xverse/Dockerfile (`CustomFluxPipeline`, `load_modulation_adapter`,
`load_dit_lora`, `generate_from_test_sample`), with its default settings:
768 x 768, 28 steps, guidance 3.5, condition size 256, weight_id 3 /
weight_ip 5, LoRA scales 0.85 / 1.3, VAE skip 0.05 / 0.8, one image per call.
One deliberate difference: `dit_quant: "None"`, the DiT in full bf16 as in the
paper's setting, instead of the script's int8 (optimum-quanto) default.

Prompt: each subject gets the placeholder ENT<i> and its phrase as caption;
the prompt sent is the placeholder prompt with each ENT<i> replaced by its
caption (what the upstream demo does), which is our natural prompt. Unlike the
demo's plain `str.replace`, placeholders are replaced whole-word, so ENT1 does
not eat the start of ENT10. The caption's word bound to the reference is the
caption without a leading "a " (the upstream rule). People use the identity
weight, animals the image-prompt weight (the demo's "ID or not" box).
"""

from __future__ import annotations

import os
import re
from typing import Any

from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.models.base import Adapter, Generation, JobFailed, register
from collapsebench.models.mosaic import import_upstream
from collapsebench.models.weights import WeightsPin, resolve

CONFIG = "train/config/XVerse_config_demo.yaml"


@register
class XVerseAdapter(Adapter):
    name = "xverse"
    needs_gpu = True

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.pins = {key: WeightsPin.from_setting(self.settings.get(key), f"adapter xverse: settings.{key}")
                     for key in ("base", "clip", "xverse")}
        self.model: Any = None
        self.device: Any = None
        self.upstream: dict[str, Any] = {}
        self._commits: dict[str, str] = {}

    @property
    def revision(self) -> str:
        return ", ".join(f"{pin.repo}@{self._commits.get(key) or pin.revision or 'unpinned'}"
                         for key, pin in self.pins.items())

    def load(self) -> None:
        import torch

        code_dir = self.settings.get("code_dir", "/opt/xverse")
        self.upstream = import_upstream(code_dir, {"tools": "src.flux.pipeline_tools", "generate": "src.flux.generate",
                                                   "data": "src.utils.data_utils"})
        folders = {}
        for key, pin in self.pins.items():
            folders[key], self._commits[key] = resolve(pin)
        # CustomFluxPipeline and load_clip read their checkpoints from these variables.
        os.environ["FLUX_MODEL_PATH"] = str(folders["base"])
        os.environ["CLIP_MODEL_PATH"] = str(folders["clip"])
        tools, config_path = self.upstream["tools"], os.path.join(code_dir, CONFIG)
        device, dtype = torch.device(self.settings.get("device", "cuda")), torch.bfloat16

        config = self.train_config(config_path)
        config["model"]["dit_quant"] = self.settings.get("dit_quant", "None")
        config["model"]["use_dit_lora"] = False  # the LoRA is loaded below from the XVerse checkpoint
        model = tools.CustomFluxPipeline(config, device, torch_dtype=dtype)
        model.pipe.set_progress_bar_config(leave=False)
        model.config = self.train_config(config_path)
        model.clear_modulation_adapters()
        model.pipe.unload_lora_weights()
        checkpoint = str(folders["xverse"])
        model.add_modulation_adapter(tools.load_modulation_adapter(
            model, model.config, dtype, device, f"{checkpoint}/modulation_adapter", is_training=False))
        if model.config["model"]["use_dit_lora"]:
            tools.load_dit_lora(model, model.pipe, model.config, dtype, device, checkpoint, is_training=False)
        model.pipe = model.pipe.to(device)
        model.pipe.modulation_adapters = [adapter.to(device) for adapter in model.pipe.modulation_adapters]
        self.model, self.device = model, device

    def train_config(self, path: str) -> dict[str, Any]:
        """Upstream's demo config, with `config_overrides` merged in: only a preflight twin sets them, since the
        demo config hardcodes FLUX.1's widths (modulation out_dim 3072) that a tiny twin does not have."""
        config = self.upstream["data"].get_train_config(path)
        merge(config, self.settings.get("config_overrides") or {})
        return config

    def generate(self, prompt: str, subjects: list[Subject], references: list[Image.Image], seed: int) -> Generation:
        s = self.settings
        captions = [subject.phrase for subject in subjects]
        placeholder_prompt = placeholders(prompt, captions)
        sent_prompt = fill_placeholders(placeholder_prompt, captions)
        words = [caption[2:] if caption[:2] in ("a ", "A ") else caption for caption in captions]
        max_length = int(self.model.config["model"]["modulation"]["max_text_len"])
        cut = cut_words(self.model.pipe.tokenizer_2, sent_prompt, words, max_length)
        if cut:
            raise JobFailed(f"xverse: upstream keeps the first {max_length} T5 tokens of the prompt, which cuts the "
                            f"words of {len(cut)} of {len(words)} subjects ({', '.join(repr(w) for w in cut)}); "
                            "the job is not run")
        is_id = [subject.kind == "person" for subject in subjects]
        weights = [s["weight_id"] if flag else s["weight_ip"] for flag in is_id]
        height, width, cond_size = int(s["height"]), int(s["width"]), int(s["cond_size"])
        scales = {
            "control_weight_lambda": "0-1:1/" + "/".join(str(w) for w in weights),
            "vae_skip_iter": f"0-{s['vae_skip_iter_s1']}:1,{s['vae_skip_iter_s2']}-1:1",
            "latent_sblora_scale": f"0-1:{s['latent_lora_scale']}",
            "condition_sblora_scale": f"0-1:{s['vae_lora_scale']}",
        }
        test_sample = {
            "input_images": [], "position_delta": [0, -32], "prompt": sent_prompt,
            "target_height": height, "target_width": width, "seed": seed, "cond_size": cond_size,
            "vae_skip_iter": scales["vae_skip_iter"], "lora_scale": s["latent_lora_scale"],
            "control_weight_lambda": scales["control_weight_lambda"],
            "latent_sblora_scale": scales["latent_sblora_scale"],
            "condition_sblora_scale": scales["condition_sblora_scale"],
            "double_attention": False, "single_attention": True,
            "modulation": [{
                "type": "adapter",
                "src_inputs": [{"image_path": str(subject.image), "caption": caption}
                               for subject, caption in zip(subjects, captions)],
                "use_words": [(index, word, word) for index, word in enumerate(words)],
            }],
        }
        dataset = self.model.config["train"]["dataset"]
        dataset["val_condition_size"] = cond_size
        dataset["val_target_size"] = int(round((width * height) ** 0.5) // 16 * 16)
        call = {"num_images": 1, "target_height": height, "target_width": width, "seed": seed,
                "num_inference_steps": int(s["steps"]), "guidance_scale": float(s["guidance"])}
        image = self.upstream["generate"].generate_from_test_sample(
            test_sample, self.model.pipe, self.model.config, store_attn_map=False,
            vae_skip_iter=scales["vae_skip_iter"], control_weight_lambda=scales["control_weight_lambda"],
            double_attention=False, single_attention=True, latent_dblora_scale=s["latent_lora_scale"],
            use_latent_sblora_control=True, latent_sblora_scale=scales["latent_sblora_scale"],
            use_condition_sblora_control=True, condition_sblora_scale=scales["condition_sblora_scale"],
            device=self.device, forward_hook_manager=None, **call)
        sent = {**call, **scales, "placeholder_prompt": placeholder_prompt, "captions": captions,
                "use_words": words, "id_flags": is_id, "references": [subject.id for subject in subjects],
                "cond_size": cond_size, "dit_quant": s.get("dit_quant", "None")}
        return Generation(image=image, sent_prompt=sent_prompt, sent=sent)


def merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    """Deep-merge `changes` into `target` in place."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def t5_ids(tokenizer: Any, text: str, max_length: int) -> list[int]:
    """The ids upstream matches words in: tokenized to `max_length` with truncation (its tokenize_t5_prompt), the
    padding and the last kept token (the end-of-sequence token) dropped (its unpad_input_ids)."""
    encoded = tokenizer(text, padding="max_length", max_length=max_length, truncation=True)
    return [token for token, kept in zip(encoded["input_ids"], encoded["attention_mask"]) if kept][:-1]


def cut_words(tokenizer: Any, prompt: str, words: list[str], max_length: int) -> list[str]:
    """The subject words that upstream's get_word_index would not find in the truncated prompt (it then returns
    None and the run crashes): each word's ids, without T5's leading space token (id 3, as upstream drops it),
    searched as a contiguous run of the prompt's ids."""
    target = t5_ids(tokenizer, prompt, max_length)
    cut = []
    for word in words:
        ids = t5_ids(tokenizer, word, max_length)
        ids = ids[1:] if ids and ids[0] == 3 else ids
        if not any(target[start:start + len(ids)] == ids for start in range(len(target) - len(ids) + 1)):
            cut.append(word)
    return cut


def placeholders(prompt: str, captions: list[str]) -> str:
    """The ENT<i> form of a natural prompt: each caption, searched left to right in slot order, becomes ENT<i>.

    Benchmark templates use their slots in order, so the i-th caption is found after the (i-1)-th.
    """
    parts, position = [], 0
    for index, caption in enumerate(captions, start=1):
        found = prompt.find(caption, position)
        if found < 0:
            raise BenchError(f"xverse: subject phrase {caption!r} not found in order in the prompt {prompt!r}")
        parts += [prompt[position:found], f"ENT{index}"]
        position = found + len(caption)
    return "".join(parts) + prompt[position:]


def fill_placeholders(text: str, captions: list[str]) -> str:
    """Replace whole-word ENT<i> by the i-th caption (ENT1 never matches inside ENT10)."""
    return re.sub(r"\bENT(\d+)\b", lambda match: captions[int(match.group(1)) - 1], text)
