#!/usr/bin/env bash
# Make a Docker engine and the CPU test image's inputs available for the
# real-container tests (tests/test_docker_runner.py, tests/test_eval_container.py), on a CI machine that
# reaches the package registries but no container registry. Idempotent:
# every step is skipped when its result is already there.
#
#   1. install docker.io and debootstrap (apt) when dockerd is missing
#   2. start dockerd in the background when no engine answers (log: /tmp/collapsebench-dockerd.log)
#   3. build the Debian base image collapsebench-base:bookworm (scripts/make_base_image.sh)
#   4. download the CPU image's wheels into docker/cpu/wheels/ (pip download), again when the
#      requirements change (docker/cpu/requirements.txt, docker/eval/requirements*.txt)
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
        (cd / && exec nohup dockerd >/tmp/collapsebench-dockerd.log 2>&1) &  # from /: never holds a checkout
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

# The marker holds the sha256 of the requirements files the wheels were downloaded for, so a changed pin
# refills the folder. The download goes to a fresh folder (wheels already here are reused, not fetched
# again) that then replaces the old one, so no wheel of an old pin is left in the image's build context.
wheels=docker/cpu/wheels
requirements=(docker/cpu/requirements.txt docker/eval/requirements.txt docker/eval/requirements-no-deps.txt)
wanted="$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$wheels/.complete" 2>/dev/null)" != "$wanted" ]; then
    note "downloading wheels for the CPU test image (requirements new or changed)"
    mkdir -p "$wheels"
    fresh="$(mktemp -d)"
    if "$python" -m pip download -q --only-binary=:all: --find-links "$wheels" --dest "$fresh" \
        -r docker/cpu/requirements.txt \
        && "$python" -m pip download -q --only-binary=:all: --no-deps --find-links "$wheels" --dest "$fresh" \
            -r docker/eval/requirements-no-deps.txt; then
        rm -rf "$wheels" && mv "$fresh" "$wheels" && chmod 755 "$wheels" && echo "$wanted" >"$wheels/.complete"
    else
        rm -rf "$fresh"
        note "pip download failed; the CPU test image cannot be built"
    fi
fi
note "ready in $(( $(date +%s) - started )) s"
