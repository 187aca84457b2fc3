"""Each closed-API provider through the whole stage, generate -> score -> report -> site, against its local server.

One run per provider on a repo-like folder (seeds [0]: 75 jobs): every image is made (FLUX.2 [pro]'s 15 jobs
with 10 subjects are refused as over its reference limit of 8, never sent), scored with the smoke backbones,
reported with `access` closed-api and its refusal rate, and published by the site; the key appears in no file
written and in nothing printed.
"""

from __future__ import annotations

import csv
import io
import json
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from api_fakes import MODELS, SECRET, FakeProvider
from conftest import make_repo
from pytest_httpserver import HTTPServer

from collapsebench.cli import main
from collapsebench.core.refusals import Refusals

pytestmark = pytest.mark.slow
OVER_LIMIT = {"bfl": 15}  # FLUX.2 [pro] takes 8 references: the 15 jobs with 10 subjects are refused


def fast_params(root: Path, smoke: Path) -> None:
    """make_repo's params with quick retries and the beyond-the-paper scorers off (not what this test is about)."""
    params = make_repo(root, smoke, bootstrap=50)
    params["scoring"]["matched"]["enabled"] = False
    params["scoring"]["face"]["enabled"] = False
    params["generate"]["api"] = {"attempts": 3, "backoff_s": 0.01, "max_backoff_s": 2.0, "timeout_s": 30,
                                 "poll_interval_s": 0.01, "poll_timeout_s": 30}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def scan_for_key(root: Path, printed: str) -> list[str]:
    """Every file under `root` (and the printed output) that contains the key, as text or bytes."""
    found = [str(path) for path in root.rglob("*") if path.is_file() and SECRET.encode() in path.read_bytes()]
    return found + (["stdout/stderr"] if SECRET in printed else [])


@dataclass
class Run:
    root: Path
    fakes: dict[str, FakeProvider]
    printed: str


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, smoke_root: Path) -> Run:
    """One repo where each provider's entry was generated against its server, then scored; then one report and
    one site over all four (the stages are per model up to the report, which reads every model)."""
    from _pytest.monkeypatch import MonkeyPatch

    root = tmp_path_factory.mktemp("api-pipeline") / "repo"
    fast_params(root, smoke_root.parent)
    patch, fakes, printed = MonkeyPatch(), {}, []
    patch.chdir(root)
    try:
        with HTTPServer(host="127.0.0.1", threaded=True) as server:
            for provider in sorted(MODELS):
                fake = fakes[provider] = FakeProvider(server, provider)
                fake.next_actions = ["429", "policy"]  # one retried request, and one content refusal
                fake.delay_s = 0.05  # long enough for requests to overlap, so the concurrency bound is seen
                for name, value in fake.env().items():
                    patch.setenv(name, value)
                with capture() as out:
                    assert main(["generate", MODELS[provider], "--dry-run"]) == 0
                    assert not fake.log  # a dry run sends nothing
                    assert main(["generate", MODELS[provider], "--concurrency", "4"]) == 0
                printed.append(out.getvalue())
        with capture() as out:
            for provider in sorted(MODELS):
                assert main(["score", MODELS[provider]]) == 0
            assert main(["report"]) == 0
            assert main(["site"]) == 0
        printed.append(out.getvalue())
    finally:
        patch.undo()
    return Run(root, fakes, "".join(printed))


@contextmanager
def capture():
    """stdout and stderr of the stages, kept for the key scan."""
    buffer = io.StringIO()
    with redirect_stdout(buffer), redirect_stderr(buffer):
        yield buffer


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_generate_score_report_site_against_the_provider_server(provider: str, pipeline: Run) -> None:
    root, fake, model = pipeline.root, pipeline.fakes[provider], MODELS[provider]
    assert 1 < fake.max_in_flight <= 4  # --concurrency 4: several at once, never more
    over = OVER_LIMIT.get(provider, 0)
    folder = root / "results/models" / model
    refusals = Refusals(folder).read()
    assert sorted(line["reason"] for line in refusals) == ["content_policy"] + ["over_reference_limit"] * over
    asked = [entry.prompt for entry in fake.log if entry.provider == provider]
    assert len(set(asked)) == 75 - over and len(asked) == 75 - over + 1  # nothing over the limit; one 429 retried
    assert len(list((folder / "images").glob("*.png"))) == 75 - over - 1
    assert f"generate {model} --dry-run" in pipeline.printed

    with open(root / "public/data/table1.csv", newline="") as handle:
        rows = {int(r["n_subjects"]): r for r in csv.DictReader(handle) if r["model"] == model}
    assert set(rows) == ({2, 4, 6, 8} if over else {2, 4, 6, 8, 10})  # no images at N=10: no cell to score
    assert all(r["access"] == "closed-api" and r["source"] == "reproduced" for r in rows.values())
    assert all(r["rank_scr_0.4"] for r in rows.values()), [r["rank_note"] for r in rows.values()]  # refusals
    # are answers: the row is ranked with the others of its cell, on the prompts all of them have images of
    refused_cell = next(r for r in refusals if r["reason"] == "content_policy")["n_subjects"]
    assert float(rows[refused_cell]["refusal_rate"]) == pytest.approx(1 / 15, abs=1e-5)
    assert all(float(r["refusal_rate"]) == 0 for n, r in rows.items() if n != refused_cell)
    assert sum(int(r["n_images"]) for r in rows.values()) == 75 - over - 1
    with open(folder / "scores.csv", newline="") as handle:
        scored = {(int(r["prompt_id"]), int(r["seed"])) for r in csv.DictReader(handle)}
    assert not scored & {(line["prompt_id"], line["seed"]) for line in refusals}  # refused: never scored
    with open(root / "results/coverage.csv", newline="") as handle:
        coverage = {int(r["n_subjects"]): r for r in csv.DictReader(handle) if r["model"] == model}
    assert all(r["complete"] == "true" for r in coverage.values())  # refusals answer their jobs
    assert int(coverage[10]["refused"]) == over + (refused_cell == 10)
    assert (root / f"public/data/models/{model}/refusals.jsonl").is_file()


def test_the_key_is_in_no_file_and_nothing_printed(pipeline: Run) -> None:
    assert scan_for_key(pipeline.root, pipeline.printed) == []
    assert all(SECRET in json.dumps(entry.headers) for fake in pipeline.fakes.values() for entry in fake.log
               if entry.provider in MODELS)  # it was sent: the scan looked for something real
