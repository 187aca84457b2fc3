"""Carry one model's dvc.lock entries from the GPU job that made its results to the job that commits them.

    python scripts/results_lock.py export NAME DEST   # generate@NAME and score@NAME of ./dvc.lock -> DEST
    python scripts/results_lock.py merge FILE...      # each FILE (NAME.yaml, as exported) into ./dvc.lock

`dvc commit` can only record a stage where its inputs are (the GPU runner's checkout, pool and images), while
the commit job runs on main's tip, which may have moved on: so the GPU job records the two stages and exports
them, and the commit job sets exactly those two entries in main's dvc.lock, leaving every other stage as it is.
A fragment may carry only the stages of the model it is named after.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

LOCK = Path("dvc.lock")


def stage_names(name: str) -> tuple[str, str]:
    return f"generate@{name}", f"score@{name}"


def read_lock(path: Path) -> dict:
    lock = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return lock or {"schema": "2.0", "stages": {}}


def export(name: str, dest: Path) -> None:
    stages = read_lock(LOCK)["stages"]
    missing = [stage for stage in stage_names(name) if stage not in stages]
    if missing:
        sys.exit(f"results_lock: {LOCK} has no {', '.join(missing)} (run `dvc commit` for them first)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fragment = {"schema": "2.0", "stages": {stage: stages[stage] for stage in stage_names(name)}}
    dest.write_text(yaml.safe_dump(fragment, sort_keys=False), encoding="utf-8")


def merge(files: list[Path]) -> None:
    lock = read_lock(LOCK)
    for path in files:
        stages = read_lock(path)["stages"]
        allowed = stage_names(path.stem)
        if sorted(stages) != sorted(allowed):
            sys.exit(f"results_lock: {path} must hold exactly {' and '.join(allowed)}, got {sorted(stages)}")
        lock["stages"].update(stages)
    LOCK.write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "export":
        export(argv[1], Path(argv[2]))
    elif len(argv) >= 2 and argv[0] == "merge":
        merge([Path(arg) for arg in argv[1:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
