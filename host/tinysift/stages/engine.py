"""``tinysift engine check``: one's own ``.tflite`` against the firmware engine, no run folder.

Parses the model (an unsupported one is refused with one line naming the problem and the
layer), exports it with golden data from the TFLM runtime on the given inputs (random ones
by default), compiles the engine natively with host gcc and runs it, with the scalar and the
DSP kernels (on the host the DSP instructions are emulated in C), counting the outputs
identical to TFLM's and naming the first differing layer on a mismatch. ``board`` adds the
inference memory plan for that board.
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

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r["ok"] for r in self.results.values())


def check_tflite(tflite_path: str | Path, inputs: np.ndarray | None = None, count: int = 200,
                 seed: int = 0, board: str | None = None, out_dir: str | Path | None = None,
                 kernels: tuple[str, ...] = ("scalar", "dsp")) -> EngineCheck:
    """Run the engine on ``tflite_path`` natively and compare with TFLM (see the module
    docstring). ``out_dir`` keeps the export and the build there (default: a temporary
    folder)."""
    from tinysift.device.native import golden_check
    from tinysift.errors import TinysiftError
    from tinysift.export.tflite_reader import describe, parse_tflite
    from tinysift.quantize.tflm import arena_usage
    from tinysift.stages.export import export_tflite

    tflite_path = Path(tflite_path)
    if not tflite_path.is_file():
        raise TinysiftError(f"{tflite_path} not found")
    tflite = tflite_path.read_bytes()
    parsed = parse_tflite(tflite)  # refuses what the engine cannot run, naming the layer
    with tempfile.TemporaryDirectory(prefix="tinysift-engine-") as tmp:
        work = Path(out_dir) if out_dir is not None else Path(tmp)
        info = export_tflite(tflite_path, work / "export", inputs=inputs, count=count,
                             seed=seed, board=board)
        try:
            tflm_head = arena_usage(tflite).get("head")
        except (RuntimeError, ValueError):
            tflm_head = None
        check = EngineCheck(tflite=tflite_path, inputs=info["test_samples"],
                            layers=describe(parsed).splitlines(),
                            arena_bytes=info["arena_bytes"], tflm_arena_head=tflm_head,
                            plan=info.get("memory_plan"),
                            export_dir=work / "export" if out_dir is not None else None)
        for kind in kernels:
            g = golden_check(work / "export", work / "build", dsp=kind == "dsp")
            check.results[kind] = dict(inputs=g.inputs, equal=g.equal, ok=g.ok,
                                       first_layer=g.layer_lines, failures=g.failures)
    return check
