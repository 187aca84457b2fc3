#!/usr/bin/env bash
# Fail a pull request that touches results/ unless the results bot opened it (ci.yml, pull requests only).
# Results reach main only through the GPU workflow, which makes, scores and commits them itself: a results/
# folder added by hand would be shown on the site as "scored here".
#
#   PR_AUTHOR=login [RESULTS_BOT=github-actions[bot]] scripts/check_results_paths.sh BASE
#
# BASE is the pull request's base branch (merge-base diff). RESULTS_BOT is the login of the account that
# commits results (a GitHub App's is <app-slug>[bot]; see the README's "Publishing results"). The check fails
# closed: a BASE that does not resolve, or a diff that fails, fails the pull request. ci.yml runs the base
# branch's copy of this script, so a pull request cannot edit the check away.
set -euo pipefail

base="$1"
bot="${RESULTS_BOT:-github-actions[bot]}"
if ! git rev-parse --quiet --verify "${base}^{commit}" >/dev/null; then
  echo "results: the base revision '$base' does not resolve; failing closed" >&2
  exit 1
fi
listing="$(mktemp)"
trap 'rm -f "$listing"' EXIT
if ! git diff --name-only --no-renames "${base}...HEAD" -- results/ >"$listing"; then
  echo "results: cannot diff '$base'...HEAD; failing closed" >&2
  exit 1
fi
mapfile -t touched <"$listing"
if [[ ${#touched[@]} -eq 0 ]]; then
  echo "results: this pull request leaves results/ alone"
  exit 0
fi
if [[ "${PR_AUTHOR:-}" == "$bot" ]]; then
  echo "results: ${#touched[@]} files under results/, from the results bot ($bot)"
  exit 0
fi
echo "results: this pull request touches results/, which only the GPU workflow's results bot ($bot) writes:"
printf '  %s\n' "${touched[@]}"
echo "Submit a model (models/<name>/) or your images (submissions/<name>/) instead; see CONTRIBUTING.md."
exit 1
