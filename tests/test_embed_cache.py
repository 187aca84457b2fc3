"""The embedding engine: each unique image embedded once per backbone revision, cached safely on disk."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from collapsebench.core.io import sha256_file
from collapsebench.core.runlog import read_run_log
from collapsebench.scoring.backbones import BackboneSpec, ImageBackbone
from collapsebench.scoring.embed_cache import (
    EmbeddingCache,
    EmbeddingEngine,
    ImageSource,
    decode_entry,
    encode_entry,
    file_source,
    pil_source,
)


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"img{index}.png"
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def dinov2(smoke_root: Path) -> BackboneSpec:
    return BackboneSpec("dinov2", str(smoke_root / "dinov2"))


def test_entry_round_trip_and_damage_is_detected() -> None:
    vector = np.random.default_rng(0).normal(size=37).astype(np.float32)
    data = encode_entry(vector)
    np.testing.assert_array_equal(decode_entry(data), vector)
    assert decode_entry(data[:-4]) is None  # torn
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    assert decode_entry(bytes(flipped)) is None  # altered payload
    assert decode_entry(b"") is None and decode_entry(b"garbage" * 10) is None
    assert decode_entry(encode_entry(np.zeros(0, dtype=np.float32))).shape == (0,)  # empty is a valid entry


def test_each_unique_image_goes_through_the_backbone_once(smoke_root: Path, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "images", 5)
    shutil.copy(paths[0], tmp_path / "same_content.png")  # another path, same bytes
    sources = [file_source(p) for p in [*paths, tmp_path / "same_content.png", paths[1]]]
    cache = EmbeddingCache(tmp_path / "cache")

    cold = EmbeddingEngine(dinov2(smoke_root), cache, batch_size=2, device=torch.device("cpu"))
    first = cold.embed(sources)
    assert first.shape[0] == 7 and cold.forwarded == 5
    np.testing.assert_array_equal(first[5], first[0])
    direct = ImageBackbone(dinov2(smoke_root), torch.device("cpu")).embed_images([Image.open(p) for p in paths])
    np.testing.assert_allclose(first[:5], direct, atol=1e-5)

    warm = EmbeddingEngine(dinov2(smoke_root), EmbeddingCache(tmp_path / "cache"), device=torch.device("cpu"))
    np.testing.assert_array_equal(warm.embed(sources), first)
    assert warm.forwarded == 0
    assert warm._backbone is None  # a fully warm run never loads the weights
    assert warm.cache is not None and warm.cache.stats.hits == 5 and warm.cache.stats.misses == 0


def test_the_key_follows_weights_and_preprocessing(smoke_root: Path, tmp_path: Path) -> None:
    base = EmbeddingEngine(dinov2(smoke_root), None, device=torch.device("cpu"))
    same = EmbeddingEngine(dinov2(smoke_root), None, device=torch.device("cpu"))
    assert base.space == same.space

    other_preprocessing = tmp_path / "pre"
    shutil.copytree(smoke_root / "dinov2", other_preprocessing)
    config = json.loads((other_preprocessing / "preprocessor_config.json").read_text())
    config["crop_size"] = {"height": 112, "width": 112}
    (other_preprocessing / "preprocessor_config.json").write_text(json.dumps(config))
    assert EmbeddingEngine(BackboneSpec("dinov2", str(other_preprocessing)), None).space != base.space

    other_weights = tmp_path / "weights"
    shutil.copytree(smoke_root / "dinov2", other_weights)
    model = ImageBackbone(BackboneSpec("dinov2", str(other_weights)), torch.device("cpu")).model
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    model.save_pretrained(other_weights)
    assert EmbeddingEngine(BackboneSpec("dinov2", str(other_weights)), None).space != base.space


def test_a_damaged_entry_is_recomputed_and_repaired(smoke_root: Path, tmp_path: Path) -> None:
    sources = [file_source(p) for p in write_images(tmp_path / "images", 3)]
    engine = EmbeddingEngine(dinov2(smoke_root), EmbeddingCache(tmp_path / "cache"), device=torch.device("cpu"))
    expected = engine.embed(sources)
    entries = sorted((tmp_path / "cache").rglob("*.emb"))
    assert len(entries) == 3
    entries[0].write_bytes(entries[0].read_bytes()[:20])  # torn
    entries[1].write_bytes(b"\x00" * entries[1].stat().st_size)  # zeroed, right size

    again = EmbeddingEngine(dinov2(smoke_root), EmbeddingCache(tmp_path / "cache"), device=torch.device("cpu"))
    np.testing.assert_allclose(again.embed(sources), expected, atol=1e-6)
    assert again.cache is not None and again.cache.stats.corrupt == 2 and again.forwarded == 2
    assert all(decode_entry(path.read_bytes()) is not None for path in entries)


def _hammer(root: str, worker: int, rounds: int) -> int:
    """Write the same 50 entries over and over while reading them; count damaged reads."""
    cache = EmbeddingCache(Path(root))
    damaged = 0
    for round_ in range(rounds):
        for key in range(50):
            digest = f"{key:064x}"
            cache.put("space", digest, np.full(256, key, dtype=np.float32))
            got = cache.get("space", f"{(key + worker + round_) % 50:064x}")
            damaged += got is not None and not np.all(got == got[0])
    return damaged + cache.stats.corrupt


def test_concurrent_writers_never_leave_a_damaged_entry(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(4) as pool:
        damaged = pool.starmap(_hammer, [(str(tmp_path), worker, 6) for worker in range(4)])
    assert damaged == [0, 0, 0, 0]
    cache = EmbeddingCache(tmp_path)
    for key in range(50):
        np.testing.assert_array_equal(cache.get("space", f"{key:064x}"), np.full(256, key, dtype=np.float32))
    assert not list(tmp_path.rglob("*.tmp"))  # no temp files left behind


class RecordingBackbone:
    """Stands in for the model: records the batch sizes it receives."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        self.log.append(f"embed {len(images)}")
        return np.ones((len(images), 4), dtype=np.float32) / 2


def test_images_are_decoded_one_batch_at_a_time(smoke_root: Path) -> None:
    log: list[str] = []

    def source(index: int) -> ImageSource:
        def load() -> Image.Image:
            log.append(f"load {index}")
            return Image.new("RGB", (8, 8), (index, 0, 0))
        return ImageSource(f"{index:064x}", load)

    engine = EmbeddingEngine(dinov2(smoke_root), None, batch_size=3, device=torch.device("cpu"))
    engine._backbone = RecordingBackbone(log)  # type: ignore[assignment]
    engine.embed([source(i) for i in range(8)])
    # The last batch is padded to the batch size (see the next test): 3 forwards, 2 of them kept.
    assert log == ["load 0", "load 1", "load 2", "embed 3", "load 3", "load 4", "load 5", "embed 3",
                   "load 6", "load 7", "embed 3"]
    assert engine.forwarded == 8


@pytest.mark.parametrize("backbone", ["dinov2", "clip"])
def test_an_embedding_does_not_depend_on_what_the_cache_already_held(smoke_root: Path, tmp_path: Path,
                                                                     backbone: str) -> None:
    """Defect: a fresh clone's scores differed from the committed ones at the 6th decimal: with some images
    cached, the rest went through the backbone in batches of another shape, which changes the float sums."""
    paths = write_images(tmp_path / "images", 7)
    spec = BackboneSpec(backbone, str(smoke_root / backbone))
    cold = EmbeddingEngine(spec, EmbeddingCache(tmp_path / "cold"), batch_size=4, device=torch.device("cpu"))
    expected = cold.embed([file_source(p) for p in paths])
    partly = EmbeddingEngine(spec, EmbeddingCache(tmp_path / "partly"), batch_size=4, device=torch.device("cpu"))
    partly.embed([file_source(p) for p in paths[1:6:2]])  # three of them cached first, in a batch of their own
    np.testing.assert_array_equal(partly.embed([file_source(p) for p in paths]), expected)


def test_crop_sources_are_keyed_by_pixels() -> None:
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    assert pil_source(image.crop((0, 0, 10, 10))).digest == pil_source(image.copy().crop((0, 0, 10, 10))).digest
    assert pil_source(image.crop((0, 0, 10, 10))).digest != pil_source(image.crop((1, 0, 11, 10))).digest


def test_a_missing_image_is_named(tmp_path: Path) -> None:
    from collapsebench.core.errors import BenchError

    with pytest.raises(BenchError, match="nope.png: image not found"):
        file_source(tmp_path / "nope.png")


@pytest.mark.slow
def test_scoring_through_the_cache_gives_the_same_numbers_and_a_rerun_embeds_nothing(
        smoke_root: Path, pool_dir: Path, tmp_path: Path) -> None:
    from conftest import REPO

    from collapsebench.benchmark.casting import cast_suite
    from collapsebench.benchmark.model_config import load_model_config
    from collapsebench.benchmark.pool import load_pool
    from collapsebench.benchmark.suite import make_jobs
    from collapsebench.core.io import read_csv
    from collapsebench.core.metric_table import SCORE_COLUMNS
    from collapsebench.generation.generate import run_generate
    from collapsebench.scoring.backbones import BACKBONE_NAMES
    from collapsebench.scoring.config import ScoringConfig
    from collapsebench.scoring.detection import MatchedSettings
    from collapsebench.scoring.score import run_score
    from collapsebench.scoring.smoke import smoke_detector_dir

    pool = load_pool(pool_dir)
    jobs = make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, [0, 1])[::10]  # every subject count
    out = tmp_path / "collage"
    run_generate(load_model_config(REPO / "models", "collage"), jobs, pool, out)
    specs = {name: BackboneSpec(name, str(smoke_root / name)) for name in BACKBONE_NAMES}
    matched = MatchedSettings(BackboneSpec("detector", str(smoke_detector_dir(tmp_path / "det"))),
                              {"person": "a photo of a person", "animal": "a photo of an animal"}, score_threshold=0.0)

    config = ScoringConfig("smoke", specs, matched, tmp_path / "cache", batch_size=4)
    run_score("collage", out, pool, config)
    cached = (out / "scores.csv").read_text()
    scoring = (out / "scoring.json").read_text()
    first = read_run_log(out)[-1]  # what the run did goes to the run log, never into the committed scoring.json
    rows = read_csv(out / "scores.csv")
    assert tuple(rows[0]) == SCORE_COLUMNS and SCORE_COLUMNS[:11] == (
        "model", "prompt_id", "seed", "n_subjects", "scene", "slot", "subject_id", "dinov2", "dino", "clip_i", "clip_t")
    assert all(row["n_detections"] != "" for row in rows)
    assert any(row["matched_dinov2"] != "" for row in rows)
    n_images = len({row["prompt_id"] + "/" + row["seed"] for row in rows})
    unique = len({sha256_file(path) for path in (out / "images").glob("*.png")})
    assert first["images_through_backbones"]["dino"] == unique + len({row["subject_id"] for row in rows})
    # the detector sees each distinct image once, and each reference once (references are cropped to their subject)
    assert first["matched_images_through_detector"] == unique + len({row["subject_id"] for row in rows})
    assert unique <= n_images

    run_score("collage", out, pool, config)
    second = read_run_log(out)[-1]
    assert second["images_through_backbones"] == {"dinov2": 0, "dino": 0, "clip": 0}
    assert second["matched_images_through_detector"] == 0
    assert (out / "scores.csv").read_text() == cached
    assert (out / "scoring.json").read_text() == scoring  # a warm rerun changes no committed byte

    run_score("collage", out, pool, ScoringConfig("smoke", specs, None, None, batch_size=4))
    uncached = read_csv(out / "scores.csv")
    for with_cache, without in zip(rows, uncached):
        assert abs(float(with_cache["dinov2"]) - float(without["dinov2"])) < 1e-5
        assert without["matched_dinov2"] == without["n_detections"] == ""  # matched off: columns empty


def test_hub_weights_are_keyed_by_the_commit_a_revision_points_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    from collapsebench.core.errors import BenchError
    from collapsebench.scoring.embed_cache import weights_identity

    pinned = "f9e44c814b77203eaa57a6bdbbd535f21ede1415"
    assert weights_identity("facebook/dinov2-base", pinned) == {"id": "facebook/dinov2-base", "commit": pinned}

    class Resolved(str):
        resolved = "a" * 40

    monkeypatch.setattr(huggingface_hub, "resolve_revision", lambda repo, **kwargs: Resolved("main"))
    assert weights_identity("facebook/dino-vits16", None)["commit"] == "a" * 40

    def offline(repo: str, **kwargs: object) -> str:
        raise OSError("no cached ref")

    monkeypatch.setattr(huggingface_hub, "resolve_revision", offline)
    with pytest.raises(BenchError, match="facebook/dino-vits16@main: cannot resolve the commit.*Pin a full commit"):
        weights_identity("facebook/dino-vits16", None)
