"""A stand-in for the ``joulescope`` package (pyjoulescope) and one JS110/JS220 on it, for
the host's energy tests: no Joulescope can exist on these machines.

It follows the driver's documented behaviour, from pyjoulescope 1.5.0 (the wheel on PyPI;
jetperch/pyjoulescope): ``joulescope/v1/device.py`` (Device: ``read``, ``start``/``stop``,
``stream_process_register``, ``_buffer_duration = 30``), ``joulescope/v1/stream_buffer.py``
(StreamBuffer.FIELDS and ``samples_get``), ``joulescope/v1/js110.py`` and ``js220.py``
(parameter handling, sampling rates), ``joulescope/parameters_v1.py`` (parameter names and
values), and ``joulescope/v0/driver.py`` with the docstring and source of the v0
``StreamBuffer.samples_get`` (``joulescope/v0/stream_buffer.pyx``). Each part below names
the behaviour it copies. What it does not model: USB, calibration, current ranging,
statistics, the JS110's downsampling, sample drops.

The board side is a :class:`MarkerWire`: the test raises and lowers the firmware's marker
on it as the firmware would (``ts_marker(1)`` / ``ts_marker(0)``); the device samples it, in
wall-clock time, into ``current_lsb`` and draws ``active_a`` while it is high, ``idle_a``
while it is low, at ``supply_v``.
"""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np

# parameters_v1.PARAMETERS: the names parameter_set accepts (PARAMETERS_DICT[name] raises
# KeyError for any other) and, where the driver enumerates them, the values (name_to_value
# raises KeyError for any other unless the parameter has a validator).
_OPTIONS = {
    "sensor_power": {"off", "on"},
    "source": {"off", "raw", "on", "pattern_usb", "pattern_control", "pattern_sensor"},
    "i_range": {"auto", "on", "10 A", "2 A", "180 mA", "18 mA", "1.8 mA", "180 µA", "18 µA",
                "off"},
    "v_range": {"15V", "5V", "low", "high"},
    "current_lsb": {"normal", "gpi0", "gpi1"},
    "voltage_lsb": {"normal", "gpi0", "gpi1"},
    "io_voltage": {"1.8V", "2.1V", "2.5V", "2.7V", "3.0V", "3.3V", "3.6V", "5.0V"},
    "trigger_source": {"auto", "gpi0", "gpi1"},
    "gpo0": {"0", "1"},
    "gpo1": {"0", "1"},
    "buffer_duration": None,  # validated by _buffer_duration_validator
    "reduction_frequency": None,
    "sampling_frequency": None,
}
_DEFAULTS = {"current_lsb": "normal", "voltage_lsb": "normal", "i_range": "off",
             "source": "off", "buffer_duration": 30}


def _buffer_duration_validator(x) -> int:
    """parameters_v1._buffer_duration_validator: whole seconds, rounded."""
    x = float(x)
    if x < 0:
        raise ValueError("too small")
    return int(x + 0.5001)


# v1/stream_buffer.py FIELDS: the samples_get fields and their units. current_lsb is the
# GPI0 buffer ('gpi0', u1), voltage_lsb GPI1. There is no "in0": that is only the name the
# Joulescope UI shows for the signal.
_FIELDS = {"current": "A", "voltage": "V", "power": "W", "current_range": "",
           "current_lsb": "", "voltage_lsb": ""}


class MarkerWire:
    """The firmware's marker pin wired to the Joulescope's IN0/GPI0: its level over time."""

    def __init__(self, high: bool = False):
        self._times = [-np.inf]
        self._levels = [bool(high)]
        self._lock = threading.Lock()

    def set(self, high: bool) -> float:
        """Drive the pin; returns the time.monotonic() of the edge."""
        with self._lock:
            now = time.monotonic()
            self._times.append(now)
            self._levels.append(bool(high))
        return now

    def level(self, times: np.ndarray) -> np.ndarray:
        with self._lock:
            edge_t, lv = np.asarray(self._times), np.asarray(self._levels)
        return lv[np.searchsorted(edge_t, times, side="right") - 1]


class _StreamBuffer:
    """What Device.read needs of the stream buffer: ``len()`` is its length in samples
    (v1 StreamBuffer._update: ``int(buffer_duration * sampling_frequency)``)."""

    def __init__(self, duration_s: float, fs: float):
        self.length = int(duration_s * fs)

    def __len__(self) -> int:
        return self.length


class FakeJoulescope:
    """One Joulescope, as ``joulescope.scan_require_one()`` returns it.

    model: "js220" (v1 backend only) or "js110". backend: "v1" (the default since
    pyjoulescope 1.0: JOULESCOPE_BACKEND unset) or "v0" (JS110 only).
    startup_s: wall seconds between ``read()`` and the first samples (v1 Device.read
    docstring: "Missing samples usually occur when the device first starts"; streaming
    begins when the first USB data arrives, after ``start`` publishes ``ctrl``).
    sampling_frequency: the output rate; None is the device's default (DeviceJs220:
    1 MHz, DeviceJs110: 2 MHz). time_scale: wall seconds per captured second (1 = real
    time; a test of a long capture shrinks it, the samples keep their device times).
    """

    def __init__(self, marker: MarkerWire, model: str = "js220", backend: str = "v1",
                 startup_s: float = 0.05, sampling_frequency: float | None = None,
                 time_scale: float = 1.0, idle_a: float = 1e-3, active_a: float = 10e-3,
                 supply_v: float = 3.3, seed: int = 0):
        if backend == "v0" and model != "js110":
            raise ValueError("the v0 backend drives only the JS110")
        self.marker, self.model, self.backend = marker, model, backend
        self.config = None  # scan_require_one(config=...)
        self.startup_s, self.time_scale = startup_s, time_scale
        self.idle_a, self.active_a, self.supply_v = idle_a, active_a, supply_v
        self.fs = float(sampling_frequency or (1_000_000 if model == "js220" else 2_000_000))
        self._rng = np.random.default_rng(seed)
        self.parameters = dict(_DEFAULTS)
        self._queued: list[tuple[str, object]] = []  # v1: parameter_set before open()
        self.is_open = False
        self.stream_buffer = None
        self._objs: list = []
        self._streaming = False
        self._stop = threading.Event()
        self.capture_start: float | None = None  # monotonic time of the first sample
        self.reads: list[dict] = []

    # -- parameters -----------------------------------------------------------------------
    def parameter_set(self, name, value) -> None:
        """Device.parameter_set (v1 js110.py/js220.py, v0 driver.py): KeyError for an unknown
        name or value; the v1 backend queues a value set before open() and applies it in
        open() before it builds the stream buffer; the v0 backend keeps it and builds the
        buffer from it in open() (_stream_buffer_open)."""
        if name not in _OPTIONS:
            raise KeyError(name)
        if name == "buffer_duration":
            value = _buffer_duration_validator(value)
        elif _OPTIONS[name] is not None and str(value) not in _OPTIONS[name]:
            raise KeyError(f"value {value} not allowed for parameter {name}")
        self.parameters[name] = value
        if name == "buffer_duration" and self.is_open and self.backend == "v1":
            # v1 Device.buffer_duration setter: the stream buffer is rebuilt at once; the v0
            # backend only uses it at the next open()
            self.stream_buffer = _StreamBuffer(value, self.fs)

    @property
    def buffer_duration(self) -> float:
        """v1 Device.buffer_duration (30 s unless set)."""
        return self.parameters["buffer_duration"]

    @property
    def output_sampling_frequency(self) -> float:
        return self.fs

    @property
    def sampling_frequency(self) -> float:
        return self.fs

    # -- open / close ---------------------------------------------------------------------
    def open(self, event_callback_fn=None, mode=None, timeout=None) -> None:
        """Device.open: the stream buffer is allocated here from buffer_duration."""
        self.is_open = True
        self.stream_buffer = _StreamBuffer(self.parameters["buffer_duration"], self.fs)

    def close(self, timeout=None) -> None:
        """Device.close: stops streaming (a read() in progress returns), frees the buffer."""
        self.stop()
        self.is_open = False
        self.stream_buffer = None

    @property
    def is_streaming(self) -> bool:
        return self._streaming

    def stop(self) -> bool:
        """Device.stop: always safe to call; ends the streaming session."""
        was = self._streaming
        self._streaming = False
        self._stop.set()
        for obj in list(self._objs):
            if getattr(obj, "driver_active", False) and callable(getattr(obj, "stop", None)):
                obj.stop()
        return was

    # -- stream processing ----------------------------------------------------------------
    def stream_process_register(self, obj) -> None:
        """Device.stream_process_register: obj.driver_active = True; the driver calls its
        optional start(stream_buffer) when streaming starts, stream_notify(stream_buffer)
        whenever new data arrives (True stops streaming) and its optional stop()."""
        obj.driver_active = True
        self._objs.append(obj)

    def stream_process_unregister(self, obj) -> None:
        """Device.stream_process_unregister: obj.driver_active = False."""
        obj.driver_active = False

    def _call(self, method: str) -> bool:
        stop = False
        for obj in list(self._objs):
            fn = getattr(obj, method, None)
            if obj.driver_active and callable(fn):
                stop |= bool(fn(self.stream_buffer))
        return stop

    # -- read -----------------------------------------------------------------------------
    def read(self, duration=None, contiguous_duration=None, out_format=None, fields=None):
        """Device.read: refuses a duration the stream buffer cannot hold (ValueError
        'contiguous_duration X > Y max seconds'), streams until the duration is captured
        (blocking), then returns the last ``duration`` of samples in ``out_format``."""
        self.reads.append({"duration": duration, "contiguous_duration": contiguous_duration,
                           "out_format": out_format, "fields": fields})
        valid = ["calibrated", "samples_get", None] + (["raw"] if self.backend == "v0" else [])
        if out_format not in valid:
            raise ValueError(f"Invalid out_format {out_format}")
        if duration is None and contiguous_duration is None:
            raise ValueError("Must specify duration or contiguous_duration")
        duration_max = len(self.stream_buffer) / self.fs
        if contiguous_duration is not None and contiguous_duration > duration_max:
            raise ValueError(f"contiguous_duration {contiguous_duration} > {duration_max} max "
                             "seconds")
        if duration is not None and duration > duration_max:
            raise ValueError(f"duration {duration} > {duration_max} max seconds")
        length_s = contiguous_duration if contiguous_duration is not None else duration

        # Device.start: streaming starts; the first samples come after the start-up delay
        self._stop.clear()
        self._streaming = True
        self._call("start")
        if self._stop.wait(self.startup_s):
            return self._result(0, out_format, fields)
        self.capture_start = t0 = time.monotonic()
        end = t0 + length_s * self.time_scale
        stop_requested = False
        while not stop_requested:
            stop_requested = self._call("stream_notify")  # Device._on_stream, per USB batch
            if time.monotonic() >= end or self._stop.wait(min(0.01, max(0.0, end -
                                                                        time.monotonic()))):
                break
        elapsed = min(time.monotonic(), end) - t0
        self.stop()
        n = int(round(elapsed / self.time_scale * self.fs))
        return self._result(n, out_format, fields)

    def _signals(self, n: int) -> dict[str, np.ndarray]:
        t_dev = np.arange(n) / self.fs
        high = self.marker.level(self.capture_start + t_dev * self.time_scale) \
            if n else np.zeros(0, bool)
        current = np.where(high, self.active_a, self.idle_a).astype(np.float32)
        voltage = np.full(n, self.supply_v, dtype=np.float32)
        gpi0 = high.astype(np.uint8)
        if self.model == "js110" and self.parameters["current_lsb"] != "gpi0":
            # JS110: current_lsb is the current's least-significant bit unless the extio
            # setting current_lsb routes a general-purpose input into it
            # (v0 StreamBuffer.samples_get: "current_lsb: The current LSB, which can be
            # assign to a general purpose input"; parameters_v1 current_lsb normal|gpi0|gpi1)
            lsb = self._rng.integers(0, 2, n, dtype=np.uint8)
        else:
            # v1 backend, JS220: current_lsb is the GPI0 stream (StreamBuffer FIELDS
            # 'current_lsb': (5, 0), the buffer named 'gpi0')
            lsb = gpi0
        return {"current": current, "voltage": voltage, "power": current * voltage,
                "current_range": np.full(n, 3, np.uint8), "current_lsb": lsb,
                "voltage_lsb": np.zeros(n, np.uint8)}

    def _result(self, n: int, out_format, fields):
        sig = self._signals(n)
        if out_format in ("calibrated", None):
            # Device.read: "The Nx2 np.ndarray(float32) with columns current and voltage"
            return np.column_stack([sig["current"], sig["voltage"]])
        return self.samples_get(sig, n, fields)

    def samples_get(self, sig, n, fields):
        """StreamBuffer.samples_get: {'time': {...}, 'signals': {field: {'value', 'units'}}};
        fields None = all six; a single field name returns just its value. An unknown field
        is skipped by the v1 backend ('except KeyError: pass  # cannot include this
        signal') and raises ValueError('Unsupported field ...') in the v0 backend."""
        single = isinstance(fields, str)
        if fields is None:
            fields = list(_FIELDS)
        elif single:
            fields = [fields]
        result = {
            "time": {
                "range": {"value": [0.0, n / self.fs], "units": "s"},
                "delta": {"value": n / self.fs, "units": "s"},
                "sample_id_range": {"value": [0, n], "units": "samples"},
                "samples": {"value": n, "units": "samples"},
                "input_sampling_frequency": {"value": 2_000_000, "units": "Hz"},
                "output_sampling_frequency": {"value": self.fs, "units": "Hz"},
                "sampling_frequency": {"value": self.fs, "units": "Hz"},
            },
            "signals": {},
        }
        for field in fields:
            if field not in _FIELDS:
                if self.backend == "v0":
                    raise ValueError(f"Unsupported field {field}")
                continue
            result["signals"][field] = {"value": sig[field], "units": _FIELDS[field]}
        if single:
            return result["signals"][fields[0]]["value"]
        return result


def install(monkeypatch, device: FakeJoulescope) -> types.ModuleType:
    """Make ``import joulescope`` give a module whose ``scan_require_one`` finds ``device``
    (joulescope/__init__.py exports scan_require_one from the selected backend; it raises
    RuntimeError('no devices found') when none is attached)."""
    module = types.ModuleType("joulescope")

    def scan_require_one(name=None, config=None):
        device.config = config
        return device

    module.scan_require_one = scan_require_one
    module.__version__ = "1.5.0"
    monkeypatch.setitem(sys.modules, "joulescope", module)
    return module
