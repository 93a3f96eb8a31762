"""Quantization checked with TFLM, the C export checked against the .tflite, the memory plan."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinysift.errors import FitError, UnsupportedOpError
from tools_needed import need_tools

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "firmware" / "lib" / "tsengine" / "src"


def test_int8_within_one_point_of_float(digits_run):
    stage = json.loads((digits_run / "manifest.json").read_text())["stages"]["quantize"]
    r = stage["results"]
    assert r["mode"] == "ptq" and r["arena_bytes"] > 0
    assert abs(r["float_acc"] - r["int8_acc"]) <= 0.01
    assert r["int8_acc"] > 0.95


@pytest.mark.parametrize("compiler, flags", [
    ("gcc", ["-std=c99", "-pedantic"]),
    ("arm-none-eabi-gcc", ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                           "-mfpu=fpv4-sp-d16"]),
])
def test_export_compiles_without_warnings(digits_run, tmp_path, compiler, flags):
    need_tools(compiler)
    for src in ("ts_export_model.c", "ts_export_data.c", "ts_export_golden.c"):
        r = subprocess.run([compiler, *flags, "-Wall", "-Wextra", "-Werror", f"-I{ENGINE}",
                            "-c", str(digits_run / "export" / src), "-o",
                            str(tmp_path / f"{src}.o")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


class Dims(ctypes.Structure):
    _fields_ = [("h", ctypes.c_int32), ("w", ctypes.c_int32), ("c", ctypes.c_int32)]


class Layer(ctypes.Structure):
    _fields_ = [("op", ctypes.c_uint8), ("padding", ctypes.c_uint8),
                ("stride_h", ctypes.c_uint8), ("stride_w", ctypes.c_uint8),
                ("dilation_h", ctypes.c_uint8), ("dilation_w", ctypes.c_uint8),
                ("filter_h", ctypes.c_uint8), ("filter_w", ctypes.c_uint8),
                ("depth_multiplier", ctypes.c_uint16), ("pad_h", ctypes.c_int16),
                ("pad_w", ctypes.c_int16), ("in_", Dims), ("out", Dims),
                ("input_zero_point", ctypes.c_int32), ("output_zero_point", ctypes.c_int32),
                ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32),
                ("weights", ctypes.POINTER(ctypes.c_int8)), ("weights_len", ctypes.c_uint32),
                ("bias", ctypes.POINTER(ctypes.c_int32)), ("bias_len", ctypes.c_uint32),
                ("multiplier", ctypes.POINTER(ctypes.c_int32)),
                ("shift", ctypes.POINTER(ctypes.c_int32)), ("quant_len", ctypes.c_uint32),
                ("sm_mult", ctypes.c_int32), ("sm_shift", ctypes.c_int32),
                ("sm_diff_min", ctypes.c_int32),
                # format version 2: the graph
                ("num_inputs", ctypes.c_uint16), ("inputs", ctypes.c_uint16 * 10),
                ("in2", Dims), ("input2_zero_point", ctypes.c_int32), ("axis", ctypes.c_int32),
                ("pad_c", ctypes.c_int16)]


class TensorRow(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_uint32), ("last_use", ctypes.c_uint32)]


class Model(ctypes.Structure):
    _fields_ = [("format_version", ctypes.c_uint32), ("num_layers", ctypes.c_uint32),
                ("layers", ctypes.POINTER(Layer)), ("arena_bytes", ctypes.c_uint32),
                ("input", Dims), ("input_scale", ctypes.c_float),
                ("input_zero_point", ctypes.c_int32), ("head_layer", ctypes.c_uint32),
                ("feature_dim", ctypes.c_uint32), ("feature_scale", ctypes.c_float),
                ("feature_zero_point", ctypes.c_int32), ("num_classes", ctypes.c_uint32),
                ("logit_scale", ctypes.c_float), ("logit_zero_point", ctypes.c_int32),
                ("head_weights", ctypes.POINTER(ctypes.c_float)),
                ("head_bias", ctypes.POINTER(ctypes.c_float)),
                ("content_hash", ctypes.c_char_p),
                ("num_tensors", ctypes.c_uint32), ("tensors", ctypes.POINTER(TensorRow)),
                ("tflite_first_op", ctypes.c_uint32), ("input_float", ctypes.c_uint8),
                ("output_float", ctypes.c_uint8), ("output_scale", ctypes.c_float),
                ("output_zero_point", ctypes.c_int32)]


class Dataset(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint32), ("sample_bytes", ctypes.c_uint32),
                ("x", ctypes.POINTER(ctypes.c_int8)), ("y", ctypes.POINTER(ctypes.c_uint8))]


def test_compiled_arrays_equal_the_tflite_tensors(digits_run, tmp_path):
    """Load the compiled C back (ctypes) and compare every tensor with the .tflite, read
    independently through LiteRT's interpreter (not tinysift's reader)."""
    from tinysift.tfcompat import tf

    export = digits_run / "export"
    lib = tmp_path / "libexport.so"
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-std=c99", f"-I{ENGINE}", "-o", str(lib),
                        str(export / "ts_export_model.c"), str(export / "ts_export_data.c")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    so = ctypes.CDLL(str(lib))
    model = Model.in_dll(so, "ts_export_model")
    tflite = (digits_run / "model.tflite").read_bytes()
    info = json.loads((export / "export.json").read_text())
    assert model.format_version == 2 and model.content_hash.decode() == info["content_hash"]
    # the graph: every layer of this chain reads its predecessor; the tensor plan as written
    assert model.num_tensors == model.num_layers + 1 and not model.input_float
    for i in range(model.num_layers):
        assert model.layers[i].num_inputs == 1 and model.layers[i].inputs[0] == i
    offsets = [model.tensors[t].offset for t in range(model.num_tensors)]
    ext = 0xFFFFFFFF
    assert offsets == [ext if t["offset"] is None else t["offset"] for t in info["tensors"]]
    assert [model.tensors[t].last_use for t in range(model.num_tensors)] == [
        t["last"] for t in info["tensors"]]

    interp = tf.lite.Interpreter(model_content=tflite)
    ops = interp._get_ops_details()
    tensors = {d["index"]: d for d in interp.get_tensor_details()}
    assert model.num_layers == len(ops)
    checked = 0
    for i, op in enumerate(ops):
        layer = model.layers[i]
        assert layer.out.h * layer.out.w * layer.out.c == int(
            np.prod(tensors[op["outputs"][0]]["shape"]))
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = interp.get_tensor(op["inputs"][1])
            got = np.ctypeslib.as_array(layer.weights, shape=(layer.weights_len,))
            assert np.array_equal(got, w.reshape(-1)), f"layer {i} weights"
            b = interp.get_tensor(op["inputs"][2])
            got_b = np.ctypeslib.as_array(layer.bias, shape=(layer.bias_len,))
            assert np.array_equal(got_b, b.reshape(-1)), f"layer {i} bias"
            q_in = tensors[op["inputs"][0]]["quantization_parameters"]
            q_out = tensors[op["outputs"][0]]["quantization_parameters"]
            assert layer.input_zero_point == int(q_in["zero_points"][0])
            assert layer.output_zero_point == int(q_out["zero_points"][0])
            checked += 1
    assert checked >= 5
    with np.load(export / "golden.npz") as g:
        for name in ("train", "test"):
            ds = Dataset.in_dll(so, f"ts_export_{name}")
            x = np.ctypeslib.as_array(ds.x, shape=(ds.count * ds.sample_bytes,))
            y = np.ctypeslib.as_array(ds.y, shape=(ds.count,))
            assert np.array_equal(x.reshape(ds.count, -1), g[f"x_{name}"].reshape(ds.count, -1))
            assert np.array_equal(y, g[f"y_{name}"])
        hw = np.ctypeslib.as_array(model.head_weights,
                                   shape=(model.num_classes * model.feature_dim,))
        assert np.array_equal(hw, g["head_w"].reshape(-1))


def test_unsupported_op_is_named(tmp_path):
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.quantize.convert import convert_int8
    from tinysift.tfcompat import keras

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.Conv2DTranspose(4, 3, name="deconv")(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3, name="head")(x)
    tflite = convert_int8(keras.Model(inp, out),
                          np.random.default_rng(0).integers(0, 255, (8, 8, 8, 1), np.uint8))
    named = r"op [A-Z_]+ at layer 1 \(output tensor '[^']*deconv"
    with pytest.raises(UnsupportedOpError, match=named):
        parse_tflite(tflite)


def test_memory_plan_refuses_oversize_with_numbers_and_fix():
    """The footprint of the default model on 28x28 inputs, converted and parsed (not typed)."""
    from tinysift.boards import load_board
    from tinysift.export.memory import check_fits, model_footprint
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.models import ModelConfig, build_model
    from tinysift.quantize.convert import convert_int8

    model = build_model((28, 28, 1), 10, ModelConfig())
    tflite = convert_int8(model, np.random.default_rng(0).integers(0, 255, (8, 28, 28, 1),
                                                                     np.uint8))
    fp = model_footprint(parse_tflite(tflite), len(tflite))
    assert fp.sample_bytes == 784 and fp.num_classes == 10 and fp.tflite_bytes == len(tflite)
    nano = load_board("nano33ble")
    with pytest.raises(FitError) as err:  # no db streaming buffer: 4.7 MB fits a bigger board
        check_fits(fp, nano, train_samples=6000, test_samples=200, db_capacity=0)
    msg = str(err.value)
    assert "needs" in msg and "flash, board has 1024 KB" in msg and "over by" in msg
    assert "keep at most" in msg and "choose esp32-s3" in msg
    most = int(msg.split("keep at most ")[1].split()[0])
    assert check_fits(fp, nano, most, 200, db_capacity=0).fits
    with pytest.raises(FitError):
        check_fits(fp, nano, most + 1, 200, db_capacity=0)
    # With a db buffer as large as the set (the default), RAM runs out too: no board fits.
    with pytest.raises(FitError, match="RAM, board has 256 KB") as err:
        check_fits(fp, nano, train_samples=6000, test_samples=200)
    assert "choose" not in str(err.value) and "keep at most" in str(err.value)


def test_cli_export_oversize_exits_nonzero_and_fit_shrinks(tmp_path, capfd):
    """A real MNIST run with 3,000 kept samples (2.3 MB of int8 images) on nano33ble (1 MB
    of flash), through the CLI's entry point (in this process: its error path is main()'s,
    the same as the console script's)."""
    from tinysift.cli.app import main
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    run = ROOT / "runs" / "_scratch" / "export-oversize-mnist"
    train("mnist", run, keep=3000, epochs=1, seed=0, progress=False)
    quantize(run)
    argv = ["export", "--run", str(run), "--board", "nano33ble"]
    capfd.readouterr()
    assert main(argv) == 2
    err = " ".join(capfd.readouterr().err.split())
    assert "needs" in err and "board has" in err and "keep at most" in err
    assert main(argv + ["--fit"]) == 0, capfd.readouterr().err
    info = json.loads((run / "export" / "export.json").read_text())
    assert 0 < info["train_samples"] < 3000 and info["memory_plan"]["fits"]
    counts = np.bincount(np.load(run / "export" / "golden.npz")["y_train"], minlength=10)
    assert counts.max() - counts.min() <= 1  # the fitted subset stays class-balanced
