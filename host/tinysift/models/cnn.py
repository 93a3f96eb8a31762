"""A tiny CNN family for microcontrollers, in Keras 2 (tf_keras).

Every model is ``backbone -> features -> head``: the backbone is a strided stem convolution
and depthwise-separable blocks (or plain conv + max-pool for the ``conv-maxpool`` variant, or
MLPerf Tiny's ResNet-8 residual stacks for ``resnet8``: a graph, each block's input read by
its residual ADD too), global average pooling written as an ``AveragePooling2D`` over the
whole map (it lowers to TFLite AVERAGE_POOL_2D + RESHAPE, whose integer rounding is simple and
exact), and the head is one Dense layer (``head``) followed by Softmax. The firmware
fine-tunes only the head.

BatchNorm uses momentum 0.9: with short trainings the default 0.99 leaves the moving
statistics far from the data and test accuracy near chance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Real

from tinysift.errors import TinysiftError, did_you_mean
from tinysift.params import is_whole

FEATURES_LAYER = "features"
HEAD_LAYER = "head"
VARIANTS = ("ds-cnn", "conv-maxpool", "resnet8")
# The smallest image side each variant builds on: conv-maxpool's 2x2 max-pool, valid 3x3
# convolution and second 2x2 max-pool need 8 pixels (7 ends in an empty map); the others pad.
MIN_SIDE = {"ds-cnn": 1, "conv-maxpool": 8, "resnet8": 1}


def check_shape(variant: str, width: int) -> None:
    """One TinysiftError for a variant tinysift does not build or a width below 1 channel."""
    if variant not in VARIANTS:
        raise TinysiftError(f"unknown model variant {variant!r}"
                            f"{did_you_mean(variant, VARIANTS)}; choose one of "
                            f"{', '.join(VARIANTS)} (--variant)")
    if not is_whole(width, 1):
        raise TinysiftError(f"model width must be a whole number of stem channels >= 1 "
                            f"(16 by default), got {width!r} (--width)")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a tiny CNN.

    Parameters
    ----------
    variant : {"ds-cnn", "conv-maxpool", "resnet8"}
        ``ds-cnn``: stem (stride 2 on images of 16 pixels and more) + three
        depthwise-separable blocks (the default).
        ``conv-maxpool``: two plain 3x3 convolutions each followed by 2x2 max-pooling
        (images of at least 8x8 pixels).
        ``resnet8``: MLPerf Tiny's image-classification ResNet-8 (tinysift.models.
        mlperf_tiny) at the dataset's shape: a 3x3 stem, three residual stacks (two 3x3
        convolutions added to the block's input; the second and third at stride 2, their
        skip through a strided 1x1 convolution). The same layers and weight shapes; trained by
        tinysift's recipe, so without the reference's L2 (1e-4) kernel regularizers and
        he_normal initialization, and with this module's BatchNorm momentum 0.9 (the
        reference: Keras' 0.99).
    width : int
        Channels of the stem; blocks use ``2*width`` and ``4*width`` (resnet8: the stacks
        use ``width``, ``2*width``, ``4*width``; 16 is MLPerf Tiny's model).
    bn_momentum : float
        BatchNorm momentum.
    """

    variant: str = "ds-cnn"
    width: int = 16
    bn_momentum: float = 0.9

    def __post_init__(self) -> None:
        check_shape(self.variant, self.width)
        m = self.bn_momentum
        if isinstance(m, bool) or not isinstance(m, Real) or not 0 <= float(m) <= 1:
            raise TinysiftError(f"BatchNorm momentum must be a number in [0, 1] (0.9 by "
                                f"default), got {m!r}")
        # plain Python numbers: the config is part of run keys and manifests (JSON), where a
        # numpy integer would be written as the string "8"
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "bn_momentum", float(m))

    def to_dict(self) -> dict:
        return asdict(self)


def check_input(config: ModelConfig, input_shape, num_classes) -> None:
    """One TinysiftError for an input shape or class count ``config``'s model cannot take
    (was a Keras ValueError from inside a layer, reported as a bug in tinysift)."""
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(is_whole(d, 1) for d in shape):
        raise TinysiftError(f"model input must be (height, width, channels), whole numbers "
                            f">= 1, got {shape!r}")
    side = MIN_SIDE[config.variant]
    if min(shape[:2]) < side:
        raise TinysiftError(
            f"--variant {config.variant} needs images of at least {side}x{side} pixels, got "
            f"{shape[0]}x{shape[1]}; ds-cnn and resnet8 take images of any size (--variant)")
    if not is_whole(num_classes, 1):
        raise TinysiftError(f"the model needs a whole number of classes >= 1, "
                            f"got {num_classes!r}")


def build_model(input_shape: tuple[int, int, int], num_classes: int,
                config: ModelConfig | None = None):
    """Build an uncompiled tf_keras model taking float images in [0, 1].

    Parameters
    ----------
    input_shape : (H, W, C)
    num_classes : int
    config : ModelConfig, optional

    Returns
    -------
    tf_keras.Model
        Outputs class probabilities; layer ``features`` is the backbone output and layer
        ``head`` the final Dense layer.
    """
    from tinysift.tfcompat import keras

    config = config or ModelConfig()  # checked when made (ModelConfig.__post_init__)
    check_input(config, input_shape, num_classes)
    layers = keras.layers
    h, w, _ = input_shape
    inputs = keras.Input(shape=input_shape, name="image")

    def bn_relu(x, name):
        x = layers.BatchNormalization(momentum=config.bn_momentum, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    def ds_block(x, filters, stride, name):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                   name=f"{name}_dw")(x)
        x = bn_relu(x, f"{name}_dw")
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
        return bn_relu(x, f"{name}_pw")

    wd = config.width
    if config.variant == "ds-cnn":
        stem_stride = 2 if min(h, w) >= 16 else 1
        x = layers.Conv2D(wd, 3, strides=stem_stride, padding="same", use_bias=False,
                          name="stem")(inputs)
        x = bn_relu(x, "stem")
        x = ds_block(x, 2 * wd, 1, "block1")
        x = ds_block(x, 4 * wd, 2, "block2")
        x = ds_block(x, 4 * wd, 1, "block3")
    elif config.variant == "resnet8":
        x = layers.Conv2D(wd, 3, padding="same", name="stem")(inputs)
        x = bn_relu(x, "stem")
        for i, (filters, stride) in enumerate(((wd, 1), (2 * wd, 2), (4 * wd, 2)), start=1):
            name = f"stack{i}"
            y = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_a")(x)
            y = bn_relu(y, f"{name}_a")
            y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_b")(y)
            y = layers.BatchNormalization(momentum=config.bn_momentum, name=f"{name}_b_bn")(y)
            if stride != 1:  # the skip takes the new shape through a strided 1x1 conv
                x = layers.Conv2D(filters, 1, strides=stride, padding="same",
                                  name=f"{name}_skip")(x)
            x = layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([x, y]))
    else:
        x = layers.Conv2D(wd, 3, padding="same", use_bias=False, name="conv1")(inputs)
        x = bn_relu(x, "conv1")
        x = layers.MaxPooling2D(2, name="pool1")(x)
        x = layers.Conv2D(2 * wd, 3, padding="valid", use_bias=False, name="conv2")(x)
        x = bn_relu(x, "conv2")
        x = layers.MaxPooling2D(2, name="pool2")(x)
    spatial = tuple(int(d) for d in x.shape[1:3])
    x = layers.AveragePooling2D(pool_size=spatial, name="gap")(x)
    features = layers.Flatten(name=FEATURES_LAYER)(x)
    logits = layers.Dense(num_classes, name=HEAD_LAYER)(features)
    outputs = layers.Softmax(name="softmax")(logits)
    return keras.Model(inputs, outputs, name=f"tinysift_{config.variant}_w{wd}")


def feature_model(model):
    """A model sharing ``model``'s weights that outputs the backbone features."""
    from tinysift.tfcompat import keras

    return keras.Model(model.input, model.get_layer(FEATURES_LAYER).output)
