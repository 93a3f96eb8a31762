"""Cost meter: multiply-accumulates per sample and per training epoch.

Conventions: ``params`` is Keras' ``count_params()``, every weight of the float model with
BatchNorm unfolded (its scale, offset and the non-trainable moving mean and variance
included): 9,610 for the default model at 28x28, against 8,746 weights and biases once the
int8 conversion folds BatchNorm into the convolutions (7,808 conv weights, 288 folded biases,
the head's 650). ``macs_per_sample`` counts the multiply-accumulates of convolutions,
depthwise convolutions and dense layers (BatchNorm folded: free; biases, pooling,
activations, ADD and softmax not counted), the exporter's count too (``ParsedModel.macs``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# One training step costs the forward pass plus the backward pass, which computes both the
# gradient with respect to the activations and to the weights: about 3x the forward MACs, every
# layer counted (the host trains them all; the first layer's activation gradient, which no one
# needs, is counted too: an overestimate by its forward MACs, 1.9% for the default model).
TRAIN_MACS_FACTOR = 3


@dataclass(frozen=True)
class CostReport:
    params: int
    macs_per_sample: int
    train_macs_per_sample: int

    def epoch_train_macs(self, num_samples: int) -> int:
        return self.train_macs_per_sample * num_samples

    def to_dict(self) -> dict:
        return asdict(self)


def count_macs(model) -> CostReport:
    """Count MACs of one forward pass of a tf_keras model (conv, depthwise, dense layers).

    A layer it cannot count is one TinysiftError naming it (their MACs were counted as 0 or
    wrong without a word): any other layer with weights but BatchNormalization (Conv1D,
    SeparableConv2D, Conv2DTranspose, a nested model, a recurrent layer), a layer called more
    than once, and an unknown (None) spatial size."""
    from tinysift.errors import TinysiftError
    from tinysift.tfcompat import keras

    layers = keras.layers
    macs = 0
    for layer in model.layers:
        counted = (isinstance(layer, layers.DepthwiseConv2D | layers.Dense)
                   or type(layer) is layers.Conv2D)
        if not counted and layer.weights and not isinstance(layer, layers.BatchNormalization):
            raise TinysiftError(f"count_macs counts Conv2D, DepthwiseConv2D and Dense layers; "
                                f"layer {layer.name!r} is a {type(layer).__name__}")
        if not counted:
            continue
        if len(layer.inbound_nodes) > 1:
            raise TinysiftError(f"count_macs counts each layer once; layer {layer.name!r} is "
                                f"called {len(layer.inbound_nodes)} times")
        dims = [*layer.input.shape[1:], *layer.output.shape[1:]]
        if any(d is None for d in dims):
            raise TinysiftError(f"count_macs needs a fixed input size; layer {layer.name!r} "
                                f"has input {tuple(layer.input.shape)}, output "
                                f"{tuple(layer.output.shape)}")
        if isinstance(layer, layers.DepthwiseConv2D):
            _, ho, wo, co = layer.output.shape
            kh, kw = layer.kernel_size
            macs += ho * wo * co * kh * kw
        elif isinstance(layer, layers.Conv2D):
            _, ho, wo, co = layer.output.shape
            kh, kw = layer.kernel_size
            ci = layer.input.shape[-1] // layer.groups  # each filter sees its group's channels
            macs += ho * wo * co * kh * kw * ci
        else:  # Dense, once per position of an input of more than one dimension
            positions = int(np.prod([int(d) for d in layer.input.shape[1:-1]]))
            macs += positions * int(layer.input.shape[-1]) * int(layer.units)
    return CostReport(params=int(model.count_params()), macs_per_sample=int(macs),
                      train_macs_per_sample=int(macs) * TRAIN_MACS_FACTOR)
