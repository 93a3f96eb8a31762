#!/usr/bin/env bash
# Fuzz the device side of TSP/1 (framer, command parser, number parsers, db decoder, record
# writer) on the host with libFuzzer + ASan + UBSan for a bounded time.
#
#   tools/fuzz_protocol.sh [SECONDS]     (default 60)
#
# Harness: firmware/test/fuzz/fuzz_protocol.c. Seeds: firmware/test/fuzz/corpus/ (committed,
# never written to). Working corpus, crash artifacts and the binary: build/fuzz/ (gitignored;
# FUZZ_OUT=DIR puts them elsewhere, e.g. a fresh folder per test run).
# Exit status: 0 when no crash, else libFuzzer's (a crash input is left in build/fuzz/).
# Needs Debian's clang and libclang-rt-14-dev (tools/setup.sh installs both).
# FUZZ_JOBS=N runs N workers (default 1; this machine has 2 cores and other work).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
OUT=${FUZZ_OUT:-build/fuzz}
BIN=$OUT/fuzz_protocol
CC=${CC_FUZZ:-clang}
mkdir -p "$OUT/corpus"

SRCS=(firmware/test/fuzz/fuzz_protocol.c firmware/lib/tsproto/src/ts_protocol.c
      boards/runtime/src/ts_format.c)
if [ ! -x "$BIN" ] || [ -n "$(find "${SRCS[@]}" firmware/lib/tsproto/src/ts_protocol.h \
        boards/runtime/include/ts_platform.h -newer "$BIN" 2>/dev/null)" ]; then
    echo "[fuzz] building $BIN"
    "$CC" -std=c99 -g -O1 -Wall -Wextra -Werror \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -fno-omit-frame-pointer \
        -Ifirmware/lib/tsproto/src -Iboards/runtime/include \
        "${SRCS[@]}" -o "$BIN"
fi

# A small ASan quarantine keeps the RSS near 100 MB instead of growing to ~600 MB (the code
# under test never frees anything; only the harness's exact-size copies are freed).
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16}
echo "[fuzz] running for ${SECONDS_TO_RUN} s (seeds: firmware/test/fuzz/corpus)"
exec "$BIN" "$OUT/corpus" firmware/test/fuzz/corpus \
    -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$OUT/" ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS}
