#!/usr/bin/env bash
# Make a Docker engine and the CPU test image's inputs available for the
# real-container tests (tests/test_docker_runner.py), on a CI machine that
# reaches the package registries but no container registry. Idempotent:
# every step is skipped when its result is already there.
#
#   1. install docker.io and debootstrap (apt) when dockerd is missing
#   2. start dockerd in the background when no engine answers (log: /tmp/collapsebench-dockerd.log)
#   3. build the Debian base image collapsebench-base:bookworm (scripts/make_base_image.sh)
#   4. download the CPU image's wheels into docker/cpu/wheels/ (pip download)
#
# The tests build the CPU image itself through the docker runner. Exit status
# is 0 even when no engine can run here (the tests then skip with the reason):
# the reason is printed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
started=$(date +%s)
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3  # before the project's venv exists (the tests rerun this script then)

note() { echo "ci_docker: $*"; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    note "installing docker.io and debootstrap"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null) \
        || note "apt-get could not install docker.io/debootstrap"
fi

if ! docker info >/dev/null 2>&1; then
    if command -v dockerd >/dev/null 2>&1; then
        note "starting dockerd"
        nohup dockerd >/tmp/collapsebench-dockerd.log 2>&1 &
        for _ in $(seq 1 60); do
            docker info >/dev/null 2>&1 && break
            sleep 1
        done
    fi
fi
if ! docker info >/dev/null 2>&1; then
    note "no Docker engine could be started here (see /tmp/collapsebench-dockerd.log); container tests will skip"
    exit 0
fi

bash scripts/make_base_image.sh collapsebench-base:bookworm || note "base image build failed"

wheels=docker/cpu/wheels
if [ ! -f "$wheels/.complete" ]; then
    note "downloading wheels for the CPU test image"
    mkdir -p "$wheels"
    if "$python" -m pip download -q --only-binary=:all: --dest "$wheels" -r docker/cpu/requirements.txt; then
        touch "$wheels/.complete"
    else
        note "pip download failed; the CPU test image cannot be built"
    fi
fi
note "ready in $(( $(date +%s) - started )) s"
