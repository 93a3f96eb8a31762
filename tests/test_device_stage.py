"""The device and stream stages' bookkeeping, without a device: a rerun that fails or is
interrupted keeps an earlier complete result, the stream stage records its failures and
holds the run folder's lock, a cached result is reused only for the same streamed set, the
board check counts the export's VQ codebook, and the memory plan's sizes and overshoots."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from tinysift.device.results import DeviceResults
from tinysift.errors import DeviceError, FitError, RunBusy, StageError, TinysiftError

BOARD = "qemu-mps2-an386"
NO_PORT = "/nonexistent/tinysift-test-port"  # fails at once (a socket:// URL retries 10 s)


def exported_run(folder, **kwargs):
    """A run folder with a finished export stage (tests/fake_device.py's, for this board)."""
    from fake_device import fake_run

    return fake_run(folder, board=BOARD, **kwargs)


def a_set(seed: int = 0, n: int = 6):
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, (n, 64)).astype(np.int8), np.arange(n) % 2


def complete_result(run, label: str, params, set_hash: str | None, session: str = "earlier"):
    """A finished result as a session of the current export and firmware leaves it."""
    from tinysift.boards import load_board
    from tinysift.runs import atomic_write_json
    from tinysift.stages.device import RESULTS, build_identity

    res = DeviceResults(board=BOARD, clock_hz=1, params=params.record(), energy_model={},
                        started="then", status="complete",
                        build=build_identity(run, load_board(BOARD)),
                        session=session, train_set_hash=set_hash, test_acc_after=0.9)
    atomic_write_json(run / "device" / label / RESULTS, res.to_dict())
    return res


def load(path) -> DeviceResults:
    return DeviceResults.load(path)


@contextlib.contextmanager
def _no_link(*_args):
    yield None


# ---- the device stage: a rerun never loses a finished result ----------------------------

def test_failed_rerun_keeps_the_earlier_complete_result(tmp_path):
    """A rerun whose port cannot be opened used to replace a complete results.json by a
    failed one: the failed attempt now goes to results.failed.json, the error says so, and
    the finished result stays."""
    from tinysift.stages.device import TrainParams, run_on_device

    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=2)
    complete_result(run, "x", params, None)
    folder = run / "device" / "x"
    with pytest.raises(DeviceError, match=r"cannot open .*results\.failed\.json.*earlier "
                                          r"complete results stay in .*results\.json"):
        run_on_device(run, BOARD, port=NO_PORT, params=params, label="x")
    kept = load(folder / "results.json")
    assert kept.complete and kept.session == "earlier" and kept.test_acc_after == 0.9
    failed = load(folder / "results.failed.json")
    assert failed.status == "failed" and "cannot open" in failed.events[-1]["failed"]
    assert not (folder / "results.previous.json").exists()


def test_failed_rerun_keeps_an_earlier_complete_result_this_version_cannot_load(tmp_path):
    """A finished results.json with a key this version does not know in one epoch (another
    version's, or a note added by hand) did not load, was taken for no result, and a rerun
    whose port cannot be opened replaced it with its failure."""
    from tinysift.stages.device import TrainParams, run_on_device

    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=2)
    complete_result(run, "x", params, None)
    path = run / "device" / "x" / "results.json"
    doc = json.loads(path.read_text())
    doc["epochs"] = [{"epoch": 1, "loss": 0.5, "train_acc": 0.9, "cycles": 10, "seconds": 1.0,
                      "energy_mj": 0.1, "note": "mine"}]
    path.write_text(json.dumps(doc))
    with pytest.raises(DeviceError, match=r"cannot open .*earlier complete results stay"):
        run_on_device(run, BOARD, port=NO_PORT, params=params, label="x")
    assert json.loads(path.read_text()) == doc
    assert load(path.parent / "results.failed.json").status == "failed"


def test_rerun_without_an_earlier_result_records_its_failure_in_place(tmp_path):
    """The failure is recorded with what the session knew before the board: the export's
    model (its content hash) and training set size (fake_run's 20 compiled-in samples)."""
    from tinysift.stages.device import TrainParams, run_on_device

    run = exported_run(tmp_path / "run")
    with pytest.raises(DeviceError, match="cannot open") as err:
        run_on_device(run, BOARD, port=NO_PORT, params=TrainParams(epochs=2))
    assert "results.failed" not in str(err.value)
    failed = load(run / "device" / "results.json")
    assert failed.status == "failed"
    assert failed.model_hash == "abc" and failed.samples == 20
    assert not (run / "device" / "results.failed.json").exists()


def test_interrupted_or_killed_rerun_keeps_it_and_a_complete_one_replaces_it(tmp_path,
                                                                           monkeypatch):
    """Ctrl-C in a rerun puts the earlier result back (its own: interrupted, beside it); a
    host killed outright leaves it in results.previous.json, which the next session keeps;
    a rerun that completes replaces it and drops the failed attempts' files."""
    import tinysift.stages.device as stage
    from tinysift.stages.device import TrainParams, run_on_device

    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=2)
    folder = run / "device" / "x"
    complete_result(run, "x", params, None)
    monkeypatch.setattr(stage, "_open_link", _no_link)

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "converse", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_on_device(run, BOARD, port=NO_PORT, params=params, label="x")
    assert load(folder / "results.json").session == "earlier"
    assert load(folder / "results.failed.json").status == "interrupted"

    # killed: the partial results of the killed session, the earlier ones set aside
    (folder / "results.json").replace(folder / "results.previous.json")
    partial = DeviceResults(board=BOARD, clock_hz=1, params={}, energy_model={}, started="",
                            session="killed")
    (folder / "results.json").write_text(json.dumps(partial.to_dict()))

    def fails(*_args):
        raise DeviceError("the board did not answer")

    monkeypatch.setattr(stage, "converse", fails)
    with pytest.raises(DeviceError, match="did not answer"):
        run_on_device(run, BOARD, port=NO_PORT, params=params, label="x")
    assert load(folder / "results.json").session == "earlier"
    assert not (folder / "results.previous.json").exists()

    def completes(_link, session, *_args):
        session.results.status = "complete"

    monkeypatch.setattr(stage, "converse", completes)
    assert (folder / "results.failed.json").exists()  # the failed attempt, beside it
    res = run_on_device(run, BOARD, port=NO_PORT, params=params, label="x")
    assert load(folder / "results.json").session == res.session != "earlier"
    assert not (folder / "results.previous.json").exists()
    # a complete session drops the older failed attempt's file: it no longer describes
    # anything current, and log.jsonl keeps its records
    assert not (folder / "results.failed.json").exists()


def test_a_rerun_that_completes_keeps_its_result_through_a_late_ctrl_c(tmp_path,
                                                                       monkeypatch) -> None:
    """Ctrl-C after every record arrived (the session already complete, e.g. in the last
    flush): the finished training is kept as the result (complete, replacing the earlier
    one), not recorded as interrupted and set aside. (converse is replaced: a Ctrl-C at that
    instant cannot be timed with a real link.)"""
    import tinysift.stages.device as stage
    from tinysift.stages.device import TrainParams, run_on_device

    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=2)
    complete_result(run, "x", params, None)
    monkeypatch.setattr(stage, "_open_link", _no_link)

    def completes_then_interrupted(_link, session, *_args):
        session.results.status = "complete"
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "converse", completes_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_on_device(run, BOARD, port=NO_PORT, params=params, label="x")
    folder = run / "device" / "x"
    kept = load(folder / "results.json")
    assert kept.complete and kept.session != "earlier"
    assert not (folder / "results.failed.json").exists()
    assert not (folder / "results.previous.json").exists()


def test_a_bug_in_a_rerun_keeps_its_own_message_and_the_earlier_result(tmp_path,
                                                                        monkeypatch) -> None:
    """An error that is no TinysiftError (a bug) fails the rerun like any failure (status
    failed, its message in the events, the earlier complete result put back) but is raised
    as it was: only a TinysiftError's message is told where the attempt's results went.
    (converse is replaced to raise it: no real part raises a bug on demand.)"""
    import tinysift.stages.device as stage
    from tinysift.stages.device import TrainParams, run_on_device

    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=2)
    complete_result(run, "x", params, None)
    monkeypatch.setattr(stage, "_open_link", _no_link)

    def bug(*_args):
        raise ValueError("a bug")

    monkeypatch.setattr(stage, "converse", bug)
    with pytest.raises(ValueError) as err:
        run_on_device(run, BOARD, port=NO_PORT, params=params, label="x")
    assert err.value.args == ("a bug",)
    folder = run / "device" / "x"
    assert load(folder / "results.json").session == "earlier"
    failed = load(folder / "results.failed.json")
    assert failed.status == "failed" and failed.events[-1] == {"failed": "a bug"}


def test_one_session_per_run(tmp_path, monkeypatch):
    """The stage made its DeviceSession twice: the first one's log.jsonl was never closed."""
    import tinysift.stages.device as stage
    from tinysift.stages.device import TrainParams, run_on_device

    made = []
    real = stage.DeviceSession

    def counted(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(stage, "DeviceSession", counted)
    run = exported_run(tmp_path / "run")
    with pytest.raises(DeviceError):
        run_on_device(run, BOARD, port=NO_PORT, params=TrainParams(epochs=2))
    assert len(made) == 1 and made[0].log.closed


# ---- the streamed training set is part of the cache key ---------------------------------

def test_cached_result_only_for_the_same_streamed_set(tmp_path):
    """pipeline/run.py labels device runs by method and count: another selection of the
    same size reused the first one's result. The set (samples, labels, db mode) is hashed."""
    from tinysift.stages.device import TrainParams, cached_results, run_on_device, session_set

    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=2)
    one, two = a_set(0), a_set(1)
    complete_result(run, "x", params, session_set(run, one, False, "ram")[1])
    assert cached_results(run, "x", params, BOARD, train_set=one) is not None
    assert cached_results(run, "x", params, BOARD,
                          train_set=(one[0].astype(np.int16), one[1]))
    assert cached_results(run, "x", params, BOARD, train_set=two) is None
    assert cached_results(run, "x", params, BOARD, train_set=(one[0], 1 - one[1])) is None
    assert cached_results(run, "x", params, BOARD, train_set=one, db_use="both") is None
    assert cached_results(run, "x", params, BOARD) is None  # the compiled-in set
    complete_result(run, "x", params, None)  # written before the hash was recorded
    assert cached_results(run, "x", params, BOARD, train_set=one) is None
    complete_result(run, "f", params, session_set(run, None, False, "ram")[1])
    assert cached_results(run, "f", params, BOARD) is not None
    assert cached_results(run, "f", params, BOARD, use_db=True) is None  # the set, streamed
    # the session records it (here: in the failed attempt's results)
    with pytest.raises(DeviceError):
        run_on_device(run, BOARD, port=NO_PORT, params=params, train_set=two, label="y")
    assert load(run / "device" / "y" / "results.json").train_set_hash == \
        session_set(run, two, False, "ram")[1]


@pytest.mark.parametrize("text", ['{"bad', "[]", "42", '{"phases": 3}', '{"nope": 1}'])
def test_a_torn_cached_result_runs_again(tmp_path, text):
    """A torn results.json (a crash, a full disk) ended every rerun of a pipeline in an
    unexpected JSONDecodeError until it was deleted by hand: it is no cache, the session
    runs again."""
    from tinysift.stages.device import TrainParams, cached_results, session_set

    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=2)
    complete_result(run, "f", params, session_set(run, None, False, "ram")[1])
    assert cached_results(run, "f", params, BOARD) is not None
    (run / "device" / "f" / "results.json").write_text(text)
    assert cached_results(run, "f", params, BOARD) is None


def test_cached_result_only_for_the_same_board(tmp_path):
    """One export runs on several boards (pipelines name the board, the device folder's
    label does not): a result of another board has its cycles and energy, never reused."""
    from tinysift.stages.device import TrainParams, cached_results, session_set

    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=2)
    complete_result(run, "full-300", params, session_set(run, None, False, "ram")[1])
    assert cached_results(run, "full-300", params, BOARD) is not None
    assert cached_results(run, "full-300", params, "qemu-mps2-an500") is None


def test_a_result_stands_in_only_for_the_same_board_params_build_and_set():
    """DeviceResults.reusable_for: finished, and the same board, parameters, firmware build
    and training set; a result without the set's hash (older than the field) never."""
    def result(**changes):
        fields = dict(board="b", clock_hz=1, params={"epochs": 2}, energy_model={},
                      started="", status="complete", build="fw1", train_set_hash="set1")
        return DeviceResults(**{**fields, **changes})

    same = ("b", {"epochs": 2}, "fw1", "set1")
    assert result().reusable_for(*same)
    for other in (("c", {"epochs": 2}, "fw1", "set1"), ("b", {"epochs": 3}, "fw1", "set1"),
                  ("b", {"epochs": 2}, "fw2", "set1"), ("b", {"epochs": 2}, "fw1", "set2")):
        assert not result().reusable_for(*other), other
    assert not result(status="partial").reusable_for(*same)
    assert not result(train_set_hash=None).reusable_for("b", {"epochs": 2}, "fw1", None)


def test_only_a_finished_result_is_complete_or_stands_in():
    """A result that stopped after a reset, was interrupted, failed or is still running
    (partial) is not complete and never stands in for a new run: only `complete` is."""
    from tinysift.device.results import STATUSES

    for status in STATUSES:
        res = DeviceResults(board="b", clock_hz=1, params={}, energy_model={}, started="",
                            status=status, build="fw1", train_set_hash="set1")
        assert res.complete == (status == "complete"), status
        assert res.reusable_for("b", {}, "fw1", "set1") == (status == "complete"), status


def test_the_training_set_hash_is_of_what_the_link_sends():
    """training_set_hash: 32 hex digits, of the samples as the link sends them (int8 bytes:
    a uint8 copy of the same bytes is the same set, and so are 8x8x1 images of the 64 bytes
    their flat copies hold) and the labels as integers (their dtype does not matter); the
    samples' size is part of it, so 16-byte samples never pass for 4-byte ones whose labels
    happen to hold the missing bytes."""
    from tinysift.device.results import training_set_hash

    x, y = a_set(0)
    mode = "db load, db use ram"
    base = training_set_hash((x, y), mode)
    assert re.fullmatch(r"[0-9a-f]{32}", base)
    assert training_set_hash((x.view(np.uint8), y), mode) == base  # 200 is sent as -56
    assert training_set_hash((x.reshape(6, 8, 8, 1), y), mode) == base  # the same bytes sent
    for dtype in (np.int32, np.uint8, np.int16):
        assert training_set_hash((x, y.astype(dtype)), mode) == base, dtype
    # one 16-byte sample labelled 0 against two 4-byte samples labelled 1 and 0: the same
    # bytes end to end (int8 samples, then int64 labels), another training set
    head = np.arange(1, 9, dtype=np.int8)
    one = (np.concatenate([head, [1, 0, 0, 0, 0, 0, 0, 0]]).astype(np.int8)[None, :],
           np.array([0]))
    two = (head.reshape(2, 4), np.array([1, 0]))
    assert one[0].tobytes() + one[1].astype(np.int64).tobytes() == \
        two[0].tobytes() + two[1].astype(np.int64).tobytes()
    assert training_set_hash(one, mode) != training_set_hash(two, mode)


def test_a_result_with_a_field_of_a_newer_writer_still_loads(tmp_path):
    """A results.json written by a newer tinysift (a field this version does not know) is
    read without that field, not refused as torn (which would run the session again)."""
    res = DeviceResults(board="b", clock_hz=1, params={"epochs": 2}, energy_model={},
                        started="then", status="complete", test_acc_after=0.75)
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**res.to_dict(), "a_later_field": {"x": 1}}))
    assert DeviceResults.load(path) == res
    assert DeviceResults.load_if_sound(path) == res


def test_a_steps_run_records_no_epoch_count_and_resumes_whatever_it_was(tmp_path):
    """With --steps the firmware never sees an epoch count: results.json recorded the
    CLI's default (epochs 5) beside the steps, and an identical training with another unused
    epoch count was trained again instead of reused."""
    from tinysift.stages.device import TrainParams, cached_results, run_on_device, session_set

    run = exported_run(tmp_path / "run")
    steps = TrainParams(epochs=5, steps=40)
    with pytest.raises(DeviceError):
        run_on_device(run, BOARD, port=NO_PORT, params=steps, label="s")
    recorded = load(run / "device" / "s" / "results.json").params
    assert recorded["steps"] == 40 and recorded["epochs"] is None
    complete_result(run, "s", steps, session_set(run, None, False, "ram")[1])
    assert cached_results(run, "s", TrainParams(epochs=3, steps=40), BOARD) is not None
    assert cached_results(run, "s", TrainParams(epochs=5, steps=41), BOARD) is None
    assert TrainParams(epochs=3).record()["epochs"] == 3  # an epochs run keeps its count


def test_cached_stream_result_only_for_the_same_board(tmp_path):
    from tinysift.device.stream import StreamParams
    from tinysift.stages.device import TrainParams
    from tinysift.stages.stream import run_stream_on_device

    run = exported_run(tmp_path / "run")
    params, stream = TrainParams(epochs=1), StreamParams(6, 3)
    _stream_files(run, "s", params, stream, a_set(0))
    res, _ = run_stream_on_device(run, BOARD, params, a_set(0), stream, "s", port=NO_PORT)
    assert res.session == "earlier"  # cached: the port is never opened
    with pytest.raises(DeviceError, match="cannot open"):  # another board: it runs
        run_stream_on_device(run, "qemu-mps2-an500", params, a_set(0), stream, "s",
                             port=NO_PORT)
    # other stream parameters (the device keeps another buffer) or the streamed set used
    # another way (`db use ram`: the compiled-in set left out) are another session: it runs
    for other_stream, db_use in ((StreamParams(6, 2), "both"), (stream, "ram")):
        with pytest.raises(DeviceError, match="cannot open"):
            run_stream_on_device(run, BOARD, params, a_set(0), other_stream, "s",
                                 db_use=db_use, port=NO_PORT)


# ---- the stream stage ---------------------------------------------------------------------

def _stream_files(run, label, params, stream, samples, db_use="both"):
    """A finished streamed result: results.json, stream_params.json, stream.json."""
    from tinysift.device.stream import StreamReport
    from tinysift.runs import atomic_write_json
    from tinysift.stages.stream import stream_set_hash

    folder = run / "device" / label
    complete_result(run, label, params, stream_set_hash(samples, db_use))
    atomic_write_json(folder / "stream_params.json", vars(stream))
    atomic_write_json(folder / "stream.json", StreamReport(policy="reservoir",
                                                           db={"loaded": 3}).to_dict())
    return folder


def test_stream_params_command_and_check_follow_the_protocol():
    """`db stream <N> [cap=<B>] [policy=..] [seed=..]` (docs/protocol.md): cap 0 (the
    firmware's whole buffer) leaves `cap=` out, since the firmware refuses `cap=0`; the
    policy and seed are always named; check() takes cap 0."""
    from tinysift.device.stream import StreamParams

    assert StreamParams(240, 0).command() == "db stream 240 policy=reservoir seed=1"
    assert StreamParams(6, 3, "coverage", 7).command() == \
        "db stream 6 cap=3 policy=coverage seed=7"
    StreamParams(6, 0).check(6)  # no error: the whole buffer


def test_stream_report_reads_the_stream_records_by_name():
    """StreamReport.absorb (docs/protocol.md's `@db` (stream), `@dbclass`, `@kept`): the
    stream's numbers without policy and source, one row per class, and each kept sample's
    stream index, class and codeword in RAM-set order; a later `@db` without a policy (the
    `db use` answer) leaves the stream's numbers alone."""
    from tinysift.device.protocol import parse_record
    from tinysift.device.stream import StreamReport

    rep = StreamReport()
    for payload in ("@db loaded=2 source=ram policy=coverage seen=6 cap=3 codewords=4 "
                    "covered=2 evicted=1 cycles=900",
                    "@dbclass class=0 kept=1 seen=4 codewords=3 covered=1",
                    "@dbclass class=1 kept=1 seen=2 codewords=1 covered=1",
                    "@kept pos=0 idx=4 class=1 cw=5", "@kept pos=1 idx=0 class=0 cw=1",
                    "@db loaded=22 source=both", "@ready cmd=db status=0"):
        rep.absorb(parse_record(payload))
    assert rep.policy == "coverage" and rep.kept == 2
    assert rep.db == {"loaded": 2, "seen": 6, "cap": 3, "codewords": 4, "covered": 2,
                      "evicted": 1, "cycles": 900}
    assert rep.classes == [{"class": 0, "kept": 1, "seen": 4, "codewords": 3, "covered": 1},
                           {"class": 1, "kept": 1, "seen": 2, "codewords": 1, "covered": 1}]
    assert (rep.kept_index, rep.kept_class, rep.kept_codeword) == ([4, 0], [1, 0], [5, 1])


STREAMED, STREAM_CAP = 16, 12  # 12 `@kept` records: more than a `db kept` of 0 may send


def _converse_stream(folder, dev, db_use: str = "both", x: np.ndarray | None = None,
                     y: np.ndarray | None = None) -> tuple:
    """converse_stream of a_set(3, 16) (or x, y) with the fake device `dev`
    (tests/fake_device.py: it keeps the first `cap` samples; its compiled-in set has 20,
    the export's test set 24); returns (StreamReport or None, the DeviceError or None,
    results.json as saved before the session closed or None, the session's folder)."""
    from fake_device import fake_run
    from tinysift.boards import load_board
    from tinysift.device.limits import ModelCost, SessionLimits
    from tinysift.device.link import SerialLink
    from tinysift.device.session import DeviceSession, TrainParams
    from tinysift.device.stream import StreamParams, converse_stream

    run = fake_run(folder / "run", samples=20, classes=2, test=24)
    export = json.loads((run / "export" / "export.json").read_text())
    brd = load_board(BOARD)
    x0, y0 = a_set(3, STREAMED)
    x, y = (x0 if x is None else x), (y0 if y is None else y)
    session = DeviceSession(brd, run / "device" / "s", TrainParams(epochs=2))
    report = error = saved = None
    try:
        with SerialLink(dev.url, on_record=session.on_record, on_idle=session.flush) as link:
            session.stats = link.stats
            report = converse_stream(link, session, x, y, StreamParams(STREAMED, STREAM_CAP),
                                     SessionLimits(brd, ModelCost.from_export(export), 2.0),
                                     db_use=db_use)
        saved = DeviceResults.load(session.folder / "results.json")  # before close()
    except DeviceError as exc:
        error = exc
    finally:
        session.close()
        dev.close()
    return report, error, saved, session.folder


def test_a_streamed_session_records_its_buffer_and_trains_on_it(tmp_path):
    """converse_stream with `db use both`: the samples go out as the link's int8 data lines
    (held as int16 here), the device's `@db`, `@dbclass` and all 12 `@kept` records are read
    back into stream.json (with the host's seconds), the train is on the compiled-in 20
    plus the 12 kept, and results.json is saved complete, finished, with the link's
    statistics."""
    from fake_device import FakeDevice

    x, y = a_set(3, STREAMED)
    dev = FakeDevice(flash=20, test=24)  # `@info train=20 test=24`: the train's is 20
    report, error, saved, folder = _converse_stream(tmp_path, dev, x=x.astype(np.int16))
    assert error is None, error
    lines = [line for line in dev.received if line[:1].isdigit()]
    assert lines == [f"{label}:{sample.tobytes().hex().upper()}"
                     for sample, label in zip(x, y, strict=True)]
    doc = json.loads((folder / "stream.json").read_text())
    assert doc["policy"] == "reservoir" and doc["host_seconds"] >= 0
    assert doc["db"]["loaded"] == STREAM_CAP and doc["db"]["seen"] == STREAMED
    assert doc["kept_index"] == list(range(STREAM_CAP))
    assert doc["kept_class"] == y[:STREAM_CAP].tolist() and report.kept == STREAM_CAP
    assert [row["kept"] for row in doc["classes"]] == [6, 6]
    assert dev.trained_on == [20 + STREAM_CAP]
    assert saved.status == "complete" and saved.samples == 20 + STREAM_CAP
    assert saved.finished and saved.link["records"] > 0


def test_a_streamed_session_checks_the_db_use_ram_answer(tmp_path):
    """With `db use ram` the device must answer with the buffer alone (12 samples): a
    device whose RAM set lost half its samples is stopped before training on them."""
    from fake_device import FakeDevice, Fault
    from tinysift.device.session import WrongTrainingSet

    dev = FakeDevice([Fault("cmd:db", "lose_samples", times=3)], test=24)
    _, error, _, _ = _converse_stream(tmp_path, dev, db_use="ram")
    assert isinstance(error, WrongTrainingSet) and "after `db use ram`" in str(error), error
    assert dev.trained_on == []


def test_a_streamed_session_with_db_use_ram_trains_on_the_buffer_alone(tmp_path):
    """converse_stream with `db use ram`: the device is told `db use ram` (not the default
    `both`) and trains on the 12 kept samples alone, without the compiled-in 20, and the
    complete results.json says so."""
    from fake_device import FakeDevice

    dev = FakeDevice(flash=20, test=24)
    _, error, saved, _ = _converse_stream(tmp_path, dev, db_use="ram")
    assert error is None, error
    assert "db use ram" in dev.received and dev.trained_on == [STREAM_CAP]
    assert saved.status == "complete" and saved.samples == STREAM_CAP


def test_a_streamed_train_reset_once_is_retried_on_the_surviving_buffer(tmp_path):
    """A reset mid-train keeps a finished stream's buffer (`@boot db=12`): the buffer is
    selected again and the train retried, once; a second reset ends the session as
    device-reset, naming the buffer the boot reported."""
    from fake_device import FakeDevice, Fault

    dev = FakeDevice([Fault("train:epoch:1", "reset")], test=24)
    _, error, saved, _ = _converse_stream(tmp_path / "once", dev)
    assert error is None, error
    assert dev.trained_on == [32, 32] and saved.status == "complete"
    assert sum(1 for e in saved.events if "device_reset" in e) == 1

    dev = FakeDevice([Fault("train:epoch:1", "reset"), Fault("train:epoch:1", "reset", 2)],
                     test=24)
    _, error, _, folder = _converse_stream(tmp_path / "twice", dev)
    assert re.search(r"the streamed buffer did not survive it or a retry failed "
                     r"\(@boot db=12\)", str(error)), error
    assert DeviceResults.load(folder / "results.json").status == "device-reset"


def test_a_streamed_train_reset_that_lost_the_buffer_is_not_retried(tmp_path):
    """A reset mid-train that the buffer did not survive (`@boot db=0`: the firmware's check
    of its no-init RAM failed) is not retried, since `db use` would find no samples to
    train on: the session ends device-reset after one train, naming the boot's count."""
    from fake_device import FakeDevice, Fault

    dev = FakeDevice([Fault("train:epoch:1", "reset_lost")], test=24)
    _, error, _, folder = _converse_stream(tmp_path, dev)
    assert re.search(r"the streamed buffer did not survive it or a retry failed "
                     r"\(@boot db=0\)", str(error)), error
    assert dev.trained_on == [20 + STREAM_CAP]
    assert DeviceResults.load(folder / "results.json").status == "device-reset"


# the stream's @db (the last data line's answer), or the first @kept record (the second `db`
# command is `db kept`), arrives with a wrong CRC
LOST_STREAM_RECORDS = {"db": ("db_line:16", "db_stream_sent_again"),
                       "dbclass": ("stream:db", "db_stream_sent_again"),
                       "kept": ("cmd:db", "db_kept_asked_again")}


@pytest.mark.parametrize("lost", list(LOST_STREAM_RECORDS))
def test_a_stream_record_lost_on_the_link_is_asked_for_again(tmp_path, lost: str):
    """A corrupt line on the link lost the stream's `@db` (its buffer's numbers: the session
    then failed on `db kept`, advising a board reset), a `@dbclass` row (stream.json had one
    class fewer, the upkeep's kept_per_class the next class's count in its place) or a `@kept`
    record (stream.json named 11 of the 12 kept samples, and the result was complete): the
    stream is sent again (the device keeps the same buffer) or `db kept` asked again, once,
    and said in the events; lost twice, the session stops naming the records."""
    from fake_device import FakeDevice, Fault

    point, event = LOST_STREAM_RECORDS[lost]
    times = 2 if lost == "kept" else 1
    dev = FakeDevice([Fault(point, "corrupt", times)], test=24)
    report, error, saved, _ = _converse_stream(tmp_path / "once", dev)
    assert error is None, error
    assert report.kept == STREAM_CAP and report.kept_index == list(range(STREAM_CAP))
    assert [row["kept"] for row in report.classes] == [6, 6]
    assert saved.status == "complete" and [e for e in saved.events if event in e], saved.events

    dev = FakeDevice([Fault(point, "corrupt", times), Fault(point, "corrupt", times + 1)],
                     test=24)
    _, error, _, _ = _converse_stream(tmp_path / "twice", dev)
    said = {"db": r"@db answer to `db stream` did not arrive",
            "dbclass": r"@dbclass rows of classes 0 to `db stream` did not arrive",
            "kept": r"`db kept` sent 11 @kept records for the 12 samples the buffer holds"}[lost]
    said += r" \(2 corrupt lines dropped on socket://.*\), twice"
    assert re.search(said, str(error)), error
    assert dev.trained_on == []


def test_stream_stage_records_a_failure_and_keeps_the_earlier_result(tmp_path):
    """A DeviceError used to leave status `partial` (still running, or killed) and no event;
    and a rerun for a changed set (not cached) must not replace the finished result. Its
    files go to *.failed.*, and a companion it never wrote (stream.json: the port never
    opened) leaves no older attempt's stream.failed.json beside them."""
    from tinysift.device.stream import StreamParams
    from tinysift.stages.device import TrainParams
    from tinysift.stages.stream import run_stream_on_device

    run = exported_run(tmp_path / "run")
    params, stream = TrainParams(epochs=1), StreamParams(6, 3)
    with pytest.raises(DeviceError, match="cannot open"):
        run_stream_on_device(run, BOARD, params, a_set(0), stream, "fresh", port=NO_PORT)
    doc = load(run / "device" / "fresh" / "results.json")
    assert doc.status == "failed" and "cannot open" in doc.events[-1]["failed"]

    folder = _stream_files(run, "s", params, stream, a_set(0))
    res, rep = run_stream_on_device(run, BOARD, params, a_set(0), stream, "s", port=NO_PORT)
    assert res.session == "earlier" and rep.kept == 3  # cached: the port is never opened
    (folder / "stream.failed.json").write_text('{"policy": "an older attempt"}')
    with pytest.raises(DeviceError, match=r"results\.failed\.json"):  # another set
        run_stream_on_device(run, BOARD, params, a_set(1), stream, "s", port=NO_PORT)
    assert load(folder / "results.json").session == "earlier"
    assert json.loads((folder / "stream_params.json").read_text()) == vars(stream)
    assert load(folder / "results.failed.json").status == "failed"
    assert json.loads((folder / "stream_params.failed.json").read_text()) == vars(stream)
    assert not (folder / "stream.failed.json").exists()
    again, _ = run_stream_on_device(run, BOARD, params, a_set(0), stream, "s", port=NO_PORT)
    assert again.session == "earlier"  # still cached


def test_a_crash_while_setting_the_earlier_result_aside_leaves_it_in_place(tmp_path,
                                                                            monkeypatch):
    """The earlier result's companions are moved aside first and results.json last, so a
    host killed in between leaves the finished results.json where it was (the one file the
    pipelines read); the next session keeps it. (The kill is an OSError on the last of the
    three renames: a kill cannot be timed between two renames.)"""
    import os

    from tinysift.device.stream import StreamParams
    from tinysift.stages.device import TrainParams
    from tinysift.stages.stream import run_stream_on_device

    run = exported_run(tmp_path / "run")
    params, stream = TrainParams(epochs=1), StreamParams(6, 3)
    folder = _stream_files(run, "s", params, stream, a_set(0))
    real, aside = os.replace, []

    def killed_at_the_third(src, dst):
        if ".previous." in str(dst):
            aside.append(os.path.basename(src))
            if len(aside) == 3:
                raise OSError("killed")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", killed_at_the_third)
    with pytest.raises(OSError, match="killed"):
        run_stream_on_device(run, BOARD, params, a_set(1), stream, "s", port=NO_PORT)
    monkeypatch.setattr(os, "replace", real)
    assert aside[-1] == "results.json"
    assert load(folder / "results.json").session == "earlier"
    with pytest.raises(DeviceError, match=r"results\.failed\.json"):  # the next session
        run_stream_on_device(run, BOARD, params, a_set(1), stream, "s", port=NO_PORT)
    assert load(folder / "results.json").session == "earlier"


def test_stream_stage_interrupted_and_writes_its_parameters_atomically(tmp_path,
                                                                       monkeypatch):
    import tinysift.stages.stream as stage
    from tinysift.device.stream import StreamParams, StreamReport
    from tinysift.stages.device import TrainParams

    run = exported_run(tmp_path / "run")
    params, stream = TrainParams(epochs=1), StreamParams(6, 3)
    monkeypatch.setattr(stage, "_open_link", _no_link)

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "converse_stream", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stage.run_stream_on_device(run, BOARD, params, a_set(0), stream, "s", port=NO_PORT)
    assert load(run / "device" / "s" / "results.json").status == "interrupted"

    written = []
    real = stage.atomic_write_json
    monkeypatch.setattr(stage, "atomic_write_json",
                        lambda path, obj: (written.append(path.name), real(path, obj)))

    def completes(_link, session, *_args):
        session.results.status = "complete"
        return StreamReport(policy="reservoir", db={"loaded": 3})

    monkeypatch.setattr(stage, "converse_stream", completes)
    res, _ = stage.run_stream_on_device(run, BOARD, params, a_set(0), stream, "s",
                                        port=NO_PORT)
    assert written == ["stream_params.json"] and res.samples == 3 + 20
    # recorded with the set it trained on, so that it is reused for that set
    assert load(run / "device" / "s" / "results.json").train_set_hash == \
        stage.stream_set_hash(a_set(0), "both")
    # `db use ram` trains on the kept samples alone: the compiled-in 20 are not counted
    res, _ = stage.run_stream_on_device(run, BOARD, params, a_set(0), stream, "ram",
                                        db_use="ram", port=NO_PORT)
    assert res.samples == 3


def test_the_stream_stage_records_its_session_and_reuses_it(tmp_path):
    """run_stream_on_device with a device on a port (tests/fake_device.py) and `db use ram`:
    the device trains on the 3 kept samples alone, and results.json records what a rerun
    and the tables need: the export's model hash and memory plan, the firmware build and
    the streamed set. A second call with the same set, parameters and board is that result
    and the stream.json the session wrote (host_seconds and all), without a port."""
    from fake_device import FakeDevice
    from tinysift.boards import load_board
    from tinysift.device.stream import StreamParams
    from tinysift.stages.device import TrainParams, build_identity
    from tinysift.stages.stream import run_stream_on_device, stream_set_hash

    run = exported_run(tmp_path / "run")
    params, stream = TrainParams(epochs=1), StreamParams(6, 3)
    dev = FakeDevice(test=24)
    try:
        res, report = run_stream_on_device(run, BOARD, params, a_set(0), stream, "s",
                                           db_use="ram", port=dev.url, timeout=2.0)
    finally:
        dev.close()
    assert dev.trained_on == [3] and report.kept == 3
    saved = load(run / "device" / "s" / "results.json")
    assert saved.status == "complete" and saved.samples == res.samples == 3
    assert saved.model_hash == "abc"  # fake_run's export
    assert saved.plan == {"ram_bytes": 1000, "flash_bytes": 2000, "board": BOARD}
    assert saved.build == build_identity(run, load_board(BOARD))
    assert saved.train_set_hash == stream_set_hash(a_set(0), "ram")
    assert "host_seconds" in json.loads((run / "device" / "s" / "stream.json").read_text())
    again, kept = run_stream_on_device(run, BOARD, params, a_set(0), stream, "s",
                                       db_use="ram", port=NO_PORT)
    assert again.session == saved.session and kept == report


@pytest.mark.parametrize(("name", "text"), [("stream_params.json", '{"count'),
                                            ("stream.json", '{"a_later_field": 1}'),
                                            ("stream.json", "42")])
def test_a_torn_stream_file_of_a_cached_result_runs_again(tmp_path, name: str, text: str):
    """A finished streamed result whose stream_params.json or stream.json cannot be read
    back (torn by a crash or a full disk, or not a stream report) is no cache: the session
    runs again (here to the missing port) instead of ending every rerun in a traceback."""
    from tinysift.device.stream import StreamParams
    from tinysift.stages.device import TrainParams
    from tinysift.stages.stream import run_stream_on_device

    run = exported_run(tmp_path / "run")
    params, stream = TrainParams(epochs=1), StreamParams(6, 3)
    folder = _stream_files(run, "s", params, stream, a_set(0))
    (folder / name).write_text(text)
    with pytest.raises(DeviceError, match="cannot open"):
        run_stream_on_device(run, BOARD, params, a_set(0), stream, "s", port=NO_PORT)


def test_a_streamed_result_never_stands_in_for_a_db_load_of_the_same_samples(tmp_path):
    """`db stream` keeps `cap` of the samples it is sent (3 of 6 here), `db load` all of
    them: a streamed result in a folder is not reused for a `db load` of the same samples,
    labels and `db use` mode (its training set hash names the stream)."""
    from tinysift.device.stream import StreamParams
    from tinysift.stages.device import TrainParams, cached_results

    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=1)
    _stream_files(run, "s", params, StreamParams(6, 3), a_set(0), db_use="ram")
    assert cached_results(run, "s", params, BOARD, train_set=a_set(0), db_use="ram") is None


def test_stream_stage_holds_the_run_lock(tmp_path):
    """One writer per run folder: a stream session in a folder another process writes is
    refused (the device stage always was)."""
    from tinysift.device.stream import StreamParams
    from tinysift.stages.device import TrainParams
    from tinysift.stages.stream import run_stream_on_device

    run = exported_run(tmp_path / "run")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom tinysift.runs import run_lock\n"
         "with run_lock(sys.argv[1], 'holding'):\n    print('held', flush=True)\n"
         "    time.sleep(120)\n", str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        time.sleep(0.05)
        with pytest.raises(RunBusy, match=f"pid {proc.pid}"):
            run_stream_on_device(run, BOARD, TrainParams(epochs=1), a_set(0),
                                 StreamParams(6, 3), "s", port=NO_PORT)
    finally:
        proc.kill()
        proc.wait()
    assert not (run / "device" / "s").exists()


# ---- the board check and the memory plan --------------------------------------------------

def _footprint():
    from tinysift.export.memory import ModelFootprint

    return ModelFootprint(weight_bytes=20_000, num_layers=10, arena_bytes=12_000,
                          sample_bytes=784, feature_dim=64, num_classes=10,
                          tflite_bytes=30_000)


def test_board_check_counts_the_codebook_and_says_by_how_much(tmp_path, monkeypatch):
    """An export made for another board with a VQ codebook: the check ignored the codebook
    (so a too-big export reached the build) and gave no overshoot."""
    import tinysift.stages.device as stage
    from tinysift.boards import load_board
    from tinysift.export.memory import plan_memory

    small = load_board("nucleo_f411re")
    fp = _footprint()
    bare = plan_memory(fp, small, 40, 50, db_capacity=20)
    assert bare.fits
    # codewords enough to overflow what is left of the RAM (their online copy is in RAM)
    per_class = (small.ram_bytes - bare.ram_total) // (fp.num_classes * fp.feature_dim) + 1
    assert not plan_memory(fp, small, 40, 50, db_capacity=20, vq_per_class=per_class).fits
    run = exported_run(tmp_path / "run", samples=40, codebook={"per_class": per_class})
    info = json.loads((run / "export" / "export.json").read_text())
    info.update(test_samples=50, memory_plan={"ram_total": 1, "flash_total": 1,
                                              "db_capacity": 20})
    (run / "export" / "export.json").write_text(json.dumps(info))
    import importlib

    export_stage = importlib.import_module("tinysift.stages.export")  # the module, not export()
    monkeypatch.setattr(export_stage, "run_model_footprint", lambda _run: fp)
    with pytest.raises(FitError, match=rf"nucleo_f411re: .*{per_class} per class.* RAM, board "
                                       r"has 128 KB \(over by [1-9][\d,.]* (bytes|KB)\).*"
                                       r"--board nucleo_f411re"):
        stage.check_export_fits(run, small)
    # `device flash` refuses it the same way before any build (a recorded export of it)
    unfit = exported_run(tmp_path / "unfit", samples=40, test=50,
                         codebook={"per_class": per_class},
                         memory_plan={"ram_total": 1, "flash_total": 1, "db_capacity": 20})
    with pytest.raises(FitError, match=rf"{per_class} per class.* RAM, board has 128 KB"):
        stage.flash(unfit, small.name)
    assert not (unfit / "device").exists()
    info["codebook"] = {"per_class": 0}
    (run / "export" / "export.json").write_text(json.dumps(info))
    stage.check_export_fits(run, small)

    # an export for this board's name, planned against other figures (a user profile that
    # shrank the RAM since): planned again, not waved through on the name
    from dataclasses import replace

    from tinysift.export.memory import board_plan_fields

    info.update(board=small.name, board_profile=board_plan_fields(small))
    (run / "export" / "export.json").write_text(json.dumps(info))
    shrunk = replace(small, ram_bytes=bare.ram_total - 1)
    stage.check_export_fits(run, small)  # the profile it was planned for
    with pytest.raises(FitError, match="nucleo_f411re with other RAM/flash figures"):
        stage.check_export_fits(run, shrunk)


def test_the_board_check_plans_the_export_as_it_was_made(tmp_path, monkeypatch) -> None:
    """check_export_fits plans an export made for another board with what it recorded: its
    `db load` capacity (0: one slot, not a buffer as big as its 100 samples, which is 88 KB
    more RAM than nucleo_f411re's 128 KB leave) and, exported head-only, without the backbone
    buffers and the raw .tflite (420 KB: over the board's 512 KB flash with them). A refusal
    names a head-only export and keeps --head-only in the export it offers, and an export
    of this board's name from before profiles were recorded is said to be one."""
    import importlib

    import tinysift.stages.device as stage
    from tinysift.boards import load_board
    from tinysift.export.memory import ModelFootprint, plan_memory

    small = load_board("nucleo_f411re")
    fp = ModelFootprint(weight_bytes=20_000, num_layers=10, arena_bytes=12_000,
                        sample_bytes=784, feature_dim=64, num_classes=10, tflite_bytes=420_000)

    def fits(**kwargs) -> bool:
        return plan_memory(fp, small, 100, 50, **kwargs).fits

    assert fits(db_capacity=0, backbone_training=False)
    assert not fits(db_capacity=0) and not fits(db_capacity=100, backbone_training=False)
    export_stage = importlib.import_module("tinysift.stages.export")  # the module, not export()
    monkeypatch.setattr(export_stage, "run_model_footprint", lambda _run: fp)

    def made(name: str, db: int, board: str = BOARD):
        from fake_device import fake_run

        return fake_run(tmp_path / name, board=board, samples=100, test=50,
                        backbone_training=False,
                        memory_plan={"ram_total": 1, "flash_total": 1, "db_capacity": db})

    stage.check_export_fits(made("fits", 0), small)
    with pytest.raises(FitError, match=r"db capacity 100, head-only\) needs .* RAM, board has "
                                       r"128 KB .*--board nucleo_f411re \[--fit\] "
                                       r"--head-only$"):
        stage.check_export_fits(made("big-db", 100), small)
    with pytest.raises(FitError, match=r"made for nucleo_f411re, its figures not recorded: "
                                       r"an older export"):
        stage.check_export_fits(made("older", 100, board="nucleo_f411re"), small)


def test_sizes_and_overshoots_never_read_as_zero():
    """98,604 bytes on a 96 KB board read "needs 96 KB, board has 96 KB (over by 0 KB)"."""
    from tinysift.export.memory import MemoryPlan, kb, over_by, over_capacity

    plan = MemoryPlan(board="b", ram={"all": 98_604}, ram_capacity=96 * 1024,
                      flash={"all": 10}, flash_capacity=1024)
    assert over_capacity(plan) == ["needs 96.3 KB RAM, board has 96 KB (over by 300 bytes)"]
    assert kb(96 * 1024) == "96 KB" and kb(96 * 1024 + 1) == "96.1 KB"
    assert over_by(1) == "1 byte" and over_by(10 * 1024 + 1) == "10.1 KB"
    assert kb(10 * 1048576 + 1) == "10.1 MB"


def test_a_plan_that_fills_the_board_exactly_fits_and_one_byte_more_is_said():
    """A plan whose RAM or flash is exactly the board's fits (nothing to say: it would read
    "over by 0 bytes"); one byte more is refused, said as "over by 1 byte". The unit
    boundaries are the docstrings': exact bytes under 10 KB, MB from 10 MB."""
    from tinysift.export.memory import MemoryPlan, kb, over_by, over_capacity

    for extra_ram, extra_flash in ((0, 0), (1, 0), (0, 1)):
        plan = MemoryPlan(board="b", ram={"all": 96 * 1024 + extra_ram}, ram_capacity=96 * 1024,
                          flash={"all": 512 * 1024 + extra_flash}, flash_capacity=512 * 1024)
        assert plan.fits == (extra_ram == extra_flash == 0)
        assert plan.to_dict()["fits"] == plan.fits
        said = over_capacity(plan)
        assert len(said) == extra_ram + extra_flash
        assert all(s.endswith("(over by 1 byte)") for s in said)
        assert [s.split(", ")[0].split()[-1] for s in said] == (
            ["RAM"] * extra_ram + ["flash"] * extra_flash)
    assert over_by(10 * 1024 - 1) == "10,239 bytes" and over_by(10 * 1024) == "10 KB"
    assert kb(10 * 1048576) == "10.0 MB" and kb(10 * 1048576 - 1).endswith(" KB")


def test_stream_upkeep_is_planned_for_at_least_one_slot():
    """The firmware's TS_DB_CAPACITY is max(db, 1): the plan's `db stream` workspace for
    db=0 is the one for a capacity of 1 (it was 4 bytes short)."""
    from tinysift.boards import load_board
    from tinysift.export.memory import plan_memory

    board = load_board(BOARD)
    none, one = (plan_memory(_footprint(), board, 40, 50, db_capacity=db) for db in (0, 1))
    assert none.ram["db stream upkeep"] == one.ram["db stream upkeep"]
    assert none.ram["db buffer (streamed set)"] == one.ram["db buffer (streamed set)"]


def test_a_set_that_does_not_fit_the_exported_buffer_is_refused_before_the_board(tmp_path):
    """More samples than the export's `db load` buffer, samples of another size, or labels
    outside the model's classes: one clear error before any port is opened (the port here
    does not exist, so reaching it would fail with another message)."""
    from tinysift.errors import TinysiftError
    from tinysift.stages.device import TrainParams, run_on_device

    run = exported_run(tmp_path / "run", memory_plan={"ram_total": 1000, "flash_total": 2000,
                                                      "db_capacity": 4})
    with pytest.raises(TinysiftError, match=r"6 samples.*holds 4 \(over by 2\).*"
                                            r"--db-capacity 6"):
        run_on_device(run, BOARD, port=NO_PORT, train_set=a_set(n=6))
    x, y = a_set(n=4)
    with pytest.raises(TinysiftError, match=r"shape \(32,\).*takes \(8, 8, 1\)"):
        run_on_device(run, BOARD, port=NO_PORT, train_set=(x[:, :32], y))
    with pytest.raises(TinysiftError, match=r"labels 0\.\.2.*classes 0\.\.1"):
        run_on_device(run, BOARD, port=NO_PORT, train_set=(x, np.array([0, 1, 2, 0])))
    with pytest.raises(TinysiftError, match=r"labels -1\.\.1.*classes 0\.\.1"):
        run_on_device(run, BOARD, port=NO_PORT, train_set=(x, np.array([0, -1, 1, 0])))
    assert not (run / "device" / "results.json").exists()  # no session was started
    with pytest.raises(DeviceError, match="cannot open"):  # a set that fits gets to the port
        run_on_device(run, BOARD, port=NO_PORT, train_set=(x, y), params=TrainParams(epochs=1))
    # --db-capacity 0 builds the firmware's buffer of max(0, 1) = 1 slot: one sample fits
    one = exported_run(tmp_path / "one", memory_plan={"ram_total": 1000, "flash_total": 2000,
                                                      "db_capacity": 0})
    with pytest.raises(TinysiftError, match=r"2 samples.*holds 1 \(over by 1\)"):
        run_on_device(one, BOARD, port=NO_PORT, train_set=(x[:2], y[:2]))
    with pytest.raises(DeviceError, match="cannot open"):
        run_on_device(one, BOARD, port=NO_PORT, train_set=(x[:1], y[:1]),
                      params=TrainParams(epochs=1))


# ---- the device's counter rate and board, with the fake device ------------------------------

def _fake_session(tmp_path, profile: str, **device):
    """One `device run` of ``profile`` against tests/fake_device.py's device (``device``: its
    options): the results, or the DeviceError."""
    from fake_device import FakeDevice
    from tinysift.stages.device import TrainParams, run_on_device

    run = exported_run(tmp_path / "run")
    dev = FakeDevice(**device)
    try:
        return run_on_device(run, profile, port=dev.url, params=TrainParams(epochs=1),
                             timeout=2.0)
    finally:
        dev.close()


def test_a_pico_s_microsecond_timer_gives_seconds_and_energy(tmp_path):
    """The Pico's port counts micros() (`counter=timer`, `hz=1000000`): the counts are
    microseconds, not 125 MHz core cycles; time and energy were 125x too small, and the
    clock warning told the user to change `clock_hz`."""
    from tinysift.device.session import clock_warning

    res = _fake_session(tmp_path, "pico", board="pico", counter="timer", hz=1_000_000)
    assert res.complete and res.counter == "timer" and res.counter_hz == 1_000_000
    ep = res.epochs[0]  # the fake's epoch: 2,500,000 counts = 2.5 s
    assert ep.seconds == pytest.approx(2.5)
    assert ep.energy_mj == pytest.approx(3.3 * 24.0 * 2.5)  # V * mA * s = mJ
    assert res.phases["features"].seconds == pytest.approx(1.0)
    assert clock_warning(res) is None and res.clock_hz == 125_000_000
    # the export's plan (fake_run's: 1,000 bytes of RAM, 2,000 of flash) beside the timings,
    # named as its board's (fake_run has no model.tflite to plan the pico with)
    assert res.plan == {"ram_bytes": 1000, "flash_bytes": 2000, "board": BOARD}
    res.events.append({"clock_differs": {"device_hz": 2_000_000, "profile_hz": 1_000_000}})
    warning = clock_warning(res)  # a timer's rate is no core clock: the fix is counter_hz
    assert "timer counter at 2 MHz" in warning and "`counter_hz` in boards/pico.toml" in warning


def test_the_device_s_counter_rate_is_used_and_a_core_clock_mismatch_named(tmp_path):
    """A NUCLEO-F411RE whose firmware runs its core (DWT) at 84 MHz, not the profile's
    100 MHz: seconds use the device's rate; the warning names the clock, not a fix that
    would make the seconds wrong."""
    from tinysift.device.session import clock_warning

    res = _fake_session(tmp_path, "nucleo_f411re", board="nucleo_f411re", counter="dwt",
                        hz=84_000_000)
    assert res.complete and res.counter_hz == 84_000_000
    assert res.epochs[0].seconds == pytest.approx(2_500_000 / 84e6)
    # the energy too: V * I_active over the device's time, not over the profile's clock's
    from tinysift.boards import load_board

    board = load_board("nucleo_f411re")
    assert res.epochs[0].energy_mj == pytest.approx(
        board.supply_v * board.active_current_ma * 2_500_000 / 84e6)
    warning = clock_warning(res)
    assert "core clock at 84 MHz" in warning and "says 100 MHz" in warning
    assert "seconds and energy use the device's rate" in warning


@pytest.mark.parametrize(("profile", "boot", "where", "fix"), [
    (BOARD, True, "@boot proto=2", "run the ELF this checkout builds"),
    ("nucleo_f411re", "before", "@info proto=2", "tinysift device flash --run RUN --board "
                                                 "nucleo_f411re"),
])
def test_firmware_of_another_protocol_version_is_refused(tmp_path, profile, boot, where, fix):
    """TSP is versioned (`proto=` in @boot and @info), yet a firmware of another version
    ran and its records were folded into the results by TSP/1's rules without a word."""
    from fake_device import FakeDevice
    from tinysift.device.session import ProtocolMismatch
    from tinysift.stages.device import TrainParams, run_on_device

    class Newer(FakeDevice):
        def send(self, payload: str) -> None:
            super().send(payload.replace("proto=1", "proto=2"))

    run = exported_run(tmp_path / "run")
    dev = Newer(boot=boot, board=profile, counter="dwt" if boot == "before" else
                "systick-icount")
    try:
        with pytest.raises(ProtocolMismatch, match=rf"speaks TSP/2 \({where}\), this host "
                                                   rf"TSP/1: .*{re.escape(fix)}"):
            run_on_device(run, profile, port=dev.url, params=TrainParams(epochs=1),
                          timeout=2.0)
    finally:
        dev.close()
    failed = load(run / "device" / "results.json")
    assert failed.status == "failed" and not failed.epochs
    assert not any(line.startswith("train") for line in dev.received)


@pytest.mark.parametrize("extra", ["n=2", "n=3"])
def test_an_epoch_sent_twice_or_beyond_the_train_is_refused(tmp_path, extra):
    """A firmware that sent an @epoch twice, or one past the train's epochs, had its
    cycles and energy summed into a complete result (epochs [1, 2, 2] for `--epochs 2`: the
    training's energy counted one epoch too many)."""
    from fake_device import FakeDevice
    from tinysift.device.session import UnexpectedRecords
    from tinysift.stages.device import TrainParams, run_on_device

    class Chatty(FakeDevice):
        def send(self, payload: str) -> None:
            super().send(payload)
            if payload.startswith("@epoch n=2 "):
                super().send(payload.replace("n=2 ", f"{extra} ", 1))

    run = exported_run(tmp_path / "run")
    dev = Chatty()
    try:
        with pytest.raises(UnexpectedRecords, match=rf"sent @epoch n={extra[2:]} more than "
                                                    r"once or beyond the 2 epochs"):
            run_on_device(run, BOARD, port=dev.url, params=TrainParams(epochs=2),
                          timeout=2.0)
    finally:
        dev.close()
    assert load(run / "device" / "results.json").status == "failed"


def test_firmware_of_another_board_is_refused(tmp_path):
    """`@boot board=` names the firmware's board: an AN500 image answering a session for
    the AN386 profile (or a Pico's on a Nano's port) would be costed with the wrong
    profile."""
    from tinysift.device.session import WrongBoard

    with pytest.raises(WrongBoard, match=r"built for board 'qemu-mps2-an500', not "
                                         r"'qemu-mps2-an386'.*--board qemu-mps2-an500"):
        _fake_session(tmp_path, BOARD, board="qemu-mps2-an500")
    failed = load(tmp_path / "run" / "device" / "results.json")
    assert failed.status == "failed" and failed.firmware["board"] == "qemu-mps2-an500"
    assert not failed.epochs
    # the profile's own name passes (the QEMU and STM32 firmware send it)
    assert _fake_session(tmp_path / "ok", BOARD, board=BOARD).complete


def test_a_board_that_booted_before_the_port_opened_is_checked_by_name(tmp_path):
    """A real board sends its `@boot` before the host opens the port: the host asks `name`,
    whose `board=` names the firmware's board, so a Nano 33 BLE's image answering a Pico
    session is refused before any training (it used to pass unchecked)."""
    from tinysift.device.session import WrongBoard

    with pytest.raises(WrongBoard, match=r"built for board 'nano33ble', not 'pico'"):
        _fake_session(tmp_path, "pico", board="nano33ble", boot="before", counter="timer",
                      hz=1_000_000)
    failed = load(tmp_path / "run" / "device" / "results.json")
    assert failed.status == "failed" and failed.firmware["board"] == "nano33ble"
    res = _fake_session(tmp_path / "ok", "pico", board="pico", boot="before",
                        counter="timer", hz=1_000_000)
    # the counter its @info names (there is no @boot): results said `counter: null`
    assert res.complete and res.counter == "timer"


def test_a_board_that_boots_while_asked_its_name_is_checked_by_its_boot(tmp_path):
    """A board reset by the opening of its port boots during `name`: its `@boot` (a reset
    inside the command) is the board's word, checked and kept, not a DeviceReset escaping
    the session before its retry loop."""
    from fake_device import Fault
    from tinysift.device.session import WrongBoard

    timer = {"counter": "timer", "hz": 1_000_000, "boot": "before"}
    with pytest.raises(WrongBoard, match=r"built for board 'nano33ble', not 'pico'"):
        _fake_session(tmp_path, "pico", board="nano33ble",
                      faults=[Fault("cmd:name", "reset")], **timer)
    res = _fake_session(tmp_path / "ok", "pico", board="pico",
                        faults=[Fault("cmd:name", "reset")], **timer)
    assert res.complete and res.firmware["board"] == "pico"


def test_a_real_board_run_without_board_is_named_not_waited_on(tmp_path):
    """`device run --port /dev/ttyACM0` without --board takes the default, the emulated
    qemu-mps2-an386: the host waited the whole boot bound for a @boot that a Nucleo (its
    port opened after it booted) never sends, then blamed the firmware, port and baud rate.
    A port given for an emulated profile is now asked its `name` like a real board, and the
    answer names the board to pass (flashing an emulated board is no fix)."""
    from tinysift.device.session import WrongBoard

    t0 = time.monotonic()
    with pytest.raises(WrongBoard, match=r"built for board 'nucleo_f411re', not "
                                         r"'qemu-mps2-an386' \(an emulated board.*pass the "
                                         r"board that is connected \(--board nucleo_f411re\)"):
        _fake_session(tmp_path, BOARD, board="nucleo_f411re", boot="before", counter="dwt",
                      hz=100_000_000)
    assert time.monotonic() - t0 < 15  # the real-board wait (5 s), not the boot bound
    # an emulator started by hand on a port, whose @boot comes, still runs
    assert _fake_session(tmp_path / "ok", BOARD, board=BOARD).complete


def test_a_real_board_without_a_port_is_refused_before_any_build(tmp_path):
    """`device run --board nucleo_f411re` without --port built the board's firmware (for
    some boards with stock PlatformIO, which downloads) and only then found that QEMU cannot
    run it. Refused before any build, naming the port and the flash command."""
    from fake_device import fake_run
    from tinysift.boards import load_board
    from tinysift.errors import TinysiftError
    from tinysift.export.memory import board_plan_fields
    from tinysift.stages.device import TrainParams, run_on_device

    # exported for that board (an export for another one is re-planned first: FitError)
    run = fake_run(tmp_path / "run", board="nucleo_f411re",
                   board_profile=board_plan_fields(load_board("nucleo_f411re")))
    with pytest.raises(TinysiftError, match=r"--board nucleo_f411re is a real board: pass "
                                            r"its serial port \(--port.*tinysift device "
                                            r"flash --run .* --board nucleo_f411re"):
        run_on_device(run, "nucleo_f411re", params=TrainParams(epochs=1))
    assert not (run / "device").exists()  # nothing built, no session


def test_the_streamed_session_checks_the_board_too(tmp_path):
    from fake_device import FakeDevice
    from tinysift.device.session import WrongBoard
    from tinysift.device.stream import StreamParams
    from tinysift.stages.device import TrainParams
    from tinysift.stages.stream import run_stream_on_device

    run = exported_run(tmp_path / "run")
    dev = FakeDevice(board="pico")
    try:
        with pytest.raises(WrongBoard, match="built for board 'pico'"):
            run_stream_on_device(run, BOARD, TrainParams(epochs=1), a_set(0),
                                 StreamParams(6, 3), "s", port=dev.url, timeout=2.0)
    finally:
        dev.close()


def test_the_streamed_session_refuses_a_stale_or_unfitting_export_first(digits_run, tmp_path):
    """run_stream_on_device (bench upkeep, the Python API) skipped the device stage's export
    checks: it served (or, without a cached result, built and ran) an export left from an
    earlier model.tflite, and built an export that does not fit the board. Both are refused
    as `device run` refuses them, before any build and before a cached result is read."""
    import shutil

    from tinysift.device.stream import StreamParams
    from tinysift.runs import file_hash
    from tinysift.stages.device import TrainParams
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.stream import run_stream_on_device

    run = tmp_path / "run"
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("device", ".tinysift.lock"))
    params, stream = TrainParams(epochs=1), StreamParams(6, 3)
    folder = _stream_files(run, "s", params, stream, a_set(0))  # a result of this export
    tflite = file_hash(run / "model.tflite")
    quantize(run, representative=100, progress=False)  # another calibration: a new model
    assert file_hash(run / "model.tflite") != tflite
    with pytest.raises(StageError, match=r"export/ was written from an earlier model\.tflite; "
                                         r"run `tinysift export"):
        run_stream_on_device(run, BOARD, params, a_set(0), stream, "s")
    assert load(folder / "results.json").session == "earlier"  # no session, no build
    assert not list((run / "device").glob("firmware-*"))

    export(run)  # current again, for qemu-mps2-an386 (4 MB); netduinoplus2 has 128 KB of RAM
    with pytest.raises(FitError, match=r"qemu-netduinoplus2: the export of .* export for this "
                                       r"board first: tinysift export --run .* --board "
                                       r"qemu-netduinoplus2"):
        run_stream_on_device(run, "qemu-netduinoplus2", params, a_set(0), stream, "n")
    assert not (run / "device" / "n").exists()
    assert not list((run / "device").glob("firmware-*"))


def test_the_streamed_session_refuses_a_real_board_without_a_port_or_a_set_that_cannot_fit(
        tmp_path):
    """As `device run`: a real board without a port is refused before any build (it built
    the board's firmware, then found QEMU cannot run it), and so are a `db stream` cap above
    the export's buffer (the firmware refused it, after a build and a boot) and samples of
    another shape or labels outside the model's classes. A stream longer than the buffer
    but kept within it is no fault: it gets to the port."""
    from fake_device import fake_run
    from tinysift.boards import load_board
    from tinysift.device.stream import StreamParams
    from tinysift.errors import TinysiftError
    from tinysift.export.memory import board_plan_fields
    from tinysift.stages.device import TrainParams
    from tinysift.stages.stream import run_stream_on_device

    params = TrainParams(epochs=1)
    real = fake_run(tmp_path / "real", board="nucleo_f411re",
                    board_profile=board_plan_fields(load_board("nucleo_f411re")))
    with pytest.raises(TinysiftError, match=r"--board nucleo_f411re is a real board: pass "
                                            r"its serial port \(--port"):
        run_stream_on_device(real, "nucleo_f411re", params, a_set(0), StreamParams(6, 3), "s")
    assert not (real / "device").exists()

    run = exported_run(tmp_path / "run", memory_plan={"ram_total": 1000, "flash_total": 2000,
                                                      "db_capacity": 4})
    with pytest.raises(TinysiftError, match=r"`db stream` keeps up to 5 samples \(cap\), the "
                                            r"export's buffer holds 4 \(over by 1\).*"
                                            r"--db-capacity 5.*or keep at most 4"):
        run_stream_on_device(run, BOARD, params, a_set(0), StreamParams(6, 5), "s",
                             port=NO_PORT)
    x, y = a_set(0)
    with pytest.raises(TinysiftError, match=r"shape \(32,\).*takes \(8, 8, 1\)"):
        run_stream_on_device(run, BOARD, params, (x[:, :32], y), StreamParams(6, 3), "s",
                             port=NO_PORT)
    with pytest.raises(TinysiftError, match=r"labels 0\.\.2.*classes 0\.\.1"):
        run_stream_on_device(run, BOARD, params, (x, np.arange(6) % 3), StreamParams(6, 3),
                             "s", port=NO_PORT)
    # a count other than the samples sent: the device waited for lines that never came
    # (or read the extra ones as commands); a negative cap, an unknown policy, seed or
    # `db use` mode
    with pytest.raises(TinysiftError, match=r"count is 7 but 6 samples are streamed.*"
                                            r"give count=6"):
        run_stream_on_device(run, BOARD, params, a_set(0), StreamParams(7, 3), "s",
                             port=NO_PORT)
    with pytest.raises(TinysiftError, match=r"cap is -1"):
        run_stream_on_device(run, BOARD, params, a_set(0), StreamParams(6, -1), "s",
                             port=NO_PORT)
    with pytest.raises(TinysiftError, match=r"the set to stream is empty"):  # 101 at count 0
        run_stream_on_device(run, BOARD, params, (x[:0], y[:0]), StreamParams(0, 3), "s",
                             port=NO_PORT)
    with pytest.raises(TinysiftError, match=r"unknown stream policy 'fifo'; choose from "
                                            r"reservoir, coverage"):
        run_stream_on_device(run, BOARD, params, a_set(0), StreamParams(6, 3, "fifo"), "s",
                             port=NO_PORT)
    for seed in (-1, 2**32):  # the firmware takes a 32-bit unsigned seed (101 bad_value:seed)
        with pytest.raises(TinysiftError, match=rf"seed is {seed}: the device takes a seed "
                                                r"from 0 to 4294967295"):
            run_stream_on_device(run, BOARD, params, a_set(0), StreamParams(6, 3, seed=seed),
                                 "s", port=NO_PORT)
    with pytest.raises(TinysiftError, match=r"db_use must be one of ram, both, got 'flash'"):
        run_stream_on_device(run, BOARD, params, a_set(0), StreamParams(6, 3), "s",
                             db_use="flash", port=NO_PORT)
    assert not (run / "device").exists()  # no session was started
    with pytest.raises(DeviceError, match="cannot open"):  # 6 streamed, 4 kept: it fits
        run_stream_on_device(run, BOARD, params, a_set(0), StreamParams(6, 4), "s",
                             port=NO_PORT)


# ---- a head-only export: built without the backbone buffers, trains update=head only -----

def test_a_head_only_export_builds_with_its_flag_in_its_own_folder(tmp_path, monkeypatch):
    """export.json's ``backbone_training: false`` reaches the build: PlatformIO gets
    -DTS_APP_BACKBONE_TRAINING=0 after the caller's own PLATFORMIO_BUILD_FLAGS, in a build
    folder of its own, and the build identity (the ELF's stamp, a result's reuse) differs
    from the full firmware's, which stays as it was."""
    from tinysift.boards import load_board
    from tinysift.device.build import HEAD_ONLY_FLAG, build_plan
    from tinysift.stages.device import build_identity

    monkeypatch.setenv("PLATFORMIO_BUILD_FLAGS", "-DUSER_FLAG=1")
    brd = load_board(BOARD)
    run = exported_run(tmp_path / "run")
    export, out = run / "export", run / "device"
    full, full_id = build_plan(brd, export, out), build_identity(run, brd)
    assert "PLATFORMIO_BUILD_FLAGS" not in full.env  # the caller's own flags, untouched
    assert full.build_dir == out.resolve() / "build" and "flags=" not in full_id
    # the same export made head-only
    info = json.loads((export / "export.json").read_text())
    (export / "export.json").write_text(json.dumps({**info, "backbone_training": False}))
    head = build_plan(brd, export, out)
    assert head.env["PLATFORMIO_BUILD_FLAGS"] == f"-DUSER_FLAG=1 {HEAD_ONLY_FLAG}"
    assert f"PLATFORMIO_BUILD_FLAGS='-DUSER_FLAG=1 {HEAD_ONLY_FLAG}'" in head.shell()
    assert head.build_dir == out.resolve() / "build-head-only"  # never the full's objects
    assert head.elf.parent.parent == head.build_dir
    head_id = build_identity(run, brd)
    assert head_id != full_id and head_id.startswith(full_id)  # no stamp, no result reused
    monkeypatch.delenv("PLATFORMIO_BUILD_FLAGS")
    assert build_plan(brd, export, out).env["PLATFORMIO_BUILD_FLAGS"] == HEAD_ONLY_FLAG


def test_a_head_only_export_refuses_float_layer_training_before_the_board(tmp_path):
    """update=last-block or bias on a head-only export: refused by the host before any build
    or session (the firmware would answer code 4 after the set was streamed), naming the fix;
    update=head goes on (here to the missing port)."""
    from tinysift.device.stream import StreamParams
    from tinysift.errors import TinysiftError
    from tinysift.stages.device import TrainParams, run_on_device
    from tinysift.stages.stream import run_stream_on_device

    run = exported_run(tmp_path / "run", backbone_training=False)
    for update in ("last-block", "bias"):
        params = TrainParams(epochs=1, update=update)
        with pytest.raises(TinysiftError, match=rf"update={update} .* head-only .* export "
                                                r"again with them \(`tinysift export --run "
                                                rf".* --board {BOARD}`, without --head-only"):
            run_on_device(run, BOARD, port=NO_PORT, params=params, label=update)
        with pytest.raises(TinysiftError, match="head-only"):
            run_stream_on_device(run, BOARD, params, a_set(0), StreamParams(6, 3), "s",
                                 port=NO_PORT)
    assert not (run / "device").exists()  # no session was started
    with pytest.raises(DeviceError, match="cannot open"):
        run_on_device(run, BOARD, port=NO_PORT, params=TrainParams(epochs=1, update="head"))
    with pytest.raises(DeviceError, match="cannot open"):  # no update: the default, head
        run_on_device(run, BOARD, port=NO_PORT, params=TrainParams(epochs=1))
    full = exported_run(tmp_path / "full")
    with pytest.raises(DeviceError, match="cannot open"):
        run_on_device(full, BOARD, port=NO_PORT, params=TrainParams(epochs=1, update="bias"))


def test_a_model_the_mode_cannot_train_is_refused_before_the_board(tmp_path):
    """update=last-block or bias on a residual model (resnet8: an ADD below the head, no
    pointwise conv right below the pooling): refused by the host before any build or session,
    naming the fix (the device answered engine:unsupported_op after the set was sent);
    update=head goes on, and a model with the block and a chain trains every mode."""
    from tinysift.errors import TinysiftError
    from tinysift.stages.device import TrainParams, run_on_device

    def layer(op, inputs):
        return {"op": op, "in": [4, 4, 8], "out": [4, 4, 8], "inputs": inputs, "macs": 1}

    residual = [layer("CONV_2D", [0]), layer("CONV_2D", [1]), layer("ADD", [1, 2]),
                layer("AVERAGE_POOL_2D", [3]), layer("RESHAPE", [4]),
                layer("FULLY_CONNECTED", [5])]
    run = exported_run(tmp_path / "res", layers=residual, head_layer=5)
    for update in ("last-block", "bias"):
        with pytest.raises(TinysiftError, match=rf"update={update} needs .* model of .* does "
                                                r"not have .*ADD.*: train with update=head"):
            run_on_device(run, BOARD, port=NO_PORT, params=TrainParams(epochs=1, update=update))
    assert not (run / "device").exists()  # no session was started
    with pytest.raises(DeviceError, match="cannot open"):
        run_on_device(run, BOARD, port=NO_PORT, params=TrainParams(epochs=1, update="head"))
    pointwise = layer("CONV_2D", [0]) | {"macs": 4 * 4 * 8 * 8}  # 1x1, stride 1
    chain = [pointwise, layer("AVERAGE_POOL_2D", [1]),
             layer("RESHAPE", [2]), layer("FULLY_CONNECTED", [3])]
    ok = exported_run(tmp_path / "chain", layers=chain, head_layer=3)
    for update in ("last-block", "bias"):
        with pytest.raises(DeviceError, match="cannot open"):
            run_on_device(ok, BOARD, port=NO_PORT, params=TrainParams(epochs=1, update=update))
    # a 3x3 CONV_2D (9 MACs an input channel) or a strided 1x1 one under the pooling: the
    # device trains no last block of it (ts_trainer_tail.c), bias goes on
    for name, conv in (("k3", pointwise | {"macs": 9 * 4 * 4 * 8 * 8}),
                       ("s2", pointwise | {"in": [8, 8, 8]})):
        run = exported_run(tmp_path / name, layers=[conv, *chain[1:]], head_layer=3)
        with pytest.raises(TinysiftError, match=r"update=last-block needs a pointwise CONV_2D "
                                                r"\(1x1, stride 1\)"):
            run_on_device(run, BOARD, port=NO_PORT,
                          params=TrainParams(epochs=1, update="last-block"))
        with pytest.raises(DeviceError, match="cannot open"):
            run_on_device(run, BOARD, port=NO_PORT, params=TrainParams(epochs=1, update="bias"))


@pytest.mark.parametrize(("args", "said"), [
    ({"on_reset": "again"}, r"--on-reset must be one of retry, stop, got 'again'"),
    ({"db_use": "flash"}, r"db_use must be one of ram, both, got 'flash'"),
    ({"lr": 0.0}, r"the device cannot train with lr 0 \(in \(0, 10\]\)"),
], ids=["on-reset", "db-use", "lr"])
def test_a_setting_the_device_cannot_take_is_refused_before_the_board(tmp_path, args: dict,
                                                                      said: str) -> None:
    """run_on_device's own arguments: an --on-reset or `db use` mode the session does not
    know, and a train parameter outside the firmware's range (docs/protocol.md: lr in
    (0, 10]), are refused before any port or session (the port here does not exist: reaching
    it would say "cannot open")."""
    from tinysift.stages.device import TrainParams, run_on_device

    run = exported_run(tmp_path / "run")
    args = dict(args)
    params = TrainParams(epochs=1, lr=args.pop("lr", 0.05))
    with pytest.raises(TinysiftError, match=said):
        run_on_device(run, BOARD, port=NO_PORT, params=params, train_set=a_set(), **args)
    assert not (run / "device").exists()


def _pool_head(conv: dict) -> list[dict]:
    """``conv``, then the AVERAGE_POOL_2D, RESHAPE and head of the ds-cnn's tail."""
    out_c = conv["out"][-1]
    return [conv, {"op": "AVERAGE_POOL_2D", "in": conv["out"], "out": [1, 1, out_c],
                   "inputs": [1]},
            {"op": "RESHAPE", "in": [1, 1, out_c], "out": [1, 1, out_c], "inputs": [2]},
            {"op": "FULLY_CONNECTED", "in": [1, 1, out_c], "out": [1, 1, 2], "inputs": [3]}]


_RESIDUAL = [{"op": op, "in": [4, 4, 8], "out": [4, 4, 8], "inputs": inputs, "macs": 1}
             for op, inputs in (("CONV_2D", [0]), ("CONV_2D", [1]), ("ADD", [1, 2]),
                                ("AVERAGE_POOL_2D", [3]), ("RESHAPE", [4]),
                                ("FULLY_CONNECTED", [5]))]


@pytest.mark.parametrize("info", [
    # 1x1, stride 1, 8 -> 16 channels over 4x4 pixels: 4*4*16 outputs x 8 inputs = 2,048 MACs
    {"layers": _pool_head({"op": "CONV_2D", "in": [4, 4, 8], "out": [4, 4, 16],
                           "inputs": [0], "macs": 2_048}), "head_layer": 3},
    # 16 -> 8 channels: 4*4*8 outputs x 16 inputs = 2,048 MACs
    {"layers": _pool_head({"op": "CONV_2D", "in": [4, 4, 16], "out": [4, 4, 8],
                           "inputs": [0], "macs": 2_048}), "head_layer": 3},
    # no MAC counts in the table: the block is not checked
    {"layers": _pool_head({"op": "CONV_2D", "in": [4, 4, 8], "out": [4, 4, 16],
                           "inputs": [0]}), "head_layer": 3},
    # a layer table without its head's index, or a head without a table: nothing is checked
    # (the residual model's table would be refused)
    {"layers": _RESIDUAL},
    {"head_layer": 5},
], ids=["widening", "narrowing", "no-macs", "no-head", "no-table"])
def test_a_pointwise_block_of_any_width_or_an_unchecked_table_trains_every_mode(
        info: dict) -> None:
    """update=last-block trains a CONV_2D that does one multiply-accumulate per input
    channel of each output value (1x1, stride 1: docs/trainer.md, Limits), whether it widens
    or narrows the channels; a table without MAC counts is not checked for it, and an export
    without its layer table or head index (an older one) is not checked at all."""
    from tinysift.stages.device import check_update_supported

    for update in ("last-block", "bias"):
        check_update_supported("RUN", info, update)  # no refusal


def test_the_callers_platformio_flags_are_part_of_the_build_identity(tmp_path, monkeypatch):
    """PLATFORMIO_BUILD_FLAGS (and PlatformIO's other build variables) reach the build, but
    the ELF's stamp and a result's reuse did not know them: an ELF built with
    -DTS_USE_DSP=0 was reused after the flag was dropped (and the other way round), and so
    was its result. Without any set, the identity is what it was."""
    from tinysift.boards import load_board
    from tinysift.device.build import firmware_source_hash, toolchain_identity
    from tinysift.runs import file_hash
    from tinysift.stages.device import build_identity, ensure_built

    for name in ("PLATFORMIO_BUILD_FLAGS", "PLATFORMIO_BUILD_SRC_FLAGS",
                 "PLATFORMIO_BUILD_UNFLAGS", "PLATFORMIO_BUILD_SRC_FILTER",
                 "PLATFORMIO_SRC_DIR", "PLATFORMIO_EXTRA_SCRIPTS"):
        monkeypatch.delenv(name, raising=False)
    run = exported_run(tmp_path / "run")
    (run / "export" / "ts_export.h").write_text("/* a stand-in */\n")
    brd = load_board(BOARD)
    plain = build_identity(run, brd)
    assert plain == (f"{file_hash(run / 'export' / 'ts_export.h')}|fw={firmware_source_hash()}"
                     f"|toolchain={toolchain_identity(brd)}")
    elf = run / "device" / f"firmware-{brd.pio_env}.elf"
    elf.parent.mkdir(parents=True)
    elf.write_bytes(b"an ELF built without the flag")
    (run / "device" / f"firmware-{brd.pio_env}.stamp").write_text(plain)
    (run / "device" / f"firmware-{brd.pio_env}.elf.sha256").write_text(file_hash(elf))
    assert ensure_built(run, brd) == elf  # current: reused
    # a damaged ELF under a current stamp was run as it was (every run a closed link): its
    # hash no longer matches, it is built again (the stand-in export fails: a build ran)
    elf.write_bytes(b"an ELF cut sho")
    with pytest.raises(DeviceError, match="firmware build for qemu-mps2-an386 failed"):
        ensure_built(run, brd)
    # the stamp goes before the build: a build that did not finish leaves none (its ELF
    # is never taken for the stamp's)
    assert not (run / "device" / f"firmware-{brd.pio_env}.stamp").exists()
    elf.write_bytes(b"an ELF built without the flag")
    (run / "device" / f"firmware-{brd.pio_env}.stamp").write_text(plain)  # (the build dropped it)
    assert ensure_built(run, brd) == elf  # the recorded ELF and stamp again: reused
    monkeypatch.setenv("PLATFORMIO_BUILD_FLAGS", "-DTS_USE_DSP=0")
    flagged = build_identity(run, brd)
    assert flagged != plain and "env:PLATFORMIO_BUILD_FLAGS=-DTS_USE_DSP=0" in flagged
    # another firmware: built again (the stand-in export fails to compile: a build ran)
    with pytest.raises(DeviceError, match="firmware build for qemu-mps2-an386 failed"):
        ensure_built(run, brd)
    assert not (run / "device" / f"firmware-{brd.pio_env}.stamp").exists()
    monkeypatch.setenv("PLATFORMIO_BUILD_SRC_FILTER", "+<*>")
    assert build_identity(run, brd) not in (plain, flagged)


def _toolchain(core, version: str, says: str, day: int) -> None:
    """An offline PlatformIO core's toolchain package (as tools/pio_seed.sh writes it) whose
    compiler answers ``--version`` with ``says``, its binary dated ``day`` (days after
    2023-11-14: an upgrade installs a binary of another date)."""
    import os

    pkg = core / "packages" / "toolchain-gccarmnoneeabi"
    (pkg / "bin").mkdir(parents=True, exist_ok=True)
    (pkg / "package.json").write_text(json.dumps({"name": "toolchain-gccarmnoneeabi",
                                                  "version": version}))
    gcc = pkg / "bin" / "arm-none-eabi-gcc"
    gcc.write_text(f"#!/bin/sh\necho '{says}'\n")
    gcc.chmod(0o755)
    when = (1_700_000_000 + day * 86_400) * 1_000_000_000
    os.utime(gcc, ns=(when, when))


def test_the_toolchain_is_part_of_the_build_identity(tmp_path, monkeypatch):
    """The ELF's stamp and a result's reuse did not know the compiler: after a toolchain
    upgrade (PlatformIO's package, or the system's arm-none-eabi-gcc the offline core links
    to, whose package.json keeps its seed-time version) a stale ELF and its results were
    reused. The toolchain package's version and its compiler's --version line are in the
    identity now; the same toolchain keeps it."""
    from tinysift.boards import load_board
    from tinysift.device.session import TrainParams
    from tinysift.stages.device import build_identity, cached_results, session_set

    core = tmp_path / "core"
    monkeypatch.setenv("TINYSIFT_PIO_CORE_DIR", str(core))
    brd = load_board(BOARD)
    run = exported_run(tmp_path / "run")
    assert build_identity(run, brd).endswith("|toolchain=none")  # nothing installed yet
    _toolchain(core, "1.120201.0", "arm-none-eabi-gcc (15:12.2.rel1-1) 12.2.1 20221205", 0)
    old = build_identity(run, brd)
    assert "toolchain=toolchain-gccarmnoneeabi@1.120201.0 (arm-none-eabi-gcc " \
           "(15:12.2.rel1-1) 12.2.1 20221205)" in old
    params = TrainParams(epochs=1)
    complete_result(run, "x", params, session_set(run, None, False, "ram")[1])
    assert cached_results(run, "x", params, BOARD) is not None
    assert build_identity(run, brd) == old  # unchanged: reused
    # the system compiler upgraded under the same package.json
    _toolchain(core, "1.120201.0", "arm-none-eabi-gcc (15:13.2.rel1-2) 13.2.1 20231009", 1)
    new = build_identity(run, brd)
    assert new != old and "13.2.1" in new
    assert cached_results(run, "x", params, BOARD) is None
    # PlatformIO's package upgraded (the same compiler answer)
    _toolchain(core, "1.130201.0", "arm-none-eabi-gcc (15:13.2.rel1-2) 13.2.1 20231009", 1)
    assert build_identity(run, brd) not in (old, new)


def test_a_power_monitor_that_fails_at_the_end_keeps_the_finished_training(tmp_path,
                                                                           monkeypatch):
    """The Joulescope lost during a training (its USB cable, its driver) made `stop()` raise
    after every record had arrived: the finished training was recorded as failed (and set
    aside as results.failed.json beside an earlier result). It is complete now, with the
    estimates and an event saying why they were not replaced, as for a capture whose
    windows do not match."""
    from fake_device import FakeDevice
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor
    from tinysift.stages.device import TrainParams, run_on_device

    class Unplugged(FakeJoulescope):
        """Streams its first samples, then the device is gone."""

        def read(self, duration=None, contiguous_duration=None, out_format=None,
                 fields=None):
            self._streaming = True
            self._call("stream_notify")
            time.sleep(0.05)
            raise OSError("USB device disconnected")

    install(monkeypatch, Unplugged(MarkerWire()))
    run = exported_run(tmp_path / "run")
    params = TrainParams(epochs=1)
    complete_result(run, "", params, None)
    dev = FakeDevice(board="nucleo_f411re", counter="dwt", hz=100_000_000)
    try:
        res = run_on_device(run, "nucleo_f411re", port=dev.url, params=params,
                            monitor=JoulescopeMonitor(duration_s=1.0), timeout=2.0)
    finally:
        dev.close()
    assert res.complete and res.epochs and res.test_acc_after is not None
    assert {ep.energy_kind for ep in res.epochs} == {"estimated"}
    (event,) = [e["monitor"] for e in res.events if "monitor" in e]
    assert "USB device disconnected" in event and "estimated" in event
    kept = load(run / "device" / "results.json")
    assert kept.complete and kept.session == res.session
    assert not (run / "device" / "results.failed.json").exists()


def _measured_long_training(tmp_path, monkeypatch, cut_epoch_2=False, **monitor_args):
    """A 2-epoch training of two 35 s epochs (simulated: the fake's captured second takes
    10 ms) on a fake nucleo_f411re with the fake Joulescope on its marker, measured by a
    JoulescopeMonitor(**monitor_args) made once the fake is installed. The deadline is the
    one a 70 s training gets on a real board (its expected cycles, 4x, plus twice
    --timeout); the tiny export here expects milliseconds, so --timeout stands in for
    them. ``cut_epoch_2``: epoch 2's window stays open until the capture has ended, so a
    capture that ends after epoch 1 ends inside it however late the training started.
    Returns ``(results, joulescope)``."""
    from fake_device import FakeDevice
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.device.energy import JoulescopeMonitor
    from tinysift.stages.device import TrainParams, run_on_device

    wire = MarkerWire()
    js = FakeJoulescope(wire, sampling_frequency=1000, time_scale=0.01)
    install(monkeypatch, js)
    run = exported_run(tmp_path / "run")
    class CutEpoch2(FakeDevice):
        windows = 0

        def _window(self, seconds: float) -> None:
            self.windows += 1
            if self.windows != 3:  # features, epoch 1, epoch 2, the evaluation
                return super()._window(seconds)
            wire.set(True)
            deadline = time.monotonic() + 30.0
            while js.is_streaming and time.monotonic() < deadline:
                time.sleep(0.01)
            wire.set(False)

    dev = (CutEpoch2 if cut_epoch_2 else FakeDevice)(
        board="nucleo_f411re", counter="dwt", hz=100_000_000, marker=wire, window_s=0.02,
        epoch_delay=0.35)
    try:
        res = run_on_device(run, "nucleo_f411re", port=dev.url, params=TrainParams(epochs=2),
                            monitor=JoulescopeMonitor(**monitor_args), timeout=100.0)
    finally:
        dev.close()
    assert res.complete, res.events
    return res, js


def test_a_training_longer_than_a_minute_is_measured(tmp_path, monkeypatch):
    """The Joulescope captured at most 60 s (a fixed length) whatever the training: a
    longer one kept estimates for every window (the capture ended inside the second epoch,
    the evaluation's window never seen). The capture is sized from the session's deadline
    for `train` now: two 35 s epochs and the phases around them are all measured."""
    res, js = _measured_long_training(tmp_path, monkeypatch)
    assert [e for e in res.events if "monitor" in e] == []
    assert [ep.energy_kind for ep in res.epochs] == ["measured", "measured"]
    assert res.phases["features"].energy_kind == "measured"
    assert res.phases["evaluation"].energy_kind == "measured"
    assert sum(ep.seconds for ep in res.epochs) > 60.0
    assert js.reads[0]["contiguous_duration"] > 70.0


def test_a_capture_shorter_than_the_training_keeps_what_it_measured(tmp_path, monkeypatch):
    """A capture that ran out during the training (its cap, --joulescope-max-s) saw only the
    first windows: their count differed and every phase kept its estimate. The windows
    seen are the first ones: those are measured, the rest estimated, and an event says
    which and how to capture longer."""
    # The capture (0.9 s here) must end after epoch 1 (0.37 s after the training starts)
    # and inside epoch 2's window: with a 55 s capture and a 35 s epoch 2 that held only
    # where the training started within 0.18 s of the capture (a fake device 0.2 s late
    # measured no epoch), so epoch 2's window stays open until the capture has ended.
    res, js = _measured_long_training(tmp_path, monkeypatch, cut_epoch_2=True, max_s=90.0)
    assert js.reads[0]["contiguous_duration"] == 90.0
    assert res.phases["features"].energy_kind == "measured"
    assert [ep.energy_kind for ep in res.epochs] == ["measured", "estimated"]
    assert res.epochs[0].seconds == pytest.approx(35.0, rel=0.3)
    assert res.phases["evaluation"].energy_kind == "estimated"
    ran_out, cut = [e["monitor"] for e in res.events if "monitor" in e]
    assert "ended before the training" in ran_out and "--joulescope-max-s" in ran_out
    assert "epoch 2" not in ran_out and "evaluation" in ran_out  # epoch 2 was seen, cut
    assert "inside the marker window of epoch 2:" in cut


@pytest.mark.parametrize("fault", ["close", "reset"])
def test_a_failed_session_closes_the_power_monitor(tmp_path, monkeypatch, fault):
    """A session that failed between the monitor's start() and stop() (the link lost in
    `train`, a device reset with --on-reset stop) left the Joulescope open and capturing
    (its buffer filling, its USB device held) until the next start(); it is closed however
    the session ends, and so is `device calibrate`'s after a failed `calib`."""
    from fake_device import FakeDevice, Fault
    from fake_joulescope import FakeJoulescope, MarkerWire, install
    from tinysift.boards import load_board
    from tinysift.device.calibrate import run_workload
    from tinysift.device.energy import JoulescopeMonitor
    from tinysift.stages.device import TrainParams, run_on_device

    js = FakeJoulescope(MarkerWire())
    install(monkeypatch, js)
    run = exported_run(tmp_path / "run")
    dev = FakeDevice([Fault("train:epoch:1", fault)], board="nucleo_f411re", counter="dwt",
                     hz=100_000_000)
    try:
        with pytest.raises(DeviceError):
            run_on_device(run, "nucleo_f411re", port=dev.url, params=TrainParams(epochs=2),
                          on_reset="stop", monitor=JoulescopeMonitor(duration_s=5.0),
                          timeout=1.0)
    finally:
        dev.close()
    assert js.reads and not js.is_open and not js.is_streaming
    assert load(run / "device" / "results.json").status in ("failed", "device-reset")
    dev = FakeDevice([Fault("cmd:calib", fault)], board="nucleo_f411re", counter="dwt",
                     hz=100_000_000)
    try:
        with pytest.raises(DeviceError):
            run_workload(dev.url, 100, JoulescopeMonitor(duration_s=5.0), timeout=1.0,
                         board=load_board("nucleo_f411re"))
    finally:
        dev.close()
    assert len(js.reads) == 2 and not js.is_open and not js.is_streaming


def test_device_flash_leaves_a_stamp_for_the_elf_it_built(digits_run, tmp_path, monkeypatch):
    """`device flash` builds the same ELF file `device run` reuses but left its stamp alone:
    flashed (here: built, an emulated board) under PLATFORMIO_BUILD_FLAGS=-DTS_USE_DSP=0 over
    a stamp of the plain build, the scalar-kernel ELF was then reused by `device run`
    without the flag, as the plain build its stamp named. The stamp says what flash built
    now: the plain run rebuilds, and a run under the same flag reuses flash's ELF."""
    import shutil

    from tinysift.boards import load_board
    from tinysift.stages.device import build_identity, ensure_built, flash
    from tools_needed import need_tools

    need_tools("arm-none-eabi-gcc", pio=True)
    for name in ("PLATFORMIO_BUILD_FLAGS", "PLATFORMIO_BUILD_SRC_FLAGS",
                 "PLATFORMIO_BUILD_UNFLAGS", "PLATFORMIO_BUILD_SRC_FILTER",
                 "PLATFORMIO_SRC_DIR", "PLATFORMIO_EXTRA_SCRIPTS"):
        monkeypatch.delenv(name, raising=False)
    run = tmp_path / "run"
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("device", ".tinysift.lock"))
    brd = load_board(BOARD)
    elf = run / "device" / f"firmware-{brd.pio_env}.elf"
    stamp = run / "device" / f"firmware-{brd.pio_env}.stamp"
    stamp.parent.mkdir()
    stamp.write_text(build_identity(run, brd))  # an earlier plain build's
    monkeypatch.setenv("PLATFORMIO_BUILD_FLAGS", "-DTS_USE_DSP=0")
    flash(run, BOARD)
    scalar = elf.read_bytes()
    assert stamp.read_text() == build_identity(run, brd)  # the flagged build's
    assert ensure_built(run, brd) == elf and elf.read_bytes() == scalar  # reused
    monkeypatch.delenv("PLATFORMIO_BUILD_FLAGS")
    assert ensure_built(run, brd) == elf
    assert elf.read_bytes() != scalar  # built again, with the DSP kernels
    assert stamp.read_text() == build_identity(run, brd)


def test_a_build_that_installs_its_toolchain_stamps_it(digits_run, tmp_path, monkeypatch):
    """On a core without a toolchain yet (tools/pio seeds the offline core on first use, stock
    PlatformIO downloads a board's toolchain on its first build), the ELF's stamp and the
    session's result said the identity computed before the build, toolchain=none: the next
    run built the same ELF again and did not reuse the result. Both name the toolchain the
    build compiled with. A real build and session, on a copy of the project's offline core
    without its toolchain package (the seed links it again)."""
    import shutil
    from pathlib import Path

    from tinysift.boards import load_board
    from tinysift.device.session import TrainParams
    from tinysift.stages.device import build_identity, cached_results, ensure_built, run_on_device
    from tools_needed import need_tools

    need_tools("arm-none-eabi-gcc", "qemu-system-arm", pio=True)
    scons = Path(__file__).resolve().parents[1] / "tools" / ".pio-core" / "packages" / \
        "tool-scons"
    if not (scons / "scons.py").is_file():
        pytest.skip("the offline PlatformIO core is not seeded: run tools/setup.sh")
    core = tmp_path / "core"
    shutil.copytree(scons, core / "packages" / "tool-scons", symlinks=True)  # no PyPI
    monkeypatch.setenv("TINYSIFT_PIO_CORE_DIR", str(core))
    for name in ("PLATFORMIO_BUILD_FLAGS", "PLATFORMIO_BUILD_SRC_FLAGS",
                 "PLATFORMIO_BUILD_UNFLAGS", "PLATFORMIO_BUILD_SRC_FILTER",
                 "PLATFORMIO_SRC_DIR", "PLATFORMIO_EXTRA_SCRIPTS"):
        monkeypatch.delenv(name, raising=False)
    run = tmp_path / "run"
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("device", ".tinysift.lock"))
    brd = load_board(BOARD)
    assert build_identity(run, brd).split("|")[-1] == "toolchain=none"
    params = TrainParams(epochs=1)
    res = run_on_device(run, BOARD, params=params, label="x")
    after = build_identity(run, brd)
    assert "toolchain=toolchain-gccarmnoneeabi@" in after  # the build seeded the core
    assert (run / "device" / f"firmware-{brd.pio_env}.stamp").read_text() == after
    assert res.build == after and cached_results(run, "x", params, BOARD) is not None
    elf = run / "device" / f"firmware-{brd.pio_env}.elf"
    built = elf.stat().st_mtime_ns
    assert ensure_built(run, brd) == elf and elf.stat().st_mtime_ns == built  # reused


def test_a_file_in_place_of_the_device_folder_is_refused_before_any_board(tmp_path):
    """`RUN/device` turned into a file (a copy gone wrong) ended `device run` in an
    unexpected FileExistsError (exit 1) once the board was set up, and `device flash` the
    same after its checks: one line naming the file and the fix, before any build or port,
    and the file is left as it was."""
    from tinysift.stages.device import TrainParams, flash, run_on_device

    run = exported_run(tmp_path / "run")
    (run / "device").write_text("mine")
    # a port that fails at once: the refusal must come before it is opened
    with pytest.raises(TinysiftError, match=r"device is a file, not a folder \(the run's "
                                            r"device folder\): move it out of the run"):
        run_on_device(run, BOARD, port=NO_PORT, params=TrainParams(epochs=1), timeout=2.0)
    with pytest.raises(TinysiftError, match=r"device is a file, not a folder"):
        flash(run, BOARD, upload=False)
    assert (run / "device").read_text() == "mine"


@pytest.mark.parametrize("left_out,named", [("@eval when=before", r"@eval when=before"),
                                            ("@epoch n=2 ", r"@epoch n=2")])
def test_a_device_that_leaves_out_an_eval_or_epoch_gives_no_complete_result(tmp_path, left_out,
                                                                          named):
    """A firmware that left out `@eval when=before` (no line lost on the link) got a
    complete result with no accuracy before, which the pipelines' tables then failed on
    (`None:.3f`); one that left out an `@epoch` a complete result missing that epoch's
    cycles and energy. Both are a firmware disagreeing on TSP/1: recorded and failed,
    naming the records and the fix; what arrived is kept."""
    from fake_device import FakeDevice
    from tinysift.device.session import IncompleteRecords
    from tinysift.stages.device import TrainParams, run_on_device

    class Forgetful(FakeDevice):
        def send(self, payload: str) -> None:
            if not payload.startswith(left_out):
                super().send(payload)

    run = exported_run(tmp_path / "run")
    dev = Forgetful(board=BOARD)
    try:
        with pytest.raises(IncompleteRecords, match=rf"did not send {named}.* no line was "
                                                    r"lost .*rebuild and flash"):
            run_on_device(run, BOARD, port=dev.url, params=TrainParams(epochs=3), timeout=2.0)
    finally:
        dev.close()
    failed = load(run / "device" / "results.json")
    assert failed.status == "failed" and failed.epochs  # what arrived is kept
    assert any("records_not_sent" in e for e in failed.events)


def test_a_run_records_the_plan_of_the_board_it_ran_on(digits_run, tmp_path):
    """A device run on another board than the export's recorded the export's plan (an
    an386 plan of more RAM than a netduinoplus2 has, for a run that fit it): the totals are
    those of the board it ran on, planned again, and named with it; the export's own board
    gets the export's plan; without a model to plan with, the export's plan is named as the
    export's board's."""
    import json
    import shutil

    from tinysift.boards import load_board
    from tinysift.stages.device import board_plan
    from tinysift.stages.export import memory_plan_for

    info = json.loads((digits_run / "export" / "export.json").read_text())
    own = load_board(info["board"])
    assert board_plan(digits_run, info, own) == {
        "ram_bytes": info["memory_plan"]["ram_total"],
        "flash_bytes": info["memory_plan"]["flash_total"], "board": own.name}
    other = next(name for name in ("qemu-netduinoplus2", "qemu-mps2-an500")
                 if name != own.name)
    planned = board_plan(digits_run, info, load_board(other))
    again = memory_plan_for(digits_run, other, info["test_samples"],
                            train_samples=info["train_samples"],
                            db_capacity=info["memory_plan"].get("db_capacity"))
    assert planned["board"] == other
    assert (planned["ram_bytes"], planned["flash_bytes"]) == (again["ram_total"],
                                                              again["flash_total"])
    bare = tmp_path / "bare"
    shutil.copytree(digits_run / "export", bare / "export")
    assert board_plan(bare, info, load_board(other))["board"] == own.name
