"""A results submission of a closed API row: the images, manifest and refusals `generate` wrote, sent by pull
request, validate and are re-scored here without any key; refusals are checked like every other file."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from api_fakes import SECRET, FakeProvider
from pytest_httpserver import HTTPServer

from collapsebench.cli import main

NAME = "flux2-pro-by-a-reader"
pytestmark = pytest.mark.slow  # generate, import, score and report a 60-image row


@pytest.fixture
def submitted(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """submissions/<NAME>/: FLUX.2 [pro] generated against the BFL test server (one content refusal, 15 jobs over
    the reference limit), copied as CONTRIBUTING says; no key left in the environment afterwards."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["scoring"]["matched"]["enabled"] = params["scoring"]["face"]["enabled"] = False
    params["generate"]["api"] = {"attempts": 2, "backoff_s": 0.01, "poll_interval_s": 0.01}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with HTTPServer(host="127.0.0.1", threaded=True) as server:
        fake = FakeProvider(server, "bfl")
        fake.next_actions = ["policy"]
        with monkeypatch.context() as env:
            for name, value in fake.env().items():
                env.setenv(name, value)
            assert main(["generate", "flux2-pro", "--concurrency", "4"]) == 0
    made, folder = workdir / "results/models/flux2-pro", workdir / "submissions" / NAME
    folder.mkdir()
    shutil.copytree(made / "images", folder / "images")
    for name in ("manifest.jsonl", "refusals.jsonl"):
        shutil.copy(made / name, folder / name)
    entry = yaml.safe_load((workdir / "models/flux2-pro/model.yaml").read_text())
    entry.update(name=NAME, runner="submitted", display_name="FLUX.2 [pro] (run by a reader)")
    (folder / "model.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    return folder


def test_an_api_row_submission_validates_imports_and_is_rescored_without_a_key(submitted, workdir, capsys) -> None:
    assert main(["validate", f"submissions/{NAME}"]) == 0, capsys.readouterr().out
    assert main(["submission", "import", f"submissions/{NAME}"]) == 0
    assert main(["score", NAME]) == 0
    assert main(["report"]) == 0
    with open(workdir / "results/table1.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["model"] == NAME]
    assert rows and all(r["access"] == "closed-api" and r["generated_by"] == "authors" for r in rows)
    assert sorted(int(r["n_subjects"]) for r in rows) == [2, 4, 6, 8]
    assert sum(float(r["refusal_rate"]) for r in rows) == pytest.approx(1 / 15, abs=1e-5)
    with open(workdir / "results/coverage.csv", newline="") as handle:
        coverage = {r["n_subjects"]: r for r in csv.DictReader(handle) if r["model"] == NAME}
    assert coverage["10"]["refused"] == "15" and all(r["complete"] == "true" for r in coverage.values())
    imported = workdir / "results/models" / NAME
    assert len((imported / "refusals.jsonl").read_text().splitlines()) == 16
    assert not [p for p in [*submitted.rglob("*"), *imported.rglob("*")]
                if p.is_file() and SECRET.encode() in p.read_bytes()]


def rewrite_refusals(folder: Path, change) -> None:
    """refusals.jsonl as generate wrote it (kept aside on first use), changed by `change`."""
    original = folder.parent / f".{folder.name}.refusals.jsonl"
    if not original.exists():
        shutil.copy(folder / "refusals.jsonl", original)
    lines = [json.loads(line) for line in original.read_text().splitlines()]
    (folder / "refusals.jsonl").write_text("".join(json.dumps(line) + "\n" for line in change(lines)))


def test_refusals_are_checked_like_every_file_of_a_submission(submitted, capsys) -> None:
    def over(lines: list[dict]) -> list[dict]:  # the refused job has at most 8 subjects: not over the limit of 8
        return [dict(line, reason="over_reference_limit") if line["reason"] == "content_policy" else line
                for line in lines]

    rewrite_refusals(submitted, over)
    assert main(["validate", f"submissions/{NAME}"]) == 1
    assert "within the entry's reference_limit 8" in capsys.readouterr().out

    rewrite_refusals(submitted, lambda lines: lines + lines[:1])
    assert main(["validate", f"submissions/{NAME}"]) == 1
    assert "is refused twice" in capsys.readouterr().out

    imaged = json.loads((submitted / "manifest.jsonl").read_text().splitlines()[0])
    rewrite_refusals(submitted, lambda lines: lines + [dict(lines[0], prompt_id=imaged["prompt_id"],
                                                            seed=imaged["seed"], reason="no_image")])
    assert main(["validate", f"submissions/{NAME}"]) == 1
    assert "a job has an image or a refusal, not both" in capsys.readouterr().out

    rewrite_refusals(submitted, lambda lines: [dict(line, reason="error") for line in lines])
    assert main(["validate", f"submissions/{NAME}"]) == 1
    out = capsys.readouterr().out
    assert "is not answered" in out and "is missing" in out

    entry = yaml.safe_load((submitted / "model.yaml").read_text())
    entry.pop("api"), entry.pop("reference_limit")
    (submitted / "model.yaml").write_text(yaml.safe_dump(entry))
    assert main(["validate", f"submissions/{NAME}"]) == 1
    assert "only a closed API row" in capsys.readouterr().out
