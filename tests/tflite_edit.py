"""A ``.tflite`` with one thing changed: its object tree edited and re-packed. Shared by the
tests that feed such a model to the exporter (tests/test_export.py), to the engine's reader
(tests/test_trainer.py) or to TFLM (tests/test_engine_graph.py)."""

from __future__ import annotations


def patched(tflite: bytes, edit) -> bytes:
    """``tflite`` with ``edit(model, graph, schema)`` applied to its object tree (``graph``:
    the first subgraph; ``schema``: TensorFlow's schema_py_generated), re-packed."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    edit(model, model.subgraphs[0], schema)
    builder = flatbuffers.Builder(len(tflite) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
