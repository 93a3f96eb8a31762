"""Read a ``.tflite`` flatbuffer into the firmware's layer table (format version 1).

The exporter reads the converted model, not the Keras model, so the device executes exactly
what the TFLM runtime executes. Only linear chains of supported int8 ops are accepted; any
other op is refused naming the op and its layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinysift.errors import UnsupportedOpError
from tinysift.export import quant_math as qm

FORMAT_VERSION = 1
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
                 "MAX_POOL_2D", "RESHAPE", "SOFTMAX", "QUANTIZE")
OP_CODES = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 3, "AVERAGE_POOL_2D": 4,
            "MAX_POOL_2D": 5, "RESHAPE": 6, "SOFTMAX": 7, "MEAN": 8,
            "QUANTIZE": 9}
_NP_TYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    scales: np.ndarray
    zero_points: np.ndarray
    data: np.ndarray | None = None

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


@dataclass
class ParsedModel:
    layers: list[LayerSpec]
    input: Tensor
    output: Tensor
    head_index: int

    @property
    def head(self) -> LayerSpec:
        return self.layers[self.head_index]

    def arena_bytes(self) -> int:
        """Two ping-pong activation buffers (each 8-byte aligned) for the largest in+out."""
        def align(n: int) -> int:
            return (n + 7) // 8 * 8

        return max(align(layer.in_bytes) + align(layer.out_bytes) for layer in self.layers)

    def weight_bytes(self) -> int:
        total = 0
        for layer in self.layers:
            for arr in (layer.weights, layer.bias, layer.multiplier, layer.shift):
                if arr is not None:
                    total += arr.nbytes
        return total


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _dims(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """NHWC (batch 1) or (1, D) -> (h, w, c)."""
    s = [int(d) for d in shape]
    if len(s) == 4:
        return s[1], s[2], s[3]
    if len(s) == 2:
        return 1, 1, s[1]
    if len(s) == 3:
        return 1, s[1], s[2]
    raise UnsupportedOpError(f"tensor shape {tuple(shape)} is not NHWC or (1, D)")


def parse_tflite(model_bytes: bytes) -> ParsedModel:
    """Parse and check a full-integer ``.tflite`` into the layer table."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    if len(model.subgraphs) != 1:
        raise UnsupportedOpError(f"the model has {len(model.subgraphs)} subgraphs; "
                                 "the firmware engine runs single-subgraph models")
    graph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    act_names = {v: k for k, v in vars(schema.ActivationFunctionType).items()
                 if not k.startswith("_")}
    pad_names = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}

    def tensor(i: int) -> Tensor:
        t = graph.tensors[i]
        q = t.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [],
                            np.float32)
        zps = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [],
                         np.int64)
        data = None
        buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        dtype = _NP_TYPES.get(t.type, np.uint8)
        if buf is not None and len(buf):
            data = np.frombuffer(bytes(bytearray(buf)), dtype=dtype).reshape(t.shape)
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        return Tensor(i, name, tuple(int(d) for d in t.shape), dtype, scales, zps, data)

    layers: list[LayerSpec] = []
    prev_out = int(graph.inputs[0])
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOpError("the firmware engine runs models with one input and one output")
    for i, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        out_t = tensor(int(op.outputs[0]))
        where = f"layer {i} (output tensor {out_t.name!r})"
        if name not in SUPPORTED_OPS:
            raise UnsupportedOpError(
                f"op {name} at {where} is not supported by the firmware engine; supported ops: "
                f"{', '.join(SUPPORTED_OPS)}. Rebuild the model from those ops "
                "(tinysift.models builds only supported ones)")
        in_t = tensor(int(op.inputs[0]))
        if in_t.index != prev_out:
            raise UnsupportedOpError(f"{where} does not read the previous layer's output; "
                                     "the engine runs linear chains of layers only")
        if in_t.dtype is not np.int8 or out_t.dtype is not np.int8:
            raise UnsupportedOpError(
                f"op {name} at {where} is not int8 (input {in_t.dtype.__name__}, output "
                f"{out_t.dtype.__name__}); quantize with full-integer int8 input and output")
        prev_out = out_t.index
        opts = op.builtinOptions
        spec = LayerSpec(index=i, op=name, name=out_t.name, in_dims=_dims(in_t.shape),
                         out_dims=_dims(out_t.shape), input_zero_point=in_t.zero_point,
                         output_zero_point=out_t.zero_point, input_tensor=in_t,
                         output_tensor=out_t)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w_t = tensor(int(op.inputs[1]))
            b_t = tensor(int(op.inputs[2])) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            spec.padding = pad_names[opts.padding]
            spec.stride = (opts.strideH, opts.strideW)
            spec.dilation = (opts.dilationHFactor, opts.dilationWFactor)
            if name == "CONV_2D":
                spec.filter = (w_t.shape[1], w_t.shape[2])
                out_channels = w_t.shape[0]
            else:
                spec.filter = (w_t.shape[1], w_t.shape[2])
                spec.depth_multiplier = int(opts.depthMultiplier) or (
                    w_t.shape[3] // spec.in_dims[2])
                out_channels = w_t.shape[3]
            _set_conv_quant(spec, w_t, b_t, in_t, out_t, out_channels,
                            act_names[opts.fusedActivationFunction], where)
            _set_padding(spec)
        elif name == "FULLY_CONNECTED":
            w_t = tensor(int(op.inputs[1]))
            b_t = tensor(int(op.inputs[2])) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            spec.out_dims = (1, 1, int(w_t.shape[0]))
            spec.in_dims = (1, 1, int(w_t.shape[1]))
            if int(np.prod(_dims(in_t.shape))) != w_t.shape[1]:
                raise UnsupportedOpError(f"{where}: FC input size does not match its weights")
            _set_conv_quant(spec, w_t, b_t, in_t, out_t, w_t.shape[0],
                            act_names[opts.fusedActivationFunction], where)
        elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            spec.padding = pad_names[opts.padding]
            spec.stride = (opts.strideH, opts.strideW)
            spec.filter = (opts.filterHeight, opts.filterWidth)
            spec.act_min, spec.act_max = qm.activation_range(
                act_names[opts.fusedActivationFunction], out_t.scale, out_t.zero_point)
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
            spec.softmax = qm.softmax_params(beta, in_t.scale)
            if abs(out_t.scale - 1.0 / 256) > 1e-9 or out_t.zero_point != -128:
                raise UnsupportedOpError(f"{where}: int8 SOFTMAX output must be 1/256, -128")
        layers.append(spec)
    if prev_out != int(graph.outputs[0]):
        raise UnsupportedOpError("the last layer does not produce the model output")
    heads = [lay.index for lay in layers if lay.op == "FULLY_CONNECTED"]
    if not heads:
        raise UnsupportedOpError("the model has no FULLY_CONNECTED classifier head to train")
    return ParsedModel(layers, tensor(int(graph.inputs[0])), tensor(int(graph.outputs[0])),
                       heads[-1])


def _set_conv_quant(spec: LayerSpec, w_t: Tensor, b_t: Tensor | None, in_t: Tensor,
                    out_t: Tensor, out_channels: int, activation: str, where: str) -> None:
    if w_t.data is None or w_t.dtype is not np.int8:
        raise UnsupportedOpError(f"{where}: weights must be constant int8")
    if np.any(w_t.zero_points != 0):
        raise UnsupportedOpError(f"{where}: weights must be symmetric (zero point 0)")
    scales = w_t.scales if len(w_t.scales) > 1 else np.full(1, w_t.scale, np.float32)
    if len(scales) not in (1, out_channels):
        raise UnsupportedOpError(f"{where}: {len(scales)} weight scales for {out_channels} "
                                 "output channels")
    spec.weights = np.ascontiguousarray(w_t.data).reshape(-1)
    spec.weight_tensor = w_t
    if b_t is not None and b_t.data is not None:
        if b_t.dtype is not np.int32:
            raise UnsupportedOpError(f"{where}: bias must be int32")
        spec.bias = np.ascontiguousarray(b_t.data).reshape(-1)
        spec.bias_tensor = b_t
    spec.multiplier, spec.shift = qm.channel_multipliers(in_t.scale, scales, out_t.scale)
    spec.act_min, spec.act_max = qm.activation_range(activation, out_t.scale, out_t.zero_point)


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
