"""bench/scoring.py runs end to end (a benchmark, not a test: here only 4 images and a tiny DINOv2)."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # three child processes, each importing torch


def test_the_benchmark_runs_and_ends_with_the_speedup_line(capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location("bench_scoring", REPO / "bench" / "scoring.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    speedup = bench.main(["--images", "4", "--size", "tiny", "--batch-size", "4"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"speedup_vs_naive: {speedup:.2f}" and speedup > 0
    assert any(line.startswith("warm_cache_ratio") for line in lines)
    difference = next(line for line in lines if line.startswith("max |cosine difference|"))
    assert float(difference.split(":")[1]) < 1e-4  # the engine computes the naive loop's numbers
    for method in ("naive", "engine_cold", "engine_warm"):
        assert any(line.startswith(method) and "images/s" in line and "MiB" in line for line in lines)
