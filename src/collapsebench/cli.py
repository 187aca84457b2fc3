"""The `collapsebench` command: one subcommand per pipeline stage (dvc.yaml calls them)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from collapsebench.core.errors import BenchError


def load_params(path: Path) -> dict[str, Any]:
    try:
        params = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BenchError(f"{path}: params file not found (run from the repository root or pass --params)") from error
    if not isinstance(params, dict):
        raise BenchError(f"{path}: expected a mapping")
    return params


def _quiet_libraries() -> None:
    """Keep stage logs readable: our progress bars, not per-shard weight-loading bars."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _suite(params: dict[str, Any]):
    """The benchmark as params.yaml's pool sees it: cast prompts, pool, casting."""
    from collapsebench.benchmark.casting import load_instance

    return load_instance(Path(params["suite"]["prompts"]), Path(params["suite"]["pool"]))


def _selected(args: argparse.Namespace, params: dict[str, Any], stage: str) -> list[Any]:
    """The models a stage runs without a MODEL argument: --models, else params.yaml's `models` selection."""
    from collapsebench.benchmark.registry import DEFAULT_SELECTION, select

    if args.shard:
        raise BenchError(f"{stage} --shard needs a MODEL")
    if args.models is not None:
        return select(args.models, args.models_dir, "--models")
    return select(params.get("models", DEFAULT_SELECTION), args.models_dir, f"{args.params}: models")


def _run_selected(args: argparse.Namespace, params: dict[str, Any], stage: str,
                  run_one: Callable[[argparse.Namespace, dict[str, Any]], int], configs: list[Any],
                  recorded: tuple[str, str]) -> int:
    """`run_one` for each selected model in turn (stopping at the first failure), then the stage's record."""
    from collapsebench.benchmark.registry import describe

    print(f"{stage}: {describe(configs)} (other models keep their committed results or show as pending)",
          file=sys.stderr)
    for config in configs:
        code = run_one(argparse.Namespace(**{**vars(args), "model": config.name}), params)
        if code:
            return code
    _record_stage(args, [c.name for c in configs], *recorded)
    return 0


def _record_stage(args: argparse.Namespace, names: list[str], file_name: str, record: str) -> None:
    """results/<record>: the sha256 of each run model's <file_name>, the stage's one DVC output.

    The per-model folders are not DVC outputs (which models run here is a parameter, benchmark/registry.py), so
    this small file is what tells DVC that the next stage has new input: it changes exactly when a run model's
    manifest (which holds every image's sha256) or scores changed.
    """
    from collapsebench.core.io import atomic_write_json, sha256_file

    paths = {name: args.results / "models" / name / file_name for name in names}
    digests = {name: sha256_file(path) if path.is_file() else None for name, path in paths.items()}
    atomic_write_json(args.results / record, {"file": file_name, "models": digests})


def cmd_generate(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.benchmark.registry import generates_here

    if args.model:
        return generate_one(args, params)
    if args.dry_run:  # a dry run writes nothing, not even the stage's record
        raise BenchError("generate --dry-run needs a MODEL (a closed API entry)")
    configs = [c for c in _selected(args, params, "generate") if generates_here(c)]
    return _run_selected(args, params, "generate", generate_one, configs, ("manifest.jsonl", "generated.json"))


def generate_one(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.benchmark.model_config import load_model_config
    from collapsebench.benchmark.registry import generates_here
    from collapsebench.benchmark.suite import make_jobs, select_shard
    from collapsebench.generation.launch import scale_out, scaled_out
    from collapsebench.generation.shards import shard_dir

    instance = _suite(params)
    config = load_model_config(args.models_dir, args.model)
    if not generates_here(config):
        why = ("results submitted as images" if config.runner == "submitted" else
               "reported-only: its row is the paper's printed numbers. "
               + " ".join(str(config.raw.get("description", "")).split()))
        raise BenchError(f"{args.models_dir / args.model / 'model.yaml'}: {args.model} is not generated here ({why})")
    all_jobs = make_jobs(instance.prompts, list(params["suite"]["seeds"]))
    if config.runner == "api" or args.dry_run:
        from collapsebench.generation.runners.api import generate_api

        return generate_api(args, params, config, all_jobs, instance)
    if scaled_out(args):
        return scale_out(args, params, config, all_jobs, instance.pool)
    jobs = select_shard(all_jobs, args.shard)
    if (args.runner or config.runner) == "docker":
        from collapsebench.generation.runners.docker import (
            docker_run,
            jobs_left,
            run_in_docker,
        )

        run = docker_run(args, params, config)
        left = jobs_left(run, jobs, instance.pool)
        if not left:  # a container gets a writable mount of the folder: never start one for nothing
            print(f"generate {config.name}: 0 made, {len(jobs)} already done (no container started)")
            return 0
        return run_in_docker(run)
    from collapsebench.generation.runners.local import run_local

    return run_local(config, jobs, instance.pool, shard_dir(args.results / "models" / args.model, args.shard),
                     instance.labels)


def cmd_merge(args: argparse.Namespace, params: dict[str, Any] | None) -> int:
    from collapsebench.generation.shards import merge_shards

    report = merge_shards(args.results / "models" / args.model)
    print(f"merge {args.model}: {report.shards} shards, {report.images} images ({report.copied} copied), "
          f"scores {'merged' if report.scores else 'not merged (score the merged folder)'}")
    return 0


def cmd_score(args: argparse.Namespace, params: dict[str, Any]) -> int:
    if args.model:
        return score_one(args, params)
    configs = _selected(args, params, "score")
    return _run_selected(args, params, "score", score_one, configs, ("scores.csv", "scored.json"))


def score_one(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.core.containers import choose_runner

    if choose_runner(args.runner, params, "scoring", args.params) == "docker":
        from collapsebench.scoring.container import score_in_docker

        if args.detector:
            raise BenchError("score --detector is not passed into the scoring container yet; use --runner local")
        return score_in_docker(args, params)

    from collapsebench.benchmark.pool import load_pool
    from collapsebench.generation.shards import shard_dir
    from collapsebench.scoring.config import ScoringConfig
    from collapsebench.scoring.score import run_score

    _quiet_libraries()
    pool = load_pool(Path(params["suite"]["pool"]))
    config = ScoringConfig.from_params(params, str(args.params), overrides=_overrides(args.backbone),
                                       detector=args.detector)
    summary = run_score(args.model, shard_dir(args.results / "models" / args.model, args.shard), pool, config)
    print(f"score {args.model}: {summary.n_images} images, {summary.n_rows} (image, subject) rows, "
          f"{summary.truncated_prompts} prompts truncated to 77 CLIP tokens")
    return 0


def cmd_report(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.core.containers import choose_runner

    if choose_runner(args.runner, params, "report", args.params) == "docker":
        from collapsebench.reporting.container import report_in_docker

        return report_in_docker(args, params)

    from collapsebench.benchmark.registry import entries
    from collapsebench.benchmark.suite import load_prompts
    from collapsebench.reporting.report import run_report

    # Every entry of models/ with scores, whichever machine made them; the rest are pending (the site lists them).
    configs, pending = [], []
    for config in entries(args.models_dir):
        (configs if (args.results / "models" / config.name / "scores.csv").is_file() else pending).append(config)
    report = run_report(args.results, configs, args.results / "reported" / "paper_table1.csv",
                        load_prompts(Path(params["suite"]["prompts"])), list(params["suite"]["seeds"]),
                        int(params["report"]["bootstrap"]), int(params["report"]["seed"]))
    print(f"report: {len(report.table)} rows -> {args.results / 'table1.csv'}")
    if pending:
        print(f"report: no scores yet for {', '.join(c.name for c in pending)}; the site lists them as pending",
              file=sys.stderr)
    for item in report.coverage:
        if not item.complete:
            print(f"report: {item.model} is {item.describe()}; shown as incomplete, not ranked "
                  f"(missing jobs: {args.results / 'coverage.csv'})", file=sys.stderr)
    return 0


def cmd_validity(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.scoring.validity_study import run_validity_study

    _quiet_libraries()
    summary = run_validity_study(params, args.results, str(args.params))
    print(f"validity: {summary['composites']} composites ({summary['profile']} backbones) -> "
          f"{args.results / 'validity'}")
    return 0


def cmd_site(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.benchmark.pool import load_pool
    from collapsebench.leaderboard.settings import site_settings
    from collapsebench.leaderboard.site import build_site

    pool_dir = args.pool or Path(params["suite"]["pool"])
    pool = load_pool(pool_dir) if (pool_dir / "subjects.yaml").is_file() else None
    if pool is None:
        print(f"site: {pool_dir / 'subjects.yaml'} not found; the gallery shows no reference images", file=sys.stderr)
    pool_info = None
    if pool is not None:
        from collapsebench.benchmark.casting import pool_id
        from collapsebench.benchmark.pool import pool_label

        pool_info = {"id": pool_id(pool), **pool_label(pool_dir)}
    index = build_site(args.results, args.models_dir, args.out, args.site_dir, pool=pool, pool_info=pool_info,
                       contributing=args.contributing, submissions_dir=args.submissions,
                       settings=site_settings(params))
    print(f"site: {index}")
    return 0


def cmd_compare(args: argparse.Namespace, params: dict[str, Any] | None) -> int:
    from collapsebench.scoring.compare import compare
    from collapsebench.scoring.config import ScoringConfig

    _quiet_libraries()
    # The pipeline's scoring settings when run in a checkout; outside one, the package defaults.
    settings = load_params(args.params) if args.params.is_file() else {}
    config = ScoringConfig.from_params(settings, str(args.params), profile="smoke" if args.smoke else "real",
                                       overrides=_overrides(args.backbone))
    result = compare(args.generated, args.references, config, args.metric)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['metric']} ({result['backbone']}): mean {result['score']:.4f}")
        for path, cosine in zip(args.references, result["cosines"]):
            print(f"  {cosine:.4f}  {path}")
        print("  collapsed: " + ", ".join(f"{k} @tau={t}" for t, k in result["collapsed"].items()))
    return 0


def cmd_pool_import(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.benchmark.pool import import_pool

    new = import_pool(args.source, args.data, kind=args.kind, license=args.license)
    print(f"pool import: {len(new)} new subjects" + (f" ({new[0]}..{new[-1]})" if new else ""))
    return 0


def cmd_pool_fetch(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.benchmark.pool_fetch import fetch_pool

    data = args.data or Path(f"data-{args.name}")
    report = fetch_pool(args.pools / f"{args.name}.yaml", data, args.cache,
                        progress=lambda message: print(message, file=sys.stderr))
    print(f"pool fetch {args.name}: {report.subjects} subjects -> {report.data_dir} ({report.downloaded} files "
          f"downloaded, {report.cached} from the cache; hashes in {report.lock_path}, commit it)")
    return 0


def cmd_suite_check(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.benchmark.casting import (
        casting_path,
        castings_dir,
        token_problems,
        usage_counts,
    )
    from collapsebench.core.clip_tokens import count_tokens

    instance = _suite(params)
    problems = token_problems(instance.prompts, instance.pool)
    path = casting_path(castings_dir(Path(params["suite"]["prompts"])), instance.casting.pool_id)
    if not instance.casting.frozen:
        problems.append(f"{path}: no frozen casting for this pool; run `collapsebench suite cast` and commit it")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 2
    tokens: dict[int, list[int]] = {}
    for prompt in instance.prompts:
        tokens.setdefault(prompt.n_subjects, []).append(count_tokens(prompt.natural(instance.pool)))
    usage = usage_counts(instance.casting.assignment)
    print(f"suite: {len(instance.prompts)} prompts valid against {len(instance.pool)} subjects "
          f"({instance.casting.pool_id}, casting {path})")
    print("CLIP tokens per rendered prompt (of 77): " + ", ".join(
        f"N={n}: {min(v)}-{max(v)}" for n, v in sorted(tokens.items())))
    print(f"subject usage: {min(usage.values())}-{max(usage.values())} slots per subject, "
          f"{len(usage)} of {len(instance.pool)} subjects used")
    return 0


def cmd_suite_cast(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.benchmark.casting import castings_dir, write_casting
    from collapsebench.benchmark.pool import load_pool
    from collapsebench.benchmark.suite import load_prompts

    prompts_path, pool_dir = Path(params["suite"]["prompts"]), Path(params["suite"]["pool"])
    path = write_casting(castings_dir(prompts_path), load_prompts(prompts_path), load_pool(pool_dir), pool_dir)
    print(f"suite cast: {path} (commit it: results made on this pool refer to it)")
    return 0


def cmd_validate(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.intake.validate import all_folders, changed_folders, run_validate

    folders = list(args.paths)
    if args.changed:
        folders += changed_folders(args.changed)
    if args.all:
        folders += all_folders()
    if not (args.paths or args.changed or args.all):
        raise BenchError("validate: give a folder, --changed BASE or --all")
    folders = list(dict.fromkeys(folders))  # each folder once, in order
    code = run_validate(folders, params, named=args.paths)
    if code or not args.preflight:
        return code
    from collapsebench.preflight.run import preflight_folders

    return preflight_folders(folders, params, args.results / "preflight")


def cmd_preflight(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.preflight.run import print_result, run_preflight

    _quiet_libraries()
    if args.runner == "docker":
        from collapsebench.preflight.container import preflight_in_docker

        return preflight_in_docker(args, params)
    result = run_preflight(args.model, args.models_dir, params, args.results / "preflight", code_dir=args.code_dir,
                           weights=args.weights, pool_dir=args.pool)
    print_result(result, args.summary)
    return 0 if result.passed else 1


def cmd_submission_import(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.intake.submission import Benchmark, import_submission

    instance = _suite(params)
    target = import_submission(args.path, Benchmark.from_instance(instance, params), instance.pool, args.results,
                               args.models_dir)
    print(f"submission import: {target} (runner: submitted); next: collapsebench score {target.name}")
    return 0


def cmd_weights(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from collapsebench.core.hub import default_hub_cache
    from collapsebench.weights_pull import (
        check_weights,
        describe,
        needed_weights,
        pull_weights,
    )

    needs = needed_weights(params, args.models_dir, args.models, args.scoring)
    cache = args.cache or default_hub_cache()
    if args.weights_command == "pull":
        pull_weights(needs, cache, args.lock)
    statuses = check_weights(needs, cache, args.lock)
    print(describe(statuses, cache))
    return 1 if any(status.missing for status in statuses) else 0


def cmd_untrusted(args: argparse.Namespace, params: dict[str, Any] | None) -> int:
    """The scripts' way through core/untrusted.py. A SOURCE inside the working folder is also checked on the way
    down to it (no level may be a symlink); `copy` lists each copied file on stdout, a summary on stderr."""
    from collapsebench.core.untrusted import check_tree, copy_tree, real_dir

    here = Path.cwd()
    source = args.source if args.source.is_absolute() else here / args.source
    if source.is_relative_to(here):
        real_dir(source, here)
    if args.untrusted_command == "copy":
        copied = copy_tree(source, args.target, args.only)
        print("".join(f"{path}\n" for path in copied), end="")
        print(f"untrusted copy: {len(copied)} regular files {args.source} -> {args.target}", file=sys.stderr)
    else:
        print(f"untrusted check: {len(check_tree(source, args.only))} regular files under {args.source}",
              file=sys.stderr)
    return 0


def cmd_publish(args: argparse.Namespace, params: dict[str, Any] | None) -> int:
    from collapsebench.publishing import objects

    if args.publish_command == "import-objects":
        print(f"publish: {objects.import_objects(args.folder)} objects verified and imported into the DVC cache")
    elif args.publish_command == "check-cache":
        print(f"publish: {objects.check_cache(args.targets)} objects in the DVC cache, each hashing to its name")
    else:
        print(f"publish: {objects.check_remote(args.targets, args.remote)} objects on the remote '{args.remote}'")
    return 0


def _overrides(pairs: list[str] | None) -> dict[str, str]:
    overrides = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep or not path:
            raise BenchError(f"--backbone expects NAME=PATH, got {pair!r}")
        overrides[name] = path
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collapsebench", description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="make a model's images (resumable)")
    p.add_argument("model", nargs="?", help="one model (default: the selected ones, see --models)")
    p.add_argument("--models", help="without MODEL: calibration, all, or names joined by commas (default: params.yaml's "
                   "models); writes results/generated.json")
    p.add_argument("--shard", help="i/n: only every n-th job starting at i, in results/models/<model>/shards/i-of-n/")
    p.add_argument("--runner", choices=["local", "docker"], help="default: the model.yaml's runner")
    p.add_argument("--engine", choices=["docker", "podman", "apptainer"],
                   help="docker runner: what runs the container (default: params.yaml generate.engine, else docker)")
    p.add_argument("--model-cache", type=Path, help="docker: host Hugging Face hub cache to mount (default: HF_HUB_CACHE)")
    p.add_argument("--base-image", help="docker: BASE_IMAGE build argument (e.g. a locally made base)")
    p.add_argument("--gpu", default="all", help="docker: 'all' or one GPU id (one shard per GPU)")
    p.add_argument("--gpus", default="none", help="none: one process; all or 0,1,...: one shard per GPU of this host "
                   "(all: CUDA_VISIBLE_DEVICES, else nvidia-smi's), run at once, then merged")
    p.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="slurm: one job array task per shard, then merge (settings: params.yaml generate.slurm)")
    p.add_argument("--shards", type=int, help="slurm: tasks in the array (default: generate.slurm.shards)")
    p.add_argument("--partition", help="slurm: partition (default: generate.slurm.partition)")
    p.add_argument("--gpus-per-task", type=int, help="slurm: GPUs per task (default: generate.slurm.gpus_per_task)")
    p.add_argument("--time", help="slurm: time limit per task, minutes or [D-]HH:MM[:SS] (default: generate.slurm.time)")
    p.add_argument("--concurrency", type=int, default=4,
                   help="api: requests in flight at once (default 4); retries: params.yaml generate.api")
    p.add_argument("--dry-run", action="store_true",
                   help="api: print the jobs, how many would be refused and the cost; send nothing")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("merge", help="fold shard folders (manifests, images, scores) into the model folder")
    p.add_argument("model")
    p.set_defaults(func=cmd_merge, no_params=True)

    p = sub.add_parser("score", help="raw cosines per (image, subject) -> results/<model>/scores.csv")
    p.add_argument("model", nargs="?", help="one model (default: the selected ones, see --models)")
    p.add_argument("--models", help="without MODEL: calibration, all, or names joined by commas (default: params.yaml's "
                   "models); writes results/scored.json")
    p.add_argument("--shard", help="i/n: score the shard folder written by `generate --shard i/n`")
    p.add_argument("--backbone", action="append", metavar="NAME=PATH", help="load a backbone from a local folder")
    p.add_argument("--detector", type=Path, metavar="PATH", help="load the matched-SCR detector from a local folder")
    p.add_argument("--runner", choices=["local", "docker"], help="docker: in the scoring image (default: scoring.runner)")
    p.add_argument("--image-dockerfile", help="docker: the scoring image's Dockerfile (default: docker/eval/Dockerfile)")
    p.add_argument("--base-image", help="docker: BASE_IMAGE build argument (e.g. a locally made base)")
    p.add_argument("--model-cache", type=Path, help="docker: host Hugging Face hub cache to mount (default: HF_HUB_CACHE)")
    p.add_argument("--gpu", help="docker: 'all' or one GPU id to score on (default: no GPU, the image's CPU)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("report", help="Table 1, metrics.json, plot data and figures")
    p.add_argument("--runner", choices=["local", "docker"], help="docker: in the scoring image (default: report.runner)")
    p.add_argument("--image-dockerfile", help="docker: the scoring image's Dockerfile (default: docker/eval/Dockerfile)")
    p.add_argument("--base-image", help="docker: BASE_IMAGE build argument (e.g. a locally made base)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("validity", help="the known-truth metric-validity study -> results/validity/")
    p.set_defaults(func=cmd_validity)

    p = sub.add_parser("site", help="build the static leaderboard site")
    p.add_argument("--out", type=Path, default=Path("public"))
    p.add_argument("--site-dir", type=Path, default=Path("site"), help="templates and static assets")
    p.add_argument("--pool", type=Path, help="subject pool folder for the gallery's references (default: suite.pool)")
    p.add_argument("--contributing", type=Path, default=Path("CONTRIBUTING.md"), help="shown on the submit page")
    p.add_argument("--submissions", type=Path, default=Path("submissions"),
                   help="results submissions; those not imported yet are listed as pending")
    p.set_defaults(func=cmd_site)

    p = sub.add_parser("compare", help="score one image against its references")
    p.add_argument("generated", type=Path)
    p.add_argument("references", type=Path, nargs="+")
    p.add_argument("--metric", default="dinov2", choices=["dinov2", "dino", "clip"])
    p.add_argument("--backbone", action="append", metavar="NAME=PATH")
    p.add_argument("--smoke", action="store_true", help="use the random-weight smoke backbones")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare, no_params=True)

    pool = sub.add_parser("pool", help="manage the subject pool").add_subparsers(dest="pool_command", required=True)
    p = pool.add_parser("import", help="add subjects from a folder of subject folders")
    p.add_argument("source", type=Path)
    p.add_argument("--data", type=Path, default=Path("data"))
    p.add_argument("--kind", required=True, choices=["person", "animal"])
    p.add_argument("--license", required=True, help="license of the imported images")
    p.set_defaults(func=cmd_pool_import, no_params=True)
    p = pool.add_parser("fetch", help="download a pinned public pool (pools/NAME.yaml), verify it, build its folder")
    p.add_argument("name", help="pool definition pools/NAME.yaml, e.g. xversebench")
    p.add_argument("--data", type=Path, help="pool folder to build (default: data-NAME); point suite.pool at it")
    p.add_argument("--cache", type=Path, default=Path(".cache/pools"),
                   help="download cache, laid out as HOST/PATH of each URL; copy it to fetch without network")
    p.add_argument("--pools", type=Path, default=Path("pools"), help="folder of pool definitions and lock files")
    p.set_defaults(func=cmd_pool_fetch, no_params=True)

    suite = sub.add_parser("suite", help="the benchmark definition").add_subparsers(dest="suite_command", required=True)
    p = suite.add_parser("check", help="validate prompts.yaml, the pool's casting and the 77-token rule")
    p.set_defaults(func=cmd_suite_check)
    p = suite.add_parser("cast", help="freeze the casting of params.yaml's pool in benchmark/castings/")
    p.set_defaults(func=cmd_suite_cast)

    p = sub.add_parser("validate", help="check model folders and results submissions; print every problem")
    p.add_argument("paths", type=Path, nargs="*", help="models/<name> or submissions/<name> folders")
    p.add_argument("--changed", metavar="BASE", help="also every such folder changed between git BASE and HEAD")
    p.add_argument("--all", action="store_true", help="also every folder under models/ and submissions/")
    p.add_argument("--preflight", action="store_true", help="then preflight every valid model folder that has a "
                   "preflight.yaml (results/preflight/<model>.json)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("preflight", help="run the entry's adapter and inference code on a tiny random-weight twin at "
                       "N=2 and N=10 -> results/preflight/<model>.json")
    p.add_argument("model")
    p.add_argument("--code-dir", type=Path, help="MOSAIC/XVerse: an upstream checkout (default: the entry's code_dir, "
                   "where the model's image has it)")
    p.add_argument("--weights", type=Path, help="local weights instead of the twin: the pipeline folder (diffusers), "
                   "else one folder per checkpoint setting (DIR/base, DIR/lora, ...); the entry is not changed")
    p.add_argument("--pool", type=Path, help="subject pool of the references (default: suite.pool)")
    p.add_argument("--runner", choices=["local", "docker"], default="local",
                   help="docker: inside the model's image, network off, no weights mounted (the GPU workflow's step)")
    p.add_argument("--base-image", help="docker: BASE_IMAGE build argument (e.g. a locally made base)")
    p.add_argument("--engine", choices=["docker", "podman"], help="docker: what runs the container")
    p.add_argument("--summary", type=Path, help="also append the table in markdown (e.g. $GITHUB_STEP_SUMMARY)")
    p.set_defaults(func=cmd_preflight)

    submission = sub.add_parser("submission", help="results submitted by model authors").add_subparsers(
        dest="submission_command", required=True)
    p = submission.add_parser("import", help="validate, then copy into results/models/<name>/ (runner: submitted)")
    p.add_argument("path", type=Path)
    p.set_defaults(func=cmd_submission_import)

    untrusted = sub.add_parser("untrusted", help="take regular files only from a folder a container or an artifact "
                               "wrote (no symlinks, hard links or devices)").add_subparsers(
        dest="untrusted_command", required=True)
    for command, text in (("check", "fail, naming the path, if SOURCE holds anything but folders and regular files"),
                          ("copy", "check SOURCE, then copy its regular files to TARGET (nothing if any check fails)")):
        p = untrusted.add_parser(command, help=text)
        p.add_argument("source", type=Path)
        if command == "copy":
            p.add_argument("target", type=Path)
        p.add_argument("--only", action="append", metavar="NAME", help="only these top-level entries of SOURCE")
        p.set_defaults(func=cmd_untrusted, no_params=True)

    publish = sub.add_parser("publish", help="the commit job's checks of a GPU run's DVC objects").add_subparsers(
        dest="publish_command", required=True)
    p = publish.add_parser("import-objects", help="verify every object of FOLDER against its name, then import them "
                           "into the DVC cache (none if one fails)")
    p.add_argument("folder", type=Path)
    p.set_defaults(func=cmd_publish, no_params=True)
    for command, text in (("check-cache", "every object the targets name is in the DVC cache and hashes to its name"),
                          ("check-remote", "every object the targets name is on the remote (after dvc push)")):
        p = publish.add_parser(command, help=text)
        p.add_argument("targets", type=Path, nargs="+", metavar="IMAGES.DVC")
        if command == "check-remote":
            p.add_argument("--remote", required=True)
        p.set_defaults(func=cmd_publish, no_params=True)

    weights = sub.add_parser("weights", help="the pinned checkpoints in the Hugging Face cache").add_subparsers(
        dest="weights_command", required=True)
    for command, text in (("pull", "download the pinned checkpoints into the cache (needs network; resumes)"),
                          ("check", "without network, list what the cache lacks for an offline run (exit 1 if any)")):
        p = weights.add_parser(command, help=text)
        p.add_argument("models", nargs="*", metavar="MODEL", help="the checkpoints of models/<MODEL>/model.yaml "
                       "(neither MODEL nor --scoring: params.yaml's models, and scoring if its profile is real)")
        p.add_argument("--scoring", action="store_true", help="the real scoring profile's backbones and detector")
        p.add_argument("--cache", type=Path, help="hub cache folder (default: HF_HUB_CACHE, else HF_HOME/hub)")
        p.add_argument("--lock", type=Path, default=Path("weights.lock.json"),
                       help="commits pulled for unpinned checkpoints (revision: null)")
        p.set_defaults(func=cmd_weights)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        params = None if getattr(args, "no_params", False) else load_params(args.params)
        return args.func(args, params)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
