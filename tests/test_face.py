"""Face identity: YuNet decoding, alignment, the tiny random ONNX nets through the real loader, one-to-one face
matching (people only; animals empty), Face-SCR aggregation and the pins in params.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from collapsebench.core.errors import BenchError
from collapsebench.reporting.matched_cells import matched_cell
from collapsebench.scoring.embed_cache import EmbeddingCache, pil_source
from collapsebench.scoring.face import (
    ARCFACE_TEMPLATE,
    DEFAULT_FACE,
    FaceModels,
    FaceSet,
    FaceSettings,
    OnnxSpec,
    align_face,
    decode_yunet,
    face_sets,
    face_settings,
    match_faces,
    score_faces,
    similarity_transform,
)
from collapsebench.scoring.smoke import build_smoke_faces


@dataclass(frozen=True)
class Cast:
    kind: str
    phrase: str


def yunet_heads(width: int, height: int) -> dict[str, np.ndarray]:
    """All-zero heads (no face anywhere) of a width x height input."""
    heads = {}
    for stride in (8, 16, 32):
        cells = (width // stride) * (height // stride)
        heads |= {f"cls_{stride}": np.zeros((1, cells, 1)), f"obj_{stride}": np.zeros((1, cells, 1)),
                  f"bbox_{stride}": np.zeros((1, cells, 4)), f"kps_{stride}": np.zeros((1, cells, 10))}
    return heads


def test_yunet_heads_decode_like_opencv() -> None:
    heads = yunet_heads(64, 64)
    cell = 3 * 4 + 2  # stride 16, row 3, column 2
    heads["cls_16"][0, cell], heads["obj_16"][0, cell] = 0.81, 1.0  # score sqrt(0.81 * 1) = 0.9
    heads["bbox_16"][0, cell] = [0.5, 0.25, np.log(2.0), 0.0]  # centre (2.5, 3.25) cells, 32 x 16 px
    heads["kps_16"][0, cell] = [0.1, 0.2] * 5
    heads["cls_8"][0, 0], heads["obj_8"][0, 0] = 0.5, 0.5  # score 0.5: below the threshold
    faces = decode_yunet(heads, 64, 64, threshold=0.6, nms_iou=0.3, max_faces=5)
    assert faces.shape == (1, 15)
    np.testing.assert_allclose(faces[0, :5], [40 - 16, 52 - 8, 40 + 16, 52 + 8, 0.9], rtol=1e-6)
    np.testing.assert_allclose(faces[0, 5:7], [(2 + 0.1) * 16, (3 + 0.2) * 16], rtol=1e-6)
    twice = yunet_heads(64, 64)
    for stride, cell in ((8, 5 * 8 + 5), (16, 2 * 4 + 2)):  # the same face found at two strides: one survives
        twice[f"cls_{stride}"][0, cell], twice[f"obj_{stride}"][0, cell] = 1.0, 0.9 if stride == 8 else 0.8
        twice[f"bbox_{stride}"][0, cell] = [0.5, 0.5, np.log(32 / stride), np.log(32 / stride)]
    assert len(decode_yunet(twice, 64, 64, 0.5, 0.3, 5)) == 1


def test_alignment_puts_the_landmarks_on_the_arcface_template() -> None:
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = ARCFACE_TEMPLATE @ rotation.T * 1.7 + [40, 25]  # a face rotated, scaled and moved
    transform = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(landmarks @ transform[:, :2].T + transform[:, 2], ARCFACE_TEMPLATE, atol=1e-6)
    image = Image.new("RGB", (300, 300), (0, 0, 0))
    for x, y in landmarks:
        image.paste((255, 255, 255), (int(x) - 2, int(y) - 2, int(x) + 3, int(y) + 3))
    aligned = np.asarray(align_face(image, landmarks))
    assert aligned.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE:  # each white dot lands on its template point
        assert aligned[round(y), round(x)].mean() > 128


@pytest.fixture(scope="module")
def smoke_faces(tmp_path_factory: pytest.TempPathFactory) -> FaceSettings:
    folder = tmp_path_factory.mktemp("faces")
    build_smoke_faces(folder)
    return FaceSettings(OnnxSpec("face_detector", str(folder), DEFAULT_FACE["detector"]["file"]),
                        OnnxSpec("face_recognizer", str(folder), DEFAULT_FACE["recognizer"]["file"]),
                        score_threshold=0.6)


def test_tiny_random_face_nets_run_through_onnxruntime_and_are_cached(smoke_faces: FaceSettings,
                                                                      tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [pil_source(Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))) for w, h in
              ((300, 200), (128, 256))]
    models = FaceModels(smoke_faces)
    found = face_sets(models, images, EmbeddingCache(tmp_path / "cache"))
    assert models.forwarded == 2
    for faces, source in zip(found, images):
        image = source.load()
        assert 1 <= len(faces.faces) <= smoke_faces.max_faces and faces.vectors.shape == (len(faces.faces), 128)
        assert np.all(faces.faces[:, [0, 2]] <= image.width) and np.all(faces.faces[:, [1, 3]] <= image.height)
        np.testing.assert_allclose(np.linalg.norm(faces.vectors, axis=1), 1, atol=1e-5)
    records = models.records()
    assert records["face_detector"]["sha256"] and records["face_detector"]["verified"] is None  # smoke: not pinned
    again = FaceModels(smoke_faces)
    for got, expected in zip(face_sets(again, images, EmbeddingCache(tmp_path / "cache")), found):
        np.testing.assert_array_equal(got.vectors, expected.vectors)
    assert again.forwarded == 0 and again.loaded == {}  # a warm cache opens no model
    assert again.records() == records  # and records the same files: scoring.json does not depend on the cache


def test_faces_are_matched_one_to_one_among_people_and_animals_get_nothing() -> None:
    basis = np.eye(4, dtype=np.float32)
    faces = FaceSet(np.zeros((2, 15), np.float32), basis[[1, 0]])  # two faces: person B's, then person A's
    result = match_faces(faces, [basis[0], basis[1], None, basis[2], None], [True, True, True, True, False])
    assert [(m.cosine, m.status) for m in result] == [
        (pytest.approx(1.0), "matched"), (pytest.approx(1.0), "matched"), (None, "no_reference"),
        (None, "missing"), (None, "")]  # person D: no face left for her; the animal: empty, not zero


def test_face_scr_counts_missing_people_and_leaves_animal_cells_empty() -> None:
    def rows(statuses: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"prompt_id": "1", "seed": "0", "n_subjects": str(len(statuses)), "n_detections": "",
                 "face": face, "face_status": status} for face, status in statuses]

    cell = matched_cell(rows([("0.9", "matched"), ("0.2", "matched"), ("", "missing"), ("", "no_reference"),
                              ("", "")]), n_boot=20, seed=0)
    assert cell["face_scr"] == pytest.approx(2 / 3) and cell["face_missing"] == pytest.approx(1 / 3)
    assert cell["face"] == pytest.approx(0.55)
    assert "matched_scr_0.4" not in cell  # matched scoring was off
    animals = matched_cell(rows([("", ""), ("", "")]), n_boot=20, seed=0)
    assert "face" not in animals and "face_scr" not in animals  # no people: empty, never 0


def test_face_settings_resolve_the_pins_and_the_smoke_nets(tmp_path: Path) -> None:
    from conftest import REPO

    assert face_settings({}, "real", tmp_path, "scoring") is None
    params = yaml.safe_load((REPO / "params.yaml").read_text())["scoring"]
    real = face_settings(params, "real", tmp_path, "params.yaml: scoring")
    assert real is not None
    for role, spec in (("detector", real.detector), ("recognizer", real.recognizer)):
        pinned = DEFAULT_FACE[role]
        assert (spec.source, spec.revision, spec.file, spec.sha256) == (
            pinned["id"], pinned["revision"], pinned["file"], pinned["sha256"])  # params.yaml = the code's pins
        assert len(spec.revision or "") == 40
    assert real.detector.record(None)["verified"] == "id+commit"
    smoke = face_settings({"face": {"enabled": True}}, "smoke", tmp_path, "scoring")
    assert smoke is not None and Path(smoke.detector.source).is_dir()
    with pytest.raises(BenchError, match="score_threshold"):
        face_settings({"face": {"enabled": True, "score_threshold": 1.5}}, "real", tmp_path, "scoring")


def test_a_file_whose_sha256_is_not_the_pin_is_refused(smoke_faces: FaceSettings) -> None:
    spec = OnnxSpec("face_detector", smoke_faces.detector.source, smoke_faces.detector.file, sha256="0" * 64)
    with pytest.raises(BenchError, match="but the pin says"):
        spec.record(spec.path())


def test_a_hub_face_model_missing_offline_says_how_to_fill_the_cache(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable when it is imported: without the constant, it would try the network.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    spec = OnnxSpec("face_detector", DEFAULT_FACE["detector"]["id"], DEFAULT_FACE["detector"]["file"],
                    DEFAULT_FACE["detector"]["revision"])
    with pytest.raises(BenchError, match="face_detector: cannot load opencv/face_detection_yunet@3cc26e7"):
        spec.path()


def test_score_faces_gives_people_a_status_and_animals_none(smoke_faces: FaceSettings) -> None:
    rng = np.random.default_rng(1)
    picture = pil_source(Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)), "picture")
    refs = {s: pil_source(Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)), s) for s in "ABC"}
    cast = {"A": Cast("person", "a man"), "B": Cast("person", "a woman"), "C": Cast("animal", "a cat")}
    results, with_face = score_faces(FaceModels(smoke_faces), [picture], [["A", "B", "C"]], cast, refs, cache=None)
    assert set(with_face) == {"A", "B"}  # animals are never looked at
    statuses = [m.status for m in results[0]]
    assert statuses[2] == "" and results[0][2].cosine is None
    assert all(status in ("matched", "missing", "no_reference") for status in statuses[:2])


def test_score_writes_face_columns_for_people_only_and_report_reads_them(
        smoke_root: Path, pool_dir: Path, tmp_path: Path, smoke_faces: FaceSettings) -> None:
    import json

    from conftest import REPO

    from collapsebench.benchmark.casting import cast_suite
    from collapsebench.benchmark.model_config import load_model_config
    from collapsebench.benchmark.pool import load_pool
    from collapsebench.benchmark.suite import make_jobs
    from collapsebench.core.io import read_csv
    from collapsebench.core.metric_table import SCORE_COLUMNS
    from collapsebench.generation.generate import run_generate
    from collapsebench.reporting.matched_cells import add_matched_cells
    from collapsebench.scoring.backbones import BACKBONE_NAMES, BackboneSpec
    from collapsebench.scoring.config import ScoringConfig
    from collapsebench.scoring.detection import MatchedSettings
    from collapsebench.scoring.score import run_score
    from collapsebench.scoring.smoke import smoke_detector_dir

    pool = load_pool(pool_dir)
    jobs = make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, [0])[::15]  # every subject count
    out = tmp_path / "collage"
    run_generate(load_model_config(REPO / "models", "collage"), jobs, pool, out)
    specs = {name: BackboneSpec(name, str(smoke_root / name)) for name in BACKBONE_NAMES}
    matched = MatchedSettings(BackboneSpec("detector", str(smoke_detector_dir(tmp_path / "det"))),
                              {"person": "a photo of a person", "animal": "a photo of an animal"}, score_threshold=0.0)
    run_score("collage", out, pool, ScoringConfig("smoke", specs, matched, tmp_path / "cache", batch_size=4,
                                                  face=smoke_faces))
    rows = read_csv(out / "scores.csv")
    info = json.loads((out / "scoring.json").read_text())
    assert tuple(rows[0]) == SCORE_COLUMNS and info["columns"] == list(SCORE_COLUMNS)
    for row in rows:
        assert row["kind"] == pool[row["subject_id"]].kind
        if row["kind"] == "animal":
            assert row["face"] == row["face_status"] == ""  # empty, not zero
        else:
            assert row["face_status"] in ("matched", "missing", "no_reference")
            assert (row["face"] != "") == (row["face_status"] == "matched")
        assert row["clone"] in ("0", "1") and row["clone_null"] != ""
    assert {"face_detector", "face_recognizer"} <= set(info["weights"]) and info["profile"] == "smoke"
    assert info["face"]["version"] and info["matched"]["nms"] == "per kind"
    table = add_matched_cells([{"n_subjects": n} for n in sorted({int(r["n_subjects"]) for r in rows})], rows, 20, 0)
    assert all("missing_rate" in cell and "clone_null" in cell for cell in table)
