"""Energy: always an estimate from the board profile; measured when a power monitor is on.

Estimate: ``E = V * I_active * cycles / f`` per phase (labelled ``estimated``, with the
counter the cycles came from). Measured: a power monitor samples current and voltage
together with a GPIO *marker* the firmware raises around every measurement window (MLPerf
Tiny's energy mode: no serial traffic inside a window); :func:`integrate_windows` integrates
power between marker edges. Windows map to the firmware's records in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from tinysift.boards import Board
from tinysift.device.results import PhaseResult
from tinysift.errors import DeviceError


def estimate(board: Board, cycles: int) -> PhaseResult:
    """One phase's time and estimated energy from its cycle count."""
    return PhaseResult(int(cycles), board.seconds(cycles), board.energy_mj(cycles), "estimated")


@dataclass(frozen=True)
class Window:
    """One marker-high interval."""

    start_s: float
    duration_s: float
    energy_mj: float
    mean_current_ma: float


def integrate_windows(t: np.ndarray, current_a: np.ndarray, voltage_v: np.ndarray,
                      marker: np.ndarray, threshold: float = 0.5) -> list[Window]:
    """Integrate power (trapezoids) over every interval where ``marker`` is high.

    Parameters
    ----------
    t : sample times in seconds (increasing)
    current_a, voltage_v : per-sample current (A) and voltage (V)
    marker : the GPIO input sampled with them (0/1 or volts; high above ``threshold``)
    """
    t = np.asarray(t, np.float64)
    p = np.asarray(current_a, np.float64) * np.asarray(voltage_v, np.float64)
    high = np.asarray(marker, np.float64) > threshold
    if not (len(t) == len(p) == len(high)):
        raise ValueError("t, current, voltage and marker must have the same length")
    edges = np.diff(high.astype(np.int8))
    starts = list(np.flatnonzero(edges == 1) + 1)
    ends = list(np.flatnonzero(edges == -1) + 1)
    if high[0]:
        starts.insert(0, 0)
    windows = []
    for s in starts:
        later = [e for e in ends if e > s]
        if not later:  # still high at the end of the capture: incomplete, ignored
            break
        e = later[0]
        seg_t, seg_p = t[s:e], p[s:e]
        energy = float(np.trapezoid(seg_p, seg_t)) if len(seg_t) > 1 else 0.0
        dur = float(seg_t[-1] - seg_t[0]) if len(seg_t) > 1 else 0.0
        mean_i = float(np.mean(np.asarray(current_a)[s:e])) * 1e3
        windows.append(Window(float(seg_t[0]), dur, energy * 1e3, mean_i))
    return windows


class PowerMonitor(ABC):
    """A power monitor wired to the board's supply and the firmware's marker GPIO."""

    name = "monitor"

    @abstractmethod
    def start(self) -> None:
        """Begin capturing (before the command whose windows are measured)."""

    @abstractmethod
    def stop(self) -> list[Window]:
        """End the capture and return the marker windows, in order."""


class JoulescopeMonitor(PowerMonitor):
    """Joulescope JS110/JS220 (``pip install tinysift[joulescope]``).

    Wiring: the Joulescope's current path in series with the board's supply (IN+ from the
    supply, OUT+ to the board, GND common) and its general-purpose input IN0 to the
    firmware's marker pin (``ts_marker``), see docs/energy.md. ``start()`` begins a capture of
    ``duration_s`` seconds in the background (the driver's ``read`` blocks for that long);
    ``stop()`` waits for it and integrates between IN0 edges, so the capture must outlast the
    command it measures. Not run here (no hardware).
    """

    name = "joulescope"

    def __init__(self, duration_s: float = 60.0):
        try:
            import joulescope
        except ImportError as exc:
            raise DeviceError("the Joulescope driver is not installed: pip install "
                              "'tinysift[joulescope]'") from exc
        self._js_module = joulescope
        self.duration_s = duration_s
        self._device = None
        self._thread = None
        self._capture: dict = {}

    def start(self) -> None:
        import threading

        try:
            self._device = self._js_module.scan_require_one(config="auto")
            self._device.open()
            self._device.parameter_set("i_range", "auto")
            self._device.parameter_set("source", "on")
        except Exception as exc:  # noqa: BLE001 - driver errors have many types
            raise DeviceError(f"no Joulescope found or it failed to open: {exc}") from exc

        def capture() -> None:
            try:
                self._capture["data"] = self._device.read(
                    contiguous_duration=self.duration_s, out_format="samples_get",
                    fields=["current", "voltage", "in0"])
            except Exception as exc:  # noqa: BLE001 - reported by stop()
                self._capture["error"] = exc

        self._capture = {}
        self._thread = threading.Thread(target=capture, daemon=True)
        self._thread.start()

    def stop(self) -> list[Window]:
        if self._device is None or self._thread is None:
            raise DeviceError("the Joulescope capture was not started")
        try:
            self._thread.join(timeout=self.duration_s + 30)
        finally:
            self._device.close()
            self._device = None
        if "data" not in self._capture:
            raise DeviceError(f"the Joulescope capture failed: "
                              f"{self._capture.get('error', 'it did not finish')}")
        data = self._capture["data"]
        signals = data["signals"]
        i, v, m = (np.asarray(signals[k]["value"]) for k in ("current", "voltage", "in0"))
        fs = float(data["time"]["sampling_frequency"]["value"])
        return integrate_windows(np.arange(len(i)) / fs, i, v, m)
