"""The memory plan: flash and RAM of an export against a board, before any build.

Flash holds the engine code, the layer table and weights, the int8 training and test sets,
the head's float initializations, the raw ``.tflite`` (the firmware app reads the scales of
the layers it trains in float from it: ``update=last-block`` and ``update=bias``) and the
optional VQ codebook of ``db stream policy=coverage``. RAM holds the activation arena, the
int8 feature cache, the head's float training state, the float layers' training state and
their re-quantized form, the ``db`` buffer and ``db stream``'s bookkeeping, the layer table's
RAM copy, I/O buffers, the app's state and the stack region the linker script reserves (the
board profile's ``stack_bytes``).

Every trainer buffer has its formula written once in C (firmware/lib/tsengine/src/
ts_trainer.h); the functions here are their Python twins, checked against the compiled macros
by tests/test_trainer.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from tinysift.boards import Board, board_support, list_boards
from tinysift.errors import FitError
from tinysift.export.codebook import vq_flash_bytes
from tinysift.export.tflite_reader import LayerSpec, ParsedModel

# Part of the export stage's key: a changed formula redoes exports planned with the old one.
PLAN_VERSION = 7  # 3, 4: the arena holds the DSP kernels' scratch; 5: 3x3 channel planes;
# 6: the STM32 runtime's receive ring; 7: db stream's workspace for TS_DB_CAPACITY (at least 1)

# The firmware app's static memory, line by line (firmware/src/app*.c, app.h); every line
# but two is computed from the same formulas as the C buffers, and tests/test_memory_plan.py
# checks each against the symbols of a real build (arm-none-eabi-nm) and the device's @mem.
# Estimates, measured on the qemu-m4 build (arm-none-eabi-size, -Os) and kept above it:
# the code (engine, protocol, app, newlib's libm and the runtime, plus the padding of the
# 16-byte aligned export arrays; 71.2 KB measured with the graph ops, db stream and calib)
# and the app's state besides its buffers (the `results` ring, the fault handler's stack,
# newlib's impure data, calib's buffers and the stream's statics: about 4.3 KB for 10
# classes, of which 24 bytes per class).
ENGINE_CODE_BYTES = 76 * 1024
APP_STATE_BYTES = 4 * 1024
APP_STATE_CLASS_BYTES = 24
# What a port's runtime holds besides the shared Cortex-M one, by the board's `port`: the
# STM32 runtime's USART receive ring (TS_RX_RING, boards/platform-stm32/runtime/common/
# ts_stm32_common.c) and its five words (ring head, tail and lost count, the clock's state,
# the APB1 clock). The QEMU mps2 runtime has none; the stock-framework ports (arduino,
# esp-idf) hold their frameworks' buffers, which no plan here knows.
STM32_RX_RING = 512
PORT_RUNTIME_BYTES = {"stm32f4": STM32_RX_RING + 5 * 4, "stm32l4": STM32_RX_RING + 5 * 4}
# ts_kernels.h / ts_kernels_dsp.c defaults: the DSP kernels' largest reduction and the output
# channels per requantization table (16 bytes a channel)
DSP_MAX_K = 512
DSP_RQ_BLOCK = 16 * 4
DSP_PLANE_MAX_BYTES = 8192  # TS_DW_PLANE_MAX_BYTES
LAYER_ROW_BYTES = 144  # sizeof(ts_layer_t) (format 2) on a 32-bit core: flash table, RAM copy
#: sizeof(ts_tensor_t): the arena plan's {offset, last reader} of the model input and of each
#: layer's output (c_writer's PREFIX_tensors, layers + 1 rows, in flash)
TENSOR_ROW_BYTES = 8
# TSP/1 (firmware/lib/tsproto/src/ts_protocol.h): the longest command line, a record's buffer
PROTO_MAX_LINE = 255
PROTO_RECORD_BUF = PROTO_MAX_LINE + 2
# TS_TRAINER_MAX_SAMPLES (ts_trainer.h): the trainer's sample order is uint16, so it trains on
# at most this many samples (`db use both`: the flash set plus the RAM set), and app.h refuses
# a `db` buffer (TS_DB_CAPACITY) beyond it
MAX_TRAIN_SAMPLES = 65535


def io_buffer_bytes(sample_bytes: int) -> int:
    """The app's line buffer (TS_FRAMER_BUF_BYTES of the longest line: a command or a `db`
    data line of one sample in hex, TS_PROTO_DB_LINE_MAX) and its record buffer."""
    line_max = max(PROTO_MAX_LINE, 2 * sample_bytes + 16)
    return line_max + 2 + PROTO_RECORD_BUF


def _words(n: int) -> int:
    """Rounded up to whole 32-bit words (the app's `(n + 3u) & ~3u`)."""
    return (n + 3) // 4 * 4


def trainer_workspace_bytes(k: int, d: int, n: int) -> int:
    """Bytes of the on-device trainer's workspace for ``k`` classes, ``d`` features and ``n``
    training samples: the Python twin of ``TS_TRAINER_WORKSPACE_BYTES(K, D, N)`` in
    firmware/lib/tsengine/src/ts_trainer.h (tests/test_trainer.py compiles that macro and
    checks both give the same numbers). W, its momentum and gradient sum (``k*d`` floats
    each), b, its momentum and gradient sum, logits, probabilities and class weights (``k``
    floats each), one dequantized feature vector (``d`` floats), the shuffle order (uint16
    per sample) and one int8 feature vector (``d`` bytes)."""
    return 4 * (3 * k * d + 6 * k + d) + 2 * n + d


def trainer_tail_bytes(h: int, sc: int, a: int, mb: int, np_: int, x8: int) -> int:
    """``TS_TRAINER_TAIL_BYTES(H, SC, A, MB, NP, X8)``: the backbone workspace of the float
    layers below the head (``h`` = head_layer): one 32-byte record per layer below the head,
    ``sc`` weight scales, two float buffers of ``a`` values, ``np_`` trained parameters with
    their momentum and gradient sums, ``mb`` mask bits (whole words) and ``x8`` int8 input
    bytes (rounded up to 4)."""
    return 32 * h + 4 * (sc + 2 * a + 3 * np_ + (mb + 31) // 32) + (x8 + 3) // 4 * 4


def trainer_block_workspace_bytes(h: int, cin: int, cout: int, pix: int) -> int:
    """``TS_TRAINER_BLOCK_WORKSPACE_BYTES``: update=last-block, the pointwise convolution
    with ``cin`` input and ``cout`` output channels over ``pix`` pixels."""
    return trainer_tail_bytes(h, cout, pix * max(cin, cout), pix * cout, cin * cout + cout,
                              pix * cin)


def trainer_bias_workspace_bytes(h: int, sumc: int, amax: int, mbits: int) -> int:
    """``TS_TRAINER_BIAS_WORKSPACE_BYTES``: update=bias (``sumc`` conv/depthwise output
    channels below the head, ``amax`` the largest layer input or output, ``mbits`` their
    output values)."""
    return trainer_tail_bytes(h, sumc, amax, mbits, sumc, 0)


def trainer_block_q_bytes(cin: int, cout: int) -> int:
    """``TS_TRAINER_BLOCK_Q_BYTES``: int32 bias, multiplier and shift per output channel and
    the int8 weights of the re-quantized pointwise convolution."""
    return 12 * cout + cin * cout


def trainer_bias_q_bytes(sumc: int) -> int:
    """``TS_TRAINER_BIAS_Q_BYTES``: one int32 bias per conv/depthwise output channel."""
    return 4 * sumc


def trainer_per_class_count(k: int) -> int:
    """``TS_TRAINER_PER_CLASS_COUNT``: uint32 per-class test counts (totals, initial float,
    float, int8)."""
    return 4 * k


def replay_workspace_bytes(b: int, k: int, c: int, d: int) -> int:
    """``TS_REPLAY_WORKSPACE_BYTES(B, K, C, D)`` (firmware/lib/tsengine/src/ts_replay.h): the
    replay-buffer upkeep of ``db stream`` for ``b`` slots, ``k`` classes, ``c`` codewords per
    class and ``d`` feature bytes (``c = 0``: reservoir sampling only). Per slot its stream
    index (uint32) and codeword (uint16); per codeword the samples assigned (uint32) and kept
    (uint16); per class the samples kept (uint16) and the online codewords opened (uint8);
    the online codewords (``k*c*d`` int8); rounded up to 4 bytes. tests/test_replay.py
    compiles the macro and checks both give the same numbers."""
    return (6 * b + 6 * k * c + 3 * k + k * c * d + 3) // 4 * 4


# The firmware app's `db stream` state besides the workspace and the per-class counts: the
# upkeep's state (ts_replay_t, 84 bytes on a 32-bit core) and the rest of the header that
# keeps a finished stream's buffer across a reset (firmware/src/app_stream.c, 40 bytes with
# padding), rounded up; tests/test_device_stream.py checks the image's symbols against it.
STREAM_STATE_BYTES = 160


def stream_ram_bytes(db: int, k: int, c: int, d: int, sample_bytes: int) -> int:
    """RAM of `db stream` in the firmware app (firmware/src/app.h, app_stream.c): the upkeep's
    workspace for the ``db`` capacity and the export's codebook (``c`` codewords per class,
    0 without one), one scratch sample and one feature vector, the samples streamed per class
    and the fixed state."""
    return (replay_workspace_bytes(db, k, c, d if c else 0) + sample_bytes + d + 4 * k
            + STREAM_STATE_BYTES)


@dataclass(frozen=True)
class BackboneDims:
    """The numbers the backbone macros take (ts_trainer_sizes() in C): the last pointwise
    convolution before the average pooling (0 when the model has none) and the layers below
    the head (0 when update=bias cannot train them)."""

    head_layer: int = 0
    block_in_c: int = 0
    block_out_c: int = 0
    block_pixels: int = 0
    bias_channels: int = 0
    bias_act_max: int = 0
    bias_mask_bits: int = 0

    @property
    def block_bytes(self) -> int:
        if not self.block_out_c:
            return 0
        return trainer_block_workspace_bytes(self.head_layer, self.block_in_c,
                                             self.block_out_c, self.block_pixels)

    @property
    def bias_bytes(self) -> int:
        if not self.bias_channels:
            return 0
        return trainer_bias_workspace_bytes(self.head_layer, self.bias_channels,
                                            self.bias_act_max, self.bias_mask_bits)

    @property
    def block_q_bytes(self) -> int:
        return trainer_block_q_bytes(self.block_in_c, self.block_out_c)

    @property
    def bias_q_bytes(self) -> int:
        return trainer_bias_q_bytes(self.bias_channels)


_FLOAT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "QUANTIZE")


def pooled_conv_layer(ops: list[str], head_layer: int) -> int | None:
    """The index of the CONV_2D right below the AVERAGE_POOL_2D that precedes the head
    (RESHAPE / QUANTIZE between them), the block update=last-block trains; None: the model
    has no such layer. ``ops``: each layer's op name."""
    i = head_layer
    while i > 0 and ops[i - 1] in ("RESHAPE", "QUANTIZE"):
        i -= 1
    if i >= 2 and ops[i - 1] == "AVERAGE_POOL_2D" and ops[i - 2] == "CONV_2D":
        return i - 2
    return None


def backbone_dims(layers: list[tuple], head_layer: int) -> BackboneDims:
    """The dims from the layer list (op, in dims, out dims[, input tensors]), as
    ts_trainer_sizes() derives them: the CONV_2D right below the AVERAGE_POOL_2D that
    precedes the head (RESHAPE / QUANTIZE between them), every layer below the head for
    update=bias; the float layers must form a chain (layer i reads only tensor i, the
    previous layer's output), else the mode is refused (0)."""
    def count(dims) -> int:
        return int(np.prod(dims))

    def chain(lo: int) -> bool:
        return all(len(lay) < 4 or list(lay[3]) == [i]
                   for i, lay in enumerate(layers[lo:head_layer], start=lo))

    block = {}
    conv = pooled_conv_layer([lay[0] for lay in layers], head_layer)
    if conv is not None and chain(conv):
        din, dout = layers[conv][1], layers[conv][2]
        block = dict(block_in_c=din[2], block_out_c=dout[2], block_pixels=dout[0] * dout[1])
    below = layers[:head_layer]
    bias = {}
    if below and all(lay[0] in _FLOAT_OPS for lay in below) and chain(0):
        convs = [lay[2] for lay in below if lay[0] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
        bias = dict(bias_channels=sum(d[2] for d in convs),
                    bias_act_max=max(max(count(lay[1]), count(lay[2])) for lay in below),
                    bias_mask_bits=sum(count(d) for d in convs))
    return BackboneDims(head_layer=head_layer, **block, **bias)


@dataclass
class MemoryPlan:
    board: str
    flash: dict[str, int] = field(default_factory=dict)
    ram: dict[str, int] = field(default_factory=dict)
    flash_capacity: int = 0
    ram_capacity: int = 0
    feature_cache: bool = True
    train_samples: int = 0
    db_capacity: int = 0
    not_counted: dict[str, int] = field(default_factory=dict)
    #: the firmware holds the update=last-block / bias buffers (False: the app built with
    #: -DTS_APP_BACKBONE_TRAINING=0, which trains the head only)
    backbone_training: bool = True

    @property
    def flash_total(self) -> int:
        return sum(self.flash.values())

    @property
    def ram_total(self) -> int:
        return sum(self.ram.values())

    @property
    def fits(self) -> bool:
        return self.flash_total <= self.flash_capacity and self.ram_total <= self.ram_capacity

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(flash_total=self.flash_total, ram_total=self.ram_total, fits=self.fits)
        return d


def _align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def plane3x3_bytes(lay: LayerSpec) -> int:
    """The channel plane of the 3x3 DSP path (ts_kernels_dsp.c, plane3x3_of): depthwise 3x3
    with depth multiplier 1, or a CONV_2D 3x3 on one input channel; no dilation, strides 1 or
    2. Rows of int16 (the pitch even) covering every window and the input, then one row of
    int32 accumulators; 0 when the layer takes another path or the plane exceeds its cap."""
    depthwise = lay.op == "DEPTHWISE_CONV_2D" and lay.depth_multiplier == 1
    conv1 = lay.op == "CONV_2D" and int(lay.in_dims[2]) == 1
    sh, sw = lay.stride
    if (not (depthwise or conv1) or tuple(lay.filter) != (3, 3) or tuple(lay.dilation) != (1, 1)
            or sh not in (1, 2) or sw not in (1, 2) or min(lay.pad) < 0):
        return 0
    out_h, out_w = int(lay.out_dims[0]), int(lay.out_dims[1])
    out_w2 = out_w + out_w % 2
    rows = max((out_h - 1) * sh + 3, lay.pad[0] + int(lay.in_dims[0]))
    pitch = max((out_w2 - 1) * sw + 4, lay.pad[1] + int(lay.in_dims[1]))
    pitch += pitch % 2
    n = 2 * rows * pitch + 4 * out_w2
    return n if n <= DSP_PLANE_MAX_BYTES else 0


def layer_scratch_bytes(lay: LayerSpec) -> int:
    """The DSP kernel's scratch for one layer (ts_layer_scratch_size with TS_USE_DSP): a 3x3
    channel plane (plane3x3_bytes); else the im2col columns of two pixels, the staging row
    and one requantization table (conv); the expanded input and a table (FC)."""
    rq = 16 * min(int(lay.out_dims[2]), DSP_RQ_BLOCK)
    n = plane3x3_bytes(lay)
    if n == 0 and lay.op == "CONV_2D":
        k = lay.filter[0] * lay.filter[1] * int(lay.in_dims[2])
        n = 16 * ((k + 3) // 4) + _align(k + 4, 4) + rq if k <= DSP_MAX_K else 0
    elif n == 0 and lay.op == "FULLY_CONNECTED":
        k = int(np.prod(lay.in_dims))
        n = 8 * ((k + 3) // 4) + rq if k <= 2 * DSP_MAX_K else 0
    return _align(n, 8)


def model_scratch_bytes(parsed: ParsedModel) -> int:
    """ts_scratch_size of the exported model on a DSP build: the largest layer scratch (the
    arena holds it after the tensors; 0 on cores without the DSP extension)."""
    return max((layer_scratch_bytes(lay) for lay in parsed.layers), default=0)


def arena_with_scratch(arena_bytes: int, scratch_bytes: int, dsp: bool) -> int:
    """ts_arena_size: the tensors (8-byte aligned), then the DSP kernels' scratch."""
    return _align(arena_bytes, 8) + (scratch_bytes if dsp else 0)


@dataclass(frozen=True)
class ModelFootprint:
    """What the plan needs to know about an exported model."""

    weight_bytes: int
    num_layers: int
    arena_bytes: int
    sample_bytes: int
    feature_dim: int
    num_classes: int
    tflite_bytes: int
    backbone: BackboneDims = field(default_factory=BackboneDims)
    scratch_bytes: int = 0  # the DSP kernels' scratch (model_scratch_bytes)


def model_footprint(parsed: ParsedModel, tflite_len: int) -> ModelFootprint:
    """What the plan needs, read off a parsed ``.tflite`` of ``tflite_len`` bytes."""
    head = parsed.head
    dims = backbone_dims([(lay.op, lay.in_dims, lay.out_dims, lay.inputs)
                          for lay in parsed.layers], parsed.head_index)
    return ModelFootprint(weight_bytes=parsed.weight_bytes(), num_layers=len(parsed.layers),
                          arena_bytes=parsed.arena_bytes(),
                          sample_bytes=int(np.prod(parsed.input_dims)),
                          feature_dim=head.in_dims[2], num_classes=head.out_dims[2],
                          tflite_bytes=tflite_len, backbone=dims,
                          scratch_bytes=model_scratch_bytes(parsed))


def app_backbone_bytes(dims: BackboneDims) -> tuple[int, int]:
    """The firmware app's static buffers for update=last-block and update=bias (one
    workspace and one re-quantized backbone, each the larger of the two modes, rounded up to
    whole words, at least one word): firmware/src/app.h's APP_BB_WS_BYTES, APP_BB_Q_BYTES.
    The workspace shares its memory with the training set's feature cache."""
    return (max(4, _words(max(dims.block_bytes, dims.bias_bytes))),
            max(4, _words(max(dims.block_q_bytes, dims.bias_q_bytes))))


def board_plan_fields(board: Board) -> dict:
    """The fields of a board profile that :func:`plan_memory` and :func:`inference_plan`
    read, as a dict.

    Parameters
    ----------
    board : the board profile

    Returns
    -------
    dict
        name, RAM, flash, stack, DSP extension and port: the export stage's key holds them,
        so a profile whose figures change (a user's copy) re-plans its export, while one that
        changes what no plan reads (the measured current) does not.
    """
    return {"name": board.name, "ram_bytes": board.ram_bytes,
            "flash_bytes": board.flash_bytes, "stack_bytes": board.stack_bytes,
            "dsp": board.dsp, "port": board.port}


def needs_backbone_buffers(*updates: str | None) -> bool:
    """Whether a firmware for these update modes needs the update=last-block / bias buffers
    (``backbone_training``): any mode but head (None: the firmware's default, head)."""
    return any((u or "head") != "head" for u in updates)


def has_backbone_buffers(info: dict) -> bool:
    """An export's (export.json's, or its memory plan's) ``backbone_training``: False only
    for a head-only export; an export made before the field existed had the buffers."""
    return info.get("backbone_training", True) is not False


def plan_memory(fp: ModelFootprint, board: Board, train_samples: int, test_samples: int,
                feature_cache: bool | None = None, db_capacity: int | None = None,
                backbone_training: bool = True, vq_per_class: int = 0) -> MemoryPlan:
    """Plan one configuration (``feature_cache=None``: as the firmware app does, cached).

    ``db_capacity``: samples the RAM buffer for ``db load`` holds (None: as many as the
    exported training set; the app holds at least one). The training set is the flash set,
    the RAM set or both (`db use both`), so the caches hold both. ``backbone_training``: the
    app's buffers for update=last-block / bias and the .tflite it reads their scales from
    (the default firmware; built with -DTS_APP_BACKBONE_TRAINING=0 it has neither: one word
    each). ``vq_per_class``: codewords per class of the export's VQ codebook for `db stream
    policy=coverage` (flash, and the online codewords' RAM); the stream's bookkeeping for the
    db capacity is always counted (every firmware can stream with reservoir sampling).
    Counts no firmware takes (:func:`check_sample_counts`) raise a BudgetError."""
    check_sample_counts(train_samples, db_capacity)
    db = train_samples if db_capacity is None else db_capacity
    if feature_cache is None:
        # The firmware app always caches the features (firmware/src/app.h sizes the cache
        # from the export); the trainer can recompute them instead, but no app path does yet.
        feature_cache = True
    k, d, s = fp.num_classes, fp.feature_dim, fp.sample_bytes
    db_slots = max(1, db)  # app.h: the RAM set has room for at least one sample
    n_train = train_samples + db_slots  # `db use both`: the flash set, then the RAM set
    head_init = (k * d + k) * 4
    flash = {
        "engine code": ENGINE_CODE_BYTES,
        # the arena plan's tensor table (TENSOR_ROW_BYTES per tensor, about 100 B) is left
        # out: it rides on ENGINE_CODE_BYTES' round-up (plan - image is +2.7 KB or more on
        # every board, benchmarks/results/firmware_size.md), and counting it would move every
        # committed plan
        "weights and layer table": fp.weight_bytes + fp.num_layers * LAYER_ROW_BYTES,
        "training set (int8)": train_samples * (s + 1),
        "test set (int8)": test_samples * (s + 1),
        # the export's float head (init=export) and the app's zero head (init=zero)
        "head init (float)": 2 * head_init,
        "raw .tflite (scales for last-block / bias)": fp.tflite_bytes if backbone_training
        else 0,
        "VQ codebook (db stream coverage)": vq_flash_bytes(k, vq_per_class, d),
    }
    bb_ws, bb_q = app_backbone_bytes(fp.backbone) if backbone_training else (4, 4)
    cache_train = n_train * d if feature_cache else 0
    ram = {
        # the tensors, then the DSP kernels' scratch on a core with the DSP extension
        "activation arena": arena_with_scratch(fp.arena_bytes, fp.scratch_bytes, board.dsp),
        "db buffer (streamed set)": db_slots * (s + 1),
        "feature cache (int8)": cache_train + (test_samples * d if feature_cache else 0),
        "head training state": _words(trainer_workspace_bytes(k, d, n_train)),
        "re-quantized head": k * d + 4 * k,
        # the app's backbone workspace shares the training features' cache (a float-layer
        # train does not use it): only what exceeds that cache counts
        "backbone training state (last-block / bias)": _words(max(cache_train, bb_ws))
        - cache_train,
        "re-quantized backbone": bb_q,
        "layer table (RAM copy, patched after training)": fp.num_layers * LAYER_ROW_BYTES,
        "per-class counts": 4 * trainer_per_class_count(k),
        "I/O buffers (line, record)": io_buffer_bytes(s),
        "app state and runtime": APP_STATE_BYTES + APP_STATE_CLASS_BYTES * k
        + PORT_RUNTIME_BYTES.get(board.port, 0),
        # sized, like the db buffer, for the firmware's TS_DB_CAPACITY = max(db, 1)
        "db stream upkeep": stream_ram_bytes(db_slots, k, vq_per_class, d, s),
        # the stack region the firmware's linker script reserves (__ts_stack_size: 64 KiB on
        # the QEMU mps2 image, 16 KiB on the STM32 boards): RAM the app cannot use
        "stack (reserved)": board.stack_bytes,
    }
    not_counted = {} if backbone_training else {"raw .tflite (optional)": fp.tflite_bytes}
    return MemoryPlan(board=board.name, flash=flash, ram=ram, flash_capacity=board.flash_bytes,
                      ram_capacity=board.ram_bytes, feature_cache=feature_cache,
                      train_samples=train_samples, db_capacity=db, not_counted=not_counted,
                      backbone_training=backbone_training)


def check_sample_counts(train_samples: int, db_capacity: int | None) -> None:
    """Refuse sample counts no firmware can be built or trained with.

    Parameters
    ----------
    train_samples : the exported (flash) training set
    db_capacity : samples the `db load` RAM buffer holds (None: as many as the training set)

    Raises
    ------
    BudgetError
        ``db_capacity`` negative or above :data:`MAX_TRAIN_SAMPLES` (firmware/src/app.h's
        ``#error``), or the training set plus the buffer (``db use both`` trains on both)
        above it (TS_TRAINER_MAX_SAMPLES: the trainer's sample order is uint16); the message
        gives the numbers and the counts that would do.
    """
    from tinysift.errors import BudgetError

    limit = MAX_TRAIN_SAMPLES
    if db_capacity is not None and db_capacity < 0:
        raise BudgetError(f"--db-capacity {db_capacity}: the `db load` buffer holds a number "
                          "of samples, 0 or more (0: room for one, the least the firmware "
                          "keeps)")
    if db_capacity is not None and db_capacity > limit:
        raise BudgetError(f"--db-capacity {db_capacity:,}: the firmware's `db load` buffer "
                          f"holds at most {limit:,} samples (the trainer's sample order is "
                          f"uint16, firmware/src/app.h); use --db-capacity {limit} or less")
    slots = max(1, train_samples if db_capacity is None else db_capacity)
    if train_samples + slots <= limit:
        return
    if db_capacity is None and train_samples < limit:
        fix = (f"pass --db-capacity {limit - train_samples:,} or less (the buffer defaults to "
               "the training set's size)")
    elif db_capacity is None:
        fix = (f"export fewer than {limit:,} training samples (--fit, or prune with --keep) "
               "and pass a --db-capacity (the buffer defaults to the training set's size)")
    else:
        fix = f"export at most {limit - slots:,} training samples (--fit, or prune with --keep)"
        if train_samples < limit:
            fix += f" or use --db-capacity {limit - train_samples:,} or less"
    raise BudgetError(f"{train_samples:,} training samples plus a `db load` buffer of "
                      f"{slots:,}: the on-device trainer takes at most {limit:,} samples "
                      f"(`db use both` trains on both; its sample order is uint16); {fix}")


def sample_counts_ok(train_samples: int, db_capacity: int | None) -> bool:
    """Whether :func:`check_sample_counts` accepts the counts."""
    from tinysift.errors import BudgetError

    try:
        check_sample_counts(train_samples, db_capacity)
    except BudgetError:
        return False
    return True


def max_train_samples(fp: ModelFootprint, board: Board, test_samples: int,
                      upper: int, db_capacity: int | None = None,
                      vq_per_class: int = 0, backbone_training: bool = True) -> int:
    """Largest training-set size in [0, upper] whose plan fits the board (and whose counts
    the trainer takes, :func:`check_sample_counts`)."""
    def fits(n: int) -> bool:
        return sample_counts_ok(n, db_capacity) and plan_memory(
            fp, board, n, test_samples, db_capacity=db_capacity, vq_per_class=vq_per_class,
            backbone_training=backbone_training).fits

    return largest_from_zero(fits, upper) or 0


def largest_from_zero(fits, upper: int) -> int | None:
    """The largest n in [0, ``upper``] with ``fits(n)`` (monotone: a larger count never
    needs less memory), by bisection; None when not even 0 fits."""
    if upper < 0 or not fits(0):
        return None
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def max_db_capacity(fp: ModelFootprint, board: Board, train_samples: int, test_samples: int,
                    upper: int, vq_per_class: int = 0,
                    backbone_training: bool = True) -> int | None:
    """Largest `db load` capacity in [0, upper] with which ``train_samples`` fit the board;
    None when not even 0 (one slot) does."""
    def fits(db: int) -> bool:
        return sample_counts_ok(train_samples, db) and plan_memory(
            fp, board, train_samples, test_samples, db_capacity=db,
            vq_per_class=vq_per_class, backbone_training=backbone_training).fits

    return largest_from_zero(fits, upper)


def check_fits(fp: ModelFootprint, board: Board, train_samples: int,
               test_samples: int, db_capacity: int | None = None,
               vq_per_class: int = 0, backbone_training: bool = True,
               fit: bool = False) -> MemoryPlan:
    """The plan, or a FitError that says by how much it misses and what would fit.

    Parameters
    ----------
    fp, board, train_samples, test_samples, db_capacity, vq_per_class, backbone_training
        as :func:`plan_memory`
    fit : the caller already shrinks the training set to what fits (``export --fit``): it
        is refused because not even one sample per class fits, so the error does not offer
        fewer samples (nor ``--fit``)

    Raises
    ------
    FitError
        over which capacity and by how much; the fixes with their numbers: fewer samples
        (without ``fit``), a smaller ``--db-capacity`` where one was given and a smaller one
        fits, a bigger board the firmware has a port for, a smaller model.
    """
    def plan(n: int, db: int | None, brd: Board = board) -> MemoryPlan:
        return plan_memory(fp, brd, n, test_samples, db_capacity=db,
                           vq_per_class=vq_per_class, backbone_training=backbone_training)

    p = plan(train_samples, db_capacity)
    if p.fits:
        return p
    problems = over_capacity(p)
    most = max_train_samples(fp, board, test_samples, train_samples, db_capacity,
                             vq_per_class, backbone_training)
    k = fp.num_classes
    fixes = []
    if fit:
        problems.append(f"--fit needs room for at least one training sample per class ({k}), "
                        f"the plan has room for {most}")
    elif most > 0:
        fixes.append(f"keep at most {most} samples (or pass --fit)")
    if db_capacity:  # an explicit `db load` buffer: a smaller one may leave room
        need = k if fit else train_samples
        db_most = max_db_capacity(fp, board, need, test_samples, db_capacity - 1,
                                  vq_per_class, backbone_training)
        if db_most is not None and fit:
            at = [max_train_samples(fp, board, test_samples, train_samples, d, vq_per_class,
                                    backbone_training) for d in (db_most, 0)]
            fixes.append(f"--db-capacity {db_most} or less (--fit then keeps {at[0]} samples "
                         f"at {db_most}, up to {at[1]} at 0)")
        elif db_most is not None:
            fixes.append(f"--db-capacity {db_most} or less (all {train_samples} samples then "
                         "fit)")
    if backbone_training:  # the last block's buffers may be what does not fit: said nowhere
        head = max_train_samples(fp, board, test_samples, train_samples, db_capacity,
                                 vq_per_class, False)
        if head >= k and head > most:  # also where only part of the set fits head-only
            fixes.append("--head-only (a firmware that trains the head only: "
                         + (f"{head} samples fit)" if fit else
                            f"all {train_samples} fit)" if head >= train_samples else
                            f"{head} samples fit: keep at most {head}, or pass --fit)"))
    # only boards the firmware has a port for: "choose disco_f746ng" would send the user to
    # a board nothing can be built for (with --fit: one that fits a sample per class)
    bigger = [b.name for b in sorted(list_boards(), key=lambda b: (b.ram_bytes, b.flash_bytes))
              if b.name != board.name and board_support(b) != "no-port"
              and plan(k if fit else train_samples, db_capacity, b).fits]
    if bigger:
        fixes.append(f"choose {bigger[0]}")
    if not fixes:
        fixes.append("use a smaller model (tinysift train --width) and fewer test samples")
    raise FitError(f"{board.name}: {'; '.join(problems)}; {' or '.join(fixes)}")


def over_capacity(plan: MemoryPlan | dict) -> list[str]:
    """What a plan (or its ``to_dict()``) needs beyond the board, one phrase per memory
    ("needs 96.3 KB RAM, board has 96 KB (over by 300 bytes)"); empty when it fits. The fit
    errors of the export, the device stage and the adaptation all say it this way."""
    get = plan.__getitem__ if isinstance(plan, dict) else lambda name: getattr(plan, name)
    problems = []
    for what, total, capacity in (("RAM", get("ram_total"), get("ram_capacity")),
                                  ("flash", get("flash_total"), get("flash_capacity"))):
        if total > capacity:
            problems.append(f"needs {kb(total)} {what}, board has {kb(capacity)} "
                            f"(over by {over_by(total - capacity)})")
    return problems


def inference_plan(parsed: ParsedModel, board: Board, tflite_len: int,
                   include_tflite: bool = False) -> MemoryPlan:
    """The plan of inference alone (no trainer, no data sets): flash holds the engine code,
    the weights and the layer table (and the raw .tflite when ``include_tflite``); RAM the
    planned activation arena, the input and output buffers and the reserved stack."""
    in_bytes = int(np.prod(parsed.input_dims))
    out_bytes = parsed.layers[-1].out_bytes
    flash = {"engine code": ENGINE_CODE_BYTES,
             "weights and layer table": parsed.weight_bytes()
             + len(parsed.layers) * LAYER_ROW_BYTES
             + TENSOR_ROW_BYTES * (len(parsed.layers) + 1)}
    if include_tflite:
        flash["raw .tflite"] = tflite_len
    ram = {"activation arena": arena_with_scratch(parsed.arena_bytes(),
                                                  model_scratch_bytes(parsed), board.dsp),
           "input and output buffers": in_bytes + out_bytes
           + 4 * (in_bytes * (parsed.input_float is not None)
                  + out_bytes * (parsed.output_float is not None)),
           "stack (reserved)": board.stack_bytes}
    return MemoryPlan(board=board.name, flash=flash, ram=ram, flash_capacity=board.flash_bytes,
                      ram_capacity=board.ram_bytes, feature_cache=False)


def kb(n: int) -> str:
    """``n`` bytes in KB (MB from 10 MB): whole when exact, else rounded up to a tenth, so a
    size just over a capacity never reads as the capacity itself."""
    if n >= 10 * 1024 * 1024:
        return f"{math.ceil(n * 10 / 1048576) / 10:.1f} MB"
    if n % 1024 == 0:
        return f"{n // 1024} KB"
    return f"{math.ceil(n * 10 / 1024) / 10:.1f} KB"


def over_by(n: int) -> str:
    """An overshoot of ``n`` > 0 bytes: exact under 10 KB, else as :func:`kb` (rounded up);
    never "0"."""
    if n < 10 * 1024:
        return "1 byte" if n == 1 else f"{n:,} bytes"
    return kb(n)
