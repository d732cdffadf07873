#!/usr/bin/env bash
# Set up bench on a Debian/Ubuntu machine (run as root), then run it or its tests.
#
#   ./bootstrap.sh run [SUITE] [bench run options]   default suite: suites/quickstart.yaml
#   ./bootstrap.sh test [pytest options]
#   ./bootstrap.sh setup | packages     set up without running; only the system packages
#
# Safe to run again: every step checks what is already there first.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

apt_install() {
    # Install the Debian packages among "$@" that are not installed yet.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

WANT=()
want() { WANT+=("$@"); }
PYTHON_OK=1

PHASES=${BENCH_PHASES:-}  # a file that gets one "phase seconds" line per setup step
timed() {
    # Run "$@" as the phase $1; with BENCH_PHASES set, append how long it took.
    local name=$1 began
    shift
    began=$(date +%s.%N)
    "$@"
    [ -z "$PHASES" ] || awk -v n="$name" -v a="$began" -v b="$(date +%s.%N)" \
        'BEGIN { printf "%s %.3f\n", n, b - a }' >>"$PHASES"
}

system_packages() {
    # What this machine lacks, collected first and installed in one apt transaction (one
    # index update, one download and unpack pass); "$@": packages the command adds.
    # A Python with venv support (Debian splits it out), git for the run manifest's commit,
    # OpenSSH (client for ssh-keygen, server for SSH targets on this host).
    if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        want python3 python3-venv python3-pip
        PYTHON_OK=0
    fi
    command -v git >/dev/null 2>&1 || want git
    if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
        want openssh-server openssh-client
    fi
    command -v ip >/dev/null 2>&1 || want iproute2
    # The container target: Debian's Docker engine, and debootstrap for the offline base image
    # (no registry is needed: bench build makes the base from the Debian mirror apt uses).
    command -v dockerd >/dev/null 2>&1 || want docker.io
    command -v debootstrap >/dev/null 2>&1 || want debootstrap
    # The VM target: QEMU (system emulator and qemu-img) and mkfs.ext4 for the guest disk.
    if ! command -v qemu-system-x86_64 >/dev/null 2>&1 || ! command -v qemu-img >/dev/null 2>&1; then
        want qemu-system-x86 qemu-utils
    fi
    command -v mkfs.ext4 >/dev/null 2>&1 || want e2fsprogs
    want "$@"
}

docker_running() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

docker_engine() {
    # Start the engine when it is not answering: systemd where it runs, else dockerd directly
    # (containers and minimal machines have no init system to ask).
    docker_running && return 0
    log "starting the Docker engine"
    if [ -d /run/systemd/system ]; then
        systemctl start docker || true
    fi
    if ! docker_running; then
        # In a subshell, so the engine is not a child of this script (which execs pytest).
        (setsid nohup dockerd >/var/log/bench-dockerd.log 2>&1 </dev/null &)
    fi
    for _ in $(seq 60); do
        docker_running && return 0
        sleep 1
    done
    log "the Docker engine did not start; see /var/log/bench-dockerd.log"
    exit 1
}

virtualenv() {
    # bench and torch==2.13.0 in $VENV with the extras "$1" (run: workloads; test: the test
    # tools too), reinstalled only when pyproject.toml or this script changed or an extra is
    # missing.
    local extras=$1 stamp="$VENV/.bench-installed" hash have
    if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "creating virtual environment in $VENV"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    hash=$(cat pyproject.toml bootstrap.sh | sha256sum | cut -d' ' -f1)
    have=$(cat "$stamp" 2>/dev/null || true)
    if [ "${have%% *}" = "$hash" ] && covered "$extras" "${have#* }" \
        && "$VENV/bin/python" -c 'import bench, importlib.util as u; assert u.find_spec("torch")' 2>/dev/null; then
        return 0
    fi
    log "installing bench[$extras] and torch==2.13.0 into $VENV"
    # One pip call: one resolution of torch and bench's dependencies together.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.13.0 -e ".[$extras]"
    echo "$hash $extras" >"$stamp"
}

covered() {
    # Whether every comma-separated extra in $1 is among those in $2.
    local extra
    for extra in ${1//,/ }; do
        case ",$2," in *",$extra,"*) ;; *) return 1 ;; esac
    done
}

setup() {
    # "$1": the venv's extras; the rest: system packages the command adds. apt and pip run
    # side by side when this Python can already make a venv (both mostly download), else
    # apt goes first.
    local extras=$1
    shift
    system_packages "$@"
    if [ "$PYTHON_OK" = 1 ]; then
        timed apt apt_install "${WANT[@]}" &
        local apt=$!
        timed venv virtualenv "$extras"
        wait "$apt"
    else
        timed apt apt_install "${WANT[@]}"
        PYTHON=python3
        timed venv virtualenv "$extras"
    fi
    # Register crun and runsc with the Docker engine where installed (merged into
    # daemon.json; the engine is reloaded only when something was added).
    timed runtimes "$PYTHON" scripts/oci-runtimes
    timed docker docker_engine
}

cmd=${1:-run}
shift || true
case "$cmd" in
    run)
        setup workloads
        suite=${1:-suites/quickstart.yaml}
        shift || true
        exec "$VENV/bin/bench" run "$suite" "$@"
        ;;
    test)
        # More OCI runtimes (crun, gVisor's runsc) and a second engine with a Docker-compatible
        # API (Podman); the Slurm daemons scripts/slurm-local starts; Prometheus and its
        # Pushgateway for the export round trip; a static busybox makes the tiny images the
        # container-probe tests run; Chromium opens the HTML reports the way a reader's
        # browser does; systemd-analyze checks the units bench schedule writes (systemd need
        # not be running).
        extra=(crun runsc podman slurm-client slurmctld slurmd munge prometheus
            prometheus-pushgateway busybox-static chromium)
        command -v systemd-analyze >/dev/null 2>&1 || extra+=(systemd)
        setup workloads,dev "${extra[@]}"
        log "ruff check and format check"
        "$VENV/bin/ruff" check .
        "$VENV/bin/ruff" format --check .
        # The tests' targets use the quickstart's matched artefacts: built here side by side
        # (image and guest at once) rather than one after the other by the first tests that
        # need them. The quick set needs none.
        case " $* " in
            *"not slow"*) ;;
            *) timed build "$VENV/bin/bench" build suites/quickstart.yaml ;;
        esac
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    setup)
        setup workloads
        ;;
    packages)
        # Only the system packages the run command needs (e.g. to bake them into an image).
        system_packages
        timed apt apt_install "${WANT[@]}"
        ;;
    *)
        echo "usage: $0 run [SUITE] [options] | test [pytest options] | setup | packages" >&2
        exit 2
        ;;
esac
