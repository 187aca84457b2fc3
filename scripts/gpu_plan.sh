#!/usr/bin/env bash
# Which models to generate and which results submissions to import on the GPU runner, for gpu.yml's matrix,
# and whether the run commits its results.
#
#   EVENT=pull_request scripts/gpu_plan.sh BASE         # a preview of the folders changed between BASE and HEAD
#   EVENT=push REF=refs/heads/main scripts/gpu_plan.sh BASE   # changed folders + everything missing on main
#   EVENT=workflow_dispatch REF=refs/heads/main ONLY="a b" scripts/gpu_plan.sh   # these names
#   EVENT=workflow_dispatch REF=refs/heads/main scripts/gpu_plan.sh              # everything missing
#
# Prints lines for $GITHUB_OUTPUT: models=[...] and submissions=[...] (JSON lists), the shards of each model
# (pull_request: a preview, shard 0 of 25, 9 of the 225 jobs over every subject count; otherwise 4 shards of 4)
# and commit=true|false (true for pushes and dispatches on main: only merged, reviewed code commits results).
#
# Runs on main plan against the committed results, not only against their own diff: a model whose results are
# missing (or were made from an older model.yaml than the committed one) is planned by every main run until
# its results are committed, so a cancelled or failed run never drops it. Committed means results/models/<name>/
# holds scores.csv, scoring.json and images.dvc, and for a model that images.dvc records the md5 of the current
# models/<name>/model.yaml (stage_results.sh writes it). A change under docker/<dir>/ reruns every
# model whose model.yaml names that Dockerfile; a change under docker/base/ every model whose Dockerfile builds on
# the shared base (ARG BENCH_BASE); a change under docker/eval/ (the scoring image) every model and submission.
# Models that cannot run here (kind: reported), were submitted as results (runner: submitted) or are closed APIs
# (runner: api: the GPU runner holds no provider key; their rows come as results submissions) are left out;
# names that break the naming rule are left out too (ci.yml's validation reports them).
set -euo pipefail

base="${1:-}"
event="${EVENT:-}"
name_rule='^[a-z0-9][a-z0-9_-]{0,63}$'
on_main=false
[[ "$event" != pull_request && "${REF:-}" == refs/heads/main ]] && on_main=true

changed_paths() {
  if [[ -n "${ONLY:-}" ]]; then
    for name in $ONLY; do printf 'models/%s/\nsubmissions/%s/\n' "$name" "$name"; done
  elif [[ "$event" == workflow_dispatch ]]; then
    :  # no names: what is missing (below)
  elif [[ -n "$base" && ! "$base" =~ ^0+$ ]] && git rev-parse --quiet --verify "${base}^{commit}" >/dev/null; then
    git diff --name-only --no-renames "${base}...HEAD" --
  else
    echo "gpu_plan: no usable base revision; planning only what is missing" >&2
  fi
}

field_is() { # field_is FILE KEY VALUE: a top-level `KEY: VALUE` line (quoted or not)
  grep -Eq "^$2:[[:space:]]*[\"']?$3[\"']?[[:space:]]*(#.*)?$" "$1"
}

committed() { # committed NAME: results/models/NAME holds results made from the current model.yaml (see above)
  local folder="results/models/$1" md5
  [[ -f "$folder/scores.csv" && -f "$folder/scoring.json" && -f "$folder/images.dvc" ]] || return 1
  [[ -f "$folder/provenance.json" ]] && return 0  # a results submission: imported once, never regenerated
  [[ -f "models/$1/model.yaml" ]] || return 1
  md5="$(md5sum "models/$1/model.yaml" | cut -d' ' -f1)"
  grep -Eq "^[[:space:]]+model_yaml_md5:[[:space:]]*${md5}[[:space:]]*\$" "$folder/images.dvc"
}

depends_on_image() { # depends_on_image MODEL_YAML DIR: whether a change under docker/DIR/ changes the model's results
  local dockerfile
  [[ "$2" == eval ]] && return 0  # the scoring image scores every model
  dockerfile="$(sed -nE "s/^[[:space:]]+dockerfile:[[:space:]]*[\"']?(docker\/[a-z0-9][a-z0-9_-]*\/Dockerfile)[\"']?.*$/\1/p" "$1" |
    head -n1)"
  [[ -n "$dockerfile" ]] || return 1
  [[ "$dockerfile" == "docker/$2/Dockerfile" ]] && return 0
  # The shared base: every Dockerfile that builds on it (ARG BENCH_BASE, core/containers.py) is rebuilt.
  [[ "$2" == base && -f "$dockerfile" ]] && grep -Eq '^[[:space:]]*ARG[[:space:]]+BENCH_BASE' "$dockerfile"
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
        if depends_on_image "$file" "$name"; then models[$(basename "$(dirname "$file")")]=1; fi
      done
      if [[ "$name" == eval ]]; then  # the scoring image: every submission's scores come from it too
        for folder in submissions/*/; do
          [[ -d "$folder" ]] && submissions[$(basename "$folder")]=1
        done
      fi ;;
  esac
done < <(changed_paths)

if [[ "$on_main" == true && -z "${ONLY:-}" ]]; then
  for file in models/*/model.yaml; do
    name="$(basename "$(dirname "$file")")"
    if [[ "$name" =~ $name_rule ]] && ! committed "$name"; then models[$name]=1; fi
  done
  for folder in submissions/*/; do
    name="$(basename "$folder")"
    if [[ -d "$folder" && "$name" =~ $name_rule ]] && ! committed "$name"; then submissions[$name]=1; fi
  done
fi

json_list() { # names (already safe by the naming rule) as a JSON list
  local out="" name
  for name in "$@"; do out+="${out:+,}\"$name\""; done
  printf '[%s]' "$out"
}

runnable=()
for name in $(printf '%s\n' "${!models[@]}" | sort); do
  file="models/$name/model.yaml"
  if field_is "$file" kind reported || field_is "$file" runner submitted || field_is "$file" runner api; then
    echo "gpu_plan: $name is not generated here (reported, submitted results, or a closed API: no key here)" >&2
  else
    runnable+=("$name")
  fi
done
mapfile -t names < <(printf '%s\n' "${!submissions[@]}" | sort)
[[ ${#names[@]} -eq 1 && -z "${names[0]}" ]] && names=()
echo "models=$(json_list "${runnable[@]}")"
echo "submissions=$(json_list "${names[@]}")"
if [[ "$event" == pull_request ]]; then
  echo "shards=[0]"
  echo "shard_count=25"
else
  echo "shards=[0,1,2,3]"
  echo "shard_count=4"
fi
echo "commit=$on_main"
