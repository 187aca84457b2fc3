"""The frozen benchmark definition: 75 prompt templates x seeds, validated on load.

Declarative like an lm-evaluation-harness task: `benchmark/prompts.yaml`
says what is asked (templates with slots, and the kind a slot needs where the
template needs one); benchmark/casting.py fills the slots with subjects of a
pool; this module checks the templates and expands cast prompts into jobs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from collapsebench.benchmark.pool import KINDS, Subject
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.core.manifest import job_key

SUBJECT_COUNTS = (2, 4, 6, 8, 10)
SCENES = ("neutral", "occlusion", "interaction")
PROMPTS_PER_CELL = 5
SLOT = re.compile(r"\{(\d+)\}")
SUPPORTED_VERSION = 2
ANY = "any"  # a slot without a kind constraint


@dataclass(frozen=True)
class Prompt:
    """One prompt template; `subjects` is empty until a casting fills the slots (benchmark/casting.py)."""

    id: int
    n_subjects: int
    scene: str
    template: str
    kinds: tuple[str, ...]  # per slot: person | animal | any
    subjects: tuple[str, ...] = ()

    def skeleton(self) -> str:
        """The template with its slots emptied: what a prompt says besides its subjects."""
        return SLOT.sub("", self.template)

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


def load_prompts(path: Path, full: bool = True) -> list[Prompt]:
    """Load and validate the templates of prompts.yaml (uncast). `full=False` skips the 75-prompt grid check."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BenchError(f"{path}: prompts file not found") from error
    except yaml.YAMLError as error:
        raise BenchError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(document, dict) or document.get("version") != SUPPORTED_VERSION:
        found = document.get("version") if isinstance(document, dict) else None
        raise BenchError(f"{path}: version {found!r} is not supported; this collapsebench reads version "
                         f"{SUPPORTED_VERSION} (templates with slot kinds, subjects cast from the pool)")
    entries = document.get("prompts")
    if not isinstance(entries, list) or not entries:
        raise BenchError(f"{path}: expected a non-empty list under 'prompts'")
    prompts = [_parse_prompt(path, index, entry) for index, entry in enumerate(entries)]
    ids = [p.id for p in prompts]
    duplicated = sorted(i for i, c in Counter(ids).items() if c > 1)
    if duplicated:
        raise BenchError(f"{path}: duplicate prompt ids {duplicated}")
    if full:
        _check_grid(path, prompts)
    return prompts


def _parse_prompt(path: Path, index: int, entry: object) -> Prompt:
    where = f"{path}: prompts[{index}]"
    if not isinstance(entry, dict):
        raise BenchError(f"{where}: expected a mapping")
    missing = [key for key in ("id", "n_subjects", "scene", "template") if key not in entry]
    if missing:
        raise BenchError(f"{where}: missing {', '.join(missing)}")
    if not isinstance(entry["id"], int):
        raise BenchError(f"{where}: id must be an integer")
    where = f"{path}: prompt {entry['id']}"
    n, scene, template = entry["n_subjects"], entry["scene"], entry["template"]
    if n not in SUBJECT_COUNTS:
        raise BenchError(f"{where}: n_subjects must be one of {SUBJECT_COUNTS}, got {n!r}")
    if scene not in SCENES:
        raise BenchError(f"{where}: scene must be one of {SCENES}, got {scene!r}")
    if not isinstance(template, str):
        raise BenchError(f"{where}: template must be a string")
    if "subjects" in entry:
        raise BenchError(f"{where}: version 2 prompts name no subjects (the casting assigns them); remove 'subjects'")
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
    kinds = entry.get("kinds") or {}
    if not isinstance(kinds, dict) or any(slot not in expected for slot in kinds) \
            or any(kind not in KINDS for kind in kinds.values()):
        raise BenchError(f"{where}: kinds must map slots 1..{n} to one of {KINDS}, got {kinds!r}")
    return Prompt(id=entry["id"], n_subjects=n, scene=scene, template=template,
                  kinds=tuple(str(kinds.get(slot, ANY)) for slot in range(1, n + 1)))


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
