"""Results submissions: authors who ran the benchmark themselves send images and a manifest.

A submission is `submissions/<name>/` with `model.yaml` (runner: submitted),
`manifest.jsonl` (one line per job) and `images/*.png`, optionally a
README.md. It arrives in an untrusted pull request, so everything is checked
as hostile input: every job exactly once, PNG bytes only (within size and
dimension limits, fully decodable), sha256 as declared, no path that could
leave the folder, no symlinks or special files, no unknown prompt or subject.

Submitted scores are never used: a `scores.csv` (or any other file outside
the layout) is rejected rather than ignored, so that nobody reading the pull
request can mistake numbers in it for what the leaderboard shows. We always
score the images ourselves after `collapsebench submission import`, which
copies an accepted submission into `results/models/<name>/` in one rename
and records `runner: submitted` in every manifest line plus a
`provenance.json` that the site uses to label the row "results submitted by
the authors, scored here".

A closed API row (model.yaml with an `api` block) may also carry `refusals.jsonl`, the file `generate` writes
(core/refusals.py): a job the model refused (over its reference limit, content policy, no image) is answered by
a line there instead of an image. Only final refusals are accepted (a job whose last attempt was an `error` is
not done: run `generate` again first), each job once, never both imaged and refused, and `over_reference_limit`
only for a job that really needs more references than the entry's `reference_limit`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collapsebench.benchmark.casting import SuiteInstance
from collapsebench.benchmark.model_config import (
    NAME,
    ModelConfig,
    load_model_config,
    read_model_file,
)
from collapsebench.benchmark.pool import Subject
from collapsebench.benchmark.suite import Job, Prompt, job_inputs
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_json, make_temp_folder, sha256_bytes
from collapsebench.core.manifest import (
    PROVENANCE,
    SUBMITTED_LABEL,
    Manifest,
    image_name,
    job_key,
)
from collapsebench.core.problems import Problem, shown
from collapsebench.core.refusals import FINAL_REASONS, REFUSALS, Refusals
from collapsebench.core.pngcheck import MAX_BYTES, png_problems, strip_ancillary

LAYOUT = {  # required entry -> what to say when it is missing
    "model.yaml": "missing: the model description (schema v1, runner: submitted)",
    "manifest.jsonl": "missing: one JSON line per job (prompt_id, seed, subjects, image, sha256)",
    "images": "missing: the folder of PNG images the manifest names",
}
OPTIONAL = ("README.md", REFUSALS)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# ASCII only, one level under images/: no look-alike letters, no right-to-left overrides, no sub-folders.
IMAGE_PATH = re.compile(r"^images/[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.png$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Authors' own claims about their run, kept (as claims) in the imported manifest when well-typed.
CLAIMS: dict[str, tuple[type, ...]] = {
    "sent_prompt": (str,), "model_revision": (str,), "device": (str,), "container_digest": (str,),
    "created_utc": (str,), "wall_s": (int, float),
}
MAX_CLAIM_CHARS = 2000


@dataclass(frozen=True)
class Benchmark:
    """What a submission must cover: the frozen prompts and the seeds of params.yaml."""

    prompts: dict[int, Prompt]
    seeds: tuple[int, ...]

    labels: Mapping[str, str] = field(default_factory=dict)  # pool id and casting of the instance

    @classmethod
    def from_instance(cls, instance: SuiteInstance, params: dict[str, Any]) -> Benchmark:
        """The prompts as cast for params.yaml's pool: a line's subjects must be exactly those."""
        return cls({p.id: p for p in instance.prompts}, tuple(int(s) for s in params["suite"]["seeds"]),
                   instance.labels)

    @property
    def subject_ids(self) -> frozenset[str]:
        return frozenset(s for p in self.prompts.values() for s in p.subjects)

    def job_keys(self) -> list[str]:
        return [job_key(prompt_id, seed) for prompt_id in sorted(self.prompts) for seed in self.seeds]


@dataclass
class Line:
    """One manifest line that passed its own checks (its image is checked separately)."""

    number: int
    key: str
    prompt: Prompt
    seed: int
    image: str
    sha256: str
    record: dict[str, Any]


@dataclass
class Inspection:
    problems: list[Problem] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # image path -> decoded (width, height)
    manifest_sha256: str | None = None
    refusals: dict[str, dict[str, Any]] = field(default_factory=dict)  # job key -> its accepted refusal line


def check_submission(folder: Path, benchmark: Benchmark) -> list[Problem]:
    """Every problem of a results submission folder; [] means it can be imported."""
    return inspect_submission(folder, benchmark).problems


def inspect_submission(folder: Path, benchmark: Benchmark) -> Inspection:
    folder = Path(folder)
    found = Inspection()
    name = shown(folder)
    if folder.is_symlink() or not folder.is_dir():
        found.problems.append(Problem(name, None, "must be a real folder (not a symlink or a file)"))
        return found
    if not NAME.match(folder.name):
        found.problems.append(Problem(name, None, "folder name: use lower-case letters, digits, '-' and '_' (max 64)"))
    files = _scan(folder, found.problems)
    _check_model_file(folder, found.problems)
    if REFUSALS in files:
        found.refusals = _check_refusals(folder, files[REFUSALS], benchmark, found.problems)
    if "manifest.jsonl" in files:
        found.lines = _check_manifest(folder / "manifest.jsonl", files["manifest.jsonl"], benchmark, found)
    _check_images(folder, files, found)
    return found


def _scan(folder: Path, problems: list[Problem]) -> dict[str, os.stat_result]:
    """Regular files by relative path; symlinks, special files, hard links and stray entries are problems."""
    files: dict[str, os.stat_result] = {}
    for entry, message in LAYOUT.items():
        if not os.path.lexists(folder / entry):
            problems.append(Problem(shown(folder / entry), None, message))
    for root, dirs, names in os.walk(folder, followlinks=False):
        for item in sorted(dirs) + sorted(names):
            path = Path(root) / item
            relative = path.relative_to(folder).as_posix()
            info = path.lstat()
            where = shown(path)
            if stat.S_ISLNK(info.st_mode):
                problems.append(Problem(where, None, "symlinks are not allowed anywhere in a submission"))
            elif stat.S_ISDIR(info.st_mode):
                if relative != "images":
                    problems.append(Problem(where, None, "unexpected folder (only images/, with no sub-folders)"))
            elif not stat.S_ISREG(info.st_mode):
                problems.append(Problem(where, None, "not a regular file (device, pipe or socket)"))
            elif info.st_nlink > 1:
                problems.append(Problem(where, None, "hard link to another file; submit plain copies"))
            elif _is_scores(relative):
                problems.append(Problem(where, None, "submitted scores are rejected, not used: we score every image "
                                                     "ourselves; remove this file"))
            elif relative in LAYOUT or relative in OPTIONAL or relative.startswith("images/"):
                files[relative] = info
            else:
                problems.append(Problem(where, None, "unexpected file (a submission holds model.yaml, "
                                                     "manifest.jsonl, images/ and optionally README.md)"))
    return files


def _is_scores(relative: str) -> bool:
    """Tables and JSON files (scores.csv, scoring.json, metrics.json, ...): the layout has none but the manifest."""
    return relative.lower().endswith((".csv", ".tsv", ".json"))


def _check_model_file(folder: Path, problems: list[Problem]) -> None:
    path = folder / "model.yaml"
    if not path.is_file() or path.is_symlink():
        return  # reported by _scan
    raw, found = read_model_file(path, folder.name)
    problems.extend(Problem(shown(path), where, message) for where, message in found)
    if raw is not None and raw.get("runner") not in (None, "submitted"):
        problems.append(Problem(shown(path), "runner", f"a results submission must say 'submitted' (we never run "
                                                       f"its code), got {raw['runner']!r}"))


def _check_manifest(path: Path, info: os.stat_result, benchmark: Benchmark, found: Inspection) -> list[Line]:
    where = shown(path)
    if info.st_size > MAX_MANIFEST_BYTES:
        found.problems.append(Problem(where, None, f"{info.st_size} bytes; at most {MAX_MANIFEST_BYTES}"))
        return []
    data = _read_regular(path)
    found.manifest_sha256 = sha256_bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        found.problems.append(Problem(where, None, f"not UTF-8 text ({error})"))
        return []
    lines: list[Line] = []
    first_line: dict[str, int] = {}
    first_image: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):  # JSON Lines: only \n ends a line
        if not raw.strip():
            continue
        key, line = _check_line(where, number, raw, benchmark, found.problems)
        if key is None:
            continue
        if key in first_line:
            found.problems.append(Problem(where, f"line {number}", f"job {key} already on line {first_line[key]}"))
            continue
        first_line[key] = number  # even when the line is broken: the job is there, just wrong
        if line is None:
            continue
        if line.image in first_image:
            found.problems.append(Problem(where, f"line {number}: image", f"{line.image} is already used by line "
                                                                          f"{first_image[line.image]}"))
            continue
        first_image[line.image] = number
        lines.append(line)
    for key in benchmark.job_keys():
        if key in first_line and key in found.refusals:
            found.problems.append(Problem(where, f"line {first_line[key]}", f"job {key} is also in {REFUSALS}: a "
                                                                            "job has an image or a refusal, not both"))
        elif key not in first_line and key not in found.refusals:
            found.problems.append(Problem(where, None, f"job {key} is missing (every prompt x seed exactly once, "
                                                       f"as an image or, for a closed API row, in {REFUSALS})"))
    return lines


def _check_refusals(folder: Path, info: os.stat_result, benchmark: Benchmark,
                    problems: list[Problem]) -> dict[str, dict[str, Any]]:
    """The accepted lines of a closed API row's refusals.jsonl, by job key; every problem appended."""
    path = folder / REFUSALS
    where = shown(path)
    raw, _ = read_model_file(folder / "model.yaml", folder.name) if (folder / "model.yaml").is_file() else (None, [])
    if not isinstance(raw, dict) or not isinstance(raw.get("api"), dict):
        problems.append(Problem(where, None, "only a closed API row (model.yaml with an `api` block) may have "
                                             "refused jobs; every other model submits an image for every job"))
        return {}
    if info.st_size > MAX_MANIFEST_BYTES:
        problems.append(Problem(where, None, f"{info.st_size} bytes; at most {MAX_MANIFEST_BYTES}"))
        return {}
    limit = raw.get("reference_limit")
    accepted: dict[str, dict[str, Any]] = {}
    for number, text in enumerate(_read_regular(path).decode("utf-8", "replace").split("\n"), start=1):
        if not text.strip():
            continue
        at = f"line {number}"
        try:
            line = json.loads(text)
        except json.JSONDecodeError as error:
            problems.append(Problem(where, at, f"not valid JSON ({error.msg})"))
            continue
        prompt = benchmark.prompts.get(line.get("prompt_id")) if isinstance(line, dict) else None
        seed = line.get("seed") if isinstance(line, dict) else None
        if prompt is None or not _is_int(seed) or seed not in benchmark.seeds:
            problems.append(Problem(where, at, "prompt_id and seed must name a benchmark job"))
            continue
        key = job_key(prompt.id, seed)
        reason = line.get("reason")
        if reason not in FINAL_REASONS:
            problems.append(Problem(where, f"{at}: reason", f"{reason!r}: job {key} is not answered (only "
                                                            f"{', '.join(FINAL_REASONS)}); run generate again first"))
        elif reason == "over_reference_limit" and not (_is_int(limit) and prompt.n_subjects > limit):
            problems.append(Problem(where, f"{at}: reason", f"job {key} has {prompt.n_subjects} references, within "
                                                            f"the entry's reference_limit {limit}: not over it"))
        elif key in accepted:
            problems.append(Problem(where, at, f"job {key} is refused twice"))
        else:
            accepted[key] = {"key": key, "prompt_id": prompt.id, "seed": seed, "n_subjects": prompt.n_subjects,
                             "scene": prompt.scene, "subjects": list(prompt.subjects), "reason": reason,
                             "detail": str(line.get("detail", ""))[:MAX_CLAIM_CHARS],
                             "provider": raw["api"].get("provider"), "api_model": raw["api"].get("model"),
                             "request_date": str(line.get("request_date", ""))[:40], "source": "submitted"}
    return accepted


def _check_line(where: str, number: int, raw: str, benchmark: Benchmark,
                problems: list[Problem]) -> tuple[str | None, Line | None]:
    """Check one manifest line: its job key if it names a benchmark job, and a Line if nothing is wrong with it."""
    at = f"line {number}"
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as error:
        problems.append(Problem(where, at, f"not valid JSON ({error.msg})"))
        return None, None
    if not isinstance(record, dict):
        problems.append(Problem(where, at, "expected a JSON object"))
        return None, None
    before = len(problems)

    def bad(name: str, message: str) -> None:
        problems.append(Problem(where, f"{at}: {name}", message))

    prompt_id, seed = record.get("prompt_id"), record.get("seed")
    prompt = None
    if not _is_int(prompt_id):
        bad("prompt_id", f"must be an integer, got {prompt_id!r}")
    elif prompt_id not in benchmark.prompts:
        bad("prompt_id", f"unknown prompt id {prompt_id} (the benchmark has 1..{max(benchmark.prompts)})")
    else:
        prompt = benchmark.prompts[prompt_id]
    if not _is_int(seed):
        bad("seed", f"must be an integer, got {seed!r}")
    elif seed not in benchmark.seeds:
        bad("seed", f"{seed} is not a benchmark seed {list(benchmark.seeds)}")
    subjects = record.get("subjects")
    if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
        bad("subjects", "must be a list of subject IDs")
    else:
        unknown = [s for s in subjects if s not in benchmark.subject_ids]
        if unknown:
            bad("subjects", f"unknown subject IDs {[shown(s) for s in unknown]}")
        elif prompt is not None and tuple(subjects) != prompt.subjects:
            bad("subjects", f"{subjects} differ from prompt {prompt.id}'s subjects {list(prompt.subjects)} "
                            "(same order)")
    image = record.get("image")
    image_problem = image_path_problem(image)
    if image_problem:
        bad("image", image_problem)
    digest = record.get("sha256")
    if not isinstance(digest, str) or not SHA256.match(digest):
        bad("sha256", "must be 64 lower-case hex digits")
    for name, types in CLAIMS.items():
        value = record.get(name)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)
                                  or (isinstance(value, str) and len(value) > MAX_CLAIM_CHARS)
                                  or (isinstance(value, float) and not math.isfinite(value))):
            bad(name, f"must be {' or '.join(t.__name__ for t in types)} (finite; at most {MAX_CLAIM_CHARS} "
                      "characters)")
    for name in ("width", "height"):
        if name in record and not _is_int(record[name]):
            bad(name, f"must be an integer, got {record[name]!r}")
    if prompt is None or not _is_int(seed) or seed not in benchmark.seeds:
        return None, None
    key = job_key(prompt.id, seed)
    for name, expected in (("key", key), ("n_subjects", prompt.n_subjects), ("scene", prompt.scene)):
        if name in record and record[name] != expected:
            bad(name, f"{record[name]!r} does not match prompt {prompt.id} (expected {expected!r})")
    return key, (None if len(problems) > before else Line(number, key, prompt, seed, str(image), str(digest), record))


def image_path_problem(image: object) -> str | None:
    """Why a manifest's image path is unsafe or outside the layout; None if it is `images/<name>.png`."""
    if not isinstance(image, str) or not image:
        return "must be a path like images/p01_s0.png"
    if "\x00" in image:
        return f"{image!a} contains a null byte"
    if image.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", image):
        return f"{image!a} is absolute; paths are relative to the submission folder"
    if "\\" in image:
        return f"{image!a} uses backslashes; use images/<name>.png"
    if ".." in image.split("/"):
        return f"{image!a} has a '..' component: it would leave the submission folder"
    if not image.isascii() or not image.isprintable():
        return f"{image!a} has non-ASCII or control characters (look-alike letters are not allowed)"
    if not IMAGE_PATH.match(image):
        return f"{image!a} must look like images/<name>.png (letters, digits, '.', '_', '-'; no sub-folders)"
    return None


def _check_images(folder: Path, files: dict[str, os.stat_result], found: Inspection) -> None:
    listed = {line.image: line for line in found.lines}
    for relative in sorted(files):
        if relative.startswith("images/") and relative not in listed:
            found.problems.append(Problem(shown(folder / relative), None, "not listed in manifest.jsonl"))
    for relative, line in listed.items():
        path, where = folder / relative, shown(folder / relative)
        info = files.get(relative)
        if info is None:
            if not os.path.lexists(path):
                found.problems.append(Problem(where, None, f"missing (manifest line {line.number})"))
            continue  # otherwise a symlink or special file, already reported
        if info.st_size > MAX_BYTES:
            found.problems.append(Problem(where, None, f"{info.st_size} bytes; at most {MAX_BYTES} per image"))
            continue
        data = _read_regular(path)
        actual = sha256_bytes(data)
        if actual != line.sha256:
            found.problems.append(Problem(where, "sha256", f"manifest line {line.number} says {line.sha256}, the "
                                                           f"file has {actual}"))
        problems, size = png_problems(data)
        found.problems.extend(Problem(where, None, message) for message in problems)
        if size is None:
            continue
        found.sizes[relative] = size
        for name, value in zip(("width", "height"), size, strict=True):
            declared = line.record.get(name)
            if declared is not None and declared != value:
                found.problems.append(Problem(where, name, f"manifest line {line.number} says {declared}, the "
                                                           f"image is {value}"))


def _read_regular(path: Path) -> bytes:
    """Read a file without following a symlink swapped in after the scan (O_NOFOLLOW)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def import_submission(folder: Path, benchmark: Benchmark, pool: dict[str, Subject], results_dir: Path,
                      models_dir: Path) -> Path:
    """Validate again, then copy into results/models/<name>/ (+ models/<name>/model.yaml) in one rename each.

    Nothing under results/ or models/ changes unless every check passes: the
    copy is assembled in a hidden temp folder next to the target and renamed
    into place. The bytes written are the bytes whose sha256 was checked.
    """
    folder = Path(folder)
    found = inspect_submission(folder, benchmark)
    if found.problems:
        raise BenchError(f"{shown(folder)}: submission rejected, nothing imported:\n"
                         + "\n".join(f"  {problem}" for problem in found.problems))
    name = folder.name
    target, model_target = Path(results_dir) / "models" / name, Path(models_dir) / name
    for existing in (target, model_target):
        if os.path.lexists(existing):
            raise BenchError(f"{existing}: already exists; a submission only adds a new model (remove it first to "
                             "re-import)")
    config = load_model_config(folder.parent, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    model_target.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_folder(target.parent, f".{name}.import-")
    model_staging = make_temp_folder(model_target.parent, f".{name}.import-")
    try:
        lines = []
        (staging / "images").mkdir()
        for line in sorted(found.lines, key=lambda item: (item.prompt.id, item.seed)):
            data = _read_regular(folder / line.image)
            if sha256_bytes(data) != line.sha256:
                raise BenchError(f"{shown(folder / line.image)}: changed while importing; run the import again")
            data = strip_ancillary(data)
            (staging / image_name(line.key)).write_bytes(data)
            lines.append(_imported_record(line, config, pool, found.sizes[line.image], benchmark.labels,
                                          sha256_bytes(data)))
        Manifest(staging).write(lines)
        Refusals(staging).write(found.refusals.values())
        atomic_write_json(staging / PROVENANCE, {
            "source": "submitted", "label": SUBMITTED_LABEL, "submission": name, "n_images": len(lines),
            "manifest_sha256": found.manifest_sha256,
            "imported_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        })
        shutil.copyfile(folder / "model.yaml", model_staging / "model.yaml")
        os.rename(model_staging, model_target)
        try:
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(model_target)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(model_staging, ignore_errors=True)
    return target


def _imported_record(line: Line, config: ModelConfig, pool: dict[str, Subject], size: tuple[int, int],
                     labels: Mapping[str, str], digest: str) -> dict[str, Any]:
    """A manifest line in generate's format, so `generate` sees the job as done and `score` reads it as usual.

    The prompt text scored by CLIP-T is ours, never the submitted one; the
    authors' claims about their run are kept as they stated them.
    """
    prompt = line.prompt
    return {
        **{name: line.record.get(name) for name in CLAIMS},
        "key": line.key, "prompt_id": prompt.id, "seed": line.seed, "subjects": list(prompt.subjects),
        "n_subjects": prompt.n_subjects, "scene": prompt.scene, "prompt": prompt.natural(pool),
        "image": image_name(line.key), "sha256": digest, "submitted_sha256": line.sha256, "width": size[0], "height": size[1],
        "params": config.settings, "model": config.name, "adapter": config.adapter,
        "fingerprint": config.fingerprint(), "inputs": job_inputs([Job(prompt, line.seed)], pool)[line.key],
        "runner": "submitted", "source": "submitted", **labels,
    }
