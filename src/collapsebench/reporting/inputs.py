"""What the report reads, checked before anything is aggregated: each model's scores and its coverage.

A damaged `scores.csv` must stop the report with a clear error (a truncated
file once crashed it with a TypeError, and one cut on a row boundary was
silently accepted), so every file is checked against the record `score` left
beside it in `scoring.json`: the column list and the row count. A model whose
scores cover fewer jobs than the benchmark asks for is reported with its
counts and marked incomplete, never ranked: 224 of 225 images is not a row to
compare with others.

A closed API's refusals (core/refusals.py: over the reference limit, content policy, no image) are answers, not
gaps: the coverage counts a refused job as answered, so a row is complete when every job has an image or a final
refusal. A job whose last attempt was an `error` has neither and stays missing.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collapsebench.benchmark.suite import Prompt
from collapsebench.core.errors import BenchError
from collapsebench.core.manifest import job_key
from collapsebench.core.metric_table import SCORE_COLUMNS

Row = dict[str, str]


def load_scores(results_dir: Path, model: str) -> tuple[list[Row], dict[str, Any]]:
    """A model's scores.csv rows and scoring.json, refused with a clear error when they do not agree."""
    folder = Path(results_dir) / "models" / model
    scores, info_path = folder / "scores.csv", folder / "scoring.json"
    if not scores.is_file() or not info_path.is_file():
        raise BenchError(f"{folder}: scores.csv / scoring.json missing; run `collapsebench score {model}` first")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchError(f"{info_path}: not valid JSON ({error}); run `collapsebench score {model}` again") from error
    rerun = f"run `collapsebench score {model}` again"
    with open(scores, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        expected = list(info.get("columns") or SCORE_COLUMNS)
        if header != expected:
            raise BenchError(f"{scores}: columns {header} differ from {expected} recorded in {info_path}; {rerun}")
        rows: list[Row] = []
        for values in reader:
            if len(values) != len(header):
                raise BenchError(f"{scores}:{reader.line_num}: {len(values)} of {len(header)} fields (the file is "
                                 f"truncated or damaged); {rerun}")
            rows.append(dict(zip(header, values)))
    if not rows:
        raise BenchError(f"{scores}: no rows; {rerun}")
    if len(rows) != info.get("n_rows"):
        raise BenchError(f"{scores}: {len(rows)} rows, but {info_path} records {info.get('n_rows')} (the file is "
                         f"truncated or damaged); {rerun}")
    return rows, info


@dataclass(frozen=True)
class Coverage:
    """How many of the benchmark's images a model's scores cover, per subject count."""

    model: str
    n_images: dict[int, int]  # subject count -> images scored
    n_expected: dict[int, int]  # subject count -> images the benchmark asks for
    missing: dict[int, tuple[str, ...]]  # subject count -> job keys with no scores and no refusal
    refused: dict[int, tuple[str, ...]] = field(default_factory=dict)  # subject count -> job keys refused for good

    @property
    def complete(self) -> bool:
        return all(self.n_images.get(n, 0) + len(self.refused.get(n, ())) == e for n, e in self.n_expected.items())

    def refusal_rate(self, n: int) -> float:
        """Share of the jobs asked at subject count `n` that the model refused (0 for a model with no refusals)."""
        return len(self.refused.get(n, ())) / self.n_expected[n] if self.n_expected.get(n) else 0.0

    def total(self) -> tuple[int, int]:
        return sum(self.n_images.values()), sum(self.n_expected.values())

    def describe(self) -> str:
        """`incomplete: 224 of 225 images (N=4: 44 of 45)`, or `complete: 225 images`."""
        done, wanted = self.total()
        refused = sum(len(keys) for keys in self.refused.values())
        if self.complete:
            return f"complete: {done} images" + (f", {refused} refused" if refused else "")
        short = [f"N={n}: {self.n_images.get(n, 0)} of {e}" for n, e in sorted(self.n_expected.items())
                 if self.n_images.get(n, 0) != e]
        return f"incomplete: {done} of {wanted} images" + (f" ({'; '.join(short)})" if short else "")


def coverage(model: str, rows: Iterable[Row], prompts: Sequence[Prompt], seeds: Sequence[int],
             refused: Iterable[str] = ()) -> Coverage:
    """Images scored and jobs refused (`refused`: job keys with a final refusal) against the benchmark's jobs."""
    expected = {job_key(p.id, s): p.n_subjects for p in prompts for s in seeds}
    scored = {job_key(int(r["prompt_id"]), int(r["seed"])) for r in rows}
    declined = (set(refused) & expected.keys()) - scored
    n_images: dict[int, int] = defaultdict(int)
    for key in scored & expected.keys():
        n_images[expected[key]] += 1
    n_expected: dict[int, int] = defaultdict(int)
    missing: dict[int, list[str]] = defaultdict(list)
    refusals: dict[int, list[str]] = defaultdict(list)
    for key, n in expected.items():
        n_expected[n] += 1
        if key in declined:
            refusals[n].append(key)
        elif key not in scored:
            missing[n].append(key)
    return Coverage(model, dict(n_images), dict(n_expected), {n: tuple(sorted(keys)) for n, keys in missing.items()},
                    {n: tuple(sorted(keys)) for n, keys in refusals.items()})


COVERAGE_COLUMNS = ("model", "n_subjects", "n_images", "n_expected", "complete", "missing", "refused")


def coverage_rows(item: Coverage) -> list[dict[str, Any]]:
    """results/coverage.csv: one row per subject count, the missing job keys of that count listed."""
    return [{"model": item.model, "n_subjects": n, "n_images": item.n_images.get(n, 0),
             "n_expected": item.n_expected[n], "complete": str(item.complete).lower(),
             "missing": " ".join(item.missing.get(n, ())), "refused": len(item.refused.get(n, ()))}
            for n in sorted(item.n_expected)]
