"""The ``.tflite`` flatbuffer schema, as the TFLM runtime (the oracle) reads it.

The generated module of the pinned tflite-micro wheel, not TensorFlow's: importing
TensorFlow's started all of TensorFlow (5 s) before `engine check` or `engine run` could read
a model, and neither needs TensorFlow otherwise. TFLM's schema is the newer of the two (a
superset: two float8 tensor types, blockwise quantization); the tables the reader uses are
the same.
"""

from __future__ import annotations

from types import ModuleType


def tflite_schema() -> ModuleType:
    """The generated schema module (``ModelT``, ``BuiltinOperator``, ``TensorType``, ...)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated
