"""`tinysift bench upkeep --quick` (digits new-classes on the emulated board): results files,
both policies on the same stream, coverage's buffer and codewords in the records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu


def test_bench_upkeep_quick_on_the_emulated_board(tmp_path):
    from typer.testing import CliRunner

    from tinysift.cli.app import app
    from tinysift.device.results import DeviceResults

    out = CliRunner().invoke(app, ["bench", "upkeep", "--quick", "--out-dir", str(tmp_path)])
    assert out.exit_code == 0, (out.output[-3000:], out.exception)
    stem = tmp_path / "upkeep_new-classes_digits_quick"
    res = json.loads(stem.with_suffix(".json").read_text())
    pts = res["points"]
    assert set(pts) == {"reservoir:5:head", "coverage:5:head", "all:all:head"}
    rsv, cov, whole = pts["reservoir:5:head"], pts["coverage:5:head"], pts["all:all:head"]
    # the same stream (classes 8 and 9 of the digits training split), a buffer of 5 per class
    assert rsv["seen"] == cov["seen"] == whole["seen"] == whole["kept"] > 200
    assert rsv["kept"] == cov["kept"] == 10
    # classes 8 and 9 have no exported codewords: the device opened them online, at most 4
    # each; the 5 slots of a class go to its codewords in proportion to their samples, so
    # each class keeps at least its largest codeword and a rare one may hold none
    assert 2 <= cov["codewords"] <= 8 and 2 <= cov["covered"] <= cov["codewords"]
    assert rsv["codewords"] == 0
    for p in (rsv, cov, whole):
        assert p["acc_mean"] > 0.7 and p["acc_old"] > 0.8 and p["acc_new"] > 0.3
    assert cov["stream_cycles"] > 100 * rsv["stream_cycles"]  # coverage runs the backbone
    # each point's energy is the training bill of every table (docs/energy.md): with
    # update=head, the epochs plus the trained samples' share of the features phase
    runs = {f.parent.name: DeviceResults.load(f) for f in
            (Path("runs/_bench_upkeep") / f"{stem.name}-s0").glob("**/results.json")}
    for name, p in (("reservoir", rsv), ("coverage", cov), ("all", whole)):
        (dev,) = [r for label, r in runs.items() if label.startswith(f"upkeep-{name}-")]
        epochs_mj = sum(e.energy_mj for e in dev.epochs)
        assert dev.phase("features").energy_mj > 0 and p["energy_mj"] > epochs_mj
        assert p["energy_mj"] == pytest.approx(dev.training_energy_mj())
    md = stem.with_suffix(".md").read_text()
    assert "| 5 | coverage |" in md and "| whole stream | all |" in md
    assert stem.with_suffix(".png").stat().st_size > 10_000
