"""The frozen benchmark definition: 75 prompts x seeds, validated on load.

Declarative like an lm-evaluation-harness task: `benchmark/prompts.yaml`
says what is asked; this module checks it and expands it into jobs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.core.manifest import job_key

SUBJECT_COUNTS = (2, 4, 6, 8, 10)
SCENES = ("neutral", "occlusion", "interaction")
PROMPTS_PER_CELL = 5
SLOT = re.compile(r"\{(\d+)\}")


@dataclass(frozen=True)
class Prompt:
    id: int
    n_subjects: int
    scene: str
    template: str
    subjects: tuple[str, ...]

    def render(self, phrases: list[str]) -> str:
        """Replace slot {i} with the i-th phrase (1-based): the natural prompt."""
        return SLOT.sub(lambda match: phrases[int(match.group(1)) - 1], self.template)

    def natural(self, pool: dict[str, Subject]) -> str:
        return self.render([pool[s].phrase for s in self.subjects])


@dataclass(frozen=True)
class Job:
    """One image to make: a prompt at a seed. `key` names its PNG and its manifest line."""

    prompt: Prompt
    seed: int

    @property
    def key(self) -> str:
        return job_key(self.prompt.id, self.seed)


def job_inputs(jobs: list[Job], pool: dict[str, Subject]) -> dict[str, str]:
    """Per job key, a hash of what its image is made from besides the model: the rendered prompt,
    the seed and the bytes of each reference. A changed template or a replaced reference image
    therefore makes that job's old image stale, though its key and the model are unchanged."""
    references = {s: sha256_file(pool[s].image) for job in jobs for s in job.prompt.subjects}
    return {job.key: hashlib.sha256(json.dumps({
        "prompt": job.prompt.natural(pool), "seed": job.seed,
        "references": [[s, references[s]] for s in job.prompt.subjects],
    }).encode()).hexdigest()[:16] for job in jobs}


def load_prompts(path: Path, pool: dict[str, Subject] | None = None, full: bool = True) -> list[Prompt]:
    """Load and validate prompts.yaml. `full=False` skips the 75-prompt grid check (tiny test suites)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BenchError(f"{path}: prompts file not found") from error
    except yaml.YAMLError as error:
        raise BenchError(f"{path}: not valid YAML ({error})") from error
    entries = document.get("prompts") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BenchError(f"{path}: expected a non-empty list under 'prompts'")
    prompts = [_parse_prompt(path, index, entry, pool) for index, entry in enumerate(entries)]
    ids = [p.id for p in prompts]
    duplicated = sorted(i for i, c in Counter(ids).items() if c > 1)
    if duplicated:
        raise BenchError(f"{path}: duplicate prompt ids {duplicated}")
    if full:
        _check_grid(path, prompts)
    return prompts


def _parse_prompt(path: Path, index: int, entry: object, pool: dict[str, Subject] | None) -> Prompt:
    where = f"{path}: prompts[{index}]"
    if not isinstance(entry, dict):
        raise BenchError(f"{where}: expected a mapping")
    missing = [key for key in ("id", "n_subjects", "scene", "template", "subjects") if key not in entry]
    if missing:
        raise BenchError(f"{where}: missing {', '.join(missing)}")
    if not isinstance(entry["id"], int):
        raise BenchError(f"{where}: id must be an integer")
    where = f"{path}: prompt {entry['id']}"
    n, scene, template, subjects = entry["n_subjects"], entry["scene"], entry["template"], entry["subjects"]
    if n not in SUBJECT_COUNTS:
        raise BenchError(f"{where}: n_subjects must be one of {SUBJECT_COUNTS}, got {n!r}")
    if scene not in SCENES:
        raise BenchError(f"{where}: scene must be one of {SCENES}, got {scene!r}")
    if not isinstance(template, str) or not isinstance(subjects, list):
        raise BenchError(f"{where}: template must be a string and subjects a list")
    if len(subjects) != n:
        raise BenchError(f"{where}: n_subjects is {n} but {len(subjects)} subjects are listed")
    repeated = sorted(s for s, c in Counter(subjects).items() if c > 1)
    if repeated:
        raise BenchError(f"{where}: subject IDs must be distinct, repeated: {repeated}")
    slots = Counter(int(s) for s in SLOT.findall(template))
    expected = set(range(1, n + 1))
    if set(slots) != expected or any(c != 1 for c in slots.values()):
        unused = sorted(expected - set(slots))
        extra = sorted(set(slots) - expected)
        twice = sorted(s for s, c in slots.items() if c > 1)
        raise BenchError(
            f"{where}: every slot {{1}}..{{{n}}} must appear exactly once in the template "
            f"(unused {unused}, unknown {extra}, repeated {twice})"
        )
    if "{" in SLOT.sub("", template) or "}" in SLOT.sub("", template):
        raise BenchError(f"{where}: stray brace in template")
    if pool is not None:
        unknown = [s for s in subjects if s not in pool]
        if unknown:
            raise BenchError(f"{where}: unknown subject IDs {unknown} (not in the subject pool)")
    return Prompt(id=entry["id"], n_subjects=n, scene=scene, template=template, subjects=tuple(map(str, subjects)))


def _check_grid(path: Path, prompts: list[Prompt]) -> None:
    cells = Counter((p.n_subjects, p.scene) for p in prompts)
    for n in SUBJECT_COUNTS:
        for scene in SCENES:
            if cells[(n, scene)] != PROMPTS_PER_CELL:
                raise BenchError(
                    f"{path}: expected {PROMPTS_PER_CELL} prompts with n_subjects={n}, scene={scene}; "
                    f"found {cells[(n, scene)]}"
                )
    if sorted(p.id for p in prompts) != list(range(1, len(prompts) + 1)):
        raise BenchError(f"{path}: prompt ids must be 1..{len(prompts)}")


def make_jobs(prompts: list[Prompt], seeds: list[int]) -> list[Job]:
    """All (prompt, seed) jobs in a fixed order: by prompt id, then seed (shards rely on it)."""
    return [Job(prompt, seed) for prompt in sorted(prompts, key=lambda p: p.id) for seed in seeds]


def parse_shard(shard: str) -> tuple[int, int]:
    """`i/n` -> (i, n), 0 <= i < n."""
    match = re.fullmatch(r"(\d+)/(\d+)", shard)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise BenchError(f"--shard must look like i/n with 0 <= i < n, got {shard!r}")
    return int(match.group(1)), int(match.group(2))


def select_shard(jobs: list[Job], shard: str | None) -> list[Job]:
    """`--shard i/n` keeps every n-th job starting at i (0-based): balanced across subject counts."""
    if not shard:
        return jobs
    index, count = parse_shard(shard)
    return jobs[index::count]
