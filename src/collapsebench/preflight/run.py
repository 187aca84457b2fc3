"""`collapsebench preflight MODEL`: pick the jobs, build the twin, run the checks, print and write the result."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from collapsebench.benchmark.casting import load_instance
from collapsebench.benchmark.model_config import ModelConfig, load_model_config
from collapsebench.benchmark.pool import Subject
from collapsebench.benchmark.suite import Job, make_jobs
from collapsebench.core.errors import BenchError
from collapsebench.preflight.checks import describe_error, run_checks
from collapsebench.preflight.drivers import driver_for
from collapsebench.preflight.record import Check, PreflightResult, table, write
from collapsebench.preflight.spec import load_spec

SUBJECT_COUNTS = (2, 10)  # the smallest and the largest N of the benchmark


def preflight_jobs(instance: Any, seed: int) -> list[Job]:
    """The first benchmark prompt at each of SUBJECT_COUNTS, cast from the pool, at `seed`."""
    jobs = []
    for n in SUBJECT_COUNTS:
        prompt = next(p for p in instance.prompts if p.n_subjects == n)
        jobs += make_jobs([prompt], [seed])
    return jobs


def downscaled(pool: dict[str, Subject], size: int | None, folder: Path) -> dict[str, Subject]:
    """The pool's subjects with their references downscaled to fit `size` px a side, written to `folder` (adapters
    that read the file, MOSAIC's and XVerse's, read these); unchanged when `size` is None. The prompts stay those
    cast from the real pool."""
    if size is None:
        return pool
    from PIL import Image

    folder.mkdir(parents=True)
    smaller = {}
    for subject_id, subject in pool.items():
        with Image.open(subject.image) as image:
            copy = image.convert("RGB")
        copy.thumbnail((size, size))
        copy.save(folder / f"{subject_id}.png")
        smaller[subject_id] = replace(subject, image=folder / f"{subject_id}.png")
    return smaller


def check_entry(config: ModelConfig, weights: Path | None) -> None:
    """Refuse what preflight cannot mean: results submitted as images run none of our code."""
    if config.runner == "submitted":
        raise BenchError(f"model {config.name}: a results submission runs no code of ours, so it has nothing to "
                         "preflight" + (" and --weights does not apply" if weights else ""))
    if weights is not None and not Path(weights).is_dir():
        raise BenchError(f"--weights {weights}: not a folder")


def run_preflight(name: str, models_dir: Path, params: dict[str, Any], out_dir: Path, code_dir: Path | None = None,
                  weights: Path | None = None, pool_dir: Path | None = None) -> PreflightResult:
    """Preflight of models_dir/<name>; the result is written to out_dir/<name>.json and returned."""
    started = time.perf_counter()
    config = load_model_config(models_dir, name)
    check_entry(config, weights)
    spec = load_spec(Path(models_dir) / name)
    driver = driver_for(config)
    pool = Path(pool_dir or params["suite"]["pool"])
    instance = load_instance(Path(params["suite"]["prompts"]), pool)
    jobs = preflight_jobs(instance, int(params["suite"]["seeds"][0]))
    result = PreflightResult(model=name)
    with tempfile.TemporaryDirectory(prefix=f"preflight-{name}-") as work:
        try:
            twin = driver.twin(config, spec, Path(work), weights, code_dir, instance)
        except Exception as error:  # a twin that cannot be built here (spec, libraries): named and recorded
            result.checks = [Check(None, "twin builds", False, describe_error(error) + missing_torchvision(name))]
        else:
            result.pins = twin.pins
            subjects = downscaled(instance.pool, spec.reference_size, Path(work) / "references")
            result.checks = run_checks(config, twin.settings, driver, jobs, subjects, Path(work) / "out", spec.size)
            if hasattr(driver, "prompt_checks"):  # whole-suite checks a driver adds (XVerse: T5 tokens)
                result.checks += driver.prompt_checks(config, weights, code_dir, instance)
    result.wall_s = time.perf_counter() - started
    write(result, out_dir)
    return result


def missing_torchvision(name: str) -> str:
    """A hint where torchvision is absent: diffusers and transformers then leave out the processors of several
    multi-reference pipelines (OmniGen's, the Qwen VL video processors), and the error does not always say why."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        return ""
    return (f" (torchvision is not installed here, and this pipeline's processors need it; the model's image has "
            f"it: `collapsebench preflight {name} --runner docker`)")


def print_result(result: PreflightResult, summary: Path | None) -> None:
    print(table(result))
    if summary is not None:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(table(result, markdown=True) + "\n")
    if not result.passed:
        print(f"preflight {result.model}: {result.reason}", file=sys.stderr)


def preflight_folders(folders: list[Path], params: dict[str, Any], out_dir: Path) -> int:
    """`validate --preflight`: preflight of every model folder among `folders` that has a preflight.yaml (others
    are named as skipped); 1 if any fails."""
    failed = 0
    for folder in folders:
        folder = Path(folder)
        if folder.parent.name != "models" or not (folder / "model.yaml").is_file():
            continue
        if not (folder / "preflight.yaml").is_file():
            print(f"preflight skipped {folder}: no preflight.yaml")
            continue
        result = run_preflight(folder.name, folder.parent, params, out_dir)
        print_result(result, None)
        failed += not result.passed
    return 1 if failed else 0
