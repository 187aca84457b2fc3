"""Each closed-API provider module against a local server speaking that provider's documented format.

The official clients (google-genai, openai) and our httpx client send real HTTP to 127.0.0.1; nothing is mocked.
Per provider: an image answer is stored as a PNG that passes the results-submission checks, with the references
in prompt order and named in the prompt; a content refusal and an image-less answer are refusals; malformed JSON,
an oversized or non-PNG/JPEG answer and (BFL) an expired result URL are errors naming the job; 429 with
Retry-After is retried, and the retries stop after the stated number of tries.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from api_fakes import MODELS, SECRET, FakeProvider
from pytest_httpserver import HTTPServer

from collapsebench.benchmark.casting import load_instance
from collapsebench.benchmark.model_config import load_model_config
from collapsebench.benchmark.suite import make_jobs
from collapsebench.core.manifest import Manifest
from collapsebench.core.refusals import Refusals
from collapsebench.generation.runners.api import run_api
from collapsebench.core.pngcheck import png_problems
from collapsebench.models.api.http import RetryPolicy

FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=2.0, timeout_s=20, poll_interval_s=0.01,
                   poll_timeout_s=20)
PROVIDERS = sorted(MODELS)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repo-like folder for the module (read only here: each test writes into its own tmp_path)."""
    from conftest import make_repo

    root = tmp_path_factory.mktemp("api-providers") / "repo"
    make_repo(root, root.parent / "smoke")
    return root


@pytest.fixture
def server():
    with HTTPServer(host="127.0.0.1", threaded=True) as http:
        yield http


def setup_run(root: Path, provider: str, server: HTTPServer, count: int = 3, first_prompt: int = 1,
              model_returned: str | None = None):
    """The entry of `provider`, `count` jobs from prompt `first_prompt` on, its fake, and the run's environment."""
    instance = load_instance(root / "benchmark/prompts.yaml", root / "data")
    jobs = [j for j in make_jobs(instance.prompts, [0]) if j.prompt.id >= first_prompt][:count]
    config = load_model_config(root / "models", MODELS[provider])
    fake = FakeProvider(server, provider, model_returned)
    return config, jobs, instance, fake


def run(config, jobs, instance, fake, out: Path, policy: RetryPolicy = FAST, concurrency: int = 2) -> int:
    return run_api(config, jobs, instance.pool, out, instance.labels, concurrency, policy, environ=fake.env())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_is_stored_as_a_checked_png_with_references_in_prompt_order(provider, repo, server, tmp_path) -> None:
    config, jobs, instance, fake = setup_run(repo, provider, server, count=2)
    out = tmp_path / config.name
    assert run(config, jobs, instance, fake, out) == 0
    records = Manifest(out).load_checked()
    assert [r["key"] for r in records] == [j.key for j in jobs]
    for record, job in zip(records, jobs):
        data = (out / record["image"]).read_bytes()
        assert png_problems(data) == ([], (256, 256))  # the results-submission checks, on what is stored
        assert record["provider"] == config.api["provider"] and record["api_model"] == config.api["model"]
        assert record["access"] == "closed-api" and record["request_date"].startswith("20")
        subjects = [instance.pool[s] for s in job.prompt.subjects]
        for index, subject in enumerate(subjects, start=1):  # named in the prompt as "... from image i"
            assert f"{subject.phrase} (the {subject.kind} from image {index})" in record["sent_prompt"]
        assert len(record["sent"]["references"]) == job.prompt.n_subjects
        assert record["sent"]["endpoint"] == fake.base_url()  # a proxy or regional endpoint is on record
        assert record["sent"]["settings"].items() >= config.settings.items()
    logged = {entry.prompt: entry for entry in fake.log if entry.provider == provider}
    assert set(logged) == {r["sent_prompt"] for r in records}  # exactly what was sent is recorded
    assert all(entry.n_images == len(jobs[0].prompt.subjects) for entry in logged.values())
    assert not (out / "refusals.jsonl").exists()


def test_references_reach_the_server_in_prompt_order(repo, server, tmp_path) -> None:
    """The tiled answer puts reference i in cell i: the cell colours follow the prompt's subjects."""
    from PIL import Image

    config, jobs, instance, fake = setup_run(repo, "byteplus", server, count=1)
    out = tmp_path / config.name
    assert run(config, jobs, instance, fake, out) == 0
    record = Manifest(out).load_checked()[0]
    with Image.open(out / record["image"]) as image:
        cell = 256 // 2  # two references: a 2 x 2 grid, the first two cells used
        got = [image.getpixel((cell // 2 + i * cell, cell // 2)) for i in range(2)]
    want = []
    for subject in record["subjects"]:
        with Image.open(instance.pool[subject].image) as reference:
            want.append(reference.convert("RGB").resize((cell, cell)).getpixel((cell // 2, cell // 2)))
    assert all(sum(abs(a - b) for a, b in zip(g, w)) < 30 for g, w in zip(got, want))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_content_refusal_and_image_less_answer_are_refusals_not_errors(provider, repo, server, tmp_path) -> None:
    config, jobs, instance, fake = setup_run(repo, provider, server, count=3)
    fake.next_actions = ["policy"]  # the first request, then one with no image
    out = tmp_path / config.name
    first, second = jobs[0], jobs[1]
    assert run(config, [first], instance, fake, out, concurrency=1) == 0
    fake.next_actions = ["no_image"]
    assert run(config, [first, second, jobs[2]], instance, fake, out, concurrency=1) == 0
    lines = {line["key"]: line for line in Refusals(out).read()}
    assert lines[first.key]["reason"] == "content_policy" and lines[second.key]["reason"] == "no_image"
    for line in lines.values():
        assert {"prompt_id", "seed", "n_subjects", "scene", "detail", "provider", "request_date"} <= line.keys()
        assert line["provider"] == config.api["provider"]
    assert [r["key"] for r in Manifest(out).records()] == [jobs[2].key]
    requests = len(fake.log)
    assert run(config, jobs, instance, fake, out) == 0  # refusals are final answers: not asked again
    assert len(fake.log) == requests


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("action, says", [("malformed", "not valid JSON"), ("oversized", "bytes; at most"),
                                          ("webp", "not a PNG or JPEG image (looks like WebP)")])
def test_a_bad_answer_is_an_error_naming_the_job_and_nothing_made_is_lost(provider, action, says, repo,
                                                                          server, tmp_path, capsys) -> None:
    config, jobs, instance, fake = setup_run(repo, provider, server, count=2)
    out = tmp_path / config.name
    assert run(config, jobs[:1], instance, fake, out) == 0
    kept = (out / "manifest.jsonl").read_text()
    fake.next_actions = [action]
    assert run(config, jobs, instance, fake, out) == 1
    error = capsys.readouterr().err
    assert f"job {jobs[1].key}" in error and says in error, error
    line = Refusals(out).read()[-1]
    assert line["reason"] == "error" and line["key"] == jobs[1].key and says in line["detail"]
    assert (out / "manifest.jsonl").read_text() == kept  # the first image is untouched
    fake.next_actions = []
    assert run(config, jobs, instance, fake, out) == 0  # an error is retried by the next run
    assert [r["key"] for r in Manifest(out).load_checked()] == [j.key for j in jobs]
    assert not (out / "refusals.jsonl").exists()


def test_a_jpeg_answer_is_accepted_and_stored_as_png(repo, server, tmp_path) -> None:
    config, jobs, instance, fake = setup_run(repo, "gemini", server, count=1)
    fake.next_actions = ["jpeg"]
    out = tmp_path / "out"
    assert run(config, jobs, instance, fake, out) == 0
    record = Manifest(out).load_checked()[0]
    assert (out / record["image"]).read_bytes().startswith(b"\x89PNG")


def test_bfl_expired_result_url_is_an_error_and_the_key_never_goes_to_the_delivery_host(repo, server, tmp_path,
                                                                                         capsys) -> None:
    config, jobs, instance, fake = setup_run(repo, "bfl", server, count=2)
    fake.next_actions = ["ok", "expired"]
    out = tmp_path / "out"
    assert run(config, jobs, instance, fake, out, concurrency=1) == 1
    assert "expired" in capsys.readouterr().err
    assert [line["reason"] for line in Refusals(out).read()] == ["error"]
    assert len(Manifest(out).load_checked()) == 1
    deliveries = [entry for entry in fake.log if entry.provider == "bfl-delivery"]
    assert deliveries and all(SECRET not in json.dumps(entry.headers) for entry in deliveries)
    submits = [entry for entry in fake.log if entry.provider == "bfl"]
    assert all(entry.headers.get("X-Key") == SECRET for entry in submits)
    assert all(entry.body["output_format"] == "png" and entry.body["seed"] == 0 for entry in submits)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_is_retried_after_retry_after_and_retries_stop_at_the_stated_number(provider, repo, server, tmp_path,
                                                                                capsys) -> None:
    config, jobs, instance, fake = setup_run(repo, provider, server, count=1)
    fake.next_actions = ["429"]
    out = tmp_path / "out"
    started = time.monotonic()
    assert run(config, jobs, instance, fake, out) == 0
    assert time.monotonic() - started >= 0.9  # Retry-After: 1 was honoured (backoff alone is 0.01 s)
    submits = [entry for entry in fake.log if entry.provider == provider]
    assert len(submits) == 2 and submits[0].prompt == submits[1].prompt

    fake.by_prompt = {"": "500"}  # every request fails
    again = tmp_path / "again"
    assert run(config, jobs, instance, fake, again) == 1
    assert f"gave up after {FAST.attempts} tries" in capsys.readouterr().err
    assert len([e for e in fake.log if e.provider == provider]) == 2 + FAST.attempts


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_timed_out_request_is_retried(provider, repo, server, tmp_path) -> None:
    config, jobs, instance, fake = setup_run(repo, provider, server, count=1)
    fake.next_actions = ["slow"]
    quick = RetryPolicy(attempts=3, backoff_s=0.01, timeout_s=0.5, poll_interval_s=0.01, poll_timeout_s=20)
    assert run(config, jobs, instance, fake, tmp_path / "out", policy=quick) == 0
    asked = [entry.prompt for entry in fake.log if entry.provider == provider]
    assert len(asked) == 2 and len(set(asked)) == 1
    assert len(Manifest(tmp_path / "out").load_checked()) == 1


def test_a_rejected_key_stops_the_run_without_asking_the_rest(repo, server, tmp_path, capsys) -> None:
    from collapsebench.core.errors import BenchError

    config, jobs, instance, fake = setup_run(repo, "openai", server, count=6)
    fake.by_prompt = {"": "401"}
    with pytest.raises(BenchError, match="rejected the key") as caught:
        run(config, jobs, instance, fake, tmp_path / "out", concurrency=1)
    assert SECRET not in str(caught.value)
    assert len(fake.log) == 1


def test_model_id_returned_by_the_api_is_recorded_when_it_differs(repo, server, tmp_path) -> None:
    config, jobs, instance, fake = setup_run(repo, "byteplus", server, count=1,
                                             model_returned="seedream-4-0-250828-hotfix")
    assert run(config, jobs, instance, fake, tmp_path / "out") == 0
    record = Manifest(tmp_path / "out").load_checked()[0]
    assert record["api_model"] == "seedream-4-0-250828"
    assert record["api_model_returned"] == "seedream-4-0-250828-hotfix"


def test_gemini_sends_the_seed_and_labels_each_reference(repo, server, tmp_path) -> None:
    config, jobs, instance, fake = setup_run(repo, "gemini", server, count=1)
    assert run(config, jobs, instance, fake, tmp_path / "out") == 0
    body = fake.log[0].body
    n = jobs[0].prompt.n_subjects
    assert body["texts"][:n] == [f"Image {i}:" for i in range(1, n + 1)]
    assert body["generationConfig"]["seed"] == 0 and body["generationConfig"]["responseModalities"] == ["IMAGE"]
    assert fake.log[0].headers.get("X-Goog-Api-Key") == SECRET
