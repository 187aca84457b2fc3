"""A tiny, fully synthetic results/ folder for the report, figure and site tests.

Four models over 8 prompts (N = 2 and 4, two scene types, two prompts each) x 2 seeds:
- alpha, gamma: kind model, real backbones, DINOv2 cosines around 0.8 (nothing collapses at 0.4:
  their SCR intervals are both [0, 0], so they must share rank 1);
- beta: kind model, real backbones, cosines around 0.3 (nearly everything collapses: rank 3);
- collage: kind calibration, scored with smoke backbones (must never reach a leaderboard table).
Each model gets scores.csv, scoring.json, manifest.jsonl and real (tiny) PNGs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.suite import Prompt
from collapsebench.core.io import atomic_write_csv, sha256_file
from collapsebench.core.runlog import append_run_log

SCORE_COLUMNS = ("model", "prompt_id", "seed", "n_subjects", "scene", "slot", "subject_id", "dinov2", "dino", "clip_i",
                 "clip_t")
PROMPTS = [(pid, n, scene) for pid, (n, scene) in enumerate(
    [(2, "neutral")] * 2 + [(2, "occlusion")] * 2 + [(4, "neutral")] * 2 + [(4, "occlusion")] * 2, start=1)]
SEEDS = (0, 1)
MODELS = {  # name -> (kind, backbone profile, mean DINOv2 cosine, device)
    "alpha": ("model", "real", 0.8, "NVIDIA H100 80GB HBM3"),
    "gamma": ("model", "real", 0.8, "NVIDIA H100 80GB HBM3"),
    "beta": ("model", "real", 0.3, "NVIDIA A100-SXM4-80GB"),
    "collage": ("calibration", "smoke", 0.9, "cpu (x86_64)"),
}


def subjects_of(pid: int, n: int) -> list[str]:
    return [f"S{(pid + k) % 16 + 1:03d}" for k in range(n)]


def config(name: str) -> ModelConfig:
    kind = MODELS[name][0]
    raw = {"name": name, "display_name": f"{name.title()} model", "kind": kind, "adapter": name, "runner": "docker",
           "authors": ["Test Author"], "license": "Apache-2.0", "description": f"synthetic {name}",
           "settings": {"steps": 28}}
    return ModelConfig(name=name, display_name=raw["display_name"], kind=kind, adapter=name, runner="docker",
                       settings=raw["settings"], raw=raw)


def write_model(results: Path, name: str) -> None:
    kind, profile, mean, device = MODELS[name]
    folder = results / "models" / name
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(map(ord, name)))
    rows, lines = [], []
    for pid, n, scene in PROMPTS:
        subjects = subjects_of(pid, n)
        for seed in SEEDS:
            clip_t = float(rng.uniform(0.2, 0.3))
            for slot, subject in enumerate(subjects, start=1):
                dinov2 = float(np.clip(mean + rng.normal(0, 0.03), -1, 1))
                rows.append({"model": name, "prompt_id": pid, "seed": seed, "n_subjects": n, "scene": scene,
                             "slot": slot, "subject_id": subject, "dinov2": dinov2, "dino": dinov2 - 0.05,
                             "clip_i": min(1.0, dinov2 + 0.1), "clip_t": clip_t})
            key = f"p{pid:02d}_s{seed}"
            image = Image.new("RGB", (48, 40), tuple(int(v) for v in rng.integers(0, 256, 3)))
            image.save(folder / "images" / f"{key}.png")
            data = (folder / "images" / f"{key}.png").read_bytes()
            lines.append({
                "key": key, "prompt_id": pid, "seed": seed, "subjects": subjects, "n_subjects": n, "scene": scene,
                "prompt": f"prompt {pid} with {n} subjects", "sent_prompt": f"prompt {pid} with {n} subjects",
                "sent": {}, "image": f"images/{key}.png", "sha256": hashlib.sha256(data).hexdigest(),
                "width": 48, "height": 40, "params": {"steps": 28}, "model": name, "adapter": name,
                "model_revision": f"{name}@0123abcd", "fingerprint": "f" * 16, "wall_s": 1.5,
                "created_utc": f"2026-03-0{1 + seed}T10:00:00+00:00", "runner": "docker",
                "container_digest": f"sha256:{name}digest", "device": device,
                "packages": {"collapsebench": "0.1.0", "torch": "2.13.0", "diffusers": "0.42.1",
                             "transformers": "5.24.0"},
            })
    atomic_write_csv(folder / "scores.csv", SCORE_COLUMNS, rows)
    # As `score` on this machine would: its run log holds these scores' sha256, so the rows are `local`, ranked.
    append_run_log(folder, "score", {"scores_sha256": sha256_file(folder / "scores.csv")})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    (folder / "scoring.json").write_text(json.dumps({
        "profile": profile, "columns": list(SCORE_COLUMNS), "n_rows": len(rows), "backbones": {"dinov2": f"{profile}-dinov2"}, "resolved_revisions": {"dinov2": None},
        "clip_max_tokens": 77, "clip_t_truncated_prompts": 0}), encoding="utf-8")


def write_results(results: Path, paper_table: Path, models: tuple[str, ...] = tuple(MODELS)) -> list[dict]:
    """Write every model's files and run the real report stage over them (table1, per_scene, sweep, figures)."""
    from collapsebench.reporting.report import run_report

    for name in models:
        write_model(results, name)
    return run_report(results, [config(name) for name in models], paper_table, report_prompts(), SEEDS, n_boot=200,
                      seed=7).table


def report_prompts() -> list[Prompt]:
    """The synthetic prompts, as the report stage takes them."""
    return [Prompt(pid, n, scene, " and ".join(f"{{{k}}}" for k in range(1, n + 1)), tuple(subjects_of(pid, n)))
            for pid, n, scene in PROMPTS]


_SHARED: dict[str, Path] = {}


def shared_results(factory: pytest.TempPathFactory, paper_table: Path) -> Path:
    """One synthetic results/ per test session (the report + figures take seconds); callers must not modify it."""
    if "results" not in _SHARED:
        folder = factory.mktemp("synthetic") / "results"
        write_results(folder, paper_table)
        _SHARED["results"] = folder
    return _SHARED["results"]
