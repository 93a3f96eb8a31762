"""The result of one on-device training: a typed record, written as ``results.json``
(``RUN/device[/<label>]/results.json``) and read back by the pipeline, the report and the
CLI through :meth:`DeviceResults.load`, never by string keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

#: partial: still running, or the host was killed; failed: a clear failure (its message in
#: `events`); device-reset: stopped after a reset (--on-reset stop, or reset again on retry)
STATUSES = ("partial", "complete", "device-reset", "interrupted", "failed")


@dataclass
class PhaseResult:
    """Cycles of one phase and what they cost (``energy_kind``: estimated or measured)."""

    cycles: int = 0
    seconds: float = 0.0
    energy_mj: float = 0.0
    energy_kind: str = "estimated"


@dataclass
class EpochResult:
    epoch: int
    loss: float
    train_acc: float
    cycles: int
    seconds: float
    energy_mj: float
    energy_kind: str = "estimated"


@dataclass
class DeviceResults:
    """Everything one ``train`` on the device reported, plus what the host added (the
    energy estimate, link statistics, events such as resets)."""

    board: str
    clock_hz: int
    params: dict[str, Any]
    energy_model: dict[str, Any]
    started: str
    status: str = "partial"
    counter: str | None = None
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    epochs: list[EpochResult] = field(default_factory=list)
    test_acc_before: float | None = None
    test_acc_after: float | None = None
    test_int8_acc_after: float | None = None
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    samples: int | None = None
    events: list[dict] = field(default_factory=list)
    link: dict[str, Any] = field(default_factory=dict)
    test_samples: int | None = None
    model_hash: str | None = None
    plan: dict[str, int] | None = None
    firmware: dict[str, Any] | None = None
    info: dict[str, str] | None = None
    memory: dict[str, int] | None = None
    elf: str | None = None
    finished: str | None = None
    # per-class test counts from the `@class` records, by `when` (before, after, current):
    # one {"class", "correct", "int8_correct", "total"} per class, in class order
    per_class: dict[str, list[dict[str, int]]] | None = None
    # the session that wrote this file (every record of it in log.jsonl carries the same id)
    session: str | None = None
    # what the firmware was built from (tinysift.stages.device.build_identity): the export's
    # and the firmware sources' hashes; a cached result is reused only for the same
    build: str | None = None
    # what the device trained on besides the firmware (training_set_hash): the streamed
    # samples, their labels and the `db` mode; a cached result is reused only for the same
    # (None: written before the field existed, never reused)
    train_set_hash: str | None = None
    # the rate the counts were turned into seconds and energy at: the device's `hz` (@boot,
    # @info), else the profile's counter rate (None: written before the field existed,
    # when it was always clock_hz)
    counter_hz: int | None = None

    # -- derived figures ----------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def mean_epoch(self, attr: str) -> float:
        """Mean of an epoch attribute (``cycles``, ``energy_mj``, ``seconds``); 0 without
        epochs."""
        if not self.epochs:
            return 0.0
        return sum(getattr(e, attr) for e in self.epochs) / len(self.epochs)

    def phase(self, name: str) -> PhaseResult:
        return self.phases.get(name, PhaseResult())

    def reusable_for(self, board: str, params: dict, build: str, set_hash: str) -> bool:
        """Whether this result may stand in for a new run (resume): finished, on the same
        board (one export runs on several, with other cycles and energy), with the same
        parameters, firmware build and training set (a result without the set's hash was
        written before it was recorded: never reused)."""
        return (self.complete and self.board == board and self.params == params
                and self.build == build and self.train_set_hash is not None
                and self.train_set_hash == set_hash)

    def training_energy_mj(self, train_samples: int | None = None) -> float:
        """The training bill, one definition for every table: every epoch, plus the share of
        the features phase that is training. With ``update=head`` that phase runs the
        backbone once per training and per test sample, and the training samples' share is
        training; in the other modes it holds only the test set's pass (the firmware's
        ``fill_caches``), so none of it is. ``train_samples``: the samples trained on
        (default: what the device reported)."""
        epochs_mj = float(sum(e.energy_mj for e in self.epochs))
        if (self.params.get("update") or "head") != "head":  # None: the firmware's, head
            return epochs_mj
        n_train = int(self.samples or 0) if train_samples is None else int(train_samples)
        n_test = int(self.test_samples or 0)
        return epochs_mj + self.phase("features").energy_mj * n_train / max(1, n_train + n_test)

    def class_accuracy(self, when: str, classes, int8: bool = False) -> float | None:
        """Test accuracy over the given classes (old or new ones, say) from the `@class`
        records of ``when``; None without records or test samples of those classes."""
        wanted = set(classes)
        rows = [r for r in (self.per_class or {}).get(when, []) if r["class"] in wanted]
        total = sum(r["total"] for r in rows)
        if not total:
            return None
        return sum(r["int8_correct" if int8 else "correct"] for r in rows) / total

    # -- the file -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()
                if v is not None or k in _ALWAYS_WRITTEN}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceResults:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["phases"] = {name: PhaseResult(**ph) for name, ph in
                            data.get("phases", {}).items()}
        kwargs["epochs"] = [EpochResult(**ep) for ep in data.get("epochs", [])]
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path) -> DeviceResults:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def load_if_sound(cls, path: str | Path) -> DeviceResults | None:
        """:meth:`load`, or None when the file is missing, torn (a crash of an older writer,
        a full disk) or not a results document: a cache that cannot be read is no cache,
        and the session runs again (a torn file ended every rerun of a pipeline in a
        JSONDecodeError until it was deleted by hand)."""
        try:
            return cls.load(path)
        except (OSError, ValueError, TypeError, AttributeError):
            return None


def training_set_hash(train_set: tuple[np.ndarray, np.ndarray] | None, mode: str) -> str:
    """A content hash of what a session sends the device to train on.

    Parameters
    ----------
    train_set : (samples, labels) streamed over the link, or None (the compiled-in set, which
        the build identity already covers)
    mode : how it is used, e.g. ``db use flash``, ``db load, db use both`` or
        ``db stream, db use ram``: the same samples in another mode are another training

    Returns
    -------
    str
        32 hex digits. The samples are hashed as the link sends them (each as int8 bytes)
        and the labels as integers, so the dtype the caller holds them in does not matter.
    """
    h = hashlib.sha256(f"tinysift training set 1; {mode}".encode())
    if train_set is not None:
        x, y = train_set
        x = np.ascontiguousarray(np.asarray(x).astype(np.int8, copy=False))
        y = np.ascontiguousarray(np.asarray(y).astype(np.int64, copy=False))
        h.update(f"; {len(x)} samples of {x[0].size if len(x) else 0} bytes; {len(y)} "
                 "labels;".encode())
        h.update(x.tobytes())
        h.update(y.tobytes())
    return h.hexdigest()[:32]


# Fields present in every results.json even while unknown (null), as the format has always had.
_ALWAYS_WRITTEN = {"counter", "test_acc_before", "test_acc_after", "test_int8_acc_after",
                   "ram_bytes", "flash_bytes", "samples"}
