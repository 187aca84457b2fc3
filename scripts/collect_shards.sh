#!/usr/bin/env bash
# Put the downloaded shard artifacts of one model where `collapsebench merge` looks for them
# (results/models/MODEL/shards/<i>-of-<n>/), for gpu.yml's merge job.
#
#   scripts/collect_shards.sh MODEL INCOMING
#
# actions/download-artifact extracts a single matching artifact straight into INCOMING, and several into
# INCOMING/<artifact name>/ unless merge-multiple is set, so both layouts are read: INCOMING/results/... and
# INCOMING/*/results/.... Each artifact carries its own path (stage_shard.sh), so only MODEL's shard folders are
# taken, never those of a model whose name merely starts with MODEL. Artifacts are untrusted: regular files only
# (`collapsebench untrusted copy`), a link or device fails the job naming it.
set -euo pipefail

model="$1"
incoming="$2"
found=0
for root in "$incoming" "$incoming"/*/; do
  for folder in "${root%/}/results/models/$model/shards"/*-of-*/; do
    shard="$(basename "$folder")"
    [[ -d "$folder" && ! -L "${folder%/}" && "$shard" =~ ^[0-9]+-of-[0-9]+$ ]] || continue
    collapsebench untrusted copy "${folder%/}" "results/models/$model/shards/$shard" >/dev/null
    found=$((found + 1))
  done
done
for root in "$incoming" "$incoming"/*/; do  # the shards' preflight record (each job ran the same one): the first
  if [[ -e "${root%/}/results/preflight/$model.json" && ! -e "results/preflight/$model.json" ]]; then
    collapsebench untrusted copy "${root%/}/results/preflight" results/preflight --only "$model.json" >/dev/null
  fi
done
if [[ $found -eq 0 ]]; then
  echo "collect_shards: no shard of $model under $incoming" >&2
  exit 1
fi
echo "collect_shards: $found shard folders of $model"
