#!/usr/bin/env bash
# Fuzz the device side on the host with libFuzzer + ASan + UBSan for a bounded time.
#
#   tools/fuzz.sh TARGET [SECONDS]     (default 60)
#
# TARGET (harnesses in firmware/test/fuzz/, seeds in firmware/test/fuzz/corpus*/):
#   protocol  TSP/1: framer, command parser, number parsers, db decoder, record writer
#             (fuzz_protocol.c; seeds corpus/)
#   app       the firmware app's command dispatch and db-load state machine with a real
#             export compiled in (fuzz_app.c, export/; seeds corpus-app/)
#   model     the engine's model validation: malformed layer tables (chains and graphs with
#             their tensor tables) through ts_model_check, the executor (its output against a
#             layer-by-layer reference) and the trainer's sizes, malformed .tflite through
#             ts_tflite (fuzz_model.c; seeds corpus-model/)
#   model-dsp the same with TS_USE_DSP=1: the DSP kernels (instructions emulated in C) and their
#             scratch, checked against the scalar reference (seeds corpus-model/)
# Working corpus, crash artifacts and the binary: build/fuzz/TARGET/ (gitignored; FUZZ_OUT=DIR
# puts them elsewhere). FUZZ_RUNS=N stops after N executions instead of the time; FUZZ_JOBS=N
# runs N workers (default 1). Exit status: 0 when no crash, else libFuzzer's (the crashing
# input is left in the output folder). Needs Debian's clang and libclang-rt-14-dev
# (tools/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?usage: tools/fuzz.sh protocol|app|model|model-dsp [SECONDS]}
SECONDS_TO_RUN=${2:-60}
OUT=${FUZZ_OUT:-build/fuzz/$TARGET}
BIN=$OUT/fuzz_${TARGET//-/_}
CC=${CC_FUZZ:-clang}
FUZZ=firmware/test/fuzz
ENGINE=firmware/lib/tsengine/src
PROTO=firmware/lib/tsproto/src
mkdir -p "$OUT/corpus"

INC=(-I"$PROTO" -Iboards/runtime/include)
DEFS=()
UNCOVERED=() # sources built with the sanitizers but without the fuzzer's coverage
case $TARGET in
protocol)
    SRCS=("$FUZZ"/fuzz_protocol.c "$PROTO"/ts_protocol.c boards/runtime/src/ts_format.c)
    SEEDS=$FUZZ/corpus ;;
model|model-dsp)
    SRCS=("$FUZZ"/fuzz_model.c "$ENGINE"/*.c)
    INC+=(-I"$ENGINE" -Ifirmware/lib/tsengine/include)
    if [ "$TARGET" = model-dsp ]; then
        DEFS=(-DTS_USE_DSP=1)
    fi
    SEEDS=$FUZZ/corpus-model ;;
app)
    # The engine's kernels run real training and inference here; with coverage tracing on
    # every compare they took ~85% of the time (103 exec/s). They are the `model` target's
    # subject: here they run under ASan + UBSan at -O2 but uncovered (~870 exec/s), so the
    # fuzzer steers by the app's dispatch and db-load branches only.
    UNCOVERED=("$ENGINE"/*.c)
    SRCS=("$FUZZ"/fuzz_app.c firmware/src/*.c "$PROTO"/ts_protocol.c
          boards/runtime/src/ts_format.c boards/runtime/src/ts_port_info.c "$FUZZ"/export/ts_export_model.c
          "$FUZZ"/export/ts_export_data.c)
    INC+=(-I"$ENGINE" -Ifirmware/lib/tsengine/include -Ifirmware/src -I"$FUZZ"/export)
    # an assignment first: set -e stops on the script's failure (a here-string would hide it)
    DIMS_FLAGS=$(python3 firmware/scripts/ts_model_dims.py "$FUZZ"/export)
    read -r -a DIMS <<< "$DIMS_FLAGS"
    DEFS=(-DTS_HAVE_EXPORT -Dmain=ts_app_main "${DIMS[@]}")
    SEEDS=$FUZZ/corpus-app ;;
*)
    echo "unknown target $TARGET (protocol, app, model or model-dsp)" >&2
    exit 2 ;;
esac

if [ ! -x "$BIN" ] || [ -n "$(find "${SRCS[@]}" "$FUZZ" firmware/src "$ENGINE" "$PROTO" \
        boards/runtime -newer "$BIN" -type f 2>/dev/null | head -1)" ]; then
    echo "[fuzz] building $BIN"
    SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    OBJS=()
    mkdir -p "$OUT/obj"
    for src in "${UNCOVERED[@]}"; do
        obj=$OUT/obj/$(basename "$src" .c).o
        "$CC" -std=c99 -g -O2 -Wall -Wextra -Werror "${SAN[@]}" "${INC[@]}" "${DEFS[@]}" \
            -c "$src" -o "$obj"
        OBJS+=("$obj")
    done
    "$CC" -std=c99 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer "${SAN[@]}" \
        "${INC[@]}" "${DEFS[@]}" "${SRCS[@]}" "${OBJS[@]}" -lm -o "$BIN"
fi

# A small ASan quarantine keeps the RSS near 100 MB instead of growing to ~600 MB (added to
# any ASAN_OPTIONS the caller set, not replaced by them).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
LIMIT=(-max_total_time="$SECONDS_TO_RUN")
WHAT="$SECONDS_TO_RUN s"
if [ -n "${FUZZ_RUNS:-}" ]; then
    LIMIT=(-runs="$FUZZ_RUNS")
    WHAT="$FUZZ_RUNS runs"
fi
echo "[fuzz] $TARGET: $WHAT (seeds: $SEEDS)"
exec "$BIN" "$OUT/corpus" "$SEEDS" "${LIMIT[@]}" -max_len=4096 -timeout=10 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$OUT/" \
    ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS}
