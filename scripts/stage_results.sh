#!/usr/bin/env bash
# Lay out one model's (or results submission's) scored results for gpu.yml's results.<name> artifact, from which
# commit_results.sh commits them on main. Everything sits under its path from the repository root:
#
#   OUT/results/models/NAME/{manifest.jsonl,scores.csv,scoring.json,images.dvc[,provenance.json]}  for git
#   OUT/dvc-objects/         the images as DVC objects, pushed here as to a local DVC remote
#   OUT/models/NAME/model.yaml   only for a results submission: the entry its import wrote
#
# The images are recorded by `dvc add` into images.dvc, for a model and a results submission alike (no pipeline
# stage owns a model's images: which models run is a parameter, see dvc.yaml); a model's images.dvc also records
# the md5 of the model.yaml that made them. The write credentials of the public results remote never reach this
# runner: the commit job
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

dvc add --quiet "$folder/images"
if [[ -f "$folder/provenance.json" ]]; then  # a results submission: also the entry its import wrote
  mkdir -p "$out/models/$name"
  cp "models/$name/model.yaml" "$out/models/$name/"
else  # a model: which model.yaml made these images (gpu_plan.sh plans the model again when it changes)
  printf 'meta:\n  model_yaml_md5: %s\n' "$(md5sum "models/$name/model.yaml" | cut -d' ' -f1)" >>"$folder/images.dvc"
fi
cp "$folder/images.dvc" "$out/$folder/"
target="$folder/images.dvc"
dvc remote add --local --force artifact "$(realpath "$out")/dvc-objects"
dvc push --quiet --remote artifact "$target"
echo "stage_results: $name -> $out"
