"""The exporter's Python twin of the DSP kernels' scratch (export/memory.py:
layer_scratch_bytes, which writes TS_EXPORT_SCRATCH_BYTES and the memory plan) against the
engine's C (ts_layer_scratch_size with TS_USE_DSP=1, built on the host) on random layer
shapes: every path (im2col conv, the 3x3 channel planes of depthwise and 1-channel stems,
the plane cap, FC, the K limits) must size the same bytes."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from tinysift.export import memory
from tinysift.export import quant_math as qm
from tinysift.export.memory import layer_scratch_bytes
from tinysift.export.tflite_reader import OP_CODES, LayerSpec
from tools_needed import need_tools

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "firmware" / "lib" / "tsengine"
SOURCES = ["ts_executor.c", "ts_kernels.c", "ts_kernels_dsp.c", "ts_kernels_elementwise.c",
           "ts_softmax.c"]

MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "ts_kernels.h"
int main(void) {
    long v[16];
    while (scanf("%ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1],
                 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11], &v[12],
                 &v[13], &v[14], &v[15]) == 16) {
        ts_layer_t l;
        memset(&l, 0, sizeof l);
        l.op = (uint8_t)v[0];
        l.in.h = (int32_t)v[1]; l.in.w = (int32_t)v[2]; l.in.c = (int32_t)v[3];
        l.out.h = (int32_t)v[4]; l.out.w = (int32_t)v[5]; l.out.c = (int32_t)v[6];
        l.filter_h = (uint8_t)v[7]; l.filter_w = (uint8_t)v[8];
        l.stride_h = (uint8_t)v[9]; l.stride_w = (uint8_t)v[10];
        l.dilation_h = (uint8_t)v[11]; l.dilation_w = (uint8_t)v[12];
        l.pad_h = (int16_t)v[13]; l.pad_w = (int16_t)v[14];
        l.depth_multiplier = (uint16_t)v[15];
        printf("%lu\n", (unsigned long)ts_layer_scratch_size(&l));
    }
    return 0;
}
"""


def random_layer(rng: random.Random) -> LayerSpec:
    op = rng.choice(["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
    if op == "FULLY_CONNECTED":
        k = rng.randint(1, 1400)
        return LayerSpec(index=0, op=op, name="fc", in_dims=(1, 1, k),
                         out_dims=(1, 1, rng.randint(1, 100)), input_zero_point=0,
                         output_zero_point=0)
    h, w = rng.randint(1, 100), rng.randint(1, 100)
    c = 1 if rng.random() < 0.3 else rng.randint(1, 64)
    f = (3, 3) if rng.random() < 0.5 else (rng.randint(1, 5), rng.randint(1, 5))
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    dilation = (1, 1) if rng.random() < 0.7 else (rng.randint(1, 2), rng.randint(1, 2))
    same = rng.random() < 0.6
    out_hw, pad = [], []
    for size, fk, s, d in zip((h, w), f, stride, dilation, strict=True):
        eff = (fk - 1) * d + 1
        out = (size + s - 1) // s if same else (size - eff) // s + 1
        out_hw.append(out)
        pad.append(qm.same_padding(size, fk, s, d, out) if same else 0)
    if min(out_hw) < 1:
        return random_layer(rng)
    dm = 1 if op == "CONV_2D" or rng.random() < 0.7 else 2
    out_c = rng.randint(1, 80) if op == "CONV_2D" else c * dm
    return LayerSpec(index=0, op=op, name=op.lower(), in_dims=(h, w, c),
                     out_dims=(out_hw[0], out_hw[1], out_c), input_zero_point=0,
                     output_zero_point=0, stride=tuple(stride), dilation=tuple(dilation),
                     filter=f, depth_multiplier=dm, pad=tuple(pad))


def edge_layers() -> list[LayerSpec]:
    """The K limits themselves, which random shapes seldom hit: im2col up to K = 512 (a 4x4
    filter on 32 channels), 513 without scratch; FC up to 1,024 inputs, 1,025 without."""
    def conv(c: int, f: tuple[int, int]) -> LayerSpec:
        return LayerSpec(index=0, op="CONV_2D", name="conv", in_dims=(8, 8, c),
                         out_dims=(8 - f[0] + 1, 8 - f[1] + 1, 4), input_zero_point=0,
                         output_zero_point=0, filter=f)

    def fc(k: int) -> LayerSpec:
        return LayerSpec(index=0, op="FULLY_CONNECTED", name="fc", in_dims=(1, 1, k),
                         out_dims=(1, 1, 10), input_zero_point=0, output_zero_point=0)

    return [conv(32, (4, 4)), conv(513, (1, 1)), conv(171, (1, 3)), fc(1024), fc(1025)]


def test_python_scratch_twin_equals_the_engine(tmp_path, monkeypatch):
    need_tools("gcc")
    main = tmp_path / "scratch_main.c"
    main.write_text(MAIN)
    exe = tmp_path / "scratch_size"
    subprocess.run(["gcc", "-std=c99", "-O1", "-DTS_USE_DSP=1", f"-I{ENGINE / 'src'}",
                    f"-I{ENGINE / 'include'}", str(main),
                    *(str(ENGINE / "src" / s) for s in SOURCES), "-lm", "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    rng = random.Random(7)
    layers = [random_layer(rng) for _ in range(3000)] + edge_layers()
    lines = []
    for lay in layers:
        lines.append(" ".join(str(int(v)) for v in (
            OP_CODES[lay.op], *lay.in_dims, *lay.out_dims, *lay.filter, *lay.stride,
            *lay.dilation, *lay.pad, lay.depth_multiplier)))
    out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, check=True).stdout.split()
    assert len(out) == len(layers)
    mismatches = [(lay.op, lay.in_dims, lay.out_dims, lay.filter, lay.stride, lay.pad,
                   int(c_bytes), layer_scratch_bytes(lay))
                  for lay, c_bytes in zip(layers, out, strict=True)
                  if int(c_bytes) != layer_scratch_bytes(lay)]
    assert not mismatches, mismatches[:5]
    # every path was taken: planes (depthwise and 1-channel stems), a plane over the cap,
    # im2col, FC
    planes = [memory.plane3x3_bytes(lay) for lay in layers]
    monkeypatch.setattr(memory, "DSP_PLANE_MAX_BYTES", 1 << 40)
    uncapped = [memory.plane3x3_bytes(lay) for lay in layers]
    with_plane = [lay.op for n, lay in zip(planes, layers, strict=True) if n > 0]
    assert with_plane.count("DEPTHWISE_CONV_2D") > 50 and with_plane.count("CONV_2D") > 20
    assert sum(n == 0 < u for n, u in zip(planes, uncapped, strict=True)) > 10
    assert sum(lay.op == "CONV_2D" and n == 0 and layer_scratch_bytes(lay) > 0
               for n, lay in zip(planes, layers, strict=True)) > 50
    # at each K limit the kernel still stages (scratch), one past it it does not
    assert [layer_scratch_bytes(lay) > 0 for lay in edge_layers()] == [
        True, False, False, True, False]
