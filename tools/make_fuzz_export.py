#!/usr/bin/env python
"""Make the small real export the app fuzzer compiles in (firmware/test/fuzz/export/).

A ds-cnn of width 4 trained briefly on 20 digits samples, quantized and exported by the
ordinary stages with 10 test samples and a `db load` capacity of 8: every path of the app
(train in every mode it supports, eval, results, db load/use) runs in well under a
millisecond per command, so the fuzzer executes thousands of command streams a second.
The files are committed (the fuzzer needs no TensorFlow); rerun this after a change of the
export format:

    .venv/bin/python tools/make_fuzz_export.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "firmware" / "test" / "fuzz" / "export"
FILES = ("ts_export.h", "ts_export_model.c", "ts_export_data.c", "export.json")


def main() -> Path:
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train("digits", run, keep=20, epochs=2, width=4, progress=False)
        quantize(run, representative=20)
        export(run, test_samples=10, db_capacity=8)
        OUT.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(run / "export" / name, OUT / name)
    print(f"wrote {', '.join(FILES)} to {OUT}")
    return OUT


if __name__ == "__main__":
    main()
