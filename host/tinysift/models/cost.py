"""Cost meter: multiply-accumulates per sample and per training epoch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# One training step costs the forward pass plus the backward pass, which computes both the
# gradient with respect to the activations and to the weights: about 3x the forward MACs.
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
