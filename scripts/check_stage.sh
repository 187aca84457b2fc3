#!/usr/bin/env bash
# Before a GPU job generates a model: make sure the pipeline has the stages its results will be recorded in
# (generate@NAME and score@NAME, from models: in params.yaml), so a model that cannot be committed fails in
# seconds rather than after hours of generation (stage_results.sh records the images with `dvc commit`).
#
#   scripts/check_stage.sh NAME
set -euo pipefail

name="$1"
for stage in "generate@$name" "score@$name"; do
  if ! dvc stage list "$stage" >/dev/null 2>&1; then
    echo "::error::dvc.yaml has no stage $stage: add $name to models: in params.yaml (CONTRIBUTING.md, step 4)"
    exit 1
  fi
done
echo "check_stage: generate@$name and score@$name exist"
