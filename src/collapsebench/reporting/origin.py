"""Where a reproduced row came from: table1.csv's `origin` column, which the site labels and ranks by.

A results folder can reach a checkout four ways, and only the first three are claims anyone stands behind:

- `workflow`: our GPU workflow made and scored the images; its commit job wrote `published.json` (never taken
  from a run's artifact, scripts/commit_results.sh) with the sha256 of the scores it committed;
- `submitted`: the same, for a results submission whose images the authors made and our workflow re-scored;
- `local`: this repository's own pipeline made these exact scores: the score stage's record
  (`results/scored.json`, a DVC output that pull requests cannot touch, scripts/check_results_paths.sh) or this
  checkout's run log (core/runlog.py, for `collapsebench score MODEL` run by hand) holds their sha256, e.g. the
  calibration rows of `dvc repro` or a researcher's own GPU run;
- `unverified`: anything else, such as a results/models/<name>/ added by hand or scores edited after the fact.
  Such a row is shown, labelled, and never ranked.
"""

from __future__ import annotations

import json
from pathlib import Path

from collapsebench.core.io import sha256_file
from collapsebench.core.runlog import read_run_log

PUBLISHED = "published.json"
ORIGINS = ("workflow", "submitted", "local", "unverified")


def row_origin(model_dir: Path) -> str:
    """The origin of the scores in `model_dir` (see the module docstring)."""
    scores = Path(model_dir) / "scores.csv"
    if not scores.is_file() or scores.is_symlink():
        return "unverified"
    digest = sha256_file(scores)
    published = Path(model_dir) / PUBLISHED
    if published.is_file() and not published.is_symlink():
        try:
            record = json.loads(published.read_text(encoding="utf-8"))
        except ValueError:
            record = {}
        if isinstance(record, dict) and record.get("source") == "gpu-workflow" \
                and record.get("scores_sha256") == digest:
            return "submitted" if record.get("kind") == "submission" else "workflow"
    if recorded_by_score_stage(Path(model_dir)) == digest or any(
            event.get("stage") == "score" and event.get("scores_sha256") == digest for event in read_run_log(model_dir)):
        return "local"
    return "unverified"


def recorded_by_score_stage(model_dir: Path) -> str | None:
    """The sha256 that results/scored.json (cli._record_stage) holds for this model's scores.csv, if any."""
    record = model_dir.parent.parent / "scored.json"
    try:
        document = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    models = document.get("models") if isinstance(document, dict) else None
    value = models.get(model_dir.name) if isinstance(models, dict) else None
    return value if isinstance(value, str) else None
