"""Graph execution (format version 2): a Keras model with a residual ADD and
GlobalAveragePooling2D (MEAN, keep_dims either way), and one with every other new op (PAD,
HARD_SWISH, LOGISTIC, MUL, CONCATENATION, pooling at strides 1 and 2, float input and output
at the edges), run bit-exact with the TFLM runtime on the engine.

The model is built here (random weights, calibrated on random images: bit-exactness does not
need a trained model), converted to full-integer int8, exported as a bare ``.tflite``
(``tinysift.stages.export.export_tflite``, no run folder) with 200 random inputs and TFLM's
per-layer outputs, and run by firmware/test/test_golden/test_main.c exactly as the pipeline's
exports are (tests/test_engine_golden.py): host gcc, scalar and DSP kernels, plain and under
ASan/UBSan. The arena is planned from tensor lifetimes and must not exceed TFLM's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import test_engine_golden as eg
from tflite_edit import patched
from tools_needed import need_tools

GRAPH_INPUTS = eg.MIN_INPUTS


@pytest.fixture(scope="module", autouse=True)
def _gcc_present():
    need_tools("gcc")


def _residual_gap_model(keep_dims: bool):
    from tinysift.tfcompat import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="c2")(y)
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))  # ADD with a fused RELU
    x = keras.layers.GlobalAveragePooling2D(keepdims=keep_dims)(x)  # MEAN
    if keep_dims:
        x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(4, activation="softmax", name="head")(x)
    return keras.Model(inp, out)


def _ops_model():
    """Every other new op in one graph: PAD, HARD_SWISH, a squeeze-excite (MEAN keep_dims,
    LOGISTIC, MUL broadcasting (1, 1, C)), MAX_POOL_2D stride 1 and a CONCATENATION of two
    branches, AVERAGE_POOL_2D stride 2, LOGISTIC on a feature map."""
    from tinysift.tfcompat import keras, tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    x = keras.layers.ZeroPadding2D(((1, 1), (2, 0)))(x)                     # PAD
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) / 6.0)(x)     # HARD_SWISH
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)                # MEAN
    s = keras.layers.Conv2D(8, 1, activation="sigmoid", name="se")(s)       # LOGISTIC
    x = keras.layers.Multiply()([x, s])                                      # MUL
    a = keras.layers.MaxPooling2D(3, strides=1, padding="same")(x)
    b = keras.layers.Conv2D(4, 1, name="branch")(x)
    x = keras.layers.Concatenate()([a, b])                                   # CONCATENATION
    x = keras.layers.AveragePooling2D(3, strides=2)(x)
    x = keras.layers.Activation("sigmoid")(x)
    out = keras.layers.Dense(4, activation="softmax", name="head")(keras.layers.Flatten()(x))
    return keras.Model(inp, out)


def _convert(model, float_edges: bool) -> bytes:
    """Full-integer int8 conversion; ``float_edges`` keeps a float input and output (a
    QUANTIZE first and a DEQUANTIZE last)."""
    from tinysift.quantize.convert import convert_int8, quiet_stderr
    from tinysift.tfcompat import tf

    rep = np.random.default_rng(0).integers(0, 255, (32, 12, 12, 3), np.uint8)
    if not float_edges:
        return convert_int8(model, rep)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rep[i:i + 1].astype(np.float32) / 255]
                                           for i in range(len(rep)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with quiet_stderr():
        return bytes(conv.convert())


MODELS = {"mean": lambda: _convert(_residual_gap_model(False), False),
          "mean-keepdims": lambda: _convert(_residual_gap_model(True), False),
          "ops-float-edges": lambda: _convert(_ops_model(), True)}


@pytest.fixture(scope="module", params=list(MODELS))
def graph_export(request, tmp_path_factory):
    from tinysift.stages.export import export_tflite

    folder = tmp_path_factory.mktemp(f"graph-{request.param}")
    tflite = MODELS[request.param]()
    path = folder / "model.tflite"
    path.write_bytes(tflite)
    info = export_tflite(path, folder / "export", count=GRAPH_INPUTS, seed=1)
    return folder / "export", info, tflite, path


def test_graph_is_parsed_with_its_residual(graph_export):
    _, info, tflite, _ = graph_export
    from tinysift.quantize.tflm import arena_usage

    ops = [lay["op"] for lay in info["layers"]]
    if "ADD" in ops:
        assert "MEAN" in ops
        add = info["layers"][ops.index("ADD")]
        assert len(add["inputs"]) == 2  # the skip connection and the block's output
    else:
        assert set(ops) >= {"PAD", "HARD_SWISH", "MEAN", "LOGISTIC", "MUL", "CONCATENATION",
                            "MAX_POOL_2D", "AVERAGE_POOL_2D"}
        assert info["input"]["float"] and info["output"]["float"]
    readers = [t for lay in info["layers"] for t in lay["inputs"]]
    assert any(readers.count(t) > 1 for t in set(readers))  # a tensor with two readers
    assert info["arena_bytes"] <= arena_usage(tflite)["head"]  # <= TFLM's planned tensors


@pytest.mark.parametrize("dsp", [0, 1], ids=["scalar", "dsp"])
@pytest.mark.parametrize("build", list(eg.BUILDS))
def test_graph_bit_exact_native(graph_export, build, dsp, objdir):
    export, _, _, _ = graph_export
    exe = eg.build_program(eg.TESTS / "test_golden" / "test_main.c",
                           objdir / f"graph-{abs(hash((str(export), build, dsp)))}", build,
                           [f"TS_USE_DSP={dsp}", "TS_HAVE_EXPORT"],
                           extra=eg.export_objects(export, build, objdir), include=[export])
    r = eg.run_program(exe)
    m = eg.check_golden_output(r.stdout + r.stderr, export, r.returncode)
    assert int(m["dsp"]) == dsp and int(m["inputs"]) == GRAPH_INPUTS


@pytest.mark.qemu
def test_graph_bit_exact_qemu_m4(graph_export, tmp_path):
    """The same on the emulated Cortex-M4 (QEMU mps2-an386, the real SMLAD path) through
    PlatformIO, as tests/test_engine_golden.py runs the pipeline's exports."""
    need_tools("qemu-system-arm", "arm-none-eabi-gcc", pio=True)
    export = graph_export[0]
    r = eg.pio_test(tmp_path, "qemu-m4", "test_golden", export)
    m = eg.check_golden_output(r.stdout + r.stderr, export, r.returncode)
    assert m["platform"] == "qemu-mps2-an386" and m["dsp"] == "1"


# ---- tinysift engine check --------------------------------------------------------------------

def tinysift(*args):
    return subprocess.run([sys.executable, "-m", "tinysift.cli.app", *args],
                          capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("graph_export", ["mean"], indirect=True)  # one is enough for the CLI
def test_engine_check_reports_all_identical(graph_export):
    _, _, _, path = graph_export
    r = tinysift("engine", "check", "--tflite", str(path), "--count", "20", "--board",
                 "nucleo_l4r5zi")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for kind in ("scalar", "dsp"):
        assert f"{kind} kernels: 20/20 outputs identical to TFLM: all identical" in r.stdout
    assert "ADD" in r.stdout and "MEAN" in r.stdout and "activation arena" in r.stdout
    # --board also runs one inference on the emulated Cortex-M4 and counts its instructions
    m = re.search(r"([\d,]+) instructions for ([\d,]+) MACs .* stack ([\d,]+) B; on "
                  r"nucleo_l4r5zi at 120 MHz, one cycle each: ([\d.]+) ms", r.stdout)
    assert m, r.stdout[-2000:]
    instr, macs, stack = (int(m.group(i).replace(",", "")) for i in (1, 2, 3))
    assert macs > 0 and macs / 2 < instr < 50 * macs + 50_000  # SMLAD's floor; a sane bound
    assert 0 < stack <= 16_384  # within the board's reserved stack
    assert float(m.group(4)) == pytest.approx(instr / 120e6 * 1e3, abs=0.006)


def test_engine_check_refuses_in_one_line(tmp_path):
    from tinysift.quantize.convert import convert_int8
    from tinysift.tfcompat import keras

    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer at all")
    r = tinysift("engine", "check", "--tflite", str(garbage))
    assert r.returncode == 2 and "not a readable .tflite" in r.stderr, r.stderr[-2000:]

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.Conv2DTranspose(4, 3, name="deconv")(x)
    out = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(x))
    path = tmp_path / "deconv.tflite"
    path.write_bytes(convert_int8(keras.Model(inp, out), np.random.default_rng(0).integers(
        0, 255, (8, 8, 8, 1), np.uint8)))
    r = tinysift("engine", "check", "--tflite", str(path))
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]  # TF logs aside
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert "layer 1" in lines[0] and "deconv" in lines[0]

    inp = keras.Input((8, 8, 1), batch_size=2)
    out = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inp)))
    path = tmp_path / "batch2.tflite"
    path.write_bytes(convert_int8(keras.Model(inp, out), np.random.default_rng(0).integers(
        0, 255, (8, 8, 8, 1), np.uint8)))
    r = tinysift("engine", "check", "--tflite", str(path))
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and "batch 2" in lines[0], r.stderr[-2000:]


@pytest.fixture(scope="module")
def objdir(tmp_path_factory):
    return tmp_path_factory.mktemp("engine-graph")


@pytest.mark.parametrize("graph_export", ["ops-float-edges"], indirect=True)
def test_float_edges_bit_exact(graph_export, tmp_path):
    """ts_quantize_input / ts_dequantize_output (the C float edges) equal TFLM's QUANTIZE of
    the float inputs and DEQUANTIZE of the int8 outputs, bit for bit."""
    import ctypes

    export, info, _tflite, _ = graph_export
    lib = tmp_path / "libengine.so"
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-std=c99", "-O2", f"-I{eg.ENGINE}",
                        f"-I{export}", "-o", str(lib), str(export / "ts_export_model.c"),
                        *map(str, eg.ENGINE_SRCS), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    so = ctypes.CDLL(str(lib))
    model = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.in_dll(so, "ts_export_model")))
    f32, i8 = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int8)
    so.ts_quantize_input.argtypes = [ctypes.c_void_p, f32, i8]
    so.ts_dequantize_output.argtypes = [ctypes.c_void_p, i8, f32]
    with np.load(export / "golden.npz") as g:
        out_int8, out_float = g["outputs"], g["outputs_tflite"]
        x_int8 = g["x_test"]
    # inputs off the grid, exactly halfway between two steps, and beyond int8's range
    from tinysift.export.golden import layer_outputs

    scale, zp = info["input"]["scale"], info["input"]["zero_point"]
    rng = np.random.default_rng(3)
    shape = (40, *x_int8.shape[1:])
    steps = rng.integers(-140, 140, shape) + rng.choice([0.5, -0.5, 0.25, 0.0], shape)
    x = ((steps - zp) * np.float32(scale)).astype(np.float32)
    x_int8 = np.asarray(layer_outputs(_tflite, x)[0], np.int8)
    n_in, n_out = x_int8[0].size, out_int8[0].size
    for s in range(len(x)):
        q = np.zeros(n_in, np.int8)
        xs = np.ascontiguousarray(x[s].reshape(-1))
        assert so.ts_quantize_input(model, xs.ctypes.data_as(f32), q.ctypes.data_as(i8)) == 0
        assert np.array_equal(q, x_int8[s].reshape(-1)), f"sample {s} quantized"
    # beyond what TFLM defines (its x86 build casts out-of-range floats to int32, undefined:
    # -1e12 and NaN come out 127 there): saturated, NaN as the zero point (ts_quantize_input)
    for v, want in ((1e12, 127), (-1e12, -128), (np.inf, 127), (-np.inf, -128), (np.nan, zp)):
        q = np.zeros(n_in, np.int8)
        xs = np.full(n_in, v, np.float32)
        assert so.ts_quantize_input(model, xs.ctypes.data_as(f32), q.ctypes.data_as(i8)) == 0
        assert (q == want).all(), (v, q[:8])
    for s in range(len(out_int8)):
        y = np.zeros(n_out, np.float32)
        o = np.ascontiguousarray(out_int8[s].reshape(-1))
        assert so.ts_dequantize_output(model, o.ctypes.data_as(i8), y.ctypes.data_as(f32)) == 0
        assert np.array_equal(y, out_float[s].reshape(-1)), f"sample {s} dequantized"


# one model per input type (int8, float)
@pytest.mark.parametrize("graph_export", ["mean", "ops-float-edges"], indirect=True)
def test_engine_run_writes_tflm_identical_outputs(graph_export, tmp_path):
    """`tinysift engine run`: the engine's outputs equal TFLM's, float edges included (float
    inputs off the quantization grid in, float outputs out)."""
    from tinysift.quantize.tflm import run_tflm

    _, info, tflite, path = graph_export
    rng = np.random.default_rng(5)
    shape = (30, *info["input"]["shape"])
    if info["input"]["float"]:
        x = rng.uniform(-0.2, 1.2, shape).astype(np.float32)
    else:
        x = rng.integers(-128, 128, shape).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    r = tinysift("engine", "run", "--tflite", str(path), "--inputs", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    y = np.load(tmp_path / "y.npy")
    want = run_tflm(tflite, x)[0]
    assert y.dtype == want.dtype and np.array_equal(y, want.reshape(y.shape))
    # np.save adds .npy to a path without it: the line says the file written (it said "y")
    (tmp_path / "y.npy").unlink()
    r = tinysift("engine", "run", "--tflite", str(path), "--inputs", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y"))
    assert r.returncode == 0 and r.stdout.strip().endswith(f"-> {tmp_path / 'y.npy'}"), \
        r.stdout[-2000:] + r.stderr[-2000:]
    assert np.array_equal(np.load(tmp_path / "y.npy"), y)


# ---- single ops at their edges ------------------------------------------------------------------

def _convert_floats(model, lo: float, hi: float) -> bytes:
    """Full-integer int8 conversion calibrated on floats uniform in [lo, hi]: the range sets
    the input's scale, wide enough that the int8 inputs reach the ops' edges (LOGISTIC's
    radius, SOFTMAX's diff_min, HARD_SWISH's left-shifted relu multiplier)."""
    from tinysift.quantize.convert import quiet_stderr
    from tinysift.tfcompat import tf

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    rep = np.random.default_rng(0).uniform(lo, hi, (32, *shape)).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(len(rep)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    with quiet_stderr():
        return bytes(conv.convert())


def _set_output_quant(tflite: bytes, op: str, zero_point: int | None = None,
                      scale: float | str | None = None) -> bytes:
    """The model with the output zero point and/or scale of its one `op` changed (scale
    "input": the op's input's): TFLM runs what the converter does not make, a fused RELU
    whose clamp binds (the converter's starts at the output zero point, -128), a MEAN of
    equal input and output quantization, a MEAN that saturates."""
    def edit(m, g, schema):
        codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
        want = getattr(schema.BuiltinOperator, op)
        (o,) = [o for o in g.operators if codes[o.opcodeIndex] == want]
        q = g.tensors[o.outputs[0]].quantization
        if scale == "input":
            q.scale = list(g.tensors[o.inputs[0]].quantization.scale)
            q.zeroPoint = list(g.tensors[o.inputs[0]].quantization.zeroPoint)
        elif scale is not None:
            q.scale = [scale]
        if zero_point is not None:
            q.zeroPoint = [zero_point]

    return patched(tflite, edit)


def _edge_models() -> dict[str, bytes]:
    from tinysift.tfcompat import keras, tf

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((16, 16, 1))
    logistic = keras.Model(inp, L.Activation("sigmoid")(inp))
    inp = keras.Input((4, 8, 16))
    softmax = keras.Model(inp, L.Softmax()(inp))
    inp = keras.Input((4, 16))
    softmax_wide = keras.Model(inp, L.Softmax()(inp))
    inp = keras.Input((6, 6, 3))
    a, s = L.Conv2D(8, 1, name="a")(inp), L.Conv2D(1, 1, name="s")(inp)
    x = L.Lambda(lambda t: t[0] * t[1])([a, s])  # MUL broadcasting (6, 6, 1) along C
    broadcast = keras.Model(inp, L.Lambda(lambda t: t[0] + t[1])([x, s]))  # ADD, the same
    inp = keras.Input((6, 6, 4))
    x = L.Add()([L.Conv2D(4, 1, activation="relu", name="a")(inp), L.Conv2D(4, 1, name="b")(inp)])
    relu_add = keras.Model(inp, L.ReLU()(x))  # ADD with a fused RELU
    inp = keras.Input((5, 5, 8))
    mean = keras.Model(inp, L.GlobalAveragePooling2D()(inp))  # keep_dims false
    mean_kd = keras.Model(inp, L.Lambda(lambda t: tf.reduce_mean(t, [1, 2], keepdims=True))(inp))
    inp = keras.Input((4, 4, 3))
    x = L.Concatenate(axis=2)([L.Conv2D(3, 1, name="a")(inp), L.Conv2D(3, 1, name="b")(inp)])
    concat = keras.Model(inp, L.Concatenate(axis=1)([x, L.Conv2D(3, 1, name="c")(x)]))  # W, H
    inp = keras.Input((8, 8, 2))
    hswish = keras.Model(inp, L.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) / 6.0)(inp))
    inp = keras.Input((5, 5, 4))
    x = L.ReLU()(L.Lambda(lambda t: t * tf.constant([0.5, -1.5, 2.0, 0.75]))(inp))
    const = keras.Model(inp, L.Lambda(lambda t: t + tf.constant([1.0, -0.5, 0.25, -2.0]))(x))
    return {"logistic": _convert_floats(logistic, -24, 24),
            "softmax": _convert_floats(softmax, -24, 24),
            # input scale ~24: one step below a row's max is exp(-24), 0 in Q0.31
            "softmax-wide": _convert_floats(softmax_wide, -3000, 3000),
            "broadcast": _convert_floats(broadcast, -2, 2),
            "add-relu": _set_output_quant(_convert_floats(relu_add, -2, 2), "ADD", 0),
            "mean-equal": _set_output_quant(_convert_floats(mean, -2, 2), "MEAN", scale="input"),
            "mean-equal-keepdims": _set_output_quant(_convert_floats(mean_kd, -2, 2), "MEAN",
                                                     scale="input"),
            "mean-saturates": _set_output_quant(_convert_floats(mean, 0, 2), "MEAN", 0, 0.001),
            "concat": _convert_floats(concat, -2, 2),
            "hard-swish": _convert_floats(hswish, -24, 24),
            "const-operands": _convert_floats(const, -2, 2)}


def _edge_inputs(shape: tuple[int, ...], count: int = GRAPH_INPUTS) -> np.ndarray:
    """Random int8 inputs, and among them every int8 value (8 orders), rows of one value
    (-128, -127, 0, 127) and one 127 per row among -128s."""
    x = np.random.default_rng(1).integers(-128, 128, (count, *shape)).astype(np.int8)
    flat = x.reshape(count, -1)
    n, c = flat.shape[1], shape[-1]
    for s in range(8):
        flat[s] = np.roll(np.arange(-128, 128), s * 37)[np.arange(n) % 256]
    for s, v in enumerate((-128, -127, 0, 127)):
        flat[8 + s] = v
    flat[12] = -128
    flat[12, ::c] = 127
    return x


@pytest.fixture(scope="module")
def edge_exports(tmp_path_factory) -> dict[str, Path]:
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.stages.export import export_tflite

    out = {}
    for name, tflite in _edge_models().items():
        folder = tmp_path_factory.mktemp(f"edge-{name}")
        (folder / "model.tflite").write_bytes(tflite)
        x = _edge_inputs(tuple(parse_tflite(tflite).input_dims))
        export_tflite(folder / "model.tflite", folder / "export", inputs=x)
        out[name] = folder / "export"
    return out


EDGE_OPS = {"logistic": ["LOGISTIC"], "softmax": ["SOFTMAX"], "softmax-wide": ["SOFTMAX"],
            "hard-swish": ["HARD_SWISH"],
            "broadcast": ["CONV_2D", "CONV_2D", "MUL", "ADD"],
            "add-relu": ["CONV_2D", "CONV_2D", "ADD"], "mean-equal": ["MEAN"],
            "mean-equal-keepdims": ["MEAN"],
            "mean-saturates": ["MEAN"],
            "concat": ["CONV_2D", "CONV_2D", "CONCATENATION", "CONV_2D", "CONCATENATION"],
            "const-operands": ["MUL", "ADD"]}


@pytest.mark.parametrize("name", list(EDGE_OPS))
def test_single_ops_at_their_edges_bit_exact(edge_exports, name, objdir):
    """Ops the graphs above reach only inside their ranges, bit-exact with TFLM (scalar
    kernels, -O2; these ops have no DSP path) on every int8 value: LOGISTIC and SOFTMAX on
    the model input (rows of one value, saturated outputs; SOFTMAX also at an input scale so
    wide that one step below a row's max has an exp of 0, where a row of -128s is right only
    if the row's max starts at -128), HARD_SWISH with a left-shifted relu multiplier, MUL and
    ADD broadcasting along C, an ADD whose fused RELU clamps, a MEAN of equal input and
    output quantization (keep_dims false and true: TFLM runs its multiplier path for both)
    and one that saturates, CONCATENATION along W and H, MUL and ADD of
    a constant operand (per channel)."""
    import json

    export = edge_exports[name]
    info = json.loads((export / "export.json").read_text())
    assert [lay["op"] for lay in info["layers"]] == EDGE_OPS[name]
    exe = eg.build_program(eg.TESTS / "test_golden" / "test_main.c",
                           objdir / f"edge-{name}", "O2", ["TS_USE_DSP=0", "TS_HAVE_EXPORT"],
                           extra=eg.export_objects(export, "O2", objdir), include=[export])
    r = eg.run_program(exe)
    eg.check_golden_output(r.stdout + r.stderr, export, r.returncode)


@pytest.mark.parametrize("name", ["concat", "broadcast"])
def test_single_op_indexing_under_sanitizers(edge_exports, name, objdir):
    """CONCATENATION along W and H, and MUL and ADD broadcasting along C, under ASan and
    UBSan: a loop over the wrong extent writes past the output (a global of the golden
    program) while leaving every compared byte right (CONCATENATION along W taking the
    output's width for its number of rows passed the -O2 run above)."""
    export = edge_exports[name]
    exe = eg.build_program(eg.TESTS / "test_golden" / "test_main.c",
                           objdir / f"edge-asan-{name}", "asan",
                           ["TS_USE_DSP=0", "TS_HAVE_EXPORT"],
                           extra=eg.export_objects(export, "asan", objdir), include=[export])
    r = eg.run_program(exe)
    eg.check_golden_output(r.stdout + r.stderr, export, r.returncode)


# ---- MLPerf Tiny's reference models -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet8", "mobilenet", "ds_cnn", "autoencoder"])
def test_mlperf_tiny_bit_exact(name):
    """Each of MLPerf Tiny's four reference models (tinysift.models.mlperf_tiny), trained
    briefly on stand-in data and converted to int8, runs bit-exact on the engine natively
    (scalar and DSP kernels; `engine check`'s path) with an arena <= TFLM's."""
    from scratch import mlperf_tflite
    from tinysift.stages.engine import check_tflite

    path = mlperf_tflite(name)
    r = check_tflite(path, count=20)
    assert r.ok, r.results
    assert r.tflm_arena_head is not None and r.arena_bytes <= r.tflm_arena_head
