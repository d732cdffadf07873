#!/usr/bin/env bash
# Set up bench on a Debian/Ubuntu machine (run as root), then run it or its tests.
#
#   ./bootstrap.sh run [SUITE] [bench run options]   default suite: suites/quickstart.yaml
#   ./bootstrap.sh test [pytest options]
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

system_packages() {
    # What this machine lacks, collected first and installed in one apt transaction (one
    # index update, one download and unpack pass); "$@": packages the command adds.
    # A Python with venv support (Debian splits it out), git for the run manifest's commit,
    # OpenSSH (client for ssh-keygen, server for the tests' SSH hosts).
    local python_ok=1
    if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        want python3 python3-venv python3-pip
        python_ok=0
    fi
    command -v git >/dev/null 2>&1 || want git
    if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
        want openssh-server openssh-client
    fi
    command -v ip >/dev/null 2>&1 || want iproute2  # network namespaces as test hosts
    # The container target: Debian's Docker engine, and debootstrap for the offline base image
    # (no registry is needed: bench build makes the base from the Debian mirror apt uses).
    command -v dockerd >/dev/null 2>&1 || want docker.io
    # More OCI runtimes for the container target (crun, gVisor's runsc) and a second engine
    # with a Docker-compatible API (Podman).
    want crun runsc podman
    # The Slurm target: the client commands, and the daemons scripts/slurm-local starts.
    want slurm-client slurmctld slurmd munge
    command -v debootstrap >/dev/null 2>&1 || want debootstrap
    # The VM target: QEMU (system emulator and qemu-img) and mkfs.ext4 for the guest disk.
    if ! command -v qemu-system-x86_64 >/dev/null 2>&1 || ! command -v qemu-img >/dev/null 2>&1; then
        want qemu-system-x86 qemu-utils
    fi
    command -v mkfs.ext4 >/dev/null 2>&1 || want e2fsprogs
    want "$@"
    apt_install "${WANT[@]}"
    [ "$python_ok" = 1 ] || PYTHON=python3
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
    if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "creating virtual environment in $VENV"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.bench-installed" want
    want=$(cat pyproject.toml bootstrap.sh | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$VENV/bin/python" -c 'import bench, torch' 2>/dev/null; then
        return 0
    fi
    log "installing bench, torch==2.13.0 and dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q torch==2.13.0
    "$VENV/bin/python" -m pip install -q -e '.[workloads,dev]'
    echo "$want" >"$stamp"
}

setup() {
    system_packages "$@"
    # Register crun and runsc with the Docker engine (merged into daemon.json; the engine is
    # reloaded only when something was added).
    "$PYTHON" scripts/oci-runtimes
    docker_engine
    virtualenv
}

cmd=${1:-run}
shift || true
case "$cmd" in
    run)
        setup
        suite=${1:-suites/quickstart.yaml}
        shift || true
        exec "$VENV/bin/bench" run "$suite" "$@"
        ;;
    test)
        # A static busybox makes the tiny images the container-probe tests run; Chromium
        # opens the HTML reports the way a reader's browser does; systemd-analyze checks the
        # units bench schedule writes (systemd need not be running).
        extra=(busybox-static chromium)
        command -v systemd-analyze >/dev/null 2>&1 || extra+=(systemd)
        setup "${extra[@]}"
        log "ruff check and format check"
        "$VENV/bin/ruff" check .
        "$VENV/bin/ruff" format --check .
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    setup)
        setup
        ;;
    *)
        echo "usage: $0 run [SUITE] [options] | test [pytest options] | setup" >&2
        exit 2
        ;;
esac
