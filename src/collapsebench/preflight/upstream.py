"""Which upstream commit a preflight ran: the checkout's git HEAD, else the commit the entry's image pins."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import ModelConfig

ARG_COMMIT = re.compile(r"^ARG\s+UPSTREAM_COMMIT=([0-9a-f]{40})\s*$", re.MULTILINE)


def upstream_pin(config: ModelConfig, code_dir: Path) -> dict[str, Any]:
    """{commit, source}: the image's record of its pin (the image deletes .git), a git checkout's HEAD, or the
    pin of the entry's Dockerfile (then the checkout itself is not proven to be at it, and the source says so)."""
    if os.environ.get("COLLAPSEBENCH_UPSTREAM_COMMIT"):
        return {"commit": os.environ["COLLAPSEBENCH_UPSTREAM_COMMIT"], "source": "the model image (UPSTREAM_COMMIT)"}
    try:
        result = subprocess.run(["git", "-C", str(code_dir), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=False)
    except OSError:  # no git here
        result = None
    if result is not None and result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", result.stdout.strip()):
        return {"commit": result.stdout.strip(), "source": f"git checkout {code_dir}"}
    docker = config.raw.get("docker") or {}
    pinned = (docker.get("build_args") or {}).get("UPSTREAM_COMMIT")
    if pinned:
        return {"commit": pinned, "source": "model.yaml docker.build_args"}
    dockerfile = docker.get("dockerfile")
    text = Path(dockerfile).read_text(encoding="utf-8") if dockerfile and Path(dockerfile).is_file() else ""
    found = ARG_COMMIT.search(text)
    if found is None:
        return {"commit": None, "source": "unknown (no git checkout, no pin found)"}
    return {"commit": found.group(1), "source": f"{dockerfile} ARG UPSTREAM_COMMIT ({code_dir} is no git checkout)"}
