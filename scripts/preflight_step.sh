#!/usr/bin/env bash
# The GPU workflow's first step for a model: preflight inside its built image, before any weights are loaded.
#
#   scripts/preflight_step.sh MODEL
#
# Runs `collapsebench preflight MODEL --runner docker` (the model's pinned image, network off, no GPU, no model
# cache): its adapter and inference code on a tiny random-weight twin at N=2 and N=10. The table goes to the job
# summary ($GITHUB_STEP_SUMMARY) whether it passes or not; a failure stops the job with exit 1, so no GPU hour is
# spent on an entry whose code path is broken. An entry without models/MODEL/preflight.yaml is not preflighted
# (said, not failed). PREFLIGHT_RUNNER=local runs it in this process instead (the tests).
set -uo pipefail

model="${1:?usage: preflight_step.sh MODEL}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
runner="${PREFLIGHT_RUNNER:-docker}"

if [[ ! -f "models/$model/preflight.yaml" ]]; then
  echo "preflight: models/$model/preflight.yaml not found; $model is not preflighted" | tee -a "$summary"
  exit 0
fi
if collapsebench preflight "$model" --runner "$runner" --summary "$summary"; then
  exit 0
fi
echo "::error title=preflight failed::$model failed preflight before any weights were loaded (the table is in the job summary and results/preflight/$model.json)"
exit 1
