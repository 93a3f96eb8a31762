"""The ``device`` stage: fine-tune on the device and collect timing and energy.

Writes ``RUN/device[/<label>]/results.json`` (a :class:`DeviceResults`; rewritten while
records arrive and at the end, so a killed host leaves a readable partial file) and appends
every record, with the session's id, to ``log.jsonl`` beside it. The run folder is locked
for the session (one writer); its export must be finished and current.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from tinysift.boards import Board, load_board
from tinysift.device.energy import PowerMonitor
from tinysift.device.limits import ModelCost, SessionLimits
from tinysift.device.link import SerialLink
from tinysift.device.results import DeviceResults
from tinysift.device.session import (
    DB_USE,
    ON_RESET,
    RESULTS,
    DeviceSession,
    SessionSetup,
    TrainParams,
    converse,
)
from tinysift.errors import TinysiftError
from tinysift.runs import Run, locks_run

__all__ = ["RESULTS", "TrainParams", "cached_results", "check_export_fits", "ensure_built",
           "flash", "run_on_device"]


@locks_run("run_dir")
def run_on_device(run_dir: str | Path, board: str, port: str | None = None,
                  params: TrainParams | None = None, use_db: bool = False,
                  on_reset: str = "retry", monitor: PowerMonitor | None = None,
                  timeout: float = 20.0, progress=None,
                  train_set: tuple[np.ndarray, np.ndarray] | None = None,
                  label: str | None = None, db_use: str = "ram") -> DeviceResults:
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
    db_use : with ``train_set``: ``ram`` trains on it alone, ``both`` on the compiled-in set
        followed by it (an adaptation: the exported replay set plus the new samples)
    on_reset : ``retry`` (set the session up again and re-send ``train``, once, after a
        device reset) or ``stop``
    monitor : a power monitor measuring the marker windows
    timeout : seconds without a valid record, added to every limit derived from the board's
        clock and the command's expected cycles (tinysift.device.limits)
    """
    from tinysift.stages.checks import check_exported

    run_dir = Path(run_dir)
    if on_reset not in ON_RESET:
        raise TinysiftError(f"--on-reset must be one of {', '.join(ON_RESET)}, got {on_reset!r}")
    if db_use not in DB_USE:
        raise TinysiftError(f"db_use must be one of {', '.join(DB_USE)}, got {db_use!r}")
    brd = load_board(board)
    params = params or TrainParams()
    params.validate()
    export_dir = run_dir / "export"
    if not (export_dir / "export.json").exists():
        raise TinysiftError(f"{export_dir} not found; run `tinysift export --run {run_dir}`")
    check_exported(Run(run_dir))
    export_info = json.loads((export_dir / "export.json").read_text())
    if port is None:  # it is built here: a model or set that does not fit is refused first
        check_export_fits(run_dir, brd)
    session = DeviceSession(brd, run_dir / "device" / (label or ""), params)
    if train_set is None and use_db:
        with np.load(export_dir / "golden.npz") as g:
            train_set = (g["x_train"], g["y_train"])
    limits = SessionLimits(brd, ModelCost.from_export(export_info), timeout)
    setup = SessionSetup(train_set=train_set, db_use=db_use,
                         model_hash=export_info["content_hash"],
                         flash_samples=export_info["train_samples"])
    session = DeviceSession(brd, run_dir / "device" / (label or ""), params)
    res = session.results
    res.samples = setup.samples()
    res.model_hash = export_info["content_hash"]
    res.build = build_identity(run_dir)
    res.plan = {"ram_bytes": export_info["memory_plan"]["ram_total"],
                "flash_bytes": export_info["memory_plan"]["flash_total"]}
    try:
        with _open_link(brd, run_dir, port, session) as link:
            converse(link, session, setup, limits, on_reset, monitor, progress)
    except TinysiftError as exc:
        if res.status == "partial":
            res.status = "failed"
            res.events.append({"failed": str(exc)})
        raise
    except BaseException:  # Ctrl-C, SIGTERM (tinysift.errors.Terminated)
        res.status = "interrupted"
        raise
    finally:
        session.close()
    return res


def check_export_fits(run_dir: str | Path, brd: Board) -> None:
    """Refuse, before any build, a run whose export was made for another board and does not
    fit this one: the memory plan of the export's model, samples and `db load` capacity,
    against ``brd`` (an export for ``brd`` itself was checked by ``tinysift export``)."""
    from tinysift.errors import FitError
    from tinysift.export.memory import kb
    from tinysift.stages.export import memory_plan_for

    run_dir = Path(run_dir)
    info = json.loads((run_dir / "export" / "export.json").read_text())
    made_for = info.get("board")
    if made_for == brd.name:
        return
    db_capacity = (info.get("memory_plan") or {}).get("db_capacity")
    plan = memory_plan_for(run_dir, brd.name, test_samples=info["test_samples"],
                           train_samples=info["train_samples"], db_capacity=db_capacity)
    if plan["fits"]:
        return
    problems = []
    if plan["ram_total"] > plan["ram_capacity"]:
        problems.append(f"needs {kb(plan['ram_total'])} RAM, board has "
                        f"{kb(plan['ram_capacity'])}")
    if plan["flash_total"] > plan["flash_capacity"]:
        problems.append(f"needs {kb(plan['flash_total'])} flash, board has "
                        f"{kb(plan['flash_capacity'])}")
    raise FitError(f"{brd.name}: the export of {run_dir} (made for {made_for}: "
                   f"{info['train_samples']} samples, db capacity {db_capacity}) "
                   f"{' and '.join(problems)}; export for this board first: tinysift export "
                   f"--run {run_dir} --board {brd.name} [--fit]")


def cached_results(run_dir: str | Path, label: str,
                   params: TrainParams) -> DeviceResults | None:
    """A finished result for the same export, firmware sources and parameters (resume
    support)."""
    path = Path(run_dir) / "device" / label / RESULTS
    if not path.exists():
        return None
    res = DeviceResults.load(path)
    if not res.complete or res.params != vars(params) or res.build != build_identity(run_dir):
        return None
    return res


def build_identity(run_dir: str | Path) -> str:
    """What a firmware build of this run compiles: the hashes of the export's C files and of
    the firmware sources. A device result records it, and a cached result (or ELF) is reused
    only while it is unchanged: a changed firmware rule must run again."""
    from tinysift.device.build import firmware_source_hash
    from tinysift.runs import file_hash

    export_dir = Path(run_dir) / "export"
    return "|".join([file_hash(p) for p in sorted(export_dir.glob("ts_export*"))]
                    + [f"fw={firmware_source_hash()}"])


@contextlib.contextmanager
def _open_link(brd: Board, run_dir: Path, port: str | None, session: DeviceSession):
    if port is not None:
        with SerialLink(port, on_record=session.on_record, on_idle=session.flush) as link:
            session.stats = link.stats
            yield link
        return
    from tinysift.device.qemu import qemu_serial

    elf = ensure_built(run_dir, brd)
    session.results.elf = str(elf)
    with qemu_serial(brd, elf, log_path=session.folder / "qemu.log") as (url, _proc), \
            SerialLink(url, on_record=session.on_record, on_idle=session.flush) as link:
        session.stats = link.stats
        yield link


@locks_run("run_dir")
def ensure_built(run_dir: Path, brd: Board) -> Path:
    """The firmware ELF for this run's export, rebuilt when the export or the firmware
    sources changed."""
    from tinysift.device.build import build_firmware

    run_dir = Path(run_dir)
    export_dir = run_dir / "export"
    out = run_dir / "device"
    elf = out / f"firmware-{brd.pio_env}.elf"
    stamp = out / f"firmware-{brd.pio_env}.stamp"
    want = build_identity(run_dir)
    if elf.exists() and stamp.exists() and stamp.read_text() == want:
        return elf
    res = build_firmware(export_dir, brd, out)
    stamp.write_text(want)
    return res.elf


@locks_run("run_dir")
def flash(run_dir: str | Path, board: str, port: str | None = None,
          upload: bool | None = None):
    """``tinysift device flash --run``: build the firmware with the run's (current) export,
    refused first if the export does not fit the board, and upload it with PlatformIO where
    the board is flashed that way (``upload``; default: every real board). Returns the
    BuildResult."""
    from tinysift.device.build import build_firmware
    from tinysift.stages.checks import check_exported

    run_dir = Path(run_dir)
    brd = load_board(board)
    check_exported(Run(run_dir))
    check_export_fits(run_dir, brd)  # before any build
    return build_firmware(run_dir / "export", brd, run_dir / "device",
                          upload=not brd.emulated if upload is None else upload, port=port)
