"""``tinysift engine check|run|export``: one's own ``.tflite`` on the firmware engine (natively,
host gcc), against the TFLM runtime, without a run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from tinysift.cli.app_console import console, print_json
from tinysift.cli.checks import load_array, random_count, seed_option


def register(app: typer.Typer) -> None:
    engine = typer.Typer(help="Run a .tflite on the firmware engine (natively) and compare "
                              "with TFLM.", no_args_is_help=True)
    app.add_typer(engine, name="engine")

    @engine.command("check")
    def check_cmd(
        tflite: Path = typer.Option(..., help="a full-integer int8 .tflite (float accepted "
                                              "only at its input and output)"),
        inputs: Path = typer.Option(None, help=".npy of inputs in the model's input type "
                                               "(default: random int8)"),
        count: int = typer.Option(None, min=1, help="random inputs when --inputs is not "
                                                     "given (default 200)"),
        board: str = typer.Option(None, help="add the inference memory plan for this board "
                                             "and the instructions of one inference on the "
                                             "emulated Cortex-M4"),
        out_dir: Path = typer.Option(None, help="keep the export and the build here"),
        seed: int = seed_option(0, help="seed of the random inputs (without --inputs)"),
        json_out: bool = typer.Option(False, "--json", help="JSON on stdout"),
    ) -> None:
        """Check a .tflite on the engine: its outputs identical to TFLM's, bit for bit?

        Parse, export, compile the engine with host gcc, run it (scalar and DSP kernels)
        and count the outputs identical to TFLM's: exit 0 when all are, 1 when not, 2 when
        the model is refused or does not fit --board's memory (after the whole report; a
        mismatch's 1 comes first)."""
        from tinysift.stages.engine import check_tflite

        count = random_count(count, inputs)
        x = load_array(inputs, "--inputs", tflite) if inputs is not None else None
        r = check_tflite(tflite, inputs=x, count=count, seed=seed, board=board,
                         out_dir=out_dir)
        if json_out:
            print_json(dict(tflite=str(r.tflite), inputs=r.inputs, layers=r.layers,
                            arena_bytes=r.arena_bytes, tflm_arena_head=r.tflm_arena_head,
                            results=r.results, plan=r.plan, invoke=r.invoke, ok=r.ok,
                            fits=None if r.plan is None else r.plan["fits"],
                            fit_problem=r.fit_problem))
        else:
            console.print(f"{r.tflite}: {len(r.layers)} layers", markup=False)
            for line in r.layers:
                console.print(f"  {line}", markup=False)
            tflm = "?" if r.tflm_arena_head is None else f"{r.tflm_arena_head:,}"
            console.print(f"arena {r.arena_bytes:,} B (TFLM's planned tensors: {tflm} B)")
            if r.plan is not None:
                from tinysift.cli.quantize_cmd import print_plan

                print_plan(r.plan)  # its totals only: the verdict is said here
                if r.fit_problem is not None:
                    console.print(r.fit_problem, style="bold red", markup=False)
            if r.invoke is not None:
                v = r.invoke
                console.print(f"emulated Cortex-M4 (QEMU mps2-an386, -icount, DSP kernels): "
                              f"{v['instructions']:,} instructions for {v['macs']:,} MACs "
                              f"({v['instructions'] / max(v['macs'], 1):.2f}/MAC), stack "
                              f"{v['stack']:,} B; on {v['board']} at "
                              f"{v['clock_hz'] / 1e6:g} MHz, one cycle each: "
                              f"{v['implied_ms']:.2f} ms (a lower bound)", markup=False)
            for kind, res in r.results.items():
                verdict = "all identical" if res["ok"] else "MISMATCH"
                console.print(f"{kind:>6} kernels: {res['equal']}/{res['inputs']} outputs "
                              f"identical to TFLM: {verdict}", markup=False)
                for line in res["first_layer"] + res["failures"]:
                    console.print(f"         {line}", markup=False)
        if not r.ok:
            raise typer.Exit(1)
        if r.fit_problem is not None:
            # 2 as for any model refused, so that a script notices; after the report, since
            # the bit-exactness result holds for a board it fits
            from tinysift.errors import FitError

            raise FitError(r.fit_problem)

    @engine.command("run")
    def run_cmd(
        tflite: Path = typer.Option(..., help="a full-integer int8 .tflite"),
        inputs: Path = typer.Option(..., help=".npy of inputs in the model's input type"),
        out: Path = typer.Option(..., help=".npy to write the engine's outputs to"),
        dsp: bool = typer.Option(False, help="the DSP kernels (emulated in C on the host)"),
    ) -> None:
        """Run the engine on the inputs and write its outputs (N, output size)."""
        import numpy as np

        from tinysift.errors import TinysiftError
        from tinysift.runs import out_folder
        from tinysift.stages.engine import run_tflite

        # before the engine runs: a folder was written as FOLDER.npy, and np.save's added
        # suffix was left out of the path printed
        if out.is_dir():
            raise TinysiftError(f"--out {out} is a folder: give the .npy file to write, e.g. "
                                f"{out / 'outputs.npy'}")
        out_folder(out.parent, "--out", create=False)
        written = out if out.name.endswith(".npy") else out.with_name(out.name + ".npy")
        for flag, given in (("--inputs", inputs), ("--tflite", tflite)):
            # np.save replaced the user's inputs with the outputs, without a word
            if written.exists() and given.exists() and written.samefile(given):
                raise TinysiftError(f"--out {written} is the {flag} file: writing the outputs "
                                    f"there would replace it; give another file, e.g. "
                                    f"{written.with_name(written.stem + '_outputs.npy')}")
        y = run_tflite(tflite, load_array(inputs, "--inputs", tflite), dsp=dsp)
        out_folder(written.parent, "--out", create=True)
        np.save(written, y)
        console.print(f"{len(y)} outputs of {y.shape[1] if y.ndim == 2 else 0} {y.dtype} "
                      f"-> {written}", markup=False)

    @engine.command("export")
    def export_cmd(
        tflite: Path = typer.Option(..., help="a full-integer int8 .tflite"),
        out_dir: Path = typer.Option(..., help="the folder to write the export to"),
        inputs: Path = typer.Option(None, help=".npy of inputs for the golden data "
                                               "(default: random)"),
        count: int = typer.Option(None, min=1, help="random inputs when --inputs is not "
                                                     "given (default 200)"),
        board: str = typer.Option(None, help="add the inference memory plan for this board"),
        seed: int = seed_option(0, help="seed of the random inputs (without --inputs)"),
    ) -> None:
        """Export a bare .tflite (no run folder): layer table, tensor plan, golden data."""
        from tinysift.stages.engine import tflite_file
        from tinysift.stages.export import export_tflite

        tflite = tflite_file(tflite)  # a folder was "not found"
        count = random_count(count, inputs)
        x = load_array(inputs, "--inputs", tflite) if inputs is not None else None
        info = export_tflite(tflite, out_dir, inputs=x, count=count, seed=seed, board=board)
        if info.get("memory_plan"):  # --board's plan was written to export.json alone
            from tinysift.cli.quantize_cmd import print_plan

            print_plan(info["memory_plan"])
        console.print(f"{len(info['layers'])} layers, arena {info['arena_bytes']:,} B, "
                      f"{info['test_samples']} golden inputs -> {out_dir}", markup=False)
        plan = info.get("memory_plan")
        if plan and not plan["fits"]:  # written, and said: export.json's plan says so too
            from tinysift.errors import FitError
            from tinysift.export.tflite_reader import parse_tflite
            from tinysift.stages.engine import fit_problem

            data = tflite.read_bytes()  # parsed again on this path only, for the bigger board
            raise FitError(f"{fit_problem(parse_tflite(data, tflite), plan, len(data))} (the "
                           "export is written; its memory plan in export.json says the same)")
