"""``tinysift device list | flash | calibrate | run``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from tinysift.cli.app_console import console, print_json
from tinysift.cli.checks import require_run, seed_option
from tinysift.device.calibrate import MAX_CALIB_MS
from tinysift.device.results import DeviceResults

app = typer.Typer(help="The device: list ports and boards, build/flash, fine-tune over serial.",
                  no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="device")


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="JSON on stdout")) -> None:
    """Serial ports here, matched to board profiles by USB VID:PID, and the emulated boards."""
    from serial.tools import list_ports

    from tinysift.boards import list_boards
    from tinysift.device.ports import match_ports

    boards = list_boards()
    matches = match_ports(list_ports.comports(), boards)
    emulated = [b for b in boards if b.emulated]
    if json_out:
        print_json({"serial_ports": [m.to_dict() for m in matches],
                    "emulated": [{"name": b.name, "qemu_machine": b.qemu_machine,
                                  "pio_env": b.pio_env} for b in emulated]})
        return
    table = Table(title="devices")
    for col in ("kind", "name", "USB id", "what", "pass"):
        table.add_column(col)
    for m in matches:
        what = m.adapter or m.description
        if m.boards:
            what += f" -> {', '.join(m.boards)}"
        # the OS's names and a device's records are text, not markup (rich read `[...]` as
        # a tag: a path printed without it, or a MarkupError after a finished run)
        table.add_row("serial port", escape(m.device), m.usb_id or "-", escape(what),
                      escape(m.hint))
    for b in emulated:
        table.add_row("emulated", escape(b.name), "-",
                      escape(f"QEMU {b.qemu_machine}, env {b.pio_env}"),
                      escape(f"--board {b.name}"))
    console.print(table)
    if not matches:
        console.print("no serial ports: plug a board in over USB (a Nucleo's ST-LINK, a Nano "
                      "33 BLE, a Pico, an ESP32-S3); `tinysift boards` lists the profiles")


@app.command("flash")
def flash_cmd(
    board: str = typer.Option(..., help="board profile (tinysift boards)"),
    run: Path = typer.Option(None, help="run folder with export/ (default: the firmware "
                                        "without a model: name, info, reset, calib)"),
    probe: str = typer.Option(None, help="openocd (default), pyocd or stlink (STM32 boards)"),
    probe_serial: str = typer.Option(
        None, "--probe-serial", metavar="SERIAL",
        help="the debug probe's serial number, to choose one of several attached (`pyocd "
             "list`, `st-info --probe`); default: the tool takes the first it finds"),
    port: str = typer.Option(None, help="upload port of a board PlatformIO flashes (e.g. "
                                        "nano33ble); a probe or UF2 board refuses it"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the commands, run nothing"),
) -> None:
    """Build the firmware (with a run's export) and flash it onto a real board."""
    from tinysift.boards import load_board
    from tinysift.device.build import build_firmware, build_plan, describe_sizes
    from tinysift.device.flash import flash_steps, run_step
    from tinysift.paths import firmware_dir

    if run is not None:
        require_run(run)
    brd = load_board(board)
    export = Path(run) / "export" if run is not None else None
    out = Path(run) / "device" if run is not None else firmware_dir() / ".pio" / "tinysift"
    build, steps = flash_steps(brd, build_plan(brd, export, out), probe, port, probe_serial)
    upload = brd.flash_method == "pio-upload"  # PlatformIO builds and uploads in one
    if dry_run:
        if run is not None:
            from tinysift.runs import Run
            from tinysift.stages.checks import check_exported
            from tinysift.stages.device import check_export_fits

            check_exported(Run(run))  # a finished export of the current model
            check_export_fits(run, brd)  # before any build
        print(build.shell())
        for step in steps:
            print(step.shell())
        return
    if run is not None:
        from tinysift.stages.device import flash

        res = flash(run, board, port=port, upload=upload)  # checked, the run folder locked
    else:
        res = build_firmware(None, brd, out, upload=upload, port=port)
    console.print(f"built {escape(str(res.elf))} in {res.seconds:.1f} s: "
                  f"{describe_sizes(res, brd)}" + (" and uploaded" if upload else ""))
    for step in steps:
        console.print(f"{step.what}: {escape(step.shell())}")
        run_step(step, brd)
    if steps:
        console.print(f"flashed {brd.name}; `tinysift device list` shows its serial port")


@app.command("calibrate")
def calibrate_cmd(
    board: str = typer.Option(..., help="board profile to calibrate"),
    port: str = typer.Option(None, help="the board's serial port (it runs `calib`)"),
    joulescope: bool = typer.Option(False, help="measure with a Joulescope (marker on IN0)"),
    current_ma: float = typer.Option(None, help="your meter's reading instead, in mA"),
    # the firmware's range: a length outside it was refused by the board once connected,
    # and with --current-ma alone taken without a word
    ms: int = typer.Option(None, min=1, max=MAX_CALIB_MS, help="length of the fixed workload the "
                                                          "board runs on --port, in ms "
                                                          "(default 2000)"),
) -> None:
    """Measure the board's active current, which later runs' energy estimates use.

    It goes into your own profile of the board, outside the repository."""
    from tinysift.boards import load_board
    from tinysift.device.calibrate import DEFAULT_CALIB_MS, calibrate, check_calibration

    # checked before the Joulescope's driver loads: a missing port is what the user hears
    check_calibration(load_board(board), port, joulescope, current_ma, ms)
    monitor = None
    if joulescope:
        from tinysift.device.energy import JoulescopeMonitor

        monitor = JoulescopeMonitor(duration_s=(ms or DEFAULT_CALIB_MS) / 1000 + 2.0)
    cal = calibrate(board, port=port, monitor=monitor, current_ma=current_ma, ms=ms)
    # as the profile stores it (4 decimals): 0.0001 mA read "0.000 mA"
    console.print(f"{cal.board}: measured {cal.measured_ma:.4f} mA ({cal.how}); the profile "
                  f"estimated {cal.estimated_ma:g} mA: ratio measured/estimated "
                  f"{cal.ratio:.3f}")
    if cal.implausible:
        console.print(f"[yellow]{cal.ratio:.3g}x the profile's estimate: check the unit "
                      "(mA) and the meter's wiring; a reading that is not the board's "
                      "current makes every later energy estimate off by as much[/]")
    if cal.earlier is not None:
        console.print(f"replaces your earlier calibration: {cal.earlier[0]:.4f} mA "
                      f"({escape(cal.earlier[1])})")
    if cal.cycles is not None:
        console.print(f"workload: {cal.cycles:,} cycles")
    console.print(f"-> {escape(str(cal.profile))} (used by every later run on {cal.board})")


@app.command("run")
def run_cmd(
    run: Path = typer.Option(..., help="run folder with export/"),
    board: str = typer.Option("qemu-mps2-an386", help="board profile"),
    port: str = typer.Option(None, help="serial port of a real board (default: QEMU)"),
    epochs: int = typer.Option(None, help="on-device passes over the training set (0: the "
                                          "evaluation alone; default 5, or --steps)"),
    steps: int = typer.Option(None, help="that many optimizer steps of --batch samples "
                                         "instead of epochs (1..1000000)"),
    lr: float = typer.Option(0.05, help="the device's SGD learning rate"),
    batch: int = typer.Option(32, help="the device's mini-batch"),
    seed: int = seed_option(1, help="the device's seed (its sample order)"),
    update: str = typer.Option(None, help="what the device trains: head (the default), "
                                          "last-block or bias (these two need an export "
                                          "with the backbone buffers: not --head-only)"),
    schedule: str = typer.Option(None, help="the learning rate per step: constant (the "
                                            "default), cosine or step (docs/trainer.md)"),
    balance: bool = typer.Option(False, help="class-balanced loss weights"),
    db: bool = typer.Option(False, help="stream the training set over the link (db load)"),
    on_reset: str = typer.Option("retry", help="retry (set the session up again and re-send "
                                                "train, once) or stop when the device resets"),
    timeout: float = typer.Option(20.0, help="seconds without a valid record (at most a "
                                             "day), added to the limits derived from the "
                                             "board's clock and the expected cycles "
                                             "(docs/protocol.md)"),
    joulescope: bool = typer.Option(False, help="measure energy with a Joulescope"),
    joulescope_max_s: float = typer.Option(
        None, help="the longest Joulescope capture in seconds (default: the training's "
                   "deadline, at most 133 s); it ends with the training, a longer training "
                   "keeps estimates for the rest; the driver holds it in memory (15 MB a "
                   "second at a JS220's 1 MHz, 30 MB at a JS110's 2 MHz)"),
) -> None:
    """Fine-tune on the device; write RUN/device/results.json and print a table."""
    from tinysift.stages.device import TrainParams, run_on_device

    if joulescope_max_s is not None and not joulescope:
        # without a capture the cap was ignored (a cap of -5 too): the user believed energy
        # was measured and got the estimates
        from tinysift.errors import TinysiftError

        raise TinysiftError("--joulescope-max-s caps the Joulescope's capture, and without "
                            "--joulescope nothing is captured (energy is estimated): add "
                            "--joulescope, or leave --joulescope-max-s out")
    if epochs is not None and steps is not None:
        from tinysift.errors import TinysiftError

        raise TinysiftError("--epochs and --steps both set the training's length: give one")
    from tinysift.boards import load_board
    from tinysift.stages.device import check_monitor_board, check_run_board

    brd = load_board(board)
    if joulescope:  # checked before the Joulescope's driver loads
        check_monitor_board(brd, port)
    check_run_board(brd)
    params = TrainParams(epochs=5 if epochs is None else epochs, lr=lr, batch=batch,
                         seed=seed, update=update, steps=steps, schedule=schedule,
                         balance=balance)
    require_run(run)
    monitor = None
    if joulescope:
        from tinysift.device.energy import JoulescopeMonitor

        monitor = JoulescopeMonitor(max_s=joulescope_max_s)

    def progress(rec) -> None:
        if rec.type == "epoch":  # with --steps, a window of ceil(N / B) steps
            console.print(f"  {'window' if steps else 'epoch'} {rec.fields['n']}: loss "
                          f"{rec.fields['loss']} "
                          f"train acc {rec.fields['train_acc']}")

    res = run_on_device(run, board, port=port, params=params, use_db=db, on_reset=on_reset,
                        monitor=monitor, progress=progress, timeout=timeout)
    print_results(res)
    console.print(f"-> {escape(str(Path(run) / 'device' / 'results.json'))}")


def print_results(res: DeviceResults) -> None:
    rate = res.counter_hz or res.clock_hz  # a Pico's timer counts at 1 MHz
    at = f" at {rate / 1e6:g} MHz" if rate != res.clock_hz else ""
    table = Table(title=f"{res.board} ({res.counter} counter{at}, {res.clock_hz / 1e6:g} "
                        f"MHz) - {res.status}")
    for col in ("phase", "cycles", "ms", "energy mJ", "kind"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    for name, ph in res.phases.items():
        table.add_row(escape(name), f"{ph.cycles:,}", f"{1e3 * ph.seconds:.1f}",
                      f"{ph.energy_mj:.4f}", ph.energy_kind)
    console.print(table)
    ep = res.epochs
    if ep:
        # with --steps the device reports per window of ceil(N / B) steps, its `samples` the
        # window's steps x batch (docs/trainer.md): "4 epochs on 160 samples" was 20 steps
        steps = (res.params or {}).get("steps")
        def plural(n: int, word: str) -> str:  # "1 epochs on 72 samples"
            return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"

        what, per = ((f"{plural(steps, 'step')} ({plural(len(ep), 'window')} of "
                      f"{plural(res.samples, 'sample-pass')})", "window") if steps
                     else (f"{plural(len(ep), 'epoch')} on {plural(res.samples, 'sample')}",
                           "epoch"))
        console.print(f"{what}: loss {ep[0].loss:.4f} -> {ep[-1].loss:.4f}; "
                      f"{ep[-1].energy_mj:.4f} mJ/{per} ({ep[-1].energy_kind})")
    console.print(f"test accuracy before {res.test_acc_before}  after "
                  f"{res.test_acc_after} (int8 head {res.test_int8_acc_after})")
    for event in res.events:
        if "monitor" in event:  # measured energy not used: why (docs/energy.md)
            console.print(f"[yellow]power monitor:[/yellow] {escape(event['monitor'])}")
    from tinysift.device.session import clock_warning

    if (warning := clock_warning(res)) is not None:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
