#!/usr/bin/env bash
# Lay out one shard of a model for gpu.yml's shard.<model>.<i> artifact, under its own path from the repository
# root: OUT/results/models/MODEL/shards/<i>-of-<n>/{manifest.jsonl,images/}, and OUT/results/preflight/MODEL.json
# when the job's preflight wrote one. The artifact then says which model
# and shard it holds, whichever way actions/download-artifact extracts it (see collect_shards.sh).
#
# The shard folder was written by the model's container, so it is untrusted: only regular files leave it
# (`collapsebench untrusted copy`); a symlink, hard link or device anywhere in it, or on the way to it, fails the
# job naming the path, and nothing is staged.
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
collapsebench untrusted copy "$folder" "$out/$folder" --only manifest.jsonl --only images >/dev/null
if [[ -e "results/preflight/$model.json" ]]; then  # the preflight this job ran (scripts/preflight_step.sh)
  collapsebench untrusted copy results/preflight "$out/results/preflight" --only "$model.json" >/dev/null
fi
echo "stage_shard: $folder -> $out"
