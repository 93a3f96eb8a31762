"""Energy calibration: the board's real active current, into the user's board profile.

The firmware's ``calib ms=N`` runs a fixed workload (int8 multiply-accumulates and float
updates, the trainer's arithmetic) for N ms inside one measurement window: the marker GPIO is
high for exactly that time and nothing crosses the serial link. A Joulescope on the supply
integrates that window; its mean current replaces the profile's estimate. Without a power
monitor, ``current_ma`` is the user's own meter reading during ``calib`` (or any training).

The result goes into the user's profile (:func:`tinysift.boards.save_user_board`, outside the
repository), so every later run's energy estimate uses it; the report gives the ratio
measured / estimated.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from tinysift.boards import Board, load_board, save_user_board, user_board_keys
from tinysift.device.energy import PowerMonitor
from tinysift.errors import DeviceError, TinysiftError


@dataclass
class Calibration:
    board: str
    estimated_ma: float
    measured_ma: float
    how: str
    profile: Path
    cycles: int | None = None
    window_s: float | None = None
    #: the calibration this one replaced in the user's profile: (mA, its source line)
    earlier: tuple[float, str] | None = None

    @property
    def ratio(self) -> float:
        return self.measured_ma / self.estimated_ma

    @property
    def implausible(self) -> bool:
        """Whether the reading is more than :data:`PLAUSIBLE_RATIO` times from the
        profile's estimate, either way (a unit slip, uA or A, reads as 1000x)."""
        return not 1 / PLAUSIBLE_RATIO <= self.ratio <= PLAUSIBLE_RATIO


def run_workload(port: str, ms: int, monitor: PowerMonitor | None,
                 timeout: float = 60.0, board: Board | None = None) -> tuple[int, list]:
    """``calib ms=<ms>`` on the board at ``port``, with ``monitor`` capturing; returns the
    cycles the firmware counted and the monitor's marker windows. With ``board``, the
    firmware that answers must be that board's (``@boot`` or ``@name`` ``board=``) and speak
    this host's TSP version (``@boot`` or ``@info`` ``proto=``), before anything runs: its
    current would go into ``board``'s profile."""
    from tinysift.device.link import DeviceReset, SerialLink
    from tinysift.device.session import check_board, check_protocol

    with SerialLink(port) as link:
        try:
            named = link.wait_boot(timeout=3.0)
        except DeviceError:
            named = None  # it booted before the port opened: the command syncs
        if board is not None:
            if named is None:
                try:
                    named = next((r for r in link.command("name", timeout=5.0)
                                  if r.type == "name"), None)
                except DeviceReset as reset:  # it booted just now
                    named = reset.boot
            if named is not None:
                check_board(board, named, port)
            if named is None or "proto" not in named.fields:  # @name does not carry it
                try:
                    named = next((r for r in link.command("info", timeout=5.0)
                                  if r.type == "info"), named)
                except DeviceReset as reset:  # it booted just now: its @boot says both
                    named = reset.boot
                    check_board(board, named, port)
            if named is not None:  # another TSP version's `calib` records read by TSP/1's
                check_protocol(board, named)
        try:
            if monitor is not None:
                monitor.start()
            try:
                recs = link.command(f"calib ms={ms}", timeout=timeout + ms / 1000)
            except DeviceReset as reset:  # said without a fix, and nothing to keep
                raise DeviceError(f"the board at {port} reset during `calib` (@boot "
                                  f"resets={reset.boot.fields.get('resets', '?')}), so its "
                                  "workload did not finish and nothing was written: check its "
                                  "power supply (a power monitor in series must supply enough "
                                  "current) and reset line, then run `tinysift device "
                                  "calibrate` again") from reset
            windows = monitor.stop() if monitor is not None else []
        finally:  # a failed `calib` left the monitor open and capturing
            if monitor is not None:
                monitor.close()
    phase = [r for r in recs if r.type == "phase" and r.fields.get("name") == "calib"]
    if not phase:
        raise DeviceError(f"the board at {port} did not run `calib` (records: "
                          f"{[r.type for r in recs]}); flash the current firmware")
    return phase[0].int("cycles", low=0), windows


#: the firmware's longest ``calib`` workload (TS_PROTO_MAX_CALIB_MS in ts_protocol.h)
MAX_CALIB_MS = 600_000
#: the workload's length when none is given (the firmware's default too)
DEFAULT_CALIB_MS = 2000
#: the smallest current a profile keeps (it stores 4 decimals of mA): 100 nA, below any
#: running microcontroller's active current
MIN_CURRENT_MA = 0.0001
#: More than a microcontroller board draws (USB-C's 3 A): a reading above it is a unit slip
#: (1e6 uA typed as mA) or a miswired meter, and it went into the profile, every later energy
#: estimate off by that factor.
MAX_CURRENT_MA = 3000.0
#: How far a reading may be from the profile's estimate before the report warns (a
#: datasheet's active current and a board's real one differ by a few times, not by 30)
PLAUSIBLE_RATIO = 30.0


def check_calibration(brd: Board, port: str | None, measure: bool,
                      current_ma: float | None, ms: int | None) -> None:
    """Everything :func:`calibrate` refuses, checked before a port or power monitor is
    opened; the CLI calls it before it loads the Joulescope driver, so a missing port is
    what the user hears, not the driver found missing.

    Parameters
    ----------
    brd : the board to calibrate
    port : its serial port (it runs ``calib``), or None
    measure : a power monitor measures the current (``--joulescope``)
    current_ma : the user's meter reading instead
    ms : the workload's length given by the user, or None for the default

    Raises
    ------
    TinysiftError
        naming the option and its fix
    """
    if brd.emulated:
        raise TinysiftError(f"{brd.name} is emulated: its energy is a model, there is no "
                            "current to measure")
    if measure == (current_ma is not None):
        raise TinysiftError("pass exactly one of --joulescope (measure) and --current-ma X "
                            "(your meter's reading)")
    # inf passed `> 0` and went into the profile (every later energy inf); below the 0.0001
    # mA the profile keeps, a reading was stored as 0 and broke the profile
    if current_ma is not None and not (MIN_CURRENT_MA <= current_ma < math.inf):
        raise TinysiftError(f"--current-ma must be a current in mA of at least "
                            f"{MIN_CURRENT_MA:g} (finite), not {current_ma}")
    if current_ma is not None and current_ma > MAX_CURRENT_MA:
        raise TinysiftError(f"--current-ma {current_ma:g} is more than a microcontroller board "
                            f"draws (at most {MAX_CURRENT_MA:g} mA): the option is in mA "
                            "(1 mA = 1000 uA); give your meter's reading in mA")
    if ms is not None and not 1 <= ms <= MAX_CALIB_MS:
        raise TinysiftError(f"--ms must be 1..{MAX_CALIB_MS} (the firmware's range), not {ms}")
    if measure and port is None:
        raise TinysiftError("--joulescope needs --port: the board must run the workload it "
                            "measures (`tinysift device list` shows the port)")
    if ms is not None and port is None:
        # without a port nothing runs: a length given was taken and ignored
        raise TinysiftError("--ms sets how long the board runs the workload on --port, and "
                            "without --port nothing runs: give the board's --port, or leave "
                            "--ms out (--current-ma alone is taken as your meter's reading)")


def calibrate(board: str, port: str | None = None, monitor: PowerMonitor | None = None,
              current_ma: float | None = None, ms: int | None = None) -> Calibration:
    """Measure (``monitor``) or take (``current_ma``) the board's active current and write it
    into the user's profile of ``board``; ``ms`` is the workload's length on ``port``
    (default :data:`DEFAULT_CALIB_MS`). Refuses what :func:`check_calibration` refuses."""
    brd = load_board(board)
    check_calibration(brd, port, monitor is not None, current_ma, ms)
    ms = DEFAULT_CALIB_MS if ms is None else ms
    cycles = window_s = None
    if port is not None:
        cycles, windows = run_workload(port, ms, monitor, board=brd)
    if monitor is not None:
        if len(windows) != 1:
            raise DeviceError(f"the power monitor saw {len(windows)} marker windows during "
                              f"`calib`, expected 1: check the marker wire ({brd.marker_pin})")
        if not windows[0].complete:
            raise DeviceError(f"the power monitor's capture began or ended inside the `calib` "
                              f"marker window, so only part of it was measured: run it again "
                              f"(a longer capture than the {ms} ms workload)")
        measured, window_s = windows[0].mean_current_ma, windows[0].duration_s
        if not MIN_CURRENT_MA <= measured <= MAX_CURRENT_MA:
            # a reversed or bypassed current path reads zero or negative, a short more than
            # a board draws: that went into the profile as the board's current
            raise DeviceError(f"the power monitor measured {measured:g} mA during `calib`, "
                              "not a running board's current: check that the board's supply "
                              "runs through the Joulescope (IN+ from the supply, OUT+ to the "
                              "board), then run it again")
        how = f"{monitor.name}, one {window_s:.2f} s marker window of `calib`"
    else:
        measured, how = float(current_ma), "the user's meter (--current-ma)"
    est, whose = _estimate_of(brd)
    ratio = measured / est
    # the user's own earlier calibration (a project profile's datasheet current is none)
    mine = user_board_keys(brd.name)
    earlier = ((float(mine["active_current_ma"]), str(mine.get("current_source", "")))
               if "active_current_ma" in mine else None)
    # a board of the user's own keeps the estimate a calibration replaces, as the base of
    # every later one's ratio (the project's boards keep theirs in boards/)
    keep_estimate = {"estimated_current_ma": est} if whose == YOUR_ESTIMATE else {}
    path = save_user_board(brd.name, {
        "active_current_ma": round(measured, 4),
        "current_source": (f"measured: tinysift device calibrate ({how}) on "
                           f"{time.strftime('%Y-%m-%d')}; {ratio:.3f}x {whose} {est:g} mA"),
        "current_is_estimate": False,
        **keep_estimate,
    }, header=f"tinysift device calibrate, {time.strftime('%Y-%m-%dT%H:%M:%S')}: your "
              f"{brd.name}'s measured active current, over the project's profile")
    return Calibration(brd.name, est, measured, how, path, cycles, window_s, earlier)


#: whose estimate a board of the user's own is calibrated against
YOUR_ESTIMATE = "your profile's uncalibrated"


def _estimate_of(brd: Board) -> tuple[float, str]:
    """The estimated current a calibration is measured against, and whose it is: the
    project profile's, or for a board of the user's own the one its profile gave before its
    first calibration (not an earlier calibration's: the ratio drifted with each one, and the
    30x check with it)."""
    import tomllib

    from tinysift.paths import boards_dir

    project = boards_dir() / f"{brd.name}.toml"
    if project.is_file():
        with open(project, "rb") as fh:
            return (float(tomllib.load(fh).get("active_current_ma", brd.active_current_ma)),
                    "the project profile's")
    return brd.estimated_current_ma or brd.active_current_ma, YOUR_ESTIMATE
