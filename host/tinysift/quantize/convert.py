"""Keras model -> full-integer int8 ``.tflite`` (post-training, or after tfmot's
quantization-aware fine-tuning)."""

from __future__ import annotations

import contextlib
import os

import numpy as np

from tinysift.models.training import keeps_global_generators


def convert_int8(model, representative: np.ndarray) -> bytes:
    """Full-integer conversion: int8 weights, activations, input and output.

    ``representative``: uint8 images of the model's one input shape, at least one (a model of
    several inputs, images of another size or channel count, or none were a converter or
    TFLite error from deep inside, or an uncalibrated model without an error)."""
    from tinysift.models.training import to_float
    from tinysift.tfcompat import tf

    _check_representative(model, representative)

    def rep():
        for i in range(len(representative)):
            yield [to_float(representative[i:i + 1])]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with quiet_stderr():
        return bytes(conv.convert())


def _check_representative(model, representative: np.ndarray) -> None:
    from tinysift.errors import TinysiftError
    from tinysift.models.training import to_float

    inputs = model.inputs or []
    if len(inputs) > 1:
        raise TinysiftError(f"convert_int8 takes a model of one input (the images); "
                            f"{model.name!r} has {len(inputs)}")
    got = tuple(representative.shape[1:])
    want = tuple(inputs[0].shape[1:]) if inputs else got
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got,
                                                                               strict=True)):
        raise TinysiftError(f"the model takes images of shape {want}, the representative "
                            f"images are {got}: build the model for the dataset's images")
    if len(representative) == 0:
        raise TinysiftError("convert_int8 needs at least one representative image to "
                            "calibrate the int8 ranges")
    to_float(representative[:0])  # refuses float images before the converter runs


def mlperf_tiny_int8(name: str, seed: int = 0) -> bytes:
    """MLPerf Tiny's model ``name`` (tinysift.models.mlperf_tiny) built, trained briefly on
    its stand-in data and converted to a full-int8 ``.tflite`` (int8 input and output,
    calibrated on 16 stand-in inputs), as MLPerf Tiny's closed division quantizes its
    models."""
    from tinysift.models import mlperf_tiny
    from tinysift.tfcompat import tf

    model = mlperf_tiny.build(name, seed)
    rep = mlperf_tiny.train_on_stand_in(model, name, seed=seed)  # floats in [0, 1]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(16))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    with quiet_stderr():
        return bytes(conv.convert())


@keeps_global_generators
def qat_finetune(model, x: np.ndarray, y: np.ndarray, epochs: int, seed: int,
                 progress: bool = False):
    """Quantization-aware fine-tuning (tfmot, Keras 2) at a small learning rate
    (``progress``: a bar over its steps)."""
    import math

    import tensorflow_model_optimization as tfmot

    from tinysift.models.training import TrainConfig, fit_progress, seed_everything, to_float
    from tinysift.tfcompat import keras, tf

    seed_everything(seed)
    qmodel = tfmot.quantization.keras.quantize_model(model)
    qmodel.compile(optimizer=keras.optimizers.Adam(3e-4),
                   loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    batch = TrainConfig().batch_size
    steps = epochs * math.ceil(len(y) / batch)
    # A tf.data pipeline of our own, as train_model's: Keras' adapter for numpy arrays built a
    # map whose attribute this TensorFlow lacks, and TensorFlow printed an E0000 line for it.
    ds = (tf.data.Dataset.from_tensor_slices((to_float(x), np.asarray(y, np.int32)))
          .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
          .batch(batch))
    with fit_progress(progress, steps, f"QAT {len(y)} samples") as bar:
        qmodel.fit(ds, epochs=epochs, verbose=0, callbacks=bar)
    return qmodel


@contextlib.contextmanager
def quiet_stderr():
    """Silence C++ logging on fd 2 (TFLM prints every failed arena probe)."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)
