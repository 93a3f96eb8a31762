"""``tinysift engine check``: one's own ``.tflite`` against the firmware engine, no run folder.

Parses the model (an unsupported one is refused with one line naming the problem and the
layer), exports it with golden data from the TFLM runtime on the given inputs (random ones
by default), compiles the engine natively with host gcc and runs it, with the scalar and the
DSP kernels (on the host the DSP instructions are emulated in C), counting the outputs
identical to TFLM's and naming the first differing layer on a mismatch. ``board`` adds the
inference memory plan for that board and one ``ts_invoke`` on the emulated Cortex-M4 (QEMU
mps2-an386 under ``-icount``, tinysift.device.icount): executed instructions, the stack it
used, and the time at the board's clock if each instruction took one cycle (a lower bound).
A model the plan does not fit on the board is still checked; ``EngineCheck.fit_problem``
says by how much it is over (the CLI then exits 2).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class EngineCheck:
    tflite: Path
    inputs: int
    layers: list[str]               # one line per layer (index, op, inputs, output dims)
    arena_bytes: int                # the engine's planned activation arena
    tflm_arena_head: int | None     # TFLM's planned (non-persistent) arena, for comparison
    results: dict[str, dict] = field(default_factory=dict)  # "scalar"/"dsp" -> counts
    plan: dict | None = None
    export_dir: Path | None = None
    # with a board: one ts_invoke on the emulated Cortex-M4 (DSP kernels): instructions, macs,
    # stack, arena, dsp; and implied_ms, the instructions at the board's clock, one cycle each
    invoke: dict | None = None
    # with a board the model does not fit: what is over and by how much, and the fix
    fit_problem: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r["ok"] for r in self.results.values())


def tflite_file(path: str | Path) -> Path:
    """``path`` as the .tflite file to read, or TinysiftError: a folder (a run folder, say)
    was "not found", which sent the user looking for a typo."""
    from tinysift.errors import TinysiftError

    path = Path(path)
    if path.is_dir():
        inside = sorted(path.glob("*.tflite"))
        hint = f" (it holds {inside[0].name}: --tflite {inside[0]})" if len(inside) == 1 else ""
        raise TinysiftError(f"--tflite {path} is a folder: give a .tflite file{hint}")
    if not path.is_file():
        raise TinysiftError(f"{path} not found: pass a .tflite file (--tflite)")
    return path


def check_tflite(tflite_path: str | Path, inputs: np.ndarray | None = None, count: int = 200,
                 seed: int = 0, board: str | None = None, out_dir: str | Path | None = None,
                 kernels: tuple[str, ...] = ("scalar", "dsp")) -> EngineCheck:
    """Run the engine on ``tflite_path`` natively and compare with TFLM (see the module
    docstring). ``out_dir`` keeps the export and the build there (default: a temporary
    folder)."""
    from tinysift.device.native import golden_check
    from tinysift.errors import TinysiftError
    from tinysift.export.golden import tflm_arena
    from tinysift.export.tflite_reader import describe, parse_tflite
    from tinysift.quantize.tflm import arena_usage
    from tinysift.runs import out_folder
    from tinysift.stages.export import export_tflite

    tflite_path = tflite_file(tflite_path)
    if out_dir is not None:
        out_folder(Path(out_dir), "--out-dir", create=False)
    tflite = tflite_path.read_bytes()
    parsed = parse_tflite(tflite, tflite_path)  # refuses what the engine cannot run
    with tempfile.TemporaryDirectory(prefix="tinysift-engine-") as tmp:
        work = Path(out_dir) if out_dir is not None else Path(tmp)
        info = export_tflite(tflite_path, work / "export", inputs=inputs, count=count,
                             seed=seed, board=board)
        try:
            # in an arena known to suffice: TFLM's default (ten times the model's size) was
            # too small for large activations and the comparison read "?"
            tflm_head = arena_usage(tflite, tflm_arena(tflite)).get("head")
        except (RuntimeError, ValueError, TinysiftError):
            tflm_head = None
        check = EngineCheck(tflite=tflite_path, inputs=info["test_samples"],
                            layers=describe(parsed).splitlines(),
                            arena_bytes=info["arena_bytes"], tflm_arena_head=tflm_head,
                            plan=info.get("memory_plan"),
                            export_dir=work / "export" if out_dir is not None else None)
        if check.plan is not None:
            check.fit_problem = fit_problem(parsed, check.plan, len(tflite))
        for kind in kernels:
            g = golden_check(work / "export", work / "build", dsp=kind == "dsp")
            # the program says which kernels it was built with: a "dsp" line of the scalar
            # kernels (a build flag lost) would vouch for kernels that never ran
            wrong = ([] if g.dsp == (kind == "dsp") else
                     [f"the {kind} check ran the {'DSP' if g.dsp else 'scalar'} kernels "
                      "(the engine's TS_USE_DSP build flag did not take)"])
            check.results[kind] = dict(inputs=g.inputs, equal=g.equal, ok=g.ok and not wrong,
                                       dsp=g.dsp, first_layer=g.layer_lines,
                                       failures=g.failures + wrong)
        if board is not None:
            check.invoke = emulated_invoke(work / "export", work / "icount", board)
    return check


def fit_problem(parsed, plan: dict, tflite_len: int) -> str | None:
    """One line when the inference ``plan`` (a ``MemoryPlan.to_dict()``) does not fit its
    board: each memory over capacity and by how much, as the export says it, and a bigger
    board (one the firmware has a port for) that fits, else a smaller model; None when it
    fits."""
    from tinysift.boards import board_support, list_boards
    from tinysift.export.memory import inference_plan, over_capacity

    if plan["fits"]:
        return None
    bigger = [b.name for b in sorted(list_boards(), key=lambda b: (b.ram_bytes, b.flash_bytes))
              if b.name != plan["board"] and board_support(b) != "no-port"
              and inference_plan(parsed, b, tflite_len).fits]
    fix = f"choose {bigger[0]} or use a smaller model" if bigger else "use a smaller model"
    return f"the model does not fit {plan['board']}: {' and '.join(over_capacity(plan))}; {fix}"


def emulated_invoke(export_dir: Path, work: Path, board: str) -> dict:
    """One ts_invoke of the export on the emulated Cortex-M4 (tinysift.device.icount) and its
    time at ``board``'s clock at one cycle per instruction."""
    import shutil

    from tinysift.boards import load_board
    from tinysift.device.icount import invoke_instructions
    from tinysift.errors import TinysiftError

    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        raise TinysiftError(f"--board counts instructions on the emulated Cortex-M4 and needs "
                            f"{' and '.join(missing)}: run tools/setup.sh")
    brd = load_board(board)
    inv = invoke_instructions(export_dir, work)
    inv.update(board=brd.name, clock_hz=brd.clock_hz,
               implied_ms=round(inv["instructions"] / brd.clock_hz * 1e3, 3))
    return inv


def run_tflite(tflite_path: str | Path, x: np.ndarray, dsp: bool = False,
               work_dir: str | Path | None = None) -> np.ndarray:
    """The engine's outputs on ``x`` (the model's input type: int8, or float32 for a model
    with a float input), compiled natively; float32 outputs for a model with a float
    output. No TFLM involved."""
    from tinysift.device.native import run_engine
    from tinysift.export import c_writer
    from tinysift.export.tflite_reader import FORMAT_VERSION, parse_tflite
    from tinysift.runs import file_hash
    from tinysift.stages.export import PREFIX, check_inputs

    tflite_path = tflite_file(tflite_path)
    tflite = tflite_path.read_bytes()
    parsed = parse_tflite(tflite, tflite_path)
    x = check_inputs(parsed, x)
    content_hash = file_hash(tflite_path)
    with tempfile.TemporaryDirectory(prefix="tinysift-engine-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        export_dir = work / "model"
        export_dir.mkdir(parents=True, exist_ok=True)
        macros = {"FORMAT_VERSION": FORMAT_VERSION, "CONTENT_HASH": content_hash,
                  "NUM_LAYERS": len(parsed.layers), "ARENA_BYTES": parsed.arena_bytes()}
        (export_dir / f"{PREFIX}.h").write_text(c_writer.write_header(PREFIX, macros,
                                                                      golden=False))
        head_w = head_b = None
        if parsed.has_head:
            from tinysift.export.tflite_reader import head_float_weights

            head_w, head_b = head_float_weights(parsed)
        (export_dir / f"{PREFIX}_model.c").write_text(
            c_writer.write_model_c(parsed, PREFIX, head_w, head_b, tflite, content_hash))
        return run_engine(export_dir, work / "build", x, parsed.layers[-1].out_bytes, dsp=dsp,
                          float_input=parsed.input_float is not None,
                          float_output=parsed.output_float is not None)
