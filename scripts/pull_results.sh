#!/usr/bin/env bash
# Bring the images of the committed results from the results DVC remote, so that the site's gallery and model
# cards show them (pages.yml; readers of the leaderboard run it too, see the README).
#
#   scripts/pull_results.sh          # RESULTS_REMOTE names another remote (default: results)
#
# Pulls the images of every committed row: each results/models/<name>/images.dvc (models and results submissions).
# Images the remote does not hold (the calibration rows a maintainer made locally and never pushed) are reported
# per model, not fatal: the site shows those rows without pictures.
set -euo pipefail

remote="${RESULTS_REMOTE:-results}"
targets=()
for file in results/models/*/images.dvc; do
  [[ -f "$file" ]] && targets+=("$file")
done
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "pull_results: no results tracked by images.dvc files"
  exit 0
fi
dvc pull --remote "$remote" --allow-missing "${targets[@]}"

for manifest in results/models/*/manifest.jsonl; do
  [[ -f "$manifest" ]] || continue
  folder="$(dirname "$manifest")"
  lines="$(grep -c . "$manifest" || true)"
  images="$(find "$folder/images" -name '*.png' 2>/dev/null | wc -l)"
  if [[ "$images" -lt "$lines" ]]; then
    echo "::warning::pull_results: $folder has $images of its $lines images (not on remote '$remote')"
  else
    echo "pull_results: $folder: $images images"
  fi
done
