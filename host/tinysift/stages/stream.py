"""The device stage with a streamed buffer: ``db stream`` the new samples (the device keeps
``cap`` of them by a replay policy), then train on the buffer (and the exported replay set).

Writes ``RUN/device/<label>/results.json`` and ``log.jsonl`` like the ``device`` stage,
``stream_params.json`` (the ``db stream`` parameters) and ``stream.json`` (what the device
kept: :class:`tinysift.device.stream.StreamReport`). Like the ``device`` stage it holds the
run folder's lock, records a failure or an interruption in ``results.json``, and a rerun
that does not complete keeps an earlier complete result (tinysift.stages.device.attempt).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinysift.boards import load_board
from tinysift.device.limits import ModelCost, SessionLimits
from tinysift.device.results import DeviceResults, training_set_hash
from tinysift.device.session import DeviceSession, TrainParams
from tinysift.device.stream import STREAM_FILE, StreamParams, StreamReport, converse_stream
from tinysift.runs import atomic_write_json, locks_run
from tinysift.stages.device import (
    RESULTS,
    _open_link,
    attempt,
    board_plan,
    build_identity,
    check_session,
    check_stream_fits,
)

STREAM_PARAMS = "stream_params.json"


@locks_run("run_dir")
def run_stream_on_device(run_dir: str | Path, board: str, params: TrainParams,
                         samples: tuple[np.ndarray, np.ndarray], stream: StreamParams,
                         label: str, db_use: str = "both", port: str | None = None,
                         timeout: float = 20.0) -> tuple[DeviceResults, StreamReport]:
    """Stream ``samples`` (int8 inputs, labels) with ``stream`` and train with ``params`` on
    ``db use <db_use>``; a finished result with the same parameters, build and streamed set
    on the same board is read back instead (resume). Every command is bounded as in the device stage
    (tinysift.device.limits: its silence, deadline and records from the board's clock and the
    command's expected cycles, ``timeout`` seconds added).

    Before any build, port or cached result, the checks of
    :func:`tinysift.stages.device.run_on_device` (:func:`~tinysift.stages.device.check_session`:
    a finished export of the current model, the update mode built, and without ``port`` the
    export's fit on the board and an emulated board), ``stream``'s count (the samples'),
    cap and policy (:meth:`~tinysift.device.stream.StreamParams.check`), and the streamed
    samples' shape, labels and ``stream.cap`` against the export
    (:func:`~tinysift.stages.device.check_stream_fits`).
    """
    run_dir = Path(run_dir)
    folder = run_dir / "device" / label
    brd = load_board(board)
    # the device stage's checks, before the cache too: a result of a stale export (one from
    # an earlier model.tflite) is no result of this model
    info = check_session(run_dir, brd, params, port, db_use)
    stream.check(len(samples[1]))
    # (samples of the model's input and classes; the kept ones fit the buffer: a cap of 0
    # is the firmware's whole buffer)
    check_stream_fits(run_dir, info, samples, brd.name, keeps=stream.cap)
    build = build_identity(run_dir, brd)
    set_hash = stream_set_hash(samples, db_use)
    cached = _cached(folder, board, params, stream, build, set_hash)
    if cached is not None:
        return cached
    limits = SessionLimits(brd, ModelCost.from_export(info), timeout)
    session = DeviceSession(brd, folder, params)
    res = session.results
    res.model_hash = info["content_hash"]
    res.build = build
    res.train_set_hash = set_hash
    res.plan = board_plan(Path(run_dir), info, brd)  # the board it runs on, planned
    with attempt(session, also=(STREAM_FILE, STREAM_PARAMS)):
        # the parameters first: a complete results.json always has its own beside it
        atomic_write_json(folder / STREAM_PARAMS, vars(stream))
        with _open_link(brd, run_dir, port, session) as link:
            report = converse_stream(link, session, samples[0], samples[1], stream, limits,
                                     db_use)
        res.samples = report.kept + (info["train_samples"] if db_use == "both" else 0)
    return res, report


def stream_set_hash(samples: tuple[np.ndarray, np.ndarray], db_use: str) -> str:
    """The :func:`training_set_hash` of a streamed set used with ``db use <db_use>``."""
    return training_set_hash(samples, f"db stream, db use {db_use}")


def _cached(folder: Path, board: str, params: TrainParams, stream: StreamParams, build: str,
            set_hash: str) -> tuple[DeviceResults, StreamReport] | None:
    path, spath = folder / RESULTS, folder / STREAM_PARAMS
    if not (path.exists() and spath.exists() and (folder / STREAM_FILE).exists()):
        return None
    res = DeviceResults.load_if_sound(path)
    try:  # a torn file of the three is no cache: the session runs again
        if res is None or not res.reusable_for(board, params.record(), build, set_hash) or \
                json.loads(spath.read_text()) != vars(stream):
            return None
        doc = json.loads((folder / STREAM_FILE).read_text())
        doc.pop("host_seconds", None)
        return res, StreamReport(**doc)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
