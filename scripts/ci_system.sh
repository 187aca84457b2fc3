#!/usr/bin/env bash
# System pieces the optional tests need, installed from Debian packages on a fresh CI machine:
# headless Chromium (site screenshots), a Docker engine + local base image (real-container test), a Podman
# service with the same base image (podman engine test; after Docker, whose wheels it reuses) and a
# one-node Slurm cluster on CPU (Slurm launcher tests).
# Never fails the run: where something cannot be installed, the tests that need it skip and say why.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if ! command -v chromium >/dev/null 2>&1; then
    echo "ci_system: installing chromium"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "ci_system: chromium could not be installed; screenshot tests will skip"
fi
bash scripts/ci_docker.sh
bash scripts/ci_podman.sh
bash scripts/ci_slurm.sh
