"""The model dimensions the firmware's static buffers for update=last-block and update=bias
are sized with (firmware/src/app.h, tools/bench/trainer_bench.c), read off an export's
``export.json`` layer list exactly as the trainer's ts_trainer_sizes() reads the layer table
(0 where the model has no such layers; the trainer then refuses the mode):

    TS_MODEL_BLOCK_IN_C, TS_MODEL_BLOCK_PIXELS   the CONV_2D right below the AVERAGE_POOL_2D
                                                 before the head (RESHAPE / QUANTIZE between)
    TS_MODEL_BIAS_CHANNELS, TS_MODEL_BIAS_ACT_MAX, TS_MODEL_BIAS_MASK_BITS
        the conv/depthwise output channels, the largest layer input or output and the
        conv/depthwise output values below the head (0 when a layer there is not a conv,
        depthwise, average pool, reshape or quantize, or does not read its predecessor)

Standard library only: PlatformIO's own Python runs it (ts_export_dir.py), and so does
tools/bench_trainer.sh (``python3 firmware/scripts/ts_model_dims.py EXPORT_DIR`` prints the
-D flags). tinysift.export.memory.backbone_dims is the same derivation for the memory plan;
the app reports the resulting buffer sizes in `@mem`, which tests/test_device_firmware.py
compares with the plan's twins.
"""

import json
import os
import sys

CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")
FLOAT_OPS = CONVS + ("AVERAGE_POOL_2D", "RESHAPE", "QUANTIZE")


def _count(dims):
    n = 1
    for d in dims:
        n *= int(d)
    return n


def model_dims(info):
    """{name: value} of the TS_MODEL_* macros from export.json's "layers" and "head_layer"."""
    layers = [(lay["op"], lay["in"], lay["out"], lay.get("inputs", [i]))
              for i, lay in enumerate(info["layers"])]
    head = info["head_layer"]
    head = len(layers) if head is None else int(head)
    dims = dict.fromkeys(("BLOCK_IN_C", "BLOCK_PIXELS", "BIAS_CHANNELS", "BIAS_ACT_MAX",
                          "BIAS_MASK_BITS"), 0)
    def chain(lo):  # the float layers read only their predecessor's output
        return all(list(layers[i][3]) == [i] for i in range(lo, head))

    i = head
    while i > 0 and layers[i - 1][0] in ("RESHAPE", "QUANTIZE"):
        i -= 1
    if i >= 2 and layers[i - 1][0] == "AVERAGE_POOL_2D" and layers[i - 2][0] == "CONV_2D" \
            and chain(i - 2):
        din, dout = layers[i - 2][1], layers[i - 2][2]
        dims["BLOCK_IN_C"] = int(din[2])
        dims["BLOCK_PIXELS"] = int(dout[0]) * int(dout[1])
    below = layers[:head]
    if below and all(lay[0] in FLOAT_OPS for lay in below) and chain(0):
        convs = [lay[2] for lay in below if lay[0] in CONVS]
        dims["BIAS_CHANNELS"] = sum(int(d[2]) for d in convs)
        dims["BIAS_ACT_MAX"] = max(max(_count(lay[1]), _count(lay[2])) for lay in below)
        dims["BIAS_MASK_BITS"] = sum(_count(d) for d in convs)
    return dims


if __name__ == "__main__":
    with open(os.path.join(sys.argv[1], "export.json")) as fp:
        print(" ".join(f"-DTS_MODEL_{k}={v}" for k, v in model_dims(json.load(fp)).items()))
