"""``tinysift device list | flash | run``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tinysift.cli.app_console import console, print_json
from tinysift.device.results import DeviceResults

app = typer.Typer(help="The device: list ports and boards, build/flash, fine-tune over serial.",
                  no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="device")


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="JSON on stdout")) -> None:
    """Serial ports on this machine and the emulated boards."""
    from serial.tools import list_ports

    from tinysift.boards import list_boards

    if json_out:
        print_json({"serial_ports": [{"device": p.device, "description": p.description or "",
                                      "vid": p.vid, "pid": p.pid,
                                      "serial_number": p.serial_number}
                                     for p in list_ports.comports()],
                    "emulated": [{"name": b.name, "qemu_machine": b.qemu_machine,
                                  "pio_env": b.pio_env}
                                 for b in list_boards() if b.emulated]})
        return
    table = Table(title="devices")
    for col in ("kind", "name", "details"):
        table.add_column(col)
    for p in list_ports.comports():
        table.add_row("serial port", p.device, p.description or "")
    for b in list_boards():
        if b.emulated:
            table.add_row("emulated", b.name, f"QEMU {b.qemu_machine}, env {b.pio_env}")
    console.print(table)


@app.command("flash")
def flash_cmd(
    run: Path = typer.Option(..., help="run folder with export/"),
    board: str = typer.Option("qemu-mps2-an386", help="board profile"),
    port: str = typer.Option(None, help="upload port of a real board"),
) -> None:
    """Build the firmware with this run's export (and upload it to a real board)."""
    from tinysift.boards import load_board
    from tinysift.stages.device import flash

    res = flash(run, board, port=port)
    console.print(f"built {res.elf} in {res.seconds:.1f} s: flash {res.flash_bytes:,} B, "
                  f"static RAM {res.ram_bytes:,} B"
                  + ("" if load_board(board).emulated else " and uploaded"))


@app.command("run")
def run_cmd(
    run: Path = typer.Option(..., help="run folder with export/"),
    board: str = typer.Option("qemu-mps2-an386", help="board profile"),
    port: str = typer.Option(None, help="serial port of a real board (default: QEMU)"),
    epochs: int = typer.Option(5),
    lr: float = typer.Option(0.05),
    batch: int = typer.Option(32),
    seed: int = typer.Option(1),
    db: bool = typer.Option(False, help="stream the training set over the link (db load)"),
    on_reset: str = typer.Option("retry", help="retry (set the session up again and re-send "
                                                "train, once) or stop when the device resets"),
    timeout: float = typer.Option(20.0, help="seconds without a valid record, added to the "
                                             "limits derived from the board's clock and the "
                                             "expected cycles (docs/protocol.md)"),
    joulescope: bool = typer.Option(False, help="measure energy with a Joulescope"),
) -> None:
    """Fine-tune on the device; write RUN/device/results.json and print a table."""
    from tinysift.stages.device import TrainParams, run_on_device

    monitor = None
    if joulescope:
        from tinysift.device.energy import JoulescopeMonitor

        monitor = JoulescopeMonitor()

    def progress(rec) -> None:
        if rec.type == "epoch":
            console.print(f"  epoch {rec.fields['n']}: loss {rec.fields['loss']} "
                          f"train acc {rec.fields['train_acc']}")

    res = run_on_device(run, board, port=port,
                        params=TrainParams(epochs=epochs, lr=lr, batch=batch, seed=seed),
                        use_db=db, on_reset=on_reset, monitor=monitor, progress=progress,
                        timeout=timeout)
    print_results(res)
    console.print(f"-> {Path(run) / 'device' / 'results.json'}")


def print_results(res: DeviceResults) -> None:
    table = Table(title=f"{res.board} ({res.counter} counter, {res.clock_hz / 1e6:g} "
                        f"MHz) - {res.status}")
    for col in ("phase", "cycles", "ms", "energy mJ", "kind"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    for name, ph in res.phases.items():
        table.add_row(name, f"{ph.cycles:,}", f"{1e3 * ph.seconds:.1f}",
                      f"{ph.energy_mj:.4f}", ph.energy_kind)
    console.print(table)
    ep = res.epochs
    if ep:
        console.print(f"{len(ep)} epochs on {res.samples} samples: loss {ep[0].loss:.4f} "
                      f"-> {ep[-1].loss:.4f}; {ep[-1].energy_mj:.4f} mJ/epoch "
                      f"({ep[-1].energy_kind})")
    console.print(f"test accuracy before {res.test_acc_before}  after "
                  f"{res.test_acc_after} (int8 head {res.test_int8_acc_after})")
