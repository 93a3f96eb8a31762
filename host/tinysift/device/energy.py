"""Energy: always an estimate from the board profile; measured when a power monitor is on.

Estimate: ``E = V * I_active * cycles / f`` per phase (labelled ``estimated``, with the
counter the cycles came from). Measured: a power monitor samples current and voltage
together with a GPIO *marker* the firmware raises around every measurement window (MLPerf
Tiny's energy mode: no serial traffic inside a window); :func:`integrate_windows` integrates
power between marker edges. Windows map to the firmware's records in order.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from tinysift.boards import Board
from tinysift.device.results import PhaseResult
from tinysift.errors import DeviceError


def estimate(board: Board, cycles: int, hz: int | None = None) -> PhaseResult:
    """One phase's time and estimated energy from its count: the count over the counter's
    rate ``hz`` (the device's report; default: the profile's :attr:`Board.counter_rate`)."""
    return PhaseResult(int(cycles), board.seconds(cycles, hz), board.energy_mj(cycles, hz),
                       "estimated")


@dataclass(frozen=True)
class Window:
    """One marker-high interval."""

    start_s: float
    duration_s: float
    energy_mj: float
    mean_current_ma: float
    #: False when the capture began after the marker rose (high at its first sample) or ended
    #: before it fell, or samples inside it were dropped (the driver fills them with NaN):
    #: only part of the window was integrated, so its energy, duration and mean current are
    #: not the phase's and must not be reported as measured.
    complete: bool = True


def integrate_windows(t: np.ndarray, current_a: np.ndarray, voltage_v: np.ndarray,
                      marker: np.ndarray, threshold: float = 0.5) -> list[Window]:
    """Integrate power (trapezoids) over every interval where ``marker`` is high.

    Every marker-high interval gives one :class:`Window`, in order. One already high at the
    first sample (the capture began inside it), still high at the last (it ended inside
    it) or holding dropped samples (NaN current or voltage, integrated as zero) is returned
    with ``complete=False``: it keeps its place in the sequence, so the windows still line
    up with the firmware's phases, but only part of it was seen.

    Parameters
    ----------
    t : sample times in seconds (increasing)
    current_a, voltage_v : per-sample current (A) and voltage (V)
    marker : the GPIO input sampled with them (0/1 or volts; high above ``threshold``)
    """
    t = np.asarray(t, np.float64)
    i = np.asarray(current_a, np.float64)
    v = np.asarray(voltage_v, np.float64)
    high = np.asarray(marker, np.float64) > threshold
    # checked before V x I, which would broadcast a length-1 current or voltage over all
    if not (t.shape == i.shape == v.shape == high.shape and t.ndim == 1):
        raise ValueError("t, current, voltage and marker must be 1-D and of the same length, "
                         f"got shapes {t.shape}, {i.shape}, {v.shape}, {high.shape}")
    p = i * v
    seen = np.isfinite(p)
    p, i = np.where(seen, p, 0.0), np.where(seen, i, 0.0)
    if len(t) == 0:
        return []
    edges = np.diff(high.astype(np.int8))
    starts = list(np.flatnonzero(edges == 1) + 1)
    ends = list(np.flatnonzero(edges == -1) + 1)
    if high[0]:
        starts.insert(0, 0)
    if high[-1]:
        ends.append(len(t))
    windows = []
    for s, e in zip(starts, ends, strict=True):
        seg_t, seg_p = t[s:e], p[s:e]
        energy = float(np.trapezoid(seg_p, seg_t)) if len(seg_t) > 1 else 0.0
        dur = float(seg_t[-1] - seg_t[0]) if len(seg_t) > 1 else 0.0
        mean_i = float(np.mean(i[s:e])) * 1e3
        # seen from the capture's first or to its last sample, or with samples dropped
        cut = s == 0 or e == len(t) or not seen[s:e].all()
        windows.append(Window(float(seg_t[0]), dur, energy * 1e3, mean_i, complete=not cut))
    return windows


class PowerMonitor(ABC):
    """A power monitor wired to the board's supply and the firmware's marker GPIO."""

    name = "monitor"
    #: the last capture reached its longest length before ``stop()``: its windows are the
    #: command's first ones, the rest were not seen
    ended_early: bool = False

    @abstractmethod
    def start(self, longest_s: float | None = None) -> None:
        """Begin capturing (before the command whose windows are measured). ``longest_s``:
        the longest the command may last (a session's deadline for `train`, from the
        board's clock and the model's expected cycles), for a monitor whose capture has a
        fixed length; None: the monitor's own length."""

    @abstractmethod
    def stop(self) -> list[Window]:
        """End the capture and return the marker windows, in order."""

    def close(self) -> None:  # noqa: B027 - a monitor that holds nothing has nothing to do
        """Release the monitor, ending a capture in progress; safe at any time, more than
        once. A session calls it however it ends: one that fails between ``start()`` and
        ``stop()`` must not leave the instrument open and capturing."""


class _StreamControl:
    """A stream process object for ``Device.stream_process_register`` (pyjoulescope's
    ``StreamProcessApi``): the driver calls ``stream_notify(stream_buffer)`` from its USB
    thread whenever new samples arrive; returning True stops the streaming, and a ``read``
    in progress then returns what it captured. ``arrived``: samples came; ``finish``: the
    measured command is over."""

    def __init__(self) -> None:
        import threading

        self.arrived = threading.Event()
        self.finish = threading.Event()

    def stream_notify(self, stream_buffer) -> bool:
        self.arrived.set()
        return self.finish.is_set()


class JoulescopeMonitor(PowerMonitor):
    """Joulescope JS110/JS220 (``pip install tinysift[joulescope]``).

    Wiring: the Joulescope's current path in series with the board's supply (IN+ from the
    supply, OUT+ to the board, GND common) and its general-purpose input IN0 (JS220: GPI0) to
    the firmware's marker pin (``ts_marker``), see docs/energy.md.

    pyjoulescope has no "in0" signal: ``samples_get`` fields are current (A), voltage (V),
    power, current_range, current_lsb and voltage_lsb, and the general-purpose input GPI0
    reaches the samples as ``current_lsb`` (0/1) once ``parameter_set('current_lsb', 'gpi0')``
    routes it there (the JS110 replaces the current's least-significant bit with it; the v1
    backend streams a JS220's GPI0 into that field anyway). ``start()`` sizes the driver's
    stream buffer to the longest capture (``read`` refuses a duration longer than the
    buffer, 30 s by default), opens the device, begins the capture in the background (the
    driver's ``read`` blocks until it ends) and returns once samples arrive, so the command
    it measures starts inside the capture; ``stop()`` ends the capture (the stream process
    object's ``stream_notify`` answers True, the driver stops and ``read`` returns the
    samples so far) and integrates between the marker's edges.

    The longest capture is the command's own when ``start(longest_s)`` is told it (a
    session passes its deadline for `train`), else ``duration_s`` (default: 60 s); at most
    ``max_s``, and a ``duration_s`` above it is refused. The
    driver allocates the whole buffer when it opens (v1: :attr:`BYTES_PER_SAMPLE` a
    sample, 15 MB a second at a JS220's 1 MHz, 30 MB at a JS110's 2 MHz), so ``max_s``
    defaults to what :attr:`MAX_BUFFER_BYTES` holds at the fastest rate. A command longer
    than the capture loses its last windows to estimates (``ended_early``: the windows
    seen are its first ones). Not run here (no hardware):
    tests drive it through tests/fake_joulescope.py.
    """

    name = "joulescope"
    #: seconds to wait for the first samples after starting the capture
    start_timeout_s = 10.0
    #: seconds for the capture to end once ``stop()`` asked (the driver's next samples)
    stop_timeout_s = 10.0
    #: the driver's signals: current (A), voltage (V), GPI0 as the current LSB (0/1)
    FIELDS = ("current", "voltage", "current_lsb")

    #: bytes the v1 driver's stream buffer keeps a sample (current, voltage and power as
    #: float32; current range, GPI0 and GPI1 as bytes)
    BYTES_PER_SAMPLE = 15
    #: the fastest output rate of the devices it drives (a JS110's 2 MHz): the buffer is set
    #: before open(), before the device says its rate
    FASTEST_HZ = 2_000_000
    #: the stream buffer a capture sized from the command may take by default (allocated at
    #: once by the driver); ``max_s`` raises it on a host with the memory
    MAX_BUFFER_BYTES = 4_000_000_000

    #: the capture when neither the caller nor the command says how long
    DEFAULT_S = 60.0

    def __init__(self, duration_s: float | None = None, max_s: float | None = None):
        for what, value in (("longest duration", duration_s), ("cap", max_s)):
            if value is not None and not 0 < value < math.inf:
                raise DeviceError(f"the Joulescope capture needs a positive, finite {what}, "
                                  f"not {value} s")
        cap = max_s if max_s is not None else (
            self.MAX_BUFFER_BYTES / (self.BYTES_PER_SAMPLE * self.FASTEST_HZ))
        if duration_s is None:
            duration_s = min(self.DEFAULT_S, cap)
        elif duration_s > cap:
            # the driver allocates the whole buffer at open(): refused here, not as a
            # MemoryError reported as a Joulescope that failed to open
            raise DeviceError(f"a {duration_s:g} s Joulescope capture is over its "
                              f"{cap:.0f} s cap (the driver holds it all in memory, "
                              f"{self.BYTES_PER_SAMPLE} bytes a sample at up to "
                              f"{self.FASTEST_HZ / 1e6:g} MHz): measure a shorter workload "
                              "(device calibrate --ms)")
        try:
            import joulescope
        except ImportError as exc:
            raise DeviceError("the Joulescope driver is not installed: pip install "
                              "'tinysift[joulescope]'") from exc
        self._js_module = joulescope
        self.duration_s = duration_s
        self.max_s = cap
        #: this capture's longest length (``start()`` sets it)
        self.capture_s = duration_s
        self._device = None
        self._thread = None
        self._capture: dict = {}
        self._control: _StreamControl | None = None

    def buffer_s(self) -> int:
        """The stream buffer the capture needs: whole seconds (the driver's
        ``buffer_duration`` parameter rounds to them), with one to spare."""
        return math.ceil(self.capture_s) + 1

    def start(self, longest_s: float | None = None) -> None:
        import threading

        if self._device is not None:  # started again (a retried `train`): a fresh capture
            self._close()
        # a fixed 60 s capture lost a longer training's measurements to estimates: the
        # command's own length, within what the buffer's memory allows
        self.capture_s = self.duration_s if longest_s is None else min(longest_s, self.max_s)
        try:
            device = self._js_module.scan_require_one(config="auto")
            # Before open(): the v0 backend allocates its stream buffer in open() from this
            # parameter, the v1 backend applies parameters set before open() and then
            # allocates it.
            device.parameter_set("buffer_duration", self.buffer_s())
            device.open()
        except Exception as exc:  # noqa: BLE001 - driver errors have many types
            raise DeviceError(f"no Joulescope found or it failed to open: {exc}") from exc
        self._device = device
        try:
            device.parameter_set("i_range", "auto")
            device.parameter_set("source", "on")
            device.parameter_set("current_lsb", "gpi0")  # the marker, on IN0/GPI0
        except Exception as exc:  # noqa: BLE001
            self._close()
            raise DeviceError(f"the Joulescope refused its settings: {exc}") from exc
        control = self._control = _StreamControl()
        device.stream_process_register(control)

        box: dict = {}  # this capture's result (a restarted one gets its own)

        def capture() -> None:
            try:
                box["data"] = device.read(
                    contiguous_duration=self.capture_s, out_format="samples_get",
                    fields=list(self.FIELDS))
                # read() returned before stop() asked: the capture's length ran out
                box["ended_early"] = not control.finish.is_set()
            except Exception as exc:  # noqa: BLE001 - reported by start() or stop()
                box["error"] = exc

        self._capture = box
        self.ended_early = False
        self._thread = threading.Thread(target=capture, daemon=True)
        self._thread.start()
        # Streaming starts a while after read() is called; wait for the first samples so the
        # command (and its first marker window) starts inside the capture.
        deadline = time.monotonic() + self.start_timeout_s
        while not control.arrived.wait(0.02):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                break
        if not control.arrived.is_set():
            why = self._capture.get("error", f"no samples within {self.start_timeout_s:g} s")
            self._close()
            raise DeviceError(f"the Joulescope capture did not start: {why}")

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            device.close()  # also stops a capture in progress: read() returns
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def stop(self) -> list[Window]:
        if self._device is None or self._thread is None:
            raise DeviceError("the Joulescope capture was not started")
        try:
            self._control.finish.set()  # the next samples stop the streaming
            self._thread.join(timeout=self.stop_timeout_s)
        finally:
            self._close()
        if "data" not in self._capture:
            raise DeviceError(f"the Joulescope capture failed: "
                              f"{self._capture.get('error', 'it did not finish')}")
        data = self._capture["data"]
        self.ended_early = self._capture.get("ended_early", False)
        signals = data["signals"]
        missing = [k for k in self.FIELDS if k not in signals]
        if missing:
            raise DeviceError(f"the Joulescope capture has no {', '.join(missing)} signal "
                              f"(it returned {sorted(signals)})")
        i, v, m = (np.asarray(signals[k]["value"]) for k in self.FIELDS)
        fs = float(data["time"]["sampling_frequency"]["value"])
        return integrate_windows(np.arange(len(i)) / fs, i, v, m)
