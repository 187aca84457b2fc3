"""`collapsebench preflight MODEL --runner docker`: the same preflight inside the model's image.

This is the GPU workflow's first step for a model: its pinned image (built exactly as `generate` builds it) runs
`collapsebench preflight MODEL --runner local` with the network off, no GPU and no model cache mounted, so a
broken adapter or an upstream API the pins lack fails before any weight is loaded. Only results/preflight is
writable; the host reads the result back as an untrusted file (regular file only) to print the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from collapsebench.benchmark.model_config import load_model_config
from collapsebench.core.containers import (
    WORKDIR,
    ContainerSpec,
    Mount,
    build_root,
    choose_engine,
    input_mounts,
    run_stage,
    stage_command,
)
from collapsebench.core.errors import BenchError
from collapsebench.core.untrusted import read_file, real_dir
from collapsebench.generation.runners.docker import DockerRun, image_source
from collapsebench.preflight.record import table_from_json


def preflight_in_docker(args: argparse.Namespace, params: dict[str, Any]) -> int:
    config = load_model_config(args.models_dir, args.model)
    if args.code_dir or args.weights:
        raise BenchError("--code-dir and --weights are for --runner local: the image has its own upstream code, "
                          "and preflight in the image never sees weights")
    run = DockerRun(config=config, repo_root=build_root(), params_path=args.params, params=params,
                    models_dir=args.models_dir, results_dir=args.results, base_image=args.base_image,
                    engine=choose_engine(args.engine, params, args.params))
    results = real_dir(args.results.absolute(), args.results.absolute().parent, create=True)
    out = real_dir(results / "preflight", results, create=True)
    mounts = [*input_mounts(args.params, params, args.models_dir), Mount(out, f"{WORKDIR}/results/preflight", False)]
    spec = ContainerSpec(name=f"collapsebench-preflight-{config.name}", purpose=f"preflight of {config.name}",
                         command=stage_command("preflight", config.name, "--runner", "local"), mounts=mounts,
                         kept="the preflight result, if it was written")
    code = run_stage(image_source(run), spec, sys.stderr, engine=run.engine)
    try:
        result = json.loads(read_file(out, f"{config.name}.json"))
    except Exception as error:
        print(f"preflight {config.name}: the container wrote no readable result ({error})", file=sys.stderr)
        return code or 1
    if args.summary is not None:
        with open(args.summary, "a", encoding="utf-8") as handle:
            handle.write(table_from_json(result, markdown=True) + "\n")
    return code

