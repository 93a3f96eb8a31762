"""Golden vectors from the TFLM runtime: inputs, outputs and every layer's output.

TFLM reuses arena memory, so intermediate tensors are not readable after ``invoke``. To get
per-layer outputs, the model is re-packed with every operator's output listed as a subgraph
output (the operators and their parameters are untouched), which makes TFLM keep each one.
"""

from __future__ import annotations

import numpy as np

from tinysift.quantize.tflm import run_tflm


def with_all_outputs(model_bytes: bytes) -> tuple[bytes, int]:
    """The same model with every operator output exposed; returns (bytes, num_outputs)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    graph = model.subgraphs[0]
    graph.outputs = np.array([int(op.outputs[0]) for op in graph.operators], dtype=np.int32)
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), len(graph.outputs)


def layer_outputs(model_bytes: bytes, x_int8: np.ndarray) -> list[np.ndarray]:
    """Per-layer int8 outputs from TFLM, one (N, size) array per layer."""
    exposed, count = with_all_outputs(model_bytes)
    return run_tflm(exposed, x_int8, outputs=count)
