"""Matched SCR: queries, detection post-processing, padding, kind-restricted assignment, missing subjects, clone rate
and its null, aggregation, and composites with known truth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from collapsebench.core.errors import BenchError
from collapsebench.models.layout import tile
from collapsebench.reporting.matched_cells import clone_flags, matched_cell
from collapsebench.reporting.metrics import bootstrap_intervals
from collapsebench.scoring.backbones import BackboneSpec
from collapsebench.scoring.config import ScoringConfig
from collapsebench.scoring.detection import (
    Detector,
    MatchedSettings,
    crop,
    detect_cached,
    image_queries,
    match_subjects,
    pad_square,
    reference_embeddings,
    score_matched,
    select_detections,
    subject_noun,
    subject_query,
)
from collapsebench.scoring.embed_cache import EmbeddingCache, ImageSource, pil_source
from collapsebench.scoring.smoke import DINOV2_PREPROCESSING, build_smoke_detector

QUERIES = {"person": "a photo of a person", "animal": "a photo of an animal"}
PERSON, ANIMAL = 0, 1  # kind indices (benchmark.pool.KINDS order)


@dataclass(frozen=True)
class Cast:
    kind: str
    phrase: str


# ---------------------------------------------------------------- queries

def test_queries_come_from_each_subjects_noun_and_kind() -> None:
    nouns = {"an astronaut woman": "woman", "an elderly navy officer": "officer", "a man with a camera": "man",
             "a brown tabby cat": "cat", "a red-haired woman": "woman", "a woman in a beret": "woman",
             "a beagle": "beagle", "An Owl.": "owl"}
    assert {phrase: subject_noun(phrase) for phrase in nouns} == nouns
    assert subject_query("an elderly navy officer") == "a photo of an officer"
    cast = {"S1": Cast("person", "a man in a hat"), "S2": Cast("animal", "a beagle")}
    assert image_queries(["S1", "S2"], cast, QUERIES) == (
        ("a photo of a beagle", ANIMAL), ("a photo of a man", PERSON), ("a photo of a person", PERSON),
        ("a photo of an animal", ANIMAL))


# ---------------------------------------------------------------- detection post-processing

KINDS_OF_QUERIES = np.array([PERSON, ANIMAL])
BOTH = np.array([True, True])


def test_select_detections_thresholds_suppresses_and_scales() -> None:
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7], [0.05, 0.05]])
    boxes = np.array([[0.25, 0.25, 0.2, 0.2],  # kept (best)
                      [0.26, 0.25, 0.2, 0.2],  # overlaps the first, same kind: suppressed
                      [0.75, 0.45, 0.2, 0.2],  # an animal, reaching below the image
                      [0.5, 0.5, 0.2, 0.2]])  # below threshold
    both = select_detections(scores, boxes, (200, 100), KINDS_OF_QUERIES, BOTH, 0.3, 0.3, 10, square=True)
    assert both.shape == (2, 6)
    np.testing.assert_allclose(both[0], [30, 30, 70, 70, 0.9, PERSON])  # OWLv2: relative to the padded square
    np.testing.assert_allclose(both[1], [130, 70, 170, 100, 0.7, ANIMAL], atol=1e-5)  # clipped to the height
    people = select_detections(scores, boxes, (200, 100), KINDS_OF_QUERIES, np.array([True, False]), 0.3, 0.3, 10,
                               square=True)
    assert people[:, 5].tolist() == [PERSON]  # the animal query is not asked when no subject is an animal
    stretched = select_detections(scores, boxes, (200, 100), KINDS_OF_QUERIES, BOTH, 0.3, 0.3, 1, square=False)
    np.testing.assert_allclose(stretched, [[30, 15, 70, 35, 0.9, PERSON]])  # OWL-ViT: width and height; max 1
    assert select_detections(scores, boxes, (200, 100), KINDS_OF_QUERIES, BOTH, 0.95, 0.3, 10, True).shape == (0, 6)


def test_nms_is_class_aware_and_merges_nouns_of_one_kind() -> None:
    # queries: "a photo of a man" (person), "a photo of a person" (person), "a photo of a dog" (animal)
    kinds = np.array([PERSON, PERSON, ANIMAL])
    scores = np.array([[0.9, 0.6, 0.1],   # a man
                       [0.2, 0.8, 0.1],   # the same individual, found by the kind query: merged into the first
                       [0.1, 0.1, 0.85]])  # a dog in his arms: overlaps him, but it is another kind: kept
    boxes = np.array([[0.5, 0.5, 0.4, 0.8], [0.51, 0.5, 0.4, 0.8], [0.5, 0.6, 0.3, 0.3]])
    found = select_detections(scores, boxes, (100, 100), kinds, np.ones(3, bool), 0.3, 0.3, 10, square=True)
    assert found[:, 5].tolist() == [PERSON, ANIMAL]
    np.testing.assert_allclose(found[:, 4], [0.9, 0.85], rtol=1e-6)


# ---------------------------------------------------------------- padding

def test_a_tall_crop_keeps_its_head_band_through_the_backbones_preprocessing() -> None:
    """A 2:5 full-body crop: the processor's shortest-edge resize + center crop cuts the head off unless padded."""
    from transformers import BitImageProcessor

    processor = BitImageProcessor(**DINOV2_PREPROCESSING)
    body = np.full((500, 200, 3), 60, np.uint8)
    body[:100] = (255, 0, 0)  # the top 20%: head and hair, pure red
    mean, std = np.array(DINOV2_PREPROCESSING["image_mean"]), np.array(DINOV2_PREPROCESSING["image_std"])
    red = ((np.array([1.0, 0.0, 0.0]) - mean) / std)[:, None, None]

    def red_share(image: Image.Image) -> float:
        pixels = processor(images=[image], return_tensors="np")["pixel_values"][0]
        return float(np.mean(np.all(np.abs(pixels - red) < 0.3, axis=0)))

    assert red_share(Image.fromarray(body)) == 0  # unpadded: none of the head band survives
    padded = pad_square(Image.fromarray(body))
    assert padded.size == (500, 500) and padded.getpixel((0, 0)) == (255, 255, 255)
    assert red_share(padded) > 0.05  # padded: the whole band is in the crop (8% of the square)
    crop_of_box = crop(Image.fromarray(np.zeros((600, 600, 3), np.uint8)), [100, 50, 180, 250, 0.9, 0])
    assert crop_of_box.size == (200, 200)  # detection crops are padded the same way


# ---------------------------------------------------------------- assignment

def test_a_person_is_never_matched_to_an_animal() -> None:
    # the person looks most like the animal crop (a dog in a person costume), the animal like the person crop
    similarity = np.array([[0.3, 0.95],    # subject 0, a person
                           [0.9, 0.2]])   # subject 1, an animal
    match = match_subjects(similarity, subject_kinds=[PERSON, ANIMAL], crop_kinds=[PERSON, ANIMAL])
    assert match.assigned == [0, 1] and match.cosines == pytest.approx([0.3, 0.2])
    assert match.best_crop == [0, 1]  # the best crop is looked for among the subject's own kind too
    alone = match_subjects(np.array([[0.9], [0.8]]), subject_kinds=[PERSON, ANIMAL], crop_kinds=[ANIMAL])
    assert alone.assigned == [None, 0] and alone.cosines == [None, pytest.approx(0.8)]  # the person is missing


def test_clone_needs_a_shared_best_crop_above_the_floor() -> None:
    similarity = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.1]])  # 0 and 1 share crop 0; 2 also, but below floor
    match = match_subjects(similarity, clone_floor=0.5)
    assert match.best_crop == [0, 0, 0] and match.clone == [True, True, False]
    assert match.clone_null == pytest.approx([0.5, 0.5, 0.0])  # two subjects above the floor, two crops: 1/2
    assert match_subjects(similarity).clone == [True, True, True]  # no floor: everyone who shares counts


def test_hungarian_maximizes_the_total_not_greedily() -> None:
    similarity = np.array([[0.9, 0.8], [0.85, 0.1]])  # greedy would give subject 1 the 0.1 crop
    match = match_subjects(similarity)
    assert match.assigned == [1, 0] and match.cosines == pytest.approx([0.8, 0.85])
    assert match.best_crop == [0, 0]


def test_fewer_crops_than_subjects_leaves_subjects_unmatched() -> None:
    match = match_subjects(np.array([[0.2], [0.9], [0.5]]))
    assert match.n_detections == 1 and match.assigned == [None, 0, None]
    assert match.cosines == [None, pytest.approx(0.9), None]
    empty = match_subjects(np.zeros((3, 0)))
    assert empty.cosines == [None] * 3 and empty.best_crop == [None] * 3


# ---------------------------------------------------------------- aggregation

def rows_of(images: Sequence[tuple[int, int, list[float | None], int, list[int | None]]]) -> list[dict[str, str]]:
    """scores.csv-like rows from (prompt, seed, matched cosines, n_detections, best crops)."""
    rows = []
    for prompt, seed, cosines, detections, best in images:
        for slot, (cosine, best_crop) in enumerate(zip(cosines, best), start=1):
            rows.append({"prompt_id": str(prompt), "seed": str(seed), "n_subjects": str(len(cosines)),
                         "slot": str(slot), "dinov2": "0.5", "matched_dinov2": "" if cosine is None else str(cosine),
                         "n_detections": str(detections), "best_crop": "" if best_crop is None else str(best_crop)})
    return rows


def test_matched_cell_pools_subjects_and_counts_images() -> None:
    rows = rows_of([
        (1, 0, [0.9, 0.45], 2, [0, 1]),  # one below 0.5
        (1, 1, [0.7, None], 1, [0, 0]),  # unmatched subject: collapsed; both best-match crop 0: two clones
        (2, 0, [0.3, 0.8], 3, [1, 0]),
    ])
    cell = matched_cell(rows, n_boot=200, seed=1)
    assert cell["matched_scr_0.4"] == pytest.approx(2 / 6)  # 0.3 and the unmatched one
    assert cell["matched_scr_0.5"] == pytest.approx(3 / 6)
    assert cell["matched_scr_0.6"] == pytest.approx(3 / 6)
    assert cell["count_accuracy"] == pytest.approx(1 / 3)  # only the first image has N detections
    assert cell["clone_rate"] == pytest.approx(2 / 6)
    assert clone_flags(rows) == [False, False, True, True, False, False]
    for column in ("matched_scr_0.4", "count_accuracy", "clone_rate"):
        assert cell[f"{column}_lo"] <= cell[column] <= cell[f"{column}_hi"]


def scored_rows(matches: Sequence, n_subjects: int) -> list[dict[str, str]]:
    """scores.csv-like rows (as `score` writes them) from `ImageMatch`es, one prompt per 3 images."""
    rows = []
    for index, match in enumerate(matches):
        for slot in range(n_subjects):
            value = match.cosines[slot]
            rows.append({"prompt_id": str(index // 3 + 1), "seed": str(index % 3), "n_subjects": str(n_subjects),
                         "slot": str(slot + 1), "dinov2": "0.5", "matched_dinov2": "" if value is None else str(value),
                         "n_detections": str(match.n_detections), "best_crop": str(match.best_crop[slot]),
                         "kind": "person", "best_cosine": str(match.best_cosine[slot]),
                         "clone": str(int(match.clone[slot])), "clone_null": str(match.clone_null[slot]),
                         "face": "", "face_status": ""})
    return rows


def test_a_missed_subject_is_counted_as_missing_and_as_collapsed() -> None:
    # 4 people requested, the detector found 3 (each exactly its subject): one is missing
    similarity = np.eye(4)[:, :3] * 0.9 + 0.05
    rows = scored_rows([match_subjects(similarity, clone_floor=0.4)] * 3, 4)
    cell = matched_cell(rows, n_boot=50, seed=0)
    assert cell["missing_rate"] == pytest.approx(0.25)
    assert cell["matched_scr_0.4"] == pytest.approx(0.25)  # the missing one, and only it, is collapsed
    assert cell["clone_rate"] == 0 and cell["count_accuracy"] == 0
    assert "face" not in cell  # not scored for faces: empty, not zero


def test_at_ten_subjects_random_best_crops_clone_at_the_null_rate() -> None:
    """Identity-blind crops (random cosines) at N = k = 10: the clone rate is 1-(1-1/10)^9, about 0.61, not 0."""
    rng = np.random.default_rng(0)
    matches = [match_subjects(rng.uniform(0.5, 0.9, (10, 10)), clone_floor=0.4) for _ in range(600)]
    cell = matched_cell(scored_rows(matches, 10), n_boot=50, seed=0)
    expected = 1 - 0.9 ** 9
    assert cell["clone_null"] == pytest.approx(expected)
    assert cell["clone_rate"] == pytest.approx(expected, abs=0.02)
    assert cell["clone_null_lo"] <= cell["clone_rate"] <= cell["clone_null_hi"] + 0.01
    perfect = [match_subjects(np.eye(10) * 0.5 + 0.4, clone_floor=0.4) for _ in range(30)]  # each its own crop
    assert matched_cell(scored_rows(perfect, 10), n_boot=50, seed=0)["clone_rate"] == 0


def test_matched_cell_is_empty_when_matched_scoring_was_off() -> None:
    rows = rows_of([(1, 0, [0.9, 0.45], 2, [0, 1])])
    for row in rows:
        row["n_detections"] = ""
    assert matched_cell(rows, n_boot=10, seed=0) == {}


def test_matched_intervals_use_the_paper_columns_draws() -> None:
    """With matched == whole-image cosines and every subject matched, both SCRs get identical intervals."""
    rng = np.random.default_rng(4)
    rows = []
    for prompt in range(1, 6):
        for seed in range(3):
            cosines = rng.uniform(0.2, 0.9, 4).round(3).tolist()
            rows += rows_of([(prompt, seed, cosines, 4, [0, 1, 2, 3])])
    for row in rows:
        row["dinov2"] = row["matched_dinov2"]
    cell = matched_cell(rows, n_boot=300, seed=11)
    paper = bootstrap_intervals(rows, ["scr_0.5"], n_boot=300, seed=11)["scr_0.5"]
    assert (cell["matched_scr_0.5_lo"], cell["matched_scr_0.5_hi"]) == pytest.approx(paper)


# ---------------------------------------------------------------- composites with known ground truth

class ThumbnailEmbedder:
    """A content-sensitive stand-in for DINOv2: mean-centred 16x16 thumbnails, L2-normalized.

    Random-weight backbones rate almost every pair of images alike, which would
    hide a wrong assignment; this one tells the synthetic references apart.
    """

    def embed(self, sources: Sequence[ImageSource], desc: str = "") -> np.ndarray:
        vectors = []
        for source in sources:
            pixels = np.asarray(source.load().resize((16, 16), Image.BILINEAR), dtype=np.float32).ravel()
            pixels -= pixels.mean()
            vectors.append(pixels / np.linalg.norm(pixels))
        return np.stack(vectors)


class KnownBoxes:
    """A detector that returns given boxes (the collage's tile cells), whatever the image."""

    def __init__(self, boxes: list[tuple[int, int, int, int]]) -> None:
        self.boxes = boxes
        self.space = "known-boxes"
        self.settings = MatchedSettings(BackboneSpec("detector", "fake"), QUERIES)

    def detect(self, images: list[Image.Image], kinds: Sequence[frozenset[str]]) -> list[np.ndarray]:
        return [np.array([[*box, 0.9, 0] for box in self.boxes], dtype=np.float32).reshape(-1, 6) for _ in images]


def references(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(9)
    return [Image.fromarray(np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((16, 16, 1))).astype(np.uint8))
            for _ in range(count)]


def cells(count: int, size: int = 512) -> list[tuple[int, int, int, int]]:
    """The tile boxes `layout.tile` uses for `count` images (row-major)."""
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    width, height = size // columns, size // rows
    return [(c * width, r * height, c * width + width, r * height + height)
            for r, c in (divmod(i, columns) for i in range(count))]


def run_composite(image: Image.Image, refs: list[Image.Image], boxes: list[tuple[int, int, int, int]]):
    embedder = ThumbnailEmbedder()
    ids = [f"S{i:03d}" for i in range(1, len(refs) + 1)]
    embedded = dict(zip(ids, embedder.embed([pil_source(r) for r in refs])))
    return score_matched([pil_source(image, "composite")], [ids], {s: Cast("person", "a woman") for s in ids},
                         embedded, embedder, KnownBoxes(boxes), cache=None)[0]


def test_references_are_embedded_as_their_detected_box_padded_like_the_crops() -> None:
    refs = references(2)
    framed = Image.new("RGB", (256, 200), (0, 0, 0))
    framed.paste(refs[0], (64, 36))  # the subject inside a wider photo
    cast = {"S001": Cast("person", "a woman"), "S002": Cast("person", "a man")}
    embedder = ThumbnailEmbedder()
    found = reference_embeddings({"S001": pil_source(framed), "S002": pil_source(refs[1])}, cast, embedder,
                                 KnownBoxes([(64, 36, 192, 164)]), cache=None)
    assert found.cropped == {"S001": True, "S002": True}
    np.testing.assert_allclose(found.embeddings["S001"], embedder.embed([pil_source(refs[0])])[0], atol=1e-5)
    empty = reference_embeddings({"S002": pil_source(refs[1])}, cast, embedder, KnownBoxes([]), cache=None)
    assert empty.cropped == {"S002": False}  # nothing found: the whole reference, padded


@pytest.mark.parametrize("count", [4, 9])  # square cells: each tile is its whole reference, resized
def test_a_collage_matches_every_subject_to_its_own_tile(count: int) -> None:
    refs = references(count)
    match = run_composite(tile(refs, 512), refs, cells(count))
    assert match.n_detections == count
    assert match.assigned == list(range(count))
    assert min(match.cosines) > 0.97  # each crop is its reference, resized
    rows = rows_of([(1, 0, match.cosines, match.n_detections, match.best_crop)])
    cell = matched_cell(rows, n_boot=10, seed=0)
    assert cell["matched_scr_0.6"] == 0 and cell["count_accuracy"] == 1 and cell["clone_rate"] == 0


def test_a_clone_image_has_a_high_clone_rate_and_collapses_the_others() -> None:
    refs = references(4)
    match = run_composite(tile([refs[0]] * 4, 512), refs, cells(4))
    assert match.best_crop == [0, 0, 0, 0]  # identical crops: everyone's best match is the same individual
    assert match.cosines[0] > 0.97 and max(match.cosines[1:]) < 0.5
    rows = rows_of([(1, 0, match.cosines, match.n_detections, match.best_crop)])
    cell = matched_cell(rows, n_boot=10, seed=0)
    assert cell["clone_rate"] == 1.0 and cell["matched_scr_0.6"] == 0.75


def test_fewer_boxes_than_subjects_counts_the_rest_as_collapsed() -> None:
    refs = references(4)
    match = run_composite(tile(refs, 512), refs, cells(4)[:2])
    assert match.n_detections == 2
    assert match.assigned[:2] == [0, 1] and match.cosines[2:] == [None, None]
    cell = matched_cell(rows_of([(1, 0, match.cosines, 2, match.best_crop)]), n_boot=10, seed=0)
    assert cell["matched_scr_0.4"] == 0.5 and cell["count_accuracy"] == 0


# ---------------------------------------------------------------- a real (tiny, random) OWLv2 through from_pretrained

@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("owl") / "detector"
    build_smoke_detector(folder)
    return folder


def test_tiny_owlv2_detects_through_from_pretrained_and_is_cached(tiny_detector: Path, tmp_path: Path) -> None:
    settings = MatchedSettings(BackboneSpec("detector", str(tiny_detector)), QUERIES, score_threshold=0.0,
                               nms_iou=0.5, max_detections=5, batch_size=2)
    detector = Detector(settings, torch.device("cpu"))
    rng = np.random.default_rng(2)
    sizes = ((160, 96), (80, 120), (64, 64))
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    sources = [pil_source(image) for image in images]
    cast = {"S1": Cast("person", "a man in a hat"), "S2": Cast("animal", "a beagle")}
    queries = [image_queries(ids, cast, QUERIES) for ids in (["S1"], ["S1", "S2"], ["S2"])]
    allowed = [{PERSON}, {PERSON, ANIMAL}, {ANIMAL}]
    cache = EmbeddingCache(tmp_path / "cache")

    found = detect_cached(detector, sources, queries, cache)
    assert detector.forwarded == 3
    for image, detections, kinds in zip(images, found, allowed):
        assert 1 <= len(detections) <= 5
        assert np.all(detections[:, 0] >= 0) and np.all(detections[:, 2] <= image.width)
        assert np.all(detections[:, 1] >= 0) and np.all(detections[:, 3] <= image.height)
        assert np.all(np.diff(detections[:, 4]) <= 0)  # best first
        assert {int(k) for k in detections[:, 5]} <= kinds

    again = Detector(settings, torch.device("cpu"))
    for got, expected in zip(detect_cached(again, sources, queries, EmbeddingCache(tmp_path / "cache")), found):
        np.testing.assert_array_equal(got, expected)
    assert again.forwarded == 0 and again._model is None


def matched_settings(scoring: dict) -> MatchedSettings | None:
    """The matched-SCR part of a scoring block, resolved the way `score` resolves it."""
    return ScoringConfig.from_params({"scoring": scoring}).matched


def test_matched_settings_from_params(tmp_path: Path) -> None:
    assert matched_settings({"profile": "smoke", "smoke_dir": str(tmp_path)}) is None
    assert matched_settings({"profile": "real", "matched": {"enabled": False}}) is None
    real = matched_settings({"profile": "real", "matched": {
        "enabled": True, "detector": {"id": "google/owlv2-base-patch16-ensemble", "revision": "abc"}}})
    assert real is not None and real.detector.label == "google/owlv2-base-patch16-ensemble@abc"
    assert set(real.queries) == {"person", "animal"} and real.clone_floor == 0.4
    with pytest.raises(BenchError, match="params.yaml: scoring.matched.queries: no text query"):
        matched_settings({"profile": "real", "matched": {"enabled": True, "detector": {"id": "x"},
                                                          "queries": {"person": "a person"}}})
    with pytest.raises(BenchError, match="score_threshold"):
        matched_settings({"profile": "real", "matched": {"enabled": True, "detector": {"id": "x"},
                                                          "score_threshold": 1.5}})


def test_the_pipeline_params_pin_the_detector_revision() -> None:
    import re

    import yaml
    from conftest import REPO

    scoring = yaml.safe_load((REPO / "params.yaml").read_text())["scoring"]
    real = matched_settings({**scoring, "profile": "real"})
    assert real is not None and real.detector.source == "google/owlv2-base-patch16-ensemble"
    assert re.fullmatch(r"[0-9a-f]{40}", real.detector.revision or "")
