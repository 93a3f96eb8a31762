"""How long and how much each command of a device session may take (docs/protocol.md, "Host
behaviour: timeouts, deadlines, retries").

A device is silent inside a measurement window (no serial byte while a phase or an epoch
runs), so a fixed timeout is wrong both ways: a slow board's `features` window outlasts it
and a device that never stops sending valid records is never caught. Each command therefore
gets three limits, derived from the board's clock and the cycles the command is expected to
take (the model's multiply-accumulates times a per-core cost), plus the user's ``--timeout``:

* ``silence``: seconds without a valid record (``timeout`` + SAFETY x the longest window);
* ``deadline``: seconds for the whole command (``timeout`` + SAFETY x all its windows);
* ``records``: the most records the command can produce before its ``@ready``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinysift.boards import Board

#: The expected seconds are multiplied by this before they become a limit.
SAFETY = 4.0
#: An emulated board runs at least this many instructions per wall-clock second (QEMU under
#: -icount on a loaded 2-core machine runs 20-100 million); its profile's clock is virtual.
EMULATOR_HZ = 5_000_000
#: Cycles per int8 multiply-accumulate (DSP: SMLAD; measured 2.2 instructions on the M4 path)
#: and per float multiply-accumulate of one training pass (FPU, or soft float).
INT8_CPM = {True: 4, False: 12}
FLOAT_CPM = {True: 10, False: 100}
#: Forward, backward and the weight gradient.
TRAIN_PASSES = 3
#: Cycles the firmware spends per received byte (framing, CRC, hex decoding).
CYCLES_PER_BYTE = 100
#: Records a command may add to what it is expected to send (@err lines).
RECORD_SLACK = 8
#: Records a board may send before its @boot (leftovers of an earlier session).
BOOT_RECORDS = 64
SERIAL_BAUD = 115200
#: Bytes per second an emulated board's UART takes in (QEMU hands the guest one byte at a time:
#: `db load` of 200-360 Fashion-MNIST samples, 300-570 KB, took 20-99 s on this 2-core machine,
#: 4.5-14 KB/s depending on its load; the limit, 4x the time at this rate, allows ~1.2 KB/s).
EMULATED_LINK_BPS = 5_000


@dataclass(frozen=True)
class Limits:
    silence: float
    deadline: float
    records: int

    def describe(self) -> str:
        return (f"{self.silence:.0f} s without a record, {self.deadline:.0f} s in all, "
                f"{self.records} records")


@dataclass(frozen=True)
class ModelCost:
    """What the limits need to know about an export (``export.json``)."""

    # int8 multiply-accumulates per sample: the layers below the head, then the head
    backbone_macs: int
    head_macs: int
    # the last pointwise convolution's (update=last-block trains it in float)
    block_macs: int
    classes: int = 10
    # the test set the device evaluates after every train, and one sample's bytes
    test_samples: int = 0
    sample_bytes: int = 0

    @classmethod
    def from_export(cls, info: dict) -> ModelCost:
        """From ``export.json``; exports written before the ``macs`` field count a 3x3
        kernel for every convolution (an over-estimate: only looser limits)."""
        from tinysift.export.memory import pooled_conv_layer

        layers = info.get("layers", [])
        head = int(info.get("head_layer", len(layers) - 1))
        macs = [_layer_macs(lay) for lay in layers]
        # update=last-block trains the CONV_2D below the pooling under the head
        conv = pooled_conv_layer([lay["op"] for lay in layers], head)
        block = 0 if conv is None else macs[conv]
        shape = info.get("input", {}).get("shape", [0])
        return cls(backbone_macs=sum(macs[:head]), head_macs=sum(macs[head:]),
                   block_macs=block, classes=int(info.get("num_classes", 10)),
                   test_samples=int(info.get("test_samples", 0)),
                   sample_bytes=math.prod(shape))


def _layer_macs(lay: dict) -> int:
    if "macs" in lay:
        return int(lay["macs"])
    (ih, iw, ic), (oh, ow, oc) = lay["in"], lay["out"]
    if lay["op"] == "CONV_2D":
        return oh * ow * oc * 9 * ic
    if lay["op"] == "DEPTHWISE_CONV_2D":
        return oh * ow * oc * 9
    if lay["op"] == "FULLY_CONNECTED":
        return ih * iw * ic * oc
    return 0


#: The largest ``--timeout``: seconds of silence on top of the derived limits.
MAX_TIMEOUT_S = 86_400.0


class SessionLimits:
    """The limits of every command of one session on ``board``.

    ``timeout``: the user's seconds without a valid record (``--timeout``), added to every
    derived limit."""

    def __init__(self, board: Board, cost: ModelCost, timeout: float = 20.0):
        if not 0 < timeout <= MAX_TIMEOUT_S:
            # inf (or 1e308, doubled into inf) made every limit infinite: a silent port then
            # hung the host for ever instead of being reported. The limits derived from the
            # expected cycles come on top, so a day of silence is already generous.
            from tinysift.errors import TinysiftError

            raise TinysiftError(f"--timeout must be a positive number of seconds up to "
                                f"{MAX_TIMEOUT_S:.0f} (a day), got {timeout}")
        self.board, self.cost, self.timeout = board, cost, float(timeout)
        self.hz = min(board.clock_hz, EMULATOR_HZ) if board.emulated else board.clock_hz
        self.int8 = INT8_CPM[bool(board.dsp)]
        self.float = FLOAT_CPM[bool(board.fpu)]

    def _limits(self, longest_cycles: float, total_cycles: float, records: int,
                extra_seconds: float = 0.0) -> Limits:
        longest = SAFETY * (longest_cycles / self.hz + extra_seconds)
        total = SAFETY * (total_cycles / self.hz + extra_seconds)
        return Limits(silence=self.timeout + longest, deadline=self.timeout * 2 + total,
                      records=records + RECORD_SLACK)

    def simple(self, records: int = 4) -> Limits:
        """``name``, ``info``, ``db use``, ``reset``: no window."""
        return self._limits(0, 0, records)

    def boot(self) -> Limits:
        return self._limits(0, 0, BOOT_RECORDS)

    def db_load(self, samples: int) -> Limits:
        """Silent until the last line arrives: the bytes at the link's rate, decoded."""
        line = 2 * self.cost.sample_bytes + 16
        size = samples * line
        link = size / EMULATED_LINK_BPS if self.board.emulated else size * 10 / SERIAL_BAUD
        return self._limits(size * CYCLES_PER_BYTE, size * CYCLES_PER_BYTE, 2, link)

    def db_stream(self, samples: int, coverage: bool) -> Limits:
        """Silent until the last sample: the lines at the link's rate, decoded, and with the
        ``coverage`` policy each sample's pass through the frozen layers; then ``@db``, one
        ``@dbclass`` per class and ``@ready``."""
        c = self.cost
        line = 2 * c.sample_bytes + 16
        size = samples * line
        link = size / EMULATED_LINK_BPS if self.board.emulated else size * 10 / SERIAL_BAUD
        cycles = size * CYCLES_PER_BYTE + (samples * c.backbone_macs * self.int8 if coverage
                                           else 0)
        return self._limits(cycles, cycles, 2 + c.classes, link)

    def db_kept(self, kept: int) -> Limits:
        """One ``@kept`` per sample in the buffer, then ``@ready``."""
        return self._limits(0, 0, kept + 1)

    def eval(self) -> Limits:
        c = self.cost
        cycles = c.test_samples * (c.backbone_macs * self.int8 + c.head_macs * self.float)
        return self._limits(cycles, cycles, 2 + c.classes)

    def results(self) -> Limits:
        return self._limits(0, 0, 64 + self.train_summary_records())

    def train_summary_records(self) -> int:
        """What follows the epochs: two @eval and their @class records, four @phase, @mem,
        @ready."""
        return 2 * (1 + self.cost.classes) + 4 + 1 + 1

    def train(self, params, samples: int) -> Limits:
        """``params``: a TrainParams; ``samples``: the training set the device uses."""
        c = self.cost
        update = params.update or "head"
        n = max(1, samples)
        if params.steps is not None:
            per_window_steps = math.ceil(n / params.batch)
            windows = math.ceil(params.steps / per_window_steps)
            window_samples = per_window_steps * params.batch
        else:
            windows, window_samples = params.epochs, n
        head = c.head_macs * TRAIN_PASSES * self.float
        if update == "head":
            per_sample = head
            features = (samples + c.test_samples) * c.backbone_macs * self.int8
        elif update == "last-block":
            per_sample = (c.backbone_macs * self.int8 + head
                          + c.block_macs * TRAIN_PASSES * self.float)
            features = c.test_samples * c.backbone_macs * self.int8
        else:  # bias: every layer below the head, in float
            per_sample = head + c.backbone_macs * TRAIN_PASSES * self.float
            features = c.test_samples * c.backbone_macs * self.int8
        window = window_samples * per_sample
        evaluation = c.test_samples * (c.backbone_macs * self.int8 + 2 * c.head_macs
                                       * self.float)
        return self._limits(max(features, window, evaluation),
                            features + windows * window + evaluation,
                            1 + windows + self.train_summary_records())
