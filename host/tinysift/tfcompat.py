"""The one place that decides which Keras tinysift uses.

tensorflow-model-optimization's quantization-aware training works only on Keras 2 models
(``tf_keras``), and importing tfmot flips ``TF_USE_LEGACY_KERAS``. So tinysift sets it first,
imports TensorFlow once, and uses ``tf_keras`` explicitly everywhere: ``from tinysift.tfcompat
import tf, keras``. Import this module lazily (TensorFlow takes seconds to import).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide the harmless cuInit error on CPU
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # training here is CPU-only and seeded

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras"]
