"""One conversation with the device: boot, ``info``, optionally ``db load``, ``train``;
every record is logged append-only and folded into a :class:`DeviceResults`.

Writes ``results.json`` (rewritten atomically after every record, so a killed host leaves a
readable partial file) and appends every record to ``log.jsonl``, both in the session's
folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysift.boards import Board
from tinysift.device.energy import PowerMonitor, estimate
from tinysift.device.link import DeviceReset, SerialLink
from tinysift.device.protocol import Record, data_line
from tinysift.device.results import DeviceResults, EpochResult, PhaseResult
from tinysift.errors import DeviceError
from tinysift.runs import atomic_write_json

RESULTS = "results.json"
LOG = "log.jsonl"


@dataclass
class TrainParams:
    """The ``train`` command's parameters (docs/protocol.md). ``update``, ``steps``,
    ``schedule`` and ``balance`` are sent only when set, so the command of a plain head
    training is what it always was."""

    epochs: int = 5
    lr: float = 0.05
    momentum: float = 0.9
    batch: int = 32
    seed: int = 1
    init: str = "export"
    update: str | None = None     # head | bias | last-block
    steps: int | None = None      # total optimizer steps instead of epochs
    schedule: str | None = None   # constant | cosine | step
    balance: bool = False         # class-balanced loss weights

    def command(self) -> str:
        # epochs= and steps= exclude each other (the firmware answers 101).
        length = f"steps={self.steps}" if self.steps is not None else f"epochs={self.epochs}"
        cmd = (f"train {length} lr={self.lr:g} momentum={self.momentum:g} "
               f"batch={self.batch} seed={self.seed} init={self.init}")
        if self.update is not None:
            cmd += f" update={self.update}"
        if self.schedule is not None:
            cmd += f" schedule={self.schedule}"
        if self.balance:
            cmd += " balance=1"
        return cmd


@dataclass
class DeviceSession:
    """Logs every record of one session and folds it into :attr:`results`.

    Parameters
    ----------
    board : the board profile (its clock and current give the energy estimate)
    folder : where ``results.json`` and ``log.jsonl`` go (created)
    params : the ``train`` parameters
    """

    board: Board
    folder: Path
    params: TrainParams

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.results = DeviceResults(
            board=self.board.name, clock_hz=self.board.clock_hz, params=vars(self.params),
            energy_model={"supply_v": self.board.supply_v,
                          "active_current_ma": self.board.active_current_ma,
                          "source": self.board.current_source},
            started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.log = open(self.folder / LOG, "a", buffering=1)

    def close(self) -> None:
        self.log.close()

    def on_record(self, rec: Record) -> None:
        self.log.write(json.dumps({"t": round(time.time(), 3), **rec.to_dict()}) + "\n")

    def absorb(self, rec: Record) -> None:
        r = self.results
        if rec.type == "boot":
            r.counter = rec.fields.get("counter", r.counter)
            r.firmware = {"proto": rec.fields.get("proto"), "fw": rec.fields.get("fw"),
                          "model": rec.fields.get("model")}
            for key in ("board", "port", "clock"):  # the port and its clock set-up, if named
                if key in rec.fields:
                    r.firmware[key] = rec.fields[key]
        elif rec.type == "info":
            r.info = rec.fields
            if "flash" in rec.fields:
                r.flash_bytes = rec.int("flash")
            if "ram_static" in rec.fields:
                r.ram_bytes = rec.int("ram_static")
        elif rec.type == "epoch":
            e = estimate(self.board, rec.int("cycles", 0))
            r.epochs.append(EpochResult(rec.int("n"), rec.float("loss"), rec.float("train_acc"),
                                        e.cycles, e.seconds, e.energy_mj, e.energy_kind))
            r.samples = rec.int("samples", r.samples or 0)
        elif rec.type == "phase":
            r.phases[rec.fields["name"]] = estimate(self.board, rec.int("cycles"))
        elif rec.type == "eval":
            # its @class records follow: a new list for this `when`
            r.per_class = {**(r.per_class or {}), rec.fields.get("when", "-"): []}
            if rec.fields.get("when") == "before":
                r.test_acc_before = rec.float("acc")
            else:
                r.test_acc_after = rec.float("acc")
                if "int8_acc" in rec.fields:
                    r.test_int8_acc_after = rec.float("int8_acc")
            r.test_samples = rec.int("total", 0)
        elif rec.type == "class":
            r.per_class = r.per_class or {}
            rows = r.per_class.setdefault(rec.fields.get("when", "-"), [])
            rows.append({key: rec.int(key, 0) for key in ("class", "correct", "int8_correct",
                                                          "total")})
        elif rec.type == "mem":
            r.memory = {k: int(v) for k, v in rec.fields.items() if v.lstrip("-").isdigit()}
        elif rec.type == "err":
            r.events.append({"error": rec.fields})
        self.save()

    def save(self) -> None:
        atomic_write_json(self.folder / RESULTS, self.results.to_dict())


def converse(link: SerialLink, session: DeviceSession, train_set, on_reset: str,
             monitor: PowerMonitor | None, timeout: float, progress,
             db_use: str = "ram") -> None:
    """Boot, ``info``, optionally ``db load`` ``train_set`` and ``db use`` it (``ram``: alone;
    ``both``: after the compiled-in set), then ``train``; retry ``train`` once after a device
    reset when ``on_reset`` is ``retry``."""
    doc, brd, params = session.results, session.board, session.params
    try:
        boot = link.wait_boot(timeout=5.0 if not brd.emulated else timeout)
        session.absorb(boot)
    except DeviceError:
        if brd.emulated:
            raise
        # A real board may have booted before the port was opened: 'name' syncs instead.
    for rec in link.command("info", timeout=timeout):
        session.absorb(rec)
    if train_set is not None:
        x, y = train_set
        lines = [data_line(int(label), sample.astype(np.int8).tobytes())
                 for sample, label in zip(x, y, strict=True)]
        for rec in link.command(f"db load {len(lines)}", timeout=timeout, data=lines):
            session.absorb(rec)
        for rec in link.command(f"db use {db_use}", timeout=timeout):
            session.absorb(rec)
    retried = False
    while True:
        try:
            if monitor is not None:
                monitor.start()
            link.command(params.command(), timeout=timeout,
                         on_progress=lambda r: (session.absorb(r),
                                                progress(r) if progress else None))
            break
        except DeviceReset as reset:
            doc.events.append({"device_reset": reset.boot.fields,
                               "records_before_reset": len(reset.received)})
            session.absorb(reset.boot)
            if on_reset == "retry" and not retried:
                retried = True
                doc.epochs = []
                doc.phases = {}
                continue
            doc.status = "device-reset"
            doc.link = vars(link.stats)
            session.save()
            raise DeviceError(f"{reset}; stopped (--on-reset stop). Partial results in "
                              f"{session.folder / RESULTS}") from reset
    if monitor is not None:
        _apply_measurements(doc, monitor.stop())
    doc.link = vars(link.stats)
    doc.status = "complete"
    doc.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    session.save()


def _apply_measurements(doc: DeviceResults, windows) -> None:
    """Windows in firmware order: features, each epoch, evaluation."""
    expected = 1 + len(doc.epochs) + 1
    if len(windows) != expected:
        doc.events.append({"monitor": f"{len(windows)} marker windows, expected "
                                      f"{expected}; energy stays estimated"})
        return
    for name, w in (("features", windows[0]), ("evaluation", windows[-1])):
        phase = doc.phases.setdefault(name, PhaseResult())
        phase.energy_mj, phase.energy_kind = w.energy_mj, "measured"
    for ep, w in zip(doc.epochs, windows[1:-1], strict=True):
        ep.energy_mj, ep.energy_kind, ep.seconds = w.energy_mj, "measured", w.duration_s
