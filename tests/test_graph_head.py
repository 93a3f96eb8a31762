"""The head trainer on a residual graph (issue 17): MLPerf Tiny's ResNet-8 trained by the
real pipeline (``tinysift train --variant resnet8`` on digits, quantize, export), its head
trained by the engine with the frozen layers run as a graph (every residual ADD reads a
tensor that another layer read too).

* natively (host gcc, tests/c/trainer_driver.c as in tests/test_trainer.py): ts_train_head
  on the export's int8 sets, the features computed by the graph executor (cached once, or
  recomputed every epoch under ASan/UBSan), gives bit for bit what the trainer gives on
  TFLM's features of the same samples, and both agree with the numpy reference
  (tests/trainer_reference.py);
* on the emulated Cortex-M4 (`tinysift device run`, QEMU): the device's `before` accuracy is
  TFLM's on the exported test set (the graph forward pass is bit-exact on the board), and its
  per-epoch losses, training counts and final accuracies are the numpy reference's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import test_trainer as tt
import trainer_reference as ref
from tools_needed import need_tools

CFG = ref.HeadTrainConfig(epochs=3, batch_size=32, learning_rate=0.05, momentum=0.9, seed=7)


@pytest.fixture(scope="module")
def r8_export():
    """A digits ResNet-8 run (300 kept samples, 100 test samples), cached in runs/_scratch."""
    from scratch import scratch_run
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    with scratch_run("graph-head-digits") as run:
        train("digits", run, keep=300, epochs=None, seed=0, variant="resnet8", progress=False)
        quantize(run)
        export(run, test_samples=100)
    return run


@pytest.fixture(scope="module")
def r8(r8_export, tmp_path_factory):
    """(export folder, Model, Data with TFLM's features, the tflite's parsed layers)."""
    from tinysift.export.golden import layer_outputs

    need_tools("gcc")
    export_dir = r8_export / "export"
    drv = tt._compile(export_dir, tmp_path_factory.mktemp("r8") / "drv", [], True)
    model = tt.model_of(drv)
    g = np.load(export_dir / "golden.npz")
    xs = np.concatenate([g["x_train"], g["x_test"]])
    layers = layer_outputs((r8_export / "model.tflite").read_bytes(), xs)
    h, n = model.head_layer, len(g["x_train"])
    feats = layers[h - 1].reshape(len(xs), -1).astype(np.int8)
    data = tt.Data(feats[:n], g["y_train"].astype(np.int64), feats[n:],
                   g["y_test"].astype(np.int64), g["head_w"].astype(np.float32),
                   g["head_b"].astype(np.float32))
    return export_dir, model, data, drv


def test_the_model_is_a_residual_graph_with_a_trainable_head(r8):
    export_dir, model, data, _ = r8
    info = json.loads((export_dir / "export.json").read_text())
    ops = [lay["op"] for lay in info["layers"]]
    adds = [lay for lay in info["layers"] if lay["op"] == "ADD"]
    assert len(adds) == 3 and all(len(a["inputs"]) == 2 for a in adds)
    readers = [t for lay in info["layers"] for t in lay["inputs"]]
    assert any(readers.count(t) > 1 for t in set(readers))  # a skip: two readers
    assert ops[model.head_layer] == "FULLY_CONNECTED" and info["head_layer"] == model.head_layer
    assert model.feature_dim == 64 and data.xtr.shape == (300, 64)


def check_executor_training(drv, exe, mode: str, data, model, cfg, tmp_path) -> None:
    """`dataset MODE` on `exe` (the frozen layers run by the executor) == `train` on TFLM's
    features with `drv`, bit for bit, and both == the numpy reference."""
    args = (cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.momentum, cfg.seed)
    want = tt.parse(tt.run(drv, "train", tt.write_input(tmp_path / "in.bin", data), *args),
                    model)
    got = tt.parse(tt.run(exe, "dataset", mode, *args), model)
    np.testing.assert_array_equal(got.w, want.w)
    np.testing.assert_array_equal(got.b, want.b)
    np.testing.assert_array_equal(got.logits8, want.logits8)
    assert [e[:2] for e in got.epochs] == [e[:2] for e in want.epochs]
    r = tt.reference(data, model, data.head_w, data.head_b, cfg)
    assert tt.rel_err(got.w, r.weights) <= 2 * tt.ORACLE_TOL
    assert [e[1] for e in got.epochs] == [e.correct for e in r.epochs]
    assert (got.correct_initial, got.correct_float, got.correct_int8) == (
        r.test_correct_initial, r.test_correct_float, r.test_correct_int8)


@pytest.mark.parametrize("mode,build", [("cache", "O2"), ("nocache", "asan")])
def test_graph_features_train_the_head_bit_exactly(r8, mode, build, tmp_path):
    """ts_train_head with the frozen layers run as a graph == the trainer on TFLM's features,
    bit for bit; and both match the numpy reference."""
    export_dir, model, data, drv = r8
    exe = drv if build == "O2" else tt._compile(export_dir, tmp_path / "asan", tt.SANITIZE, True)
    check_executor_training(drv, exe, mode, data, model, CFG, tmp_path)


@pytest.mark.qemu
def test_device_trains_the_resnet8_head_on_the_emulated_m4(r8):
    """`tinysift device run` on QEMU, head from zeros: the device's numbers are the
    reference's (features bit-exact through the graph, float head training to rounding)."""
    from tinysift.device.session import TrainParams
    from tinysift.stages.device import run_on_device

    need_tools("qemu-system-arm", "arm-none-eabi-gcc", pio=True)
    export_dir, model, data, _ = r8
    res = run_on_device(export_dir.parent, "qemu-mps2-an386",
                        params=TrainParams(epochs=CFG.epochs, lr=CFG.learning_rate,
                                           momentum=CFG.momentum, batch=CFG.batch_size,
                                           seed=CFG.seed, init="zero"),
                        label="graph-head")
    assert res.status == "complete" and res.samples == len(data.ytr)
    zeros_w, zeros_b = np.zeros_like(data.head_w), np.zeros_like(data.head_b)
    r = tt.reference(data, model, zeros_w, zeros_b, CFG)
    t = len(data.yte)
    # the exported int8 model on the device == TFLM's golden outputs on the test set
    g = np.load(export_dir / "golden.npz")
    tflm_acc = float(np.mean(g["outputs"].reshape(t, -1).argmax(1) == data.yte))
    assert abs(res.test_acc_before - r.test_correct_initial / t) < 1e-9  # the zero head
    assert tflm_acc > 0.9
    assert [round(e.train_acc * len(data.ytr)) for e in res.epochs] == [
        e.correct for e in r.epochs]
    np.testing.assert_allclose([e.loss for e in res.epochs], [e.mean_loss for e in r.epochs],
                               rtol=1e-4)
    assert round(res.test_acc_after * t) == r.test_correct_float
    assert round(res.test_int8_acc_after * t) == r.test_correct_int8
    # the zero head (chance) learned on the graph's features in 3 epochs (measured 0.89)
    assert res.test_acc_before < 0.2 and res.test_int8_acc_after > 0.8


# ---- MLPerf Tiny's three classifiers at their published shapes -----------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet8", "ds_cnn", "mobilenet"])
def test_mlperf_tiny_heads_train_through_the_engine(name, tmp_path):
    """ResNet-8 (residual graph), DS-CNN and MobileNetV1 0.25 (chains with a pooled feature
    vector), as the MLPerf bench converts them (stand-in data, int8 in and out), exported with
    a stand-in training set: ts_train_head with the frozen layers run by the executor (under
    ASan/UBSan) == the trainer on TFLM's features, bit for bit, and == the numpy reference."""
    from scratch import mlperf_tflite
    from tinysift.export.golden import layer_outputs
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.stages.export import export_tflite, random_inputs

    need_tools("gcc")
    path = mlperf_tflite(name)
    tflite = path.read_bytes()
    parsed = parse_tflite(tflite)
    assert parsed.has_head, parsed.head_note
    k = parsed.head.out_dims[2]
    rng = np.random.default_rng(0)
    n, t = 24, 8
    x = random_inputs(parsed, n + t, seed=1)
    y = rng.integers(0, k, n + t)
    export_dir = tmp_path / "export"
    export_tflite(path, export_dir, inputs=x[n:], labels=y[n:], train=(x[:n], y[:n]))
    drv = tt._compile(export_dir, tmp_path / "drv", tt.SANITIZE, True)
    model = tt.model_of(drv)
    feats = layer_outputs(tflite, x.reshape(n + t, *parsed.input_dims))[model.head_layer - 1]
    feats = feats.reshape(n + t, -1).astype(np.int8)
    g = np.load(export_dir / "golden.npz")
    data = tt.Data(feats[:n], y[:n], feats[n:], y[n:], g["head_w"].astype(np.float32),
                   g["head_b"].astype(np.float32))
    cfg = ref.HeadTrainConfig(epochs=2, batch_size=8, learning_rate=0.05, momentum=0.9, seed=3)
    check_executor_training(drv, drv, "cache", data, model, cfg, tmp_path)


def test_bare_export_refuses_bad_labels(r8_export, tmp_path):
    from tinysift.errors import TinysiftError
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.stages.export import export_tflite, random_inputs

    path = r8_export / "model.tflite"
    x = random_inputs(parse_tflite(path.read_bytes()), 4)
    with pytest.raises(TinysiftError, match=r"classes 0\.\.9"):
        export_tflite(path, tmp_path, inputs=x, labels=np.array([0, 1, 2, 10]))
    with pytest.raises(TinysiftError, match="one integer label per sample"):
        export_tflite(path, tmp_path, inputs=x, train=(x, np.zeros(3, int)))
