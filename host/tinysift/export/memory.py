"""The memory plan: flash and RAM of an export against a board, before any build.

Flash holds the engine code, the layer table and weights, the int8 training and test sets,
and the head's float initialization (the raw ``.tflite`` array is linked only by users who
run TFLM on the device, so it is listed but not counted). RAM holds the activation arena,
the int8 feature cache (when it fits), the head's float training state, I/O buffers and the
stack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from tinysift.boards import Board, list_boards
from tinysift.errors import FitError
from tinysift.export.tflite_reader import ParsedModel

# Measured with arm-none-eabi-size on the qemu-m4 build (engine + protocol + app, -Os);
# re-measured by the firmware benchmark and kept conservative here.
ENGINE_CODE_BYTES = 48 * 1024
STACK_BYTES = 8 * 1024
IO_BUFFER_BYTES = 2 * 1024
LAYER_ROW_BYTES = 96


def trainer_workspace_bytes(k: int, d: int, n: int) -> int:
    """Bytes of the on-device trainer's workspace for ``k`` classes, ``d`` features and ``n``
    training samples: the Python twin of ``TS_TRAINER_WORKSPACE_BYTES(K, D, N)`` in
    firmware/lib/tsengine/src/ts_trainer.h (tests/test_trainer.py compiles that macro and
    checks both give the same numbers). W, its momentum and gradient sum (``k*d`` floats
    each), b, its momentum and gradient sum, logits, probabilities and class weights (``k``
    floats each), one dequantized feature vector (``d`` floats), the shuffle order (uint16
    per sample) and one int8 feature vector (``d`` bytes)."""
    return 4 * (3 * k * d + 6 * k + d) + 2 * n + d


@dataclass
class MemoryPlan:
    board: str
    flash: dict[str, int] = field(default_factory=dict)
    ram: dict[str, int] = field(default_factory=dict)
    flash_capacity: int = 0
    ram_capacity: int = 0
    feature_cache: bool = True
    train_samples: int = 0
    db_capacity: int = 0
    not_counted: dict[str, int] = field(default_factory=dict)

    @property
    def flash_total(self) -> int:
        return sum(self.flash.values())

    @property
    def ram_total(self) -> int:
        return sum(self.ram.values())

    @property
    def fits(self) -> bool:
        return self.flash_total <= self.flash_capacity and self.ram_total <= self.ram_capacity

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(flash_total=self.flash_total, ram_total=self.ram_total, fits=self.fits)
        return d


@dataclass(frozen=True)
class ModelFootprint:
    """What the plan needs to know about an exported model."""

    weight_bytes: int
    num_layers: int
    arena_bytes: int
    sample_bytes: int
    feature_dim: int
    num_classes: int
    tflite_bytes: int


def model_footprint(parsed: ParsedModel, tflite_len: int) -> ModelFootprint:
    """What the plan needs, read off a parsed ``.tflite`` of ``tflite_len`` bytes."""
    head = parsed.head
    return ModelFootprint(weight_bytes=parsed.weight_bytes(), num_layers=len(parsed.layers),
                          arena_bytes=parsed.arena_bytes(),
                          sample_bytes=int(np.prod(parsed.layers[0].in_dims)),
                          feature_dim=head.in_dims[2], num_classes=head.out_dims[2],
                          tflite_bytes=tflite_len)


def plan_memory(fp: ModelFootprint, board: Board, train_samples: int, test_samples: int,
                feature_cache: bool | None = None, db_capacity: int | None = None) -> MemoryPlan:
    """Plan one configuration (``feature_cache=None``: as the firmware app does, cached).

    ``db_capacity``: samples the RAM buffer for ``db load`` holds (None: as many as the
    exported training set)."""
    db = train_samples if db_capacity is None else db_capacity
    if feature_cache is None:
        # The firmware app always caches the features (firmware/src/app.h sizes the cache
        # from the export); the trainer can recompute them instead, but no app path does yet.
        feature_cache = True
    k, d = fp.num_classes, fp.feature_dim
    n_all = max(train_samples, db) + test_samples
    flash = {
        "engine code": ENGINE_CODE_BYTES,
        "weights and layer table": fp.weight_bytes + fp.num_layers * LAYER_ROW_BYTES,
        "training set (int8)": train_samples * (fp.sample_bytes + 1),
        "test set (int8)": test_samples * (fp.sample_bytes + 1),
        "head init (float)": (k * d + k) * 4,
    }
    ram = {
        "activation arena": fp.arena_bytes,
        "db buffer (streamed set)": db * (fp.sample_bytes + 1),
        "feature cache (int8)": n_all * d if feature_cache else 0,
        "head training state": trainer_workspace_bytes(k, d, max(train_samples, db)),
        "re-quantized head": k * d + 3 * k * 4,
        "I/O buffers": IO_BUFFER_BYTES,
        "stack (reserved)": STACK_BYTES,
    }
    return MemoryPlan(board=board.name, flash=flash, ram=ram, flash_capacity=board.flash_bytes,
                      ram_capacity=board.ram_bytes, feature_cache=feature_cache,
                      train_samples=train_samples, db_capacity=db,
                      not_counted={"raw .tflite (optional)": fp.tflite_bytes})


def max_train_samples(fp: ModelFootprint, board: Board, test_samples: int,
                      upper: int, db_capacity: int | None = None) -> int:
    """Largest training-set size in [0, upper] whose plan fits the board."""
    if not plan_memory(fp, board, 0, test_samples, db_capacity=db_capacity).fits:
        return 0
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if plan_memory(fp, board, mid, test_samples, db_capacity=db_capacity).fits:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_fits(fp: ModelFootprint, board: Board, train_samples: int,
               test_samples: int, db_capacity: int | None = None) -> MemoryPlan:
    """The plan, or a FitError that says by how much it misses and what would fit."""
    plan = plan_memory(fp, board, train_samples, test_samples, db_capacity=db_capacity)
    if plan.fits:
        return plan
    problems = []
    if plan.ram_total > plan.ram_capacity:
        problems.append(f"needs {kb(plan.ram_total)} RAM, board has {kb(plan.ram_capacity)} "
                        f"(over by {kb(plan.ram_total - plan.ram_capacity)})")
    if plan.flash_total > plan.flash_capacity:
        problems.append(f"needs {kb(plan.flash_total)} flash, board has "
                        f"{kb(plan.flash_capacity)} "
                        f"(over by {kb(plan.flash_total - plan.flash_capacity)})")
    most = max_train_samples(fp, board, test_samples, train_samples, db_capacity)
    fixes = []
    if most > 0:
        fixes.append(f"keep at most {most} samples (or pass --fit)")
    bigger = [b.name for b in sorted(list_boards(), key=lambda b: (b.ram_bytes, b.flash_bytes))
              if b.name != board.name
              and plan_memory(fp, b, train_samples, test_samples, db_capacity=db_capacity).fits]
    if bigger:
        fixes.append(f"choose {bigger[0]}")
    if not fixes:
        fixes.append("use a smaller model (tinysift train --width) and fewer test samples")
    raise FitError(f"{board.name}: {'; '.join(problems)}; {' or '.join(fixes)}")


def kb(n: int) -> str:
    return f"{n / 1024:.0f} KB" if n < 10 * 1024 * 1024 else f"{n / 1048576:.1f} MB"
