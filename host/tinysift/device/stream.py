"""``db stream`` (docs/protocol.md), host side: the device keeps at most ``cap`` of the samples
streamed to it, chosen by a replay policy (``reservoir`` or ``coverage``); then trains on
that buffer (and the compiled-in replay set with ``db use both``).

:func:`converse_stream` is one conversation: boot, ``info``, ``db stream`` with the data
lines, ``db kept`` (which samples the device kept), ``db use``, ``train``. A finished stream's
buffer survives a device reset, so a ``train`` interrupted by a reset is retried after
selecting the buffer again, without streaming anew.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from tinysift.device.limits import SessionLimits
from tinysift.device.link import DeviceReset, SerialLink
from tinysift.device.protocol import Record, data_line
from tinysift.device.session import (
    DeviceSession,
    check_db_use,
    complete_records,
    hello,
    send_lines,
    train_with_retry,
)
from tinysift.errors import DeviceError
from tinysift.runs import atomic_write_json

POLICIES = ("reservoir", "coverage")
STREAM_FILE = "stream.json"


@dataclass
class StreamParams:
    """``db stream <count> cap=<cap> policy=<policy> seed=<seed>``; ``cap`` 0: the firmware's
    whole buffer (``cap=`` left out: the firmware refuses ``cap=0``)."""

    count: int
    cap: int
    policy: str = "reservoir"
    seed: int = 1

    def command(self) -> str:
        cap = f" cap={self.cap}" if self.cap else ""
        return f"db stream {self.count}{cap} policy={self.policy} seed={self.seed}"

    def check(self, samples: int) -> None:
        """Refuse, before any build or port, parameters the firmware would refuse or wait on:
        ``count`` other than the ``samples`` sent (the device waited for lines that never
        came, or read the extra ones as commands) or none, a cap below 0, an unknown policy,
        a seed that is no 32-bit unsigned number (101 ``bad_value:seed``).

        Raises
        ------
        TinysiftError : naming the value and the fix
        """
        from tinysift.errors import TinysiftError

        if samples < 1:  # the firmware takes 1 <= count (101 bad_value after a build)
            raise TinysiftError("the set to stream is empty: `db stream` takes at least one "
                                "sample")
        if self.count != samples:
            raise TinysiftError(
                f"StreamParams.count is {self.count} but {samples} samples are streamed: the "
                f"device reads exactly count data lines; give count={samples}")
        if self.cap < 0:
            raise TinysiftError(f"StreamParams.cap is {self.cap}: give the samples the buffer "
                                "keeps (0: the firmware's whole buffer)")
        if self.policy not in POLICIES:
            raise TinysiftError(f"unknown stream policy {self.policy!r}; choose from "
                                f"{', '.join(POLICIES)}")
        if not 0 <= self.seed <= 0xFFFFFFFF:
            raise TinysiftError(f"StreamParams.seed is {self.seed}: the device takes a seed "
                                "from 0 to 4294967295")


@dataclass
class StreamReport:
    """What the device reported about its buffer: the numbers of the stream's ``@db`` record
    (``loaded`` = kept, ``seen``, ``cap``, ``codewords``, ``covered``, ``evicted``,
    ``cycles``), one ``@dbclass`` per class, and the ``@kept`` records of ``db kept`` (in
    RAM-set order: stream index, class, codeword or -1)."""

    policy: str = ""
    db: dict[str, int] = field(default_factory=dict)
    classes: list[dict] = field(default_factory=list)
    kept_index: list[int] = field(default_factory=list)
    kept_class: list[int] = field(default_factory=list)
    kept_codeword: list[int] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.db.get("loaded", 0)

    def absorb(self, rec: Record) -> None:
        if rec.type == "db" and "policy" in rec.fields:
            self.policy = rec.fields["policy"]
            self.db = {k: rec.int(k) for k in rec.fields if k not in ("policy", "source")}
        elif rec.type == "dbclass":
            self.classes.append({k: rec.int(k) for k in rec.fields})
        elif rec.type == "kept":
            self.kept_index.append(rec.int("idx"))
            self.kept_class.append(rec.int("class"))
            self.kept_codeword.append(rec.int("cw"))

    def to_dict(self) -> dict:
        return asdict(self)


def stream_set(link: SerialLink, session: DeviceSession, x: np.ndarray, y: np.ndarray,
               params: StreamParams, limits: SessionLimits) -> StreamReport:
    """``db stream`` of (int8 samples ``x``, labels ``y``; sent once more after a garbled
    data line), then ``db kept``.

    A record lost to a corrupt line is asked for again: the stream is sent once more when
    its ``@db`` or one of its ``@dbclass`` rows (one per class of the model) did not arrive
    (the device keeps the same buffer: the policy starts again from its seed), and ``db
    kept`` is asked once more when fewer ``@kept`` records came than the buffer holds.

    Raises
    ------
    DeviceError : the ``@db``, ``@dbclass`` or ``@kept`` records still missing
    """
    lines = [data_line(int(label), sample.astype(np.int8).tobytes())
             for sample, label in zip(x, y, strict=True)]

    def absorb(records: list[Record]) -> None:
        for rec in records:
            session.absorb(rec)
            report.absorb(rec)

    for tries in (1, 2):
        report = StreamReport()  # a stream sent again starts a new buffer
        absorb(send_lines(link, session, params.command(), lines,
                          limits.db_stream(len(lines), params.policy == "coverage")))
        # one @dbclass per class of the model: a row lost to line noise left the others
        # read as the wrong classes (the upkeep's kept_per_class is positional)
        rows = [c.get("class") for c in report.classes]
        if report.db and rows == list(range(limits.cost.classes)):
            break
        missing = sorted(set(range(limits.cost.classes)) - set(rows))
        what = (f"@dbclass rows of classes {', '.join(map(str, missing))}" if report.db
                else "@db answer")
        lost = (f"the device's {what} to `db stream` did not arrive ("
                f"{link.stats.dropped_lines} corrupt lines dropped on {link.url})")
        if tries == 2:
            raise DeviceError(f"{lost}, twice: what the buffer kept is unknown; stopped")
        session.results.events.append({"db_stream_sent_again": lost})
    for tries in (1, 2):
        report.kept_index, report.kept_class, report.kept_codeword = [], [], []
        absorb(link.command("db kept", limits=limits.db_kept(report.kept)))
        if len(report.kept_index) == report.kept:
            break
        lost = (f"`db kept` sent {len(report.kept_index)} @kept records for the "
                f"{report.kept} samples the buffer holds ({link.stats.dropped_lines} corrupt "
                f"lines dropped on {link.url})")
        if tries == 2:
            raise DeviceError(f"{lost}, twice: stream.json would not say which samples the "
                              "device kept; stopped")
        session.results.events.append({"db_kept_asked_again": lost})
    return report


def converse_stream(link: SerialLink, session: DeviceSession, x: np.ndarray, y: np.ndarray,
                    params: StreamParams, limits: SessionLimits, db_use: str = "both",
                    progress=None) -> StreamReport:
    """Boot, ``info``, stream, ``db use <db_use>``, ``train``; the stream's report is written
    to ``stream.json`` in the session's folder. A device reset during ``train`` is retried
    once when the buffer survived it (``@boot db=<kept>``). As in
    :func:`tinysift.device.session.converse`, the ``db use`` answer must name the buffer
    (and the compiled-in set with ``both``), records lost to corrupt lines are asked for
    again with ``results``, and every ``@epoch`` must report that set's size; only then is
    the status ``complete``.

    Raises
    ------
    DeviceError : any failure (the caller records it, as for
        :func:`tinysift.device.session.converse`)
    """
    doc = session.results
    report = _stream_and_train(link, session, x, y, params, limits, db_use, progress)
    doc.link = vars(link.stats)
    doc.status = "complete"
    doc.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    session.save()
    return report


def _stream_and_train(link: SerialLink, session: DeviceSession, x: np.ndarray, y: np.ndarray,
                      params: StreamParams, limits: SessionLimits, db_use: str,
                      progress) -> StreamReport:
    """:func:`converse_stream` up to a complete set of the train's records."""
    doc = session.results
    hello(link, session, limits)
    t0 = time.perf_counter()
    report = stream_set(link, session, x, y, params, limits)
    atomic_write_json(session.folder / STREAM_FILE,
                      {**report.to_dict(), "host_seconds": time.perf_counter() - t0})
    # the set `train` must use: the buffer, after the compiled-in set with `both` (its
    # size from `@info train`; None when @info did not say: then not checked)
    flash = str((doc.info or {}).get("train", "")) if db_use == "both" else "0"
    samples = report.kept + int(flash) if flash.isdigit() else None

    def select() -> None:  # the buffer survives a reset: select it again before a retry
        recs = link.command(f"db use {db_use}", limits=limits.simple())
        for rec in recs:
            session.absorb(rec)
        check_db_use(link, recs, db_use, samples)

    try:
        train_with_retry(link, session, limits.train(session.params, samples or report.kept),
                         progress,
                         before=select, may_retry=lambda boot: boot.int("db", 0) == report.kept)
    except DeviceReset as reset:
        raise DeviceError(f"{reset}; the streamed buffer did not survive it or a retry failed "
                          f"(@boot db={reset.boot.fields.get('db', '?')})") from reset
    complete_records(link, session, samples, limits)
    return report
