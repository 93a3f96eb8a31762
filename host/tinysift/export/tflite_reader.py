"""Read a ``.tflite`` flatbuffer into the firmware's layer table (format version 2).

The exporter reads the converted model, not the Keras model, so the device executes exactly
what the TFLM runtime executes: every operator of the single subgraph, in the flatbuffer's
order (its execution order), with the tensors each one reads. Tensors may have several
readers (residual connections) and layers several inputs (ADD, MUL, CONCATENATION). A float
input or output is accepted at the edges only (a QUANTIZE first, a DEQUANTIZE last: kept off
the table, see ``ParsedModel.input_float``). Anything else (an op the engine lacks, float
tensors in the middle, batch > 1, several subgraphs) is refused with one line that names the
problem and the layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinysift.errors import UnsupportedOpError
from tinysift.export import quant_math as qm

FORMAT_VERSION = 2
MAX_INPUTS = 10  # TS_MAX_INPUTS in ts_model.h
ALIGN = 8  # arena alignment of every planned tensor
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
                 "MAX_POOL_2D", "RESHAPE", "SOFTMAX", "QUANTIZE", "MEAN", "ADD", "MUL", "PAD",
                 "CONCATENATION", "LOGISTIC", "HARD_SWISH")
EDGE_OPS = ("QUANTIZE (float input)", "DEQUANTIZE (float output)")
OP_CODES = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 3, "AVERAGE_POOL_2D": 4,
            "MAX_POOL_2D": 5, "RESHAPE": 6, "SOFTMAX": 7, "MEAN": 8, "QUANTIZE": 9, "ADD": 10,
            "MUL": 11, "PAD": 12, "CONCATENATION": 13, "LOGISTIC": 14, "HARD_SWISH": 15}
# Ops that may follow the classifier head (the trainer replaces what comes before them).
_AFTER_HEAD = ("SOFTMAX", "RESHAPE", "QUANTIZE")
MAX_HEAD_CLASSES = 256  # labels are uint8
# The engine's own limits (ts_model_check, firmware/lib/tsengine/src/ts_executor.c): a model
# beyond them was exported and built, then refused on the device with a bare status code
MAX_DIM = 32767              # TS_MAX_DIM: each of h, w, c
MAX_ELEMS = 1 << 26          # TS_MAX_ELEMS: h * w * c of one tensor
MAX_SOFTMAX_DEPTH = 511      # TS_MAX_SOFTMAX_DEPTH: the axis SOFTMAX normalizes
MAX_MEAN_COUNT = 1 << 23     # TS_MAX_MEAN_COUNT: h * w a MEAN sums
MAX_LAYERS = 4096            # ts_model_check's num_layers
MAX_ARENA_BYTES = 1 << 31    # TS_MAX_ARENA_BYTES
INT32_MAX = (1 << 31) - 1    # ts_acc_bound_ok: k * 255 * 128 + max|bias| in an int32
_SMALLER = "rebuild the model with smaller tensors there (pooling or a strided convolution "\
           "before it, fewer channels or features)"
# ts_layer_t's narrow fields (firmware/lib/tsengine/src/ts_model.h): a value beyond its C type
# would be truncated by the compiler without a word, so the reader refuses it
_UINT8_FIELDS = ("stride", "dilation", "filter")
_C_LIMITS = {"uint8_t": (0, 255), "uint16_t": (0, 65535), "int16_t": (-32768, 32767)}
_SMALLER_WINDOW = "a smaller window, stride or dilation (split the layer in two)"
_C_FIELD_FIX = {"stride": _SMALLER_WINDOW, "dilation": _SMALLER_WINDOW, "filter": _SMALLER_WINDOW,
                "depth": "a smaller depth multiplier", "pad": "less padding"}
_NP_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
             7: np.int16, 9: np.int8, 10: np.float64, 12: np.uint64, 15: np.uint32,
             16: np.uint16}
# The options each op's parameters are read from: another kind (a changed union tag) means a
# damaged file; None is accepted where the parser has a default for it
_OPTIONS = {"CONV_2D": ("Conv2DOptionsT", True),
            "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptionsT", True),
            "FULLY_CONNECTED": ("FullyConnectedOptionsT", True),
            "AVERAGE_POOL_2D": ("Pool2DOptionsT", True), "MAX_POOL_2D": ("Pool2DOptionsT", True),
            "SOFTMAX": ("SoftmaxOptionsT", False), "ADD": ("AddOptionsT", False),
            "MUL": ("MulOptionsT", False), "CONCATENATION": ("ConcatenationOptionsT", False)}


class _Damaged(Exception):
    """A structure no converter writes (an index out of range, data of the wrong size, a
    name that is not text): the file changed after conversion. parse_tflite names the file."""


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    scales: np.ndarray
    zero_points: np.ndarray
    data: np.ndarray | None = None
    quantized_dimension: int = 0  # the axis of per-channel scales

    @property
    def scale(self) -> float:
        return float(self.scales[0]) if len(self.scales) else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if len(self.zero_points) else 0


@dataclass
class LayerSpec:
    """One row of the layer table, every field of ``ts_layer_t``."""

    index: int
    op: str
    name: str
    in_dims: tuple[int, int, int]
    out_dims: tuple[int, int, int]
    input_zero_point: int
    output_zero_point: int
    act_min: int = qm.INT8_MIN
    act_max: int = qm.INT8_MAX
    padding: str = "VALID"
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    filter: tuple[int, int] = (1, 1)
    depth_multiplier: int = 1
    pad: tuple[int, int] = (0, 0)
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None
    softmax: tuple[int, int, int] = (0, 0, 0)
    input_tensor: Tensor | None = None
    output_tensor: Tensor | None = None
    weight_tensor: Tensor | None = None
    bias_tensor: Tensor | None = None
    # format version 2: the graph
    inputs: list[int] = field(default_factory=list)  # engine tensors read (0 = model input)
    input_tensors: list[Tensor] = field(default_factory=list)
    in2_dims: tuple[int, int, int] = (0, 0, 0)
    input2_zero_point: int = 0
    axis: int = 0
    pad_c: int = 0
    tflite_index: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def op_code(self) -> int:
        return OP_CODES[self.op]

    @property
    def out_bytes(self) -> int:
        return int(np.prod(self.out_dims))

    @property
    def in_bytes(self) -> int:
        return int(np.prod(self.in_dims))

    @property
    def macs(self) -> int:
        out = int(np.prod(self.out_dims))
        if self.op == "CONV_2D":
            return out * self.filter[0] * self.filter[1] * self.in_dims[2]
        if self.op == "DEPTHWISE_CONV_2D":
            return out * self.filter[0] * self.filter[1]
        if self.op == "FULLY_CONNECTED":
            return self.in_bytes * self.out_dims[2]
        return 0


@dataclass
class TensorPlan:
    """The arena plan: offsets (None for the model input and output: the caller's buffers),
    each tensor's producer (-1 for the model input) and last reader."""

    sizes: list[int]
    first: list[int]
    last: list[int]
    offsets: list[int | None]
    arena_bytes: int


@dataclass
class ParsedModel:
    layers: list[LayerSpec]
    input: Tensor          # the int8 input the engine takes
    output: Tensor         # the int8 output the engine gives
    head_index: int | None  # the FULLY_CONNECTED classifier head (None: the trainer refuses)
    plan: TensorPlan | None = None
    input_float: Tensor | None = None   # the .tflite's float input (QUANTIZE at its start)
    output_float: Tensor | None = None  # the .tflite's float output (DEQUANTIZE at its end)
    tflite_first_op: int = 0
    num_tflite_ops: int = 0
    head_note: str = ""    # why there is no head, when there is none

    @property
    def head(self) -> LayerSpec:
        if self.head_index is None:
            raise UnsupportedOpError(f"the model has no classifier head to train: {self.head_note}")
        return self.layers[self.head_index]

    @property
    def has_head(self) -> bool:
        return self.head_index is not None

    @property
    def input_dims(self) -> tuple[int, int, int]:
        return _dims(self.input.shape)

    @property
    def is_chain(self) -> bool:
        return all(lay.inputs == [lay.index] for lay in self.layers)

    def arena_bytes(self) -> int:
        """The planned activation arena (the model input and output are the caller's)."""
        return self.plan.arena_bytes

    def weight_bytes(self) -> int:
        total = 0
        for layer in self.layers:
            for arr in (layer.weights, layer.bias, layer.multiplier, layer.shift):
                if arr is not None:
                    total += arr.nbytes
        return total

    def macs(self) -> int:
        return sum(lay.macs for lay in self.layers)


def _schema():
    from tinysift.tflite_schema import tflite_schema

    return tflite_schema()


def _dims(shape: tuple[int, ...], where: str = "") -> tuple[int, int, int]:
    """NHWC (batch 1), (1, W, C), (1, D) or (D,) -> (h, w, c)."""
    s = [int(d) for d in shape]
    if len(s) >= 2 and s[0] != 1:
        raise UnsupportedOpError(f"{where}: batch {s[0]} (shape {tuple(s)}); the engine runs "
                                 "batch 1: convert the model with a batch dimension of 1")
    if len(s) == 4:
        return s[1], s[2], s[3]
    if len(s) == 3:
        return 1, s[1], s[2]
    if len(s) == 2:
        return 1, 1, s[1]
    if len(s) == 1:
        return 1, 1, s[0]
    if len(s) == 0:
        return 1, 1, 1
    raise UnsupportedOpError(f"{where}: tensor shape {tuple(shape)} has more than 4 dimensions")


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_arena(sizes: list[int], first: list[int], last: list[int],
               external: set[int], tie: list[int] | None = None,
               place_external: bool = False) -> tuple[list[int | None], int]:
    """Offsets for tensors alive from layer ``first[t]`` to ``last[t]`` (inclusive), greedy by
    size as TFLM's GreedyMemoryPlanner: the largest first (equal sizes by ``tie``, default
    tensor order), each at the lowest offset where it overlaps no placed tensor alive at the
    same time. ``place_external`` plans the external tensors too (as TFLM does, which has the
    model input and output in its arena) and then drops them: a valid plan of a superset is
    valid for the rest. Returns (offsets, arena bytes: the end of the last planned tensor)."""
    tie = list(range(len(sizes))) if tie is None else tie
    order = sorted((t for t in range(len(sizes)) if place_external or t not in external),
                   key=lambda t: (-_align(sizes[t]), tie[t]))
    placed: list[tuple[int, int]] = []  # (offset, tensor), kept sorted by offset
    offsets: list[int | None] = [None] * len(sizes)
    for t in order:
        need = _align(sizes[t])
        candidate = 0
        for off, u in placed:
            if first[u] > last[t] or first[t] > last[u]:
                continue  # not alive together
            if off - candidate >= need:
                break
            candidate = max(candidate, off + _align(sizes[u]))
        offsets[t] = candidate
        placed.append((candidate, t))
        placed.sort()
    for t in external:
        offsets[t] = None
    arena = max((offsets[t] + _align(sizes[t]) for t in range(len(sizes)) if t not in external),
                default=0)
    return offsets, arena


def parse_tflite(model_bytes: bytes, source: str | Path | None = None) -> ParsedModel:
    """Parse and check a full-integer ``.tflite`` into the layer table and its arena plan.

    ``source`` is the file the bytes were read from, named when they are not a .tflite or
    are damaged."""
    schema = _schema()
    what = "the model" if source is None else str(source)
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    except Exception as e:  # noqa: BLE001 - any decoding failure means "not a .tflite"
        # the file and the way to make one: the bare message left a user with several
        # models (or a .keras/.h5 passed by mistake) guessing which and what to do
        raise UnsupportedOpError(
            f"{what} is not a readable .tflite flatbuffer: give a full-integer int8 .tflite, "
            "converted with `tinysift quantize` (a run's model.tflite) or TensorFlow's "
            "TFLiteConverter with int8 quantization") from e
    fix = ("convert the model again (or restore the file from a good copy); if it is a fresh "
           "conversion, report this with the .tflite")
    try:
        return _parse_model(model, schema)
    except _Damaged as e:
        raise UnsupportedOpError(f"{what} is damaged, not a valid .tflite: {e}; {fix}") from None
    except (IndexError, KeyError, TypeError, AttributeError, ValueError, OverflowError) as e:
        # a broken structure the checks of _Damaged do not name (bytes changed in place
        # decode without error): one line, not a traceback; the cause stays chained, as a
        # reader bug would show the same way
        raise UnsupportedOpError(
            f"{what} is damaged or malformed, not a valid .tflite (reading it failed: "
            f"{type(e).__name__}: {e}); {fix}") from e


def _parse_model(model, schema) -> ParsedModel:
    """parse_tflite on the decoded flatbuffer (``_Damaged`` for a broken structure)."""
    if model.subgraphs is None or len(model.subgraphs) != 1:
        n = 0 if model.subgraphs is None else len(model.subgraphs)
        raise UnsupportedOpError(f"the model has {n} subgraphs; the firmware engine runs "
                                 "single-subgraph models (no control flow)")
    graph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    act_names = _Names({v: k for k, v in vars(schema.ActivationFunctionType).items()
                        if not k.startswith("_")})
    pad_names = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}
    tensors, buffers = list(graph.tensors or []), list(model.buffers or [])

    def tensor(i: int) -> Tensor:
        if not 0 <= i < len(tensors):
            raise _Damaged(f"tensor index {i} is out of range (the graph has {len(tensors)} "
                           "tensors)")
        t = tensors[i]
        try:
            name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        except UnicodeDecodeError:
            raise _Damaged(f"tensor {i}'s name is not UTF-8 text") from None
        if not 0 <= t.buffer < len(buffers):
            raise _Damaged(f"tensor {i} ({name!r}) refers to buffer {t.buffer}, and the model "
                           f"has {len(buffers)}")
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        if any(d < 0 for d in shape):
            raise _Damaged(f"tensor {i} ({name!r}) has shape {shape}")
        q = t.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [],
                            np.float32)
        zps = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [],
                         np.int64)
        data = None
        buf = buffers[t.buffer].data
        dtype = _NP_TYPES.get(t.type, np.uint8)
        if buf is not None and len(buf):
            raw = np.frombuffer(bytes(bytearray(buf)), dtype=np.uint8)
            if t.type not in _NP_TYPES:  # a type the reader has no use for: refused later
                data = raw
            else:
                need = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                if len(raw) != need:
                    raise _Damaged(f"tensor {i} ({name!r}) holds {len(raw):,} bytes of data for "
                                   f"shape {shape} of {np.dtype(dtype).name} ({need:,} bytes)")
                data = raw.view(dtype).reshape(shape)
        return Tensor(i, name, shape, dtype, scales, zps, data,
                      int(q.quantizedDimension) if q is not None else 0)

    if graph.inputs is None or graph.outputs is None or len(graph.inputs) != 1 \
            or len(graph.outputs) != 1:
        n_in, n_out = (len(v) if v is not None else 0 for v in (graph.inputs, graph.outputs))
        raise UnsupportedOpError(
            f"the model has {n_in} input{'s' * (n_in != 1)} and {n_out} output"
            f"{'s' * (n_out != 1)}; the firmware engine runs models with one input and one "
            "output: convert a model of one input tensor (e.g. the inputs concatenated) and "
            "one output")
    ops = list(graph.operators or [])
    if not ops:
        raise UnsupportedOpError("the model has no operators")
    codes = list(model.operatorCodes or [])
    names = []
    for k, op in enumerate(ops):
        if not 0 <= op.opcodeIndex < len(codes):
            raise _Damaged(f"operator {k} has operator code {op.opcodeIndex}, and the model "
                           f"has {len(codes)}")
        code = codes[op.opcodeIndex]
        names.append(op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM"))
        # every index in range (-1: an optional input left out), at least one output
        ins = [] if op.inputs is None else [int(j) for j in op.inputs]
        outs = [] if op.outputs is None else [int(j) for j in op.outputs]
        if not outs or any(not -1 <= j < len(tensors) for j in ins) \
                or any(not 0 <= j < len(tensors) for j in outs):
            raise _Damaged(f"operator {k} ({names[-1]}) has inputs {ins} and outputs {outs}, "
                           f"and the graph has {len(tensors)} tensors")
        expected, required = _OPTIONS.get(names[-1], (None, False))
        opts = op.builtinOptions
        if expected is not None and (opts is None and required or opts is not None
                                     and type(opts).__name__ != expected):
            raise _Damaged(f"operator {k} ({names[-1]}) carries "
                           f"{type(opts).__name__ if opts is not None else 'no'} options, not "
                           f"{expected[:-1]}")
    g_in, g_out = tensor(int(graph.inputs[0])), tensor(int(graph.outputs[0]))

    # the float edges: a QUANTIZE of the float input first, a DEQUANTIZE to the float output last
    first_op, end_op = 0, len(ops)
    in_float = out_float = None
    if g_in.dtype is np.float32:
        if names[0] == "QUANTIZE" and _first_input(ops[0]) == g_in.index \
                and tensor(int(ops[0].outputs[0])).dtype is np.int8:
            in_float, first_op = g_in, 1
        else:
            raise UnsupportedOpError(
                "the model input is float and layer 0 does not quantize it to int8; convert "
                "with full-integer quantization (float is accepted only at the edges)")
    if g_out.dtype is np.float32:
        if names[-1] == "DEQUANTIZE" and int(ops[-1].outputs[0]) == g_out.index \
                and _first_input(ops[-1]) >= 0 \
                and tensor(_first_input(ops[-1])).dtype is np.int8:
            out_float, end_op = g_out, len(ops) - 1
        else:
            raise UnsupportedOpError(
                "the model output is float and the last layer does not dequantize an int8 "
                "tensor; convert with full-integer quantization")
    if end_op <= first_op:
        raise UnsupportedOpError("the model has no int8 operators between its float edges")
    engine_in = tensor(int(ops[0].outputs[0])) if in_float is not None else g_in
    engine_out = tensor(_first_input(ops[-1])) if out_float is not None else g_out
    if engine_in.dtype is not np.int8 or engine_out.dtype is not np.int8:
        raise UnsupportedOpError(
            f"the model's input/output are {engine_in.dtype.__name__}/"
            f"{engine_out.dtype.__name__}; the engine runs int8 (quantize with full-integer "
            "int8 input and output, or float edges)")
    for edge, inner in ((in_float, engine_in), (out_float, engine_out)):
        if edge is not None and tuple(edge.shape) != tuple(inner.shape):
            raise _Damaged(f"the float tensor {edge.name!r} has shape {edge.shape} and its "
                           f"int8 side {inner.shape}")
    _check_dims(_dims(engine_in.shape, "the model input"), "the model input", "input")
    if end_op - first_op > MAX_LAYERS:
        raise UnsupportedOpError(f"the model has {end_op - first_op:,} layers; the firmware "
                                 f"engine runs at most {MAX_LAYERS:,}: use a smaller model")

    engine_id = {engine_in.index: 0}  # tflite tensor -> engine tensor
    layers: list[LayerSpec] = []
    for i in range(first_op, end_op):
        li = i - first_op
        op, name = ops[i], names[i]
        out_t = tensor(int(op.outputs[0]))
        where = f"layer {li} (output tensor {out_t.name!r})"
        if name not in SUPPORTED_OPS:
            edge = (" (float edges are accepted only as the first and last operators)"
                    if name in ("DEQUANTIZE", "QUANTIZE") else "")
            raise UnsupportedOpError(
                f"op {name} at {where} is not supported by the firmware engine{edge}; supported "
                f"ops: {', '.join(SUPPORTED_OPS)}, and {' / '.join(EDGE_OPS)} at the edges. "
                "Rebuild the model from those ops (tinysift.models builds only supported ones)")
        if len(op.outputs) != 1:
            raise UnsupportedOpError(f"op {name} at {where} has {len(op.outputs)} outputs")
        act_inputs, consts = [], []
        for j in op.inputs if op.inputs is not None else []:
            j = int(j)
            if j < 0:
                continue
            t = tensor(j)
            (consts if t.data is not None else act_inputs).append(t)
        for t in [*act_inputs, out_t]:
            if t.dtype is not np.int8:
                raise UnsupportedOpError(
                    f"op {name} at {where} has a {t.dtype.__name__} tensor {t.name!r}: "
                    "non-int8 (e.g. float) tensors in the middle of the model are not "
                    "supported (the engine runs int8; float only at the edges)")
            if t.index not in engine_id and t is not out_t:
                raise UnsupportedOpError(f"{where} reads tensor {t.name!r}, which no earlier "
                                         "layer writes (operators out of execution order?)")
            _check_quantization(t, name, where)
        if not act_inputs:
            raise UnsupportedOpError(f"{where} reads no activation tensor")
        if len(act_inputs) > MAX_INPUTS:
            raise UnsupportedOpError(f"{where} reads {len(act_inputs)} tensors; the engine "
                                     f"takes at most {MAX_INPUTS}")
        in_t = act_inputs[0]
        opts = op.builtinOptions
        spec = LayerSpec(index=li, op=name, name=out_t.name,
                         in_dims=_dims(in_t.shape, where), out_dims=_dims(out_t.shape, where),
                         input_zero_point=in_t.zero_point, output_zero_point=out_t.zero_point,
                         input_tensor=in_t, output_tensor=out_t, tflite_index=i,
                         inputs=[engine_id[t.index] for t in act_inputs],
                         input_tensors=act_inputs)
        try:
            _parse_op(spec, op, opts, tensor, act_inputs, consts, act_names, pad_names, where)
        except (ValueError, ZeroDivisionError, OverflowError) as e:
            # TFLM's Prepare would refuse these parameters too; say which layer, not a bug
            # (chained: should the cause be a reader bug, not the model, it stays visible)
            raise UnsupportedOpError(
                f"op {name} at {where}: its parameters are outside what TFLM's int8 kernels "
                f"and this reader take ({str(e) or type(e).__name__}); re-convert the model "
                "with full-integer int8 quantization and a representative dataset (if it "
                "already is one, report this with the .tflite)") from e
        _check_c_fields(spec, where)
        _check_engine_limits(spec, where)
        engine_id[out_t.index] = li + 1
        layers.append(spec)
    if engine_id.get(engine_out.index) != len(layers):
        raise UnsupportedOpError("the last layer does not produce the model output")
    parsed = ParsedModel(layers, engine_in, engine_out, None, input_float=in_float,
                         output_float=out_float, tflite_first_op=first_op,
                         num_tflite_ops=len(ops))
    parsed.plan = _plan(parsed)
    if parsed.plan.arena_bytes > MAX_ARENA_BYTES:
        raise UnsupportedOpError(f"the model's activation arena is {parsed.plan.arena_bytes:,} "
                                 f"bytes; the firmware engine plans at most {MAX_ARENA_BYTES:,}: "
                                 f"{_SMALLER}")
    parsed.head_index, parsed.head_note = _find_head(parsed)
    return parsed


def _plan(parsed: ParsedModel) -> TensorPlan:
    """Tensor lifetimes and the greedy arena plan. Tensor 0 is the model input, tensor i + 1
    layer i's output; the model input and output live in the caller's buffers."""
    n = len(parsed.layers)
    sizes = [int(np.prod(parsed.input_dims))]
    sizes += [lay.out_bytes for lay in parsed.layers]
    first = [-1] + list(range(n))
    last = [-1] * (n + 1)
    for lay in parsed.layers:
        for t in lay.inputs:
            last[t] = max(last[t], lay.index)
    last[n] = n
    for t in range(n):
        if last[t] < 0:
            raise UnsupportedOpError(f"tensor {t} (output of layer {t - 1}) is never read; the "
                                     "engine runs models without dead branches")
    # Greedy by size with three orders of equal sizes, the smallest arena wins: execution
    # order, reverse execution order (a residual's long-lived tensors are placed after the
    # later ones, which often packs tighter), and TFLM's own (by .tflite tensor index, the
    # model input and output planned too as in TFLM's arena, then dropped). Not provably
    # <= TFLM's arena; the tests compare on every model they export.
    external = {0, n}
    tflite_ids = [parsed.input.index] + [lay.output_tensor.index for lay in parsed.layers]
    candidates = [plan_arena(sizes, first, last, external),
                  plan_arena(sizes, first, last, external, tie=[-t for t in range(n + 1)]),
                  plan_arena(sizes, first, last, external, tie=tflite_ids,
                             place_external=True)]
    offsets, arena = min(candidates, key=lambda c: c[1])
    return TensorPlan(sizes, first, last, offsets, arena)


def _find_head(parsed: ParsedModel) -> tuple[int | None, str]:
    """The classifier head the trainer trains: the last FULLY_CONNECTED, fed by the layer
    right before it alone (its input is the features), whose input nothing later reads, with
    only SOFTMAX / RESHAPE / QUANTIZE after it in a chain, and at most 256 outputs."""
    fcs = [lay.index for lay in parsed.layers if lay.op == "FULLY_CONNECTED"]
    if not fcs:
        return None, "the model has no FULLY_CONNECTED layer"
    h = fcs[-1]
    head = parsed.layers[h]
    plan = parsed.plan
    if head.inputs != [h]:
        return None, f"the last FULLY_CONNECTED (layer {h}) does not read the layer before it"
    if any(plan.last[t] > h for t in range(h + 1)):
        return None, f"tensors before the head (layer {h}) are read after it"
    after = parsed.layers[h + 1:]
    if any(lay.op not in _AFTER_HEAD or lay.inputs != [lay.index] for lay in after):
        return None, (f"layers after the last FULLY_CONNECTED (layer {h}) are not a chain of "
                      f"{', '.join(_AFTER_HEAD)}")
    if head.out_dims[2] > MAX_HEAD_CLASSES:
        return None, (f"the last FULLY_CONNECTED (layer {h}) has {head.out_dims[2]} outputs; a "
                      f"classifier head has at most {MAX_HEAD_CLASSES} classes")
    return h, ""


def _weights(op, tensor, rank: int, name: str, where: str) -> tuple[Tensor, Tensor | None]:
    """The weights (of ``rank`` dimensions) and the bias (None when left out) of a CONV_2D,
    DEPTHWISE_CONV_2D or FULLY_CONNECTED."""
    if op.inputs is None or len(op.inputs) < 2 or op.inputs[1] < 0:
        raise UnsupportedOpError(f"{where}: {name} has no weights input")
    w_t = tensor(int(op.inputs[1]))
    if len(w_t.shape) != rank:
        raise UnsupportedOpError(f"{where}: {name} weights of shape {w_t.shape} (rank {rank} "
                                 "expected)")
    b_t = tensor(int(op.inputs[2])) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    return w_t, b_t


def _first_input(op) -> int:
    """The tensor index of ``op``'s first input, -1 when it has none."""
    return int(op.inputs[0]) if op.inputs is not None and len(op.inputs) else -1


def _padding(opts, pad_names: dict[int, str], where: str) -> str:
    if opts.padding not in pad_names:
        raise _Damaged(f"{where} has padding code {opts.padding}, which no .tflite padding has")
    return pad_names[opts.padding]


def _const(consts: list[Tensor], where: str, what: str) -> np.ndarray:
    if not consts:
        raise UnsupportedOpError(f"{where}: {what} must be a constant tensor")
    return np.asarray(consts[0].data)


def _parse_op(spec: LayerSpec, op, opts, tensor, act_inputs: list[Tensor],
              consts: list[Tensor], act_names, pad_names, where: str) -> None:
    name = spec.op
    in_t, out_t = act_inputs[0], spec.output_tensor
    n_act = {"ADD": (1, 2), "MUL": (1, 2), "CONCATENATION": (1, MAX_INPUTS)}.get(name, (1, 1))
    if not n_act[0] <= len(act_inputs) <= n_act[1]:
        raise UnsupportedOpError(f"op {name} at {where} reads {len(act_inputs)} activation "
                                 "tensors")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w_t, b_t = _weights(op, tensor, 4, name, where)
        spec.padding = _padding(opts, pad_names, where)
        spec.stride = (opts.strideH, opts.strideW)
        spec.dilation = (opts.dilationHFactor, opts.dilationWFactor)
        spec.filter = (w_t.shape[1], w_t.shape[2])
        if name == "CONV_2D":
            out_channels = w_t.shape[0]
            if w_t.shape[3] != spec.in_dims[2]:
                raise UnsupportedOpError(f"{where}: grouped CONV_2D is not supported")
        else:
            spec.depth_multiplier = int(opts.depthMultiplier) or (
                w_t.shape[3] // spec.in_dims[2])
            out_channels = w_t.shape[3]
        _set_conv_quant(spec, w_t, b_t, in_t, out_t, out_channels,
                        act_names[opts.fusedActivationFunction], where,
                        channel_axis=0 if name == "CONV_2D" else 3)
        _set_padding(spec)
    elif name == "FULLY_CONNECTED":
        w_t, b_t = _weights(op, tensor, 2, name, where)
        if w_t.data is None:
            raise UnsupportedOpError(f"{where}: FULLY_CONNECTED weights must be constant")
        spec.out_dims = (1, 1, int(w_t.shape[0]))
        spec.in_dims = (1, 1, int(w_t.shape[1]))
        if int(np.prod(_dims(in_t.shape, where))) != w_t.shape[1]:
            raise UnsupportedOpError(f"{where}: FC input size does not match its weights "
                                     "(batch > 1?)")
        if int(np.prod(_dims(out_t.shape, where))) != w_t.shape[0]:
            raise UnsupportedOpError(f"{where}: FC output size does not match its weights")
        _set_conv_quant(spec, w_t, b_t, in_t, out_t, w_t.shape[0],
                        act_names[opts.fusedActivationFunction], where, channel_axis=0)
    elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        spec.padding = _padding(opts, pad_names, where)
        spec.stride = (opts.strideH, opts.strideW)
        spec.filter = (opts.filterHeight, opts.filterWidth)
        spec.act_min, spec.act_max = _fused_range(
            act_names[opts.fusedActivationFunction], out_t, name, where)
        if (in_t.scale, in_t.zero_point) != (out_t.scale, out_t.zero_point):
            raise UnsupportedOpError(f"{where}: pooling must keep its input quantization")
        _set_padding(spec)
    elif name == "RESHAPE":
        if int(np.prod(spec.in_dims)) != int(np.prod(spec.out_dims)):
            raise UnsupportedOpError(f"{where}: RESHAPE changes the element count")
    elif name == "QUANTIZE":
        # int8 -> int8 requantization (QAT graphs insert it where two ranges meet):
        # out = MultiplyByQuantizedMultiplier(in - in_zp, m, s) + out_zp, m*2^s from
        # (double)in_scale / (double)out_scale as TFLM's quantize kernel computes it.
        real = float(np.float32(in_t.scale)) / float(np.float32(out_t.scale))
        m, s = qm.quantize_multiplier(real)
        spec.multiplier = np.array([m], np.int32)
        spec.shift = np.array([s], np.int32)
    elif name == "SOFTMAX":
        beta = float(opts.beta) if opts is not None else 1.0
        try:
            spec.softmax = qm.softmax_params(beta, in_t.scale)
        except ValueError as e:
            raise UnsupportedOpError(
                f"{where}: SOFTMAX with beta {beta:g} and input scale {in_t.scale:g}: {e} "
                "(TFLM's int8 SOFTMAX needs beta * input_scale * 2^26 > 1); re-convert the "
                "model with a representative dataset that spans its logits") from None
        if abs(out_t.scale - 1.0 / 256) > 1e-9 or out_t.zero_point != -128:
            raise UnsupportedOpError(f"{where}: int8 SOFTMAX output must be 1/256, -128")
    elif name in ("ADD", "MUL"):
        _parse_binary(spec, opts, act_inputs, consts, act_names, where)
    elif name == "MEAN":
        _parse_mean(spec, opts, in_t, out_t, consts, where)
    elif name == "PAD":
        _parse_pad(spec, in_t, out_t, consts, where)
    elif name == "CONCATENATION":
        _parse_concat(spec, opts, act_inputs, out_t, where)
    elif name == "LOGISTIC":
        if abs(out_t.scale - 1.0 / 256) > 1e-9 or out_t.zero_point != -128:
            raise UnsupportedOpError(f"{where}: int8 LOGISTIC output must be 1/256, -128")
        spec.softmax = qm.logistic_params(in_t.scale)
        if spec.softmax[0] >= 1 << 31:
            raise UnsupportedOpError(f"{where}: LOGISTIC input scale out of range")
    elif name == "HARD_SWISH":
        om, oe, rm, re = qm.hard_swish_params(in_t.scale, out_t.scale)
        if not (-30 <= oe <= 0 and -30 <= re <= 15):
            raise UnsupportedOpError(f"{where}: HARD_SWISH scales out of range")
        spec.multiplier = np.array([om, rm], np.int32)
        spec.shift = np.array([oe, re], np.int32)
    if name in ("LOGISTIC", "HARD_SWISH", "SOFTMAX", "QUANTIZE") and \
            spec.in_dims != spec.out_dims:
        raise UnsupportedOpError(f"{where}: {name} changes the shape")


def _parse_binary(spec: LayerSpec, opts, act_inputs: list[Tensor], consts: list[Tensor],
                  act_names, where: str) -> None:
    """ADD / MUL: two operands (one may be a constant, kept in the row's weights), each
    broadcast to the output; the parameters TFLM's Prepare computes."""
    operands = list(act_inputs) + list(consts)
    if len(operands) != 2:
        raise UnsupportedOpError(f"{where}: {spec.op} needs two operands")
    if len(act_inputs) == 1 and operands[0] is not act_inputs[0]:
        operands.reverse()
    a, b = operands  # a is an activation; b may be a constant (both ops commute)
    for t in (a, b):
        if t.dtype is not np.int8:
            raise UnsupportedOpError(f"{where}: {spec.op} operand {t.name!r} is not int8")
        if len(t.shape) > 4:
            raise UnsupportedOpError(f"{where}: {spec.op} operand of rank {len(t.shape)}")
    out_t = spec.output_tensor
    spec.in_dims = _dims(a.shape, where)
    spec.in2_dims = _dims(b.shape, where)
    for d in (spec.in_dims, spec.in2_dims):
        if any(x not in (o, 1) for x, o in zip(d, spec.out_dims, strict=True)):
            raise UnsupportedOpError(f"{where}: {spec.op} operands {spec.in_dims} and "
                                     f"{spec.in2_dims} do not broadcast to {spec.out_dims}")
    spec.input_zero_point, spec.input2_zero_point = a.zero_point, b.zero_point
    spec.input_tensor = a
    if b.data is not None:
        spec.weights = np.ascontiguousarray(b.data).reshape(-1).astype(np.int8)
        spec.weight_tensor = b
    activation = act_names[opts.fusedActivationFunction] if opts is not None else "NONE"
    spec.act_min, spec.act_max = _fused_range(activation, out_t, spec.op, where)
    if b.data is not None:
        _check_quantization(b, spec.op, where)  # the constant operand (activations: checked)
    try:
        if spec.op == "ADD":
            mults = qm.add_params(a.scale, b.scale, out_t.scale)
        else:
            mults = [qm.quantize_multiplier(float(np.float32(a.scale))
                                            * float(np.float32(b.scale))
                                            / float(np.float32(out_t.scale)))]
    except (ValueError, ZeroDivisionError, OverflowError) as e:
        raise UnsupportedOpError(
            f"{where}: {spec.op} of scales {a.scale:g} and {b.scale:g} into {out_t.scale:g}: "
            f"{str(e) or type(e).__name__}; TFLM's int8 {spec.op} cannot rescale these (re-convert "
            "the model with full-integer int8 quantization)") from None
    spec.multiplier = np.array([m for m, _ in mults], np.int32)
    spec.shift = np.array([s for _, s in mults], np.int32)


def _parse_mean(spec: LayerSpec, opts, in_t: Tensor, out_t: Tensor, consts: list[Tensor],
                where: str) -> None:
    """MEAN over the spatial axes (keep_dims either way), as TFLM's EvalIntegerMean: the
    integer QuantizedMeanOrSum with 1/(h*w) folded into the output multiplier, for equal
    input and output quantization too (the truncated mean of the raw values, which the engine
    once ran there, differed from TFLM in half the outputs: tests/test_engine_graph.py,
    test_single_ops_at_their_edges_bit_exact[mean-equal])."""
    rank = len(in_t.shape)
    axes = {int(a) % max(rank, 1) for a in _const(consts, where, "the MEAN axes").reshape(-1)}
    if rank != 4 or axes != {1, 2}:
        raise UnsupportedOpError(f"{where}: MEAN over axes {sorted(axes)} of a rank-{rank} "
                                 "tensor; the engine reduces the spatial axes (1, 2) of NHWC")
    h, w, c = spec.in_dims
    spec.out_dims = (1, 1, c)
    if int(np.prod(_dims(out_t.shape, where))) != c:
        raise UnsupportedOpError(f"{where}: MEAN output shape {out_t.shape}")
    m, s = qm.mean_multiplier(in_t.scale, out_t.scale, h * w)
    spec.multiplier = np.array([m], np.int32)
    spec.shift = np.array([s], np.int32)


def _parse_pad(spec: LayerSpec, in_t: Tensor, out_t: Tensor, consts: list[Tensor],
               where: str) -> None:
    pads = _const(consts, where, "the PAD paddings").astype(np.int64).reshape(-1, 2)
    rank = len(in_t.shape)
    if pads.shape[0] != rank or rank not in (2, 3, 4) or pads[0].any() or (pads < 0).any():
        raise UnsupportedOpError(f"{where}: PAD paddings {pads.tolist()} (the engine pads h, w "
                                 "and c of a batch-1 tensor)")
    before = [0, 0, 0]
    before[3 - (rank - 1):] = [int(p) for p in pads[1:, 0]]
    spec.pad = (before[0], before[1])
    spec.pad_c = before[2]
    if in_t.zero_point != out_t.zero_point or np.float32(in_t.scale) != np.float32(out_t.scale):
        raise UnsupportedOpError(f"{where}: PAD must keep its input quantization")
    if any(i + b > o for i, b, o in zip(spec.in_dims, before, spec.out_dims, strict=True)):
        raise UnsupportedOpError(f"{where}: PAD output {spec.out_dims} is smaller than its input")
    # TFLM's Prepare refuses any other output shape (the engine would pad it anyway)
    padded = tuple(int(d) + int(b) + int(a) for d, (b, a) in zip(in_t.shape, pads, strict=True))
    if padded != tuple(int(d) for d in out_t.shape):
        raise UnsupportedOpError(f"{where}: PAD of {tuple(in_t.shape)} by {pads.tolist()} makes "
                                 f"{padded}, but its output is {tuple(out_t.shape)}")


def _parse_concat(spec: LayerSpec, opts, act_inputs: list[Tensor], out_t: Tensor,
                  where: str) -> None:
    rank = len(out_t.shape)
    axis = int(opts.axis) if opts is not None else 0
    axis = axis + rank if axis < 0 else axis
    if axis == 0 or not 0 < axis < rank or rank > 4:
        raise UnsupportedOpError(f"{where}: CONCATENATION along axis {axis} of a rank-{rank} "
                                 "tensor (the batch axis cannot be concatenated)")
    if opts is not None and opts.fusedActivationFunction != 0:
        raise UnsupportedOpError(f"{where}: CONCATENATION with a fused activation")
    spec.axis = axis + (3 - rank)
    dims = [_dims(t.shape, where) for t in act_inputs]
    along = sum(d[spec.axis] for d in dims)
    if along != spec.out_dims[spec.axis]:
        raise UnsupportedOpError(f"{where}: CONCATENATION inputs {dims} do not add up to "
                                 f"{spec.out_dims}")


def _set_conv_quant(spec: LayerSpec, w_t: Tensor, b_t: Tensor | None, in_t: Tensor,
                    out_t: Tensor, out_channels: int, activation: str, where: str,
                    channel_axis: int) -> None:
    if w_t.data is None or w_t.dtype is not np.int8:
        raise UnsupportedOpError(f"{where}: weights must be constant int8")
    if not len(w_t.scales) or not np.all(np.isfinite(w_t.scales)):
        raise UnsupportedOpError(f"{where}: weights {w_t.name!r} have no quantization scale; "
                                 "convert with full-integer int8 quantization")
    if len(w_t.zero_points) != len(w_t.scales):  # TFLM takes them as affine only then
        raise UnsupportedOpError(f"{where}: weights {w_t.name!r} have {len(w_t.scales)} scales "
                                 f"and {len(w_t.zero_points)} zero points")
    if np.any(w_t.zero_points != 0):
        raise UnsupportedOpError(f"{where}: weights must be symmetric (zero point 0)")
    scales = w_t.scales if len(w_t.scales) > 1 else np.full(1, w_t.scale, np.float32)
    if len(scales) not in (1, out_channels):
        raise UnsupportedOpError(f"{where}: {len(scales)} weight scales for {out_channels} "
                                 "output channels")
    if len(scales) > 1 and w_t.quantized_dimension != channel_axis:
        # TFLM reads the scales along this axis (the engine along the output channels)
        raise UnsupportedOpError(f"{where}: weights {w_t.name!r} are quantized per channel "
                                 f"along axis {w_t.quantized_dimension}, not the output "
                                 f"channels' axis {channel_axis}")
    spec.weights = np.ascontiguousarray(w_t.data).reshape(-1)
    spec.weight_tensor = w_t
    if b_t is not None and b_t.data is not None:
        if b_t.dtype is not np.int32:
            raise UnsupportedOpError(f"{where}: bias must be int32")
        spec.bias = np.ascontiguousarray(b_t.data).reshape(-1)
        spec.bias_tensor = b_t
        if len(spec.bias) != out_channels:
            raise UnsupportedOpError(f"{where}: {len(spec.bias)} biases for {out_channels} "
                                     "output channels")
    spec.multiplier, spec.shift = qm.channel_multipliers(in_t.scale, scales, out_t.scale)
    spec.act_min, spec.act_max = _fused_range(activation, out_t, spec.op, where)


class _Names(dict):
    """Enum value -> name, ``#<value>`` for one the schema does not know."""

    def __missing__(self, key: int) -> str:
        return f"#{key}"


def _fused_range(activation: str, out_t: Tensor, op: str, where: str) -> tuple[int, int]:
    """The clamp of ``op``'s fused activation, or UnsupportedOpError naming it."""
    if activation not in qm.FUSED_ACTIVATIONS:
        raise UnsupportedOpError(
            f"{where}: {op} with a fused {activation} activation is not supported by the "
            f"firmware engine; supported fused activations: {', '.join(qm.FUSED_ACTIVATIONS)} "
            "(rebuild the model with one of those)")
    return qm.activation_range(activation, out_t.scale, out_t.zero_point)


def _check_quantization(t: Tensor, op: str, where: str) -> None:
    """An int8 activation (or constant operand) needs one scale (finite, > 0) and one zero
    point in int8's range: the engine keeps one pair per tensor, a missing scale divides by
    zero, and ts_model_check refuses a zero point outside [-128, 127] (TFLite's quantization
    spec; TFLM runs it), which `engine check` reported as the golden program's status 6."""
    if not len(t.scales) or not len(t.zero_points):
        raise UnsupportedOpError(
            f"{where}: {op}'s int8 tensor {t.name!r} has no quantization parameters (scale, "
            "zero point); convert with full-integer int8 quantization (a representative "
            "dataset)")
    if len(t.scales) != 1 or len(t.zero_points) != 1:
        raise UnsupportedOpError(
            f"{where}: {op}'s int8 tensor {t.name!r} has {len(t.scales)} scales and "
            f"{len(t.zero_points)} zero points; the engine takes one per activation tensor "
            "(per-channel quantization is supported for weights only)")
    if not (np.isfinite(t.scales[0]) and t.scales[0] > 0):
        raise UnsupportedOpError(f"{where}: {op}'s int8 tensor {t.name!r} has scale "
                                 f"{float(t.scales[0]):g}; a quantization scale must be a "
                                 "finite number > 0")
    if not -128 <= int(t.zero_points[0]) <= 127:
        raise UnsupportedOpError(f"{where}: {op}'s int8 tensor {t.name!r} has zero point "
                                 f"{int(t.zero_points[0])}; an int8 zero point must be in "
                                 "[-128, 127] (TFLite's quantization spec): convert the model "
                                 "again with full-integer int8 quantization")


def _check_c_fields(spec: LayerSpec, where: str) -> None:
    """Refuse a layer whose stride, dilation, filter, depth multiplier or paddings do not fit
    their ts_layer_t field (the C compiler would truncate them and the device would run
    another layer)."""
    fields = [(f"{name}_{axis}", getattr(spec, name)[i], "uint8_t")
              for name in _UINT8_FIELDS for i, axis in enumerate("hw")]
    fields += [("depth_multiplier", spec.depth_multiplier, "uint16_t"),
               ("pad_h", spec.pad[0], "int16_t"), ("pad_w", spec.pad[1], "int16_t"),
               ("pad_c", spec.pad_c, "int16_t")]
    for field_name, value, ctype in fields:
        lo, hi = _C_LIMITS[ctype]
        if not lo <= int(value) <= hi:
            raise UnsupportedOpError(
                f"{where}: {spec.op} {field_name} {int(value)} does not fit the layer "
                f"table's {ctype} (limit {lo}..{hi}); rebuild the model with "
                f"{_C_FIELD_FIX[field_name.split('_')[0]]}")


def _check_dims(dims: tuple[int, int, int], where: str, what: str) -> None:
    """h, w and c each in 1..MAX_DIM and at most MAX_ELEMS elements (the engine's dims_ok)."""
    if min(dims) < 1:
        raise UnsupportedOpError(f"{where}: the {what} {dims} is empty; the firmware engine "
                                 "runs tensors of at least one element")
    if max(dims) > MAX_DIM:
        raise UnsupportedOpError(f"{where}: the {what} {dims} has a dimension of "
                                 f"{max(dims):,}; the firmware engine takes at most "
                                 f"{MAX_DIM:,} per dimension (TS_MAX_DIM): {_SMALLER}")
    if int(np.prod(dims, dtype=np.int64)) > MAX_ELEMS:
        raise UnsupportedOpError(f"{where}: the {what} {dims} has "
                                 f"{int(np.prod(dims, dtype=np.int64)):,} elements; the "
                                 f"firmware engine takes at most {MAX_ELEMS:,} per tensor "
                                 f"(TS_MAX_ELEMS): {_SMALLER}")


def _check_engine_limits(spec: LayerSpec, where: str) -> None:
    """Refuse a layer the engine's ts_layer_check would refuse for its size (its dims, a
    SOFTMAX's depth, a MEAN's count, an accumulator that could overflow int32, a shift out of
    range), naming the size and the limit; the rest of ts_layer_check follows from how the
    reader builds the row."""
    _check_dims(spec.in_dims, where, "input")
    _check_dims(spec.out_dims, where, "output")
    if spec.op in ("ADD", "MUL"):
        _check_dims(spec.in2_dims, where, "second input")
    h, w, c = spec.in_dims
    if spec.op == "SOFTMAX" and c > MAX_SOFTMAX_DEPTH:
        raise UnsupportedOpError(
            f"{where}: SOFTMAX over {c:,} values; the firmware engine's int8 SOFTMAX takes at "
            f"most {MAX_SOFTMAX_DEPTH} (TS_MAX_SOFTMAX_DEPTH): use at most "
            f"{MAX_SOFTMAX_DEPTH} classes, or drop the SOFTMAX (the logits' argmax is the same)")
    if spec.op == "MEAN" and h * w > MAX_MEAN_COUNT:
        raise UnsupportedOpError(
            f"{where}: MEAN over {h * w:,} positions; the firmware engine averages at most "
            f"{MAX_MEAN_COUNT:,} (TS_MAX_MEAN_COUNT): pool the input down before it")
    k = {"CONV_2D": spec.filter[0] * spec.filter[1] * c,
         "DEPTHWISE_CONV_2D": spec.filter[0] * spec.filter[1],
         "FULLY_CONNECTED": h * w * c}.get(spec.op)
    if k is not None:
        max_bias = int(np.abs(spec.bias.astype(np.int64)).max()) if spec.bias is not None \
            and len(spec.bias) else 0
        if k * 255 * 128 + max_bias > INT32_MAX:
            raise UnsupportedOpError(
                f"{where}: {spec.op} sums {k:,} products per output (biases up to "
                f"{max_bias:,}): its int32 accumulator could overflow, which the firmware "
                f"engine refuses ({k:,} * 255 * 128 + {max_bias:,} > {INT32_MAX:,}): split the "
                "layer, or give it fewer inputs")
    if spec.op != "HARD_SWISH" and spec.shift is not None and len(spec.shift) \
            and int(spec.shift.max()) > 30:
        raise UnsupportedOpError(
            f"{where}: {spec.op} rescales by 2^{int(spec.shift.max())} (its input, weight and "
            "output scales are that far apart); the firmware engine takes shifts up to 30: "
            "re-convert the model with full-integer int8 quantization")


def _set_padding(spec: LayerSpec) -> None:
    (ih, iw, _), (oh, ow, _) = spec.in_dims, spec.out_dims
    (fh, fw), (sh, sw), (dh, dw) = spec.filter, spec.stride, spec.dilation
    if min(sh, sw, dh, dw, fh, fw) < 1:
        raise UnsupportedOpError(f"layer {spec.index}: stride, dilation and filter must be >= 1")
    exp_h = qm.out_size(spec.padding, ih, fh, sh, dh)
    exp_w = qm.out_size(spec.padding, iw, fw, sw, dw)
    if (exp_h, exp_w) != (oh, ow):
        raise UnsupportedOpError(f"layer {spec.index}: output {oh}x{ow} does not follow from "
                                 f"input {ih}x{iw} with {spec.padding} padding")
    if spec.padding == "SAME":
        spec.pad = (qm.same_padding(ih, fh, sh, dh, oh), qm.same_padding(iw, fw, sw, dw, ow))


def head_float_weights(parsed: ParsedModel) -> tuple[np.ndarray, np.ndarray]:
    """The head's weights dequantized from the ``.tflite`` (so training starts from exactly the
    model the device runs): W[k][d] = w_q * scale, b[k] = b_q * input_scale * scale."""
    head = parsed.head
    w_t = head.weight_tensor
    k, d = head.out_dims[2], head.in_dims[2]
    scales = w_t.scales if len(w_t.scales) == k else np.full(k, w_t.scale, np.float32)
    w = head.weights.reshape(k, d).astype(np.float32) * scales[:, None].astype(np.float32)
    b = np.zeros(k, np.float32)
    if head.bias is not None:
        b = head.bias.astype(np.float64) * float(head.input_tensor.scale) * scales.astype(
            np.float64)
    return w.astype(np.float32), np.asarray(b, np.float32)


def describe(parsed: ParsedModel) -> str:
    """One line per layer: index, op, inputs, output dims (for the CLI)."""
    lines = []
    for lay in parsed.layers:
        ins = ",".join("in" if t == 0 else f"L{t - 1}" for t in lay.inputs)
        lines.append(f"{lay.index:3d} {lay.op:<18} <- {ins:<12} out {lay.out_dims}")
    return "\n".join(lines)

