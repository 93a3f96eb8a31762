"""`bench device` and `bench upkeep` survive a failed device run, as the host benches survive a
failed training (tests/test_bench_failures.py): the run is said and recorded, the other runs
of its seed and the other seeds run on and are logged, the bench ends with one TasksFailed
listing it, and a rerun runs only it. A failure every run would repeat (the emulator does not
start) stops the bench at once.

The faults are real: the emulated board runs in QEMU through a ``qemu-system-arm`` put first
on PATH that starts the real emulator, but halted (``-S``: the board never answers, as a hung
board, and the host's timeout fires) at a chosen launch, or exits at once (a broken
emulator)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu


class Emulator:
    """A ``qemu-system-arm`` wrapper in ``folder``, first on PATH: it counts its launches and,
    as ``mode`` says, starts the real QEMU halted at launch ``halt`` or exits at once."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        real = shutil.which("qemu-system-arm")
        assert real, "qemu-system-arm missing: run tools/setup.sh"
        folder.mkdir()
        self.folder = folder
        script = folder / "qemu-system-arm"
        script.write_text(f"""#!/bin/sh
n=$(( $(cat {folder}/count) + 1 ))
echo $n > {folder}/count
case "$(cat {folder}/mode)" in
  exit) exit 3 ;;
  "halt $n") exec {real} -S "$@" ;;
esac
exec {real} "$@"
""")
        script.chmod(0o755)
        self.mode("")
        monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")

    def mode(self, mode: str) -> None:
        """``halt N`` (launch N, counted from now, is halted), ``exit`` or "" (the real one)."""
        (self.folder / "mode").write_text(mode)
        (self.folder / "count").write_text("0")

    @property
    def launches(self) -> int:
        return int((self.folder / "count").read_text())


def _points(progress: Path) -> list[tuple]:
    (log,) = progress.glob("*.jsonl")
    return sorted((r["seed"], r["method"], r["point"])
                  for r in map(json.loads, log.read_text().splitlines())
                  if not r["method"].startswith("_"))


def test_device_bench_runs_on_after_a_device_timeout(tmp_path, monkeypatch, capsys):
    from tinysift.bench.device import DeviceBenchConfig, bench_device
    from tinysift.errors import TasksFailed

    qemu = Emulator(tmp_path / "bin", monkeypatch)
    # `bench device --quick`'s recipe, 2 seeds of the floor and random 5/class
    cfg = DeviceBenchConfig(dataset="digits", new_per_class=30, seeds=2, methods=("random",),
                            sizes=(5,), updates=("head",), steps=150, base_epochs=30,
                            test_per_class=15, out_dir=tmp_path / "out",
                            progress_dir=tmp_path / "progress", work_dir=tmp_path / "work")
    results = tmp_path / "out" / f"{cfg.stem()}.json"
    qemu.mode("halt 1")  # seed 0's floor, its first run: the others follow it
    said: list[str] = []
    with pytest.raises(TasksFailed) as failed:
        bench_device(cfg, log=said.append)
    assert qemu.launches == 4  # every run went on
    # said on stderr as it failed, verbatim (the CLI's rich console took "[seed 0]" for markup)
    line = [s for s in capsys.readouterr().err.splitlines() if "FAILED" in s]
    assert len(line) == 1 and line[0].startswith("[seed 0] none 0/class head FAILED: no valid "
                                                 "record from socket://"), line
    message = " ".join(str(failed.value).split())
    assert message.startswith("1 task failed: seed 0 none 0/class head (no valid record")
    assert "no results files written" in message and "rerun the same command" in message
    assert [(f.seed, f.what) for f in failed.value.failures] == [(0, "none 0/class head")]
    # recorded in its run folder; the other runs logged, seed 1 complete
    run = tmp_path / "work" / f"{cfg.stem()}-s0" / "base" / "device" / "none-0-head"
    assert json.loads((run / "results.json").read_text())["status"] == "failed"
    assert _points(tmp_path / "progress") == [
        (0, "joint", "host"), (0, "random", "5:head"),
        (1, "joint", "host"), (1, "none", "0:head"), (1, "random", "5:head")]
    assert not results.exists()  # seed 0 is not complete: no seed is written

    qemu.mode("")
    res = bench_device(cfg, log=said.append)
    assert qemu.launches == 1  # only the failed run
    assert res["seeds"] == 2 and len(res["points"]["none:0:head"]["runs"]) == 2
    assert json.loads(results.read_text())["seed_values"] == [0, 1]
    assert json.loads((run / "results.json").read_text())["status"] == "complete"


def test_upkeep_bench_runs_on_after_a_device_timeout_and_stops_on_a_broken_emulator(
        tmp_path, monkeypatch, capsys):
    from tinysift.bench.upkeep import UpkeepBenchConfig, bench_upkeep
    from tinysift.cli.adapt_cmd import _classes
    from tinysift.errors import DeviceUnavailable, TasksFailed
    from tinysift.pipeline.upkeep import EVERY, UpkeepConfig

    qemu = Emulator(tmp_path / "bin", monkeypatch)
    # `bench upkeep --quick`'s recipe, with a progress log
    up = UpkeepConfig(scenario="new-classes", dataset="digits", old_classes=_classes("0-7"),
                      new_per_class=EVERY, replay="random", replay_per_class=5,
                      vq_per_class=4, buffers=(5,), updates=("head",), steps=150,
                      base_epochs=30, test_per_class=15)
    cfg = UpkeepBenchConfig(up, seeds=1, out_dir=tmp_path / "out",
                            progress_dir=tmp_path / "progress", work_dir=tmp_path / "work")
    results = tmp_path / "out" / f"{cfg.stem()}.json"
    said: list[str] = []

    # an emulator that does not start would fail every run: the first stops the bench
    qemu.mode("exit")
    with pytest.raises(DeviceUnavailable, match="QEMU exited with status 3 at start"):
        bench_upkeep(cfg, log=said.append)
    assert qemu.launches == 1
    assert not (tmp_path / "progress").exists() or not list((tmp_path / "progress")
                                                            .glob("*.jsonl"))

    qemu.mode("halt 1")  # reservoir's buffer of 5 a class, the first point
    capsys.readouterr()
    with pytest.raises(TasksFailed) as failed:
        bench_upkeep(cfg, log=said.append)
    assert qemu.launches == 3
    assert [s for s in capsys.readouterr().err.splitlines() if "FAILED" in s] == [
        f"[seed 0] reservoir buffer 5/class head FAILED: {failed.value.failures[0].error_line()}"]
    assert str(failed.value).startswith("1 task failed: seed 0 reservoir buffer 5/class head "
                                        "(no valid record from socket://")
    assert _points(tmp_path / "progress") == [(0, "all", "all:head"),
                                              (0, "coverage", "5:head")]
    assert not results.exists()

    qemu.mode("")
    res = bench_upkeep(cfg, log=said.append)
    assert qemu.launches == 1
    assert set(res["points"]) == {"reservoir:5:head", "coverage:5:head", "all:all:head"}
    assert json.loads(results.read_text())["seeds"] == 1
