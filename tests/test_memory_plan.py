"""The memory plan (tinysift.export.memory) against real builds of the firmware app.

For each export below, the app is built for the emulated Cortex-M4F (tools/pio, qemu-m4, the
export compiled in) and every line of the plan is compared with the ELF: the sizes of the
symbols the line stands for (arm-none-eabi-nm), the sections (arm-none-eabi-size) and the
device's own report (`info`, `@mem`, over TSP/1 in QEMU). A line the plan computes is exact;
the two lines it estimates (the code, the app's state besides its buffers) are never below
the real figure, nor far above it; the totals are never below the image's.

* demo: the Fashion-MNIST ds-cnn as `tinysift demo` exports it (a replay set of 20 samples
  per old class in flash, room for 200 new samples in RAM, 300 test samples), with the
  default firmware and exported head-only as `tinysift adapt --update head` does
  (export.json ``backbone_training: false``, which tinysift.device.build builds with
  -DTS_APP_BACKBONE_TRAINING=0: the plan the demo's "largest replay set that fits" uses);
* nano33ble-fit: the largest training set the plan fits into a 256 KB-RAM board (nano33ble,
  `export --fit`): the real image must then fit that board.

The base model is the golden-fmnist run of tests/test_engine_golden.py (the same stages and
parameters, so one training serves both); each export is written into a copy of that run.
Every image is built as the product builds it (tinysift.device.build.build_firmware, from
the export alone).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_device_firmware import Device, ok
from tinysift.boards import load_board
from tinysift.export.memory import model_footprint, plan_memory
from tinysift.export.tflite_reader import parse_tflite
from tools_needed import FIRMWARE_TOOLS, need_tools

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "runs" / "_scratch"

IMAGE_BOARD = "qemu-mps2-an386"  # the board the test images are built and run for
# plan line(s) -> the ELF symbols they stand for (exact)
RAM_SYMBOLS = {
    ("activation arena",): ["s_arena"],
    ("db buffer (streamed set)",): ["app_db_x", "app_db_y"],
    # the training features share one buffer with the float layers' workspace
    ("feature cache (int8)", "backbone training state (last-block / bias)"):
        ["s_shared", "s_cache_test"],
    ("head training state",): ["s_ws"],
    ("re-quantized head",): ["s_head_w", "s_head_b"],
    ("re-quantized backbone",): ["s_bb_q"],
    ("layer table (RAM copy, patched after training)",): ["s_layers"],
    ("per-class counts",): ["s_per_class"],
    ("I/O buffers (line, record)",): ["g_line", "s_rec_buf"],
}
FLASH_SYMBOLS = {
    ("weights and layer table",): r"ts_export_l\d+_(weights|bias|multiplier|shift)|"
                                  r"ts_export_layers",
    ("training set (int8)",): r"ts_export_train_[xy]",
    ("test set (int8)",): r"ts_export_test_[xy]",
    ("head init (float)",): r"ts_export_head_(weights|bias)|k_zero_head",
    # (dropped by the linker when the app is built without update=last-block / bias)
    ("raw .tflite (scales for last-block / bias)",): r"ts_export_tflite",
    ("VQ codebook (db stream coverage)",): r"ts_export_vq_\w+",
}
# estimated lines: what the rest of RAM / flash holds; (line, most it may exceed the real by)
# (lines, most they may exceed the real by): the app's state and the db stream's bookkeeping
# (a few statics of app_stream.c and ts_replay's workspace) are counted together
RAM_ESTIMATE = (("app state and runtime", "db stream upkeep"), 1024)
FLASH_ESTIMATE = (("engine code",), 8 * 1024)
RAM_SECTIONS = (".stack", ".data", ".bss", ".noinit")
FLASH_SECTIONS = (".isr_vector", ".text", ".ARM.extab", ".ARM.exidx", ".init_array", ".data")


@pytest.fixture(scope="module", autouse=True)
def _tools_present():
    need_tools(*FIRMWARE_TOOLS, "arm-none-eabi-nm", pio=True)


@pytest.fixture(scope="module")
def base_run() -> Path:
    """The Fashion-MNIST ds-cnn of tests/test_engine_golden.py (cached by the stages)."""
    from scratch import scratch_run
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    with scratch_run("golden-fmnist") as run:
        train("fashion-mnist", run, keep=3000, epochs=3, seed=0, progress=False)
        quantize(run)
    return run


def _export_copy(base: Path, name: str, **kw) -> Path:
    from scratch import scratch_run
    from tinysift.stages.export import export

    with scratch_run(f"memplan-{name}") as run:
        run.mkdir(parents=True, exist_ok=True)
        # the whole model lineage: export checks the quantized model came from the trained one
        for f in ("manifest.json", "model.keras", "model.tflite", "trainset.npz"):
            if not (run / f).exists() or (run / f).read_bytes() != (base / f).read_bytes():
                shutil.copyfile(base / f, run / f)
        return export(run, **kw).export_dir


def _demo_export(base: Path, backbone_training: bool = True) -> Path:
    """As the demo exports: classes 0-7, 20 per class in flash, 200 streamed, 30 test per
    class (firmware built with room for the streamed set); ``backbone_training=False``: as
    `tinysift adapt --update head` exports it (head-only)."""
    from tinysift.data import load_dataset

    ds = load_dataset("fashion-mnist")
    replay = np.concatenate([np.flatnonzero(ds.y_train == c)[:20] for c in range(8)])
    tests = np.sort(np.concatenate([np.flatnonzero(ds.y_test == c)[:30] for c in range(10)]))
    return _export_copy(base, "demo" if backbone_training else "demo-head-only",
                        test_samples=len(tests), db_capacity=200, train_indices=replay,
                        test_indices=tests, backbone_training=backbone_training)


def _demo_head_only_export(base: Path) -> Path:
    return _demo_export(base, backbone_training=False)


def _fit_export(base: Path) -> Path:
    return _export_copy(base, "nano33ble", board="nano33ble", fit=True, test_samples=200)


def _stm32_export(base: Path) -> Path:
    """The digits export test_device_firmware.py runs on the STM32F405 (300 training samples,
    a 100-sample db buffer: 93 % of its 128 KB; a Fashion-MNIST model with the backbone
    buffers does not fit it)."""
    from test_device_firmware import _build_export

    return _build_export("proto-digits-stm32f4", board="qemu-netduinoplus2", db_capacity=100)


# name: (export, boards planned, backbone buffers built in, the board the image is built for)
CASES = {
    "demo": (_demo_export, ("qemu-mps2-an386", "nano33ble"), True, IMAGE_BOARD),
    "demo-head-only": (_demo_head_only_export, ("nano33ble",), False, IMAGE_BOARD),
    "nano33ble-fit": (_fit_export, ("nano33ble",), True, IMAGE_BOARD),
    # the STM32 port's own image (its runtime: the USART receive ring, the clock's state)
    "netduinoplus2-digits": (_stm32_export, ("qemu-netduinoplus2", "nucleo_f411re"), True,
                             "qemu-netduinoplus2"),
}


def _build(export_dir: Path, ws: Path, backbone: bool, board: str = IMAGE_BOARD) -> Path:
    """The image as tinysift builds it from the export (build_firmware: a head-only export
    gets its flag from export.json, nothing here adds it)."""
    from tinysift.device.build import build_firmware

    info = json.loads((export_dir / "export.json").read_text())
    assert info.get("backbone_training", True) is backbone
    return build_firmware(export_dir, load_board(board), ws).elf


def elf_figures(elf: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(section sizes, symbol sizes) of an ELF."""
    size = subprocess.run(["arm-none-eabi-size", "-A", "-d", str(elf)], capture_output=True,
                          text=True, check=True).stdout
    sections = {m[1]: int(m[2]) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+$", size, re.M)}
    nm = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True,
                        check=True).stdout
    symbols: dict[str, int] = {}
    for line in nm.splitlines():
        f = line.split()
        if len(f) == 4:
            assert f[3] not in symbols or symbols[f[3]] == int(f[1], 16), f"two {f[3]}"
            symbols[f[3]] = int(f[1], 16)
    return sections, symbols


def compare(plan: dict, sections: dict[str, int], symbols: dict[str, int],
            image_board: str = IMAGE_BOARD) -> list[str]:
    """Every line of a plan against the image (built for ``image_board``): the lines it
    gets wrong (empty: none)."""
    bad = []
    real_ram = sum(sections.get(s, 0) for s in RAM_SECTIONS)
    real_flash = sum(sections.get(s, 0) for s in FLASH_SECTIONS)
    image_stack = sections[".stack"]
    if plan["board"] != image_board:
        # The image is the emulated board's, with its stack region; another board's plan
        # reserves that board's linker-script stack (not built here): only the rest is
        # compared with this image.
        image_stack = plan["ram"]["stack (reserved)"]
        real_ram += image_stack - sections[".stack"]
    stack = {("stack (reserved)",): image_stack}
    for memory, table, estimate, total in (
            ("ram", RAM_SYMBOLS, RAM_ESTIMATE, real_ram),
            ("flash", FLASH_SYMBOLS, FLASH_ESTIMATE, real_flash)):
        lines = plan[memory]
        groups = dict(stack) if memory == "ram" else {}
        for names, syms in table.items():
            if isinstance(syms, str):
                syms = [s for s in symbols if re.fullmatch(syms, s)]
            missing = [s for s in syms if s not in symbols]
            assert not missing, f"{missing} not in the image"
            groups[names] = sum(symbols[s] for s in syms)
        covered = {n for names in groups for n in names} | set(estimate[0])
        if set(lines) != covered:
            bad.append(f"{memory}: plan lines {sorted(set(lines) - covered)} have no figure "
                       f"in the image; {sorted(covered - set(lines))} are missing")
            continue
        for names, real in groups.items():
            planned = sum(lines[n] for n in names)
            if planned != real:
                bad.append(f"{memory} {' + '.join(names)}: plan {planned}, image {real}")
        rest = total - sum(groups.values())
        names, slack = estimate
        planned = sum(lines[n] for n in names)
        if not rest <= planned <= rest + slack:
            bad.append(f"{memory} {' + '.join(names)} (estimated): plan {planned}, image "
                       f"{rest} (allowed up to {slack} above)")
        if sum(lines.values()) < total:
            bad.append(f"{memory} total: plan {sum(lines.values())} < image {total}")
    return bad


@pytest.fixture(scope="module", params=list(CASES))
def case(request, base_run, tmp_path_factory):
    make, boards, backbone, image_board = CASES[request.param]
    export_dir = make(base_run)
    elf = _build(export_dir, tmp_path_factory.mktemp(f"pio-{request.param}"), backbone,
                 image_board)
    tflite = (export_dir.parent / "model.tflite").read_bytes()
    fp = model_footprint(parse_tflite(tflite), len(tflite))
    macros = dict(re.findall(r"#define TS_EXPORT_(\w+) (\S+)",
                             (export_dir / "ts_export.h").read_text()))
    n, t = int(macros["TRAIN_COUNT"]), int(macros["TEST_COUNT"])
    plans = {b: plan_memory(fp, load_board(b), n, t, db_capacity=int(macros["DB_CAPACITY"]),
                            backbone_training=backbone) for b in boards}
    return request.param, elf, plans, macros, image_board


def test_every_plan_line_matches_the_image(case):
    name, elf, plans, _, image_board = case
    sections, symbols = elf_figures(elf)
    assert not any(s.startswith("ts_export_golden") for s in symbols)  # dropped by the linker
    for board, plan in plans.items():
        bad = compare(plan.to_dict(), sections, symbols, image_board)
        assert not bad, f"{name} on {board}:\n" + "\n".join(bad)


def test_the_device_reports_what_the_plan_says(case):
    """`info` and `@mem` from the running image: the buffers the plan computes, the stack
    region, and the image's static RAM and flash, which the plan's totals cover."""
    name, elf, plans, macros, image_board = case
    plan = next(iter(plans.values()))
    dev = Device(elf, load_board(image_board).pio_env)
    try:
        assert dev.record(timeout=30).type == "boot"
        info, mem, _ = ok(dev.command("info"))
    finally:
        dev.close()
    ram = plan.ram
    assert mem.int("arena") == ram["activation arena"]
    assert mem.int("workspace") == ram["head training state"]
    assert mem.int("cache") == ram["feature cache (int8)"]
    assert mem.int("db") == ram["db buffer (streamed set)"]
    cache_train = mem.int("cache") - int(macros["TEST_COUNT"]) * int(macros["FEATURE_DIM"])
    shared = (max(cache_train, mem.int("backbone")) + 3) // 4 * 4
    assert shared - cache_train == ram["backbone training state (last-block / bias)"]
    assert mem.int("backbone_q") == ram["re-quantized backbone"]
    # the image is its board's (its stack region); a plan for another board reserves that
    # board's stack
    assert mem.int("stack") == load_board(image_board).stack_bytes
    assert 0 < mem.int("stack_hwm") < mem.int("stack")
    assert info.int("db_capacity") == plan.db_capacity
    for p in plans.values():
        # another board's plan reserves its own stack, the image the emulated board's
        static = info.int("ram_static") - mem.int("stack") + p.ram["stack (reserved)"]
        assert p.ram_total >= static and p.flash_total >= info.int("flash")
        # the plan's verdict is the image's: it fits the board exactly when the plan says so
        fits = static <= p.ram_capacity and info.int("flash") <= p.flash_capacity
        assert fits or not p.fits, (name, p.board, info)
        print(f"{name} on {p.board}: RAM plan {p.ram_total} image {info.int('ram_static')} "
              f"(+{p.ram_total - info.int('ram_static')}), flash plan {p.flash_total} image "
              f"{info.int('flash')} (+{p.flash_total - info.int('flash')}); capacity "
              f"{p.ram_capacity}/{p.flash_capacity}, fits {p.fits}")
    if name == "nano33ble-fit":
        nano = plans["nano33ble"]
        static = info.int("ram_static") - mem.int("stack") + nano.ram["stack (reserved)"]
        assert nano.fits and static <= 256 * 1024
