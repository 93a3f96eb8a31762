"""One conversation with the device: boot, ``info``, the training set (``db load`` and
``db use``, or ``db use flash``), ``train``; every record is logged append-only and folded
into a :class:`DeviceResults`.

Every record is appended to ``log.jsonl`` as it arrives (one line, with the session's id);
``results.json`` is rewritten atomically at most once a second while records stream, whenever
the link goes quiet, and at the end, so a killed host leaves a readable partial file and the
log holds every record. A device reset restores everything the session had set up (the model
check, every streamed set, the ``db use`` mode) before ``train`` is sent again.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysift.boards import CORE_COUNTERS, Board
from tinysift.device.energy import PowerMonitor, Window, estimate
from tinysift.device.limits import Limits, SessionLimits
from tinysift.device.link import DeviceRefused, DeviceReset, DeviceTimeout, SerialLink
from tinysift.device.protocol import PROTOCOL_VERSION, Record, data_line
from tinysift.device.results import DeviceResults, EpochResult, PhaseResult
from tinysift.errors import DeviceError
from tinysift.runs import atomic_write_json

RESULTS = "results.json"
LOG = "log.jsonl"
#: results.json is rewritten at most this often while records stream (seconds).
SAVE_INTERVAL = 1.0
#: A reset is answered by setting the session up again and re-sending `train` this often.
MAX_RETRIES = 1
ON_RESET = ("retry", "stop")
DB_USE = ("ram", "both")


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

    def record(self) -> dict:
        """The parameters as results.json records them and a resume compares them: with
        ``steps`` the epoch count is not sent (the firmware never sees it), so it is not
        recorded either (a ``--steps`` run said ``epochs: 5``, and a rerun with another
        unused epoch count did not reuse an identical training)."""
        fields = dict(vars(self))
        if self.steps is not None:
            fields["epochs"] = None
        return fields

    def validate(self) -> None:
        """The firmware's ranges (docs/protocol.md), checked before anything starts."""
        from tinysift.errors import TinysiftError

        problems = []
        if self.steps is None and not 0 <= self.epochs <= 10000:
            problems.append(f"epochs {self.epochs} (0..10000)")
        if self.steps is not None and not 1 <= self.steps <= 1_000_000:
            problems.append(f"steps {self.steps} (1..1000000)")
        if not 1 <= self.batch <= 65535:
            problems.append(f"batch {self.batch} (1..65535)")
        if not 0 < self.lr <= 10:
            problems.append(f"lr {self.lr:g} (in (0, 10])")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum {self.momentum:g} (in [0, 1))")
        if not 0 <= self.seed < 2**32:
            problems.append(f"seed {self.seed} (a uint32)")
        for key, value, allowed in (("init", self.init, ("export", "zero")),
                                    ("update", self.update, (None, "head", "last-block", "bias")),
                                    ("schedule", self.schedule,
                                     (None, "constant", "cosine", "step"))):
            if value not in allowed:
                problems.append(f"{key} {value!r} (one of "
                                f"{', '.join(a for a in allowed if a)})")
        if problems:
            raise TinysiftError("the device cannot train with " + "; ".join(problems))

    def windows(self, samples: int) -> int:
        """`@epoch` records the device sends for a training set of ``samples``."""
        if self.steps is None:
            return self.epochs
        per_window = -(-max(1, samples) // self.batch)
        return -(-self.steps // per_window)


@dataclass
class SessionSetup:
    """What a session sets up on the device before `train`; all of it is sent again after a
    device reset (a rebooted firmware has the compiled-in set selected and nothing loaded).

    train_set : (int8 samples, labels) streamed with ``db load``; None trains on the
        compiled-in set (``db use flash``, so a board left on a RAM set by an earlier session
        cannot train on it)
    db_use : with ``train_set``: ``ram`` (alone) or ``both`` (after the compiled-in set)
    model_hash : the export's content hash; a firmware holding another model is refused
    flash_samples : the compiled-in set's size (the export's)
    """

    train_set: tuple[np.ndarray, np.ndarray] | None = None
    db_use: str = "ram"
    model_hash: str | None = None
    flash_samples: int | None = None

    def samples(self) -> int | None:
        """The training set's size on the device (None when unknown)."""
        streamed = None if self.train_set is None else len(self.train_set[1])
        if streamed is None:
            return self.flash_samples
        if self.db_use == "both":
            return None if self.flash_samples is None else self.flash_samples + streamed
        return streamed


@dataclass
class DeviceSession:
    """Logs every record of one session and folds it into :attr:`results`.

    Parameters
    ----------
    board : the board profile (its clock and current give the energy estimate)
    folder : where ``results.json`` and ``log.jsonl`` go (created)
    params : the ``train`` parameters
    session_id : written with every logged record and into ``results.json`` (default: a new
        one), so the log of a folder tells its sessions apart
    """

    board: Board
    folder: Path
    params: TrainParams
    session_id: str = ""

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.session_id = self.session_id or new_session_id()
        self.results = DeviceResults(
            board=self.board.name, clock_hz=self.board.clock_hz, params=self.params.record(),
            energy_model={"supply_v": self.board.supply_v,
                          "active_current_ma": self.board.active_current_ma,
                          "source": self.board.current_source},
            started=time.strftime("%Y-%m-%dT%H:%M:%S%z"), session=self.session_id,
            counter_hz=self.board.counter_rate)
        self.log = open(self.folder / LOG, "a", buffering=1)
        self.stats = None  # the link's LinkStats, once a link is open
        self.epoch_samples: list[int] = []  # each @epoch's `samples`
        # each @eval's `total` by `when`: its @class records' totals must add up to it
        self.eval_totals: dict[str, int] = {}
        self.saves = 0
        self._dirty = False
        self._saved_at = 0.0

    def close(self) -> None:
        """The final rewrite of ``results.json``; closes the log."""
        self.save()
        self.log.close()

    def on_record(self, rec: Record) -> None:
        self.log.write(json.dumps({"t": round(time.time(), 3), "session": self.session_id,
                                   **rec.to_dict()}) + "\n")

    def absorb(self, rec: Record) -> None:
        r = self.results
        if rec.type == "boot":
            r.counter = rec.fields.get("counter", r.counter)
            r.firmware = {"proto": rec.fields.get("proto"), "fw": rec.fields.get("fw"),
                          "model": rec.fields.get("model")}
            for key in ("board", "port", "clock"):  # the port and its clock set-up, if named
                if key in rec.fields:
                    r.firmware[key] = rec.fields[key]
            _note_clock(self, str(rec.fields.get("hz", "")))
            self._check_protocol(rec)
        elif rec.type == "name" and "board" in rec.fields and r.firmware is None:
            r.firmware = {"board": rec.fields["board"], "from": "name"}  # booted unseen
        elif rec.type == "info":
            r.info = rec.fields
            # a board that booted before the port opened sends no @boot: its results said
            # `counter: null` (the table "None counter") though @info names it
            r.counter = rec.fields.get("counter", r.counter)
            if r.firmware is None or r.firmware.get("from") == "name":  # booted unseen
                r.firmware = {**(r.firmware or {}), "proto": rec.fields.get("proto"),
                              "fw": rec.fields.get("fw"), "model": rec.fields.get("model"),
                              "from": "info"}
            _note_clock(self, str(rec.fields.get("hz", "")))  # every session path reads @info
            if "flash" in rec.fields:
                r.flash_bytes = rec.int("flash")
            if "ram_static" in rec.fields:
                r.ram_bytes = rec.int("ram_static")
            self._check_protocol(rec)
        elif rec.type == "epoch":
            e = estimate(self.board, rec.int("cycles", 0, low=0), r.counter_hz)
            # the loss is reported as is (a diverging training's is nan before its @err)
            r.epochs.append(EpochResult(rec.int("n"), rec.float("loss"),
                                        rec.float("train_acc", low=0, high=1),
                                        e.cycles, e.seconds, e.energy_mj, e.energy_kind))
            r.samples = rec.int("samples", r.samples or 0, low=0)
            self.epoch_samples.append(r.samples)
        elif rec.type == "phase":
            r.phases[rec.fields.get("name", "?")] = estimate(
                self.board, rec.int("cycles", low=0), r.counter_hz)
        elif rec.type == "eval":
            # its @class records follow: a new list for this `when`
            r.per_class = {**(r.per_class or {}), rec.fields.get("when", "-"): []}
            if rec.fields.get("when") == "before":
                r.test_acc_before = rec.float("acc", low=0, high=1)
            else:
                r.test_acc_after = rec.float("acc", low=0, high=1)
                if "int8_acc" in rec.fields:
                    r.test_int8_acc_after = rec.float("int8_acc", low=0, high=1)
            r.test_samples = rec.int("total", 0, low=0)
            self.eval_totals[rec.fields.get("when", "-")] = r.test_samples
        elif rec.type == "class":
            r.per_class = r.per_class or {}
            rows = r.per_class.setdefault(rec.fields.get("when", "-"), [])
            rows.append({key: rec.int(key, 0, low=0) for key in ("class", "correct",
                                                                 "int8_correct", "total")})
        elif rec.type == "mem":
            r.memory = {k: int(v) for k, v in rec.fields.items() if v.lstrip("-").isdigit()}
        elif rec.type == "err":
            r.events.append({"error": rec.fields})
        self._dirty = True
        if time.monotonic() - self._saved_at >= SAVE_INTERVAL:
            self.save()

    def _check_protocol(self, rec: Record) -> None:
        try:
            check_protocol(self.board, rec)
        except ProtocolMismatch:
            self._dirty = True  # what came is kept, the firmware it came from named
            raise

    def flush(self) -> None:
        """Rewrite ``results.json`` if records arrived since the last write (the link calls
        this whenever it waits)."""
        if self._dirty:
            self.save()

    def save(self) -> None:
        if self.stats is not None:
            self.results.link = dict(vars(self.stats))
        atomic_write_json(self.folder / RESULTS, self.results.to_dict())
        self.saves += 1
        self._dirty = False
        self._saved_at = time.monotonic()


def hello(link: SerialLink, session: DeviceSession, limits: SessionLimits):
    """The start of every conversation: the ``@boot`` record (None when a real board booted
    before the port was opened), then ``info``."""
    boot = _first_boot(link, session, limits)
    if boot is not None:
        session.absorb(boot)
    for rec in link.command("info", limits=limits.simple(3)):  # @info, @mem, @ready
        session.absorb(rec)
    return boot



def new_session_id() -> str:
    """Unique per session: the start time, the process and a random part."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{os.urandom(3).hex()}"


class WrongBoard(DeviceError):
    """The firmware that answered is built for another board than the session's profile."""


class ProtocolMismatch(DeviceError):
    """The firmware speaks another TSP version than this host."""


class ModelMismatch(DeviceError):
    """The firmware holds another model than the export the session is for."""


class UnexpectedRecords(DeviceError):
    """A finished `train` reported an epoch twice or one it does not have."""


class WrongTrainingSet(DeviceError):
    """The device trained on another set than the session set up."""


class IncompleteRecords(DeviceError):
    """Records of a finished `train` were lost on the link and `results` did not repeat
    them, or the device left out an `@eval` or `@epoch`: the result is incomplete (energy,
    cycles or accuracy would be wrong)."""


def converse(link: SerialLink, session: DeviceSession, setup: SessionSetup,
             limits: SessionLimits, on_reset: str = "retry",
             monitor: PowerMonitor | None = None, progress=None) -> None:
    """Boot, set the session up (``info`` and the model check, the training set), ``train``.

    A device reset at any point (``@boot`` in the middle of a command) is recorded; with
    ``on_reset="retry"`` the whole set-up is sent again and ``train`` re-sent, at most
    MAX_RETRIES times; else the session stops with status ``device-reset``. Raises
    DeviceError on every other failure (the caller records it). ``monitor`` is closed
    however the session ends (it stayed open and capturing after a failed one)."""
    try:
        _converse(link, session, setup, limits, on_reset, monitor, progress)
    finally:
        if monitor is not None:
            monitor.close()


def _converse(link: SerialLink, session: DeviceSession, setup: SessionSetup,
              limits: SessionLimits, on_reset: str, monitor: PowerMonitor | None,
              progress) -> None:
    doc = session.results
    boot = _first_boot(link, session, limits)
    resets = 0
    while True:
        try:
            if boot is not None:
                session.absorb(boot)
            _set_up(link, session, setup, limits)
            _train(link, session, setup, limits, monitor, progress)
            break
        except DeviceReset as reset:
            resets += 1
            doc.events.append({"device_reset": reset.boot.fields, "during": reset.command,
                               "records_before_reset": len(reset.received)})
            boot = reset.boot
            if on_reset == "retry" and resets <= MAX_RETRIES:
                _clear_training(session)
                continue
            session.absorb(boot)
            doc.status = "device-reset"
            session.save()
            how = ("stopped (--on-reset stop)" if on_reset != "retry" else
                   f"it reset again after {MAX_RETRIES} retry (set-up and `train` sent "
                   "again): giving up; check the board's power and reset line")
            raise DeviceError(f"{reset}; {how}. Partial results in "
                              f"{session.folder / RESULTS}") from reset
    complete_records(link, session, setup.samples(), limits)
    if monitor is not None:
        try:
            windows = monitor.stop()
        except DeviceError as exc:
            # the training itself finished and every record arrived: a capture lost at the
            # end (the monitor unplugged, its driver failing) costs the measurement, not the
            # result; the estimates stand, as for windows that do not match (_apply_...)
            doc.events.append({"monitor": f"the capture failed ({exc}); energy stays "
                                          "estimated"})
        else:
            _apply_measurements(doc, windows, ended_early=monitor.ended_early)
    doc.status = "complete"
    doc.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    session.save()


def train_with_retry(link: SerialLink, session: DeviceSession, limits: Limits, progress,
                     may_retry, before=None) -> None:
    """``train`` with the session's parameters. After a device reset (an ``@boot`` before
    ``@ready``), once, when ``may_retry(boot record)`` says so, the epochs and phases so far
    are dropped and ``before()`` (if any) and ``train`` run again; otherwise the session's
    status becomes ``device-reset`` and the :class:`DeviceReset` is raised."""
    doc = session.results
    retried = False
    while True:
        try:
            if before is not None:
                before()
            link.command(session.params.command(), limits=limits,
                         on_progress=lambda r: (session.absorb(r),
                                                progress(r) if progress else None))
            return
        except DeviceReset as reset:
            doc.events.append({"device_reset": reset.boot.fields,
                               "records_before_reset": len(reset.received)})
            session.absorb(reset.boot)
            if retried or not may_retry(reset.boot):
                doc.status = "device-reset"
                session.save()
                raise
            retried = True
            _clear_training(session)


def _first_boot(link: SerialLink, session: DeviceSession, limits: SessionLimits
                ) -> Record | None:
    """The first ``@boot`` (None: a real board that booted before the port was opened; its
    ``@name`` then names the board), checked against the session's board
    (:func:`check_board`)."""
    if session.board.emulated and session.results.elf is not None:
        # QEMU started here with this ELF (`wait=on`): its @boot is certain, however slowly
        # the emulator starts. A port given for an emulated profile (an emulator started by
        # hand, or a real board run without --board) is asked like a real board, so a real
        # board's firmware is named and refused rather than waited on.
        boot = link.wait_boot(limits=limits.boot())
    else:
        try:
            boot = link.wait_boot(limits=Limits(5.0, 5.0, limits.boot().records))
        except DeviceTimeout:  # a real board may have booted before the port was opened
            boot = None
    named = boot
    if boot is None:
        try:
            named = next((r for r in link.command("name", limits=limits.simple(2))
                          if r.type == "name"), None)
        except DeviceReset as reset:  # it booted just now (a board reset by opening the port)
            boot = named = reset.boot
    if named is None:
        return None
    try:
        check_board(session.board, named, link.url)
    except WrongBoard:
        session.absorb(named)  # the results name the firmware that answered
        raise
    if named.type == "name":
        session.absorb(named)  # the board, as a @boot would have named it
    return boot


def check_protocol(board: Board, rec: Record) -> None:
    """The firmware's ``proto`` (``@boot``, ``@info``) must be this host's TSP version:
    another version's records were read by TSP/1's rules without a word.

    Raises
    ------
    ProtocolMismatch : naming both versions and the fix
    """
    proto = rec.fields.get("proto", str(PROTOCOL_VERSION))
    if proto == str(PROTOCOL_VERSION):
        return
    fix = ("run the ELF this checkout builds (`tinysift device run` without --port builds "
           "and starts it)" if board.emulated else
           f"flash the firmware of this checkout (`tinysift device flash --run RUN "
           f"--board {board.name}`)")
    raise ProtocolMismatch(
        f"the firmware speaks TSP/{proto} (@{rec.type} proto={proto}), this host "
        f"TSP/{PROTOCOL_VERSION}: its records would be read by the wrong rules; {fix}, "
        "or use the tinysift release the firmware came from")


def check_board(board: Board, named: Record, url: str) -> None:
    """The firmware's ``board=`` (of ``@boot`` or ``@name``) must be the profile's board (its
    name, or its PlatformIO env's: the Arduino and ESP-IDF ports send the env's name): counts
    of another board's firmware would be turned into seconds and energy with the wrong
    profile.

    Raises
    ------
    WrongBoard : naming both boards and the fix
    """
    got = named.fields.get("board")
    if got is None or got in board.firmware_names:
        return  # a firmware that does not name its board cannot be checked
    if board.emulated:  # nothing to flash: a real board answered a session for QEMU's
        raise WrongBoard(
            f"the firmware on {url} is built for board {got!r}, not {board.name!r} (an "
            f"emulated board, `device run`'s default): pass the board that is connected "
            f"(--board {got})")
    raise WrongBoard(
        f"the firmware on {url} is built for board {got!r}, not {board.name!r}: flash "
        f"{board.name}'s firmware (`tinysift device flash --run RUN --board {board.name}`), "
        f"or pass the board that is connected (--board)")


def _set_up(link: SerialLink, session: DeviceSession, setup: SessionSetup,
            limits: SessionLimits) -> None:
    """``info`` (the firmware must hold the export's model), then the training set."""
    for rec in link.command("info", limits=limits.simple(3)):
        session.absorb(rec)
    info = session.results.info or {}
    held = info.get("model") or (session.results.firmware or {}).get("model")
    if setup.model_hash and held and held != setup.model_hash:
        raise ModelMismatch(
            f"the firmware on {link.url} holds model {held}, but this run's export is "
            f"{setup.model_hash}: flash the export first (`tinysift device flash --run RUN "
            f"--board {session.board.name}`)")
    if setup.train_set is not None:
        x, y = setup.train_set
        _check_fits_device(link, info, x, session.board.name)
        lines = [data_line(int(label), sample.astype(np.int8).tobytes())
                 for sample, label in zip(x, y, strict=True)]
        for rec in send_lines(link, session, f"db load {len(lines)}", lines,
                              limits.db_load(len(lines))):
            session.absorb(rec)
        source = setup.db_use
    else:
        source = "flash"
    recs = link.command(f"db use {source}", limits=limits.simple(2))
    for rec in recs:
        session.absorb(rec)
    check_db_use(link, recs, source, setup.samples())


def send_lines(link: SerialLink, session: DeviceSession, cmd: str, lines: list[bytes],
               limits: Limits) -> list[Record]:
    """``cmd`` (`db load N` or `db stream N ...`) with its data ``lines``, sent once more if a
    data line arrived garbled (status 102 or 103: the device ended the load or stream there,
    emptied its RAM set and drops the rest of the lines, so a second one starts clean; a
    stream starts its policy again from its seed, so it keeps what an unbroken one would).
    Data lines are most of a session's bytes."""
    try:
        return link.command(cmd, data=lines, limits=limits)
    except DeviceRefused as refused:
        if refused.status not in (102, 103):
            raise
        event = "_".join(cmd.split()[:2]) + "_sent_again"
        session.results.events.append({event: str(refused)})
        return link.command(cmd, data=lines, limits=limits)


def _note_clock(session: DeviceSession, hz: str) -> None:
    """The device reports its counter's rate (``hz`` in ``@boot`` and ``@info``): counts are
    turned into seconds and energy at that rate (a Pico's ``timer`` counts microseconds, not
    core cycles). A rate more than 1 % away from the profile's :attr:`Board.counter_rate`
    means the board does not run as its profile says (for a core-cycle counter: another core
    clock, so the profile's active current is for another clock): the results say so (an
    event the CLI prints), with both rates."""
    if not (hz.isdigit() and int(hz)):
        return  # not reported: the profile's rate stands
    session.results.counter_hz = int(hz)
    profile = session.board.counter_rate
    if abs(int(hz) - profile) > 0.01 * profile:
        event = {"clock_differs": {"device_hz": int(hz), "profile_hz": profile}}
        if event not in session.results.events:
            session.results.events.append(event)


def clock_warning(res: DeviceResults) -> str | None:
    """The line to show when the device's counter runs at another rate than its board
    profile expects (``counter_hz``, else ``clock_hz``)."""
    for event in res.events:
        if "clock_differs" in event:
            dev, prof = event["clock_differs"]["device_hz"], event["clock_differs"]["profile_hz"]
            if res.counter not in CORE_COUNTERS and res.counter is not None:  # a timer
                return (f"the firmware reports its {res.counter} counter at {dev / 1e6:g} "
                        f"MHz, the board profile says {prof / 1e6:g} MHz ({dev / prof:.2f}x): "
                        f"seconds and energy use the device's rate; correct `counter_hz` in "
                        f"boards/{res.board}.toml if the device is right")
            return (f"the firmware reports its core clock at {dev / 1e6:g} MHz, the board profile "
                    f"says {prof / 1e6:g} MHz ({dev / prof:.2f}x): seconds and energy use the "
                    f"device's rate, but the profile's active current ("
                    f"{res.energy_model.get('active_current_ma', '?')} mA) is for the "
                    f"profile's clock, so the energy estimate may be off; check the "
                    f"firmware's clock set-up, or correct `clock_hz` (and `active_current_ma`, "
                    f"or run `tinysift device calibrate`) in boards/{res.board}.toml")
    return None


def _check_fits_device(link: SerialLink, info: dict, x: np.ndarray, board: str) -> None:
    """The set about to be loaded must fit what the firmware on the board reports (`@info
    db_capacity`, `sample_bytes`): a board flashed with another export would refuse it
    only after the whole stream."""
    capacity, size = str(info.get("db_capacity", "")), str(info.get("sample_bytes", ""))
    per_sample = int(np.prod(x.shape[1:]))
    if size.isdigit() and int(size) and per_sample != int(size):
        raise DeviceError(
            f"the firmware on {link.url} takes samples of {size} bytes, the set to load has "
            f"{per_sample}: flash this run's export first (`tinysift device flash --run RUN "
            f"--board {board}`)")
    if capacity.isdigit() and len(x) > int(capacity):
        raise DeviceError(
            f"the firmware on {link.url} holds {capacity} samples in RAM, the set to load has "
            f"{len(x)} (over by {len(x) - int(capacity)}): export with `--db-capacity "
            f"{len(x)}` and flash that (`tinysift device flash --run RUN --board {board}`), "
            "or load fewer samples")


def _train(link: SerialLink, session: DeviceSession, setup: SessionSetup,
           limits: SessionLimits, monitor: PowerMonitor | None, progress) -> None:
    params = session.params
    train = limits.train(params, setup.samples() or session.results.samples or 1)
    if monitor is not None:
        # the host waits for `train` until its deadline: a capture that long holds it all
        monitor.start(train.deadline)
    link.command(params.command(), limits=train,
                 on_progress=lambda r: (session.absorb(r), progress(r) if progress else None))


def check_db_use(link: SerialLink, recs: list[Record], source: str, want: int | None) -> None:
    """The ``@db`` answer of ``db use <source>`` must name ``source`` and ``want`` samples
    (None: any count), else the device would train on another set than the session's.

    Raises
    ------
    WrongTrainingSet : the answer is missing or names another source or count
    """
    db = next((r for r in recs if r.type == "db"), None)
    if db is None or db.fields.get("source") != source or (
            want is not None and db.int("loaded", -1) != want):
        raise WrongTrainingSet(
            f"after `db use {source}` the device on {link.url} reports "
            f"{'nothing' if db is None else db.fields} instead of {want} samples from "
            f"{source}: it would train on another set; stopped")


def _clear_training(session: DeviceSession) -> None:
    """Forget a train's records (before it is sent again, or repeated by `results`)."""
    doc = session.results
    doc.epochs, doc.phases, doc.per_class = [], {}, None
    session.epoch_samples = []
    doc.test_acc_before = doc.test_acc_after = doc.test_int8_acc_after = None
    session.eval_totals = {}


def _spans(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3,7`` (a run of lost epochs stays one short item)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _missing(session: DeviceSession, samples: int | None) -> list[str]:
    """What a finished `train` should have reported and did not (lines dropped as corrupt):
    every `@epoch` window, `@eval` before and after, one `@class` per class (`@info
    classes`) for each, their totals adding up to the `@eval`'s, and the five `@phase`s."""
    doc, params = session.results, session.params
    out = []
    got = [e.epoch for e in doc.epochs]
    # with epochs= the count is known; with steps= it needs the set's size
    windows = (params.windows(samples) if samples or params.steps is None
               else max(got, default=0))
    lost = sorted(set(range(1, windows + 1)) - set(got))
    if lost:
        out.append(f"@epoch n={_spans(lost)}")
    text = str((doc.info or {}).get("classes", ""))
    classes = int(text) if text.isdigit() else None  # None: @info did not say
    for when in ("before", "after"):
        if when not in session.eval_totals:
            out.append(f"@eval when={when}")
        rows = (doc.per_class or {}).get(when, [])
        have = {row["class"] for row in rows}
        absent = sorted(set(range(classes)) - have) if classes is not None else []
        if absent:
            out.append(f"@class when={when} class={_spans(absent)}")
        elif when in session.eval_totals and (
                sum(row["total"] for row in rows) != session.eval_totals[when]
                or len(rows) != len(have)):
            # every class is there, yet they do not add up: a row lost or repeated
            out.append(f"@class when={when} (totals {sum(row['total'] for row in rows)}, "
                       f"@eval total {session.eval_totals[when]})")
    for name in ("features", "head_forward", "backward", "update", "evaluation"):
        if name not in doc.phases:
            out.append(f"@phase name={name}")
    return out


def _repeat_records(link: SerialLink, session: DeviceSession, limits: SessionLimits) -> None:
    """Ask `results` for the last train's records again and merge them into what arrived.

    The repeat is the same train, so a record it holds replaces the first copy; what it
    does not hold is kept: `results` repeats at most the last 64 `@epoch`s
    (TS_APP_RESULT_EPOCHS), and a line of the repeat may be corrupt too. Epochs are keyed
    by their number, `@class` rows by `when` and class, phases by name.
    """
    doc = session.results
    first_epochs = {e.epoch: (e, n) for e, n in zip(doc.epochs, session.epoch_samples,
                                                    strict=True)}
    first_phases = dict(doc.phases)
    first_rows = {when: {row["class"]: row for row in rows}
                  for when, rows in (doc.per_class or {}).items()}
    first_acc = (doc.test_acc_before, doc.test_acc_after, doc.test_int8_acc_after)
    first_totals, first_test = dict(session.eval_totals), doc.test_samples
    recs = link.command("results", limits=limits.results())
    _clear_training(session)
    for rec in recs:
        session.absorb(rec)
    epochs = {**first_epochs, **{e.epoch: (e, n) for e, n in
                                 zip(doc.epochs, session.epoch_samples, strict=True)}}
    doc.epochs = [epochs[k][0] for k in sorted(epochs)]
    session.epoch_samples = [epochs[k][1] for k in sorted(epochs)]
    if session.epoch_samples:
        doc.samples = session.epoch_samples[-1]
    doc.phases = {**first_phases, **doc.phases}
    repeated = doc.per_class or {}
    merged = {}
    for when in [*first_rows, *(w for w in repeated if w not in first_rows)]:
        by_class = {**first_rows.get(when, {}),
                    **{row["class"]: row for row in repeated.get(when, [])}}
        merged[when] = [by_class[k] for k in sorted(by_class)]
    doc.per_class = merged or None
    before, after, int8_after = first_acc
    if doc.test_acc_before is None:
        doc.test_acc_before = before
    if doc.test_acc_after is None:
        doc.test_acc_after = after
    if doc.test_int8_acc_after is None:
        doc.test_int8_acc_after = int8_after
    session.eval_totals = {**first_totals, **session.eval_totals}
    if doc.test_samples is None:
        doc.test_samples = first_test
    session.save()


def complete_records(link: SerialLink, session: DeviceSession, samples: int | None,
                     limits: SessionLimits) -> None:
    """The step after every finished `train` (:func:`converse` and the streamed session):
    records lost to corrupt lines are asked for again (`results` repeats the last train's
    records) and merged into what arrived; then the device must have trained on the set
    the session set up.

    Parameters
    ----------
    samples : the training set's size on the device (None when unknown)

    Raises
    ------
    IncompleteRecords : records still missing after `results`; the result is not complete
    WrongTrainingSet : an `@epoch` reports another set's size
    """
    doc, params = session.results, session.params
    missing = _missing(session, samples)
    if missing and not link.stats.dropped_lines:
        # nothing was lost on the link, so the device left them out: a firmware that
        # disagrees with this host on TSP/1; recorded, the records it did send stand
        doc.events.append({"records_not_sent": missing})
        # but without an @eval the result has no accuracy (the pipelines' tables failed on
        # it), without an @epoch its cycles and energy are under-counted: not a result
        vital = [m for m in missing if m.startswith(("@eval", "@epoch"))]
        if vital:
            raise IncompleteRecords(
                f"the device did not send {'; '.join(vital)} after its train, although no "
                f"line was lost on {link.url}: the result would lack its accuracy or "
                "under-count the training's cycles and energy, so it is not marked complete; "
                f"what arrived is in {session.folder / RESULTS}. The firmware and this host "
                "disagree on TSP/1 (docs/protocol.md): rebuild and flash the firmware from "
                "this checkout (`tinysift device flash`)")
    if missing and link.stats.dropped_lines:  # lost on the link, not left out by the device
        _repeat_records(link, session, limits)
        still = _missing(session, samples)
        doc.events.append({"records_repeated": missing, "still_missing": still})
        if still:
            raise IncompleteRecords(
                f"the train's records {'; '.join(still)} were lost on {link.url} "
                f"({link.stats.dropped_lines} corrupt lines dropped) and `results` did not "
                "repeat them (it repeats only the last 64 epochs): the result is incomplete "
                "(its cycles, energy or accuracy would be wrong), so it is not marked "
                f"complete; what arrived is in {session.folder / RESULTS}. Run the training "
                "again; if lines keep arriving corrupt, check the cable, the port and the "
                "baud rate (115200)")
    # a repeated or out-of-range @epoch was summed into the training's cycles and energy
    got = [e.epoch for e in doc.epochs]
    windows = params.windows(samples) if samples or params.steps is None else None
    extra = sorted({n for n in got if got.count(n) > 1
                    or (windows is not None and not 1 <= n <= windows)})
    if extra:
        raise UnexpectedRecords(
            f"the device sent @epoch n={_spans(extra)} more than once or beyond the "
            f"{windows if windows is not None else max(got)} epochs of this train: its cycles "
            "and energy would be counted twice or from another training, so the result is "
            f"not marked complete; what arrived is in {session.folder / RESULTS}. The "
            "firmware and this host disagree on TSP/1 (docs/protocol.md): rebuild and flash "
            "the firmware from this checkout (`tinysift device flash`)")
    if params.steps is None and samples is not None:
        wrong = sorted({n for n in session.epoch_samples if n != samples})
        if wrong:
            raise WrongTrainingSet(f"the device trained on {wrong[0]} samples per epoch, the "
                                   f"session set up {samples}: the result is not this "
                                   "session's; stopped")


def _apply_measurements(doc: DeviceResults, windows, ended_early: bool = False) -> None:
    """Windows in firmware order: features, each epoch, evaluation. A window the capture
    cut (it began inside it or ended inside it, ``complete`` False) still holds its place
    in the order, but its phase keeps the estimate: a part of a window is not the phase's
    energy. ``ended_early``: the capture ran out before the command ended, so the windows
    are its first ones; those it did not see keep their estimates (they made the count
    differ, and every phase kept its estimate)."""
    names = ["features", *(f"epoch {ep.epoch}" for ep in doc.epochs), "evaluation"]
    expected, seen = len(names), len(windows)
    if ended_early and seen < expected:
        doc.events.append({"monitor": f"the capture ended before the training did: "
                                      f"{', '.join(names[seen:])} not measured, energy stays "
                                      "estimated (a longer capture: --joulescope-max-s)"})
        windows = [*windows, *(Window(0.0, 0.0, 0.0, 0.0, complete=False)
                               for _ in names[seen:])]
    if len(windows) != expected:
        doc.events.append({"monitor": f"{len(windows)} marker windows, expected "
                                      f"{expected}; energy stays estimated"})
        return
    cut = [name for name, w in zip(names[:seen], windows, strict=False) if not w.complete]
    if cut:
        doc.events.append({"monitor": f"the capture began or ended inside the marker window "
                                      f"of {', '.join(cut)}: only part of it was measured, "
                                      "so its energy stays estimated"})
    def usable(w: Window) -> bool:
        return w.complete and 0 < w.energy_mj < math.inf

    # a reversed or bypassed current path integrates to zero or less: that was reported as
    # the phase's measured energy (negative millijoules, in a complete result)
    unpowered = [name for name, w in zip(names, windows, strict=True)
                 if w.complete and not usable(w)]
    if unpowered:
        doc.events.append({"monitor": f"the power monitor measured no positive energy in the "
                                      f"marker window of {', '.join(unpowered)}, so its "
                                      "energy stays estimated: check that the board's supply "
                                      "runs through the Joulescope (IN+ from the supply, OUT+ "
                                      "to the board)"})
    for name, w in (("features", windows[0]), ("evaluation", windows[-1])):
        if usable(w):
            phase = doc.phases.setdefault(name, PhaseResult())
            phase.energy_mj, phase.energy_kind = w.energy_mj, "measured"
    for ep, w in zip(doc.epochs, windows[1:-1], strict=True):
        if usable(w):
            ep.energy_mj, ep.energy_kind, ep.seconds = w.energy_mj, "measured", w.duration_s
