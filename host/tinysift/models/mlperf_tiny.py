"""MLPerf Tiny's four reference models (inference v0.5+), rebuilt from their published Keras
definitions (github.com/mlcommons/tiny, benchmark/training/*/keras_model.py):

* ``resnet8``     image classification, CIFAR-10 32x32x3: ResNet-8 (three residual stacks of
                  16, 32, 64 filters, a 1x1 strided conv on the skip when the shape changes,
                  AveragePooling2D 8x8, softmax over 10)
* ``mobilenet``   visual wake words 96x96x3: MobileNetV1 with width 0.25 (8..256 filters,
                  13 depthwise-separable blocks), AveragePooling2D, softmax over 2
* ``ds_cnn``      keyword spotting, 49x10x1 MFCCs: DS-CNN (a 10x4 stride-2 stem of 64
                  filters, four depthwise-separable blocks of 64), AveragePooling2D, softmax
                  over 12
* ``autoencoder`` anomaly detection, 640 log-mel values: the fully-connected autoencoder
                  (640-128-128-128-128-8-128-128-128-128-640)

Batch normalization follows every conv and hidden dense layer as in the reference (the
converter folds it); dropout is left out (it is the identity at inference), and so are the
reference's L2 kernel regularizers (ResNet-8: l2(1e-4) on every conv; a term of the training
loss, no part of the inference graph). The weights are Keras' default initialization (the
reference's ResNet-8 draws he_normal): train them, or calibrate and convert them as they are to
check the engine.
"""

from __future__ import annotations

from tinysift.models.training import keeps_global_generators

MODELS = ("resnet8", "mobilenet", "ds_cnn", "autoencoder")
INPUT_SHAPES = {"resnet8": (32, 32, 3), "mobilenet": (96, 96, 3), "ds_cnn": (49, 10, 1),
                "autoencoder": (640,)}
NUM_OUTPUTS = {"resnet8": 10, "mobilenet": 2, "ds_cnn": 12, "autoencoder": 640}


@keeps_global_generators
def build(name: str, seed: int = 0):
    """The Keras model ``name`` (one of MODELS)."""
    from tinysift.tfcompat import keras

    if name not in MODELS:
        raise ValueError(f"unknown MLPerf Tiny model {name!r}; one of {', '.join(MODELS)}")
    keras.utils.set_random_seed(seed)
    return {"resnet8": _resnet8, "mobilenet": _mobilenet, "ds_cnn": _ds_cnn,
            "autoencoder": _autoencoder}[name](keras)


def _conv_bn(keras, x, filters, kernel, strides=1, relu=True):
    L = keras.layers  # noqa: N806
    x = L.Conv2D(filters, kernel, strides=strides, padding="same")(x)
    x = L.BatchNormalization()(x)
    return L.Activation("relu")(x) if relu else x


def _resnet8(keras):
    L = keras.layers  # noqa: N806
    inputs = keras.Input(INPUT_SHAPES["resnet8"])
    x = _conv_bn(keras, inputs, 16, 3)
    for filters, strides in ((16, 1), (32, 2), (64, 2)):
        y = _conv_bn(keras, x, filters, 3, strides)
        y = _conv_bn(keras, y, filters, 3, relu=False)
        if strides != 1:  # the skip is adjusted to the new shape by a strided 1x1 conv
            x = L.Conv2D(filters, 1, strides=strides, padding="same")(x)
        x = L.Activation("relu")(L.add([x, y]))
    x = L.AveragePooling2D(pool_size=int(min(x.shape[1:3])))(x)
    outputs = L.Dense(NUM_OUTPUTS["resnet8"], activation="softmax")(L.Flatten()(x))
    return keras.Model(inputs, outputs, name="resnet8")


def _separable(keras, x, filters, strides):
    L = keras.layers  # noqa: N806
    x = L.DepthwiseConv2D(3, strides=strides, padding="same")(x)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    return _conv_bn(keras, x, filters, 1)


def _mobilenet(keras):
    L = keras.layers  # noqa: N806
    inputs = keras.Input(INPUT_SHAPES["mobilenet"])
    x = _conv_bn(keras, inputs, 8, 3, strides=2)
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), *[(128, 1)] * 5,
              (256, 2), (256, 1)]
    for filters, strides in blocks:
        x = _separable(keras, x, filters, strides)
    x = L.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]))(x)
    outputs = L.Dense(NUM_OUTPUTS["mobilenet"], activation="softmax")(L.Flatten()(x))
    return keras.Model(inputs, outputs, name="mobilenet_v1_025")


def _ds_cnn(keras):
    L = keras.layers  # noqa: N806
    inputs = keras.Input(INPUT_SHAPES["ds_cnn"])
    x = _conv_bn(keras, inputs, 64, (10, 4), strides=(2, 2))
    for _ in range(4):
        x = _separable(keras, x, 64, 1)
    # The reference's final_pool_size is half the input, (24, 5), on the 25x5 map: its last
    # row is left out of the average (a 1x1 output either way)
    h, w = INPUT_SHAPES["ds_cnn"][:2]
    x = L.AveragePooling2D(pool_size=(h // 2, w // 2))(x)
    outputs = L.Dense(NUM_OUTPUTS["ds_cnn"], activation="softmax")(L.Flatten()(x))
    return keras.Model(inputs, outputs, name="ds_cnn")


def _autoencoder(keras):
    L = keras.layers  # noqa: N806
    inputs = keras.Input(INPUT_SHAPES["autoencoder"])
    x = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = L.Activation("relu")(L.BatchNormalization()(L.Dense(units)(x)))
    outputs = L.Dense(NUM_OUTPUTS["autoencoder"])(x)
    return keras.Model(inputs, outputs, name="fc_autoencoder")


def train_on_stand_in(model, name: str, samples: int = 64, epochs: int = 2, seed: int = 0):
    """Train ``model`` briefly on random stand-in data of the right shape (uniform [0, 1]
    inputs; random labels, or the input itself for the autoencoder), so that its ranges are
    those of a trained model (untrained logits can be so small that int8 SOFTMAX has no valid
    input scaling). Returns the stand-in inputs, for calibration."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (samples, *INPUT_SHAPES[name])).astype(np.float32)
    if name == "autoencoder":
        model.compile("adam", "mse")
        y = x
    else:
        model.compile("adam", "sparse_categorical_crossentropy")
        y = rng.integers(0, NUM_OUTPUTS[name], samples)
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return x

