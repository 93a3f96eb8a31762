"""`tinysift bench device` resumed from its progress log on the emulated board: the RAM column
is the plan of the invocation's firmware for every row (rows logged by an invocation of other
--sizes included), and a seed whose every row is logged is not set up again."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.qemu


def test_resumed_device_bench_ram_column_and_logged_seeds(tmp_path):
    from tinysift.bench.device import DeviceBenchConfig, bench_device

    def bench(seeds: int, sizes: tuple[int, ...]) -> tuple[dict, list[str]]:
        # `bench device --quick`'s recipe, with a progress log
        cfg = DeviceBenchConfig(dataset="digits", new_per_class=30, seeds=seeds,
                                methods=("random",), sizes=sizes, updates=("head",),
                                steps=150, base_epochs=30, test_per_class=15,
                                out_dir=tmp_path / "out", progress_dir=tmp_path / "progress",
                                work_dir=tmp_path / "work")
        said: list[str] = []
        bench_device(cfg, log=said.append)
        return json.loads((tmp_path / "out" / f"{cfg.stem()}.json").read_text()), said

    first, _ = bench(1, (10,))
    # each point ran with the bench's recipe: its lr, batch, steps, cosine schedule and
    # balanced loss, the device's seed one past the seed's (the base model's), on a
    # firmware whose `db load` buffer holds the largest replay set (10 a class of the 8 old
    # classes) and the 60 new samples
    runs = tmp_path / "work" / f"{DeviceBenchConfig(dataset='digits').stem()}-s0" / "base"
    for label in ("none-0-head", "random-10-head"):
        ran = json.loads((runs / "device" / label / "results.json").read_text())
        assert {k: ran["params"][k] for k in ("lr", "batch", "seed", "update", "steps",
                                              "schedule", "balance")} == {
            "lr": 0.05, "batch": 32, "seed": 1, "update": "head", "steps": 150,
            "schedule": "cosine", "balance": True}, label
        assert ran["board"] == "qemu-mps2-an386" and ran["info"]["db_capacity"] == "140"
    assert first["memory_plan"]["db_capacity"] == 8 * 10 + 60
    ram10 = first["points"]["none:0:head"]["ram_plan"]
    assert first["points"]["random:10:head"]["ram_plan"] == ram10
    # --sizes 5: the firmware's replay buffer is smaller, and so is every row's RAM, the
    # floor's logged by the first invocation (with a buffer for 10 a class) included
    second, _ = bench(1, (5,))
    ram5 = second["points"]["random:5:head"]["ram_plan"]
    assert ram5 < ram10
    assert second["points"]["none:0:head"]["ram_plan"] == ram5
    assert "none:0:head" in second["points"] and "random:10:head" not in second["points"]
    # seed 0 is all logged: a second seed sets up seed 1 only (seed 0's base model, export
    # and firmware were built again; its run folder is not even made)
    seed0 = tmp_path / "work" / f"{DeviceBenchConfig(dataset='digits').stem()}-s0"
    shutil.rmtree(seed0)
    third, said = bench(2, (5,))
    assert not seed0.exists()
    assert any(line.startswith("seed 0: every row already in") for line in said)
    assert third["seeds"] == 2 and third["seed_values"] == [0, 1]
    assert len(third["points"]["random:5:head"]["runs"]) == 2
    assert third["points"]["random:5:head"]["ram_plan"] == ram5
    assert third["scenario_info"]["new_samples"] == 60
