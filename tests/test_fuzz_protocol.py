"""Fuzzing the device side of TSP/1 (firmware/lib/tsproto: framer, command parser, number
parsers, db decoder, record writer) with libFuzzer + ASan + UBSan on the host, for a bounded
time (tools/fuzz_protocol.sh, harness firmware/test/fuzz/fuzz_protocol.c). A crash, a sanitizer
report or a violated property of the harness fails the test, with the crashing input kept.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "fuzz_protocol.sh"
SECONDS = int(os.environ.get("TINYSIFT_FUZZ_SECONDS", "20"))


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


def test_protocol_survives_fuzzing(tmp_path):
    missing = _libfuzzer_missing(tmp_path)
    if missing:
        msg = f"{missing} missing: run tools/setup.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path / "fuzz"
    res = subprocess.run([str(SCRIPT), str(SECONDS)], cwd=ROOT,
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
    assert runs > 1000, log[-3000:]  # it really ran (~2,600 executions per second here)
    corpus = len(list((out / "corpus").iterdir()))
    print(f"fuzz_protocol: {runs} executions in {secs} s, corpus {corpus} inputs, no crash")
