"""PSR is reported-only: asking to run it says why instead of failing obscurely."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from collapsebench.benchmark.model_config import load_model_config
from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.models import get_adapter


def test_psr_entry_is_reported_only_and_its_adapter_explains() -> None:
    config = load_model_config(REPO / "models", "psr")
    assert config.kind == "reported"
    adapter = get_adapter(config.adapter, config.adapter_settings())
    with pytest.raises(BenchError, match="no public weights or inference code"):
        adapter.load()


def test_generate_psr_from_the_command_line_fails_with_the_reason(workdir: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "psr"]) == 2
    assert "no public weights or inference code" in capsys.readouterr().err.lower()
