"""On-device replay upkeep: while new samples stream in over serial, the device keeps a
fixed-size buffer of them (``db stream``) and then trains on it together with the exported
replay set (``db use both``). Two ways to keep the buffer are compared on the same stream:

* ``reservoir``: plain reservoir sampling (every sample of the stream equally likely);
* ``coverage``: a class-balanced reservoir stratified by a per-class VQ codebook in the
  model's feature space (exported by the host, fit with k-means on the base model's features
  of the old training data; classes the host has no data for get codewords the device opens
  online): the buffer stays full, every class keeps as many samples as the largest (minus
  one) once it has lost one, and a class's slots follow its codewords' sample counts.

One experiment (one seed; `tinysift bench upkeep` runs its seeds through :func:`prepare`,
:func:`points` and :func:`run_point`): the adaptation scenario (``shift``: an MNIST
base model, the stream is the scikit-learn digits upsampled to 28x28; ``new-classes``), the
base model (cached, as ``tinysift adapt`` builds it), the exported replay set (any pruning
method, ``replay_per_class`` per old class), the codebook and a test subset; the stream is
every new sample, shuffled with the seed; then for every policy, buffer size (per class of
the stream) and update mode the device streams, keeps, trains and reports per-class accuracy.
A reference point ``all`` keeps the whole stream (the buffer as large as the stream).

Every device run is cached in its run folder: a killed experiment resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tinysift.errors import BudgetError, did_you_mean
from tinysift.pipeline.adapt import UPDATES, AdaptConfig, check_updates

POLICIES = ("reservoir", "coverage")
ALL = "all"  # the reference: a buffer as large as the stream
EVERY = 1_000_000  # new_per_class that takes every new sample of the scenario


@dataclass
class UpkeepConfig(AdaptConfig):
    """One seed of the upkeep experiment: an adaptation (the scenario, base model, exported
    replay set, on-device recipe, as :class:`AdaptConfig`; its ``update`` is unused) plus the
    upkeep's own knobs. ``buffers`` are samples per class of the stream (the buffer holds
    ``b * classes in the stream``); every new sample of the scenario is streamed (a large
    ``new_per_class``, such as :data:`EVERY`, takes all there are)."""

    # the buffer: samples per class, the policies, the codebook, the modes
    buffers: tuple[int, ...] = (5, 10)
    policies: tuple[str, ...] = POLICIES
    vq_per_class: int = 4
    updates: tuple[str, ...] = ("head",)
    reference_all: bool = True  # a point whose buffer holds the whole stream
    out: str = "runs/upkeep"

    def __post_init__(self) -> None:
        # Built from code, no policy left only the whole-stream point, no update mode no
        # point at all (an empty results table); the CLI cannot give either.
        if not self.policies:
            raise BudgetError(f"UpkeepConfig(policies=()) runs no policy: give one or more "
                              f"of {', '.join(POLICIES)}")
        if not self.updates:
            raise BudgetError(f"UpkeepConfig(updates=()) runs no update mode: give one or "
                              f"more of {', '.join(UPDATES)}")

    def validate(self) -> None:
        super().validate()
        bad = [p for p in self.policies if p not in POLICIES]
        if bad:
            raise BudgetError(f"unknown policy {bad[0]!r}{did_you_mean(bad[0], POLICIES)}; "
                              f"choose from {', '.join(POLICIES)}")
        if not self.buffers or min(self.buffers) < 1:
            raise BudgetError("--buffers must be positive samples per class")
        check_updates(self.updates)
        if not 1 <= self.vq_per_class <= 255:
            raise BudgetError("--vq-per-class must be in 1..255")


def fit_run_codebook(base: Path, x: np.ndarray, y: np.ndarray, num_classes: int,
                     per_class: int, seed: int):
    """The per-class VQ codebook of ``db stream policy=coverage`` for a quantized run: the
    base model's float backbone features of ``x`` (uint8 images), k-means per class,
    quantized with the feature tensor's scale and zero point (classes absent from ``y`` are
    left to the device's online codewords)."""
    from tinysift.export.codebook import feature_quantization, fit_codebook
    from tinysift.pipeline.adapt import base_features

    scale, zp = feature_quantization((Path(base) / "model.tflite").read_bytes())
    return fit_codebook(base_features(base, x), y, num_classes, per_class, scale, zp, seed)


@dataclass
class UpkeepSetup:
    """What every device run of one seed shares."""

    scn: object
    base: Path
    codebook: object
    x_stream: np.ndarray      # int8 model inputs, in stream order
    y_stream: np.ndarray
    stream_order: np.ndarray  # indices into the scenario's new samples
    stream_classes: int
    replay: np.ndarray        # indices into the scenario's old training data
    plan: dict


def prepare(cfg: UpkeepConfig, log=print) -> UpkeepSetup:
    """Scenario, base model, replay set, codebook, export (cached in ``cfg.out``)."""
    from tinysift.pipeline.adapt import choose_replay, prepare_base, test_indices, tested_tasks
    from tinysift.quantize import tflm
    from tinysift.stages.export import export

    scn, parts, _name, base = prepare_base(cfg, log)
    local = choose_replay(cfg, scn, base)
    tests = test_indices(scn, parts, cfg.test_per_class, cfg.seed,
                         tasks=tested_tasks(cfg.scenario))
    t0 = time.perf_counter()
    cb = fit_run_codebook(base, scn.x_old, scn.y_old, scn.num_classes, cfg.vq_per_class,
                          cfg.seed)
    log(f"VQ codebook: {int(cb.counts.sum())} codewords exported "
        f"({cfg.vq_per_class} per class; online classes {cb.summary()['online_classes']}), "
        f"{time.perf_counter() - t0:.0f} s")
    order = np.random.default_rng(cfg.seed).permutation(len(scn.y_new))
    exp = export(base, board=cfg.board, test_samples=len(tests), seed=cfg.seed,
                 db_capacity=len(order), train_indices=parts["old"][local],
                 test_indices=tests, codebook=cb)
    scale, zp = tflm.input_quant((base / "model.tflite").read_bytes())
    return UpkeepSetup(scn, base, cb, tflm.quantize_images(scn.x_new[order], scale, zp),
                       scn.y_new[order], order, len(np.unique(scn.y_new)), local, exp.plan)


def run_point(cfg: UpkeepConfig, setup: UpkeepSetup, policy: str, per_class: int | None,
              update: str) -> dict:
    """One device run: stream everything, keep ``per_class * stream classes`` (``None``: the
    whole stream, policy reservoir), train, read the accuracies."""
    from tinysift.device.stream import StreamParams
    from tinysift.pipeline.adapt import device_task_accuracies
    from tinysift.stages.stream import run_stream_on_device

    n = len(setup.y_stream)
    cap = n if per_class is None else min(n, per_class * setup.stream_classes)
    params = replace(cfg.device_params(), update=update, balance=True)
    label = f"upkeep-{policy if per_class is not None else ALL}-{cap}-{update}"
    res, rep = run_stream_on_device(setup.base, cfg.board, params,
                                    (setup.x_stream, setup.y_stream),
                                    StreamParams(n, cap, policy, cfg.seed + 1), label)
    acc = device_task_accuracies(res, setup.scn)
    return {"policy": policy if per_class is not None else ALL, "per_class": per_class,
            "cap": cap, "update": update, "acc": acc["all"], "acc_old": acc.get("old"),
            "acc_new": acc.get("new"), "seen": rep.db["seen"], "kept": rep.kept,
            "codewords": rep.db["codewords"],
            "covered": rep.db["covered"], "evicted": rep.db["evicted"],
            "stream_cycles": rep.db["cycles"],
            "kept_per_class": [c["kept"] for c in rep.classes],
            "train_cycles": int(sum(e.cycles for e in res.epochs)),
            # the training bill of every table (docs/energy.md): with update=head the
            # trained samples' share of the features phase too, not the epochs alone
            "energy_mj": res.training_energy_mj()}


def points(cfg: UpkeepConfig) -> list[tuple[str, int | None, str]]:
    """(policy, buffer per class or None for the whole stream, update) of one seed."""
    out = [(p, b, u) for u in cfg.updates for b in cfg.buffers for p in cfg.policies]
    if cfg.reference_all:
        out += [("reservoir", None, u) for u in cfg.updates]
    return out
