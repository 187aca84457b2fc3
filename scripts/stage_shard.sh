#!/usr/bin/env bash
# Lay out one shard of a model for gpu.yml's shard.<model>.<i> artifact, under its own path from the repository
# root: OUT/results/models/MODEL/shards/<i>-of-<n>/{manifest.jsonl,images/}. The artifact then says which model
# and shard it holds, whichever way actions/download-artifact extracts it (see collect_shards.sh).
#
#   scripts/stage_shard.sh MODEL I/N OUT
set -euo pipefail

model="$1"
shard="$2"
out="$3"
folder="results/models/$model/shards/${shard%/*}-of-${shard#*/}"
if [[ ! -f "$folder/manifest.jsonl" || ! -d "$folder/images" ]]; then
  echo "stage_shard: $folder has no manifest.jsonl and images/ (did generate --shard $shard run?)" >&2
  exit 1
fi
mkdir -p "$out/$folder"
cp -a "$folder/manifest.jsonl" "$folder/images" "$out/$folder/"
echo "stage_shard: $folder -> $out"
