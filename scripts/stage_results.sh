#!/usr/bin/env bash
# Copy the files of one model's results that belong in git into OUT/, for gpu.yml's results-<name> artifact:
# results/models/NAME/{manifest.jsonl,scores.csv,scoring.json[,provenance.json]} and models/NAME/model.yaml.
# Images are not among them: they go to their own artifact and from there to the DVC remote.
#
#   scripts/stage_results.sh NAME OUT
set -euo pipefail

name="$1"
out="$2"
mkdir -p "$out/results/models/$name" "$out/models/$name"
for file in manifest.jsonl scores.csv scoring.json provenance.json; do
  if [[ -f "results/models/$name/$file" ]]; then cp "results/models/$name/$file" "$out/results/models/$name/"; fi
done
cp "models/$name/model.yaml" "$out/models/$name/"
for file in manifest.jsonl scores.csv scoring.json; do
  [[ -f "$out/results/models/$name/$file" ]] || { echo "stage_results: results/models/$name/$file is missing" >&2; exit 1; }
done
echo "stage_results: $name -> $out"
