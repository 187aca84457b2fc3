"""The package shows the pipeline: one folder per stage on a shared core, as the README's layout says, and no
stage reaches into another stage's folder (what they share lives in core/ or benchmark/)."""

from __future__ import annotations

import ast
import re

from conftest import REPO

PACKAGE = REPO / "src" / "collapsebench"
# Which sub-packages each one may import. The site reads the report's files through reporting/rows.py and
# reporting/metrics.py (the same parsing and per-image means the report used), so leaderboard -> reporting is allowed.
ALLOWED = {
    "core": {"core"},
    "benchmark": {"core", "benchmark"},
    "models": {"core", "benchmark", "models"},
    "generation": {"core", "benchmark", "models", "generation"},
    "scoring": {"core", "benchmark", "scoring"},
    "reporting": {"core", "benchmark", "reporting"},
    "leaderboard": {"core", "benchmark", "reporting", "leaderboard"},
    "intake": {"core", "benchmark", "models", "intake"},
    # Preflight drives the generate stage (run_generate) with an entry's adapter on its twin.
    "preflight": {"core", "benchmark", "models", "generation", "preflight", "testing"},
    # The tiny random-weight builders shared by tests, benches and preflight; the publishing loop's host side.
    "testing": {"core", "testing"},
    "publishing": {"core", "publishing"},
}


def subpackages() -> set[str]:
    return {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def test_every_stage_folder_is_in_the_readme_layout_and_the_import_rules() -> None:
    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^  ([a-z_]+)/ ", readme, flags=re.MULTILINE))
    assert listed == subpackages()
    assert set(ALLOWED) == subpackages()


def test_no_stage_imports_another_stages_internals() -> None:
    wrong = []
    for package in subpackages():
        for path in (PACKAGE / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("collapsebench."):
                    target = node.module.split(".")[1]
                    if target in ALLOWED and target not in ALLOWED[package]:
                        wrong.append(f"{path.relative_to(REPO)} imports {node.module}")
    assert wrong == []
