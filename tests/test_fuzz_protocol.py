"""Fuzzing the device side with libFuzzer + ASan + UBSan on the host, for a bounded time
(tools/fuzz.sh TARGET, harnesses in firmware/test/fuzz/):

- protocol: TSP/1 (firmware/lib/tsproto: framer, command parser, number parsers, db decoder,
  record writer; fuzz_protocol.c);
- app: the firmware app's command dispatch and `db load` state machine with a real export
  compiled in (fuzz_app.c);
- model: the engine's model validation (malformed layer tables, malformed .tflite;
  fuzz_model.c).

A crash, a sanitizer report or a violated property of the harness fails the test, with the
crashing input kept. Skipped (failed under CI=1) without clang and libFuzzer, which
tools/setup.sh installs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "fuzz.sh"
# The suite's run is a smoke campaign; tools/fuzz.sh TARGET SECONDS runs a real one.
SECONDS = int(os.environ.get("TINYSIFT_FUZZ_SECONDS", "5"))
# Executions that show a target really ran in SECONDS on a busy 2-core machine (idle, about
# 2,600/s for protocol, 1,000/s for model, 100/s for app, whose inputs run training).
MIN_RUNS = {"protocol": 50 * SECONDS, "model": 15 * SECONDS, "app": 2 * SECONDS}


def _libfuzzer_missing(tmp: Path) -> str | None:
    if shutil.which("clang") is None:
        return "clang"
    probe = tmp / "probe.c"
    probe.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                     "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
                     " { (void)d; (void)n; return 0; }\n")
    res = subprocess.run(["clang", "-fsanitize=fuzzer,address,undefined", str(probe), "-o",
                          str(tmp / "probe")], capture_output=True, text=True)
    return None if res.returncode == 0 else "libFuzzer (Debian package libclang-rt-14-dev)"


@pytest.mark.parametrize("target", list(MIN_RUNS))
def test_survives_fuzzing(target, tmp_path):
    missing = _libfuzzer_missing(tmp_path)
    if missing:
        msg = f"{missing} missing: run tools/setup.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path / "fuzz"
    res = subprocess.run([str(SCRIPT), target, str(SECONDS)], cwd=ROOT,
                         env=dict(os.environ, FUZZ_OUT=str(out)), capture_output=True,
                         text=True, timeout=SECONDS + 300)
    log = res.stdout + res.stderr
    crashes = sorted(p.name for p in out.glob("crash-*")) + sorted(
        p.name for p in out.glob("leak-*")) + sorted(p.name for p in out.glob("timeout-*"))
    assert res.returncode == 0 and not crashes, f"{crashes}\n{log[-6000:]}"
    m = re.search(r"Done (\d+) runs in (\d+) second", log)
    assert m, log[-3000:]
    runs, secs = int(m[1]), int(m[2])
    assert secs >= SECONDS - 1
    assert runs > MIN_RUNS[target], log[-3000:]  # it really ran
    corpus = len(list((out / "corpus").iterdir()))
    print(f"fuzz {target}: {runs} executions in {secs} s, corpus {corpus} inputs, no crash")
