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
# Artifacts are untrusted: only regular files are taken (`collapsebench untrusted copy`; a symlink, hard link or
# device fails the job naming it), every DVC object is re-hashed against its name before it enters the cache
# (`collapsebench publish import-objects`), every object the planned images.dvc files name must then be in the
# cache (`check-cache`), and after `dvc push` every one of them must be on the remote, asked object by object
# (`check-remote`): a push that left objects out fails the job, names them, and commits nothing. Each committed
# row gets results/models/<name>/published.json, written here from the plan and the run (never from the
# artifact): the run, the images' hash and the scores' sha256, which the site reads as "scored by our workflow".
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

listed() { # listed LIST_FILE PREFIX: append PREFIX/<each line of LIST_FILE> to paths
  local line
  while IFS= read -r line; do paths+=("$2/$line"); done <"$1"
}

apply() { # copy the planned results into the work tree; fills paths and targets
  paths=() targets=()
  local root folder name kind only list
  list="$(mktemp)"
  for root in "${roots[@]}"; do
    for folder in "${root%/}"/results/models/*/; do
      [[ -d "$folder" ]] || continue
      name="$(basename "$folder")"
      if [[ ! "$name" =~ $name_rule || "$planned_models $planned_submissions" != *" $name "* ]]; then
        echo "commit_results: skipping unplanned artifact $folder" >&2
        continue
      fi
      kind=model
      [[ "$planned_submissions" == *" $name "* ]] && kind=submission
      only=(--only manifest.jsonl --only scores.csv --only scoring.json --only images.dvc --only refusals.jsonl)
      [[ "$kind" == submission ]] && only+=(--only provenance.json)
      collapsebench untrusted copy "${folder%/}" "results/models/$name" "${only[@]}" >"$list"
      listed "$list" "results/models/$name"
      if [[ -f "results/models/$name/images.dvc" ]]; then
        targets+=("results/models/$name/images.dvc")
        published "$name" "$kind"
        paths+=("results/models/$name/published.json")
      fi
      if [[ "$kind" == model && -e "${root%/}/results/preflight/$name.json" ]]; then  # its last preflight
        collapsebench untrusted copy "${root%/}/results/preflight" results/preflight --only "$name.json" >"$list"
        listed "$list" results/preflight
      fi
      if [[ "$kind" == submission && ! -e "models/$name/model.yaml" && -d "${root%/}/models/$name" ]]; then
        collapsebench untrusted copy "${root%/}/models/$name" "models/$name" --only model.yaml >"$list"
        listed "$list" "models/$name"
      fi
    done
  done
  rm -f "$list"
}

published() { # published NAME KIND: the trusted record of where a committed row came from (see above)
  local folder="results/models/$1" images scores
  images="$(sed -n 's/^- md5: *\([0-9a-f]\{32\}\.dir\)$/\1/p' "$folder/images.dvc" | head -n1)"
  scores="$(sha256sum "$folder/scores.csv" 2>/dev/null | cut -d' ' -f1)"
  printf '{\n  "images": "%s",\n  "kind": "%s",\n  "run": "%s",\n  "scores_sha256": "%s",\n  "source": "gpu-workflow"\n}\n' \
    "$images" "$2" "$run_url" "$scores" >"$folder/published.json"
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

# The images: the artifacts' DVC objects, each verified against its name, into the cache; every object the
# targets name must then be there; push; and every one must then be on the remote, or nothing is committed.
for root in "${roots[@]}"; do
  if [[ -d "${root%/}/dvc-objects" ]]; then
    collapsebench publish import-objects "${root%/}/dvc-objects"
  fi
done
if [[ ${#targets[@]} -gt 0 ]]; then
  collapsebench publish check-cache "${targets[@]}"
  dvc push --remote "$remote" "${targets[@]}"
  collapsebench publish check-remote --remote "$remote" "${targets[@]}"
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
