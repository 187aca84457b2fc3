"""Casting: which subjects of a pool fill the slots of each prompt, decided once per pool and frozen.

The paper samples identities from a unified pool into its prompts. Here the
sampling is a documented, seeded procedure, so anyone can recompute it, and its
result is frozen in `benchmark/castings/<pool id>.yaml` (written by
`collapsebench suite cast`), so a later change of the procedure can never
silently recast a published benchmark. The pool id is a hash of the pool's
content (ids, kinds, phrases and reference bytes): another pool, or the same
pool with one reference replaced, is another benchmark instance with its own
casting, and rows made on different pools are never ranked together.

The procedure (version 1): prompts are cast in id order; within a prompt the
slots that need a kind are filled first, then the others, each with the
eligible subject (right kind, not yet in this prompt) that has been used least
so far, ties broken by a per-prompt shuffle drawn from `random.Random` seeded
with the casting seed and the pool id. Greedy least-used choice keeps usage
balanced across the pool: within one kind, usage counts differ by at most a
few (a test bounds it).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from collapsebench.benchmark.pool import Subject, load_pool
from collapsebench.benchmark.suite import ANY, Prompt, load_prompts
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_text, sha256_file

PROCEDURE_VERSION = 1
CASTING_SEED = 20260327  # the paper's arXiv date; fixed so every casting of a pool is reproducible
MAX_PHRASE_TOKENS = 6  # CLIP tokens a subject phrase may have (without start/end): every template leaves room for it


def pool_id(pool: Mapping[str, Subject]) -> str:
    """`pool-<12 hex>`: a hash of every subject's id, kind, phrase and reference bytes."""
    digest = hashlib.sha256()
    for subject_id in sorted(pool):
        subject = pool[subject_id]
        digest.update(json.dumps([subject.id, subject.kind, subject.phrase, sha256_file(subject.image)]).encode())
    return f"pool-{digest.hexdigest()[:12]}"


def cast(prompts: Sequence[Prompt], pool: Mapping[str, Subject], seed: int = CASTING_SEED) -> dict[int, tuple[str, ...]]:
    """Prompt id -> subject ids in slot order, by the procedure in the module docstring."""
    identity = pool_id(pool)
    rng = random.Random(f"{seed}:{identity}:{PROCEDURE_VERSION}")
    usage: Counter[str] = Counter()
    casting: dict[int, tuple[str, ...]] = {}
    ids = sorted(pool)
    for prompt in sorted(prompts, key=lambda p: p.id):
        order = ids[:]
        rng.shuffle(order)
        tiebreak = {subject_id: rank for rank, subject_id in enumerate(order)}
        chosen: dict[int, str] = {}
        for slot in sorted(range(prompt.n_subjects), key=lambda s: (prompt.kinds[s] == ANY, s)):
            kind = prompt.kinds[slot]
            eligible = [s for s in ids if s not in chosen.values() and kind in (ANY, pool[s].kind)]
            if not eligible:
                wanted = Counter(k for k in prompt.kinds if k != ANY)
                raise BenchError(f"prompt {prompt.id} needs {prompt.n_subjects} distinct subjects"
                                 + (f" ({dict(wanted)} by kind)" if wanted else "")
                                 + f"; the pool has {len(pool)} ({dict(Counter(s.kind for s in pool.values()))})")
            pick = min(eligible, key=lambda s: (usage[s], tiebreak[s]))
            chosen[slot] = pick
            usage[pick] += 1
        casting[prompt.id] = tuple(chosen[slot] for slot in range(prompt.n_subjects))
    return casting


@dataclass(frozen=True)
class Casting:
    pool_id: str
    assignment: dict[int, tuple[str, ...]]
    frozen: bool  # read from benchmark/castings/ (else computed by the procedure, not yet frozen)

    @property
    def digest(self) -> str:
        """A short hash of the assignment: recorded with every image, so results say which casting they used."""
        blob = json.dumps({str(k): list(v) for k, v in sorted(self.assignment.items())}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def casting_path(castings_dir: Path, identity: str) -> Path:
    return Path(castings_dir) / f"{identity}.yaml"


def write_casting(castings_dir: Path, prompts: Sequence[Prompt], pool: Mapping[str, Subject],
                  pool_dir: Path) -> Path:
    """Freeze the procedure's casting for `pool` (refuses to replace a different frozen one)."""
    identity = pool_id(pool)
    assignment = cast(prompts, pool)
    path = casting_path(castings_dir, identity)
    if path.is_file():
        existing = read_casting(path, identity)
        if existing != assignment:
            raise BenchError(f"{path}: a different casting is already frozen for this pool; it stays (results "
                             "refer to it). Delete it only if no results were made with it.")
        return path
    header = (f"# Casting of the subject pool {pool_dir} ({len(pool)} subjects) into benchmark/prompts.yaml.\n"
              f"# Written by `collapsebench suite cast` (procedure version {PROCEDURE_VERSION}, seed {CASTING_SEED});\n"
              "# frozen: results made on this pool refer to it. Prompt id -> subject ids in slot order.\n")
    body = {"pool_id": identity, "procedure_version": PROCEDURE_VERSION, "seed": CASTING_SEED,
            "pool_size": len(pool),
            "casting": {pid: list(subjects) for pid, subjects in sorted(assignment.items())}}
    atomic_write_text(path, header + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120))
    return path


def read_casting(path: Path, identity: str) -> dict[int, tuple[str, ...]]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BenchError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(document, dict) or document.get("pool_id") != identity:
        raise BenchError(f"{path}: pool_id {document.get('pool_id') if isinstance(document, dict) else None!r} "
                         f"does not match the pool's {identity!r}")
    entries = document.get("casting")
    if not isinstance(entries, dict):
        raise BenchError(f"{path}: expected a mapping under 'casting'")
    return {int(pid): tuple(str(s) for s in subjects) for pid, subjects in entries.items()}


def load_casting(castings_dir: Path, prompts: Sequence[Prompt], pool: Mapping[str, Subject]) -> Casting:
    """The frozen casting of this pool when there is one (checked), else the procedure's (not frozen yet)."""
    identity = pool_id(pool)
    path = casting_path(castings_dir, identity)
    if path.is_file():
        assignment = read_casting(path, identity)
        problems = casting_problems(prompts, pool, assignment)
        if problems:
            raise BenchError(f"{path}: " + "; ".join(problems))
        return Casting(identity, assignment, frozen=True)
    return Casting(identity, cast(prompts, pool), frozen=False)


def cast_prompts(prompts: Sequence[Prompt], casting: Casting) -> list[Prompt]:
    return [replace(prompt, subjects=casting.assignment[prompt.id]) for prompt in prompts]


def casting_problems(prompts: Sequence[Prompt], pool: Mapping[str, Subject],
                     assignment: Mapping[int, Sequence[str]]) -> list[str]:
    """Everything wrong with an assignment: missing or extra prompts, wrong counts, repeats, unknown ids, kinds."""
    problems = []
    by_id = {p.id: p for p in prompts}
    if set(assignment) != set(by_id):
        problems.append(f"prompts {sorted(set(by_id) - set(assignment))} are not cast and "
                        f"{sorted(set(assignment) - set(by_id))} are not in prompts.yaml")
    for pid, subjects in sorted(assignment.items()):
        prompt = by_id.get(pid)
        if prompt is None:
            continue
        if len(subjects) != prompt.n_subjects or len(set(subjects)) != len(subjects):
            problems.append(f"prompt {pid}: needs {prompt.n_subjects} distinct subjects, got {list(subjects)}")
            continue
        for slot, (subject_id, kind) in enumerate(zip(subjects, prompt.kinds), start=1):
            if subject_id not in pool:
                problems.append(f"prompt {pid} slot {slot}: {subject_id} is not in the pool")
            elif kind != ANY and pool[subject_id].kind != kind:
                problems.append(f"prompt {pid} slot {slot}: needs a {kind}, {subject_id} is a {pool[subject_id].kind}")
    return problems


def token_problems(prompts: Sequence[Prompt], pool: Mapping[str, Subject]) -> list[str]:
    """The 77-token rule, counted with the real CLIP BPE vocabulary: every template leaves MAX_PHRASE_TOKENS per
    slot, and every phrase of the pool fits in that; then every rendered prompt, with any such pool, fits."""
    from collapsebench.core.clip_tokens import CLIP_MAX_TOKENS, count_tokens

    problems = []
    for prompt in prompts:
        room = CLIP_MAX_TOKENS - count_tokens(prompt.skeleton())
        if room < prompt.n_subjects * MAX_PHRASE_TOKENS:
            problems.append(f"prompt {prompt.id}: leaves {room} CLIP tokens for {prompt.n_subjects} subjects, "
                            f"needs {prompt.n_subjects * MAX_PHRASE_TOKENS} ({MAX_PHRASE_TOKENS} each)")
    for subject in pool.values():
        tokens = count_tokens(subject.phrase) - 2  # without the start and end token
        if tokens > MAX_PHRASE_TOKENS:
            problems.append(f"subject {subject.id}: phrase {subject.phrase!r} has {tokens} CLIP tokens, at most "
                            f"{MAX_PHRASE_TOKENS} fit every prompt (a few words: 'a young woman', 'a tabby cat')")
    return problems


def usage_counts(assignment: Mapping[int, Sequence[str]]) -> Counter[str]:
    return Counter(s for subjects in assignment.values() for s in subjects)


@dataclass(frozen=True)
class SuiteInstance:
    """The benchmark as one pool sees it: cast prompts, the pool, and which casting filled them."""

    prompts: list[Prompt]
    pool: dict[str, Subject]
    casting: Casting

    @property
    def labels(self) -> dict[str, str]:
        """What every manifest line records about the instance: pool id and casting digest."""
        return {"pool": self.casting.pool_id, "casting": self.casting.digest}


def castings_dir(prompts_path: Path) -> Path:
    """Castings live beside prompts.yaml: benchmark/castings/."""
    return Path(prompts_path).parent / "castings"


def load_instance(prompts_path: Path, pool_dir: Path) -> SuiteInstance:
    """The suite of prompts.yaml cast from the pool in `pool_dir` (its frozen casting, or the procedure's)."""
    return cast_suite(prompts_path, load_pool(Path(pool_dir)))


def cast_suite(prompts_path: Path, pool: dict[str, Subject]) -> SuiteInstance:
    templates = load_prompts(Path(prompts_path))
    casting = load_casting(castings_dir(prompts_path), templates, pool)
    return SuiteInstance(cast_prompts(templates, casting), pool, casting)
