#!/usr/bin/env bash
# Publish the results of a GPU run (gpu.yml's commit job; pushes and dispatches on main only): push the images
# to the results DVC remote, then commit their images.dvc, the manifests and the scores to main.
#
#   MODELS='["a"]' SUBMISSIONS='["b"]' [GITHUB_TOKEN=...] [RESULTS_REMOTE=results] \
#     scripts/commit_results.sh INCOMING RUN_URL
#
# INCOMING holds the results.<name> artifacts (stage_results.sh), extracted either way actions/download-artifact
# does it: straight into INCOMING (one artifact, or merge-multiple) or into INCOMING/<artifact name>/. Only the
# names gpu_plan.sh planned (MODELS, SUBMISSIONS) and only the known file names of each are taken, so an artifact
# cannot write anywhere else. A model's entry models/<name>/model.yaml is never taken from the run (main's is the
# reviewed one); a results submission's, written by its import, is added only where main has none.
#
# The images go to the remote before anything is committed, so a commit never names images the remote lacks.
# If main moved on meanwhile, the push is retried on the new tip: the results are applied again to a fresh
# checkout of it. The token reaches git through environment-only configuration, never .git/config.
set -euo pipefail

incoming="$1"
run_url="$2"
remote="${RESULTS_REMOTE:-results}"
name_rule='^[a-z0-9][a-z0-9_-]{0,63}$'
planned_models=" $(printf '%s' "${MODELS:-[]}" | tr -d '[]"' | tr ',' ' ') "
planned_submissions=" $(printf '%s' "${SUBMISSIONS:-[]}" | tr -d '[]"' | tr ',' ' ') "
roots=("$incoming" "$incoming"/*/)

apply() { # copy the planned results into the work tree; fills paths and targets
  paths=() targets=()
  local root folder name file
  for root in "${roots[@]}"; do
    for folder in "${root%/}"/results/models/*/; do
      [[ -d "$folder" ]] || continue
      name="$(basename "$folder")"
      if [[ ! "$name" =~ $name_rule || "$planned_models $planned_submissions" != *" $name "* ]]; then
        echo "commit_results: skipping unplanned artifact $folder" >&2
        continue
      fi
      mkdir -p "results/models/$name"
      for file in manifest.jsonl scores.csv scoring.json provenance.json images.dvc; do
        if [[ -f "$folder/$file" && ! -L "$folder/$file" ]]; then
          cp "$folder/$file" "results/models/$name/$file"
          paths+=("results/models/$name/$file")
        fi
      done
      if [[ -f "results/models/$name/images.dvc" ]]; then
        targets+=("results/models/$name/images.dvc")
      fi
      file="${root%/}/models/$name/model.yaml"
      if [[ "$planned_submissions" == *" $name "* && ! -e "models/$name/model.yaml" && -f "$file" && ! -L "$file" ]]
      then
        mkdir -p "models/$name"
        cp "$file" "models/$name/model.yaml"
        paths+=("models/$name/model.yaml")
      fi
    done
  done
}

apply
if [[ ${#paths[@]} -eq 0 ]]; then
  echo "commit_results: no results to commit"
  exit 0
fi
for name in $planned_models $planned_submissions; do
  [[ -f "results/models/$name/scores.csv" ]] ||
    echo "::warning::commit_results: no results for $name (its job failed?); the next run on main plans it again"
done

# The images: the artifacts' DVC objects into the cache, then to the results remote.
for root in "${roots[@]}"; do
  if [[ -d "${root%/}/dvc-objects/files" ]]; then
    mkdir -p .dvc/cache
    cp -R "${root%/}/dvc-objects/files" .dvc/cache/
  fi
done
if [[ ${#targets[@]} -gt 0 ]]; then
  dvc push --remote "$remote" "${targets[@]}"
fi

if [[ -n "${GITHUB_TOKEN:-}" ]]; then
  auth="$(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 -w0)"
  echo "::add-mask::${auth}"
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="http.https://github.com/.extraheader"
  export GIT_CONFIG_VALUE_0="AUTHORIZATION: basic ${auth}"
fi
for attempt in 1 2 3; do
  git add -- "${paths[@]}"
  if git diff --cached --quiet; then
    echo "commit_results: results unchanged"
    exit 0
  fi
  git -c user.name="github-actions[bot]" -c user.email="41898282+github-actions[bot]@users.noreply.github.com" \
    commit -q -m "results: GPU run ${run_url}"
  if git push -q origin HEAD:main; then
    echo "commit_results: pushed ${#paths[@]} files"
    exit 0
  fi
  echo "commit_results: push attempt $attempt failed; applying the results again on main's new tip" >&2
  git fetch -q origin main
  git reset -q --hard FETCH_HEAD
  apply
done
exit 1
