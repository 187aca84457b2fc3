"""Embedding backbones of the metrics, loaded with `from_pretrained` at pinned revisions.

- dinov2: `Dinov2Model` pooled output (the layer-normed CLS token).
- dino:   DINO v1 (`ViTModel`), CLS token of the last (layer-normed) hidden state.
- clip:   `CLIPModel.get_image_features` / `get_text_features` (projected embeddings).

Preprocessing always comes from the checkpoint's own `preprocessor_config.json`
via `AutoImageProcessor`: DINOv2's (resize 256 bicubic, crop 224, ImageNet
mean/std) is not the library default of `BitImageProcessor`, which is CLIP's.
Every embedding returned is L2-normalized, so a dot product is the cosine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from collapsebench.core.clip_tokens import CLIP_MAX_TOKENS
from collapsebench.core.errors import BenchError
from collapsebench.core.hub import PULL_SCORING, missing_hint, revision_kwargs

BACKBONE_NAMES = ("dinov2", "dino", "clip")
# The paper setup's checkpoints: what `scoring.backbones` in params.yaml falls back to (a test keeps both equal).
DEFAULT_BACKBONES: dict[str, dict[str, str | None]] = {
    "dinov2": {"id": "facebook/dinov2-base", "revision": "f9e44c814b77203eaa57a6bdbbd535f21ede1415"},
    "dino": {"id": "facebook/dino-vits16", "revision": None},  # not pinned yet: the loaded commit is recorded
    "clip": {"id": "openai/clip-vit-base-patch32", "revision": "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268"},
}


@dataclass(frozen=True)
class BackboneSpec:
    """Where a backbone's weights come from: a hub id at a pinned revision, or a local folder."""

    name: str
    source: str  # hub id (e.g. facebook/dinov2-base) or a local save_pretrained folder
    revision: str | None = None

    @property
    def label(self) -> str:
        return f"{self.source}@{self.revision}" if self.revision else self.source

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()

    def load_error(self, what: str, error: Exception) -> BenchError:
        """Why `what` could not be loaded and the fix: a folder that is no checkpoint, or a hub checkpoint the
        (offline) cache lacks, named with the commit wanted and the commits the cache holds."""
        if self.is_local:
            return BenchError(f"{what}: cannot load the folder {self.source} ({error}); expected a folder written "
                              "by save_pretrained")
        return BenchError(f"{what}: cannot load {self.label} ({error}). "
                          + missing_hint(self.source, self.revision, PULL_SCORING))


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """Half precision on a GPU (fast, and what the cache keys say), full precision on a CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """`float32`, `float16`, ...: how a dtype is written in cache keys and scoring.json."""
    return str(dtype).removeprefix("torch.")


class ImageBackbone:
    """One vision backbone + its own processor; embeds PIL images to unit vectors."""

    def __init__(self, spec: BackboneSpec, device: torch.device | None = None,
                 dtype: torch.dtype | None = None) -> None:
        from transformers import AutoImageProcessor, CLIPModel, Dinov2Model, ViTModel

        if spec.name not in BACKBONE_NAMES:
            raise BenchError(f"unknown backbone {spec.name!r}; known: {', '.join(BACKBONE_NAMES)}")
        self.spec = spec
        self.device = device or pick_device()
        self.dtype = dtype or default_dtype(self.device)
        kwargs = revision_kwargs(spec.revision)
        try:
            self.processor = AutoImageProcessor.from_pretrained(spec.source, **kwargs)
            if spec.name == "clip":
                self.model = CLIPModel.from_pretrained(spec.source, **kwargs)
            elif spec.name == "dinov2":
                self.model = Dinov2Model.from_pretrained(spec.source, **kwargs)
            else:  # DINO v1 checkpoints are plain ViTs without the classification pooler
                self.model = ViTModel.from_pretrained(spec.source, add_pooling_layer=False, **kwargs)
        except OSError as error:
            raise spec.load_error(f"backbone {spec.name}", error) from error
        self.model.to(self.device, dtype=self.dtype).eval()

    @torch.inference_mode()
    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        pixels = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, dtype=self.dtype)
        if self.spec.name == "clip":
            features = _pooled(self.model.get_image_features(pixel_values=pixels))
        elif self.spec.name == "dinov2":
            features = self.model(pixel_values=pixels).pooler_output
        else:  # DINO v1 (ViT): the CLS token after the final layer norm
            features = self.model(pixel_values=pixels).last_hidden_state[:, 0]
        return _normalize(features)


class ClipText:
    """CLIP text side: tokenizer truncation to 77 tokens (keeps the end token), projected embedding."""

    def __init__(self, backbone: ImageBackbone) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(backbone.spec.source, **revision_kwargs(backbone.spec.revision))
        self.backbone = backbone
        self.truncated = 0  # prompts longer than 77 tokens seen so far

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=False)["input_ids"])

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.truncated += sum(self.count_tokens(t) > CLIP_MAX_TOKENS for t in texts)
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=CLIP_MAX_TOKENS, return_tensors="pt")
        tokens = {key: value.to(self.backbone.device) for key, value in tokens.items()}
        return _normalize(_pooled(self.backbone.model.get_text_features(**tokens)))


def _pooled(output: Any) -> torch.Tensor:
    """transformers 5 returns an output object from get_*_features (projected pooler_output); 4.x a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _normalize(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    return torch.nn.functional.normalize(features, dim=-1).cpu().numpy()
