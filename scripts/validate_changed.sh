#!/usr/bin/env bash
# Validate the model folders and results submissions that a change touched, as CI does.
#
#   scripts/validate_changed.sh BASE   # folders changed between git BASE and HEAD (merge-base diff)
#   scripts/validate_changed.sh        # no usable base (first push of a branch, force push): every folder
#
# Every problem is printed with its file and field; the exit code is non-zero if any folder has one.
set -euo pipefail

base="${1:-}"
if [[ -z "$base" || "$base" =~ ^0+$ ]] || ! git rev-parse --quiet --verify "${base}^{commit}" >/dev/null; then
  echo "validate: no usable base revision (${base:-none}); checking every model and submission folder"
  exec collapsebench validate --all
fi
echo "validate: model and submission folders changed since ${base}"
exec collapsebench validate --changed "$base"
