"""The main job (``tinysift demo``): on-device learning of new classes with a replay set.

The base model learns Fashion-MNIST's classes 0-7 on the host (int8, TFLM-checked); the
emulated Cortex-M4 then learns classes 8 and 9 from 100 streamed samples each, keeping the
old classes with a replay set chosen by each replay method at each size; the report shows
accuracy (old, new, all) against the energy of on-device training and the RAM of the memory
plan, next to the host's joint model (the upper bound) and training without replay (the
forgetting floor). It is one seed of ``tinysift bench device`` plus the report, cached in the
run folder (a killed demo resumes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tinysift.errors import TinysiftError
from tinysift.export.memory import needs_backbone_buffers
from tinysift.pipeline.config import TomlConfig


@dataclass
class AdaptDemoConfig(TomlConfig):
    """Everything ``tinysift demo`` does; ``pipelines/demo.toml`` sets the same fields."""

    name: str = "demo"
    out: str = "runs/demo"
    dataset: str = "fashion-mnist"
    old_classes: list[int] = field(default_factory=lambda: list(range(8)))
    new_per_class: int = 100
    board: str = "qemu-mps2-an386"
    fit_board: str = "nano33ble"
    seed: int = 0
    methods: list[str] = field(default_factory=lambda: ["random", "herding", "vq", "flow"])
    sizes: list[int] = field(default_factory=lambda: [5, 20])
    updates: list[str] = field(default_factory=lambda: ["head"])
    steps: int = 300
    lr: float = 0.05
    batch: int = 32
    schedule: str = "cosine"
    base_epochs: int = 10
    test_per_class: int = 30

    @classmethod
    def quick(cls) -> AdaptDemoConfig:
        """digits (base model on 0-7, the device learns 8 and 9): a couple of minutes."""
        return cls(name="demo-quick", out="runs/demo-quick", dataset="digits",
                   new_per_class=30, methods=["random", "herding", "vq"], sizes=[5, 10],
                   steps=150, base_epochs=30, test_per_class=15)

    def validate(self) -> None:
        if not self.sizes or min(self.sizes) < 1:
            raise TinysiftError(f"sizes must be positive replay samples per class, got "
                                f"{self.sizes}")
        if self.steps < 1:
            raise TinysiftError("steps must be >= 1")
        from tinysift.bench.device import REPLAY_METHODS

        unknown = [m for m in self.methods if m not in REPLAY_METHODS]
        if not self.methods or unknown:
            raise TinysiftError(f"methods must name replay methods among "
                                f"{', '.join(REPLAY_METHODS)}; got {self.methods}")
        if not self.updates:  # the base model was trained for no device point at all
            raise TinysiftError("updates must name at least one update mode, e.g. [\"head\"]")
        from tinysift.pipeline.config import as_pipeline_setting

        bench = self.bench_config()
        # the device's ranges (lr, batch, update, ...) up front: AdaptConfig checks them
        for update in self.updates:
            as_pipeline_setting(bench.adapt_config(self.seed, update=update).validate)
        # the memory plans' second board (any profile, real ones too): an unknown one was
        # refused only after every device run
        from tinysift.boards import load_board

        try:
            load_board(self.fit_board)
        except TinysiftError as exc:
            raise TinysiftError(f"pipeline setting fit_board: {exc}; fix it in the pipeline "
                                "file") from None

    def bench_config(self):
        from tinysift.bench.device import DeviceBenchConfig

        out = Path(self.out)
        return DeviceBenchConfig(
            scenario="new-classes", dataset=self.dataset, old_classes=tuple(self.old_classes),
            new_per_class=self.new_per_class, board=self.board, seeds=1, first_seed=self.seed,
            methods=tuple(self.methods), sizes=tuple(self.sizes), updates=tuple(self.updates),
            steps=self.steps, lr=self.lr, batch=self.batch, schedule=self.schedule,
            base_epochs=self.base_epochs, test_per_class=self.test_per_class, out_dir=out,
            progress_dir=out / "progress", work_dir=out / "work")


def run_adapt_demo(cfg: AdaptDemoConfig, log=print) -> dict:
    """Run (or resume) the demo; writes ``OUT/summary.json`` and ``OUT/report.html``."""
    import sys

    from tinysift.bench.device import bench_device
    from tinysift.pipeline.config import check_report_folder
    from tinysift.report.adapt import write_adapt_report
    from tinysift.runs import atomic_write_json, machine_info, out_folder, package_versions

    start = time.perf_counter()
    # a file at --out was refused as "the progress log's folder ... pass another --out-dir",
    # options these commands do not have
    out_folder(Path(cfg.out), "--out", create=False)
    check_report_folder(cfg.out, "adapt")
    bcfg = cfg.bench_config()
    res = bench_device(bcfg, log=log, pipeline_folder=True)
    base = bcfg.work_dir / f"{bcfg.stem()}-s{cfg.seed}" / "base"
    info = res["scenario_info"]
    summary = {
        "kind": "adapt", "name": cfg.name, "config": cfg.to_dict(), "results": res,
        # the scenario's old classes, each once (a class named twice in the file is one
        # class of the replay set, as the bench ran it)
        "plans": _plans(cfg, base, len(info["old_classes"]), info["new_samples"],
                        info["num_classes"]),
        "versions": package_versions(), "machine": machine_info(),
        "command": " ".join(sys.argv), "wall_seconds": time.perf_counter() - start,
    }
    summary["headline"] = headline(summary)
    out = Path(cfg.out)
    atomic_write_json(out / "summary.json", summary)
    write_adapt_report(summary, out / "report.html")
    return summary


def _plans(cfg: AdaptDemoConfig, base: Path, n_old: int, n_new: int,
           num_classes: int) -> dict:
    """The product configuration's memory plan (replay set in flash, the new samples streamed
    into RAM, the firmware `tinysift adapt` exports and builds for the mode: head-only for
    update=head) on the demo's board and on ``fit_board``, for each replay size and mode, and
    the largest replay size per class that fits ``fit_board``."""
    from tinysift.export.memory import MAX_TRAIN_SAMPLES, largest_from_zero
    from tinysift.stages.export import memory_plan_for

    tests = cfg.test_per_class * num_classes
    plans: dict = {"new_samples": n_new, "boards": {}}
    for board in (cfg.board, cfg.fit_board):
        rows = {}
        for size in cfg.sizes:
            for update in cfg.updates:
                p = memory_plan_for(base, board, tests, train_samples=size * n_old,
                                    db_capacity=n_new,
                                    backbone_training=needs_backbone_buffers(update))
                rows[f"{size}:{update}"] = {"ram_total": p["ram_total"],
                                            "flash_total": p["flash_total"],
                                            "ram_capacity": p["ram_capacity"],
                                            "flash_capacity": p["flash_capacity"],
                                            "fits": p["fits"]}
        plans["boards"][board] = rows
    fits = {}
    for update in cfg.updates:
        def fits_board(size: int, update: str = update) -> bool:
            return memory_plan_for(base, cfg.fit_board, tests, train_samples=size * n_old,
                                   db_capacity=n_new,
                                   backbone_training=needs_backbone_buffers(update))["fits"]

        # no larger than the trainer takes (replay plus new samples, uint16 sample order)
        # 0 per class (no replay set) stands for "not even one fits"
        fits[update] = largest_from_zero(
            lambda size, f=fits_board: size == 0 or f(size),
            max(0, (MAX_TRAIN_SAMPLES - max(1, n_new)) // max(1, n_old)))
    plans["largest_replay_per_class_fitting"] = {"board": cfg.fit_board, "by_update": fits}
    plans["detail"] = memory_plan_for(base, cfg.board, tests,
                                      train_samples=max(cfg.sizes) * n_old, db_capacity=n_new,
                                      backbone_training=needs_backbone_buffers(*cfg.updates))
    return plans


def headline(summary: dict) -> str:
    pts = summary["results"]["points"]
    joint = summary["results"]["joint"]
    floor = pts.get("none:0:head")
    replay = [p for p in pts.values() if p["method"] != "none"]
    best = max(replay, key=lambda p: (p["acc_mean"], -p["size"]))
    text = (f"Best replay: {best['method']} with {best['size']} per old class "
            f"(update={best['update']}): all {best['acc_mean']:.3f}, old "
            f"{best['acc_old']:.3f}, new {best['acc_new']:.3f} on the device; host joint "
            f"model {joint['acc_mean']:.3f}")
    if floor:
        text += (f"; without replay (the forgetting floor) old {floor['acc_old']:.3f}, all "
                 f"{floor['acc_mean']:.3f}")
    return text + "."
