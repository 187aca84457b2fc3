#!/usr/bin/env bash
# Make a Podman service and the Debian base image available for the podman engine's real-container tests
# (tests/test_podman_runner.py), on a CI machine that reaches the package registries but no container
# registry. Run after scripts/ci_docker.sh, which downloads the wheels (docker/cpu/wheels/) the tests'
# CPU image is built from. Idempotent: every step is skipped when its result is already there.
#
#   1. install podman and runc (apt) when podman is missing
#   2. start `podman system service` on the rootful socket /run/podman/podman.sock when no service answers
#      there (log: /tmp/collapsebench-podman.log, pid: /tmp/collapsebench-podman.pid)
#   3. put the base image collapsebench-base:bookworm into Podman's store: Docker's copy when Docker has one
#      (docker save | podman load), else scripts/make_base_image.sh with podman standing in for docker (the
#      two commands it runs, `image inspect` and `import`, are the same in both)
#   4. start a probe container locked down as the runner's; where it cannot start, write what this host
#      lacks into /etc/containers/containers.conf.d/collapsebench-ci.conf, restart the service, probe again:
#      - runtime = "runc" where the host mounts cgroup v1 controllers beside a cgroup2 hierarchy, which crun
#        refuses ("cgroups in hybrid mode not supported");
#      - default_ulimits = the service's own hard limits of open files and processes. A rootful Podman asks
#        the runtime for 1048576 of each; without CAP_SYS_RESOURCE (Podman inside a container, as on CI)
#        the runtime cannot raise them ("error setting rlimits ... operation not permitted"), whatever the
#        runtime. The service's own limits are what a Docker container inherits from dockerd. They are read
#        from the service process, not this shell: Podman lowers its process limit to 32768 (Podman 4.3).
#
# Exit status 0 even when Podman cannot run here (the tests then skip with the reason): the reason is printed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
started=$(date +%s)
socket=/run/podman/podman.sock
base=collapsebench-base:bookworm
dropin=/etc/containers/containers.conf.d/collapsebench-ci.conf
pidfile=/tmp/collapsebench-podman.pid
log=/tmp/collapsebench-podman.log

note() { echo "ci_podman: $*"; }
answers() { podman --url "unix://$socket" version >/dev/null 2>&1; }
ours() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
probe() {
    podman run --rm --network none --cap-drop ALL --security-opt no-new-privileges --read-only \
        --user 10001:10001 "$base" true 2>&1
}
start_service() {
    mkdir -p "$(dirname "$socket")"
    # From /, not the checkout: conmon inherits the service's working folder and cannot start a container
    # once that folder is gone ("write child: broken pipe" after a CI clone is deleted).
    (cd / && exec nohup podman system service --time=0 "unix://$socket" >"$log" 2>&1) &
    echo $! >"$pidfile"
    for _ in $(seq 1 30); do
        answers && return 0
        sleep 1
    done
    return 1
}
hybrid_cgroups() {  # cgroup v1 controllers and a cgroup2 hierarchy beside them (crun refuses to run there)
    awk '$3 == "cgroup" { v1 = 1 } $3 == "cgroup2" && $2 != "/sys/fs/cgroup" { v2 = 1 } END { exit !(v1 && v2) }' \
        /proc/mounts
}
hard_limit() {  # hard_limit PID "Max open files": that limit's hard value for the process
    awk -v name="$2" 'index($0, name) == 1 { print $(NF - 1) }' "/proc/$1/limits"
}

if ! command -v podman >/dev/null 2>&1; then
    note "installing podman and runc"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null) \
        || note "apt-get could not install podman/runc"
fi
if ! command -v podman >/dev/null 2>&1; then
    note "podman is not installed; podman tests will skip"
    exit 0
fi

if ! answers; then
    note "starting the Podman service on $socket"
    start_service || { note "the Podman service did not answer (see $log); podman tests will skip"; exit 0; }
fi

if ! podman image exists "$base"; then
    if docker image inspect "$base" >/dev/null 2>&1; then
        note "loading $base from Docker"
        docker save "$base" | podman load >/dev/null || note "docker save | podman load failed"
    else
        shim="$(mktemp -d)"
        ln -s "$(command -v podman)" "$shim/docker"
        PATH="$shim:$PATH" bash scripts/make_base_image.sh "$base" || note "base image build failed"
        rm -rf "$shim"
    fi
fi
podman image exists "$base" || { note "no $base in Podman; podman tests will skip"; exit 0; }

if ! failure="$(probe)"; then
    note "a probe container cannot start: $(echo "$failure" | tail -n 1)"
    if ours; then
        pid="$(cat "$pidfile")"
    else
        pid="$(pgrep -o -f "podman system service" || true)"
    fi
    mkdir -p "$(dirname "$dropin")"
    {
        echo "# Written by scripts/ci_podman.sh: what this host needs to start the runner's containers."
        echo "[containers]"
        if [ -n "$pid" ]; then
            echo "default_ulimits = [\"nofile=$(hard_limit "$pid" "Max open files"):$(hard_limit "$pid" "Max open files")\", \"nproc=$(hard_limit "$pid" "Max processes"):$(hard_limit "$pid" "Max processes")\"]"
        fi
        if hybrid_cgroups && command -v runc >/dev/null 2>&1; then
            echo "[engine]"
            echo "runtime = \"runc\""
        fi
    } >"$dropin.new"
    mv "$dropin.new" "$dropin"
    note "wrote $dropin: $(grep -v '^#' "$dropin" | tr '\n' ' ')"
    if ours; then
        kill "$(cat "$pidfile")" && sleep 1
        start_service || note "the Podman service did not come back (see $log)"
    else
        note "restart the Podman service that was already running, so that it reads $dropin"
    fi
    failure="$(probe)" || { note "the probe still fails ($(echo "$failure" | tail -n 1)); podman tests will fail"; exit 0; }
fi
note "ready in $(( $(date +%s) - started )) s"
