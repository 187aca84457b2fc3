"""The local runner: generate in this process (calibration models, tests, and inside a model's container)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.pool import Subject
from collapsebench.benchmark.suite import Job
from collapsebench.generation.generate import run_generate


def run_local(config: ModelConfig, jobs: list[Job], pool: dict[str, Subject], out_dir: Path,
              labels: Mapping[str, str]) -> int:
    """Make the jobs' images in `out_dir`; print a summary and each failed job. Exit status 1 if any failed."""
    report = run_generate(config, jobs, pool, out_dir, runner="local", labels=labels)
    print(f"generate {config.name}: {report.made} made, {report.skipped} already done, {len(report.failed)} failed")
    for failure in report.failed:
        print(f"  FAILED {failure}", file=sys.stderr)
    return 1 if report.failed else 0
