"""Backbones load through from_pretrained, use the checkpoint's own preprocessing, and CLIP-T truncates safely."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from collapsebench.cli import main
from collapsebench.scoring.backbones import (
    CLIP_MAX_TOKENS,
    BackboneSpec,
    ClipText,
    ImageBackbone,
)


def manual_dinov2_pixels(image: Image.Image, shortest: int, crop: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """DINOv2 preprocessing written out by hand: bicubic shortest-edge resize, center crop, normalize."""
    scale = shortest / min(image.size)
    resized = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (resized.width - crop) // 2, (resized.height - crop) // 2
    array = np.asarray(resized.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
    array = (array - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return torch.from_numpy(array.transpose(2, 0, 1))[None]


def test_dinov2_uses_the_checkpoints_processor_config_not_library_defaults(smoke_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dinov2"
    shutil.copytree(smoke_root / "dinov2", folder)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    # A distinctive config: if the loader fell back to defaults, embeddings would differ.
    config.update(size={"shortest_edge": 120}, crop_size={"height": 112, "width": 112}, image_mean=[0.2, 0.3, 0.4])
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8))

    backbone = ImageBackbone(BackboneSpec("dinov2", str(folder)), device=torch.device("cpu"))
    got = backbone.embed_images([image])[0]

    with torch.inference_mode():
        pixels = manual_dinov2_pixels(image, 120, 112, [0.2, 0.3, 0.4], config["image_std"])
        expected = torch.nn.functional.normalize(backbone.model(pixel_values=pixels).pooler_output, dim=-1)[0].numpy()
        from transformers import BitImageProcessor

        default_pixels = BitImageProcessor()(images=[image], return_tensors="pt")["pixel_values"]
        default = torch.nn.functional.normalize(backbone.model(pixel_values=default_pixels).pooler_output, dim=-1)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert not np.allclose(got, default, atol=1e-2)


def test_dinov2_embedding_is_the_layernormed_cls_token(smoke_root: Path) -> None:
    backbone = ImageBackbone(BackboneSpec("dinov2", str(smoke_root / "dinov2")), device=torch.device("cpu"))
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    pixels = backbone.processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        cls = backbone.model(pixel_values=pixels).last_hidden_state[:, 0]  # after the final layer norm
    np.testing.assert_allclose(backbone.embed_images([image])[0],
                               torch.nn.functional.normalize(cls, dim=-1)[0].numpy(), atol=1e-5)


def test_clip_text_truncation_keeps_the_end_token_and_is_counted(smoke_root: Path) -> None:
    backbone = ImageBackbone(BackboneSpec("clip", str(smoke_root / "clip")), device=torch.device("cpu"))
    text = ClipText(backbone)
    long_prompt = "a woman with red hair hugging a man in a blue coat " * 8  # 98 real CLIP tokens
    short_prompt = "a cat"
    ids = text.tokenizer([long_prompt], truncation=True, max_length=CLIP_MAX_TOKENS)["input_ids"][0]
    assert len(ids) == CLIP_MAX_TOKENS and ids[-1] == text.tokenizer.eos_token_id
    assert text.count_tokens(long_prompt) > CLIP_MAX_TOKENS

    embeddings = text.embed_texts([long_prompt, short_prompt])
    assert text.truncated == 1
    # The long prompt's embedding is that of its 77 kept tokens, end token included (CLIP pools at the EOS).
    with torch.inference_mode():
        manual = backbone.model.get_text_features(input_ids=torch.tensor([ids]))
        manual = manual if isinstance(manual, torch.Tensor) else manual.pooler_output
    np.testing.assert_allclose(embeddings[0], torch.nn.functional.normalize(manual, dim=-1)[0].numpy(), atol=1e-5)
    # Slicing ids instead (dropping the end token) would give a different embedding.
    with torch.inference_mode():
        sliced = backbone.model.get_text_features(input_ids=torch.tensor([text.tokenizer(long_prompt)["input_ids"][:77]]))
        sliced = sliced if isinstance(sliced, torch.Tensor) else sliced.pooler_output
    assert not np.allclose(embeddings[0], torch.nn.functional.normalize(sliced, dim=-1)[0].numpy(), atol=1e-4)


def test_compare_prints_cosines_in_reference_order(smoke_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(1)
    paths = []
    for name in ("gen", "ref_a", "ref_b", "ref_c"):
        path = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    shutil.copy(paths[0], tmp_path / "same.png")  # the image itself as a reference: cosine 1

    argv = ["compare", str(paths[0]), str(paths[1]), str(tmp_path / "same.png"), str(paths[2]),
            "--metric", "dinov2", "--backbone", f"dinov2={smoke_root / 'dinov2'}", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["metric"] == "dinov2" and len(result["cosines"]) == 3
    assert result["cosines"][1] == pytest.approx(1.0, abs=1e-4)
    assert result["score"] == pytest.approx(np.mean(result["cosines"]))
    for tau in ("0.4", "0.5", "0.6"):
        assert result["collapsed"][tau] == sum(c < float(tau) for c in result["cosines"])

    backbone = ImageBackbone(BackboneSpec("dinov2", str(smoke_root / "dinov2")), device=torch.device("cpu"))
    embeddings = backbone.embed_images([Image.open(p) for p in (paths[0], paths[1], paths[2])])
    assert result["cosines"][0] == pytest.approx(float(embeddings[1] @ embeddings[0]), abs=1e-5)
    assert result["cosines"][2] == pytest.approx(float(embeddings[2] @ embeddings[0]), abs=1e-5)


def test_compare_rejects_a_bad_backbone_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    assert main(["compare", str(image), str(image), "--backbone", f"dinov2={tmp_path / 'nope'}"]) == 2
    assert "not a folder made by save_pretrained" in capsys.readouterr().err
