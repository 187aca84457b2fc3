#!/usr/bin/env bash
# Commit the result tables of a GPU run to main (gpu.yml's commit job; pushes to main only).
#
#   GITHUB_TOKEN=... MODELS='["a"]' SUBMISSIONS='["b"]' scripts/commit_results.sh INCOMING RUN_URL
#
# INCOMING holds one results-<name>/ folder per model or submission (see stage_results.sh). Only the names
# that gpu_plan.sh planned (MODELS, SUBMISSIONS) and only the known file names of each are copied into the
# work tree, so an artifact cannot write anywhere else. The token
# reaches git through environment-only configuration: it is never written to .git/config.
set -euo pipefail

incoming="$1"
run_url="$2"
name_rule='^[a-z0-9][a-z0-9_-]{0,63}$'
planned=" $(printf '%s %s' "${MODELS:-[]}" "${SUBMISSIONS:-[]}" | tr -d '[]"' | tr ',' ' ') "
paths=()
for folder in "$incoming"/results-*/; do
  [[ -d "$folder" ]] || continue
  name="$(basename "$folder")"
  name="${name#results-}"
  if [[ ! "$name" =~ $name_rule || "$planned" != *" $name "* ]]; then
    echo "commit_results: skipping unplanned artifact $folder" >&2
    continue
  fi
  mkdir -p "results/models/$name" "models/$name"
  for file in manifest.jsonl scores.csv scoring.json provenance.json; do
    source="$folder/results/models/$name/$file"
    if [[ -f "$source" && ! -L "$source" ]]; then
      cp "$source" "results/models/$name/$file"
      paths+=("results/models/$name/$file")
    fi
  done
  if [[ -f "$folder/models/$name/model.yaml" && ! -L "$folder/models/$name/model.yaml" ]]; then
    cp "$folder/models/$name/model.yaml" "models/$name/model.yaml"
    paths+=("models/$name/model.yaml")
  fi
done
if [[ ${#paths[@]} -eq 0 ]]; then
  echo "commit_results: no results to commit"
  exit 0
fi
git add -- "${paths[@]}"
if git diff --cached --quiet; then
  echo "commit_results: results unchanged"
  exit 0
fi
git -c user.name="github-actions[bot]" -c user.email="41898282+github-actions[bot]@users.noreply.github.com" \
  commit -q -m "results: GPU run ${run_url}"
auth="$(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 -w0)"
echo "::add-mask::${auth}"
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="http.https://github.com/.extraheader"
export GIT_CONFIG_VALUE_0="AUTHORIZATION: basic ${auth}"
for attempt in 1 2 3; do
  if git push origin HEAD:main; then
    echo "commit_results: pushed ${#paths[@]} files"
    exit 0
  fi
  echo "commit_results: push attempt $attempt failed; rebasing on main" >&2
  git pull -q --rebase origin main
done
exit 1
