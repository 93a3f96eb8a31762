#!/usr/bin/env bash
# Seed an offline PlatformIO core in tools/.pio-core (gitignored), so that `tools/pio run` and
# `tools/pio test` never touch the network:
#   packages/toolchain-gccarmnoneeabi  a folder of symlinks to Debian's arm-none-eabi-* binaries
#   packages/tool-scons                 SCons from PyPI (pinned), as PlatformIO's core package
#   appstate.json                       "already welcomed", telemetry off, no upgrade checks
# The dev-platforms are local folders (boards/platform-qemu, -native, -stm32) that
# firmware/platformio.ini references as symlink://; PlatformIO links them on first use.
# Idempotent: a second run compares a stamp and returns in well under a second.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORE="${TINYSIFT_PIO_CORE_DIR:-$ROOT/tools/.pio-core}"
PY="$ROOT/.venv/bin/python"
SCONS_VERSION=4.11.1          # PlatformIO 6.2 asks for tool-scons ~4.41101.0 (= SCons 4.11.1)
SCONS_PIO_VERSION=4.41101.0

log() { echo "[pio_seed] $*"; }
die() { echo "[pio_seed] error: $*" >&2; exit 1; }

[ -x "$PY" ] || die "$ROOT/.venv is missing: run tools/setup.sh first"
"$PY" -c "import platformio" 2>/dev/null || die "PlatformIO is not installed in .venv: run tools/setup.sh"
command -v arm-none-eabi-gcc >/dev/null || die "arm-none-eabi-gcc not found (Debian: gcc-arm-none-eabi)"

GCC_FULL=$(arm-none-eabi-gcc -dumpfullversion)                       # e.g. 12.2.1
IFS=. read -r g_major g_minor g_patch <<<"$GCC_FULL"
TOOLCHAIN_VERSION=$(printf '1.%d%02d%02d.0' "$g_major" "${g_minor:-0}" "${g_patch:-0}")
PIO_VERSION=$("$PY" -c "import platformio; print(platformio.__version__)")

STAMP="$CORE/.tinysift-seed"
WANT=$(printf '%s\n' "$(sha256sum "$0" | cut -c1-16)" "$GCC_FULL" "$SCONS_VERSION" "$PIO_VERSION" \
       "$(ls /usr/bin/arm-none-eabi-* | sha256sum | cut -c1-16)")
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
   && [ -f "$CORE/packages/tool-scons/scons.py" ] \
   && [ -x "$CORE/packages/toolchain-gccarmnoneeabi/bin/arm-none-eabi-gcc" ]; then
    log "offline PlatformIO core up to date ($CORE)"
    exit 0
fi

mkdir -p "$CORE/packages" "$CORE/platforms"

# PlatformIO's package metadata (.piopm): owner "platformio" makes the package satisfy the
# platform's and the core's requirements without a registry lookup.
write_piopm() {  # dir name version
    cat > "$1/.piopm" <<JSON
{"type": "tool", "name": "$2", "version": "$3", "spec": {"owner": "platformio", "id": null, "name": "$2", "requirements": null, "uri": null}}
JSON
}

# --- toolchain-gccarmnoneeabi: symlinks to Debian's binaries -------------------------------
TC="$CORE/packages/toolchain-gccarmnoneeabi"
log "toolchain-gccarmnoneeabi $TOOLCHAIN_VERSION -> Debian arm-none-eabi-gcc $GCC_FULL"
rm -rf "$TC"
mkdir -p "$TC/bin"
for exe in /usr/bin/arm-none-eabi-*; do
    ln -s "$exe" "$TC/bin/$(basename "$exe")"
done
cat > "$TC/package.json" <<JSON
{
  "name": "toolchain-gccarmnoneeabi",
  "version": "$TOOLCHAIN_VERSION",
  "description": "GNU Arm Embedded toolchain: symlinks to the Debian package gcc-arm-none-eabi $GCC_FULL",
  "keywords": ["toolchain", "build tools", "compiler", "assembler", "linker"],
  "license": "GPL-2.0-or-later",
  "system": "*"
}
JSON
write_piopm "$TC" toolchain-gccarmnoneeabi "$TOOLCHAIN_VERSION"

# --- tool-scons: SCons from PyPI -------------------------------------------------------------
SC="$CORE/packages/tool-scons"
have_scons=$(cat "$SC/.tinysift-scons" 2>/dev/null || true)
if [ "$have_scons" != "$SCONS_VERSION" ] || [ ! -d "$SC/SCons" ]; then
    log "tool-scons: installing SCons $SCONS_VERSION from PyPI"
    rm -rf "$SC" "$SC.tmp"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-compile \
        --target "$SC.tmp" "scons==$SCONS_VERSION" \
        || die "could not install SCons $SCONS_VERSION from PyPI"
    mv "$SC.tmp" "$SC"
    echo "$SCONS_VERSION" > "$SC/.tinysift-scons"
fi
cat > "$SC/scons.py" <<'PYEOF'
#!/usr/bin/env python3
# Entry point PlatformIO runs as `python scons.py ...`: SCons lives next to this file.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from SCons.Script import main  # noqa: E402

if __name__ == "__main__":
    main()
PYEOF
cat > "$SC/package.json" <<JSON
{
  "name": "tool-scons",
  "version": "$SCONS_PIO_VERSION",
  "description": "SCons $SCONS_VERSION (PyPI) as PlatformIO's build tool package",
  "license": "MIT",
  "system": "*"
}
JSON
write_piopm "$SC" tool-scons "$SCONS_PIO_VERSION"

# --- core state: no welcome banner, no telemetry, no upgrade checks ------------------------
PLATFORMIO_CORE_DIR="$CORE" "$PY" - <<'PYEOF'
import time

from platformio import __version__, app

app.set_state_item("last_version", __version__)
now = int(time.time())
app.set_state_item("last_check", {"platformio_upgrade": now, "prune_system": now})
app.set_setting("enable_telemetry", False)
app.set_setting("check_platformio_interval", 3650)
PYEOF

echo "$WANT" > "$STAMP"
log "offline PlatformIO core ready: $CORE"
