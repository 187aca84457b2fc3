"""What the header and footer say about the site itself: the paper, the repository, the build, how to cite.

A reader who lands on one page must be able to tell which paper this
reproduces, where the code is, when and from which commit the pages were
built, and how to cite both. The repository is params.yaml's
`site.repository` when set, else the one GitHub Actions is building
(GITHUB_SERVER_URL, GITHUB_REPOSITORY), else the package's Project-URL, else
git's `origin` remote in https form (credentials dropped); the commit comes
from GITHUB_SHA or `git`; the build time is SOURCE_DATE_EPOCH, else the commit's
time (the reproducible-builds convention). Whatever cannot be found is shown as not
recorded, never guessed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PAPER_TITLE = "When Identities Collapse: A Stress-Test Benchmark for Multi-Subject Personalization"
PAPER_ARXIV = "2603.26078"
PAPER_URL = f"https://arxiv.org/abs/{PAPER_ARXIV}"
PAPER_VENUE = "CVPR 2026"
REPOSITORY_LABELS = ("repository", "source", "code", "homepage")  # Project-URL labels, in order of preference
SCP_REMOTE = re.compile(r"^[A-Za-z0-9._-]+@([A-Za-z0-9.-]+):(.+)$")  # git@host:owner/name.git


@dataclass(frozen=True)
class BuildInfo:
    """The facts the footer prints; None where they could not be found."""

    version: str
    built: datetime
    commit: str | None = None
    dirty: bool = False
    repository: str | None = None

    @property
    def built_text(self) -> str:
        return self.built.strftime("%Y-%m-%d %H:%M UTC")

    @property
    def short_commit(self) -> str | None:
        return self.commit[:12] if self.commit else None

    @property
    def commit_url(self) -> str | None:
        return f"{self.repository}/commit/{self.commit}" if self.repository and self.commit else None

    def repository_file(self, path: str) -> str | None:
        """A link to `path` in the repository at the built commit (the default branch when no commit is known)."""
        if not self.repository:
            return None
        return f"{self.repository}/blob/{self.commit or 'HEAD'}/{path.lstrip('/')}"


def detect_build(cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 repository: str | None = None) -> BuildInfo:
    """The build facts of this process: `repository` (params.yaml's) when given, CI variables, then package metadata
    and `git` in `cwd`."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else Path(cwd)
    commit = env.get("GITHUB_SHA") or _git(cwd, "rev-parse", "HEAD")
    dirty = bool(commit) and not env.get("GITHUB_SHA") and bool(_git(cwd, "status", "--porcelain",
                                                                    "--untracked-files=no"))
    return BuildInfo(version=_version(), built=_build_time(env, cwd), commit=commit or None, dirty=dirty,
                     repository=(repository.rstrip("/") if repository else None) or _repository(env)
                     or https_remote(_git(cwd, "remote", "get-url", "origin")))


def _build_time(env: Mapping[str, str], cwd: Path) -> datetime:
    """SOURCE_DATE_EPOCH, else the time of the commit built (the reproducible-builds convention: the same commit
    builds the same bytes, so the site, a DVC output whose hash dvc.lock records, does not change with the clock),
    else, outside a git checkout, now."""
    epoch = env.get("SOURCE_DATE_EPOCH", "") or _git(cwd, "log", "-1", "--format=%ct")
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    return datetime.now(timezone.utc)


def _repository(env: Mapping[str, str]) -> str | None:
    """The repository's https URL: the one CI is building, else the package's Project-URL, else None."""
    if env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        return f"{env['GITHUB_SERVER_URL'].rstrip('/')}/{env['GITHUB_REPOSITORY']}"
    try:
        urls = metadata.metadata("collapsebench").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    labelled = {label.strip().lower(): url.strip() for label, _, url in (u.partition(",") for u in urls)}
    return next((labelled[label].rstrip("/") for label in REPOSITORY_LABELS
                 if labelled.get(label, "").startswith("https://")), None)


def https_remote(url: str) -> str | None:
    """A git remote as the https URL a browser opens (`git@host:o/r.git` -> `https://host/o/r`); user names and
    tokens are dropped, so a credential in a remote never reaches a page; None for anything else."""
    url = url.strip()
    scp = SCP_REMOTE.match(url)
    if scp:
        url = f"https://{scp.group(1)}/{scp.group(2)}"
    elif url.startswith("ssh://"):
        url = "https://" + url.removeprefix("ssh://")
    if not url.startswith("https://"):
        return None
    host, _, path = url.removeprefix("https://").partition("/")
    host = host.rpartition("@")[2].split(":")[0]
    path = path.strip("/").removesuffix(".git")
    return f"https://{host}/{path}" if host and path and " " not in path else None


def _git(cwd: Path, *args: str) -> str:
    """`git <args>` in `cwd`, stripped; '' when git is missing or `cwd` is not a checkout."""
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _version() -> str:
    try:
        return metadata.version("collapsebench")
    except metadata.PackageNotFoundError:
        return "unknown"


def paper_bibtex() -> str:
    """The paper's entry. The repository does not record the author list, so the entry has none (not a guess)."""
    return (f"@inproceedings{{identities_collapse_2026,\n"
            f"  title         = {{{PAPER_TITLE}}},\n"
            f"  booktitle     = {{Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern "
            f"Recognition ({PAPER_VENUE.split()[0]})}},\n"
            f"  year          = {{{PAPER_VENUE.split()[1]}}},\n"
            f"  eprint        = {{{PAPER_ARXIV}}},\n"
            f"  archivePrefix = {{arXiv}},\n"
            f"  url           = {{{PAPER_URL}}},\n"
            f"}}")


def benchmark_bibtex(build: BuildInfo) -> str:
    """This benchmark's entry, pinned to the version and commit the pages were built from."""
    where = f"\\url{{{build.repository}}}" if build.repository else "collapsebench (local build)"
    commit = f", commit {build.short_commit}" if build.commit else ""
    return (f"@misc{{collapsebench,\n"
            f"  title        = {{collapsebench: a reproducible leaderboard for identity collapse in multi-subject "
            f"personalization}},\n"
            f"  howpublished = {{{where}}},\n"
            f"  year         = {{{build.built.year}}},\n"
            f"  note         = {{Version {build.version}{commit}. Reproduces arXiv:{PAPER_ARXIV}}},\n"
            f"}}")
