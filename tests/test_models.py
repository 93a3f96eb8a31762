"""The tiny CNN family: size limits, determinism, cost meter, the train stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tinysift.models import ModelConfig, TrainConfig, build_model, count_macs, train_model
from tinysift.models.cnn import FEATURES_LAYER
from tinysift.models.training import evaluate

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (8, 8, 1)])
@pytest.mark.parametrize("variant", ["ds-cnn", "conv-maxpool"])
def test_family_fits_a_microcontroller(shape, variant):
    model = build_model(shape, 10, ModelConfig(variant=variant))
    cost = count_macs(model)
    assert cost.params <= 30_000
    if shape == (28, 28, 1):
        assert cost.macs_per_sample <= 2_000_000
    assert model.get_layer("head").units == 10
    assert cost.epoch_train_macs(100) == 100 * 3 * cost.macs_per_sample
    # MACs counted another way: every kernel weight is used once per output pixel (convs,
    # depthwise) or once (dense); the parameters are the weights Keras holds
    macs = 0
    for layer in model.layers:
        kernels = [w for w in layer.weights if "kernel" in w.name]
        if kernels:
            pixels = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) == 4 else 1
            macs += pixels * int(np.prod(kernels[0].shape))
    assert cost.macs_per_sample == macs
    assert cost.params == sum(int(np.prod(w.shape)) for w in model.weights)


def test_bad_input_shapes_are_one_clear_error(tmp_path):
    """An input a variant cannot take is one TinysiftError naming the fix, raised by the train
    stage before it records anything (conv-maxpool on 6x6 images was a Keras ValueError from
    layer pool2, reported as "a bug in tinysift"); the variants that pad take any size."""
    from tinysift.errors import TinysiftError
    from tinysift.stages.train import train

    with pytest.raises(TinysiftError, match="at least 8x8 pixels, got 7x28; ds-cnn and resnet8 "
                                            "take images of any size"):
        build_model((7, 28, 1), 10, ModelConfig(variant="conv-maxpool"))
    with pytest.raises(TinysiftError, match="at least 8x8 pixels, got 28x7"):
        build_model((28, 7, 1), 10, ModelConfig(variant="conv-maxpool"))
    assert build_model((8, 8, 1), 10, ModelConfig(variant="conv-maxpool")).output.shape[-1] == 10
    for variant in ("ds-cnn", "resnet8"):
        build_model((1, 1, 1), 10, ModelConfig(variant=variant))
    for shape in [(28, 28), (28, 28, 0)]:
        with pytest.raises(TinysiftError, match="height, width, channels"):
            build_model(shape, 10)
    with pytest.raises(TinysiftError, match="whole number of classes"):
        build_model((8, 8, 1), 2.5)  # was a head of 2 units
    with pytest.raises(TinysiftError, match="whole number of classes >= 1, got 0"):
        build_model((8, 8, 1), 0)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", x=rng.integers(0, 256, (200, 6, 6, 1), dtype=np.uint8),
             y=np.repeat(np.arange(2), 100))
    with pytest.raises(TinysiftError, match="--variant conv-maxpool needs images of at least"):
        train(f"npz:{tmp_path / 'small.npz'}", tmp_path / "run", epochs=1,
              variant="conv-maxpool", progress=False)
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_model_config_values_are_checked_plain_numbers():
    """The config is part of run keys and manifests (JSON): a numpy width is stored as an int
    (was np.int64: json.dumps failed, and the run key hashed the string "8"); a BatchNorm
    momentum outside [0, 1] is refused."""
    from tinysift.errors import TinysiftError
    from tinysift.runs import json_hash

    cfg = ModelConfig(width=np.int64(8), bn_momentum=np.float32(0.5))
    assert type(cfg.width) is int and type(cfg.bn_momentum) is float
    assert json.dumps(cfg.to_dict()) == json.dumps(ModelConfig(width=8, bn_momentum=0.5).to_dict())
    assert json_hash(ModelConfig(width=np.int64(8)).to_dict()) == json_hash(
        ModelConfig(width=8).to_dict())
    assert ModelConfig().to_dict() == {"variant": "ds-cnn", "width": 16, "bn_momentum": 0.9}
    assert (ModelConfig(bn_momentum=0).bn_momentum, ModelConfig(bn_momentum=1).bn_momentum) == (
        0.0, 1.0)  # [0, 1]: both ends taken
    for bad in (1.5, -0.1, float("nan"), True, "0.9"):
        with pytest.raises(TinysiftError, match="BatchNorm momentum"):
            ModelConfig(bn_momentum=bad)


def test_resnet8_variant_is_mlperf_tinys_resnet8():
    """--variant resnet8 at CIFAR-10's shape is MLPerf Tiny's ResNet-8 (the bench's
    rebuild of the published model): the same layers, weights and MACs; at any other shape
    the same stacks, three residual ADDs."""
    from tinysift.models import mlperf_tiny

    ours = build_model((32, 32, 3), 10, ModelConfig(variant="resnet8"))
    theirs = mlperf_tiny.build("resnet8")
    assert sorted(tuple(w.shape) for w in ours.weights) == sorted(
        tuple(w.shape) for w in theirs.weights)
    assert count_macs(ours).macs_per_sample == count_macs(theirs).macs_per_sample
    small = build_model((8, 8, 1), 10, ModelConfig(variant="resnet8"))
    assert sum(type(lay).__name__ == "Add" for lay in small.layers) == 3
    assert small.get_layer("features").output.shape[-1] == 64


def test_ds_cnn_pools_as_the_mlperf_reference():
    """MLPerf Tiny's DS-CNN averages its 25x5 map with final_pool_size = half the input,
    (24, 5): the last row is left out."""
    from tinysift.models import mlperf_tiny

    model = mlperf_tiny.build("ds_cnn")
    pool = next(lay for lay in model.layers if type(lay).__name__ == "AveragePooling2D")
    assert tuple(pool.pool_size) == (24, 5) and tuple(pool.input.shape[1:3]) == (25, 5)


def layer_token(layer) -> str | None:
    """A layer as a short token: C<kh>x<kw>/<stride>:<filters> (Conv2D), D<kh>x<kw>/<stride>
    (depthwise), B (BatchNorm), R (ReLU), + (Add), P<h>x<w> (average pooling), F (Flatten),
    L<units>:<activation> (Dense); None for the input."""
    kind, cfg = type(layer).__name__, layer.get_config()
    if kind in ("Conv2D", "DepthwiseConv2D"):
        (kh, kw), (stride, _) = cfg["kernel_size"], cfg["strides"]
        return (f"C{kh}x{kw}/{stride}:{cfg['filters']}" if kind == "Conv2D"
                else f"D{kh}x{kw}/{stride}")
    if kind == "ReLU" or (kind == "Activation" and cfg["activation"] == "relu"):
        return "R"
    if kind == "AveragePooling2D":
        return "P{}x{}".format(*cfg["pool_size"])
    if kind == "Dense":
        return f"L{cfg['units']}:{cfg['activation']}"
    return {"BatchNormalization": "B", "Add": "+", "Flatten": "F", "InputLayer": None}.get(
        kind, kind)


def layer_signature(model) -> list[str]:
    """``model``'s layers as tokens (layer_token), in Keras' order."""
    return [t for t in map(layer_token, model.layers) if t is not None]


def assert_relu_after_each_add(model) -> None:
    """Each residual sum of ``model`` goes into a ReLU (and only into it)."""
    for add in (lay for lay in model.layers if type(lay).__name__ == "Add"):
        (after,) = [node.outbound_layer for node in add.outbound_nodes]
        assert layer_token(after) == "R", add.name


def test_mlperf_tiny_models_are_the_published_architectures():
    """The four rebuilt models layer by layer as the MLPerf Tiny reference definitions
    (github.com/mlcommons/tiny, benchmark/training/*/keras_model.py) lay them out, and their
    parameter counts by hand (Keras counts BatchNorm's 4 values per channel; every conv and
    dense has a bias): a stride moved to another block, a block or ReLU left out, another
    width, kernel or bottleneck changed the benchmark's model and no test said so."""
    from collections import Counter

    from tinysift.models import mlperf_tiny

    def separable(filters: int, stride: int) -> list[str]:
        return [f"D3x3/{stride}", "B", "R", f"C1x1/1:{filters}", "B", "R"]

    # VWW MobileNetV1 x0.25: a 3x3 stride-2 stem of 8, 13 separable blocks
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1),
              (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)]
    mobilenet = ["C3x3/2:8", "B", "R", *(t for f, s in blocks for t in separable(f, s)),
                 "P3x3", "F", "L2:softmax"]  # 96 / 2**5 = 3: a 3x3 map pooled
    ds_cnn = ["C10x4/2:64", "B", "R", *separable(64, 1) * 4, "P24x5", "F", "L12:softmax"]
    autoencoder = [t for units in (128, 128, 128, 128, 8, 128, 128, 128, 128)
                   for t in (f"L{units}:linear", "B", "R")] + ["L640:linear"]
    models = {name: mlperf_tiny.build(name) for name in mlperf_tiny.MODELS}
    for name, tokens, shape in (("mobilenet", mobilenet, (96, 96, 3)),
                                ("ds_cnn", ds_cnn, (49, 10, 1)),
                                ("autoencoder", autoencoder, (640,))):
        model = models[name]
        assert layer_signature(model) == tokens, name
        assert tuple(model.input_shape[1:]) == shape, name
    # parameters: mobilenet's stem 3*3*3*8 + 8 + 4*8; a separable block of c_in -> c_out
    # 10*c_in (3x3 depthwise, bias) + 4*c_in + c_in*c_out + c_out + 4*c_out; the head 256*2+2
    ins = [8] + [f for f, _ in blocks[:-1]]
    sep = sum(14 * ci + ci * co + 5 * co for ci, (co, _) in zip(ins, blocks, strict=True))
    assert models["mobilenet"].count_params() == 256 + sep + 514 == 221_794
    # ds_cnn: stem 10*4*64 + 64 + 256, four blocks of (640 + 256 + 4160 + 256), head 64*12+12
    assert models["ds_cnn"].count_params() == 2_880 + 4 * 5_312 + 780 == 24_908
    # autoencoder: 640->128, three 128->128, 128->8, 8->128, three 128->128 (each with BN),
    # 128->640
    assert models["autoencoder"].count_params() == (
        82_048 + 512 + 3 * 17_024 + 1_032 + 32 + 1_152 + 512 + 3 * 17_024 + 82_560) == 269_992
    # ResNet-8 (a graph: Keras orders its branches its own way): the layers it holds, a
    # ReLU on each residual sum, and its parameters: the stem 448 + 64; stack 1 two 3x3
    # 16->16 convs; stacks 2 and 3 a strided 3x3, a 3x3 and the strided 1x1 skip; the head
    resnet = models["resnet8"]
    assert Counter(layer_signature(resnet)) == Counter(
        ["C3x3/1:16", "B", "R"] + ["C3x3/1:16", "B", "R", "C3x3/1:16", "B", "+", "R"]
        + ["C3x3/2:32", "B", "R", "C3x3/1:32", "B", "C1x1/2:32", "+", "R"]
        + ["C3x3/2:64", "B", "R", "C3x3/1:64", "B", "C1x1/2:64", "+", "R"]
        + ["P8x8", "F", "L10:softmax"])
    assert_relu_after_each_add(resnet)
    assert resnet.count_params() == 512 + 4_768 + 14_688 + 58_048 + 650 == 78_666


def test_variants_are_built_as_documented():
    """What ModelConfig's docstring says of each variant: ds-cnn's stem strides 2 from 16
    pixels on (1 below; the smaller side decides); conv-maxpool's second conv is valid and
    each is max-pooled by 2 (28 -> 14 -> 12 -> 6); resnet8's residual sums each go through a
    ReLU; every BatchNorm takes the config's momentum (resnet8's second conv of each stack
    too)."""
    from tinysift.tfcompat import keras

    for shape, stride in (((16, 16, 1), 2), ((15, 15, 1), 1), ((32, 8, 1), 1)):
        model = build_model(shape, 10, ModelConfig())
        assert tuple(model.get_layer("stem").strides) == (stride, stride), shape
    plain = build_model((28, 28, 1), 10, ModelConfig(variant="conv-maxpool", width=4))
    assert tuple(plain.get_layer("gap").pool_size) == (6, 6)
    assert plain.get_layer(FEATURES_LAYER).output.shape[-1] == 8
    for variant in ("ds-cnn", "conv-maxpool", "resnet8"):
        model = build_model((16, 16, 1), 10, ModelConfig(variant=variant, bn_momentum=0.5))
        bns = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
        assert bns and {la.momentum for la in bns} == {0.5}, variant
    assert_relu_after_each_add(model)  # the last variant built: resnet8


def test_the_model_outputs_probabilities_and_feature_model_the_flat_features():
    """build_model's output is class probabilities (rows of non-negative values summing to
    1: evaluate and the scores read them so), the head's softmax; feature_model gives the
    backbone's flat features (N, 4 * width), the ones the head reads (the replay selection,
    the embeddings and the VQ codebook measure in them)."""
    from tinysift.models.cnn import feature_model

    model = build_model((8, 8, 1), 3, ModelConfig(width=4))
    x = np.random.default_rng(0).random((5, 8, 8, 1), np.float32)
    probs = model(x, training=False).numpy()
    features = feature_model(model)(x, training=False).numpy()
    assert probs.shape == (5, 3) and features.shape == (5, 16)
    weights, bias = model.get_layer("head").get_weights()
    logits = features.astype(np.float64) @ weights + bias
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    assert np.allclose(probs, softmax, atol=1e-5) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_readme_model_cost(digits_run):
    """The README's figures for the default model on 28x28 inputs, read from the README;
    the folded count is also the exported int8 model's (the shared digits run: 8x8
    inputs, the same weights, global pooling makes them independent of the input size)."""
    readme = README.read_text()
    found = re.search(r"has ([\d,]+) parameters and ([\d,]+) MACs per 28x28 sample", readme)
    assert found, "README no longer states the default model's cost"
    params, macs = (int(g.replace(",", "")) for g in found.groups())
    model = build_model((28, 28, 1), 10, ModelConfig())
    cost = count_macs(model)
    assert (cost.params, cost.macs_per_sample) == (params, macs)
    # BatchNorm's values (Keras counts them) and the weights and biases once the int8
    # conversion folds them into the convolutions (a bias per channel)
    from tinysift.tfcompat import keras

    bn = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    bn_values = sum(la.count_params() for la in bn)
    channels = sum(la.get_weights()[0].shape[0] for la in bn)
    assert f"BatchNorm's {bn_values:,} values" in readme
    assert f"{cost.params - bn_values + channels:,} weights and biases" in readme
    from tinysift.export.tflite_reader import parse_tflite

    parsed = parse_tflite((digits_run / "model.tflite").read_bytes())
    stored = sum(t.size for la in parsed.layers for t in (la.weights, la.bias) if t is not None)
    assert stored == cost.params - bn_values + channels
    assert count_macs(build_model((8, 8, 1), 10, ModelConfig())).params == cost.params


def test_training_is_deterministic_and_learns(digits):
    cfg = TrainConfig(epochs=None, min_steps=150, seed=1)
    a = train_model(digits.x_train, digits.y_train, 10, train_config=cfg, progress=False)
    b = train_model(digits.x_train, digits.y_train, 10, train_config=cfg, progress=False)
    wa = np.concatenate([w.ravel() for w in a.model.get_weights()])
    wb = np.concatenate([w.ravel() for w in b.model.get_weights()])
    assert np.array_equal(wa, wb)
    assert a.steps == 150 or a.steps == 156  # whole epochs covering the step budget
    assert evaluate(a.model, digits.x_test, digits.y_test) > 0.85


def test_single_pass_equals_per_epoch_training(digits):
    """Without epoch hooks all steps run in one Keras epoch: same weights bit for bit, and
    the reported final loss is still the last data epoch's mean."""
    x, y = digits.x_train[:300], digits.y_train[:300]
    cfg = TrainConfig(epochs=None, min_steps=40, subset_epochs=2, seed=3)
    fast = train_model(x, y, 10, train_config=cfg)
    seen = []
    slow = train_model(x, y, 10, train_config=cfg, epoch_hooks=[lambda e, m: seen.append(e)])
    assert seen == list(range(14)) and fast.steps == slow.steps == 42  # 3 steps per epoch
    for a, b in zip(fast.model.get_weights(), slow.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert fast.final_loss == pytest.approx(slow.final_loss, rel=1e-4)
    # the result's history holds Keras' figures per Keras epoch: with hooks one per data
    # epoch, the last loss the final loss
    assert len(slow.history["loss"]) == len(slow.history["accuracy"]) == 14
    assert slow.history["loss"][-1] == slow.final_loss


def test_a_failed_training_stops_its_progress_bar(digits, monkeypatch):
    """Keras skips on_train_end when a step raises: the step bar is stopped anyway, so no
    live bar is left over the error message (or over the next command's output)."""
    import io

    from rich.console import Console

    from tinysift import progress

    terminal = Console(file=io.StringIO(), force_terminal=True)
    monkeypatch.setattr(progress, "_bar_console", terminal)
    live = []

    def fail(epoch, model):
        live.append(len(terminal._live_stack))
        raise RuntimeError("stop here")

    cfg = TrainConfig(epochs=1, seed=0)
    with pytest.raises(RuntimeError, match="stop here"):
        train_model(digits.x_train[:64], digits.y_train[:64], 10, train_config=cfg,
                    epoch_hooks=[fail], progress=True)
    assert live == [1] and terminal._live_stack == []
    # the bar counted the one step and showed its loss
    assert re.search(r"1/1 steps loss \d+\.\d{3}", terminal.file.getvalue())


def test_the_bar_counts_the_steps_the_training_runs(digits, monkeypatch):
    """Training runs whole epochs, past the step rule's budget when it is not a multiple of an
    epoch: 64 images in batches of 32 under a 3-step rule run 2 epochs, 4 steps, and the bar
    counts 4 of 4. It counted to the budget (4/3 steps; digits' default recipe 504/500)."""
    import io

    from rich.console import Console

    from tinysift import progress

    terminal = Console(file=io.StringIO(), force_terminal=True, width=200)
    monkeypatch.setattr(progress, "_bar_console", terminal)
    cfg = TrainConfig(min_steps=3, subset_epochs=1, batch_size=32, seed=0)
    result = train_model(digits.x_train[:64], digits.y_train[:64], 10, train_config=cfg,
                         progress=True)
    counts = re.findall(r"(\d+)/(\d+) steps", terminal.file.getvalue())
    assert result.steps == 4 and counts and counts[-1] == ("4", "4")
    assert {total for _, total in counts} == {"4"}


def test_no_bar_where_stderr_is_not_a_terminal(digits, capfd):
    """In a pipe or a file a bar cannot be redrawn: nothing is drawn, and stdout carries only
    results (a bar on stdout left a blank line in piped output)."""
    cfg = TrainConfig(epochs=1, seed=0)
    train_model(digits.x_train[:64], digits.y_train[:64], 10, train_config=cfg,
                progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "steps" not in err


def test_reused_compiled_step_equals_a_fresh_compile(digits):
    """New models train through one compiled twin per architecture (no retracing); each
    training must equal, bit for bit, a freshly built and compiled model with the same seed
    (weights and Adam's state):
    after another recipe ran on the twin (Adam's state and the schedule reset), with step
    counts whose reciprocal is inexact (the schedule's rounding), and the caller must get a
    model of its own."""
    from tinysift.models.training import seed_everything

    x, y = digits.x_train[:400], digits.y_train[:400]
    recipes = [TrainConfig(min_steps=40, subset_epochs=1, seed=3),
               TrainConfig(min_steps=25, subset_epochs=1, seed=5, learning_rate=1e-3),
               TrainConfig(epochs=3, seed=3, batch_size=96)]
    models = []
    for cfg in recipes:
        twin = train_model(x, y, 10, train_config=cfg, progress=False)
        seed_everything(cfg.seed)
        compiled = train_model(x, y, 10, train_config=cfg, progress=False,
                               model=build_model(x.shape[1:], 10))
        assert twin.final_loss == compiled.final_loss
        for a, b in zip(twin.model.get_weights(), compiled.model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        # Adam's step count and moments reach the caller's model too (saved with it)
        for a, b in zip(twin.model.optimizer.variables, compiled.model.optimizer.variables,
                        strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert int(twin.model.optimizer.iterations.numpy()) == twin.steps
        models.append(twin.model)
    assert len({id(m) for m in models}) == len(models)  # later trainings leave it alone
    assert all(m.optimizer is not None for m in models)  # compiled, as before
    np.testing.assert_array_equal(models[0].get_weights()[0],
                                  train_model(x, y, 10, train_config=recipes[0],
                                              progress=False).model.get_weights()[0])


def test_step_rule():
    cfg = TrainConfig()
    assert cfg.total_steps(60000) == 6 * 469
    assert cfg.total_steps(600) == 500
    assert TrainConfig(epochs=2).total_steps(1000) == 16
    # the recipe the README states (its accuracies were trained with it)
    lr, batch, seed = re.search(r"Adam ([\d.e-]+) with cosine decay, batch (\d+), seed (\d+)",
                                README.read_text()).groups()
    assert (cfg.learning_rate, cfg.batch_size, cfg.seed) == (float(lr), int(batch), int(seed))


def test_train_stage_writes_manifest_and_caches(tmp_path, digits):
    from tinysift.stages.train import train

    out = tmp_path / "run"
    first = train("digits", out, keep="0.2", epochs=None, seed=0, progress=False)
    assert first.train_samples == 287 and not first.skipped and first.seconds > 0
    manifest = json.loads((out / "manifest.json").read_text())
    stage = manifest["stages"]["train"]
    assert stage["status"] == "done" and stage["results"]["train_samples"] == 287
    assert manifest["dataset"]["hash"] and manifest["seed"] == 0
    assert min(stage["results"]["class_counts"]) >= 28
    assert np.isfinite(stage["results"]["final_loss"])  # the last data epoch's mean loss
    # the saved model holds Adam's state after training, as a freshly compiled one would
    from tinysift.tfcompat import keras
    saved = keras.models.load_model(out / "model.keras")
    assert int(saved.optimizer.iterations.numpy()) == stage["results"]["steps"]
    # the accuracy recorded is the saved model's on the test split; the model's shape is
    # part of the stage's key
    assert evaluate(saved, digits.x_test, digits.y_test) == stage["results"]["test_acc"]
    assert stage["params"]["model"] == ModelConfig().to_dict()
    again = train("digits", out, keep="0.2", epochs=None, seed=0, progress=False)
    assert again.skipped and again.test_acc == first.test_acc
    # a reused stage reports the figures its training recorded
    assert (again.train_samples, again.steps, again.params, again.macs_per_sample) == (
        first.train_samples, first.steps, first.params, first.macs_per_sample)
    assert again.seconds == round(first.seconds, 2)
    # --epochs 0 is the subset step rule, as epochs=None: the same stage, reused
    assert train("digits", out, keep="0.2", epochs=0, seed=0, progress=False).skipped


def test_prints_under_a_bar_stay_on_stdout(monkeypatch, capsys):
    """With the bar on a terminal's stderr and stdout sent to a file (`> results.txt`), what
    is printed while the bar is live must still reach stdout, not the terminal."""
    import io

    from rich.console import Console

    from tinysift import progress

    monkeypatch.setattr(progress, "_bar_console",
                        Console(file=io.StringIO(), force_terminal=True))
    with progress.progress_bar(True, 2, "work", "items"):
        print("a result line")
    assert "a result line" in capsys.readouterr().out


def test_a_bar_shows_its_count_and_values_and_is_erased_when_done(monkeypatch):
    """On a terminal a bar shows its count and named values as updated, and erases its line
    when done (transient), also when its block raises; on a pipe or a file it draws
    nothing."""
    import io

    from rich.console import Console

    from tinysift import progress

    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    monkeypatch.setattr(progress, "_bar_console", terminal)
    bar = progress.ProgressBar(True, 4, "train", "steps", fields={"loss": "-"})
    bar.update(3, loss="0.25")
    bar.stop()
    drawn = terminal.file.getvalue()
    assert "3/4 steps loss 0.25" in drawn
    assert drawn.endswith("\x1b[1A\x1b[2K")  # cursor up, the bar's line erased
    with pytest.raises(RuntimeError, match="stop here"), progress.progress_bar(
            True, 2, "work", "items"):
        raise RuntimeError("stop here")
    assert terminal._live_stack == []  # no live bar left over the error
    pipe = Console(file=io.StringIO())
    monkeypatch.setattr(progress, "_bar_console", pipe)
    with progress.progress_bar(True, 2, "work", "items") as bar:
        bar.update(2)
    assert pipe.file.getvalue() == ""


def test_bars_go_to_stderr_and_a_piped_stream_is_not_wrapped(monkeypatch, capsys):
    """Bars are drawn on stderr (stdout carries only results); a console is unwrapped when
    its own stream is a pipe, whatever the other stream is (stdout on a terminal, stderr
    sent to a log: the log's lines were cut at the terminal's width)."""
    import os
    import pty
    import sys

    from tinysift import progress

    monkeypatch.setattr(progress, "_bar_console", None)
    progress.bar_console().print("on the bar's console")
    assert capsys.readouterr() == ("", "on the bar's console\n")
    master, replica = pty.openpty()
    try:
        with os.fdopen(replica, "w") as terminal, monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", terminal)  # undone before the terminal closes
            assert progress.make_console(stderr=True).width == 10_000  # stderr: captured
            assert progress.make_console().width != 10_000
    finally:
        os.close(master)


def test_evaluate_takes_column_labels_and_refuses_a_count_mismatch(digits):
    """Keras' (N, 1) labels were compared with the (N,) predictions by broadcasting, N x N
    pairs: an accuracy near 1/classes whatever the model, without an error."""
    from tinysift.errors import TinysiftError

    model = build_model(digits.x_train.shape[1:], 10)
    x, y = digits.x_test[:40], digits.y_test[:40]
    assert evaluate(model, x, y.reshape(-1, 1)) == evaluate(model, x, y)
    for bad in (y[:39], y[:1], y.reshape(-1, 1)[:, [0, 0]], y.reshape(20, 2)):  # 40 values
        with pytest.raises(TinysiftError, match="one label per image"):
            evaluate(model, x, bad)


def test_float_images_are_refused_not_scaled_twice(digits):
    """Images already in [0, 1] were divided by 255 again: training, evaluation and the int8
    calibration (convert_int8's representative set) ran on near-black images, no error."""
    from tinysift.errors import TinysiftError
    from tinysift.quantize.convert import convert_int8

    model = build_model(digits.x_train.shape[1:], 10)
    floats = digits.x_train[:16].astype(np.float32) / 255
    with pytest.raises(TinysiftError, match="uint8 pixels.*got float32"):
        evaluate(model, floats, digits.y_train[:16])
    with pytest.raises(TinysiftError, match="uint8 pixels.*got float32"):
        train_model(floats, digits.y_train[:16], 10, train_config=TrainConfig(epochs=1),
                    progress=False)
    with pytest.raises(TinysiftError, match="uint8 pixels.*got float32"):
        convert_int8(model, floats)


def test_count_macs_refuses_what_it_cannot_count():
    """A library user's own model: Conv1D, SeparableConv2D and a nested model counted 0 MACs,
    Conv2DTranspose a Conv2D's, a shared layer once, all without a word; a Dense layer on
    (H, W, C) counted one position of H x W. A free input size is refused naming the layer
    and its shapes."""
    from tinysift.errors import TinysiftError
    from tinysift.tfcompat import keras

    layers = keras.layers
    inp = keras.Input((8, 8, 1))
    assert count_macs(keras.Model(inp, layers.Dense(4)(inp))).macs_per_sample == 8 * 8 * 4
    four = keras.Input((8, 8, 4))  # groups=2: each filter reads 2 of the 4 channels
    grouped = layers.Conv2D(6, 3, padding="same", groups=2)(four)
    assert count_macs(keras.Model(four, grouped)).macs_per_sample == 8 * 8 * 6 * 9 * 2
    shared = layers.Conv2D(1, 3, padding="same", name="shared")
    inner = keras.Sequential([layers.Flatten(), layers.Dense(3)], name="inner")
    for out, what in [(layers.Conv1D(4, 3, name="c1")(layers.Reshape((8, 8))(inp)),
                       "'c1' is a Conv1D"),
                      (layers.SeparableConv2D(4, 3, name="sep")(inp), "'sep' is a Separable"),
                      (layers.Conv2DTranspose(4, 3, name="up")(inp), "'up' is a Conv2DTrans"),
                      (inner(inp), "'inner' is a Sequential"),
                      (shared(shared(inp)), "'shared' is called 2 times")]:
        with pytest.raises(TinysiftError, match=what):
            count_macs(keras.Model(inp, out))
    free = keras.Input((None, None, 1))
    with pytest.raises(TinysiftError, match=r"fixed input size; layer 'conv' has input "
                                            r"\(None, None, None, 1\), output \(None, None, "
                                            r"None, 2\)"):
        count_macs(keras.Model(free, layers.Conv2D(2, 3, name="conv")(free)))


def test_count_macs_by_hand_of_oblong_kernels_a_depth_multiplier_and_a_dense_on_a_map():
    """count_macs on a model of each counted kind in a shape the family does not build: a
    3x1 Conv2D, a 1x3 depthwise convolution at stride 2 with depth_multiplier 2 and a Dense
    on a (3, 3, 4) map, counted by hand: the family's square kernels and depthwise layers of
    one output channel per input channel let a kernel's width read as its height, or a
    depthwise layer's input channels taken for its outputs, pass every test."""
    from tinysift.models.cost import CostReport
    from tinysift.tfcompat import keras

    layers = keras.layers
    inp = keras.Input((6, 5, 3))
    x = layers.Conv2D(2, (3, 1), padding="same")(inp)  # (6, 5, 2): 6*5*2 outputs of 3*1*3
    x = layers.DepthwiseConv2D((1, 3), strides=2, depth_multiplier=2, padding="same")(x)
    x = layers.Dense(5)(x)
    # depthwise: (3, 3, 4) outputs of 1*3 each; Dense: 9 positions of 4*5
    macs = 6 * 5 * 2 * 3 * 1 * 3 + 3 * 3 * 4 * 1 * 3 + 9 * 4 * 5
    # weights and biases: 3*1*3*2 + 2, 1*3*2*2 + 4, 4*5 + 5
    params = 20 + 16 + 25
    cost = count_macs(keras.Model(inp, x))
    assert cost == CostReport(params=params, macs_per_sample=macs, train_macs_per_sample=3 * macs)
    assert cost.to_dict() == {"params": params, "macs_per_sample": macs,
                              "train_macs_per_sample": 3 * macs}
    assert cost.epoch_train_macs(7) == 7 * 3 * macs


def test_train_model_names_data_and_recipes_it_cannot_train_on(digits):
    """Each was an error from inside TensorFlow (shuffle's buffer_size, a graph error at the
    loss, steps_per_epoch, a ZeroDivisionError, a TypeError for Keras' (N, 1) labels)."""
    from tinysift.errors import TinysiftError

    x, y, one = digits.x_train[:32], digits.y_train[:32], TrainConfig(epochs=1)
    for xs, ys, cfg, said in [
            (x[:0], y[:0], one, "at least one image"),
            (x, y[:30], one, r"32 images, labels of shape \(30,\)"),
            (x, y + 10, one, r"in \[0, 10\).*int64 in \[1\d, 19\]"),
            (x, np.where(np.arange(32) == 0, 10, y), one, r"in \[0, 10\).* in \[\d, 10\]"),
            (x, np.where(np.arange(32) == 0, -1, y), one, r"in \[0, 10\).* in \[-1, \d\]"),
            (x, y.astype(np.float32), one, "got float32"),
            (x, y, TrainConfig(epochs=0), "epochs=0"),
            (x, y, TrainConfig(epochs=1, batch_size=0), "batch_size=0"),
            (x, y, TrainConfig(epochs=1, batch_size=8.5), "batch_size=8.5"),
            (x, y, TrainConfig(epochs=True), "epochs=True")]:
        with pytest.raises(TinysiftError, match=said):
            train_model(xs, ys, 10, train_config=cfg, progress=False)
    res = train_model(x, y.reshape(-1, 1), 10, train_config=one, progress=False)
    assert res.steps == 1


def test_training_keeps_the_callers_global_generators(digits):
    """Every training seeds Keras, which reseeded Python's and numpy's global generators: a
    library caller's np.random stream after train_model, train_guided or qat_finetune was the
    training seed's. The training itself is unchanged (the same seed, the same weights)."""
    import random

    from tinysift.guided import make_sampler
    from tinysift.guided.loop import train_guided
    from tinysift.quantize.convert import qat_finetune

    x, y, one = digits.x_train[:64], digits.y_train[:64], TrainConfig(epochs=1, seed=5)

    def caller_draws(run):
        np.random.seed(123)
        random.seed(123)
        result = run()
        return (np.random.random(), random.random()), result

    expected = caller_draws(lambda: None)[0]
    drawn, first = caller_draws(lambda: train_model(x, y, 10, train_config=one, progress=False))
    assert drawn == expected
    again = train_model(x, y, 10, train_config=one, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(first.model.get_weights(),
                                                   again.model.get_weights(), strict=True))
    assert caller_draws(lambda: train_guided(x, y, 10, make_sampler("rs2"), 1.0,
                                             train_config=one, progress=False))[0] == expected
    assert caller_draws(lambda: qat_finetune(first.model, x, y, 1, seed=5))[0] == expected


def test_labels_of_any_integer_type_train(digits):
    """Labels are whole numbers of any integer type: uint8 labels, as a dataset's npz may
    store them (the datasets take any integer dtype), train as int64 ones do, to the same
    weights; only floats and numbers outside [0, classes) are refused."""
    x, y = digits.x_train[:32], digits.y_train[:32]
    one = TrainConfig(epochs=1, seed=2)
    wide = train_model(x, y.astype(np.int64), 10, train_config=one, progress=False)
    narrow = train_model(x, y.astype(np.uint8), 10, train_config=one, progress=False)
    assert narrow.steps == 1
    for a, b in zip(wide.model.get_weights(), narrow.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_float_images_of_every_width_are_refused_naming_the_fix():
    """to_float refuses float16, float32 and float64 images alike (numpy's default float is
    float64: images scaled with a plain ``x / 255`` are), and its message names the fix: the
    uint8 images, which tinysift scales itself."""
    from tinysift.errors import TinysiftError
    from tinysift.models.training import to_float

    for dtype in (np.float16, np.float32, np.float64):
        with pytest.raises(TinysiftError, match=rf"uint8 pixels \(0\.\.255\), got "
                                                rf"{np.dtype(dtype).name}; pass the uint8 "
                                                r"images: tinysift scales them to \[0, 1\]"):
            to_float(np.zeros((1, 2, 2, 1), dtype))


def test_images_become_float32_pixels_over_255():
    """The model's input is x / 255 in float32 (docs/format.md: the int8 images are
    round(float32(x / 255) / scale) + zero_point): 0 -> 0, 51 -> 0.2, 255 -> 1."""
    from tinysift.models.training import to_float

    out = to_float(np.array([[0, 51, 255]], np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[0.0, 0.2, 1.0]], np.float32))


def test_predictions_are_per_image_whatever_the_chunk(digits):
    """predict_proba runs inference (BatchNorm on its moving statistics) in chunks of
    ``batch_size``: each image's probabilities are the same in any chunk, the chunks cover
    every image once, and no images give an empty (0, classes) array."""
    from tinysift.models.training import predict_proba

    model = build_model(digits.x_train.shape[1:], 10)
    x = digits.x_test[:7]
    whole = predict_proba(model, x)
    assert whole.shape == (7, 10)
    np.testing.assert_allclose(predict_proba(model, x, batch_size=3), whole, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(predict_proba(model, x[6:]), whole[6:], rtol=1e-5, atol=1e-7)
    assert predict_proba(model, x[:0]).shape == (0, 10)


def test_each_architecture_gets_its_own_compiled_twin():
    """A new model trains through a compiled twin of its architecture (input shape, class
    count, model config), made once per thread and reused; a twin shared by two
    architectures would take weights of the wrong shapes."""
    from tinysift.models.training import _compiled_twin

    twin = _compiled_twin((8, 8, 1), 10, None)[0]
    assert _compiled_twin((8, 8, 1), 10, None)[0] is twin
    for shape, classes, config in [((8, 8, 1), 3, None), ((9, 9, 1), 10, None),
                                   ((8, 8, 1), 10, ModelConfig(width=4))]:
        other = _compiled_twin(shape, classes, config)[0]
        assert other is not twin
        assert tuple(other.input_shape[1:]) == shape and other.output_shape[-1] == classes
        assert other.get_layer("stem").filters == (config or ModelConfig()).width
