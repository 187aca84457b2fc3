#!/usr/bin/env bash
# Lay out one model's (or results submission's) scored results for gpu.yml's results.<name> artifact, from which
# commit_results.sh commits them on main. Everything sits under its path from the repository root:
#
#   OUT/results/models/NAME/{manifest.jsonl,scores.csv,scoring.json[,provenance.json][,images.dvc]}  for git
#   OUT/dvc-lock/NAME.yaml   a model's generate@NAME and score@NAME entries of dvc.lock (scripts/results_lock.py)
#   OUT/dvc-objects/         the images as DVC objects, pushed here as to a local DVC remote
#   OUT/models/NAME/model.yaml   only for a results submission: the entry its import wrote
#
# The images are recorded where they were made: a model through its pipeline stages (`dvc commit`, which needs
# the stage's inputs, all present on this runner), a results submission (no stage makes its images) by
# `dvc add`. The write credentials of the public results remote never reach this runner: the commit job
# pushes the objects from the artifact.
#
#   scripts/stage_results.sh NAME OUT
set -euo pipefail

name="$1"
out="$2"
folder="results/models/$name"
mkdir -p "$out/$folder"
for file in manifest.jsonl scores.csv scoring.json provenance.json; do
  if [[ -f "$folder/$file" ]]; then cp "$folder/$file" "$out/$folder/"; fi
done
for file in manifest.jsonl scores.csv scoring.json; do
  [[ -f "$out/$folder/$file" ]] || { echo "stage_results: $folder/$file is missing" >&2; exit 1; }
done

if [[ -f "$folder/provenance.json" ]]; then
  dvc add --quiet "$folder/images"
  cp "$folder/images.dvc" "$out/$folder/"
  mkdir -p "$out/models/$name"
  cp "models/$name/model.yaml" "$out/models/$name/"
  target="$folder/images.dvc"
else
  bash scripts/check_stage.sh "$name"
  dvc commit --force --quiet "generate@$name" "score@$name"
  python scripts/results_lock.py export "$name" "$out/dvc-lock/$name.yaml"
  target="generate@$name"
fi
dvc remote add --local --force artifact "$(realpath "$out")/dvc-objects"
dvc push --quiet --remote artifact "$target"
echo "stage_results: $name -> $out"
