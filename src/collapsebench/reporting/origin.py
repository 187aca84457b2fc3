"""Where a reproduced row came from: table1.csv's `origin` column, which the site labels and ranks by.

A results folder can reach a checkout four ways, and only the first three are claims anyone stands behind:

- `workflow`: our GPU workflow made and scored the images; its commit job wrote `published.json` (never taken
  from a run's artifact, scripts/commit_results.sh) with the sha256 of the scores it committed;
- `submitted`: the same, for a results submission whose images the authors made and our workflow re-scored;
- `local`: this checkout's own `score` made these exact scores (its run log, core/runlog.py, which git never
  carries, records their sha256), e.g. the calibration rows of a laptop run or a researcher's own GPU run;
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
    if any(event.get("stage") == "score" and event.get("scores_sha256") == digest
           for event in read_run_log(model_dir)):
        return "local"
    return "unverified"
