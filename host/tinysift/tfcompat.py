"""The one place that decides which Keras tinysift uses.

tensorflow-model-optimization's quantization-aware training works only on Keras 2 models
(``tf_keras``), and importing tfmot flips ``TF_USE_LEGACY_KERAS``. So tinysift sets it first,
imports TensorFlow once, and uses ``tf_keras`` explicitly everywhere: ``from tinysift.tfcompat
import tf, keras``. Import this module lazily (TensorFlow takes seconds to import).

TensorFlow >= 2.19 writes its start-up notes (oneDNN, no CUDA driver, the failed ``cuInit`` on
a machine without a GPU) from C++ before its logging reads ``TF_CPP_MIN_LOG_LEVEL``
(tensorflow/tensorflow#100442), seven lines on every command. The import and the device
probe run with the process's stderr caught; the lines known to be harmless are dropped and
every other line is written back, so a real warning or error still reaches the user.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # training here is CPU-only and seeded

# TensorFlow's start-up notes that say nothing about the user's work, on a CPU-only machine
HARMLESS_STARTUP = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers on your machine, GPU will not be used"
    r"|failed call to cuInit"
    r"|^\s*$")


def startup_noise_removed(text: str) -> str:
    """``text`` (what TensorFlow wrote to stderr while starting) without the lines that
    :data:`HARMLESS_STARTUP` names; every other line is kept, in order."""
    kept = [line for line in text.splitlines(keepends=True)
            if not HARMLESS_STARTUP.search(line)]
    return "".join(kept)


def _import_quietly():
    """Import TensorFlow and tf_keras and probe the devices (where ``cuInit`` is called)
    with file descriptor 2 caught, then write back what was not start-up noise."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        import tensorflow
        import tf_keras
        return tensorflow, tf_keras
    sys.stderr.flush()
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow
            import tf_keras
            tensorflow.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            rest = startup_noise_removed(caught.read().decode(errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()
    return tensorflow, tf_keras


tf, keras = _import_quietly()
tf.get_logger().setLevel("ERROR")


__all__ = ["tf", "keras"]
