"""``tinysift device run``: fine-tune on the device and collect timing and energy.

Writes ``RUN/device/results.json`` (rewritten atomically after every record, so a killed
host leaves a readable partial file) and appends every record to ``RUN/device/log.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinysift.boards import Board, load_board
from tinysift.device.energy import PowerMonitor, estimate
from tinysift.device.link import DeviceReset, SerialLink
from tinysift.device.protocol import Record, data_line
from tinysift.errors import DeviceError, TinysiftError
from tinysift.runs import atomic_write_json

RESULTS = "results.json"
LOG = "log.jsonl"


@dataclass
class TrainParams:
    epochs: int = 5
    lr: float = 0.05
    momentum: float = 0.9
    batch: int = 32
    seed: int = 1
    init: str = "export"

    def command(self) -> str:
        return (f"train epochs={self.epochs} lr={self.lr:g} momentum={self.momentum:g} "
                f"batch={self.batch} seed={self.seed} init={self.init}")


@dataclass
class DeviceSession:
    """Collects records into the results document."""

    board: Board
    run_dir: Path
    params: TrainParams
    label: str | None = None
    doc: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir = self.run_dir / "device" / (self.label or "")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.doc = {
            "status": "partial", "board": self.board.name, "counter": None,
            "clock_hz": self.board.clock_hz, "phases": {}, "epochs": [],
            "test_acc_before": None, "test_acc_after": None, "test_int8_acc_after": None,
            "ram_bytes": None, "flash_bytes": None, "samples": None,
            "params": vars(self.params), "events": [], "link": {},
            "energy_model": {"supply_v": self.board.supply_v,
                             "active_current_ma": self.board.active_current_ma,
                             "source": self.board.current_source},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self.log = open(self.dir / LOG, "a", buffering=1)

    def close(self) -> None:
        self.log.close()

    def on_record(self, rec: Record) -> None:
        self.log.write(json.dumps({"t": round(time.time(), 3), **rec.to_dict()}) + "\n")

    def absorb(self, rec: Record) -> None:
        d = self.doc
        if rec.type == "boot":
            d["counter"] = rec.fields.get("counter", d["counter"])
            d["firmware"] = {"proto": rec.fields.get("proto"), "fw": rec.fields.get("fw"),
                             "model": rec.fields.get("model")}
        elif rec.type == "info":
            d["info"] = rec.fields
            if "flash" in rec.fields:
                d["flash_bytes"] = rec.int("flash")
            if "ram_static" in rec.fields:
                d["ram_bytes"] = rec.int("ram_static")
        elif rec.type == "epoch":
            cycles = rec.int("cycles", 0)
            e = estimate(self.board, cycles)
            d["epochs"].append({"epoch": rec.int("n"), "loss": rec.float("loss"),
                                "train_acc": rec.float("train_acc"),
                                "cycles": cycles, "seconds": e["seconds"],
                                "energy_mj": e["energy_mj"], "energy_kind": e["energy_kind"]})
            d["samples"] = rec.int("samples", d["samples"] or 0)
        elif rec.type == "phase":
            d["phases"][rec.fields["name"]] = estimate(self.board, rec.int("cycles"))
        elif rec.type == "eval":
            key = "test_acc_before" if rec.fields.get("when") == "before" else "test_acc_after"
            d[key] = rec.float("acc")
            if key == "test_acc_after" and "int8_acc" in rec.fields:
                d["test_int8_acc_after"] = rec.float("int8_acc")
            d["test_samples"] = rec.int("total", 0)
        elif rec.type == "mem":
            d["memory"] = {k: int(v) for k, v in rec.fields.items() if v.lstrip("-").isdigit()}
        elif rec.type == "err":
            d["events"].append({"error": rec.fields})
        self.save()

    def save(self) -> None:
        atomic_write_json(self.dir / RESULTS, self.doc)


def run_on_device(run_dir: str | Path, board: str, port: str | None = None,
                  params: TrainParams | None = None, use_db: bool = False,
                  on_reset: str = "retry", monitor: PowerMonitor | None = None,
                  timeout: float = 120.0, progress=None,
                  train_set: tuple[np.ndarray, np.ndarray] | None = None,
                  label: str | None = None) -> dict:
    """Build (emulated) or reach (real port) the board, fine-tune, and write the results.

    Parameters
    ----------
    run_dir : a run with ``export/`` (``tinysift export``)
    board : board profile name
    port : serial port or URL of a real board (already flashed); None starts QEMU
    params : training hyper-parameters sent with ``train``
    use_db : stream the exported training set over the link (``db load``) instead of
        using the compiled-in copy
    train_set : (int8 samples, labels) to stream with ``db load`` instead (implies use_db)
    label : results go to ``RUN/device/<label>/`` (several sets on one export)
    on_reset : ``retry`` (re-send the command once after a device reset) or ``stop``
    monitor : a power monitor measuring the marker windows
    timeout : seconds without a valid record before giving up
    """
    run_dir = Path(run_dir)
    brd = load_board(board)
    params = params or TrainParams()
    export_dir = run_dir / "export"
    if not (export_dir / "export.json").exists():
        raise TinysiftError(f"{export_dir} not found; run `tinysift export --run {run_dir}`")
    session = DeviceSession(brd, run_dir, params, label)
    export_info = json.loads((export_dir / "export.json").read_text())
    if train_set is None and use_db:
        with np.load(export_dir / "golden.npz") as g:
            train_set = (g["x_train"], g["y_train"])
    session.doc["samples"] = (len(train_set[1]) if train_set is not None
                              else export_info["train_samples"])
    session.doc["model_hash"] = export_info["content_hash"]
    session.doc["plan"] = {"ram_bytes": export_info["memory_plan"]["ram_total"],
                           "flash_bytes": export_info["memory_plan"]["flash_total"]}
    try:
        with _open_link(brd, run_dir, port, session) as link:
            _session(link, session, brd, params, train_set, on_reset, monitor, timeout,
                     progress)
    except KeyboardInterrupt:
        session.doc["status"] = "interrupted"
        session.save()
        raise
    finally:
        session.close()
    return session.doc


@contextlib.contextmanager
def _open_link(brd: Board, run_dir: Path, port: str | None, session: DeviceSession):
    if port is not None:
        with SerialLink(port, on_record=session.on_record) as link:
            yield link
        return
    from tinysift.device.qemu import qemu_serial

    elf = ensure_built(run_dir, brd)
    session.doc["elf"] = str(elf)
    with qemu_serial(brd, elf, log_path=session.dir / "qemu.log") as (url, _proc), \
            SerialLink(url, on_record=session.on_record) as link:
        yield link


def ensure_built(run_dir: Path, brd: Board) -> Path:
    """The firmware ELF for this run's export, rebuilt when the export or the firmware
    sources changed."""
    from tinysift.device.build import build_firmware, firmware_source_hash
    from tinysift.runs import file_hash

    export_dir = run_dir / "export"
    out = run_dir / "device"
    elf = out / f"firmware-{brd.pio_env}.elf"
    stamp = out / f"firmware-{brd.pio_env}.stamp"
    want = "|".join([file_hash(p) for p in sorted(export_dir.glob("ts_export*"))]
                    + [f"fw={firmware_source_hash()}"])
    if elf.exists() and stamp.exists() and stamp.read_text() == want:
        return elf
    res = build_firmware(export_dir, brd, out)
    stamp.write_text(want)
    return res.elf


def _session(link: SerialLink, session: DeviceSession, brd: Board, params: TrainParams,
             train_set, on_reset: str, monitor: PowerMonitor | None, timeout: float,
             progress) -> None:
    doc = session.doc
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
        for rec in link.command("db use ram", timeout=timeout):
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
            doc["events"].append({"device_reset": reset.boot.fields,
                                  "records_before_reset": len(reset.received)})
            session.absorb(reset.boot)
            if on_reset == "retry" and not retried:
                retried = True
                doc["epochs"] = []
                doc["phases"] = {}
                continue
            doc["status"] = "device-reset"
            doc["link"] = vars(link.stats)
            session.save()
            raise DeviceError(f"{reset}; stopped (--on-reset stop). Partial results in "
                              f"{session.dir / RESULTS}") from reset
    if monitor is not None:
        _apply_measurements(doc, monitor.stop())
    doc["link"] = vars(link.stats)
    doc["status"] = "complete"
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    session.save()


def _apply_measurements(doc: dict, windows) -> None:
    """Windows in firmware order: features, each epoch, evaluation."""
    expected = 1 + len(doc["epochs"]) + 1
    if len(windows) != expected:
        doc["events"].append({"monitor": f"{len(windows)} marker windows, expected "
                                         f"{expected}; energy stays estimated"})
        return
    doc["phases"].setdefault("features", {})
    doc["phases"]["features"].update(energy_mj=windows[0].energy_mj, energy_kind="measured")
    for ep, w in zip(doc["epochs"], windows[1:-1], strict=True):
        ep.update(energy_mj=w.energy_mj, energy_kind="measured", seconds=w.duration_s)
    doc["phases"].setdefault("evaluation", {})
    doc["phases"]["evaluation"].update(energy_mj=windows[-1].energy_mj, energy_kind="measured")
