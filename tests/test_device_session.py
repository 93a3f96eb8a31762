"""tinysift.device.session's own rules, checked against docs/protocol.md: the `train`
parameters' ranges and windows, the short spans that name lost records, and a session with
tests/fake_device.py (a real socket peer speaking TSP/1) for what the fault table does not
reach: the records of a finished train that must all be there, the clock check's 1 %, the
`db use` answer and the results folded from the records."""

from __future__ import annotations

import re

import pytest

from tinysift.errors import TinysiftError

BOARD = "qemu-mps2-an386"


# ---- TrainParams: the firmware's ranges (docs/protocol.md, `train`) -------------------------

@pytest.mark.parametrize(("fields", "named"), [
    ({"epochs": -1}, "epochs -1 (0..10000)"),
    ({"epochs": 10001}, "epochs 10001 (0..10000)"),
    ({"steps": 0}, "steps 0 (1..1000000)"),
    ({"steps": 1_000_001}, "steps 1000001 (1..1000000)"),
    ({"batch": 0}, "batch 0 (1..65535)"),
    ({"batch": 65536}, "batch 65536 (1..65535)"),
    ({"lr": 0.0}, "lr 0 (in (0, 10])"),
    ({"lr": 10.5}, "lr 10.5 (in (0, 10])"),
    ({"momentum": -0.1}, "momentum -0.1 (in [0, 1))"),
    ({"momentum": 1.0}, "momentum 1 (in [0, 1))"),
    ({"seed": -1}, "seed -1 (a uint32)"),
    ({"seed": 2**32}, "seed 4294967296 (a uint32)"),
    ({"init": "random"}, "init 'random' (one of export, zero)"),
    ({"update": "all"}, "update 'all' (one of head, last-block, bias)"),
    ({"schedule": "linear"}, "schedule 'linear' (one of constant, cosine, step)"),
])
def test_a_value_just_outside_the_firmware_s_range_is_refused(fields: dict, named: str) -> None:
    """Each `train` field one step past its documented range (epochs 0..10000, steps
    1..1000000, batch 1..65535, lr in (0, 10], momentum in [0, 1), seed a uint32, the named
    modes) is refused before anything starts, naming the value and the range."""
    from tinysift.device.session import TrainParams

    with pytest.raises(TinysiftError, match=r"the device cannot train with " + _re(named)):
        TrainParams(**fields).validate()


@pytest.mark.parametrize("fields", [
    {"epochs": 0}, {"epochs": 10000}, {"steps": 1}, {"steps": 1_000_000},
    {"batch": 1}, {"batch": 65535}, {"lr": 10.0}, {"lr": 1e-6}, {"momentum": 0.0},
    {"momentum": 0.999}, {"seed": 0}, {"seed": 2**32 - 1}, {"init": "zero"},
    {"update": "head"}, {"update": "last-block"}, {"update": "bias"},
    {"schedule": "constant"}, {"schedule": "cosine"}, {"schedule": "step"},
])
def test_the_edges_of_the_firmware_s_ranges_are_accepted(fields: dict) -> None:
    """The documented ranges' own edges (and every named mode) are values the firmware
    takes: refusing them would make a valid training impossible from the host."""
    from tinysift.device.session import TrainParams

    TrainParams(**fields).validate()


@pytest.mark.parametrize(("samples", "batch", "steps", "windows"), [
    (50, 16, 4, 1),    # ceil(50 / 16) = 4 steps a window: exactly one
    (50, 16, 5, 2),    # one step into the second window
    (48, 16, 3, 1),    # 48 / 16 = 3 steps a window, no partial batch
    (48, 16, 7, 3),    # 3 + 3 + 1
    (10, 32, 3, 3),    # a set smaller than a batch: one step a window
])
def test_a_steps_train_sends_one_epoch_record_per_window(samples: int, batch: int,
                                                         steps: int, windows: int) -> None:
    """docs/protocol.md: with `steps=` the device sends an `@epoch` after every window of
    ceil(N / batch) steps, the last one may be shorter; with `epochs=` one per epoch."""
    from tinysift.device.session import TrainParams

    assert TrainParams(steps=steps, batch=batch).windows(samples) == windows
    assert TrainParams(epochs=7, batch=batch).windows(samples) == 7


@pytest.mark.parametrize(("numbers", "text"), [
    ([1, 2, 3, 7], "1-3,7"), ([5], "5"), ([2, 4], "2,4"), ([10, 11], "10-11"),
    ([1, 3, 4, 5, 9, 10], "1,3-5,9-10"), ([], ""),
])
def test_lost_records_are_named_as_short_spans(numbers: list[int], text: str) -> None:
    """A run of lost epochs or classes is one item `a-b` in the message, lone ones stay
    single numbers."""
    from tinysift.device.session import _spans

    assert _spans(numbers) == text


def _re(text: str) -> str:
    return re.escape(text)


# ---- a session against tests/fake_device.py ----------------------------------------------

def _streamed(n: int = 12):
    """``n`` int8 samples of the fake's 64 bytes, labels alternating 0, 1."""
    import numpy as np

    rng = np.random.default_rng(5)
    return rng.integers(-128, 128, (n, 64)).astype(np.int8), np.arange(n) % 2


def _session(tmp_path, dev, epochs: int = 3, **kwargs):
    """One `device run` (tinysift.stages.device.run_on_device) against ``dev``; returns the
    results, or the DeviceError and the results.json it left."""
    from fake_device import fake_run
    from tinysift.device.results import DeviceResults
    from tinysift.errors import DeviceError
    from tinysift.stages.device import TrainParams, run_on_device

    run = fake_run(tmp_path / "run", samples=20, classes=2, test=20)
    try:
        return run_on_device(run, kwargs.pop("board", BOARD), port=dev.url,
                             params=TrainParams(epochs=epochs), timeout=2.0, **kwargs), None
    except DeviceError as exc:
        return DeviceResults.load(run / "device" / "results.json"), exc
    finally:
        dev.close()


def test_the_results_hold_what_info_and_train_reported(tmp_path):
    """The fake's `@info flash=50000 ram_static=20000` are the firmware's sizes; a train on
    12 streamed samples of a 20-sample test set gets `@eval when=after acc=0.6 int8_acc=0.6`
    and `@class` rows with their int8 counts (6 and 6 right of 10 each); the train's own
    `@mem` (its stack high-water mark, deeper than `info`'s) is kept."""
    from fake_device import FakeDevice

    class Deeper(FakeDevice):
        def send(self, payload: str) -> None:
            if payload.startswith("@mem") and self.trained_on:  # the train's, not info's
                payload = payload.replace("stack_hwm=900", "stack_hwm=1200")
            super().send(payload)

    res, error = _session(tmp_path, Deeper(), train_set=_streamed())
    assert error is None, error
    assert (res.flash_bytes, res.ram_bytes) == (50000, 20000)
    assert res.test_acc_before == pytest.approx(0.5) and res.test_samples == 20
    assert res.test_acc_after == pytest.approx(0.6)
    assert res.test_int8_acc_after == pytest.approx(0.6)
    assert res.per_class["after"] == [
        {"class": k, "correct": 6, "int8_correct": 6, "total": 10} for k in (0, 1)]
    assert res.memory == {"stack_hwm": 1200, "stack": 8192, "arena": 3072, "workspace": 11000}
    assert res.samples == 12 and res.status == "complete" and res.finished


def test_db_use_both_trains_on_the_flash_set_then_the_streamed_one(tmp_path):
    """`db_use="both"`: the session sends `db use both`, checks the answer counts the 20
    compiled-in samples plus the 12 streamed, and every `@epoch samples=` is 32."""
    from fake_device import FakeDevice

    dev = FakeDevice()
    res, error = _session(tmp_path, dev, train_set=_streamed(), db_use="both")
    assert error is None, error
    assert "db use both" in dev.received and dev.trained_on == [32]
    assert res.samples == 32 and res.complete


@pytest.mark.parametrize(("fault", "said"), [
    # the RAM set halves between `db load` (the first `db` command) and `db use ram`
    (("cmd:db", "lose_samples", 2), r"after `db use ram` .*instead of 12 samples from ram"),
    # `db use` answered right, then the device trains on its compiled-in 20
    (("cmd:train", "flash_set", 1), r"trained on 20 samples per epoch, the session set up "
                                    r"12"),
])
def test_a_device_on_another_set_than_the_session_s_is_stopped(tmp_path, fault, said):
    """The device's own word on the set it uses (`@db` of `db use`, `@epoch samples=`)
    must be the 12 samples the session loaded: a result on another set is not this
    session's."""
    from fake_device import FakeDevice, Fault
    from tinysift.device.session import WrongTrainingSet

    res, error = _session(tmp_path, FakeDevice([Fault(*fault)]), train_set=_streamed())
    assert isinstance(error, WrongTrainingSet) and re.search(said, str(error)), error
    assert res.status == "failed"


@pytest.mark.parametrize(("hz", "recorded"), [(25_250_000, False), (24_750_000, False),
                                              (25_260_000, True), (24_740_000, True)])
def test_a_counter_rate_more_than_1_percent_off_is_recorded_once(tmp_path, hz, recorded):
    """The MPS2 profile counts 25 MHz: a device at exactly 1 % off (250 kHz) is within the
    rule and leaves no event; 260 kHz off is recorded, once, although both `@boot` and
    `@info` report it; the device's rate is used either way."""
    from fake_device import FakeDevice

    res, error = _session(tmp_path, FakeDevice(hz=hz), epochs=1)
    assert error is None, error
    events = [e for e in res.events if "clock_differs" in e]
    want = [{"clock_differs": {"device_hz": hz, "profile_hz": 25_000_000}}]
    assert events == (want if recorded else []) and res.counter_hz == hz


def test_a_counter_rate_of_zero_leaves_the_profile_s(tmp_path):
    """`hz=0` is no rate (docs: a rate that is not reported leaves the profile's): the
    fake's 2,500,000-count epoch is 0.1 s at the profile's 25 MHz."""
    from fake_device import FakeDevice

    res, error = _session(tmp_path, FakeDevice(hz=0), epochs=1)
    assert error is None, error
    assert res.counter_hz == 25_000_000 and res.epochs[0].seconds == pytest.approx(0.1)
    assert not any("clock_differs" in e for e in res.events)


def test_a_firmware_that_does_not_name_its_board_is_not_refused(tmp_path):
    """A `@boot` without `board=` cannot be checked (check_board): the session goes on."""
    from fake_device import FakeDevice

    class Unnamed(FakeDevice):
        def send(self, payload: str) -> None:
            super().send(payload.replace(f" board={BOARD}", ""))

    res, error = _session(tmp_path, Unnamed(), epochs=1)
    assert error is None, error
    assert res.complete and "board" not in res.firmware


def test_the_clock_warning_of_an_unnamed_counter_speaks_of_the_core_clock():
    """A result whose counter was never named (`counter: null`) gets the core-clock
    warning, not one about a "None counter"."""
    from tinysift.device.results import DeviceResults
    from tinysift.device.session import clock_warning

    res = DeviceResults(board=BOARD, clock_hz=25_000_000, params={}, energy_model={},
                        started="", counter=None,
                        events=[{"clock_differs": {"device_hz": 50_000_000,
                                                   "profile_hz": 25_000_000}}])
    warning = clock_warning(res)
    assert warning.startswith("the firmware reports its core clock at 50 MHz, the board "
                              "profile says 25 MHz (2.00x)"), warning
    assert "None" not in warning


@pytest.mark.parametrize(("changed", "named"), [
    # a phase left out: no accuracy or epoch lost, recorded and the result stands
    ({"@phase name=evaluation": None}, "@phase name=evaluation"),
    # class 1's `total` one short: the rows no longer add up to the @eval's 20
    ({"@class when=after class=1": "total=9"}, "@class when=after (totals 19, @eval total 20)"),
])
def test_a_record_the_device_left_out_or_miscounted_is_recorded(tmp_path, changed, named):
    """Nothing lost on the link, yet the train's records are not all there (a firmware
    disagreeing on TSP/1): what is missing is named in `records_not_sent`; without an
    @eval or @epoch among it the result is complete with the records sent."""
    from fake_device import FakeDevice

    class Odd(FakeDevice):
        def send(self, payload: str) -> None:
            for start, total in changed.items():
                if payload.startswith(start):
                    if total is None:
                        return
                    payload = re.sub(r"total=\d+", total, payload)
            super().send(payload)

    res, error = _session(tmp_path, Odd())
    assert error is None, error
    assert res.complete and {"records_not_sent": [named]} in res.events, res.events


def test_records_lost_twice_are_merged_from_both_copies(tmp_path):
    """Epoch 2 arrives corrupt, so `results` is asked; the repeat loses other lines (both
    @eval, class 1 after, the backward phase). A record either copy holds is kept: all three
    epochs, both accuracies, the int8 one, the test set's size, every phase and class
    row, and nothing is left missing."""
    from fake_device import FakeDevice

    class Lossy(FakeDevice):
        def send(self, payload: str) -> None:
            first = not self.last_train  # a train in progress, `results` not yet asked
            lose = ("@epoch n=2 ",) if first else (
                "@eval ", "@class when=after class=1 ", "@phase name=backward ")
            if payload.startswith(lose) and self.sent.count(payload) < 2:
                self._corrupt_next = True
            super().send(payload)

    dev = Lossy()
    res, error = _session(tmp_path, dev, train_set=_streamed())
    assert error is None, error
    assert [e.epoch for e in res.epochs] == [1, 2, 3] and res.samples == 12
    assert res.test_acc_before == pytest.approx(0.5)
    assert res.test_acc_after == res.test_int8_acc_after == pytest.approx(0.6)
    assert res.test_samples == 20
    assert set(res.phases) == {"features", "head_forward", "backward", "update", "evaluation"}
    assert [row["class"] for row in res.per_class["after"]] == [0, 1]
    (event,) = [e for e in res.events if "records_repeated" in e]
    assert event == {"records_repeated": ["@epoch n=2"], "still_missing": []}
    assert res.link["dropped_lines"] == 5 and res.complete


def test_a_data_line_the_device_found_too_long_sends_the_load_again(tmp_path):
    """The device ends a `db load` at a data line it could not read with 102 (too long) as
    with 103 (bad CRC) and drops the rest: the whole load is sent once more."""
    from fake_device import FakeDevice

    class Short(FakeDevice):
        cut = False

        def _data_line(self, payload: str) -> None:
            if self.loading and self.loaded == 4 and not self.cut:
                self.cut = True
                self._end_load(102, "too_long")
                return
            super()._data_line(payload)

    dev = Short()
    res, error = _session(tmp_path, dev, train_set=_streamed())
    assert error is None, error
    assert dev.received.count("db load 12") == 2 and dev.trained_on == [12]
    assert any("db_load_sent_again" in e for e in res.events), res.events


def test_a_train_the_device_refuses_keeps_its_error_in_the_results(tmp_path):
    """`@err code=6 msg=engine:param` and `@ready cmd=train status=6` (a diverged head):
    the session fails and results.json keeps the device's own words among its events."""
    from fake_device import FakeDevice
    from tinysift.device.link import DeviceRefused

    class Diverging(FakeDevice):
        def cmd_train(self, args) -> None:
            self.send("@phase name=features cycles=1000000")
            self.send("@err code=6 msg=engine:param")
            self.send("@ready cmd=train status=6")

    res, error = _session(tmp_path, Diverging())
    assert isinstance(error, DeviceRefused) and error.status == 6, error
    assert {"error": {"code": "6", "msg": "engine:param"}} in res.events, res.events
    assert res.status == "failed"


def test_a_capture_of_another_window_count_measures_nothing():
    """Two epochs are four marker windows (features, epoch 1, epoch 2, evaluation): a
    capture of three cannot be matched to the phases, so every estimate stays and an
    event says how many came."""
    from tinysift.device.energy import Window
    from tinysift.device.results import DeviceResults, EpochResult, PhaseResult
    from tinysift.device.session import _apply_measurements

    doc = DeviceResults(board="nucleo_f411re", clock_hz=100_000_000, params={},
                        energy_model={}, started="",
                        phases={"features": PhaseResult(10**6, 0.01, 0.4),
                                "evaluation": PhaseResult(10**6, 0.01, 0.4)},
                        epochs=[EpochResult(n, 1.0, 0.5, 10**6, 0.01, 0.4) for n in (1, 2)])
    _apply_measurements(doc, [Window(0.0, 0.01, 0.5, 15.0)] * 3)
    assert {"monitor": "3 marker windows, expected 4; energy stays estimated"} in doc.events
    assert [ep.energy_kind for ep in doc.epochs] == ["estimated", "estimated"]
    assert {p.energy_kind for p in doc.phases.values()} == {"estimated"}


def test_results_are_written_as_records_stream_and_when_the_link_goes_quiet(tmp_path):
    """results.json is rewritten at most once a second while records arrive (the first
    record is written at once: a killed host leaves a readable partial file), and the
    rest whenever the link goes quiet (`flush`, the link's on_idle)."""
    from tinysift.boards import load_board
    from tinysift.device.protocol import parse_record
    from tinysift.device.results import DeviceResults
    from tinysift.device.session import DeviceSession, TrainParams

    session = DeviceSession(load_board(BOARD), tmp_path, TrainParams())
    try:
        for n in (1, 2):
            session.absorb(parse_record(f"@epoch n={n} loss=0.5 train_acc=0.5 correct=5 "
                                        "samples=10 cycles=100"))
        # the second record came within SAVE_INTERVAL of the first write
        assert len(DeviceResults.load(tmp_path / "results.json").epochs) == 1
        session.flush()
        assert len(DeviceResults.load(tmp_path / "results.json").epochs) == 2
        saves = session.saves
        session.flush()  # nothing new: not written again
        assert session.saves == saves
    finally:
        session.log.close()


@pytest.mark.parametrize(("device", "said"), [
    # 12 samples for a firmware holding 8: refused before `db load`, by how much
    ({"capacity": 8}, r"holds 8 samples in RAM, the set to load has 12 \(over by 4\): export "
                      r"with `--db-capacity 12`"),
    # a firmware built for 32-byte samples, the set's are 64
    ({"sample_bytes": 32}, r"takes samples of 32 bytes, the set to load has 64: flash this "
                           r"run's export first"),
])
def test_a_set_the_firmware_cannot_hold_is_refused_before_it_is_sent(tmp_path, device, said):
    """The firmware's `@info db_capacity` and `sample_bytes` (a board flashed with another
    export) are checked before the set is streamed: a refusal after the whole stream would
    cost the stream."""
    from fake_device import FakeDevice

    dev = FakeDevice(**device)
    res, error = _session(tmp_path, dev, train_set=_streamed())
    assert error is not None and re.search(said, str(error)), error
    assert not any(line.startswith("db load") for line in dev.received)
    assert res.status == "failed"


def test_a_set_of_exactly_the_firmware_s_capacity_is_loaded(tmp_path):
    """`1 <= count <= db_capacity` (docs/protocol.md, `db load`): 12 samples fill a
    12-sample buffer and train."""
    from fake_device import FakeDevice

    dev = FakeDevice(capacity=12)
    res, error = _session(tmp_path, dev, train_set=_streamed())
    assert error is None, error
    assert dev.trained_on == [12] and res.complete


def test_a_db_use_answer_naming_another_source_stops_the_session(tmp_path):
    """`db use ram` answered `@db loaded=12 source=flash` (the right count, the wrong set):
    the device would train on another set than the session's; no `train` is sent."""
    from fake_device import FakeDevice
    from tinysift.device.session import WrongTrainingSet

    class Confused(FakeDevice):
        def send(self, payload: str) -> None:
            super().send(payload.replace("@db loaded=12 source=ram", "@db loaded=12 "
                                                                     "source=flash"))

    dev = Confused()
    res, error = _session(tmp_path, dev, train_set=_streamed())
    assert isinstance(error, WrongTrainingSet) and "after `db use ram`" in str(error), error
    assert not any(line.startswith("train") for line in dev.received)


def test_a_reset_records_how_many_records_came_before_it(tmp_path):
    """A reset after `@epoch n=2` (--on-reset stop): the event names the command and the
    three records of it that arrived first (`@phase name=features`, `@epoch` 1 and 2)."""
    from fake_device import FakeDevice, Fault

    res, error = _session(tmp_path, FakeDevice([Fault("train:epoch:2", "reset")]),
                          on_reset="stop")
    assert error is not None and res.status == "device-reset"
    (event,) = [e for e in res.events if "device_reset" in e]
    assert event["records_before_reset"] == 3 and event["during"].startswith("train ")
