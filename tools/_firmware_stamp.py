"""The committed results that measure the firmware itself (instruction counts, sizes) and the
sources each depends on: their tool records ``firmware_source`` (a hash of the firmware's
sources and the bench's own C program) and ``tests/test_bench_render.py`` fails when a
committed file was made from other sources than the tree's, with the command that
regenerates it. Five such files had gone stale for days (2026-12-05's audit) because nothing
said so. Import it as ``_firmware_stamp`` (a script's own folder is first on ``sys.path``)."""

from __future__ import annotations

#: results stem -> (extra sources besides the firmware's, the command that writes it)
FIRMWARE_RESULTS: dict[str, tuple[tuple[str, ...], str]] = {
    # the bench program, and how tinysift.device.icount compiles and runs it (its CFLAGS,
    # defines, sources)
    "kernels_qemu-m4": (("tools/bench/kernels_bench.c", "tools/bench/engine_size_main.c",
                         "host/tinysift/device/icount.py"),
                        ".venv/bin/python tools/bench_kernels.py --export runs/k-fmnist/export"
                        " (its docstring says how that run is made)"),
    # counted with the kernel bench's program; the models' definitions are the host's (the
    # DS-CNN row went stale with a pool size there)
    "mlperf_tiny_qemu-m4": (("tools/bench/kernels_bench.c", "host/tinysift/device/icount.py",
                             "host/tinysift/models/mlperf_tiny.py"),
                            ".venv/bin/python tools/bench_mlperf.py"),
    "firmware_size": ((), ".venv/bin/python tools/firmware_size_table.py"),
    "trainer_qemu": (("tools/bench/trainer_bench.c", "tools/bench_trainer.sh"),
                     ".venv/bin/python tools/trainer_table.py"),
    "device_determinism_qemu-m4": ((), ".venv/bin/python tools/device_determinism.py"),
}


def firmware_stamp(stem: str) -> str:
    """The ``firmware_source`` a results file ``stem`` records: the hash of the firmware's
    sources and the bench's own."""
    from tinysift.device.build import firmware_source_hash

    return firmware_source_hash(FIRMWARE_RESULTS[stem][0])
