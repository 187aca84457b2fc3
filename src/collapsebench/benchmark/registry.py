"""Which models the leaderboard holds, and which of them this machine runs.

There is no list of models to keep by hand: a folder is an entry. Every
`models/<name>/model.yaml` is a model of the leaderboard, and every
`submissions/<name>/` that has not been imported yet is one waiting for its
results. A hand-kept list in params.yaml used to be a trap: results
submissions never appeared because nothing added them, and a merged model made
the site build fail until someone listed it.

params.yaml's `models` only *selects* what `dvc repro` generates and scores on
this machine: `calibration` (the CPU calibration models, the default),
`all` (every entry that can run here, except closed API entries: they cost money
and need the user's key, so they run only when named), or a list of names.
Every other model is reported from its committed results, or shown as pending
until it has some.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from collapsebench.benchmark.model_config import NAME, ModelConfig, load_model_config
from collapsebench.core.errors import BenchError

SELECTIONS = ("calibration", "all")
DEFAULT_SELECTION = "calibration"  # what `dvc repro` runs when params.yaml has no `models`


def model_names(models_dir: Path) -> list[str]:
    """The name of every entry under models/ (a folder with a model.yaml and a valid name), sorted."""
    folder = Path(models_dir)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if NAME.match(p.name) and (p / "model.yaml").is_file())


def waiting_submissions(submissions_dir: Path, models_dir: Path) -> list[str]:
    """Results submissions merged but not imported yet: submissions/<name>/ with no models/<name>/model.yaml."""
    folder = Path(submissions_dir)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and NAME.match(p.name)
                  and not (Path(models_dir) / p.name / "model.yaml").is_file())


def runs_here(config: ModelConfig) -> bool:
    """Whether the pipeline makes this entry's scores: not for the paper's reported-only rows."""
    return config.kind != "reported"


def generates_here(config: ModelConfig) -> bool:
    """Whether `generate` makes this entry's images: not for reported rows, nor for results submitted as images."""
    return runs_here(config) and config.runner != "submitted"


def entries(models_dir: Path) -> list[ModelConfig]:
    """Every entry of models/ whose scores the pipeline makes (all but the paper's reported-only rows), in name
    order: what `all` selects, what the report reads scores for, what the site lists as pending without them."""
    configs = [load_model_config(models_dir, name) for name in model_names(models_dir)]
    return [c for c in configs if runs_here(c)]


def parse_selection(value: object, where: str) -> str | list[str]:
    """params.yaml's `models` or `--models`: `calibration`, `all`, a list of names, or names joined by commas."""
    if isinstance(value, str) and value in SELECTIONS:
        return value
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise BenchError(f"{where}: models must be {' or '.join(SELECTIONS)} or a list of model names, got {value!r}")
    return [n.strip() for n in names]


def select(value: object, models_dir: Path, where: str) -> list[ModelConfig]:
    """The entries a selection names that the pipeline runs here, in name order for `calibration`/`all`.

    A name with no models/<name>/model.yaml, or a reported-only entry named explicitly, is an error that names
    `where` (the params file or the flag): asking for something that cannot run must not pass silently.
    """
    selection = parse_selection(value, where)
    if isinstance(selection, str):  # `all` never includes a paid API entry: those run when named, with a key
        return [c for c in entries(models_dir)
                if (selection == "all" and c.runner != "api") or c.kind == "calibration"]
    configs = []
    for name in dict.fromkeys(selection):
        if not (Path(models_dir) / name / "model.yaml").is_file():
            raise BenchError(f"{where}: model {name!r} has no {Path(models_dir) / name / 'model.yaml'} "
                             f"(known: {', '.join(model_names(models_dir)) or 'none'})")
        config = load_model_config(models_dir, name)
        if not runs_here(config):
            raise BenchError(f"{where}: {name} is reported-only (kind: reported): its rows come from the paper, "
                             "there is nothing to run")
        configs.append(config)
    return configs


def describe(configs: Sequence[ModelConfig]) -> str:
    return ", ".join(c.name for c in configs) or "none"
