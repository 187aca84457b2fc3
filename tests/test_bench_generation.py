"""bench/generation.py runs end to end (a benchmark, not a test: here the tiny model, one image per N, no fan-out)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # builds a pipeline and runs the real stage, in child processes


def test_the_benchmark_runs_and_ends_with_the_stage_over_transformer_line(capsys: pytest.CaptureFixture,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_generation", REPO / "bench" / "generation.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up there
    # As in README command 1's environment: no pytest and nothing of tests/ (defect: the bench imported
    # tests/test_adapters_diffusers.py, which imports pytest, and died there).
    for name in ("pytest", "conftest", "test_adapters_diffusers"):
        monkeypatch.setitem(sys.modules, name, None)
    spec.loader.exec_module(bench)

    ratio = bench.main(["--tiny", "--images-per-n", "1", "--shards", "0"])  # fan-out: tests/test_fanout.py
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"stage_over_transformer: {ratio:.2f}" and ratio > 1  # the stage contains the transformer
    assert [line.split()[0] for line in lines if line.startswith("N=")] == ["N=2", "N=4", "N=6", "N=8", "N=10"]
    assert all("stage" in line and "transformer" in line and "peak RSS (no GPU)" in line
               for line in lines if line.startswith("N="))
    assert any(line.startswith("stage: 75 images in") for line in lines)
