"""Golden vectors from the TFLM runtime: inputs, outputs and every layer's output.

TFLM reuses arena memory, so intermediate tensors are not readable after ``invoke``. To get
per-layer outputs, the model is re-packed with every operator's output listed as a subgraph
output (the operators and their parameters are untouched), which makes TFLM keep each one.
Its arena is found by tinysift.quantize.tflm.minimal_arena's search (TFLM's default, ten
times the model's size, is far too small for a model of small weights and large activations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.quantize.tflm import arena_ceiling, minimal_arena, run_tflm

# TFLM aligns its arena's start and each planned buffer to 16 bytes: slack over the size the
# search verified, so that another allocation of the arena never lands a few bytes short
ARENA_SLACK = 1024


def tflm_arena(model_bytes: bytes) -> int:
    """An arena size TFLM is known to run ``model_bytes`` in: the smallest one that allocates
    and invokes (``minimal_arena``, searched in a forked child, since TFLM can crash at
    sizes just too small), plus a little slack.

    The search's ceiling is twice every non-constant tensor's bytes plus 1 MiB for TFLM's
    persistent structures (at least 4 MiB): a model the engine accepts is not refused for
    its activations' size. A model TFLM does not run even there is refused
    (``TinysiftError``)."""
    from tinysift.quantize.convert import quiet_stderr

    hi = arena_ceiling(model_bytes)
    try:
        with quiet_stderr():  # TFLM logs every failed try on fd 2
            return minimal_arena(model_bytes, hi=hi) + ARENA_SLACK
    except TinysiftError:
        # hi is twice what the tensors need: TFLM's Prepare refused a parameter
        raise TinysiftError(
            f"TFLM does not run the model even in a {hi:,}-byte arena (at least twice what its "
            "tensors need): its kernels refuse a parameter of it (a damaged .tflite?); convert the "
            "model again with full-integer int8 quantization") from None


def with_all_outputs(model_bytes: bytes) -> tuple[bytes, int]:
    """The same model with every operator output exposed; returns (bytes, num_outputs)."""
    import flatbuffers

    from tinysift.tflite_schema import tflite_schema

    schema = tflite_schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    graph = model.subgraphs[0]
    graph.outputs = np.array([int(op.outputs[0]) for op in graph.operators], dtype=np.int32)
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), len(graph.outputs)


def layer_outputs(model_bytes: bytes, x_int8: np.ndarray) -> list[np.ndarray]:
    """Per-operator outputs from TFLM, one (N, size) array per operator of the .tflite."""
    exposed, count = with_all_outputs(model_bytes)
    return run_tflm(exposed, x_int8, outputs=count, arena_size=tflm_arena(exposed))


@dataclass
class Golden:
    """What TFLM computes for a batch of inputs, in the engine's terms."""

    x: np.ndarray              # the .tflite's inputs (int8, or float for a float-input model)
    x_int8: np.ndarray         # the engine's int8 inputs (TFLM's QUANTIZE of x when float)
    layers: list[np.ndarray]   # each engine layer's int8 output (N, size)
    outputs: np.ndarray        # the .tflite's outputs (int8, or float after its DEQUANTIZE)

    @property
    def int8_outputs(self) -> np.ndarray:
        return self.layers[-1]


def golden(model_bytes: bytes, parsed, x: np.ndarray) -> Golden:
    """TFLM on every input, with every layer's output (``parsed``: the model's
    ``ParsedModel``; float edges are mapped to the engine's int8 input and output)."""
    per_op = layer_outputs(model_bytes, x)
    first = parsed.tflite_first_op
    layers = per_op[first:first + len(parsed.layers)]
    if parsed.input_float is not None:
        x_int8 = np.asarray(per_op[0], np.int8).reshape(len(x), *parsed.input_dims)
    else:
        x_int8 = np.asarray(x, np.int8)
    return Golden(x=x, x_int8=x_int8,
                  layers=[np.asarray(lo, np.int8) for lo in layers], outputs=per_op[-1])
