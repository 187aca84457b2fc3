"""`collapsebench report --runner docker`: the same command, `--runner local`, inside the scoring image.

The bootstrap intervals, ranks and figures depend on numpy, scipy and
matplotlib; run in the scoring image (docker/eval), Table 1 comes
from the same pinned versions as the scores it aggregates. The container
reads params.yaml, models/, the prompts and the subject pool (read-only) and
writes into results/, the only writable folder; it needs no GPU and no model
cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from collapsebench.core.containers import (
    WORKDIR,
    ContainerSpec,
    Mount,
    input_mounts,
    run_stage,
    scoring_image,
    stage_command,
)

CONTAINER_NAME = "collapsebench-report"


def report_in_docker(args: argparse.Namespace, params: dict[str, Any], stream: TextIO = sys.stderr) -> int:
    """Run `report` for the CLI's arguments in the scoring image; the container's exit status."""
    spec = container_spec(args.params, params, args.models_dir, args.results)
    return run_stage(scoring_image(args.image_dockerfile, args.base_image), spec, stream)


def container_spec(params_path: Path, params: dict[str, Any], models_dir: Path, results_dir: Path) -> ContainerSpec:
    mounts = input_mounts(params_path, params, models_dir) + [Mount(results_dir.resolve(), f"{WORKDIR}/results",
                                                                    read_only=False)]
    return ContainerSpec(name=CONTAINER_NAME, command=stage_command("report", "--runner", "local"), mounts=mounts,
                         purpose="the report", labels={"collapsebench.stage": "report"})
