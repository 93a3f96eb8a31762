"""The ``device`` stage: fine-tune on the device and collect timing and energy.

Writes ``RUN/device[/<label>]/results.json`` (a :class:`DeviceResults`; rewritten while
records arrive and at the end, so a killed host leaves a readable partial file) and appends
every record, with the session's id, to ``log.jsonl`` beside it. The run folder is locked
for the session (one writer); its export must be finished and current.

A rerun never loses a finished result: an earlier complete ``results.json`` is moved aside
(``results.previous.json``) while the new session runs; if that session does not complete,
its results go to ``results.failed.json`` and the earlier ones are put back (until a later
session completes: then the failed attempt's files go; ``log.jsonl`` keeps its records).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinysift.boards import Board, load_board
from tinysift.device.energy import PowerMonitor
from tinysift.device.limits import ModelCost, SessionLimits
from tinysift.device.link import SerialLink
from tinysift.device.results import DeviceResults, training_set_hash
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
from tinysift.export.memory import has_backbone_buffers
from tinysift.runs import Run, locks_run

if TYPE_CHECKING:
    from tinysift.device.build import BuildResult

__all__ = ["RESULTS", "TrainParams", "cached_results", "check_export_fits", "check_session",
           "check_stream_fits", "check_update_built", "ensure_built", "flash",
           "run_on_device", "session_set"]

#: The tags of the files a session moves aside: an earlier complete result while a new
#: session runs, and the new session's own results when it does not complete.
PREVIOUS, FAILED = "previous", "failed"


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

    A session that does not complete leaves an earlier complete result of the folder in
    ``results.json`` and its own in ``results.failed.json`` (:func:`attempt`).
    """
    run_dir = Path(run_dir)
    if on_reset not in ON_RESET:
        raise TinysiftError(f"--on-reset must be one of {', '.join(ON_RESET)}, got {on_reset!r}")
    brd = load_board(board)
    params = params or TrainParams()
    if monitor is not None:
        check_monitor_board(brd, port)
    export_info = check_session(run_dir, brd, params, port, db_use)
    train_set, set_hash = session_set(run_dir, train_set, use_db, db_use)
    if train_set is not None:  # refused before the board is contacted, not after a stream
        check_stream_fits(run_dir, export_info, train_set, brd.name)
    limits = SessionLimits(brd, ModelCost.from_export(export_info), timeout)
    setup = SessionSetup(train_set=train_set, db_use=db_use,
                         model_hash=export_info["content_hash"],
                         flash_samples=export_info["train_samples"])
    session = DeviceSession(brd, run_dir / "device" / (label or ""), params)
    res = session.results
    res.samples = setup.samples()
    res.model_hash = export_info["content_hash"]
    res.build = build_identity(run_dir, brd)
    res.train_set_hash = set_hash
    res.plan = board_plan(Path(run_dir), export_info, brd)
    with attempt(session):
        with _open_link(brd, run_dir, port, session) as link:
            converse(link, session, setup, limits, on_reset, monitor, progress)
    return res


def check_monitor_board(brd: Board, port: str | None) -> None:
    """A power monitor measures a real board's supply while it trains: refused on an
    emulated board (it measured nothing, and the run silently kept its estimates) and on a
    real board without its port. The CLI calls it before it loads the Joulescope's driver.

    Raises
    ------
    TinysiftError
        naming the fix
    """
    if brd.emulated:
        raise TinysiftError(f"--joulescope measures a real board's supply current; --board "
                            f"{brd.name} is emulated (QEMU): flash a real board and pass its "
                            "--board and --port, or leave --joulescope out")
    if port is None:
        raise TinysiftError(f"--joulescope measures the supply of --board {brd.name} while it "
                            "trains: pass the board's serial port (--port; `tinysift device "
                            "list` shows it) once it is flashed")


def check_run_board(brd: Board) -> None:
    """A board without a firmware port runs no tinysift firmware: a ``device run`` on it is
    refused before any work (it opened the port, or told the user to `device flash` it,
    which refuses it).

    Raises
    ------
    TinysiftError
        naming the fix
    """
    if not brd.port:
        raise TinysiftError(f"--board {brd.name} has no firmware port (its profile is for "
                            "memory plans only), so no tinysift firmware runs on it: choose a "
                            "board `tinysift boards` lists as built")


def check_device_folder(run_dir: Path) -> None:
    """``RUN/device`` (the firmware build and the device results) must be a folder or not
    yet there: a file in its place ended `device run` and `device flash` in an unexpected
    FileExistsError once a board was set up."""
    from tinysift.runs import out_folder

    out_folder(Path(run_dir) / "device", "the run's device folder", create=False,
               fix="move it out of the run folder (nothing was built or sent) and run again")


def check_session(run_dir: Path, brd: Board, params: TrainParams, port: str | None,
                  db_use: str) -> dict:
    """What a device session (:func:`run_on_device`, and the streamed one of
    tinysift.stages.stream) checks before any build or port: the training parameters and
    ``db_use``, a finished export of the current model, an update mode its firmware holds,
    and, without a port (the firmware is built here), that the export fits ``brd`` and that
    ``brd`` is emulated.

    Returns
    -------
    dict : the export's export.json

    Raises
    ------
    TinysiftError
        each naming its fix; StageError for an export not finished or of an earlier model,
        FitError for an export that does not fit the board
    """
    from tinysift.stages.checks import check_exported

    params.validate()
    if db_use not in DB_USE:
        raise TinysiftError(f"db_use must be one of {', '.join(DB_USE)}, got {db_use!r}")
    export_dir = run_dir / "export"
    if not (export_dir / "export.json").exists():
        check_exported(Run(run_dir))  # a folder not trained yet: the train to run first
        raise TinysiftError(f"{export_dir} not found; run `tinysift export --run {run_dir}`")
    check_exported(Run(run_dir))
    export_info = json.loads((export_dir / "export.json").read_text())
    check_update_built(run_dir, export_info, params, brd.name)
    check_device_folder(run_dir)
    if port is None:  # it is built here: a model or set that does not fit is refused first
        check_export_fits(run_dir, brd)
    if port is None and not brd.emulated:
        # refused before anything is built: the emulator would only be found missing after
        # the board's firmware was built (stock PlatformIO's, downloading, for some boards)
        raise TinysiftError(
            f"--board {brd.name} is a real board: pass its serial port (--port; `tinysift "
            f"device list` shows it) once it is flashed (`tinysift device flash --run "
            f"{run_dir} --board {brd.name}`); without --port, device run starts an emulated "
            "board in QEMU")
    return export_info


def check_update_built(run_dir: str | Path, export_info: dict, params: TrainParams,
                       board: str) -> None:
    """Refuse, before the board is contacted, an update mode the export's firmware was built
    without: a head-only export (export.json ``backbone_training`` false, the firmware built
    with -DTS_APP_BACKBONE_TRAINING=0) trains update=head only.

    Parameters
    ----------
    run_dir : the run (named in the fix)
    export_info : its export.json
    params : the training parameters (``update`` None is the firmware's default, head)
    board : the board profile's name (named in the fix)

    Raises
    ------
    TinysiftError
        update=last-block or bias on a head-only export, naming the fix: export again with
        the backbone buffers and build that.
    """
    from tinysift.export.memory import needs_backbone_buffers

    update = params.update or "head"
    if not needs_backbone_buffers(update):
        return
    if has_backbone_buffers(export_info):
        check_update_supported(run_dir, export_info, update)
        return
    raise TinysiftError(
        f"update={update} trains float layers below the head, but the export of {run_dir} "
        f"is head-only (export.json backbone_training false: its firmware is built without "
        f"the update=last-block / bias buffers): export again with them (`tinysift export "
        f"--run {run_dir} --board {board}`, without --head-only; the memory plan says whether "
        f"they fit) and build that, or train with update=head")


def check_update_supported(run_dir: str | Path, export_info: dict, update: str) -> None:
    """Refuse, before any build or port, update=last-block or bias on a model the firmware
    cannot train that way (ts_trainer_sizes() gives the mode no buffers and the device answers
    `engine:unsupported_op` after the set was sent): last-block needs a pointwise CONV_2D
    right below the AVERAGE_POOL_2D before the head, bias a chain of conv, depthwise conv,
    average pooling, reshape or quantize layers below it (docs/trainer.md, Limits). The
    export's layer table says which (an export without one is not checked)."""
    from tinysift.export.memory import backbone_dims

    layers = export_info.get("layers")
    head = export_info.get("head_layer")
    if not layers or head is None:
        return
    dims = backbone_dims([(lay["op"], lay["in"], lay["out"], lay["inputs"]) if "inputs" in lay
                          else (lay["op"], lay["in"], lay["out"]) for lay in layers], head)
    ops = ", ".join(dict.fromkeys(lay["op"] for lay in layers[:head]))
    if update == "last-block" and not (dims.block_out_c and _block_is_pointwise(layers, head)):
        why = ("a pointwise CONV_2D (1x1, stride 1) right below the AVERAGE_POOL_2D before the "
               "head, reading only the layer before it")
    elif update == "bias" and not dims.bias_channels:
        why = ("a chain of CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, RESHAPE or QUANTIZE "
               "layers below the head (no max pooling, no residual ADD)")
    else:
        return
    raise TinysiftError(
        f"update={update} needs {why}, which the model of {run_dir} does not have (its "
        f"layers below the head: {ops}): train with update=head, or a model the mode can "
        "train (the default ds-cnn; docs/trainer.md, Limits)")


def _block_is_pointwise(layers: list[dict], head: int) -> bool:
    """Whether the CONV_2D that :func:`backbone_dims` found under the pooling is 1x1 with
    stride 1, the only one ts_trainer_tail.c's last block trains (its filter is not in the
    layer table: read from the same height and width in and out and one multiply-accumulate
    per input channel of each output). A table without MAC counts is not checked."""
    from tinysift.export.memory import pooled_conv_layer

    conv = layers[pooled_conv_layer([lay["op"] for lay in layers], head)]
    if "macs" not in conv:
        return True
    return (list(conv["in"][:2]) == list(conv["out"][:2])
            and conv["macs"] == int(np.prod(conv["out"])) * conv["in"][-1])


def check_stream_fits(run_dir: str | Path, export_info: dict,
                      train_set: tuple[np.ndarray, np.ndarray], board: str,
                      keeps: int | None = None) -> None:
    """A set streamed with `db load` must fit the export's RAM buffer: at most its
    ``db_capacity`` samples, each of the model's input size, labels among its classes.

    ``keeps`` is how many of the set the buffer keeps (`db stream`'s cap: the set may be
    longer); None: all of them (`db load`).

    Raises
    ------
    TinysiftError : naming the numbers and the fix (export again with a larger
        ``--db-capacity``, or stream fewer samples)
    """
    x, y = train_set
    shape = tuple(export_info["input"]["shape"])
    if tuple(x.shape[1:]) != shape and int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        raise TinysiftError(
            f"the set to stream has samples of shape {tuple(x.shape[1:])}, the exported "
            f"model takes {shape}: stream samples of the model's dataset")
    classes = int(export_info["num_classes"])
    if len(y) and (int(np.min(y)) < 0 or int(np.max(y)) >= classes):
        raise TinysiftError(f"the set to stream has labels {int(np.min(y))}..{int(np.max(y))},"
                            f" the exported model has classes 0..{classes - 1}")
    capacity = (export_info.get("memory_plan") or {}).get("db_capacity")
    if capacity is not None:
        capacity = max(int(capacity), 1)  # the firmware's buffer has at least one slot
    if capacity is not None and keeps is not None and keeps > capacity:
        # the firmware refuses it too (above_db_capacity), but only after a build and a boot
        raise TinysiftError(
            f"`db stream` keeps up to {keeps} samples (cap), the export's buffer holds "
            f"{capacity} (over by {keeps - capacity}): export again with a larger buffer "
            f"(`tinysift export --run {run_dir} --board {board} --db-capacity {keeps}`, if the "
            f"board's RAM allows it: the memory plan says) or keep at most {capacity}")
    if capacity is not None and keeps is None and len(y) > capacity:
        raise TinysiftError(
            f"the set to stream has {len(y)} samples, the export's `db load` buffer holds "
            f"{capacity} (over by {len(y) - int(capacity)}): export again with a larger "
            f"buffer (`tinysift export --run {run_dir} --board {board} --db-capacity "
            f"{len(y)}`, if the board's RAM allows it: the memory plan says) or stream at "
            f"most {capacity} samples")


def session_set(run_dir: str | Path, train_set: tuple[np.ndarray, np.ndarray] | None,
                use_db: bool, db_use: str) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """The set a device session streams and its :func:`training_set_hash`.

    Parameters
    ----------
    run_dir : the run (its export's ``golden.npz`` holds the exported training set)
    train_set : (int8 samples, labels) to stream, or None
    use_db : without ``train_set``, stream the exported training set instead of training on
        the compiled-in copy
    db_use : ``ram`` or ``both`` (with a streamed set)

    Returns
    -------
    (train_set or None, hash)
    """
    if train_set is None and use_db:
        with np.load(Path(run_dir) / "export" / "golden.npz") as g:
            train_set = (g["x_train"], g["y_train"])
    mode = "db use flash" if train_set is None else f"db load, db use {db_use}"
    return train_set, training_set_hash(train_set, mode)


@contextlib.contextmanager
def attempt(session: DeviceSession, also: tuple[str, ...] = ()) -> Iterator[DeviceResults]:
    """One session's conversation, recorded however it ends, without losing a finished
    result of the same folder.

    An earlier complete ``results.json`` (and the files named in ``also`` that belong to it)
    is moved aside to ``<name>.previous.<ext>`` first. On success the new results replace
    it. A TinysiftError (or any other error) sets the status ``failed`` with its message in
    ``events``; Ctrl-C or SIGTERM sets ``interrupted``; either way the results are written,
    then, if an earlier complete result was set aside, this session's files go to
    ``<name>.failed.<ext>`` and the earlier ones come back, and a TinysiftError says where.
    A host killed outright leaves the earlier result in ``results.previous.json``; the next
    session of the folder keeps it the same way.
    """
    names = (RESULTS, *also)
    folder = session.folder
    try:
        previous = _set_aside(folder, names)
    except BaseException:
        session.log.close()
        raise
    res = session.results
    try:
        yield res
    except Exception as exc:  # TinysiftError: a clear failure; anything else: a bug, also one
        if res.status == "partial":
            res.status = "failed"
            res.events.append({"failed": str(exc)})
        failed = _settle(session, names, previous)
        if failed is not None and isinstance(exc, TinysiftError):
            exc.args = (f"{exc} [this attempt's results: {failed}; the earlier complete "
                        f"results stay in {folder / RESULTS}]",)
        raise
    except BaseException:  # Ctrl-C, SIGTERM (tinysift.errors.Terminated)
        if res.status != "complete":
            res.status = "interrupted"
        _settle(session, names, previous)
        raise
    _settle(session, names, previous)


def _tagged(folder: Path, name: str, tag: str) -> Path:
    stem, dot, ext = name.partition(".")
    return folder / f"{stem}.{tag}{dot}{ext}"


def _is_complete(path: Path) -> bool:
    res = DeviceResults.load_if_sound(path)  # missing, or torn by a crash of an old writer
    if res is not None:
        return res.complete
    # a finished result this version cannot load (a key it does not know in an epoch or a
    # phase: another version's, or an edit) was taken for none and replaced by a failed rerun
    try:
        return json.loads(path.read_text()).get("status") == "complete"
    except (OSError, ValueError, AttributeError):
        return False


def _set_aside(folder: Path, names: tuple[str, ...]) -> dict[str, Path] | None:
    """Move an earlier complete result (``names[0]``) and its companions out of the new
    session's way; returns where they are, or None when there is none to keep."""
    kept = {name: _tagged(folder, name, PREVIOUS) for name in names}
    if _is_complete(folder / names[0]):
        # the results last, so that a crash in between leaves them where they were
        for name in (*names[1:], names[0]):
            if (folder / name).exists():
                os.replace(folder / name, kept[name])
        return kept
    if _is_complete(kept[names[0]]):  # set aside by a session whose host was killed
        return kept
    return None


def _settle(session: DeviceSession, names: tuple[str, ...],
            previous: dict[str, Path] | None) -> Path | None:
    """Write the session's final results, then keep the earlier complete ones: dropped once
    this session completed, else put back with this session's files moved to
    ``*.failed.*``. A complete session also drops an older attempt's ``*.failed.*`` files
    (they describe a result no longer current; ``log.jsonl`` keeps their records). Returns
    where this session's results went when they were moved."""
    session.close()
    folder = session.folder
    if session.results.complete:
        for path in [*(previous or {}).values(),
                     *(_tagged(folder, name, FAILED) for name in names)]:
            path.unlink(missing_ok=True)
        return None
    if previous is None:
        return None
    for name in names:
        failed = _tagged(folder, name, FAILED)
        if (folder / name).exists():
            os.replace(folder / name, failed)
        else:
            failed.unlink(missing_ok=True)
    for name in (*names[1:], names[0]):  # the results last: their presence marks it done
        if previous[name].exists():
            os.replace(previous[name], folder / name)
    return _tagged(folder, names[0], FAILED)


def check_export_fits(run_dir: str | Path, brd: Board) -> None:
    """Refuse, before any build, a run whose export was made for another board and does not
    fit this one: the memory plan of the export's model, samples, `db load` capacity and VQ
    codebook, against ``brd`` (an export for ``brd`` itself was checked by ``tinysift
    export``)."""
    from tinysift.errors import FitError
    from tinysift.export.memory import over_capacity

    run_dir = Path(run_dir)
    info = json.loads((run_dir / "export" / "export.json").read_text())
    plan = _replanned(run_dir, info, brd)
    if plan is None or plan.fits:
        return
    made_for = info.get("board")
    if made_for == brd.name:
        made_for = (f"{made_for} with other RAM/flash figures" if info.get("board_profile")
                    else f"{made_for}, its figures not recorded: an older export")
    db_capacity = (info.get("memory_plan") or {}).get("db_capacity")
    vq = int((info.get("codebook") or {}).get("per_class", 0))
    backbone = has_backbone_buffers(info)
    codebook = f", a VQ codebook of {vq} per class" if vq else ""
    head_only = "" if backbone else ", head-only"
    raise FitError(f"{brd.name}: the export of {run_dir} (made for {made_for}: "
                   f"{info['train_samples']} samples, db capacity {db_capacity}{codebook}"
                   f"{head_only}) {' and '.join(over_capacity(plan))}; export for this board "
                   f"first: tinysift export --run {run_dir} --board {brd.name} [--fit]"
                   f"{' --head-only' if not backbone else ''}")


def _replanned(run_dir: Path, info: dict, brd: Board):
    """The memory plan of a run's export (``info``: its export.json) on ``brd``, planned
    again: the export's model, samples, `db load` capacity and VQ codebook; None where the
    export was planned for ``brd``'s profile itself (an export before profiles were
    recorded is planned again)."""
    from tinysift.export.memory import board_plan_fields, plan_memory
    from tinysift.stages.export import run_model_footprint

    if info.get("board") == brd.name and info.get("board_profile") == board_plan_fields(brd):
        return None
    return plan_memory(run_model_footprint(run_dir), brd, info["train_samples"],
                       info["test_samples"],
                       db_capacity=(info.get("memory_plan") or {}).get("db_capacity"),
                       vq_per_class=int((info.get("codebook") or {}).get("per_class", 0)),
                       backbone_training=has_backbone_buffers(info))


def board_plan(run_dir: Path, info: dict, brd: Board) -> dict:
    """What a device run records of the plan: the RAM and flash totals on the board it ran
    on, and that board (a run on another board than the export's recorded the export's plan:
    more RAM than that board has, for a run that fit it)."""
    exported = {"ram_bytes": info["memory_plan"]["ram_total"],
                "flash_bytes": info["memory_plan"]["flash_total"]}
    try:
        plan = _replanned(run_dir, info, brd)
    except TinysiftError:  # no model.tflite to plan with: the export's own, named as such
        return {**exported, "board": info.get("board")}
    if plan is None:
        return {**exported, "board": brd.name}
    return {"ram_bytes": plan.ram_total, "flash_bytes": plan.flash_total, "board": brd.name}


def cached_results(run_dir: str | Path, label: str, params: TrainParams, board: str,
                   train_set: tuple[np.ndarray, np.ndarray] | None = None,
                   use_db: bool = False, db_use: str = "ram") -> DeviceResults | None:
    """A finished result for the same board, export, firmware sources, parameters and
    training set (resume support).

    ``board`` (the profile name), ``train_set``, ``use_db`` and ``db_use`` are what
    :func:`run_on_device` would be given: the result is reused only when it ran on that
    board (the same export runs on several boards, with other cycles and energy) and trained
    on the same streamed samples and labels in the same mode (None and not ``use_db``: the
    compiled-in set). A result written before the set was recorded is not reused."""
    res = DeviceResults.load_if_sound(Path(run_dir) / "device" / label / RESULTS)
    if res is None or not res.reusable_for(
            board, params.record(), build_identity(run_dir, load_board(board)),
            session_set(run_dir, train_set, use_db, db_use)[1]):
        return None
    return res


def build_identity(run_dir: str | Path, brd: Board) -> str:
    """What a firmware build of this run for ``brd`` compiles: the hashes of the export's C
    files and of the firmware sources, and the toolchain that compiles them. A device result
    records it, and a cached result (or ELF) is reused only while it is unchanged: a changed
    firmware rule, or another compiler, must run again."""
    from tinysift.device.build import (
        HEAD_ONLY_FLAG,
        build_environment,
        export_backbone_training,
        firmware_source_hash,
        toolchain_identity,
    )
    from tinysift.runs import file_hash

    export_dir = Path(run_dir) / "export"
    # a head-only export builds another firmware from the same C files: never the same
    # identity (a full build's stays as it was, so its cached results stay valid)
    flags = [] if export_backbone_training(export_dir) else [f"flags={HEAD_ONLY_FLAG}"]
    # the caller's PlatformIO variables (PLATFORMIO_BUILD_FLAGS...) reach the build too: an
    # ELF or result built with other flags is another firmware (none set: as it was)
    env = [f"env:{item}" for item in build_environment()]
    # an upgraded compiler builds another ELF from the same sources (a stale one was reused)
    return "|".join([file_hash(p) for p in sorted(export_dir.glob("ts_export*"))]
                    + [f"fw={firmware_source_hash()}", f"toolchain={toolchain_identity(brd)}"]
                    + env + flags)


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
    # the identity of the ELF that runs (its stamp): the one computed before the build said
    # toolchain=none when this build installed its toolchain, and the result was never reused
    session.results.build = _stamp(run_dir, brd).read_text()
    with qemu_serial(brd, elf, log_path=session.folder / "qemu.log") as (url, _proc), \
            SerialLink(url, on_record=session.on_record, on_idle=session.flush) as link:
        session.stats = link.stats
        yield link


@locks_run("run_dir")
def ensure_built(run_dir: Path, brd: Board) -> Path:
    """The firmware ELF for this run's export, rebuilt when its :func:`build_identity` (the
    export, the firmware sources, the toolchain, the build variables) changed, or when the
    ELF is not the one that build wrote (its hash, recorded beside the stamp: a truncated or
    replaced ELF was run as it was, and every run ended in a closed link)."""
    from tinysift.runs import file_hash

    run_dir = Path(run_dir)
    out = run_dir / "device"
    elf = out / f"firmware-{brd.pio_env}.elf"
    stamp = _stamp(run_dir, brd)
    elf_hash = _elf_hash(run_dir, brd)
    want = build_identity(run_dir, brd)
    if (elf.exists() and stamp.exists() and stamp.read_text() == want
            and elf_hash.exists() and elf_hash.read_text() == file_hash(elf)):
        return elf
    return _build_stamped(run_dir, brd, want).elf


def _stamp(run_dir: Path, brd: Board) -> Path:
    """What the ELF in ``run_dir/device`` for ``brd`` was built from (its build identity)."""
    return Path(run_dir) / "device" / f"firmware-{brd.pio_env}.stamp"


def _elf_hash(run_dir: Path, brd: Board) -> Path:
    """The hash of the ELF the stamped build wrote (kept apart from the stamp, whose text is
    the build identity a device result records)."""
    return Path(run_dir) / "device" / f"firmware-{brd.pio_env}.elf.sha256"


def _build_stamped(run_dir: Path, brd: Board, want: str, **build_args) -> BuildResult:
    """build_firmware into ``run_dir/device``, its stamp saying ``want`` once the ELF is
    there: the stamp goes first, so that an ELF replaced by a build that did not finish
    recording (or by `device flash` under other build variables) is never taken for the
    stamp's."""
    from tinysift.device.build import NO_TOOLCHAIN, build_firmware
    from tinysift.runs import file_hash

    stamp = _stamp(run_dir, brd)
    stamp.unlink(missing_ok=True)
    res = build_firmware(Path(run_dir) / "export", brd, Path(run_dir) / "device", **build_args)
    if f"toolchain={NO_TOOLCHAIN}" in want.split("|"):
        # The build installed its toolchain (tools/pio seeds the offline core on first use,
        # stock PlatformIO downloads a board's on its first build): the stamp names the one
        # it compiled with. Stamped "none", the next run built the same ELF again.
        want = build_identity(run_dir, brd)
    _elf_hash(run_dir, brd).write_text(file_hash(res.elf))
    stamp.write_text(want)
    return res


@locks_run("run_dir")
def flash(run_dir: str | Path, board: str, port: str | None = None,
          upload: bool | None = None):
    """``tinysift device flash --run``: build the firmware with the run's (current) export,
    refused first if the export does not fit the board, and upload it with PlatformIO where
    the board is flashed that way (``upload``; default: every real board). Returns the
    BuildResult."""
    from tinysift.stages.checks import check_exported

    run_dir = Path(run_dir)
    brd = load_board(board)
    check_exported(Run(run_dir))
    check_device_folder(run_dir)
    check_export_fits(run_dir, brd)  # before any build
    # the same ELF as ensure_built's: its stamp must say what this build compiled (the
    # caller's PLATFORMIO_BUILD_FLAGS among it), else a later `device run` reused it as the
    # build the stamp named
    return _build_stamped(run_dir, brd, build_identity(run_dir, brd),
                          upload=not brd.emulated if upload is None else upload, port=port)
