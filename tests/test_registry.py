"""The leaderboard's models are its folders; params.yaml's `models` only selects what runs on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from collapsebench.benchmark.registry import model_names, select, waiting_submissions
from collapsebench.cli import main
from collapsebench.core.errors import BenchError

MODELS = REPO / "models"


def names(value: object) -> list[str]:
    return [config.name for config in select(value, MODELS, "params.yaml: models")]


def test_every_folder_is_an_entry_and_the_default_selection_is_the_calibration_models() -> None:
    assert set(model_names(MODELS)) >= {"clone", "collage", "floor", "mosaic", "xverse", "psr"}
    assert yaml.safe_load((REPO / "params.yaml").read_text())["models"] == "calibration"
    assert names("calibration") == ["clone", "collage", "floor"]


def test_all_selects_every_model_that_runs_here_and_names_select_those() -> None:
    closed = {n for n in model_names(MODELS) if yaml.safe_load((MODELS / n / "model.yaml").read_text())["runner"] == "api"}
    assert closed  # paid API entries run only when named: never by `all`
    assert names("all") == [n for n in model_names(MODELS) if n != "psr" and n not in closed]  # psr: paper only
    assert names(["floor", "collage", "floor"]) == ["floor", "collage"]
    assert names("floor,collage") == ["floor", "collage"]


@pytest.mark.parametrize(("value", "message"), [
    (["collage", "nope"], "params.yaml: models: model 'nope' has no"),
    (["psr"], "psr is reported-only"),
    (5, "must be calibration or all or a list of model names"),
    ([""], "must be calibration or all"),
])
def test_a_selection_that_cannot_run_is_an_error_naming_where_it_came_from(value: object, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        select(value, MODELS, "params.yaml: models")


def test_waiting_submissions_are_the_folders_not_imported_yet(tmp_path: Path) -> None:
    (tmp_path / "submissions/new-one").mkdir(parents=True)
    (tmp_path / "submissions/imported").mkdir()
    (tmp_path / "submissions/README.md").write_text("about\n")
    (tmp_path / "submissions/Bad Name").mkdir()
    (tmp_path / "models/imported").mkdir(parents=True)
    (tmp_path / "models/imported/model.yaml").write_text("name: imported\n")
    assert waiting_submissions(tmp_path / "submissions", tmp_path / "models") == ["new-one"]
    assert waiting_submissions(tmp_path / "absent", tmp_path / "models") == []


def test_generate_without_a_model_runs_the_selection_and_records_it(workdir: Path, capsys) -> None:
    assert main(["generate", "--models", "floor"]) == 0
    assert "generate: floor" in capsys.readouterr().err
    record = json.loads((workdir / "results/generated.json").read_text())
    manifest = workdir / "results/models/floor/manifest.jsonl"
    assert list(record["models"]) == ["floor"] and len(manifest.read_text().splitlines()) == 75
    assert not (workdir / "results/models/collage").exists()


def test_generate_refuses_a_shard_without_a_model_and_a_model_it_cannot_make(workdir: Path, capsys) -> None:
    assert main(["generate", "--shard", "0/2"]) == 2
    assert "generate --shard needs a MODEL" in capsys.readouterr().err
    assert main(["generate", "psr"]) == 2
    assert "psr is not generated here (reported-only: its row is the paper's printed numbers" in capsys.readouterr().err
