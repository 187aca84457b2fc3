"""`collapsebench validate`: check model folders and results submissions, reporting every problem.

A model folder (`models/<name>/`) is checked against the versioned JSON
Schema and then against the repository: the adapter is registered, the
diffusers pipeline class exists, the Dockerfile is there. A folder with a
manifest or images is a results submission (see submission.py). `--changed
BASE` validates the folders a pull request touched, exactly as CI runs it.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import NAME, read_model_file
from collapsebench.core.errors import BenchError
from collapsebench.core.hub import COMMIT
from collapsebench.core.problems import Problem, shown
from collapsebench.intake.submission import Benchmark, check_submission

TOP_FOLDERS = ("models", "submissions")
FOLDER_READMES = {f"{top}/README.md" for top in TOP_FOLDERS}  # what the folder is for, not an entry
MODEL_FOLDER_FILES = ("model.yaml", "README.md", "preflight.yaml")  # preflight.yaml: the twin `preflight` builds


def check_model_folder(folder: Path) -> list[Problem]:
    """Every problem of `models/<name>/`; the repository root is the folder's grandparent."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return [Problem(shown(folder), None, "must be a real folder holding model.yaml (not a symlink or a file)")]
    problems = []
    if not NAME.match(folder.name):
        problems.append(Problem(shown(folder), None, "folder name: use lower-case letters, digits, '-' and '_' "
                                                     "(max 64)"))
    for entry in sorted(folder.iterdir()):
        info = entry.lstat()
        if stat.S_ISLNK(info.st_mode):
            problems.append(Problem(shown(entry), None, "symlinks are not allowed in a model folder"))
        elif entry.name not in MODEL_FOLDER_FILES or not stat.S_ISREG(info.st_mode):
            problems.append(Problem(shown(entry), None, "unexpected entry (a model folder holds model.yaml and "
                                                        "optionally README.md and preflight.yaml; Dockerfiles go in "
                                                        "docker/<name>/)"))
    path = folder / "model.yaml"
    if not path.is_file() or path.is_symlink():
        return [*problems, Problem(shown(path), None, "missing")]
    raw, found = read_model_file(path, folder.name)
    if raw is not None:  # every problem in one round: schema, repository, weights pins, the adapter itself
        found += _repository_problems(raw, folder.absolute().parent.parent)
        found += [problem for problem in _pin_problems(raw) if problem[0] not in {field for field, _ in found}]
        found += _adapter_problems(raw)
    return problems + [Problem(shown(path), where, message) for where, message in dict.fromkeys(found)]


def _repository_problems(raw: dict[str, Any], root: Path) -> list[tuple[str, str]]:
    """What the schema cannot know: is the adapter registered, the pipeline class real, the Dockerfile present."""
    if raw.get("runner") == "submitted":
        return []  # imported results: the images exist, nothing of ours runs
    if raw.get("runner") == "api":
        return _api_problems(raw)
    from collapsebench.models import REGISTRY

    problems = []
    adapter = raw.get("adapter")
    if isinstance(adapter, str) and adapter not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        problems.append(("adapter", (f"{adapter!r} is not a registered adapter (known: {known}); "
                                     "add one under src/collapsebench/models/ or use a diffusers pipeline")))

    pipeline = raw.get("pipeline")
    if adapter == "diffusers" and isinstance(pipeline, dict) and isinstance(pipeline.get("class"), str):
        import diffusers

        if pipeline["class"] not in dir(diffusers):  # the lazy module lists its names without importing them
            problems.append(("pipeline.class", (f"{pipeline['class']!r} is not a pipeline of the installed "
                                                f"diffusers {diffusers.__version__}")))
    docker = raw.get("docker")
    dockerfile = docker.get("dockerfile") if isinstance(docker, dict) else None
    if isinstance(dockerfile, str) and ".." not in dockerfile.split("/"):
        path = root / dockerfile
        if path.is_symlink() or not path.is_file():
            problems.append(("docker.dockerfile", f"{dockerfile} is not a file in the repository"))
    return problems


def _api_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """A closed API entry runs no code of the pull request: its settings must be ones its provider sends."""
    from collapsebench.models.api import PROVIDERS

    api, settings = raw.get("api"), raw.get("settings")
    provider = PROVIDERS.get(api.get("provider")) if isinstance(api, dict) else None
    if provider is None or not isinstance(settings, dict):
        return []  # the schema already said what is wrong
    return [("settings", problem) for problem in provider.settings_problems(settings)]


HUB_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def _weight_settings(raw: dict[str, Any]) -> list[tuple[str, Any]]:
    """(field, value) of every checkpoint the entry names: `pipeline` and each {repo, ...} setting."""
    settings = raw.get("settings") if isinstance(raw.get("settings"), dict) else {}
    named = [("pipeline", raw["pipeline"])] if isinstance(raw.get("pipeline"), dict) else []
    return named + [(f"settings.{key}", value) for key, value in settings.items()
                    if isinstance(value, dict) and "repo" in value]


def _pin_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Weights a pull request may name: a hub repository id (never a folder of the machine that runs it) at a
    revision that is null (the loaded commit is recorded per image) or a full 40-hex commit."""
    if raw.get("runner") == "submitted":
        return []
    problems = []
    for field, value in _weight_settings(raw):
        repo, revision = value.get("repo"), value.get("revision")
        if not isinstance(repo, str) or not HUB_REPO.match(repo) or os.path.isdir(repo):
            problems.append((f"{field}.repo", f"{repo!r} must be a hub repository id owner/name; local folders are "
                                              "not allowed in a submitted entry (preflight takes --weights DIR)"))
        if revision is not None and not (isinstance(revision, str) and COMMIT.match(revision)):
            problems.append((f"{field}.revision", f"{revision!r} must be null or a full 40-hex commit (a branch or "
                                                  "tag can move)"))
    return problems


def _adapter_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Build the entry's adapter without loading weights: its settings (and a diffusers entry's pipeline class
    and call mapping) are checked on CPU here, in the pull request, not hours later on the GPU runner. A
    diffusers entry's problems are listed all at once."""
    from collapsebench.models import REGISTRY, get_adapter

    adapter = raw.get("adapter")
    settings = raw.get("settings")
    if raw.get("runner") == "submitted" or adapter not in REGISTRY or not isinstance(settings, dict):
        return []
    extra = {key: raw[key] for key in ("pipeline", "call") if raw.get(key) is not None}
    if adapter == "diffusers":
        from collapsebench.models.diffusers_native import entry_problems

        messages = entry_problems({**settings, **extra})
    else:
        try:
            get_adapter(adapter, {**settings, **extra})
            messages = []
        except BenchError as error:
            messages = [str(error).removeprefix(f"adapter {adapter}: ")]
    return [(next((f for f in ("pipeline.class", "call", "pipeline") if m.startswith(f)), "settings"), m)
            for m in messages]


def is_submission(folder: Path) -> bool:
    """A results submission carries images; a model folder only describes how to make them."""
    return any(os.path.lexists(Path(folder) / name) for name in ("manifest.jsonl", "images"))


def changed_folders(base: str, root: Path = Path(".")) -> list[Path]:
    """The models/<name> and submissions/<name> folders touched between BASE and HEAD (merge-base diff)."""
    if not base or base.startswith("-"):
        raise BenchError(f"--changed expects a git revision, got {base!r}")
    result = subprocess.run(["git", "diff", "--name-only", "-z", "--no-renames", f"{base}...HEAD", "--"],
                            cwd=root, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise BenchError(f"git diff {base}...HEAD failed: {message}")
    paths = result.stdout.decode("utf-8", "surrogateescape").split("\0")
    folders = {tuple(p.split("/")[:2]) for p in paths
               if p.count("/") >= 1 and p.split("/")[0] in TOP_FOLDERS and p not in FOLDER_READMES}
    return [Path(root, *parts) for parts in sorted(folders)]


MAX_SHOWN_PER_FILE = 20  # a million-line manifest must not print a million lines


def print_capped(problems: Iterable[Problem]) -> None:
    """Print problems in order, at most MAX_SHOWN_PER_FILE per file, then how many more that file has."""
    shown_per_file: dict[str, int] = {}
    hidden: dict[str, int] = {}
    for problem in problems:
        if shown_per_file.get(problem.file, 0) < MAX_SHOWN_PER_FILE:
            shown_per_file[problem.file] = shown_per_file.get(problem.file, 0) + 1
            print(problem)
        else:
            hidden[problem.file] = hidden.get(problem.file, 0) + 1
    for file, count in hidden.items():
        print(f"{file}: ... and {count} more problem{'s' * (count != 1)} not shown")


def all_folders(root: Path = Path(".")) -> list[Path]:
    tops = [Path(root) / top for top in TOP_FOLDERS if (Path(root) / top).is_dir()]
    return [entry for top in tops for entry in sorted(top.iterdir()) if entry.is_dir()]  # not submissions/README.md


def run_validate(folders: Iterable[Path], params: dict[str, Any], named: Iterable[Path] = ()) -> int:
    """Print the problems of every folder (or one OK line per folder); 1 if any problem, else 0.

    A folder named on the command line (`named`) must exist; one that a diff lists may have been removed.
    """
    benchmark = None
    failed = checked = 0
    named = set(named)
    for folder in folders:
        if not os.path.lexists(folder):
            if folder in named:
                print(f"{shown(folder)}: not found")
                failed += 1
            else:
                print(f"skipped {shown(folder)}: removed")
            continue
        checked += 1
        if is_submission(folder):
            if benchmark is None:
                from collapsebench.benchmark.casting import load_instance

                instance = load_instance(Path(params["suite"]["prompts"]), Path(params["suite"]["pool"]))
                benchmark = Benchmark.from_instance(instance, params)
            kind, problems = "results submission", check_submission(folder, benchmark)
        else:
            kind, problems = "model folder", check_model_folder(folder)
        print_capped(problems)
        if problems:
            failed += 1
            print(f"FAILED {shown(folder)} ({kind}): {len(problems)} problem{'s' * (len(problems) != 1)}")
        else:
            print(f"OK {shown(folder)} ({kind})")
    if not checked:
        print("validate: no model or submission folder to check")
    return 1 if failed else 0
