#!/usr/bin/env bash
# Which models to generate and which results submissions to import on the GPU runner, for gpu.yml's matrix.
#
#   scripts/gpu_plan.sh BASE      # folders changed between git BASE and HEAD
#   ONLY="a b" scripts/gpu_plan.sh # these names (workflow_dispatch)
#
# Prints lines for $GITHUB_OUTPUT: models=[...] and submissions=[...] (JSON lists), and the shards of each
# model: for EVENT=pull_request a preview, shard 0 of 25 (9 of the 225 jobs, every subject count); otherwise
# all 4 shards of 4. A change under
# docker/<dir>/ reruns every model whose model.yaml names that Dockerfile. Models that cannot run here
# (kind: reported) or were submitted as results (runner: submitted) are left out; names that break the
# naming rule are left out too (ci.yml's validation reports them).
set -euo pipefail

base="${1:-}"
name_rule='^[a-z0-9][a-z0-9_-]{0,63}$'

changed_paths() {
  if [[ -n "${ONLY:-}" ]]; then
    for name in $ONLY; do printf 'models/%s/\nsubmissions/%s/\n' "$name" "$name"; done
  elif [[ -n "$base" && ! "$base" =~ ^0+$ ]] && git rev-parse --quiet --verify "${base}^{commit}" >/dev/null; then
    git diff --name-only --no-renames "${base}...HEAD" --
  else
    echo "gpu_plan: no usable base revision; nothing to run (dispatch the workflow with names)" >&2
  fi
}

field_is() { # field_is FILE KEY VALUE: a top-level `KEY: VALUE` line (quoted or not)
  grep -Eq "^$2:[[:space:]]*[\"']?$3[\"']?[[:space:]]*(#.*)?$" "$1"
}

declare -A models=() submissions=()
while IFS= read -r path; do
  IFS=/ read -r top name _ <<<"$path"
  [[ "$name" =~ $name_rule ]] || continue
  case "$top" in
    models) [[ -f "models/$name/model.yaml" ]] && models[$name]=1 ;;
    submissions) [[ -d "submissions/$name" ]] && submissions[$name]=1 ;;
    docker)
      for file in models/*/model.yaml; do
        grep -Eq "dockerfile:[[:space:]]*[\"']?docker/$name/Dockerfile" "$file" && models[$(basename "$(dirname "$file")")]=1
      done ;;
  esac
done < <(changed_paths)

json_list() { # names (already safe by the naming rule) as a JSON list
  local out="" name
  for name in "$@"; do out+="${out:+,}\"$name\""; done
  printf '[%s]' "$out"
}

runnable=()
for name in $(printf '%s\n' "${!models[@]}" | sort); do
  file="models/$name/model.yaml"
  if field_is "$file" kind reported || field_is "$file" runner submitted; then
    echo "gpu_plan: $name is not generated here (reported or submitted results)" >&2
  else
    runnable+=("$name")
  fi
done
mapfile -t names < <(printf '%s\n' "${!submissions[@]}" | sort)
[[ ${#names[@]} -eq 1 && -z "${names[0]}" ]] && names=()
echo "models=$(json_list "${runnable[@]}")"
echo "submissions=$(json_list "${names[@]}")"
if [[ "${EVENT:-}" == pull_request ]]; then
  echo "shards=[0]"
  echo "shard_count=25"
else
  echo "shards=[0,1,2,3]"
  echo "shard_count=4"
fi
