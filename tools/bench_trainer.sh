#!/usr/bin/env bash
# The on-device trainer on QEMU mps2-an386 under -icount (instructions, deterministic):
# tools/bench/trainer_bench.c built for the Cortex-M4F FPU (m4f) and with the engine as
# Cortex-M0+ soft-float code (m0plus). Built by hand with arm-none-eabi-gcc from the QEMU
# platform runtime (boards/), independent of PlatformIO.
#   tools/bench_trainer.sh EXPORT_DIR [EPOCHS] [m4f|m0plus|all] [BENCH_* FLAGS...]
# e.g. tools/bench_trainer.sh runs/x/export 1 m4f -DBENCH_UPDATE=2 -DBENCH_STEPS=40
# (BENCH_UPDATE 0 head, 1 last-block, 2 bias; BENCH_STEPS, BENCH_SCHEDULE, BENCH_BALANCE,
# BENCH_CACHE: tools/bench/trainer_bench.c).
# Needs arm-none-eabi-gcc (Debian) and qemu-system-arm. Prints one block per build
# ("== NAME" then the bench's lines); exits non-zero if a build or run fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export_dir=$(cd "${1:?usage: tools/bench_trainer.sh EXPORT_DIR [EPOCHS]}" && pwd)
epochs=${2:-2}
which=${3:-all}
case $which in m4f|m0plus|all) ;; *) echo "unknown build '$which' (m4f, m0plus or all)" >&2; exit 2 ;; esac
bench_flags=("${@:4}")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
eng=$root/firmware/lib/tsengine/src
rt=$root/boards/runtime
qr=$root/boards/platform-qemu/runtime
cm=$rt/cortex-m
inc=(-I"$eng" -I"$export_dir" -I"$rt/include" -I"$cm" -I"$qr")
# an assignment first: set -e stops on the script's failure (a here-string would hide it)
dims_flags=$(python3 "$root/firmware/scripts/ts_model_dims.py" "$export_dir")
read -r -a dims <<< "$dims_flags"
defs=(-DTS_TARGET_QEMU -DTS_SYSTICK_HZ=25000000u -DTS_SYSTICK_NS_NUM=40u -DTS_SYSTICK_NS_DEN=1u
      -DBENCH_EPOCHS="${epochs}u" "${dims[@]}"
      "${bench_flags[@]}")
common=(-std=c99 -O2 -g -ffunction-sections -fdata-sections -Wall -Wextra)
runtime_src=("$qr"/*.c "$rt"/src/*.c "$cm"/*.c)
engine_src=("$eng"/ts_executor.c "$eng"/ts_kernels*.c "$eng"/ts_softmax*.c "$eng"/ts_trainer.c
            "$eng"/ts_trainer_data.c "$eng"/ts_trainer_tail.c "$eng"/ts_tflite.c
            "$export_dir"/ts_export_model.c
            "$export_dir"/ts_export_data.c "$root"/tools/bench/trainer_bench.c)

build() { # name, runtime cpu flags, engine cpu flags, link cpu flags
    local name=$1 dir=$out/$1
    local -a rtf=($2) enf=($3) lnf=($4) objs=()
    mkdir -p "$dir"
    for s in "${runtime_src[@]}"; do
        arm-none-eabi-gcc "${rtf[@]}" -mthumb "${common[@]}" "${defs[@]}" "${inc[@]}" \
            -c "$s" -o "$dir/rt_$(basename "$s").o"
        objs+=("$dir/rt_$(basename "$s").o")
    done
    for s in "${engine_src[@]}"; do
        arm-none-eabi-gcc "${enf[@]}" -mthumb "${common[@]}" "${defs[@]}" "${inc[@]}" \
            -c "$s" -o "$dir/en_$(basename "$s").o"
        objs+=("$dir/en_$(basename "$s").o")
    done
    arm-none-eabi-gcc "${lnf[@]}" -mthumb --specs=nano.specs -nostartfiles \
        -Wl,--gc-sections -Wl,--no-warn-rwx-segments -L"$cm" \
        -T "$root/boards/platform-qemu/ldscripts/qemu_mps2.ld" "${objs[@]}" -lm \
        -o "$dir/bench.elf"
    echo "== $name"
    arm-none-eabi-size "$dir/bench.elf" | tail -1 | awk '{print "size text " $1 " data " $2 " bss " $3}'
    timeout 1200 qemu-system-arm -machine mps2-an386 -nographic -monitor none -serial stdio \
        -icount shift=6 -semihosting-config enable=on,target=native -kernel "$dir/bench.elf"
}

if [[ $which == m4f || $which == all ]]; then
build m4f "-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard" \
    "-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard" \
    "-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard"
fi
# M0+ code (ARMv6-M, soft float); the QEMU runtime stays ARMv7-M (same soft-float ABI).
if [[ $which == m0plus || $which == all ]]; then
build m0plus "-mcpu=cortex-m4 -mfloat-abi=soft" \
    "-mcpu=cortex-m0plus -mfloat-abi=soft" "-mcpu=cortex-m0plus -mfloat-abi=soft"
fi
