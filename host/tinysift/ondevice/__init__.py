"""On-device training, host side: the numpy reference of the firmware's head trainer.

``reference`` reproduces ``firmware/lib/tsengine/src/ts_trainer.c`` step for step (same
sample order bit for bit, same float32 arithmetic up to summation order); docs/trainer.md
is the specification both follow.
"""

from tinysift.ondevice.reference import (
    HeadQ,
    TrainConfig,
    TrainResult,
    epoch_order,
    head_int8,
    mbqm,
    quantize_multiplier,
    requantize_head,
    train_head,
    xorshift32,
)

__all__ = [
    "HeadQ",
    "TrainConfig",
    "TrainResult",
    "epoch_order",
    "head_int8",
    "mbqm",
    "quantize_multiplier",
    "requantize_head",
    "train_head",
    "xorshift32",
]
