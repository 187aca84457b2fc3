#!/usr/bin/env bash
# Build a minimal Debian base image locally, for hosts that reach Debian's
# package archive but no container registry (CI, air-gapped builders).
#
#   scripts/make_base_image.sh [TAG] [SUITE]      (defaults: collapsebench-base:bookworm, bookworm)
#
# It debootstraps a minbase root file system with Python from the Debian mirror
# this host's apt already uses, then `docker import`s it. Idempotent: an image
# that already has TAG is kept (delete it to rebuild). Needs root, debootstrap
# and a running Docker engine. The shared base of every image (docker/base/Dockerfile) takes it through
# `--build-arg BASE_IMAGE=TAG` (`--base-image TAG` for collapsebench); its default stays the pinned CUDA image.
set -euo pipefail

tag="${1:-collapsebench-base:bookworm}"
suite="${2:-bookworm}"
packages="python3,python3-venv,python3-pip,ca-certificates"

if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "make_base_image: $tag exists, kept"
    exit 0
fi

# The first Debian archive URI apt is configured with (deb822 .sources or one-line .list).
mirror="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
          | grep -v -- '-security' | head -n 1 || true)"
if [ -z "$mirror" ]; then
    mirror="$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' \
              /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v -- '-security' | head -n 1 || true)"
fi
if [ -z "$mirror" ]; then
    echo "make_base_image: no Debian mirror found in /etc/apt/sources.list(.d); cannot debootstrap" >&2
    exit 1
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "make_base_image: debootstrap $suite from $mirror"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import - "$tag" >/dev/null
echo "make_base_image: built $tag"
