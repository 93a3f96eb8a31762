"""PlatformIO extra script: compile one export (``RUN/export/``) into the firmware.

    TS_EXPORT_DIR=runs/NAME/export tools/pio test -d firmware -e qemu-m4 -f test_golden

With TS_EXPORT_DIR set (absolute, or relative to the current directory or the repository
root), the export's ``ts_export*.c`` are built with the program, its folder is on the
include path (``ts_export.h``) and ``TS_HAVE_EXPORT`` is defined. Unset, nothing changes
(tests that need an export report SKIP). Unused arrays (e.g. the golden vectors in an app
build) are dropped by the linker's --gc-sections on the emulated boards.

It also defines the model dimensions the app's static buffers for update=last-block and
update=bias are sized with (firmware/src/app.h), read off the export's ``export.json`` layer
list exactly as the trainer's ts_trainer_sizes() reads the layer table (0 where the model
has no such layers; the trainer then refuses the mode):

    TS_MODEL_BLOCK_IN_C, TS_MODEL_BLOCK_PIXELS   the CONV_2D right below the AVERAGE_POOL_2D
                                                 before the head (RESHAPE / QUANTIZE between)
    TS_MODEL_BIAS_CHANNELS, TS_MODEL_BIAS_ACT_MAX, TS_MODEL_BIAS_MASK_BITS
        the conv/depthwise output channels, the largest layer input or output and the
        conv/depthwise output values below the head (0 when a layer there is not a conv,
        depthwise, average pool, reshape or quantize)

(tinysift.export.memory.backbone_dims is the same derivation for the memory plan; the app
reports the resulting buffer sizes in `@mem`, which tests/test_device_firmware.py compares
with the plan's twins.)
"""

import json
import os

Import("env")  # noqa: F821  (SCons provides it)

PROJECT_DIR = env.subst("$PROJECT_DIR")  # noqa: F821
ROOT = os.path.normpath(os.path.join(PROJECT_DIR, os.pardir))
ENGINE_SRC = os.path.join(PROJECT_DIR, "lib", "tsengine", "src")


def _count(dims):
    n = 1
    for d in dims:
        n *= int(d)
    return n


def model_dims(info):
    """The TS_MODEL_* values from export.json's "layers" and "head_layer"."""
    layers = [(lay["op"], lay["in"], lay["out"]) for lay in info["layers"]]
    head = int(info["head_layer"])
    dims = dict.fromkeys(("BLOCK_IN_C", "BLOCK_PIXELS", "BIAS_CHANNELS", "BIAS_ACT_MAX",
                          "BIAS_MASK_BITS"), 0)
    i = head
    while i > 0 and layers[i - 1][0] in ("RESHAPE", "QUANTIZE"):
        i -= 1
    if i >= 2 and layers[i - 1][0] == "AVERAGE_POOL_2D" and layers[i - 2][0] == "CONV_2D":
        _, din, dout = layers[i - 2]
        dims["BLOCK_IN_C"] = int(din[2])
        dims["BLOCK_PIXELS"] = int(dout[0]) * int(dout[1])
    below = layers[:head]
    float_ops = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "QUANTIZE")
    if below and all(op in float_ops for op, _, _ in below):
        convs = [dout for op, _, dout in below if op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
        dims["BIAS_CHANNELS"] = sum(int(d[2]) for d in convs)
        dims["BIAS_ACT_MAX"] = max(max(_count(a), _count(b)) for _, a, b in below)
        dims["BIAS_MASK_BITS"] = sum(_count(d) for d in convs)
    return dims


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
