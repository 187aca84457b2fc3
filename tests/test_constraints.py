"""constraints.txt pins the host environment of both README commands, and stays in sync with pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import lock_constraints  # noqa: E402  (a script, not a package module)


def test_constraints_match_pyproject_and_this_environment() -> None:
    """The committed file is what the script writes from this environment, and pins every requirement of
    pyproject.toml inside its range."""
    result = subprocess.run([sys.executable, str(REPO / "scripts/lock_constraints.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_pin_outside_its_range_or_a_missing_pin_is_named() -> None:
    roots = lock_constraints.project_requirements()
    text = (REPO / "constraints.txt").read_text()
    broken = re.sub(r"(?m)^jinja2==.*\n", "", text).replace("\npyyaml==", "\npyyaml==5.0.0\n#")
    found = lock_constraints.problems(broken, roots, None)
    assert any(p.startswith("jinja2: required by pyproject.toml") for p in found), found
    assert any(p.startswith("pyyaml==5.0.0 is outside") for p in found), found


def test_every_install_path_uses_the_constraints() -> None:
    """README commands 1 and 2, CI's copy of command 2 and the workflows' install script."""
    readme = (REPO / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3.11 -m venv .venv && ")]
    assert len([c for c in commands if "dvc repro" in c or "pytest" in c]) == 2
    for command in commands:
        if "dvc repro" in command or "pytest" in command:
            assert " -e . -c constraints.txt " in command or ' -e ".[dev]" -c constraints.txt ' in command
    assert '-e ".[dev]" -c constraints.txt' in (REPO / ".ci/run").read_text()
    assert '-e ".[dev]" -c constraints.txt' in (REPO / "scripts/install.sh").read_text()


def test_ci_runs_the_readme_test_command_then_the_images_tests() -> None:
    """The default run leaves the `images` tests out (pyproject.toml); CI runs them after it (README)."""
    import tomllib

    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-m 'not images'" in options["addopts"]
    lines = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    assert lines.index(".venv/bin/pytest") < lines.index(".venv/bin/pytest -m images")
