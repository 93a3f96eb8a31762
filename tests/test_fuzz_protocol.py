"""Fuzzing the device side with libFuzzer + ASan + UBSan on the host, for a bounded time
(tools/fuzz.sh TARGET through tools/fuzz_campaign.py, which writes the results file;
harnesses in firmware/test/fuzz/):

- protocol: TSP/1 (firmware/lib/tsproto: framer, command parser, number parsers, db decoder,
  record writer; fuzz_protocol.c);
- app: the firmware app's command dispatch and `db load` state machine with a real export
  compiled in (fuzz_app.c);
- model: the engine's model validation (malformed layer tables, chains and graphs, the
  executor against a layer-by-layer reference, malformed .tflite; fuzz_model.c);
- model-dsp: the same harness built with TS_USE_DSP=1 (the DSP kernels against the scalar
  ones).

A crash, a sanitizer report or a violated property of the harness fails the test, with the
crashing input kept. Skipped (failed under CI=1) without clang and libFuzzer, which
tools/setup.sh installs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tools_needed import load_tool

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "fuzz.sh"
# The suite's run is a smoke campaign; tools/fuzz_campaign.py --seconds N runs a real one.
SECONDS = int(os.environ.get("TINYSIFT_FUZZ_SECONDS", "5"))
# Executions that show a target really ran in SECONDS on a busy 2-core machine (idle, about
# 2,600/s for protocol, 1,000/s for model and model-dsp, 100/s for app, whose inputs run
# training).
MIN_RUNS = {"protocol": 50 * SECONDS, "model": 15 * SECONDS, "model-dsp": 15 * SECONDS,
            "app": 2 * SECONDS}


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
    campaign = load_tool("fuzz_campaign")
    status = campaign.main(["--targets", target, "--seconds", str(SECONDS),
                            "--out-dir", str(tmp_path / "results"),
                            "--work-dir", str(tmp_path / "work")])
    res = json.loads((tmp_path / "results" / "fuzz.json").read_text())
    row = res["targets"][0]
    log = Path(row["log"]).read_text()
    assert status == 0 and row["exit_status"] == 0 and not row["artifacts"], log[-6000:]
    assert "error" not in row, log[-3000:]
    assert row["seconds"] >= SECONDS - 1
    assert row["executions"] > MIN_RUNS[target], log[-3000:]  # it really ran
    # the results file carries what a reader needs to trust the row
    assert res["versions"]["git"] and res["machine"]["cpus"] and res["clang"] != "missing"
    assert f"| {target} |" in (tmp_path / "results" / "fuzz.md").read_text()
    corpus = len(list((tmp_path / "work" / target / "corpus").iterdir()))
    print(f"fuzz {target}: {row['executions']} executions in {row['seconds']} s, "
          f"corpus {corpus} inputs, no crash")


def test_parse_log_reads_libfuzzers_final_lines_and_refuses_an_unfinished_log():
    campaign = load_tool("fuzz_campaign")
    log = ("#24599\tREDUCE cov: 520 ft: 3043 corp: 499/115Kb lim: 554 exec/s: 6149\n"
           "Done 24649 runs in 5 second(s)\n"
           "stat::number_of_executed_units: 24649\nstat::average_exec_per_sec:     4929\n"
           "stat::new_units_added:          900\nstat::peak_rss_mb:              71\n"
           "#24649\tDONE   cov: 521 ft: 3044 corp: 500/115Kb lim: 554 exec/s: 4929 rss: 71Mb\n")
    assert campaign.parse_log(log) == {
        "executions": 24649, "seconds": 5, "exec_per_s": 4929, "new_units": 900,
        "peak_rss_mb": 71, "coverage": 521, "features": 3044, "corpus": 500}
    with pytest.raises(ValueError, match="no 'Done N runs"):
        campaign.parse_log("==1==ERROR: AddressSanitizer: heap-buffer-overflow\n")


@pytest.mark.parametrize("args, message", [
    (["--targets", "protocol,nosuch"], "--targets: unknown 'nosuch'"),
    (["--seconds", "0"], "argument --seconds: 0: give at least 1"),
    (["--runs", "-5"], "argument --runs: -5: give at least 1"),
    (["--runs", "x"], "argument --runs: 'x' is not a whole number"),
    (["--seconds", "5", "--runs", "10"], "not allowed with argument"),
])
def test_campaign_refuses_bad_arguments(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        load_tool("fuzz_campaign").main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_committed_campaign_table_is_its_results_rendered():
    """benchmarks/results/fuzz.md is tools/fuzz_campaign.py's rendering of fuzz.json, not typed."""
    results = ROOT / "benchmarks" / "results"
    res = json.loads((results / "fuzz.json").read_text())
    assert load_tool("fuzz_campaign").render(res) == (results / "fuzz.md").read_text()
    assert all(r["exit_status"] == 0 and not r["artifacts"] for r in res["targets"])
