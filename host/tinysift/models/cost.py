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
    """Count MACs of one forward pass of a tf_keras model (conv, depthwise, dense layers)."""
    from tinysift.tfcompat import keras

    layers = keras.layers
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, ho, wo, co = layer.output.shape
            kh, kw = layer.kernel_size
            macs += ho * wo * co * kh * kw
        elif isinstance(layer, layers.Conv2D):
            _, ho, wo, co = layer.output.shape
            kh, kw = layer.kernel_size
            ci = layer.input.shape[-1]
            macs += ho * wo * co * kh * kw * ci
        elif isinstance(layer, layers.Dense):
            macs += int(layer.input.shape[-1]) * int(layer.units)
    return CostReport(params=int(model.count_params()), macs_per_sample=int(macs),
                      train_macs_per_sample=int(macs) * TRAIN_MACS_FACTOR)
