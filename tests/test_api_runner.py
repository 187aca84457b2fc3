"""The api runner's promises: keys only from the environment, refused-not-truncated jobs, a dry run that sends
nothing and prices the rest, resumable after kill -9 without asking twice for an image already delivered, and
API entries that validate, run when named and never by `calibration` or `all`."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from api_fakes import SECRET, FakeProvider
from pytest_httpserver import HTTPServer

from collapsebench.benchmark.casting import load_instance
from collapsebench.benchmark.model_config import load_model_config, read_model_file
from collapsebench.benchmark.registry import select
from collapsebench.benchmark.suite import make_jobs
from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.core.manifest import Manifest
from collapsebench.core.refusals import Refusals
from collapsebench.generation.runners.api import run_api
from collapsebench.models.api.http import RetryPolicy, retry_after_seconds

FAST = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=1.0, timeout_s=20, poll_interval_s=0.01)


@pytest.fixture
def server():
    with HTTPServer(host="127.0.0.1", threaded=True) as http:
        yield http


def instance_jobs(root: Path):
    instance = load_instance(root / "benchmark/prompts.yaml", root / "data")
    return instance, make_jobs(instance.prompts, [0])


def test_a_missing_key_is_a_clear_error_before_any_request(workdir, server, monkeypatch, capsys) -> None:
    fake = FakeProvider(server, "gemini")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_BASE_URL", fake.base_url())
    assert main(["generate", "nano-banana-pro"]) == 2
    assert "GEMINI_API_KEY is not set" in capsys.readouterr().err
    assert fake.log == [] and not (workdir / "results/models/nano-banana-pro").exists()


def test_a_job_over_the_reference_limit_is_refused_and_never_sent(workdir, server) -> None:
    instance, jobs = instance_jobs(workdir)
    config = load_model_config(workdir / "models", "flux2-pro")
    ten = next(j for j in jobs if j.prompt.n_subjects == 10)
    eight = next(j for j in jobs if j.prompt.n_subjects == 8)
    fake = FakeProvider(server, "bfl")
    out = workdir / "out"
    assert run_api(config, [ten, eight], instance.pool, out, instance.labels, 2, FAST, environ=fake.env()) == 0
    (line,) = Refusals(out).read()
    assert line["key"] == ten.key and line["reason"] == "over_reference_limit"
    assert "10 references" in line["detail"] and "at most 8" in line["detail"]
    assert [entry.n_images for entry in fake.log if entry.provider == "bfl"] == [8]  # only the 8-subject job
    assert [r["key"] for r in Manifest(out).load_checked()] == [eight.key]


def test_dry_run_prints_jobs_refusals_and_cost_and_sends_nothing(workdir, server, monkeypatch, capsys) -> None:
    fake = FakeProvider(server, "bfl")
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    assert main(["generate", "flux2-pro", "--dry-run"]) == 0
    out = capsys.readouterr().out
    _, jobs = instance_jobs(workdir)
    sent = [j for j in jobs if j.prompt.n_subjects <= 8]
    cost = sum(0.03 + 0.015 * j.prompt.n_subjects for j in sent)
    assert "75 jobs" in out and "15 would be refused (over_reference_limit" in out
    assert f"{len(sent)} to request" in out and f"cost ${cost:.2f}" in out and "2026-12-03" in out
    assert fake.log == [] and not (workdir / "results/models/flux2-pro").exists()
    monkeypatch.delenv("BFL_API_KEY")  # a dry run needs no key
    assert main(["generate", "flux2-pro", "--dry-run"]) == 0
    assert main(["generate", "--models", "flux2-pro", "--dry-run"]) == 2  # names one model, writes nothing
    assert not (workdir / "results/generated.json").exists()


KILLED = """
import sys
from collapsebench.cli import main
sys.exit(main(["generate", "seedream-4", "--concurrency", "2"]))
"""


@pytest.mark.slow  # two processes each
def test_kill_9_mid_run_then_rerun_asks_no_delivered_image_again(workdir, server) -> None:
    fake = FakeProvider(server, "byteplus")
    answered = 6
    fake.next_actions = ["ok"] * answered + ["hold"] * 200  # six answers, then every request hangs
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["generate"]["api"] = {"attempts": 2, "backoff_s": 0.01, "timeout_s": 60}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, **fake.env()}
    process = subprocess.Popen([sys.executable, "-c", KILLED], cwd=workdir, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = Manifest(workdir / "results/models/seedream-4")
    deadline = time.monotonic() + 60
    while len(manifest.records()) < answered or len(fake.log) < answered + 2:
        assert time.monotonic() < deadline, "the run never got six images and two requests in flight"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    delivered = {r["sent_prompt"] for r in manifest.records()}
    first_run = len(fake.log)
    assert len(delivered) == answered

    fake.next_actions = []
    fake.release.set()  # the hung handlers answer a dead client
    rerun = subprocess.run([sys.executable, "-c", KILLED], cwd=workdir, env=env, capture_output=True, text=True,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr
    again = [entry.prompt for entry in fake.log[first_run:]]
    assert not delivered & set(again)  # no image the first run received is paid for twice
    assert len(again) == len(set(again)) == 75 - answered
    assert len(manifest.load_checked()) == 75
    assert SECRET not in rerun.stdout + rerun.stderr


BFL_RUN = KILLED.replace("seedream-4", "flux2-pro")


@pytest.mark.slow  # two processes each
def test_kill_9_while_bfl_tasks_are_pending_then_rerun_polls_them_instead_of_paying_again(workdir, server) -> None:
    fake = FakeProvider(server, "bfl")
    answered = 4
    fake.next_actions = ["ok"] * answered + ["hold_poll"] * 200  # four images, then tasks that stay pending
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["generate"]["api"] = {"attempts": 2, "backoff_s": 0.01, "timeout_s": 60, "poll_interval_s": 0.01}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, **fake.env()}
    process = subprocess.Popen([sys.executable, "-c", BFL_RUN], cwd=workdir, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = workdir / "results/models/flux2-pro"
    deadline = time.monotonic() + 60
    while len(Manifest(folder).records()) < answered or len(fake.log) < answered + 2 or \
            len((folder / "tasks.jsonl").read_text().splitlines() if (folder / "tasks.jsonl").exists() else []) \
            < answered + 2:
        assert time.monotonic() < deadline, "the run never got four images and two pending tasks"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    submitted = {entry.prompt for entry in fake.log if entry.provider == "bfl"}
    first_run = len(fake.log)
    assert SECRET not in (folder / "tasks.jsonl").read_text()

    fake.next_actions = []
    fake.release.set()
    rerun = subprocess.run([sys.executable, "-c", BFL_RUN], cwd=workdir, env=env, capture_output=True, text=True,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr
    again = [entry.prompt for entry in fake.log[first_run:] if entry.provider == "bfl"]
    assert not submitted & set(again)  # every task paid for in the first run was polled, not submitted again
    assert len(again) + len(submitted) == 60  # 75 jobs, 15 over the limit of 8
    records = Manifest(folder).load_checked()
    assert len(records) == 60 and sum(r["sent"]["answer"]["resumed"] for r in records) == len(submitted) - answered
    assert not (folder / "tasks.jsonl").exists()  # every task answered: the journal is empty


def test_api_entries_run_when_named_never_by_calibration_or_all(workdir) -> None:
    models = workdir / "models"
    api = {"nano-banana-pro", "gpt-image", "seedream-4", "flux2-pro"}
    assert not api & {c.name for c in select("all", models, "test")}
    assert not api & {c.name for c in select("calibration", models, "test")}
    assert [c.name for c in select(["seedream-4"], models, "test")] == ["seedream-4"]
    for name in api:
        config = load_model_config(models, name)
        assert config.access == "closed-api" and config.reference_limit and config.api["price_date"]
        assert main(["validate", f"models/{name}"]) == 0
    assert load_model_config(models, "collage").access == "open"


def test_schema_and_validate_reject_an_api_entry_without_its_facts(workdir, capsys) -> None:
    entry = yaml.safe_load((workdir / "models/seedream-4/model.yaml").read_text())
    del entry["reference_limit"]
    entry["api"].pop("price_date")
    entry["settings"]["sizes"] = "1K"  # a typo: the provider does not send it
    (workdir / "models/seedream-4/model.yaml").write_text(yaml.safe_dump(entry))
    _, problems = read_model_file(workdir / "models/seedream-4/model.yaml", "seedream-4")
    fields = {where for where, _ in problems}
    assert {"reference_limit", "api.price_date"} <= fields
    assert main(["validate", "models/seedream-4"]) == 1
    out = capsys.readouterr().out
    assert "reference_limit" in out and "price_date" in out
    entry["reference_limit"], entry["api"]["price_date"] = 10, "2026-12-03"
    (workdir / "models/seedream-4/model.yaml").write_text(yaml.safe_dump(entry))
    assert main(["validate", "models/seedream-4"]) == 1
    assert "unknown setting(s) ['sizes']" in capsys.readouterr().out


def test_retry_after_and_backoff() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412480 - 5) == pytest.approx(5)
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    policy = RetryPolicy(backoff_s=2.0, max_backoff_s=10.0)
    rng = random.Random(0)
    delays = [policy.delay(retry, None, rng) for retry in (1, 2, 3, 4, 5) for _ in range(50)]
    assert all(0 <= d <= 10.0 for d in delays) and max(delays[:50]) <= 2.0 and max(delays[150:]) > 2.0
    assert policy.delay(1, 30.0, rng) == 10.0 and policy.delay(1, 4.0, rng) == 4.0  # Retry-After, capped
    with pytest.raises(BenchError, match="unknown setting"):
        RetryPolicy.from_params({"tries": 3})


def test_generate_rejects_gpu_flags_for_an_api_entry(workdir, capsys) -> None:
    assert main(["generate", "seedream-4", "--shard", "0/2"]) == 2
    assert "do not apply to a closed API entry" in capsys.readouterr().err


def test_the_readme_cost_table_is_what_dry_run_prints_for_225_images(tmp_path, capsys) -> None:
    """README, "Run a closed model with your own key": each entry's refusals and cost as `--dry-run` prints them
    with params.yaml's three seeds (a price change in a model.yaml must update the README)."""
    from conftest import REPO, make_pool

    params = yaml.safe_load((REPO / "params.yaml").read_text())  # its seeds; a synthetic pool (no dvc pull needed)
    params["suite"].update(prompts=str(REPO / "benchmark/prompts.yaml"), pool=str(make_pool(tmp_path / "data")))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    table = {}
    section = (REPO / "README.md").read_text().split("## Run a closed model with your own key")[1].split("\n## ")[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`") and cells[0] != "entry":
            table[cells[0].strip("`")] = (int(cells[3].split()[0]), cells[5].strip("`").split()[0])
    assert set(table) == {"nano-banana-pro", "gpt-image", "seedream-4", "flux2-pro"}
    for name, (refused, cost) in table.items():
        assert main(["--params", str(tmp_path / "params.yaml"), "--models-dir", str(REPO / "models"),
                     "--results", str(tmp_path / "results"), "generate", name, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "225 jobs" in out and f"{refused} would be refused" in out and f"cost {cost} " in out, out
        config = load_model_config(REPO / "models", name)
        assert str(config.reference_limit) in out
