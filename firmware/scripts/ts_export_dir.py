"""PlatformIO extra script: compile one export (``RUN/export/``) into the firmware.

    TS_EXPORT_DIR=runs/NAME/export tools/pio test -d firmware -e qemu-m4 -f test_golden

With TS_EXPORT_DIR set (absolute, or relative to the current directory or the repository
root), the export's ``ts_export*.c`` are built with the program, its folder is on the
include path (``ts_export.h``) and ``TS_HAVE_EXPORT`` is defined. Unset, nothing changes
(tests that need an export report SKIP). Unused arrays (e.g. the golden vectors in an app
build) are dropped by the linker's --gc-sections on the emulated boards.

It also defines the model dimensions TS_MODEL_* that the app's static buffers for
update=last-block and update=bias are sized with (firmware/src/app.h), read off the
export's ``export.json`` by ts_model_dims.py (next to this script).
"""

import json
import os
import sys

Import("env")  # noqa: F821  (SCons provides it)

PROJECT_DIR = env.subst("$PROJECT_DIR")  # noqa: F821
ROOT = os.path.normpath(os.path.join(PROJECT_DIR, os.pardir))
ENGINE_SRC = os.path.join(PROJECT_DIR, "lib", "tsengine", "src")
sys.path.insert(0, os.path.join(PROJECT_DIR, "scripts"))
from ts_model_dims import model_dims  # noqa: E402


def _resolve(path):
    if os.path.isabs(path):
        return path
    for base in (os.getcwd(), ROOT, PROJECT_DIR):
        candidate = os.path.normpath(os.path.join(base, path))
        if os.path.isfile(os.path.join(candidate, "ts_export.h")):
            return candidate
    return os.path.abspath(path)


_raw = os.environ.get("TS_EXPORT_DIR", "").strip()
if _raw:
    export_dir = _resolve(_raw)
    if not os.path.isfile(os.path.join(export_dir, "ts_export.h")):
        raise SystemExit(
            f"TS_EXPORT_DIR={_raw}: no ts_export.h in {export_dir}; point it at a RUN/export "
            "folder written by `tinysift export --run RUN`"
        )
    env.Append(CPPPATH=[export_dir, ENGINE_SRC], CPPDEFINES=["TS_HAVE_EXPORT"])  # noqa: F821
    _json = os.path.join(export_dir, "export.json")
    if os.path.isfile(_json):
        with open(_json) as fp:
            _dims = model_dims(json.load(fp))
        env.Append(CPPDEFINES=[(f"TS_MODEL_{k}", v) for k, v in _dims.items()])  # noqa: F821
    env.BuildSources(  # noqa: F821
        os.path.join("$BUILD_DIR", "ts_export"), export_dir, src_filter="+<ts_export*.c>"
    )
    print(f"tinysift: export compiled in from {export_dir}")
