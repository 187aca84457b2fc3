#!/usr/bin/env bash
# Lay out one model's (or results submission's) scored results for gpu.yml's results.<name> artifact, from which
# commit_results.sh commits them on main. Everything sits under its path from the repository root:
#
#   OUT/results/models/NAME/{manifest.jsonl,scores.csv,scoring.json,images.dvc[,provenance.json][,refusals.jsonl]}
#   OUT/dvc-objects/         the images as DVC objects, pushed here as to a local DVC remote
#   OUT/models/NAME/model.yaml   only for a results submission: the entry its import wrote
#   OUT/results/preflight/NAME.json  a model's preflight record, when its generate jobs ran one
#
# The images are recorded by `dvc add` into images.dvc, for a model and a results submission alike (no pipeline
# stage owns a model's images: which models run is a parameter, see dvc.yaml); a model's images.dvc also records
# the md5 of the model.yaml that made them. The write credentials of the public results remote never reach this
# runner: the commit job pushes the objects from the artifact.
#
# The folder was written by the model's container (and the scoring container), so it is untrusted: only regular
# files are taken (`collapsebench untrusted`), images/ is checked the same way before `dvc add` reads it, and what
# kind of entry this is comes from the caller (the plan), never from the folder: provenance.json is taken only
# with --submission, where `collapsebench submission import` on this runner wrote it.
#
#   scripts/stage_results.sh NAME OUT [--submission]
set -euo pipefail

name="$1"
out="$2"
submission=false
[[ "${3:-}" == --submission ]] && submission=true
folder="results/models/$name"
files=(manifest.jsonl scores.csv scoring.json)
[[ "$submission" == true ]] && files+=(provenance.json)
only=()
for file in "${files[@]}" refusals.jsonl; do only+=(--only "$file"); done  # refusals: a closed API row's, if any
collapsebench untrusted copy "$folder" "$out/$folder" "${only[@]}" >/dev/null
for file in "${files[@]}"; do
  [[ -f "$out/$folder/$file" ]] || { echo "stage_results: $folder/$file is missing" >&2; exit 1; }
done

collapsebench untrusted check "$folder/images"
dvc add --quiet "$folder/images"
if [[ "$submission" == true ]]; then  # also the entry its import wrote
  mkdir -p "$out/models/$name"
  collapsebench untrusted copy "models/$name" "$out/models/$name" --only model.yaml >/dev/null
else  # a model: which model.yaml made these images (gpu_plan.sh plans the model again when it changes)
  printf 'meta:\n  model_yaml_md5: %s\n' "$(md5sum "models/$name/model.yaml" | cut -d' ' -f1)" >>"$folder/images.dvc"
fi
cp "$folder/images.dvc" "$out/$folder/"
if [[ "$submission" == false && -e "results/preflight/$name.json" ]]; then  # the model's last preflight
  collapsebench untrusted copy results/preflight "$out/results/preflight" --only "$name.json" >/dev/null
fi
target="$folder/images.dvc"
dvc remote add --local --force artifact "$(realpath "$out")/dvc-objects"
dvc push --quiet --remote artifact "$target"
collapsebench publish check-remote --remote artifact "$target"
echo "stage_results: $name -> $out"
